package replay

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/topology"
)

// Source is one shard's oplog.
type Source interface {
	// Tail opens a cursor on the entries with ts >= from, in oplog order (every
	// entry when from is zero).
	Tail(ctx context.Context, from primitive.Timestamp) (Cursor, error)
	// Newest returns the ts of the newest entry (zero when the oplog is empty).
	Newest(ctx context.Context) (primitive.Timestamp, error)
	// Oldest returns the ts of the oldest entry (zero when unknown or empty): it
	// tells an oplog that rolled past the resume point (a gap) from one that lost
	// the resume point itself (a rollback).
	Oldest(ctx context.Context) (primitive.Timestamp, error)
	// Majority returns the shard's majority commit point: the newest entry a
	// majority of its replica set has written, which no failover can roll back,
	// with its term (0 when unknown). The replay never applies an entry past it; a
	// source with no such bound (a file) returns the largest ts.
	Majority(ctx context.Context) (OpTime, error)
}

// MemberReporter is a Source that can say where each member of the shard's replica
// set is (MongoSource): while entries wait for the majority commit point, the
// shard's progress names the members that hold them and those behind.
type MemberReporter interface {
	Members(ctx context.Context) ([]topology.MemberOpTime, error)
}

// Cursor reads entries from a Source.
type Cursor interface {
	// Next returns the next entries, in oplog order, each in its own buffer that the
	// caller may keep. An empty batch means nothing new arrived within the source's
	// wait; io.EOF ends a finite source (a file).
	Next(ctx context.Context) ([]bson.Raw, error)
	Close(ctx context.Context) error
}

// MongoSource tails local.oplog.rs of one shard: of its primary, or of the member
// the read preference chooses.
type MongoSource struct {
	client  *mongo.Client
	opts    MongoSourceOptions
	version *topology.ServerVersion

	mu      sync.Mutex
	reading *mongo.Client // the member the last Tail reads (with Reads), else nil
}

// MongoSourceOptions tune the oplog cursor.
type MongoSourceOptions struct {
	// BatchSize is the number of entries per getMore; zero means 1000. The server also
	// cuts batches at 16 MiB.
	BatchSize int32
	// MaxAwait is how long a getMore waits for new entries; zero means 1 s.
	MaxAwait time.Duration
	// Reads, with Member, makes each Tail read the oplog of one member the read
	// preference chooses (topology.SelectMember), through a direct connection
	// Member gives; Majority and Oldest then ask that member. Without them the
	// client's primary is read.
	Reads  *topology.ReadPreference
	Member func(ctx context.Context, addr string) (*mongo.Client, error)
}

// MemberPollEvery is how often Tail asks a member behind the resume point again.
const MemberPollEvery = 100 * time.Millisecond

// NewMongoSource reads the oplog through client, which must reach the shard's
// primary: a direct connection (directConnection=true) to it, or the shard's
// replica set (which opts.Reads then chooses members of). The client's credentials
// need read access to the local database.
func NewMongoSource(client *mongo.Client, opts MongoSourceOptions) *MongoSource {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxAwait <= 0 {
		opts.MaxAwait = time.Second
	}
	return &MongoSource{client: client, opts: opts, version: topology.NewServerVersion(client)}
}

// oplog is the oplog Tail reads: the chosen member's, else the client's.
func (s *MongoSource) oplog() *mongo.Collection {
	return s.oplogOf(s.member())
}

func (s *MongoSource) oplogOf(c *mongo.Client) *mongo.Collection {
	return c.Database("local").Collection("oplog.rs")
}

// member is the client of the member being read: the client without Reads.
func (s *MongoSource) member() *mongo.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reading != nil {
		return s.reading
	}
	return s.client
}

// choose connects to a member the read preference reads and waits until its
// majority commit point reaches from: from is an entry of the set's committed
// history (a checkpoint, or T0), and a member whose own commit point is at or past
// it holds it. A member merely behind gets there; one on a branch the set will roll
// back (an old primary not yet rolled back) does not, and is left when it changes
// role (ErrMemberChanged).
func (s *MongoSource) choose(ctx context.Context, from primitive.Timestamp) (*mongo.Client, error) {
	addr, err := topology.SelectMember(ctx, s.client, *s.opts.Reads)
	if err != nil {
		return nil, err
	}
	c, err := s.opts.Member(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to member %s: %w", addr, err)
	}
	for {
		point, err := s.commitPointOf(ctx, c)
		if err != nil && !errors.Is(err, topology.ErrNoCommitPoint) {
			return nil, fmt.Errorf("member %s: %w", addr, err)
		}
		if err == nil && !point.TS.Before(from) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(MemberPollEvery):
		}
	}
	s.mu.Lock()
	s.reading = c
	s.mu.Unlock()
	return c, nil
}

// commitPointOf is member c's view of the majority commit point; a one-member set
// that reports none has its newest entry committed.
func (s *MongoSource) commitPointOf(ctx context.Context, c *mongo.Client) (OpTime, error) {
	ts, term, err := topology.MemberCommitPoint(ctx, c, *s.opts.Reads)
	if errors.Is(err, topology.ErrOneMember) {
		ts, err = s.end(ctx, s.oplogOf(c), -1)
		return OpTime{TS: ts}, err
	}
	return OpTime{TS: ts, Term: term}, err
}

// Tail runs a tailable, awaitData find on {ts: {$gte: from}}. On a server older
// than 4.4 the find says oplogReplay, without which 3.6 to 4.2 reach the resume
// point by scanning the oplog from its oldest entry (4.4 and later seek by
// themselves and ignore the flag; see topology.NeedsOplogReplay).
func (s *MongoSource) Tail(ctx context.Context, from primitive.Timestamp) (Cursor, error) {
	filter := bson.D{}
	opts := options.Find().
		SetCursorType(options.TailableAwait).
		SetMaxAwaitTime(s.opts.MaxAwait).
		SetBatchSize(s.opts.BatchSize)
	if from != (primitive.Timestamp{}) {
		filter = bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: from}}}}
		version, err := s.version.Get(ctx)
		if err != nil {
			return nil, fmt.Errorf("tail the oplog: %w", err)
		}
		if topology.NeedsOplogReplay(version) {
			opts.SetOplogReplay(true) // deprecated by the driver for 4.4+, which ignore it
		}
	}
	oplog := s.oplogOf(s.client)
	if s.opts.Reads != nil {
		member, err := s.choose(ctx, from)
		if err != nil {
			return nil, fmt.Errorf("choose the member to tail (read preference %s): %w", s.opts.Reads, err)
		}
		oplog = s.oplogOf(member)
	}
	cur, err := oplog.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("open a tailable cursor on local.oplog.rs: %w", err)
	}
	return &mongoCursor{cur: cur}, nil
}

// Newest reads the last entry in natural order, on the primary: how far the shard's
// writes are, whichever member is read.
func (s *MongoSource) Newest(ctx context.Context) (primitive.Timestamp, error) {
	return s.end(ctx, s.oplogOf(s.client), -1)
}

// end reads the ts of the oplog's first (natural 1) or last (-1) entry.
func (s *MongoSource) end(ctx context.Context, oplog *mongo.Collection, natural int) (primitive.Timestamp, error) {
	which := "newest"
	if natural > 0 {
		which = "oldest"
	}
	opts := options.FindOne().SetSort(bson.D{{Key: "$natural", Value: natural}}).SetProjection(bson.D{{Key: "ts", Value: 1}})
	raw, err := oplog.FindOne(ctx, bson.D{}, opts).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return primitive.Timestamp{}, nil
	}
	if err != nil {
		return primitive.Timestamp{}, fmt.Errorf("read the %s entry of local.oplog.rs: %w", which, err)
	}
	t, i, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return primitive.Timestamp{}, fmt.Errorf("the %s entry of local.oplog.rs has no timestamp ts: %v", which, raw)
	}
	return primitive.Timestamp{T: t, I: i}, nil
}

// After reads at most limit entries after ts, in oplog order (a plain find, not
// a tail), on the primary: every write the source took, whichever member the tail
// reads; more is set when the oplog holds more of them.
func (s *MongoSource) After(ctx context.Context, ts primitive.Timestamp, limit int) (raws []bson.Raw, more bool, err error) {
	opts := options.Find().SetSort(bson.D{{Key: "$natural", Value: 1}}).SetLimit(int64(limit) + 1)
	version, err := s.version.Get(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("read the oplog after %s: %w", tsString(ts), err)
	}
	if topology.NeedsOplogReplay(version) {
		opts.SetOplogReplay(true)
	}
	cur, err := s.oplogOf(s.client).Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: ts}}}}, opts)
	if err != nil {
		return nil, false, fmt.Errorf("read local.oplog.rs after %s: %w", tsString(ts), err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if len(raws) == limit {
			return raws, true, nil
		}
		raws = append(raws, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		return nil, false, fmt.Errorf("read local.oplog.rs after %s: %w", tsString(ts), err)
	}
	return raws, false, nil
}

// Oldest reads the first entry in natural order, of the member being read.
func (s *MongoSource) Oldest(ctx context.Context) (primitive.Timestamp, error) {
	return s.end(ctx, s.oplog(), 1)
}

// Majority is the majority commit point as the member being read sees it (see
// topology.MemberCommitPoint), or as the primary does without Reads (see
// topology.MajorityCommitPoint); a one-member set that reports none has its
// newest entry committed (its term is not read: 0). The member's own view bounds
// what its oplog serves: the primary's can be past entries of a branch that member
// holds and the set rolled back (docs/correctness.md, "Read preference").
func (s *MongoSource) Majority(ctx context.Context) (OpTime, error) {
	if s.opts.Reads != nil {
		s.mu.Lock()
		member := s.reading
		s.mu.Unlock()
		if member != nil {
			return s.commitPointOf(ctx, member)
		}
	}
	ts, term, err := topology.MajorityCommitPoint(ctx, s.client)
	if errors.Is(err, topology.ErrOneMember) {
		ts, err = s.Newest(ctx)
		return OpTime{TS: ts}, err
	}
	return OpTime{TS: ts, Term: term}, err
}

// Members reads each member's last applied entry from the primary's
// replSetGetStatus (see topology.MemberOpTimes).
func (s *MongoSource) Members(ctx context.Context) ([]topology.MemberOpTime, error) {
	return topology.MemberOpTimes(ctx, s.client)
}

type mongoCursor struct {
	cur *mongo.Cursor
}

func (c *mongoCursor) Next(ctx context.Context) ([]bson.Raw, error) {
	if !c.cur.TryNext(ctx) {
		if err := c.cur.Err(); err != nil {
			return nil, err
		}
		if c.cur.ID() == 0 {
			return nil, errCursorClosed
		}
		return nil, nil
	}
	batch := make([]bson.Raw, 0, c.cur.RemainingBatchLength()+1)
	for {
		batch = append(batch, append(bson.Raw(nil), c.cur.Current...))
		if c.cur.RemainingBatchLength() == 0 || !c.cur.TryNext(ctx) {
			break
		}
	}
	return batch, c.cur.Err()
}

func (c *mongoCursor) Close(ctx context.Context) error { return c.cur.Close(ctx) }

// errCursorClosed: the server closed a tailable cursor (it does when the collection
// is dropped or, on some servers, when the first batch came back short). The
// pipeline reopens it from where it was.
var errCursorClosed = errors.New("the server closed the tailable cursor on local.oplog.rs")

// ReaderSource is a finite oplog: concatenated raw BSON entries, as a dump of
// local.oplog.rs (mongodump --db local --collection oplog.rs) holds them. It can be
// tailed once.
type ReaderSource struct {
	r      *bufio.Reader
	opened bool
	// BatchSize is the number of entries per batch; zero means 1000.
	BatchSize int
}

// NewReaderSource reads entries from r.
func NewReaderSource(r io.Reader) *ReaderSource {
	return &ReaderSource{r: bufio.NewReaderSize(r, 1<<20)}
}

// maxEntryBytes bounds one entry: a 16 MiB document plus the entry's own fields.
const maxEntryBytes = 16<<20 + 16<<10

// Tail returns the entries from from on; it can be called once.
func (s *ReaderSource) Tail(_ context.Context, from primitive.Timestamp) (Cursor, error) {
	if s.opened {
		return nil, errors.New("an oplog file can be read only once")
	}
	s.opened = true
	n := s.BatchSize
	if n <= 0 {
		n = 1000
	}
	return &readerCursor{src: s, from: from, batch: n}, nil
}

// Newest is unknown for a stream: zero.
func (s *ReaderSource) Newest(context.Context) (primitive.Timestamp, error) {
	return primitive.Timestamp{}, nil
}

// Oldest is unknown for a stream: zero.
func (s *ReaderSource) Oldest(context.Context) (primitive.Timestamp, error) {
	return primitive.Timestamp{}, nil
}

// Majority is unbounded: a dump holds what its server had, and is replayed whole.
func (s *ReaderSource) Majority(context.Context) (OpTime, error) {
	return OpTime{TS: unbounded}, nil
}

type readerCursor struct {
	src   *ReaderSource
	from  primitive.Timestamp
	batch int
	last  primitive.Timestamp // ts of the last entry read, for messages
	count int
}

func (c *readerCursor) Next(ctx context.Context) ([]bson.Raw, error) {
	var out []bson.Raw
	for len(out) < c.batch {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		raw, err := c.read()
		if err == io.EOF {
			if len(out) > 0 {
				return out, nil
			}
			return nil, io.EOF
		}
		if err != nil {
			return out, err
		}
		c.count++
		if t, i, ok := raw.Lookup("ts").TimestampOK(); ok {
			ts := primitive.Timestamp{T: t, I: i}
			if ts.Before(c.last) {
				return out, fmt.Errorf("oplog file: entry %d at %s comes after %s: an oplog is in ts order, this file is not", c.count, tsString(ts), tsString(c.last))
			}
			c.last = ts
			if ts.Before(c.from) {
				continue
			}
		}
		out = append(out, raw)
	}
	return out, nil
}

// read reads one length-prefixed document.
func (c *readerCursor) read() (bson.Raw, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.src.r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, c.truncated(err)
	}
	n := int(int32(binary.LittleEndian.Uint32(hdr[:])))
	if n < 5 || n > maxEntryBytes {
		return nil, fmt.Errorf("oplog file: entry %d (after %s) declares %d bytes: %w", c.count+1, tsString(c.last), n, oplog.ErrMalformed)
	}
	doc := make([]byte, n)
	copy(doc, hdr[:])
	if _, err := io.ReadFull(c.src.r, doc[4:]); err != nil {
		return nil, c.truncated(err)
	}
	return doc, nil
}

func (c *readerCursor) truncated(err error) error {
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return fmt.Errorf("oplog file: entry %d (after %s) is truncated: %w", c.count+1, tsString(c.last), oplog.ErrMalformed)
	}
	return fmt.Errorf("oplog file: read entry %d: %w", c.count+1, err)
}

func (c *readerCursor) Close(context.Context) error { return nil }

func tsString(ts primitive.Timestamp) string {
	if ts == (primitive.Timestamp{}) {
		return "the start"
	}
	return fmt.Sprintf("Timestamp(%d, %d)", ts.T, ts.I)
}

// TxnChainStart returns the first entry of the transaction whose chain of entries
// the entry at ts continues without ending it (an applyOps with partialTxn), read
// on the primary by following each entry's prevOpTime back; zero when the entry at
// ts is not such a link. MongoDB writes a transaction's chain, and its
// config.transactions record, at once, but a majority commit point can fall inside
// the chain (a secondary applied part of it): config.transactions read at that
// point does not list the transaction yet, although its first entry is before the
// point (docs/correctness.md, "Open transactions at T0").
func (s *MongoSource) TxnChainStart(ctx context.Context, ts primitive.Timestamp) (primitive.Timestamp, error) {
	return TxnChainStart(ctx, func(ctx context.Context, ts primitive.Timestamp) (bson.Raw, error) {
		raws, _, err := s.After(ctx, justBefore(ts), 1)
		if err != nil {
			return nil, err
		}
		if len(raws) == 0 {
			return nil, nil
		}
		return raws[0], nil
	}, ts)
}

// TxnChainStart is MongoSource.TxnChainStart on a reader of the entry at a ts (the
// first entry after it when none is there, nil at the end of the oplog).
func TxnChainStart(ctx context.Context, entryAt func(context.Context, primitive.Timestamp) (bson.Raw, error), ts primitive.Timestamp) (primitive.Timestamp, error) {
	if ts.IsZero() {
		return primitive.Timestamp{}, nil
	}
	from := ts
	for link := 0; ; link++ {
		raw, err := entryAt(ctx, ts)
		if err != nil {
			return primitive.Timestamp{}, fmt.Errorf("read the transaction entry at %s: %w", tsString(ts), err)
		}
		if raw == nil {
			return primitive.Timestamp{}, nil
		}
		e, err := oplog.Decode(raw)
		if err != nil {
			return primitive.Timestamp{}, err
		}
		if e.TS != ts {
			if link == 0 {
				return primitive.Timestamp{}, nil
			}
			return primitive.Timestamp{}, fmt.Errorf("the oplog no longer holds the entry at %s of the transaction through %s (it rolled over)", tsString(ts), tsString(from))
		}
		isLink := e.Command == oplog.CmdApplyOps && e.LSID != nil && e.HasTxnNumber
		if link == 0 && !(isLink && e.PartialTxn) {
			return primitive.Timestamp{}, nil
		}
		if !e.HasPrevOpTime || e.PrevOpTime.TS.IsZero() {
			return e.TS, nil
		}
		ts = e.PrevOpTime.TS
	}
}

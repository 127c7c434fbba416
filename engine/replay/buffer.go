package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplogbuf"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/units"
)

// DefaultBufferLimit is the disk an oplog buffer may take when none is set.
const DefaultBufferLimit = 10 << 30

// FetcherConfig describes one shard's oplog fetcher.
type FetcherConfig struct {
	Shard  string
	Source Source
	// Store is the shard's buffer, as oplogbuf.Open left it.
	Store *oplogbuf.Store
	// From is the first entry the replay reads (FirstRead): the fetcher's buffer
	// starts there. A buffer that holds it, of its term, is kept; else it is
	// cleared and fetched again from From.
	From OpTime
	// Limit bounds the buffer's bytes on disk; zero means DefaultBufferLimit. At
	// the limit the fetcher waits for the replay to apply (Release) segments.
	Limit int64
	// CommitPollEvery is how often the majority commit point is asked again while
	// entries wait for it; zero means 10 ms.
	CommitPollEvery time.Duration
	Logger          *slog.Logger
}

// Fetcher reads one shard's oplog from the replay's first entry on into its
// buffer, while the copy runs and after: through the replay's own tailer, so only
// majority-committed entries, which no failover can roll back, reach the buffer.
// The replay reads the buffer (Fetcher.Source), so an oplog that rolls over while
// a long copy runs loses nothing the replay needs. Run it in a goroutine.
type Fetcher struct {
	cfg FetcherConfig

	fetched   atomic.Uint64 // packed ts of the newest entry buffered
	committed atomic.Uint64 // packed majority commit point, as last read
	full      atomic.Bool   // waiting for the replay to free room
	failed    chan struct{} // closed when Run ends with an error

	mu struct {
		sync.Mutex
		retrying   [numRetry]string
		commitWait time.Time
		err        error
	}
}

// FirstRead is the first entry a replay of cfg reads: TxnStart when it starts at
// T0 with a transaction open there (term unknown: 0), else its resume point.
func FirstRead(cfg Config) OpTime {
	if !cfg.TxnStart.IsZero() && cfg.Resume == cfg.T0 && cfg.TxnStart.Before(cfg.T0) {
		return OpTime{TS: cfg.TxnStart}
	}
	return OpTime{TS: cfg.Resume, Term: cfg.ResumeTerm}
}

// NewFetcher checks what the buffer holds against cfg.From: kept when it holds
// the entry at From, of From's term (the buffer holds contiguous entries from its
// first on), else cleared.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.Shard == "" || cfg.Source == nil || cfg.Store == nil {
		return nil, errors.New("oplog fetcher: Shard, Source and Store are required")
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultBufferLimit
	}
	if cfg.CommitPollEvery <= 0 {
		cfg.CommitPollEvery = 10 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("shard", cfg.Shard)
	f := &Fetcher{cfg: cfg, failed: make(chan struct{})}
	pos, ok, err := cfg.Store.Find(cfg.From.TS)
	if err != nil && !errors.Is(err, oplogbuf.ErrCorrupt) {
		return nil, fmt.Errorf("read the oplog buffer of shard %s: %w", cfg.Shard, err)
	}
	keep := err == nil && ok && (cfg.From.Term == 0 || pos.Term == 0 || pos.Term == cfg.From.Term)
	if keep {
		err = cfg.Store.Release(cfg.From.TS)
	} else {
		if _, any := cfg.Store.Last(); any {
			cfg.Logger.Info("the oplog buffer does not hold the replay's resume point: fetching again", "from", tsString(cfg.From.TS))
		}
		err = cfg.Store.Reset()
	}
	if err != nil {
		return nil, fmt.Errorf("oplog buffer of shard %s: %w", cfg.Shard, err)
	}
	if last, ok := cfg.Store.Last(); ok {
		f.fetched.Store(packTS(last.TS))
	}
	return f, nil
}

// Run fetches until ctx ends (nil) or a failure a retry cannot cure: the source's
// oplog rolled past the newest entry buffered (a *GapError) or lost it (a
// *RollbackError), or the buffer cannot be written. Transient faults are retried,
// from the newest entry buffered.
func (f *Fetcher) Run(ctx context.Context) error {
	retry := newBackoff()
	for {
		progressed, err := f.fetch(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case isTransient(err) || errors.Is(err, errCursorClosed) || memberGone(err):
			f.setRetrying(retryWork, "retrying: "+err.Error())
			f.cfg.Logger.Warn("oplog fetch interrupted, resuming from the newest entry buffered", "err", err)
			if progressed {
				retry.reset()
			}
			if retry.wait(ctx, nil) != nil {
				return nil
			}
		default:
			var gap *GapError
			var rollback *RollbackError
			if !errors.As(err, &gap) && !errors.As(err, &rollback) {
				err = fmt.Errorf("fetch the oplog of shard %s: %w", f.cfg.Shard, err)
			}
			f.mu.Lock()
			f.mu.err = err
			f.mu.Unlock()
			close(f.failed)
			return err
		}
	}
}

// fetch runs one tailer from the newest entry buffered (From when none) and
// appends what it hands on, until an error; progressed tells whether it
// buffered anything.
func (f *Fetcher) fetch(ctx context.Context) (progressed bool, err error) {
	from, have := f.cfg.Store.Last()
	if !have {
		from = oplogbuf.Position(f.cfg.From)
	}
	out := make(chan []bson.Raw, 1)
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	t := &tailer{src: f.cfg.Source, shard: f.cfg.Shard, pollEvery: f.cfg.CommitPollEvery, out: out, notes: f, stopping: func() bool { return false }}
	var tailErr error
	tailDone := make(chan struct{})
	go func() { defer close(tailDone); tailErr = t.run(tctx, from.TS) }()
	defer func() {
		stop()
		for range out {
		}
		<-tailDone
		if err == nil {
			err = tailErr
		}
	}()
	first := true
	for batch := range out {
		if first {
			first = false
			// The first entry must be the one fetched from (the newest buffered, or
			// the replay's first read), of its term: else the source rolled past it
			// or rolled it back.
			e := positionOf(batch[0])
			if e.TS != from.TS || from.Term != 0 && e.Term != 0 && e.Term != from.Term {
				if e.TS == from.TS {
					return progressed, &RollbackError{Shard: f.cfg.Shard, Applied: OpTime(from), Found: OpTime(e)}
				}
				return progressed, lostEntry(ctx, f.cfg.Source, f.cfg.Shard, OpTime(from), e.TS)
			}
			f.setRetrying(retryWork, "")
			if have {
				batch = batch[1:] // buffered already
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := f.awaitRoom(ctx); err != nil {
			return progressed, nil // ctx ended
		}
		if err := f.cfg.Store.Append(batch); err != nil {
			return progressed, err
		}
		progressed = true
		f.fetched.Store(packTS(tsOf(batch[len(batch)-1])))
	}
	return progressed, nil
}

// awaitRoom waits until the buffer is under its limit.
func (f *Fetcher) awaitRoom(ctx context.Context) error {
	for {
		changed := f.cfg.Store.Changed()
		if f.cfg.Store.Size() < f.cfg.Limit {
			f.full.Store(false)
			return nil
		}
		f.full.Store(true)
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func positionOf(raw bson.Raw) oplogbuf.Position {
	term, _ := raw.Lookup("t").AsInt64OK()
	return oplogbuf.Position{TS: tsOf(raw), Term: term}
}

// Release tells the fetcher that the replay's checkpoint is at ts: the buffer's
// segments before it go.
func (f *Fetcher) Release(ts primitive.Timestamp) error {
	return f.cfg.Store.Release(ts)
}

// Err is why Run failed (nil while it runs).
func (f *Fetcher) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.err
}

// Failed is closed when Run fails.
func (f *Fetcher) Failed() <-chan struct{} { return f.failed }

// BufferProgress is how far a shard's fetcher is.
type BufferProgress struct {
	// Bytes is what the buffer holds on disk, Limit what it may hold.
	Bytes, Limit int64
	// Entries are the entries held that the replay has not applied (past its last
	// checkpoint).
	Entries int64
	// Fetched is the newest entry buffered.
	Fetched primitive.Timestamp
	// Full: the buffer is at its limit and fetching waits for the replay.
	Full bool
	// Waiting says why fetching waits, Retrying what it retries ("" when neither).
	Waiting, Retrying string
	Err               error
}

// Snapshot returns the fetcher's progress, without I/O.
func (f *Fetcher) Snapshot() BufferProgress {
	p := BufferProgress{Bytes: f.cfg.Store.Size(), Entries: f.cfg.Store.Pending(), Limit: f.cfg.Limit, Fetched: unpackTS(f.fetched.Load()), Full: f.full.Load()}
	if p.Full {
		p.Waiting = fmt.Sprintf("oplog buffer full (%s): fetching waits for the replay", units.Bytes(p.Limit))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if since := f.mu.commitWait; !since.IsZero() && time.Since(since) >= commitWaitShown && p.Waiting == "" {
		p.Waiting = commitWaitText(p.Fetched, unpackTS(f.committed.Load()), primitive.Timestamp{}, nil)
	}
	for _, msg := range f.mu.retrying {
		if p.Retrying == "" {
			p.Retrying = msg
		}
	}
	p.Err = f.mu.err
	return p
}

// tailNotes, for the fetcher's tailer.
func (f *Fetcher) setCommitWait(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !on:
		f.mu.commitWait = time.Time{}
	case f.mu.commitWait.IsZero():
		f.mu.commitWait = time.Now()
	}
}

func (f *Fetcher) setRetrying(kind int, msg string) {
	f.mu.Lock()
	f.mu.retrying[kind] = msg
	f.mu.Unlock()
}

func (f *Fetcher) sawCommitPoint(ts primitive.Timestamp) { raiseTS(&f.committed, ts) }
func (f *Fetcher) commitWaited()                         {}

// commitWaitShown is false: the fetcher's row says only that it waits for the
// majority (Snapshot), so its tailer never asks the members where they are.
func (f *Fetcher) commitWaitShown() bool                                         { return false }
func (f *Fetcher) setCommitMembers(primitive.Timestamp, []topology.MemberOpTime) {}

// Source is the shard's oplog as the replay reads it: the buffer, from any entry
// it holds on, growing as the fetcher appends; the newest entry (for the lag) is
// the source's. Every entry buffered is majority-committed: its Majority is
// unbounded. Once the buffer is read to its end, a failed fetcher's error ends
// the replay (a gap fails the shard as an unbuffered replay's would).
func (f *Fetcher) Source() Source { return bufferSource{f} }

type bufferSource struct{ f *Fetcher }

func (b bufferSource) Tail(_ context.Context, from primitive.Timestamp) (Cursor, error) {
	return &bufferCursor{f: b.f, r: b.f.cfg.Store.Read(from)}, nil
}

func (b bufferSource) Newest(ctx context.Context) (primitive.Timestamp, error) {
	return b.f.cfg.Source.Newest(ctx)
}

// Oldest is the buffer's oldest entry.
func (b bufferSource) Oldest(context.Context) (primitive.Timestamp, error) {
	first, _ := b.f.cfg.Store.First()
	return first.TS, nil
}

func (b bufferSource) Majority(context.Context) (OpTime, error) {
	return OpTime{TS: unbounded}, nil
}

type bufferCursor struct {
	f *Fetcher
	r *oplogbuf.Reader
}

// bufferAwait is how long Next waits for the fetcher to append before it returns
// an empty batch, as a tailable cursor's getMore does.
const bufferAwait = time.Second

// Next returns at most 1000 entries and about 16 MiB, as a getMore would.
func (c *bufferCursor) Next(ctx context.Context) ([]bson.Raw, error) {
	var timer *time.Timer
	for {
		changed := c.f.cfg.Store.Changed()
		batch, err := c.r.Next(1000, 16<<20)
		if err != nil || len(batch) > 0 {
			return batch, err
		}
		if err := c.f.Err(); err != nil {
			return nil, err
		}
		if timer == nil {
			timer = time.NewTimer(bufferAwait)
			defer timer.Stop()
		}
		select {
		case <-changed:
		case <-c.f.failed:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *bufferCursor) Close(context.Context) error {
	c.r.Close()
	return nil
}

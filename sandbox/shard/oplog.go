package shard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// entry is one oplog document and its ts, kept apart for binary search.
type entry struct {
	ts  primitive.Timestamp
	raw bson.Raw
	// post is an update's document after it, kept in memory only for the secondaries
	// that apply the entry (replset.go); nil for other entries and after a restart.
	post bson.Raw
	// hole, when set, keeps the entry from readers until it is closed (see
	// oplog_holes.go).
	hole *hole
}

// draft is an oplog entry before the oplog gives it a ts.
type draft struct {
	op, ns      string
	ui          []byte // collection UUID, absent when nil (or before FCV 3.6)
	o, o2       bson.Raw
	fromMigrate bool
	session     *stmtSession // the session fields of a retryable write; nil otherwise
	multiOpType int32        // 1: the applyOps of a vectored insert (8.0)
	post        bson.Raw     // an update's document after it (see entry.post)
	// held, when set, hides the entry until it is revealed (revealHeld): a write
	// whose other effects (a prepared transaction's config.transactions record)
	// must be visible no later than its entry, as they commit together on a real
	// server.
	held *hole
}

// stmtSession is what an entry of a retryable write carries: lsid, txnNumber, stmtId
// and the links to the session's previous entry and to a findAndModify image.
type stmtSession struct {
	lsid      bson.Raw
	txnNumber int64
	stmtID    int32 // noStmtID leaves stmtId out
	prev      link  // prevOpTime
	noPrev    bool  // leave prevOpTime out (the image no-op before 4.4)
	// image is "preImage" or "postImage" for a findAndModify's write: needsRetryImage
	// from 5.1, else preImageOpTime / postImageOpTime pointing to the preceding no-op.
	image string
}

const noStmtID = -1

// link is an optime an entry points to: an explicit one (zero: the null optime that
// starts a chain), or the entry just before it in the same append.
type link struct {
	ts        primitive.Timestamp
	term      int64 // ts's term
	preceding bool
}

// oplog is a shard's local.oplog.rs: an in-memory window of entries, capped by bytes,
// mirrored in an append-only file so that a restart finds it again. Entries are
// numbered by a sequence that never restarts within a process; cursors hold positions
// in it and notice when their position has rolled off.
type oplog struct {
	path  string
	forms forms

	mu struct {
		sync.Mutex
		entries []entry
		base    int64 // sequence number of entries[0]
		size    int64 // bytes of the entries in memory
		max     int64
		last    primitive.Timestamp
		wall    time.Time
		// clock is the newest cluster time gossiped to the member (clustertime.go):
		// the next entry comes after it.
		clock primitive.Timestamp
		term  int64 // the replica set term new entries carry (t)
		// secondary refuses the entries of writes: a secondary's come from its
		// primary (appendEntries).
		secondary bool
		holes     holePolicy
		changed   chan struct{} // closed and replaced at every append
		file      *os.File
		dead      int64 // bytes at the head of the file that rolled off
		closed    bool
	}
}

// openOplog loads the oplog file at path (creating it if needed) and keeps at most max
// bytes of it; new entries take the given forms.
func openOplog(path string, max int64, fm forms) (*oplog, error) {
	return openOplogFile(path, max, fm, true)
}

// openOplogFile is openOplog; initiate writes the first entry of an empty oplog, as a
// replica set's first primary does (a new secondary's oplog starts empty instead).
func openOplogFile(path string, max int64, fm forms, initiate bool) (*oplog, error) {
	l := &oplog{path: path, forms: fm}
	l.mu.max = max
	l.mu.changed = make(chan struct{})
	entries, good, err := readOplogFile(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open oplog file: %w", err)
	}
	// A crash can leave half an entry at the end: drop it.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate oplog file %s: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek oplog file %s: %w", path, err)
	}
	l.mu.file = f
	for _, e := range entries {
		l.mu.entries = append(l.mu.entries, e)
		l.mu.size += int64(len(e.raw))
	}
	if n := len(entries); n > 0 {
		l.mu.last = entries[n-1].ts
		wall, _ := entries[n-1].raw.Lookup("wall").DateTimeOK()
		l.mu.wall = time.UnixMilli(wall)
		l.mu.term, _ = entries[n-1].raw.Lookup("t").AsInt64OK()
	}
	if l.mu.term < 1 {
		l.mu.term = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollOffLocked()
	if err := l.compactLocked(); err != nil {
		f.Close()
		return nil, err
	}
	if len(l.mu.entries) == 0 && initiate {
		if err := l.appendLocked([]draft{noop("initiating set")}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
}

// readOplogFile returns the entries of an oplog file and the length of its valid part.
func readOplogFile(path string) ([]entry, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open oplog file: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out []entry
	var good int64
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out, good, nil
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:]))
		if n < 5 || n > 64<<20 {
			return out, good, nil
		}
		doc := make([]byte, n)
		copy(doc, hdr[:])
		if _, err := io.ReadFull(r, doc[4:]); err != nil {
			return out, good, nil
		}
		raw := bson.Raw(doc)
		if raw.Validate() != nil {
			return out, good, nil
		}
		t, i, ok := raw.Lookup("ts").TimestampOK()
		if !ok {
			return out, good, nil
		}
		out = append(out, entry{ts: primitive.Timestamp{T: t, I: i}, raw: raw})
		good += n
	}
}

func noop(msg string) draft {
	o, _ := bson.Marshal(bson.D{{Key: "msg", Value: msg}})
	return draft{op: "n", o: o}
}

// append gives each draft the next ts and makes it visible, in order.
func (l *oplog) append(drafts ...draft) error {
	_, err := l.write(drafts...)
	return err
}

// write is append that also reports the ts of the last entry written.
func (l *oplog) write(drafts ...draft) (primitive.Timestamp, error) {
	if len(drafts) == 0 {
		return primitive.Timestamp{}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return primitive.Timestamp{}, errors.New("the shard's oplog is closed")
	}
	if l.mu.secondary {
		return primitive.Timestamp{}, notWritablePrimary()
	}
	err := l.appendLocked(drafts)
	return l.mu.last, err
}

func (l *oplog) appendLocked(drafts []draft) error {
	var buf []byte
	for _, d := range drafts {
		now := time.Now()
		ts := primitive.Timestamp{T: uint32(now.Unix()), I: 1}
		after := l.mu.last
		if after.Before(l.mu.clock) {
			after = l.mu.clock
		}
		if ts.T <= after.T {
			ts = primitive.Timestamp{T: after.T, I: after.I + 1}
		}
		raw := l.forms.encodeEntry(d, ts, l.mu.last, l.mu.term, now)
		h := d.held
		if h == nil {
			h = l.mu.holes.next(d)
		}
		l.mu.entries = append(l.mu.entries, entry{ts: ts, raw: raw, post: d.post, hole: h})
		l.mu.size += int64(len(raw))
		l.mu.last, l.mu.wall = ts, now
		buf = append(buf, raw...)
	}
	return l.appendedLocked(buf)
}

// appendedLocked wakes the readers of the entries just added, writes their bytes buf
// to the oplog file, and rolls off or compacts what the size leaves out.
func (l *oplog) appendedLocked(buf []byte) error {
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
	if _, err := l.mu.file.Write(buf); err != nil {
		return fmt.Errorf("write oplog file %s: %w", l.path, err)
	}
	l.rollOffLocked()
	if l.mu.dead > l.mu.size && l.mu.dead > 1<<20 {
		return l.compactLocked()
	}
	return nil
}

// rollOffLocked drops the oldest entries until the oplog fits its size (keeping at
// least the newest one, as a capped collection does).
func (l *oplog) rollOffLocked() {
	drop := 0
	for l.mu.size > l.mu.max && drop < len(l.mu.entries)-1 {
		n := int64(len(l.mu.entries[drop].raw))
		l.mu.size -= n
		l.mu.dead += n
		drop++
	}
	if drop == 0 {
		return
	}
	clear(l.mu.entries[:drop])
	l.mu.entries = l.mu.entries[drop:]
	l.mu.base += int64(drop)
}

// compactLocked rewrites the file with only the entries still in the oplog.
func (l *oplog) compactLocked() error {
	if l.mu.dead == 0 {
		return nil
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rewrite oplog file: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, e := range l.mu.entries {
		w.Write(e.raw)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("rewrite oplog file %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		f.Close()
		return fmt.Errorf("replace oplog file %s: %w", l.path, err)
	}
	l.mu.file.Close()
	l.mu.file = f
	l.mu.dead = 0
	return nil
}

// setMax changes the size cap; shrinking rolls old entries off now.
func (l *oplog) setMax(max int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.max = max
	if l.mu.closed {
		return nil
	}
	l.rollOffLocked()
	return l.compactLocked()
}

func (l *oplog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil
	}
	l.mu.closed = true
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
	return l.mu.file.Close()
}

// last is the newest entry's ts and wall time.
func (l *oplog) last() (primitive.Timestamp, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.last, l.mu.wall
}

// stats reports entry count, bytes and the cap.
func (l *oplog) stats() (count int, size, max int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.mu.entries), l.mu.size, l.mu.max
}

// bounds is the sequence range [base, end) currently held.
func (l *oplog) bounds() (base, end int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.base, l.mu.base + int64(len(l.mu.entries))
}

// changed returns a channel closed at the next append (or when the oplog closes).
func (l *oplog) changed() (ch <-chan struct{}, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.changed, l.mu.closed
}

// seek returns the sequence number of the first entry whose ts is >= ts (or > ts when
// strict), by binary search.
func (l *oplog) seek(ts primitive.Timestamp, strict bool) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.mu.entries), func(i int) bool {
		c := compareTS(l.mu.entries[i].ts, ts)
		if strict {
			return c > 0
		}
		return c >= 0
	})
	return l.mu.base + int64(i)
}

func compareTS(a, b primitive.Timestamp) int {
	switch {
	case a.T != b.T:
		if a.T < b.T {
			return -1
		}
		return 1
	case a.I < b.I:
		return -1
	case a.I > b.I:
		return 1
	}
	return 0
}

// visit calls fn on entries from sequence number from, forward (or backward when
// reverse), until fn returns false or the entries run out. It reports the sequence
// number where it stopped (the next one to visit). Going forward, it reports instead
// that the position rolled off when from is gone, or when needPrev is set and the entry
// before from (the last one the caller saw) is gone.
func (l *oplog) visit(from int64, needPrev, reverse bool, fn func(raw bson.Raw) bool) (next int64, rolledOff bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	base, end := l.mu.base, l.mu.base+int64(len(l.mu.entries))
	if reverse {
		s := min(from, end-1)
		for ; s >= base; s-- {
			if l.mu.entries[s-base].hole.open() {
				continue
			}
			if !fn(l.mu.entries[s-base].raw) {
				return s, false
			}
		}
		return s, false
	}
	if from < base || (needPrev && from == base) {
		return from, true
	}
	s := from
	for ; s < end; s++ {
		if l.mu.entries[s-base].hole.open() {
			continue
		}
		if !fn(l.mu.entries[s-base].raw) {
			return s, false
		}
	}
	return s, false
}

// encodeEntry builds the entry document in the field order of the version; preceding
// is the ts of the entry written just before it.
func (f forms) encodeEntry(d draft, ts, preceding primitive.Timestamp, term int64, wall time.Time) bson.Raw {
	idx, b := bsoncore.AppendDocumentStart(nil)
	s := d.session
	if f.legacyEnvelope {
		b = bsoncore.AppendTimestampElement(b, "ts", ts.T, ts.I)
		b = bsoncore.AppendInt64Element(b, "t", term)
		switch {
		case f.randomHash:
			b = bsoncore.AppendInt64Element(b, "h", rand.Int64())
		case f.zeroHash:
			b = bsoncore.AppendInt64Element(b, "h", 0)
		}
		b = bsoncore.AppendInt32Element(b, "v", 2)
		b = f.appendTarget(b, d)
		if d.fromMigrate {
			b = bsoncore.AppendBooleanElement(b, "fromMigrate", true)
		}
		if d.o2 != nil {
			b = bsoncore.AppendDocumentElement(b, "o2", d.o2)
		}
		b = bsoncore.AppendDateTimeElement(b, "wall", wall.UnixMilli())
		if s != nil {
			b = s.appendIDs(b)
			if s.stmtID != noStmtID {
				b = bsoncore.AppendInt32Element(b, "stmtId", s.stmtID)
			}
			b = s.appendLinks(b, f, preceding, term)
		}
		b = bsoncore.AppendDocumentElement(b, "o", d.o)
		b, _ = bsoncore.AppendDocumentEnd(b, idx)
		return b
	}
	if s != nil {
		b = s.appendIDs(b)
	}
	b = f.appendTarget(b, d)
	b = bsoncore.AppendDocumentElement(b, "o", d.o)
	if d.o2 != nil {
		b = bsoncore.AppendDocumentElement(b, "o2", d.o2)
	}
	if d.fromMigrate {
		b = bsoncore.AppendBooleanElement(b, "fromMigrate", true)
	}
	if s != nil && s.stmtID != noStmtID {
		b = bsoncore.AppendInt32Element(b, "stmtId", s.stmtID)
	}
	b = bsoncore.AppendTimestampElement(b, "ts", ts.T, ts.I)
	b = bsoncore.AppendInt64Element(b, "t", term)
	if f.wallBeforeV {
		b = bsoncore.AppendDateTimeElement(b, "wall", wall.UnixMilli())
		b = bsoncore.AppendInt64Element(b, "v", 2)
	} else {
		b = bsoncore.AppendInt64Element(b, "v", 2)
		b = bsoncore.AppendDateTimeElement(b, "wall", wall.UnixMilli())
	}
	if s != nil {
		b = s.appendLinks(b, f, preceding, term)
	}
	if d.multiOpType != 0 {
		b = bsoncore.AppendInt32Element(b, "multiOpType", d.multiOpType)
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// appendTarget appends op, ns and ui.
func (f forms) appendTarget(b []byte, d draft) []byte {
	b = bsoncore.AppendStringElement(b, "op", d.op)
	b = bsoncore.AppendStringElement(b, "ns", d.ns)
	if d.ui != nil && f.uuids {
		b = bsoncore.AppendBinaryElement(b, "ui", 4, d.ui)
	}
	return b
}

func (s *stmtSession) appendIDs(b []byte) []byte {
	b = bsoncore.AppendDocumentElement(b, "lsid", s.lsid)
	return bsoncore.AppendInt64Element(b, "txnNumber", s.txnNumber)
}

// appendLinks appends prevOpTime and the image fields; term is the entry's.
func (s *stmtSession) appendLinks(b []byte, f forms, preceding primitive.Timestamp, term int64) []byte {
	if !s.noPrev {
		ts, t := s.prev.resolve(preceding, term)
		b = appendOpTime(b, "prevOpTime", ts, t)
	}
	switch {
	case s.image == "":
	case f.imageCollection:
		b = bsoncore.AppendStringElement(b, "needsRetryImage", s.image)
	default:
		b = appendOpTime(b, s.image+"OpTime", preceding, term)
	}
	return b
}

// resolve is the optime the link points to: the entry just before (preceding, of
// the term of the append) or its own.
func (k link) resolve(preceding primitive.Timestamp, term int64) (primitive.Timestamp, int64) {
	if k.preceding {
		return preceding, term
	}
	return k.ts, k.term
}

// appendOpTime appends {ts, t}; the zero ts is the null optime {ts: Timestamp(0, 0), t: -1}.
func appendOpTime(b []byte, key string, ts primitive.Timestamp, term int64) []byte {
	var i int32
	i, b = bsoncore.AppendDocumentElementStart(b, key)
	b = bsoncore.AppendTimestampElement(b, "ts", ts.T, ts.I)
	if ts == (primitive.Timestamp{}) {
		term = -1
	}
	b = bsoncore.AppendInt64Element(b, "t", term)
	b, _ = bsoncore.AppendDocumentEnd(b, i)
	return b
}

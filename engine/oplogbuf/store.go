// Package oplogbuf keeps one shard's fetched oplog on local disk until the replay
// has applied it: segment files of checksummed records, appended in oplog order,
// read from any entry on, and deleted once the replay's checkpoint has passed them.
//
// A record is a 4-byte little-endian length, the CRC32C (Castagnoli) of the
// payload, and the payload: one oplog entry as raw BSON. A segment is named by its
// sequence number (%016x.oplog); a new one starts once the current one holds
// SegmentBytes. Open checks every record: the first one that is torn (a crash in
// the middle of an append) or fails its checksum ends the buffer there; it and
// everything after it are removed, never read.
package oplogbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Position is one entry's place in the oplog: its ts and term (0 when it has none).
type Position struct {
	TS   primitive.Timestamp
	Term int64
}

// ErrCorrupt: a record read back fails its checksum or its framing.
var ErrCorrupt = errors.New("oplog buffer record is corrupt")

const (
	headerBytes = 8
	// maxRecordBytes bounds one entry: a 16 MiB document plus the entry's own fields.
	maxRecordBytes = 16<<20 + 16<<10
	suffix         = ".oplog"
	// DefaultSegmentBytes is the size a segment grows to before the next one starts.
	DefaultSegmentBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Store is one shard's buffer. Append is called by one goroutine (the fetcher);
// readers and Release may run beside it.
type Store struct {
	dir          string
	segmentBytes int64

	mu      sync.Mutex
	segs    []*segment // oldest first
	size    int64      // bytes of every segment
	entries int64      // entries of every segment
	// applied counts the first segment's entries at or before the last Release's
	// ts, read from its start up to off: entries-applied.n are not applied yet.
	applied appliedCount
	w       *os.File // the last segment, open for appending (nil: none yet)
	changed chan struct{}
	closed  bool
}

// segment is one file: what Open found or Append wrote (size is what readers may
// read: complete records only).
type segment struct {
	seq         uint64
	first, last Position
	size        int64
	entries     int64
}

// appliedCount is how many of segment seq's entries, up to byte off, are applied.
type appliedCount struct {
	seq    uint64
	off, n int64
}

func (g *segment) path(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%016x%s", g.seq, suffix))
}

// Options tune a Store.
type Options struct {
	// SegmentBytes: zero means DefaultSegmentBytes.
	SegmentBytes int64
}

// Opened says what Open found.
type Opened struct {
	// Dropped is the bytes removed after the last good record (a torn or corrupt
	// tail); DroppedAt the position of the last good record before them.
	Dropped   int64
	DroppedAt Position
}

// Open opens (creating it when missing) the buffer in dir, checks every record and
// removes a torn or corrupt tail.
func Open(dir string, opts Options) (*Store, Opened, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, Opened{}, fmt.Errorf("create the oplog buffer folder: %w", err)
	}
	s := &Store{dir: dir, segmentBytes: opts.SegmentBytes, changed: make(chan struct{})}
	seqs, err := listSegments(dir)
	if err != nil {
		return nil, Opened{}, err
	}
	var opened Opened
	var last Position
	for i, seq := range seqs {
		g := &segment{seq: seq}
		good, bad, err := scan(g.path(dir), last, g)
		if err != nil {
			return nil, Opened{}, err
		}
		if bad == 0 && good > 0 {
			s.segs = append(s.segs, g)
			s.size += good
			s.entries += g.entries
			last = g.last
			continue
		}
		// A bad record (or an empty segment): the buffer ends before it.
		opened.Dropped, opened.DroppedAt = bad, last
		if good > 0 {
			opened.DroppedAt = g.last
			if err := os.Truncate(g.path(dir), good); err != nil {
				return nil, Opened{}, fmt.Errorf("cut the oplog buffer's corrupt tail: %w", err)
			}
			s.segs = append(s.segs, g)
			s.size += good
			s.entries += g.entries
		} else if err := os.Remove(g.path(dir)); err != nil {
			return nil, Opened{}, fmt.Errorf("remove the oplog buffer's corrupt tail: %w", err)
		}
		for _, later := range seqs[i+1:] {
			p := (&segment{seq: later}).path(dir)
			if st, err := os.Stat(p); err == nil {
				opened.Dropped += st.Size()
			}
			if err := os.Remove(p); err != nil {
				return nil, Opened{}, fmt.Errorf("remove the oplog buffer's corrupt tail: %w", err)
			}
		}
		break
	}
	return s, opened, nil
}

func listSegments(dir string) ([]uint64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list the oplog buffer: %w", err)
	}
	var seqs []uint64
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), suffix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// scan reads a segment's records, filling g's first and last; good is the bytes
// of the complete, valid records (each after prev), bad what follows them.
func scan(path string, prev Position, g *segment) (good, bad int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read the oplog buffer: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("read the oplog buffer: %w", err)
	}
	r := &recordReader{f: f, end: st.Size()}
	for {
		raw, err := r.next()
		if err == io.EOF {
			g.size = r.off
			return r.off, 0, nil
		}
		if err == nil {
			var pos Position
			pos, err = positionOf(raw)
			if err == nil && !prev.TS.IsZero() && !prev.TS.Before(pos.TS) {
				err = fmt.Errorf("%w: entry %v is not after %v", ErrCorrupt, pos.TS, prev.TS)
			}
			if err == nil {
				if g.first.TS.IsZero() {
					g.first = pos
				}
				g.last, prev = pos, pos
				g.entries++
				r.off = r.next0
				continue
			}
		}
		if !errors.Is(err, ErrCorrupt) {
			return 0, 0, err
		}
		g.size = r.off
		return r.off, st.Size() - r.off, nil
	}
}

// positionOf reads an entry's ts and term.
func positionOf(raw bson.Raw) (Position, error) {
	t, i, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return Position{}, fmt.Errorf("%w: an entry has no timestamp ts", ErrCorrupt)
	}
	term, _ := raw.Lookup("t").AsInt64OK()
	return Position{TS: primitive.Timestamp{T: t, I: i}, Term: term}, nil
}

// recordReader reads records of one file from off up to end, through a read-ahead
// buffer.
type recordReader struct {
	f     *os.File
	off   int64 // the next record
	next0 int64 // the record after the one next returned
	end   int64
	buf   []byte // the file's bytes from bufAt
	bufAt int64
}

// readAhead is how much a reader reads at once.
const readAhead = 1 << 20

// bytes returns the n bytes at off, reading them when the buffer lacks them.
func (r *recordReader) bytes(off, n int64) ([]byte, error) {
	if off >= r.bufAt && off+n <= r.bufAt+int64(len(r.buf)) {
		return r.buf[off-r.bufAt : off-r.bufAt+n], nil
	}
	size := min(max(n, readAhead), r.end-off)
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = r.buf[:0]
		return nil, fmt.Errorf("read the oplog buffer: %w", err)
	}
	r.bufAt = off
	return r.buf[:n], nil
}

// next returns a copy of the record at off (without moving off: the caller does,
// once it accepts it, to next0); io.EOF exactly at end, ErrCorrupt for a torn or
// bad one.
func (r *recordReader) next() (bson.Raw, error) {
	if r.off == r.end {
		return nil, io.EOF
	}
	if r.end-r.off < headerBytes {
		return nil, fmt.Errorf("%w: a torn record header at byte %d", ErrCorrupt, r.off)
	}
	hdr, err := r.bytes(r.off, headerBytes)
	if err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(hdr[:4]))
	sum := binary.LittleEndian.Uint32(hdr[4:])
	if n < 5 || n > maxRecordBytes || r.off+headerBytes+n > r.end {
		return nil, fmt.Errorf("%w: a torn record at byte %d", ErrCorrupt, r.off)
	}
	payload, err := r.bytes(r.off+headerBytes, n)
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(payload, castagnoli) != sum || int64(binary.LittleEndian.Uint32(payload)) != n {
		return nil, fmt.Errorf("%w: the record at byte %d fails its checksum", ErrCorrupt, r.off)
	}
	r.next0 = r.off + headerBytes + n
	return bson.Raw(slices.Clone(payload)), nil
}

// Append writes entries, in oplog order and each after the last one held, as
// records, and makes them readable.
func (s *Store) Append(entries []bson.Raw) error {
	if len(entries) == 0 {
		return nil
	}
	s.mu.Lock()
	last, _ := s.lastLocked()
	w, closed := s.w, s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("the oplog buffer is closed")
	}
	var buf []byte
	var first Position
	for i, raw := range entries {
		pos, err := positionOf(raw)
		if err != nil {
			return err
		}
		if !last.TS.IsZero() && !last.TS.Before(pos.TS) {
			return fmt.Errorf("oplog buffer: entry Timestamp(%d, %d) comes after Timestamp(%d, %d): entries must be appended in oplog order",
				pos.TS.T, pos.TS.I, last.TS.T, last.TS.I)
		}
		if i == 0 {
			first = pos
		}
		last = pos
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(raw)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(raw, castagnoli))
		buf = append(buf, raw...)
	}
	s.mu.Lock()
	tail := s.tailLocked()
	s.mu.Unlock()
	if w == nil || tail == nil || tail.size >= s.segmentBytes {
		var err error
		if w, tail, err = s.startSegment(first); err != nil {
			return err
		}
	}
	if _, err := w.Write(buf); err != nil {
		// What was written of buf is past tail.size: never read, cut at the next Open.
		return fmt.Errorf("write the oplog buffer: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tail.first.TS.IsZero() {
		tail.first = first
	}
	tail.last = last
	tail.size += int64(len(buf))
	tail.entries += int64(len(entries))
	s.size += int64(len(buf))
	s.entries += int64(len(entries))
	s.notifyLocked()
	return nil
}

// startSegment closes the current segment and starts the next one.
func (s *Store) startSegment(first Position) (*os.File, *segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		if err := s.w.Sync(); err != nil {
			return nil, nil, fmt.Errorf("write the oplog buffer: %w", err)
		}
		s.w.Close()
		s.w = nil
	}
	g := &segment{seq: 1}
	if t := s.tailLocked(); t != nil {
		g.seq = t.seq + 1
		if t.size < s.segmentBytes {
			// A segment Open found, appended to again.
			f, err := os.OpenFile(t.path(s.dir), os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return nil, nil, fmt.Errorf("open the oplog buffer: %w", err)
			}
			s.w = f
			return f, t, nil
		}
	}
	f, err := os.OpenFile(g.path(s.dir), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("create an oplog buffer segment: %w", err)
	}
	s.w = f
	s.segs = append(s.segs, g)
	return f, g, nil
}

func (s *Store) tailLocked() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

func (s *Store) lastLocked() (Position, bool) {
	for i := len(s.segs) - 1; i >= 0; i-- {
		if !s.segs[i].last.TS.IsZero() {
			return s.segs[i].last, true
		}
	}
	return Position{}, false
}

func (s *Store) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed is closed at the next change (an append, a release or a reset).
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// First and Last are the oldest and newest entries held (ok false: none).
func (s *Store) First() (Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.segs {
		if !g.first.TS.IsZero() {
			return g.first, true
		}
	}
	return Position{}, false
}

func (s *Store) Last() (Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLocked()
}

// Size is the bytes the buffer holds on disk.
func (s *Store) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Pending is the number of entries held after the ts of the last Release (all
// of them before the first): those the replay has not applied yet.
func (s *Store) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) > 0 && s.applied.seq == s.segs[0].seq {
		return s.entries - s.applied.n
	}
	return s.entries
}

// Find reads the entry at ts (ok false when the buffer holds none there).
func (s *Store) Find(ts primitive.Timestamp) (pos Position, ok bool, err error) {
	c := s.Read(ts)
	defer c.Close()
	batch, err := c.Next(1, maxRecordBytes)
	if err != nil || len(batch) == 0 {
		return Position{}, false, err
	}
	pos, err = positionOf(batch[0])
	return pos, err == nil && pos.TS == ts, err
}

// Release deletes the segments wholly before ts: the replay's checkpoint is at ts,
// and the entry there (which a resume reads again) stays. The entries up to ts
// stop counting as Pending.
func (s *Store) Release(ts primitive.Timestamp) error {
	if err := s.release(ts); err != nil {
		return err
	}
	return s.countApplied(ts)
}

func (s *Store) release(ts primitive.Timestamp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n+1 < len(s.segs) && !s.segs[n+1].first.TS.IsZero() && !ts.Before(s.segs[n+1].first.TS) {
		n++
	}
	for _, g := range s.segs[:n] {
		if err := os.Remove(g.path(s.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove an applied oplog buffer segment: %w", err)
		}
		s.size -= g.size
		s.entries -= g.entries
	}
	if n > 0 {
		s.segs = slices.Delete(s.segs, 0, n)
		s.notifyLocked()
	}
	return nil
}

// Reset deletes everything the buffer holds.
func (s *Store) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	for _, g := range s.segs {
		if err := os.Remove(g.path(s.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clear the oplog buffer: %w", err)
		}
	}
	s.segs, s.size, s.entries, s.applied = nil, 0, 0, appliedCount{}
	s.notifyLocked()
	return nil
}

// countApplied reads the first segment's entries from where the last count
// stopped, up to ts (outside the lock: the replay has just read them, and
// appends go on meanwhile).
func (s *Store) countApplied(ts primitive.Timestamp) error {
	s.mu.Lock()
	if len(s.segs) == 0 {
		s.mu.Unlock()
		return nil
	}
	g := s.segs[0]
	if s.applied.seq != g.seq {
		s.applied = appliedCount{seq: g.seq}
	}
	from, path, end := s.applied, g.path(s.dir), g.size
	s.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("count the oplog buffer's applied entries: %w", err)
	}
	defer f.Close()
	r := &recordReader{f: f, off: from.off, end: end}
	var n int64
	for {
		raw, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("count the oplog buffer's applied entries: %w", err)
		}
		pos, err := positionOf(raw)
		if err != nil {
			return err
		}
		if ts.Before(pos.TS) {
			break
		}
		r.off = r.next0
		n++
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied == from { // no Reset or other Release meanwhile
		s.applied.off, s.applied.n = r.off, from.n+n
	}
	return nil
}

// Close closes the file being appended to; readers still open keep working.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	return err
}

// Remove deletes the buffer's folder and all it holds (the shard's buffer is no
// longer needed: the migration ended or the shard starts over).
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the oplog buffer: %w", err)
	}
	return nil
}

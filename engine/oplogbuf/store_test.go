package oplogbuf

import (
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

func ts(t uint32) primitive.Timestamp { return primitive.Timestamp{T: t, I: 1} }

func entry(t uint32, term int64) bson.Raw {
	raw, err := bson.Marshal(bson.D{{Key: "ts", Value: ts(t)}, {Key: "t", Value: term}, {Key: "op", Value: "n"}, {Key: "o", Value: bson.D{{Key: "pad", Value: "0123456789"}}}})
	if err != nil {
		panic(err)
	}
	return raw
}

// appendEach appends entries one batch of three at a time (a segment fills only
// between appends).
func appendEach(t *testing.T, s *Store, from, to uint32) {
	t.Helper()
	for i := from; i <= to; i += 3 {
		if err := s.Append(entries(i, min(i+2, to))); err != nil {
			t.Fatal(err)
		}
	}
}

func entries(from, to uint32) []bson.Raw {
	var out []bson.Raw
	for i := from; i <= to; i++ {
		out = append(out, entry(i, 1))
	}
	return out
}

func open(t *testing.T, dir string, segBytes int64) (*Store, Opened) {
	t.Helper()
	s, opened, err := Open(dir, Options{SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, opened
}

// readAll reads every entry readable now from from on and returns their ts.
func readAll(t *testing.T, s *Store, from uint32) []uint32 {
	t.Helper()
	c := s.Read(ts(from))
	defer c.Close()
	var out []uint32
	for {
		batch, err := c.Next(7, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return out
		}
		for _, raw := range batch {
			pos, err := positionOf(raw)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pos.TS.T)
		}
	}
}

func span(from, to uint32) []uint32 {
	var out []uint32
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equal(t *testing.T, what string, got, want []uint32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

func TestAppendReadBackAcrossSegments(t *testing.T) {
	s, _ := open(t, t.TempDir(), 300) // a few entries per segment
	appendEach(t, s, 1, 50)
	if len(s.segs) < 3 {
		t.Fatalf("%d segments: the test needs several", len(s.segs))
	}
	equal(t, "from the start", readAll(t, s, 0), span(1, 50))
	equal(t, "from an entry in the middle", readAll(t, s, 27), span(27, 50))
	first, _ := s.First()
	last, _ := s.Last()
	if first.TS != ts(1) || last.TS != ts(50) || last.Term != 1 {
		t.Fatalf("first %v last %v", first, last)
	}
	if pos, ok, err := s.Find(ts(33)); err != nil || !ok || pos.TS != ts(33) {
		t.Fatalf("Find(33) = %v %v %v", pos, ok, err)
	}
	if _, ok, _ := s.Find(primitive.Timestamp{T: 33, I: 2}); ok {
		t.Fatal("Find found an entry the buffer does not hold")
	}
}

func TestReaderFollowsAppends(t *testing.T) {
	s, _ := open(t, t.TempDir(), 300)
	if err := s.Append(entries(1, 5)); err != nil {
		t.Fatal(err)
	}
	c := s.Read(ts(3))
	defer c.Close()
	var got []uint32
	read := func() {
		for {
			batch, err := c.Next(100, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(batch) == 0 {
				return
			}
			for _, raw := range batch {
				p, _ := positionOf(raw)
				got = append(got, p.TS.T)
			}
		}
	}
	read()
	changed := s.Changed()
	if err := s.Append(entries(6, 30)); err != nil {
		t.Fatal(err)
	}
	<-changed
	read()
	equal(t, "a reader that waited for appends", got, span(3, 30))
}

func TestAppendRefusesOutOfOrder(t *testing.T) {
	s, _ := open(t, t.TempDir(), 0)
	if err := s.Append(entries(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(entries(5, 6)); err == nil {
		t.Fatal("an entry at the last ts was appended again")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 300)
	appendEach(t, s, 1, 40)
	size := s.Size()
	s.Close()
	s2, opened := open(t, dir, 300)
	if opened.Dropped != 0 || s2.Size() != size {
		t.Fatalf("reopened: dropped %d, size %d (was %d)", opened.Dropped, s2.Size(), size)
	}
	if err := s2.Append(entries(41, 45)); err != nil {
		t.Fatal(err)
	}
	equal(t, "after a reopen and more appends", readAll(t, s2, 0), span(1, 45))
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	seqs, err := listSegments(dir)
	if err != nil || len(seqs) == 0 {
		t.Fatal(err, seqs)
	}
	return (&segment{seq: seqs[len(seqs)-1]}).path(dir)
}

func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 1<<20)
	if err := s.Append(entries(1, 20)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash in the middle of the append of entry 21: its header and part of it.
	f, err := os.OpenFile(lastSegment(t, dir), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := entry(21, 1)
	torn := append([]byte{byte(len(rec)), 0, 0, 0, 1, 2, 3, 4}, rec[:len(rec)/2]...)
	if _, err := f.Write(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s2, opened := open(t, dir, 1<<20)
	if opened.Dropped != int64(len(torn)) || opened.DroppedAt.TS != ts(20) {
		t.Fatalf("opened %+v: want %d bytes dropped after entry 20", opened, len(torn))
	}
	equal(t, "after the torn tail", readAll(t, s2, 0), span(1, 20))
	if err := s2.Append(entries(21, 22)); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3, opened := open(t, dir, 1<<20)
	if opened.Dropped != 0 {
		t.Fatalf("the appends after the cut left %d bad bytes", opened.Dropped)
	}
	equal(t, "appended after the cut", readAll(t, s3, 0), span(1, 22))
}

func TestChecksumFailureCutsFromThere(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 300)
	appendEach(t, s, 1, 40)
	segs := len(s.segs)
	// Flip one byte of the payload of the second record of the second segment.
	g := s.segs[1]
	s.Close()
	data, err := os.ReadFile(g.path(dir))
	if err != nil {
		t.Fatal(err)
	}
	recLen := int(headerBytes + len(entry(1, 1)))
	data[recLen+headerBytes+20] ^= 0xff
	if err := os.WriteFile(g.path(dir), data, 0o600); err != nil {
		t.Fatal(err)
	}

	s2, opened := open(t, dir, 300)
	if opened.Dropped == 0 {
		t.Fatal("a record that fails its checksum was kept")
	}
	got := readAll(t, s2, 0)
	want := span(1, g.first.TS.T) // up to the first record of the damaged segment
	equal(t, "after the corrupt record", got, want)
	if len(s2.segs) != 2 || segs <= 2 {
		t.Fatalf("%d segments left of %d: the ones after the damage must go", len(s2.segs), segs)
	}
	seqs, _ := listSegments(dir)
	if len(seqs) != 2 {
		t.Fatalf("%d segment files left, want 2", len(seqs))
	}
}

func TestReadBackDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 1<<20)
	if err := s.Append(entries(1, 5)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(lastSegment(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	data[headerBytes+10] ^= 0xff
	if err := os.WriteFile(lastSegment(t, dir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	c := s.Read(ts(0))
	defer c.Close()
	if batch, err := c.Next(10, 1<<20); err == nil {
		t.Fatalf("read %d entries of a corrupt segment without an error", len(batch))
	}
}

func TestReleaseDeletesSegmentsBeforeTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 300)
	appendEach(t, s, 1, 40)
	before := len(s.segs)
	second := s.segs[1].first.TS.T
	// The checkpoint one before the second segment's first entry: nothing goes.
	if err := s.Release(ts(second - 1)); err != nil {
		t.Fatal(err)
	}
	if len(s.segs) != before {
		t.Fatalf("released %d segments holding the checkpoint's entry", before-len(s.segs))
	}
	size := s.Size()
	// At its first entry: the first segment goes, the checkpoint's entry stays.
	if err := s.Release(ts(second)); err != nil {
		t.Fatal(err)
	}
	if len(s.segs) != before-1 || s.Size() >= size {
		t.Fatalf("%d segments (of %d), size %d (was %d)", len(s.segs), before, s.Size(), size)
	}
	equal(t, "from the checkpoint", readAll(t, s, second), span(second, 40))
	if first, _ := s.First(); first.TS != ts(second) {
		t.Fatalf("first %v, want %d", first.TS, second)
	}
	// Past everything: the last segment (being appended to) stays.
	if err := s.Release(ts(100)); err != nil {
		t.Fatal(err)
	}
	if len(s.segs) != 1 {
		t.Fatalf("%d segments left, want the last", len(s.segs))
	}
	seqs, _ := listSegments(dir)
	if len(seqs) != 1 {
		t.Fatalf("%d segment files on disk, want 1", len(seqs))
	}
	if err := s.Append(entries(41, 42)); err != nil {
		t.Fatal(err)
	}
}

func TestResetClears(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 300)
	appendEach(t, s, 1, 40)
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Last(); ok || s.Size() != 0 {
		t.Fatal("a reset buffer still holds entries")
	}
	if err := s.Append(entries(5, 6)); err != nil {
		t.Fatal(err)
	}
	equal(t, "after a reset", readAll(t, s, 0), span(5, 6))
	files, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(files) != 1 {
		t.Fatalf("%d files after a reset and an append", len(files))
	}
}

// TestPendingCountsTheEntriesAfterTheCheckpoint: the entries not yet applied are
// those after the last Release's ts, exactly, whether the checkpoint sits inside a
// segment or at its start, and after a reopen (which counts them from the files).
func TestPendingCountsTheEntriesAfterTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 300)
	appendEach(t, s, 1, 40)
	if got := s.Pending(); got != 40 {
		t.Fatalf("pending %d before any checkpoint, want all 40", got)
	}
	second := s.segs[1].first.TS.T
	for _, at := range []uint32{3, second - 1, second, second + 2, 39, 40, 100} {
		if err := s.Release(ts(at)); err != nil {
			t.Fatal(err)
		}
		want := int64(40 - min(at, 40))
		if got := s.Pending(); got != want {
			t.Fatalf("pending %d after the checkpoint at %d, want %d", got, at, want)
		}
	}
	if err := s.Append(entries(41, 45)); err != nil {
		t.Fatal(err)
	}
	if got := s.Pending(); got != 5 {
		t.Fatalf("pending %d after 5 more appends, want 5", got)
	}
	s.Close()
	s2, _ := open(t, dir, 300)
	if err := s2.Release(ts(42)); err != nil {
		t.Fatal(err)
	}
	if got := s2.Pending(); got != 3 {
		t.Fatalf("reopened, pending %d after the checkpoint at 42, want 3", got)
	}
	if err := s2.Reset(); err != nil {
		t.Fatal(err)
	}
	if got := s2.Pending(); got != 0 {
		t.Fatalf("pending %d after a reset", got)
	}
}

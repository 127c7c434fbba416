package bench

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Figure 16 says a copy outlasted the oplog window only when it took longer than
// every window read during it, and every shard's oplog lost the copy's start (its
// oldest entry newer than the start): a window measured short on one read, or an
// oplog that still held T0, is not enough.
func TestWindowWatchOutlasted(t *testing.T) {
	start := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	ts := func(at time.Time) primitive.Timestamp { return primitive.Timestamp{T: uint32(at.Unix())} }
	edges := func(oldest, newest time.Time) oplogEdges {
		return oplogEdges{at: newest, first: ts(oldest), last: ts(newest)}
	}
	w := newWindowWatch(start)
	// Early in the copy both oplogs still hold entries from before its start.
	w.add("a", edges(start.Add(-60*time.Second), start.Add(10*time.Second)))
	w.add("b", edges(start.Add(-140*time.Second), start.Add(10*time.Second)))
	if got := w.rolledPast(); got != 0 {
		t.Fatalf("rolled past the start: %d shards, want 0", got)
	}
	if w.outlasted(5*time.Minute, 2) {
		t.Fatal("outlasted with no oplog rolled past the copy's start")
	}
	// a's oplog rolls past the start; b's oldest entry is the start's second: it may
	// still hold T0's entries.
	w.add("a", edges(start.Add(time.Second), start.Add(70*time.Second)))
	w.add("b", edges(start, start.Add(70*time.Second)))
	if got := w.rolledPast(); got != 1 {
		t.Fatalf("rolled past the start: %d shards, want 1", got)
	}
	if w.outlasted(5*time.Minute, 2) {
		t.Fatal("outlasted while shard b's oplog may still hold the copy's start")
	}
	w.add("b", edges(start.Add(5*time.Second), start.Add(100*time.Second)))
	if got, want := w.atEnd(), 95*time.Second; got != want {
		t.Fatalf("window at the end %v, want %v", got, want)
	}
	if w.outlasted(90*time.Second, 2) {
		t.Fatal("a copy of 90 s outlasted a window of 95 s")
	}
	if !w.outlasted(100*time.Second, 2) {
		t.Fatalf("a copy of 100 s did not outlast windows of at most %v with both oplogs rolled past its start", w.atEnd())
	}
	// Earlier windows longer than the copy (the writes slowed meanwhile) are shown,
	// not judged: the source lost the copy's start all the same.
	if got, want := w.longest(), 150*time.Second; got != want {
		t.Fatalf("longest window %v, want %v", got, want)
	}
	if w.outlasted(100*time.Second, 3) {
		t.Fatal("outlasted with a third shard never read")
	}
}

package replay

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// reorderingDest is a fakeDest that applies each bulk write's documents last to
// first, each document's writes in their order: the freedom the Destination
// contract leaves a server (an unordered bulk write may apply its writes in any
// order; one that names a document twice is ordered, which keeps them in order).
type reorderingDest struct {
	*fakeDest
}

func (d *reorderingDest) Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	var docs []string
	byDoc := map[string][]oplog.Write{}
	for _, w := range writes {
		k := docKey(w.Filter)
		if _, ok := byDoc[k]; !ok {
			docs = append(docs, k)
		}
		byDoc[k] = append(byDoc[k], w)
	}
	for i := len(docs) - 1; i >= 0; i-- {
		if _, err := d.fakeDest.Write(ctx, ns, byDoc[docs[i]]); err != nil {
			return 0, err
		}
	}
	return len(writes), nil
}

func TestEachDocumentsWritesKeepTheirOrderUnderARandomMix(t *testing.T) {
	// 600 entries on 5 documents, inserts, updates and deletes drawn at random (many
	// writes to few _ids), two appliers that cut large batches: nearly every batch
	// touches a document several times, with deletes and re-inserts between its
	// updates. Each bulk write's documents are applied in reverse.
	const ids, n = 5, 600
	r := rand.New(rand.NewPCG(17, 17))
	entries := []bson.Raw{noopOp(at(1))}
	live := map[int]bool{}
	want := map[int][]int32{} // the v after each write of each document, -1 deleted
	for ts := uint32(2); ts < n+2; ts++ {
		id := r.IntN(ids)
		switch {
		case !live[id]:
			entries = append(entries, insertOp(at(ts), ns, doc(id, int(ts))))
			live[id] = true
			want[id] = append(want[id], int32(ts))
		case r.IntN(10) < 7:
			entries = append(entries, setOp(at(ts), ns, int32(id), bson.D{{Key: "v", Value: int32(ts)}}))
			want[id] = append(want[id], int32(ts))
		default:
			entries = append(entries, deleteOp(at(ts), ns, int32(id)))
			live[id] = false
			want[id] = append(want[id], -1)
		}
	}
	src := newFakeOplog(entries...)
	src.finite = true
	src.batch = 100
	inner := newFakeDest()
	dest := &reorderingDest{fakeDest: inner}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 2, Linger: time.Hour,
		DDL: startDDL(t, []string{"s0"}, &fakeExec{dest: inner})})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[int][]int32{}
	for _, w := range inner.writes() {
		got[idInt(w.id)] = append(got[idInt(w.id)], w.v)
	}
	for id := range ids {
		for i := range max(len(got[id]), len(want[id])) {
			if i >= len(got[id]) || i >= len(want[id]) || got[id][i] != want[id][i] {
				t.Errorf("document %d: write %d of %d applied differs from the oplog's (%d writes): applied %v..., want %v...",
					id, i+1, len(got[id]), len(want[id]), got[id][i:min(i+4, len(got[id]))], want[id][i:min(i+4, len(want[id]))])
				break
			}
		}
	}
	if p := s.Snapshot(); p.Applied != at(n+1) {
		t.Errorf("resume point %v, want %v", p.Applied, at(n+1))
	}
}

func TestAFailedWriteIsTheOneNamedAndTheResumePointStaysBeforeWhatWasNotApplied(t *testing.T) {
	// One batch: A inserted (2), B inserted (3), A deleted (4), C inserted (5), which
	// the destination refuses. A's delete goes in a second round, after C's insert
	// failed in the first: it was never sent, so the first answer may only cover
	// entries 2 and 3; the shard must then send it and fail naming entry 5, with
	// its resume point at 4.
	entries := []bson.Raw{
		noopOp(at(1)),
		insertOp(at(2), ns, doc(1, 2)),
		insertOp(at(3), ns, doc(2, 3)),
		deleteOp(at(4), ns, int32(1)),
		insertOp(at(5), ns, doc(3, 5)),
	}
	src := newFakeOplog(entries...)
	src.finite = true
	src.batch = 10
	dest := newFakeDest()
	dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
		if w.Filter.Lookup("_id").Int32() == 3 {
			return writeError(2) // BadValue: not transient, not an idempotency error
		}
		return nil
	}
	cps := &fakeCheckpoints{}
	// One batch in flight at a time: the batch is then written in rounds (with
	// pipelining, A's delete would wait for a later batch, after the failure).
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), Appliers: 1, Pipeline: 1, Linger: time.Hour, CheckpointEvery: time.Millisecond})
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Timestamp(5, 1)") {
		t.Fatalf("error %v, want the refused insert's entry (Timestamp(5, 1)) named", err)
	}
	// What each entry leaves in the destination's log, once applied.
	applied := map[uint32]bool{}
	for _, w := range dest.writes() {
		switch {
		case w.v >= 0:
			applied[uint32(w.v)] = true // the inserts: v is the entry's ts
		case idInt(w.id) == 1:
			applied[4] = true // A's delete
		}
	}
	for _, cp := range append(cps.all(), s.Snapshot().Applied) {
		for ts := uint32(2); ts <= cp.T; ts++ {
			if !applied[ts] {
				t.Fatalf("resume point %v passes entry %d, which was not applied (applied: %v)", cp, ts, dest.writes())
			}
		}
	}
	if got := s.Snapshot().Applied; got != at(4) {
		t.Errorf("resume point %v, want %v (A's delete applied, C's insert refused)", got, at(4))
	}
}

func TestARoundsDeletesGoBesideItsOtherWritesAndTheResumePointWaitsForBoth(t *testing.T) {
	// One batch of three documents: an insert, a delete, an insert. The destination
	// holds every delete until released: the inserts must be applied meanwhile (two
	// bulk writes in flight at once), and the resume point stay before the delete.
	entries := []bson.Raw{
		noopOp(at(1)),
		insertOp(at(2), ns, doc(1, 2)),
		deleteOp(at(3), ns, int32(2)),
		insertOp(at(4), ns, doc(3, 4)),
	}
	src := newFakeOplog(entries...)
	src.finite = true
	src.batch = 10
	dest := newFakeDest()
	// A held delete stays unanswered, even past the applier's patience for a write in
	// flight (it then gives up on its context): the server has not answered.
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open)
	dest.gate = func(_ context.Context, _ oplog.Namespace, writes []oplog.Write) error {
		if slices.ContainsFunc(writes, func(w oplog.Write) bool { return w.Kind == oplog.Delete }) {
			<-release
		}
		return nil
	}
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), Appliers: 1, Linger: time.Hour, CheckpointEvery: time.Millisecond})
	wait := start(t, context.Background(), s)
	eventually(t, "both inserts applied while the delete is held", func() bool { return dest.applied.Load() == 2 })
	for _, cp := range append(cps.all(), s.Snapshot().Applied) {
		if !cp.Before(at(3)) {
			t.Fatalf("resume point %v passes the delete at %v, still held", cp, at(3))
		}
	}
	open()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := s.Snapshot().Applied; got != at(4) {
		t.Errorf("resume point %v, want %v", got, at(4))
	}
}

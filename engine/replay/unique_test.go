package replay

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// onOtherAppliers returns two _ids whose writes to ns go to different appliers of n.
func onOtherAppliers(t *testing.T, n int) (a, b int32) {
	t.Helper()
	applier := func(id int32) uint64 {
		filter, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}})
		return oplog.PartitionKey(&oplog.Write{NS: oplog.ParseNamespace(ns), Filter: filter}) % uint64(n)
	}
	for id := int32(2); id < 100; id++ {
		if applier(id) != applier(1) {
			return 1, id
		}
	}
	t.Fatal("no two _ids on different appliers")
	return 0, 0
}

// setsU reports the value of u an update of the document id sets.
func setsU(w *oplog.Write, id int32) (int32, bool) {
	if w.Kind != oplog.Update || w.Filter.Lookup("_id").Int32() != id {
		return 0, false
	}
	v, ok := w.Update.Lookup("$set", "u").Int32OK()
	return v, ok
}

func TestASwapOfUniqueValuesAcrossAppliersIsAppliedInSourceOrder(t *testing.T) {
	// The source swaps the unique values of two documents through a free one:
	// A 1 -> 3, B 2 -> 1, A 3 -> 2; it never holds a duplicate. By document, A and B
	// are on different appliers; the destination (its unique index on u restored)
	// holds every bulk write of A's u 3 until B's u 1 met it, unless that bulk
	// carries B's u 1 too (one applier, in oplog order). Applied by document, B's
	// writes overtake A's: a duplicate of u 1 the source never held.
	a, b := onOtherAppliers(t, 2)
	src := newFakeOplog(
		noopOp(at(1)),
		insertOp(at(2), ns, bson.D{{Key: "_id", Value: a}, {Key: "u", Value: int32(1)}}),
		insertOp(at(3), ns, bson.D{{Key: "_id", Value: b}, {Key: "u", Value: int32(2)}}),
		setOp(at(4), ns, a, bson.D{{Key: "u", Value: int32(3)}}),
		setOp(at(5), ns, b, bson.D{{Key: "u", Value: int32(1)}}),
		setOp(at(6), ns, a, bson.D{{Key: "u", Value: int32(2)}}),
	)
	src.finite = true
	dest := newFakeDest()
	dest.unique = "u"
	bTried := make(chan struct{})
	var once sync.Once
	dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
		if v, ok := setsU(w, b); ok && v == 1 {
			once.Do(func() { close(bTried) })
		}
		return nil
	}
	dest.gate = func(ctx context.Context, _ oplog.Namespace, writes []oplog.Write) error {
		aMoves, carriesB := false, false
		for i := range writes {
			if v, ok := setsU(&writes[i], a); ok && v == 3 {
				aMoves = true
			}
			if v, ok := setsU(&writes[i], b); ok && v == 1 {
				carriesB = true
			}
		}
		if !aMoves || carriesB {
			return nil
		}
		select {
		case <-bTried:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Each applier writes its batch when the source ends (no linger): one bulk each.
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 2, Linger: time.Hour,
		Ordered: NewOrderedNamespaces(oplog.ParseNamespace(ns))})
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("the swap failed: %v", err)
	}
	got := map[int32]int32{}
	for _, d := range dest.docs(ns) {
		got[d[0].Value.(int32)] = d[1].Value.(int32)
	}
	if got[a] != 2 || got[b] != 1 {
		t.Errorf("documents %v, want %d with u 2 and %d with u 1", got, a, b)
	}
	if s.Snapshot().Applied != at(6) {
		t.Errorf("resume point %v, want %v", s.Snapshot().Applied, at(6))
	}
}

func TestADuplicateKeyOnARestoredUniqueIndexAfterTheConsistencyPointFailsTheShard(t *testing.T) {
	// The destination holds a document the source does not (a divergence): the
	// source's write of u 9, after the consistency point, meets it although every
	// write before it is applied. The shard fails, naming the index, the document
	// and the entry, with the resume point before it.
	src := newFakeOplog(
		noopOp(at(1)),
		insertOp(at(2), ns, bson.D{{Key: "_id", Value: int32(1)}, {Key: "u", Value: int32(1)}}),
	)
	dest := newFakeDest()
	dest.unique = "u"
	dest.mu.docs[oplog.ParseNamespace(ns)] = map[string]bson.D{"99": {{Key: "_id", Value: int32(99)}, {Key: "u", Value: int32(9)}}}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), ConsistencyPoint: at(2), Appliers: 2,
		Ordered: NewOrderedNamespaces(oplog.ParseNamespace(ns))})
	wait := start(t, context.Background(), s)
	eventually(t, "the insert applied", func() bool { return s.Snapshot().Applied == at(2) })
	src.append(setOp(at(3), ns, int32(1), bson.D{{Key: "u", Value: int32(9)}}))
	err := wait()
	if err == nil {
		t.Fatal("the shard applied a write its destination refuses as a duplicate")
	}
	for _, want := range []string{"u_1", `{"_id": {"$numberInt":"1"}}`, "Timestamp(3, 1)", "every earlier write", "diverged"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if p := s.Snapshot(); p.Applied != at(2) || p.Tolerated != 0 {
		t.Errorf("resume point %v, tolerated %d; want %v and 0 (the refused write is not applied)", p.Applied, p.Tolerated, at(2))
	}
}

func TestARunningReplayAcknowledgesANewOrderedNamespaceOnceItsAppliersDrained(t *testing.T) {
	// A namespace becomes ordered while the shard replays: the shard acknowledges
	// it (the engine restores the unique index only then), once every write queued
	// by document is applied; the gate holds the one in flight until the engine
	// waits for the acknowledgement.
	src := newFakeOplog(noopOp(at(1)), insertOp(at(2), ns, doc(1, 0)))
	dest := newFakeDest()
	sent, release := make(chan struct{}), make(chan struct{})
	dest.gate = func(ctx context.Context, _ oplog.Namespace, _ []oplog.Write) error {
		close(sent)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ordered := NewOrderedNamespaces()
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 2, Ordered: ordered})
	start(t, context.Background(), s)
	<-sent
	v := ordered.Add(oplog.ParseNamespace(ns))
	var once sync.Once
	waiting := func() bool { once.Do(func() { close(release) }); return false }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ordered.WaitAcked(ctx, "s0", v, waiting); err != nil {
		t.Fatalf("the running replay never acknowledged the new ordered namespace: %v", err)
	}
	once.Do(func() { close(release) })
	if got := dest.docs(ns); len(got) != 1 {
		t.Errorf("acknowledged with the write queued by document still in flight: %v", got)
	}
}

package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/replay"
)

// A write the source takes after the sync stopped never reaches the destination:
// finalize finds it in the oplog after each shard's last applied entry, and the
// verification does not pass until the DBA overrides it.
func TestLateWritesKeepTheVerificationFromPassing(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.verifyRes = &Verification{Namespaces: 1, Ranges: 2, Matched: 2, Documents: 10}
	first := time.Date(2026, 12, 6, 17, 4, 5, 0, time.UTC)
	h.fc.late = map[string]LateWrites{"s1": {Shard: "s1", Writes: 3, First: first, Namespaces: []string{"shop.orders"}}}
	h.cuttingOver()

	err := h.m.Done(bg, false)
	var me *MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "shard s1 took 3 writes after the sync stopped (the first at 17:04:05 UTC) to shop.orders") {
		t.Fatalf("Done with late writes: %v", err)
	}
	s := h.m.Snapshot()
	if s.State != Finalizing || s.Verification.OK() || len(s.Verification.Late) != 1 {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	for _, name := range []string{"s0", "s1"} {
		if after := h.fc.lateAfter[name]; after.IsZero() {
			t.Fatalf("shard %s was not asked for writes after its last applied entry: %v", name, h.fc.lateAfter)
		}
	}
	if err := h.m.Done(bg, true); err != nil {
		t.Fatal(err)
	}
	s = h.m.Snapshot()
	if s.State != Done || !s.Verification.Overridden {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	if !slices.ContainsFunc(s.History, func(e Event) bool { return strings.Contains(e.Reason, "took 3 writes") }) {
		t.Fatalf("the history does not say what the override accepted: %v", h.events())
	}
}

// Without late writes the verification passes as before, and finalize asked.
func TestNoLateWritesLetTheVerificationPass(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.verifyRes = &Verification{Namespaces: 1, Ranges: 1, Matched: 1}
	h.cuttingOver()
	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
	if s := h.m.Snapshot(); s.State != Done || !s.Verification.OK() || h.fc.called("WritesAfter") != 1 {
		t.Fatalf("state %s verification %+v, WritesAfter called %d times", s.State, s.Verification, h.fc.called("WritesAfter"))
	}
}

// I'm done saves each shard's resume point once it reached the source's newest
// entry, before the migration is recorded finalizing: a crash before the sync's
// final checkpoint leaves the finalize that point, not the periodic checkpoint a
// second older, whose following writes (applied) read as the source's writes after
// the sync stopped and kept the finalize from passing (fault scenario 6, killed
// during finalize: "took 63 writes after the sync stopped").
func TestImDoneSavesTheDrainedResumePointBeforeFinalizing(t *testing.T) {
	h := newHarness(t, "s0")
	r := h.cuttingOver()["s0"]
	r.checkpoint(t) // the last periodic checkpoint
	drained := r.Snapshot().Applied
	drained.T++
	r.set(func(p *replay.Progress) { p.Applied, p.Newest = drained, drained })
	h.fc.mu.Lock()
	h.fc.shards["s0"].newest = drained
	h.fc.mu.Unlock()
	var stateAtCheckpoint State
	r.mu.Lock()
	r.noFinalCheckpoint = true
	r.onCheckpoint = func() { stateAtCheckpoint = h.m.State() }
	r.mu.Unlock()

	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
	if after := h.fc.lateAfter["s0"]; after != drained {
		t.Fatalf("finalize looked for late writes after %v; the replay had applied up to %v", after, drained)
	}
	if stateAtCheckpoint != CuttingOver {
		t.Fatalf("the drained resume point was saved while %q; want it saved before the migration is recorded finalizing", stateAtCheckpoint)
	}
}

// Only an application's writes to migrated namespaces count: not the oplog's
// no-ops, chunk migrations' entries, MongoDB's own collections nor an applyOps
// touching only those.
func TestLateWritesCountOnlyApplicationWrites(t *testing.T) {
	ts := uint32(1000)
	entry := func(fields ...bson.E) bson.Raw {
		ts++
		d := bson.D{{Key: "ts", Value: primitive.Timestamp{T: ts, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int32(2)},
			{Key: "wall", Value: time.Unix(int64(ts), 0)}}
		raw, err := bson.Marshal(append(d, fields...))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	op := func(o string, ns string, doc bson.D, extra ...bson.E) bson.Raw {
		return entry(append([]bson.E{{Key: "op", Value: o}, {Key: "ns", Value: ns}, {Key: "o", Value: doc}}, extra...)...)
	}
	id := bson.D{{Key: "_id", Value: 1}}
	applyOps := func(ns string) bson.D {
		return bson.D{{Key: "applyOps", Value: bson.A{bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: ns}, {Key: "o", Value: id}}}}}
	}
	raws := []bson.Raw{
		op("n", "", bson.D{{Key: "msg", Value: "periodic noop"}}),
		op("i", "shop.orders", id, bson.E{Key: "fromMigrate", Value: true}),
		op("u", "config.system.sessions", bson.D{{Key: "$set", Value: bson.D{{Key: "lastUse", Value: 1}}}}, bson.E{Key: "o2", Value: id}),
		op("c", "admin.$cmd", applyOps("config.transactions")),
		op("i", "shop.orders", id),                                    // counted
		op("c", "admin.$cmd", applyOps("shop.carts")),                 // counted
		op("c", "shop.$cmd", bson.D{{Key: "create", Value: "daily"}}), // counted
		op("d", "shop.orders", id),                                    // counted
		op("c", "config.$cmd", bson.D{{Key: "create", Value: "cache.chunks.shop.orders"}}),
	}
	late := LateWrites{Shard: "s0"}
	if err := countLateWrites(&late, raws); err != nil {
		t.Fatal(err)
	}
	want := []string{"shop.orders", "shop.carts", "shop.daily"}
	if late.Writes != 4 || !slices.Equal(late.Namespaces, want) || !late.First.Equal(time.Unix(1005, 0)) {
		t.Fatalf("late writes %+v, want 4 writes to %v from %v", late, want, time.Unix(1005, 0))
	}
}

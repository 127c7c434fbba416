package engine

import (
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// Once ready, a relaxed unique index's namespace is recorded as applied in order
// before anything changes on the destination, and the index is not touched until
// every replay acknowledged it. A process killed meanwhile resumes with the
// namespace ordered from its replays' first write, its index still to restore.
func TestAUniqueIndexRestoreKilledBeforeItsReplaysOrderedResumesOrdered(t *testing.T) {
	h := readyWithRelaxedUniqueIndex(t)
	index := func() Relaxed {
		for _, x := range h.cp.record().Relaxed {
			if x.Kind == RelaxedIndex {
				return x
			}
		}
		return Relaxed{}
	}
	h.eventually("the namespace recorded as applied in order", func() bool { return index().InOrder })
	if index().UniqueRestored || h.fc.called("Restore") > 0 {
		t.Fatal("the index was restored before the replays applied its namespace in order (the fake ones never acknowledge)")
	}
	if s := h.m.Snapshot(); s.UniqueIndexes == "" {
		t.Error("the status does not say the unique indexes are being restored")
	}
	h.crash()
	h.m = h.newMigration()
	if !h.m.orderedNamespaces().Has(oplog.Namespace{DB: "shop", Coll: "orders"}) {
		t.Fatal("a resumed migration does not order shop.orders from its replays' first write")
	}
	h.start(StartOptions{})
	h.eventually("s0 replaying again", func() bool { return h.fc.replayers("s0") == 2 })
	if !h.fc.replayer("s0").from.Ordered.Has(oplog.Namespace{DB: "shop", Coll: "orders"}) {
		t.Fatal("the resumed replay does not apply shop.orders in order")
	}
}

// A migration resumed once its unique indexes were restored while syncing still
// says so: the status is what a DBA reads to know the finalize will not build them.
func TestAResumedMigrationSaysItsUniqueIndexesWereRestored(t *testing.T) {
	h := readyWithRelaxedUniqueIndex(t)
	h.eventually("the index recorded", func() bool { return len(h.cp.record().Relaxed) > 0 })
	h.crash()
	rec := h.cp.record()
	for i := range rec.Relaxed {
		rec.Relaxed[i].InOrder, rec.Relaxed[i].UniqueRestored = true, true
	}
	if err := h.cp.SaveRecord(rec); err != nil {
		t.Fatal(err)
	}
	h.m = h.newMigration()
	h.start(StartOptions{})
	h.ready()
	want := "1 of 1 unique indexes restored on the destination while syncing"
	h.eventually("the status saying "+want, func() bool { return h.m.Snapshot().UniqueIndexes == want })
}

// readyWithRelaxedUniqueIndex runs a migration on fakes whose shard relaxes a unique
// index of shop.orders, until it is ready.
func readyWithRelaxedUniqueIndex(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, "s0")
	spec, err := bson.Marshal(bson.D{{Key: "name", Value: "email_1"}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "unique", Value: true}})
	if err != nil {
		t.Fatal(err)
	}
	h.fc.shards["s0"].relaxIndex = spec
	h.start(StartOptions{})
	h.ready()
	return h
}

package replay

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

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

// sameApplier returns an _id other than id whose writes to ns go to id's applier of n.
func sameApplier(t *testing.T, n int, id int32) int32 {
	t.Helper()
	applier := func(id int32) uint64 {
		filter, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}})
		return oplog.PartitionKey(&oplog.Write{NS: oplog.ParseNamespace(ns), Filter: filter}) % uint64(n)
	}
	for other := int32(2); other < 100; other++ {
		if other != id && applier(other) == applier(id) {
			return other
		}
	}
	t.Fatal("no other _id on the same applier")
	return 0
}

// uniqueU orders the writes of ns by a unique index on u.
func uniqueU() *OrderedNamespaces {
	spec, _ := bson.Marshal(bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "u", Value: int32(1)}}}, {Key: "name", Value: "u_1"}, {Key: "unique", Value: true}})
	return NewOrderedNamespaces(UniqueIndex{NS: oplog.ParseNamespace(ns), Spec: spec})
}

// replaceOp replaces the document id with {_id: id, u: u}.
func replaceOp(ts primitive.Timestamp, id, u int32) bson.Raw {
	return entry(ts, "u", ns, bson.E{Key: "o", Value: bson.D{{Key: "_id", Value: id}, {Key: "u", Value: u}}},
		bson.E{Key: "o2", Value: bson.D{{Key: "_id", Value: id}}})
}

// gives reports whether writes hold one that leaves the document id with u.
func gives(writes []oplog.Write, id, u int32) bool {
	for i := range writes {
		w := &writes[i]
		if w.Kind == oplog.InsertReplace && w.Filter.Lookup("_id").Int32() == id && w.Replacement.Lookup("u").Int32() == u {
			return true
		}
	}
	return false
}

// uValues are the documents of ns as _id to u.
func uValues(dest *fakeDest) map[int32]int32 {
	got := map[int32]int32{}
	for _, d := range dest.docs(ns) {
		got[d[0].Value.(int32)] = d[1].Value.(int32)
	}
	return got
}

func TestASwapOfUniqueValuesAcrossAppliersWaitsForTheEarlierWritesAndIsSentAgain(t *testing.T) {
	// The source swaps the unique values of two documents through a free one:
	// A 1 -> 3, B 2 -> 1, A 3 -> 2; it never holds a duplicate. A and B are on
	// different appliers, and the destination (its unique index on u restored)
	// holds A's bulk with u 3 until B's u 1 was tried: B's write meets A's u 1, a
	// duplicate the source never held, and so does A's u 2 then meet B's u 2. Each
	// is sent again once every earlier write of the namespace is applied.
	a, b := onOtherAppliers(t, 2)
	src := newFakeOplog(noopOp(at(1)),
		insertOp(at(2), ns, bson.D{{Key: "_id", Value: a}, {Key: "u", Value: int32(1)}}),
		insertOp(at(3), ns, bson.D{{Key: "_id", Value: b}, {Key: "u", Value: int32(2)}}))
	dest := newFakeDest()
	dest.unique = "u"
	bTried := make(chan struct{})
	var once sync.Once
	dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
		if gives([]oplog.Write{*w}, b, 1) {
			once.Do(func() { close(bTried) })
		}
		return nil
	}
	dest.gate = func(ctx context.Context, _ oplog.Namespace, writes []oplog.Write) error {
		if !gives(writes, a, 3) {
			return nil
		}
		select {
		case <-bTried:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 2, Ordered: uniqueU()})
	start(t, context.Background(), s)
	eventually(t, "the inserts applied", func() bool { return s.Snapshot().Applied == at(3) })
	src.append(replaceOp(at(4), a, 3), replaceOp(at(5), b, 1), replaceOp(at(6), a, 2))
	eventually(t, "the swap applied, or the shard failed", func() bool { p := s.Snapshot(); return p.Applied == at(6) || p.Err != nil })
	if err := s.Snapshot().Err; err != nil {
		t.Fatalf("the swap failed: %v", err)
	}
	if got := uValues(dest); got[a] != 2 || got[b] != 1 {
		t.Errorf("documents %v, want %d with u 2 and %d with u 1", got, a, b)
	}
	if p := s.Snapshot(); p.Applied != at(6) || p.UniqueWaits == 0 || p.Tolerated != 0 {
		t.Errorf("resume point %v, %d writes sent again, %d tolerated; want %v, some, none", p.Applied, p.UniqueWaits, p.Tolerated, at(6))
	}
}

func TestALaterWriteThatTakesAUniqueValueWaitsForTheEarlierOneThatTakesIt(t *testing.T) {
	// X takes u 1 then leaves it for u 2; later Y takes u 1 (and Z, on Y's
	// applier, takes u 7). By document, Y's applier could write Y's u 1 before
	// X's: X's u 1 would then meet Y's, and waiting for the writes before it
	// would not help (the one in its way comes after it). Y's u 1 must wait
	// for X's. The destination holds X's bulk until Z's (which Y's applier
	// sends with Y's u 1 unless Y's waits).
	x, y := onOtherAppliers(t, 2)
	z := sameApplier(t, 2, y)
	src := newFakeOplog(noopOp(at(1)))
	dest := newFakeDest()
	dest.unique = "u"
	zSent := make(chan struct{})
	var once sync.Once
	dest.gate = func(ctx context.Context, _ oplog.Namespace, writes []oplog.Write) error {
		if gives(writes, z, 7) {
			once.Do(func() { close(zSent) })
		}
		if !gives(writes, x, 1) {
			return nil
		}
		select {
		case <-zSent:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Each applier writes its two writes in one bulk (no linger), and the writes
	// come after the shard started: a duplicate is not an idempotent replay's.
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 2, Linger: time.Hour, BatchWrites: 2, Ordered: uniqueU()})
	start(t, context.Background(), s)
	eventually(t, "the shard started", func() bool { return s.Snapshot().Newest == at(1) })
	src.append(
		insertOp(at(2), ns, bson.D{{Key: "_id", Value: x}, {Key: "u", Value: int32(1)}}),
		insertOp(at(3), ns, bson.D{{Key: "_id", Value: z}, {Key: "u", Value: int32(7)}}),
		replaceOp(at(4), x, 2),
		insertOp(at(5), ns, bson.D{{Key: "_id", Value: y}, {Key: "u", Value: int32(1)}}))
	eventually(t, "the writes applied, or the shard failed", func() bool { p := s.Snapshot(); return p.Applied == at(5) || p.Err != nil })
	if err := s.Snapshot().Err; err != nil {
		t.Fatalf("the replay failed: %v", err)
	}
	if got := uValues(dest); got[x] != 2 || got[y] != 1 || got[z] != 7 {
		t.Errorf("documents %v, want %d with u 2, %d with u 1, %d with u 7", got, x, y, z)
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
		Ordered: uniqueU()})
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
	if p := s.Snapshot(); p.Applied != at(2) || p.Tolerated != 0 || p.UniqueWaits != 1 {
		t.Errorf("resume point %v, tolerated %d, sent again %d; want %v, 0 (the refused write is not applied), 1", p.Applied, p.Tolerated, p.UniqueWaits, at(2))
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
	v := ordered.Add(UniqueIndex{NS: oplog.ParseNamespace(ns)})
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

func TestTakenKeysNameAlikeTheValuesAUniqueIndexHoldsEqual(t *testing.T) {
	spec := func(collation bool) bson.Raw {
		d := bson.D{{Key: "key", Value: bson.D{{Key: "a.b", Value: int32(1)}}}, {Key: "unique", Value: true}}
		if collation {
			d = append(d, bson.E{Key: "collation", Value: bson.D{{Key: "locale", Value: "en"}, {Key: "strength", Value: int32(2)}}})
		}
		raw, _ := bson.Marshal(d)
		return raw
	}
	replace := func(a any) *oplog.Write {
		raw, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(1)}, {Key: "a", Value: a}})
		return &oplog.Write{Kind: oplog.InsertReplace, Replacement: raw}
	}
	keys := func(collated bool, w *oplog.Write) string {
		return strings.Join(takenKeys([]uniqueIndex{parseUniqueIndex(spec(collated))}, w), ",")
	}
	same := func(what string, collated bool, a, b *oplog.Write) {
		t.Helper()
		if ka, kb := keys(collated, a), keys(collated, b); ka != kb {
			t.Errorf("%s: keys %q and %q differ", what, ka, kb)
		}
	}
	same("int32 1 and double 1.0", false, replace(bson.D{{Key: "b", Value: int32(1)}}), replace(bson.D{{Key: "b", Value: 1.0}}))
	one, _ := primitive.ParseDecimal128("1.0")
	same("int64 1 and decimal 1.0", false, replace(bson.D{{Key: "b", Value: int64(1)}}), replace(bson.D{{Key: "b", Value: one}}))
	same("missing and null", false, replace(bson.D{}), replace(bson.D{{Key: "b", Value: nil}}))
	same("strings under a collation", true, replace(bson.D{{Key: "b", Value: "X"}}), replace(bson.D{{Key: "b", Value: "x"}}))
	if a, b := keys(false, replace(bson.D{{Key: "b", Value: "X"}})), keys(false, replace(bson.D{{Key: "b", Value: "x"}})); a == b {
		t.Errorf("X and x share the key %q without a collation", a)
	}
	if k := keys(false, replace(bson.A{bson.D{{Key: "b", Value: int32(1)}}})); k != "0:*" {
		t.Errorf("a path through an array: key %q, want any (0:*)", k)
	}
	update := func(diff bson.D) *oplog.Write {
		raw, _ := bson.Marshal(diff)
		return &oplog.Write{Kind: oplog.Update, Diff: raw, Pipeline: []bson.Raw{}}
	}
	same("an update setting a.b to 2 and a replacement with a.b 2", false,
		update(bson.D{{Key: "sa", Value: bson.D{{Key: "u", Value: bson.D{{Key: "b", Value: int32(2)}}}}}}), replace(bson.D{{Key: "b", Value: int32(2)}}))
	set, _ := bson.Marshal(bson.D{{Key: "$set", Value: bson.D{{Key: "a.b", Value: "x"}}}})
	same("a $set of a.b to x and a replacement with a.b x", false,
		&oplog.Write{Kind: oplog.Update, Update: set}, replace(bson.D{{Key: "b", Value: "x"}}))
	for what, diff := range map[string]bson.D{
		"an update of a.c only (a.b as it was)": {{Key: "sa", Value: bson.D{{Key: "u", Value: bson.D{{Key: "c", Value: int32(2)}}}}}},
		"an update of an array a":               {{Key: "sa", Value: bson.D{{Key: "a", Value: true}, {Key: "u0", Value: int32(2)}}}},
	} {
		if k := keys(false, update(diff)); k != "0:*" {
			t.Errorf("%s: key %q, want any (0:*)", what, k)
		}
	}
	if k := keys(false, update(bson.D{{Key: "u", Value: bson.D{{Key: "c", Value: int32(2)}}}})); k != "" {
		t.Errorf("an update of c only: key %q, want none", k)
	}
	if k := keys(false, &oplog.Write{Kind: oplog.Delete}); k != "" {
		t.Errorf("a delete: key %q, want none", k)
	}
}

func TestAReplayRestartedBehindALaterStateStepsOverTheDuplicateItMeets(t *testing.T) {
	// A run before this one (or the process before a resume) applied up to the
	// end: X left u 1 for u 2 and Y took u 1. This run starts from an earlier
	// resume point: X's insert with u 1 meets Y's, with every write before it
	// applied, inside the window where re-applied writes meet later states. It is
	// stepped over (X is past it), and the writes after it bring X back to u 2.
	x, y := onOtherAppliers(t, 2)
	src := newFakeOplog(noopOp(at(1)),
		insertOp(at(2), ns, bson.D{{Key: "_id", Value: x}, {Key: "u", Value: int32(1)}}),
		replaceOp(at(3), x, 2),
		insertOp(at(4), ns, bson.D{{Key: "_id", Value: y}, {Key: "u", Value: int32(1)}}))
	src.finite = true
	dest := newFakeDest()
	dest.unique = "u"
	key := func(id int32) string {
		raw, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}})
		return idKey(bson.Raw(raw).Lookup("_id"))
	}
	dest.mu.docs[oplog.ParseNamespace(ns)] = map[string]bson.D{
		key(x): {{Key: "_id", Value: x}, {Key: "u", Value: int32(2)}},
		key(y): {{Key: "_id", Value: y}, {Key: "u", Value: int32(1)}},
	}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 2, Ordered: uniqueU()})
	if err := start(t, context.Background(), s)(); err != nil {
		t.Fatalf("the restarted replay failed: %v", err)
	}
	if got := uValues(dest); got[x] != 2 || got[y] != 1 || len(got) != 2 {
		t.Errorf("documents %v, want %d with u 2 and %d with u 1", got, x, y)
	}
	if p := s.Snapshot(); p.Applied != at(4) || p.Tolerated != 1 {
		t.Errorf("resume point %v, tolerated %d; want %v, 1", p.Applied, p.Tolerated, at(4))
	}
}

func TestADocumentsOwnEarlierWriteOfAKeyDoesNotCutItsBulk(t *testing.T) {
	// An insert and a replacement of one document that keeps its unique value:
	// the replacement waits for no one (its document's writes keep their order on
	// its applier), so both go in one bulk write, not one round trip each.
	src := newFakeOplog(noopOp(at(1)))
	dest := newFakeDest()
	dest.unique = "u"
	var bulks atomic.Int32
	dest.gate = func(context.Context, oplog.Namespace, []oplog.Write) error { bulks.Add(1); return nil }
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 1, Linger: time.Hour, BatchWrites: 2, Ordered: uniqueU()})
	start(t, context.Background(), s)
	eventually(t, "the shard started", func() bool { return s.Snapshot().Newest == at(1) })
	src.append(insertOp(at(2), ns, bson.D{{Key: "_id", Value: int32(1)}, {Key: "u", Value: int32(1)}}), replaceOp(at(3), 1, 1))
	eventually(t, "the writes applied, or the shard failed", func() bool { p := s.Snapshot(); return p.Applied == at(3) || p.Err != nil })
	if err := s.Snapshot().Err; err != nil {
		t.Fatal(err)
	}
	if n := bulks.Load(); n != 1 {
		t.Errorf("%d bulk writes, want 1", n)
	}
}

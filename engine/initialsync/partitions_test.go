package initialsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/prepare"
)

func rawID(t *testing.T, v any) bson.RawValue {
	t.Helper()
	return doc(t, bson.D{{Key: "_id", Value: v}}).Lookup("_id")
}

func rawIDs(t *testing.T, vs ...any) []bson.RawValue {
	out := make([]bson.RawValue, len(vs))
	for i, v := range vs {
		out[i] = rawID(t, v)
	}
	return out
}

// checkAscending fails unless bounds are strictly ascending in MongoDB's order.
func checkAscending(t *testing.T, bounds []bson.RawValue) {
	t.Helper()
	for i := 1; i < len(bounds); i++ {
		if compareIDs(bounds[i-1], bounds[i]) >= 0 {
			t.Fatalf("bounds %v are not strictly ascending at %d", bounds, i)
		}
	}
}

func TestSplitPointsOfMixedTypesFollowMongoDBOrder(t *testing.T) {
	oid, _ := primitive.ObjectIDFromHex("650000000000000000000000")
	// Sampled in no order: numbers, strings and ObjectIds interleaved.
	sample := rawIDs(t, "m", int32(5), oid, 2.5, "a", int64(1), oid, "z", int32(9), "q", int64(7), "b")
	bounds := splitPoints(sample, 4)
	checkAscending(t, bounds)
	if len(bounds) != 3 {
		t.Fatalf("%d split points, want 3", len(bounds))
	}
	// 12 samples in 4 runs: the 4th, 7th and 10th in MongoDB's order (numbers,
	// then strings, then ObjectIds): 1 2.5 5 [7] 9 a [b] m q [z] oid oid.
	want := rawIDs(t, int64(7), "b", "z")
	for i := range want {
		if !sameID(bounds[i], want[i]) {
			t.Fatalf("split point %d is %s, want %s", i, bounds[i], want[i])
		}
	}
}

func TestSplitPointsOfAnEmptyOrTinySample(t *testing.T) {
	if b := splitPoints(nil, 8); len(b) != 0 {
		t.Fatalf("an empty collection has split points %v: it must stay whole", b)
	}
	b := splitPoints(rawIDs(t, "only"), 8)
	if len(b) != 1 || !sameID(b[0], rawID(t, "only")) {
		t.Fatalf("one document: split points %v, want just its _id", b)
	}
}

func TestSplitPointsDropRepeatedSamples(t *testing.T) {
	// $sample may repeat a document: the same _id must not bound two partitions
	// (an empty range between them), whatever the number of repeats.
	sample := rawIDs(t, int32(1), int32(3), int32(3), int32(3), int32(3), int32(3), int32(3), int32(8))
	bounds := splitPoints(sample, 8)
	checkAscending(t, bounds)
	if len(bounds) != 2 || !sameID(bounds[0], rawID(t, int32(3))) || !sameID(bounds[1], rawID(t, int32(8))) {
		t.Fatalf("split points %v, want 3 and 8 once each", bounds)
	}
}

// largeUnsharded is a plan part big enough to be split.
func largeUnsharded(db, coll string, docs int64) prepare.ShardNamespace {
	n := unsharded(db, coll)
	n.Docs = docs
	return n
}

func partitioned(parts int) func(*Config) {
	return func(cfg *Config) { cfg.Partitions, cfg.PartitionDocs, cfg.BatchDocs = parts, 100, 7 }
}

// mixedCollection adds n documents whose _ids cycle through numbers, strings,
// ObjectIds, dates and more, in no particular natural order.
func mixedCollection(t *testing.T, src *fakeSource, ns string, n int) []bson.Raw {
	var all []bson.Raw
	for i := range n {
		var id any
		switch i % 5 {
		case 0:
			id = int32(i)
		case 1:
			id = float64(i) + 0.5
		case 2:
			id = fmt.Sprintf("s%05d", n-i)
		case 3:
			id = primitive.ObjectID{0x65, byte(i >> 8), byte(i)}
		case 4:
			id = primitive.DateTime(int64(i) * 1000)
		}
		d := doc(t, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}})
		src.add(ns, d)
		all = append(all, d)
	}
	return all
}

func sameDocs(t *testing.T, want, got []bson.Raw) {
	t.Helper()
	key := func(d bson.Raw) string { return string(d) }
	w := make([]string, len(want))
	for i, d := range want {
		w[i] = key(d)
	}
	g := make([]string, len(got))
	for i, d := range got {
		g[i] = key(d)
	}
	slices.Sort(w)
	slices.Sort(g)
	if !slices.Equal(w, g) {
		t.Fatalf("the destination holds %d documents, want the source's %d, equal document for document", len(g), len(w))
	}
}

func TestLargeNamespaceIsCopiedInPartitionsOfEveryTypeClass(t *testing.T) {
	src := newFakeSource()
	all := mixedCollection(t, src, "app.big", 1000)
	dst := newFakeDestination()
	s := &sinks{}
	c := newCopier(t, plan(largeUnsharded("app", "big", 1000)), src, dst, s, nil, partitioned(8))
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameDocs(t, all, dst.docs("app.big"))
	if len(src.ranges) != 8 || len(src.filters) != 0 {
		t.Fatalf("%d range scans and %d whole scans, want 8 range scans", len(src.ranges), len(src.filters))
	}
	saved := s.last()
	var docs int64
	for i := range 8 {
		p, ok := saved[fmt.Sprintf("app.big$%d", i)]
		if !ok || !p.Done {
			t.Fatalf("checkpoint %v: partition %d is not saved done", saved, i)
		}
		docs += p.Docs
	}
	if docs != 1000 || dst.duplicates.Load() != 0 {
		t.Fatalf("partitions count %d documents (%d written twice), want 1000 once", docs, dst.duplicates.Load())
	}
	if _, whole := saved["app.big"]; whole {
		t.Fatal("the checkpoint holds the namespace whole besides its partitions")
	}
	if p := c.Snapshot(); p.Docs != 1000 || p.Namespaces != 1 || p.NamespacesDone != 1 || p.Estimated {
		t.Fatalf("progress %+v, want 1000 documents in one namespace, done", p)
	}
}

func TestSmallOrCappedNamespacesAreNotSplit(t *testing.T) {
	src := newFakeSource()
	mixedCollection(t, src, "app.small", 50)
	capped := largeUnsharded("app", "log", 1000)
	capped.Capped = true
	for i := range 50 {
		src.add("app.log", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	dst := newFakeDestination()
	c := newCopier(t, plan(largeUnsharded("app", "small", 50), capped), src, dst, &sinks{}, nil, partitioned(8))
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(src.ranges) != 0 || len(dst.docs("app.small")) != 50 || len(dst.docs("app.log")) != 50 {
		t.Fatalf("%d range scans, %d and %d documents: small and capped namespaces are copied whole", len(src.ranges), len(dst.docs("app.small")), len(dst.docs("app.log")))
	}
}

func TestUnsampledNamespaceIsCopiedWhole(t *testing.T) {
	src := newFakeSource()
	all := mixedCollection(t, src, "app.big", 300)
	src.sampleErr = errors.New("not authorized to execute command aggregate")
	dst := newFakeDestination()
	c := newCopier(t, plan(largeUnsharded("app", "big", 300)), src, dst, &sinks{}, nil, partitioned(8))
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameDocs(t, all, dst.docs("app.big"))
}

func TestPartitionedCopyResumesMidPartition(t *testing.T) {
	src := newFakeSource()
	all := mixedCollection(t, src, "app.big", 1000)
	dst := newFakeDestination()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sinks{}
	// The last dates (i from 950: the highest _ids, in the last partition, which
	// holds about the 125 highest) are not written: once two partitions are
	// durable and the last one is durable part way (its checkpoint at a date from
	// i 900 on: no other partition holds one), the copy is stopped there. Waiting
	// for any partition part way was not enough (2 runs in 400 ended with none
	// part way): that one could finish with the writes in flight at the stop,
	// before a checkpoint had recorded the last one's progress.
	stopAt := primitive.DateTime(950 * 1000)
	lastMid := func(saved map[string]PartitionProgress) bool {
		for _, p := range saved {
			if at, ok := p.LastID.DateTimeOK(); ok && !p.Done && at >= 900*1000 {
				return true
			}
		}
		return false
	}
	dst.hook = func(_ string, docs []bson.Raw, _ bool) error {
		for _, d := range docs {
			if at, ok := d.Lookup("_id").DateTimeOK(); ok && primitive.DateTime(at) >= stopAt {
				waitFor(t, "two partitions durable and the last one part way", func() bool {
					saved := s.last()
					return donePartitions(saved) >= 2 && lastMid(saved)
				})
				cancel()
				return context.Canceled
			}
		}
		return nil
	}
	// Enough writers that the batches held back (at most 2 of 7 dates) never
	// hold up the other partitions.
	c := newCopier(t, plan(largeUnsharded("app", "big", 1000)), src, dst, s, nil, func(cfg *Config) {
		partitioned(8)(cfg)
		cfg.Writers = 32
	})
	if err := c.Copy(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy = %v, want cancelled", err)
	}
	saved := s.last()
	done, mid := donePartitions(saved), midPartitions(saved)
	for key := range saved {
		if !strings.HasPrefix(key, "app.big$") {
			t.Fatalf("checkpoint key %q, want partitions of app.big", key)
		}
	}
	if len(saved) != 8 || mid == 0 || done < 2 {
		t.Fatalf("checkpoint %d partitions, %d done and %d mid-way: the test wants some stopped mid-partition", len(saved), done, mid)
	}

	dst.hook = nil
	src.ranges = nil
	again := newCopier(t, plan(largeUnsharded("app", "big", 1000)), src, dst, s, saved, partitioned(3))
	// The progress names the namespace's ranges, done of all, from the checkpoint on.
	want := []NamespaceRanges{{Namespace: "app.big", Done: done, Total: 8}}
	if got := again.Snapshot().Ranges; !slices.Equal(got, want) {
		t.Fatalf("ranges in the resumed copy's progress: %+v, want %+v", got, want)
	}
	if err := again.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameDocs(t, all, dst.docs("app.big"))
	if len(src.ranges) != 8-done {
		t.Fatalf("%d partitions scanned again, want the %d not done", len(src.ranges), 8-done)
	}
	for _, r := range src.ranges {
		resumed := false
		for _, p := range saved {
			if !p.Done && p.LastID.Type != 0 && sameID(r[0], p.LastID) {
				resumed = true
			}
		}
		if !resumed && r[0].Type != 0 {
			starts := false
			for _, p := range saved {
				starts = starts || (p.LastID.Type == 0 && sameID(r[0], p.Min))
			}
			if !starts {
				t.Fatalf("a resumed scan starts at %s, neither a partition's last durable _id nor its start", r[0])
			}
		}
	}
	if p := again.Snapshot(); p.Docs != 1000 || len(p.Ranges) != 0 {
		t.Fatalf("progress counts %d documents and ranges %+v, want 1000 and no namespace in ranges left", p.Docs, p.Ranges)
	}
	if got := s.last(); len(got) != 8 {
		t.Fatalf("the resumed copy saved %d partitions, want the 8 the first run chose", len(got))
	}
}

func donePartitions(saved map[string]PartitionProgress) int {
	n := 0
	for _, p := range saved {
		if p.Done {
			n++
		}
	}
	return n
}

func midPartitions(saved map[string]PartitionProgress) int {
	n := 0
	for _, p := range saved {
		if !p.Done && p.LastID.Type != 0 {
			n++
		}
	}
	return n
}

func TestCheckpointWithoutPartitionsResumesWhole(t *testing.T) {
	src := newFakeSource()
	all := mixedCollection(t, src, "app.big", 500)
	dst := newFakeDestination()
	// An earlier version's checkpoint: the namespace, whole, copied up to _id 100.
	lastID := rawID(t, int32(100))
	var upTo []bson.Raw
	for _, d := range all {
		if compareIDs(d.Lookup("_id"), lastID) <= 0 {
			upTo = append(upTo, d)
		}
	}
	if err := dst.Insert(context.Background(), "app", "big", upTo, false); err != nil {
		t.Fatal(err)
	}
	saved := map[string]PartitionProgress{"app.big": {LastID: lastID, Docs: int64(len(upTo))}}
	s := &sinks{}
	c := newCopier(t, plan(largeUnsharded("app", "big", 500)), src, dst, s, saved, partitioned(8))
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameDocs(t, all, dst.docs("app.big"))
	if len(src.ranges) != 0 || dst.duplicates.Load() != 0 {
		t.Fatalf("%d range scans, %d duplicates: an old checkpoint resumes its one scan", len(src.ranges), dst.duplicates.Load())
	}
	if p := s.last()["app.big"]; !p.Done || p.Docs != 500 {
		t.Fatalf("checkpoint %+v, want the whole namespace done with 500 documents", p)
	}
}

func TestCheckpointWithAGapBetweenPartitionsIsRefused(t *testing.T) {
	saved := map[string]PartitionProgress{
		"app.big$0": {Max: rawID(t, int32(10))},
		"app.big$1": {Min: rawID(t, int32(20))}, // 10..20 belongs to no partition
	}
	_, err := New(Config{Shard: plan(largeUnsharded("app", "big", 500)), Source: newFakeSource(), Destination: newFakeDestination(),
		Checkpoints: &sinks{}, Indexes: &sinks{}, Saved: saved})
	if err == nil || !strings.Contains(err.Error(), "restart the shard") {
		t.Fatalf("New = %v, want a refusal saying to restart the shard", err)
	}
}

// TestEveryRangeHasAnInsertInFlight: with 8 ranges and 4 writers configured, a
// destination whose inserts all wait (as each waits a round trip to a distant
// cluster) must see one insert per range at once, not the 4 writers' worth: the
// ranges run in parallel through the inserts too, not only the reads.
func TestEveryRangeHasAnInsertInFlight(t *testing.T) {
	src := newFakeSource()
	all := mixedCollection(t, src, "app.big", 1000)
	dst := newFakeDestination()
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open) // a failed wait leaves no insert blocked
	dst.hook = func(string, []bson.Raw, bool) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return nil
	}
	c := newCopier(t, plan(largeUnsharded("app", "big", 1000)), src, dst, &sinks{}, nil, func(cfg *Config) {
		partitioned(8)(cfg)
		cfg.Writers = 4
	})
	done := make(chan error, 1)
	go func() { done <- c.Copy(context.Background()) }()
	waitFor(t, "8 inserts in flight at once (one per range)", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the copy ended (%v) before the inserts were released", err)
		default:
		}
		return most.Load() >= 8
	})
	open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameDocs(t, all, dst.docs("app.big"))
}

package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/verify"
)

// shardedOnID adds ns to the plan, sharded on {_id: 1} with a chunk starting at
// each of mins (the first at MinKey), on shards a and b in turn: one range per
// chunk. Both sides hold the _ids 0 to docs-1.
func shardedOnID(t *testing.T, c *contClusters, ns string, docs int, mins ...int) {
	t.Helper()
	p, err := shardkey.NewPattern(bson.D{{Key: "_id", Value: 1}})
	if err != nil {
		t.Fatal(err)
	}
	key := func(id int) shardkey.Key {
		b, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(id)}})
		return b
	}
	bounds := []shardkey.Key{p.GlobalMin()}
	for _, m := range mins {
		bounds = append(bounds, key(m))
	}
	bounds = append(bounds, p.GlobalMax())
	db, coll, _ := cutNS(ns)
	n := verify.Namespace{DB: db, Coll: coll, Pattern: p}
	for i := range len(bounds) - 1 {
		n.Chunks = append(n.Chunks, shardkey.Chunk{Min: bounds[i], Max: bounds[i+1], Shard: []string{"a", "b"}[i%2]})
	}
	c.plan = append(c.plan, n)
	for id := range docs {
		c.src.put(ns, id, "v0")
		c.dst.put(ns, id, "v0")
	}
}

// A sharded namespace is compared range by range, one range a step, each
// scanned on its own; a Run killed after two ranges resumes at the third and
// never scans the first two again (counted scans), and the progress counts
// ranges compared across the kill.
func TestContinuousVerificationResumesFromTheNextRangeAfterAKill(t *testing.T) {
	c := &contClusters{src: newContSide(), dst: newContSide()}
	shardedOnID(t, c, "shop.big", 40, 10, 20, 30)
	first := newContRun(t, c, nil)
	first.v.rangeChunks = 1 // a unit per chunk: four units
	first.step()
	first.step()
	if p := first.v.progress(); p.RangesCompared != 2 || p.Ranges != 4 || p.NamespacesCompared != 0 || p.Namespaces != 1 {
		t.Fatalf("after two steps: %s", p.Text())
	}
	saved := first.saved // the process is killed here
	resumed := newContRun(t, c, saved)
	resumed.v.rangeChunks = 1
	for range 3 {
		resumed.step()
	}
	ranges, whole := c.src.scansOf("shop.big")
	want := map[string]int{`{"$minKey":1}`: 1, `{"$numberInt":"10"}`: 1, `{"$numberInt":"20"}`: 1, `{"$numberInt":"30"}`: 1}
	if whole != 0 || !maps.Equal(ranges, want) {
		t.Fatalf("source scans by range %v (whole %d), want each range once", ranges, whole)
	}
	if p := resumed.v.progress(); p.RangesCompared != 4 || p.Ranges != 4 || p.NamespacesCompared != 1 {
		t.Fatalf("after the resume: %s", p.Text())
	}
	v := resumed.final()
	if !v.OK() || v.Ranges != 4 || v.Matched != 4 || v.Documents != 40 || v.Continuous.RangesCompared != 0 {
		t.Fatalf("verification %+v, reuse %+v", v, v.Continuous)
	}
}

// More writes to a namespace than can be rechecked one by one void only the
// ranges they fall in (their shard keys, from the entries): the next step
// compares those ranges again, not the namespace.
func TestContinuousVerificationComparesAgainOnlyTheRangesManyWritesTouched(t *testing.T) {
	c := &contClusters{src: newContSide(), dst: newContSide()}
	big := continuousMaxIDs + 10
	shardedOnID(t, c, "shop.big", 40+big, 10, 20, 40)
	r := newContRun(t, c, nil)
	r.v.rangeChunks = 1
	for range 4 {
		r.step()
	}
	// The third range, [20, 40): 10 documents before; big _ids from 40 on
	// fall in the fourth.
	ts := uint32(11)
	for i := range big {
		c.write(ts, "shop.big", 40+i, "v1")
		c.dst.put("shop.big", 40+i, "v1")
		ts++
	}
	c.write(ts, "shop.big", 25, "v1") // and one write in the third, the replay lost it
	r.applied = primitive.Timestamp{T: ts, I: 1}
	if r.step() != true {
		t.Fatalf("the step after the writes compared nothing again: %s %+v", r.v.progress().Text(), r.saved.Namespaces[0].Units)
	}
	r.step()
	ranges, whole := c.src.scansOf("shop.big")
	// [20, 40) three times: compared, then compared again, differing (_id 25),
	// and read once more to name what differs.
	want := map[string]int{`{"$minKey":1}`: 1, `{"$numberInt":"10"}`: 1, `{"$numberInt":"20"}`: 3, `{"$numberInt":"40"}`: 2}
	if whole != 0 || !maps.Equal(ranges, want) {
		t.Fatalf("source scans by range %v (whole %d), want the two written ranges again", ranges, whole)
	}
	p := r.v.progress()
	if p.RangesCompared != 4 || p.Pending+p.Persisting != 1 {
		t.Fatalf("progress %s: want _id 25 differing", p.Text())
	}
	v := r.final()
	if len(v.Mismatches) != 1 || !slices.Equal(v.Mismatches[0].SampleIDs, []string{`{"$numberInt":"25"}`}) {
		t.Fatalf("verification %+v", v)
	}
}

// A document changed on the destination behind Shardlift's back, with no entry
// either oplog shows (as a restored backup would), in a range the continuous
// verification had not reached: the finalize compares that range (and only
// the ranges not compared) and reports the document in it.
func TestFinalizeComparesTheRangesNotComparedAndCatchesATamperedDocument(t *testing.T) {
	c := &contClusters{src: newContSide(), dst: newContSide()}
	shardedOnID(t, c, "shop.big", 40, 10, 20, 30)
	r := newContRun(t, c, nil)
	r.v.rangeChunks = 1
	r.step()
	r.step()
	c.dst.put("shop.big", 33, "tampered")
	c.dst.mu.Lock()
	delete(c.dst.docs["shop.big"], 21)
	c.dst.mu.Unlock()
	v := r.final()
	if v.Continuous.Reused != 1 || v.Continuous.Compared != 0 || v.Continuous.RangesCompared != 2 || v.Ranges != 4 || v.Matched != 2 {
		t.Fatalf("verification %+v, reuse %+v", v, v.Continuous)
	}
	var got []string
	for _, mm := range v.Mismatches {
		got = append(got, fmt.Sprint(mm.Range, " ", mm.SampleIDs))
	}
	if !slices.Equal(got, []string{`[{"_id": {"$numberInt":"20"}}, {"_id": {"$numberInt":"30"}}) [{"$numberInt":"21"}]`, `[{"_id": {"$numberInt":"30"}}, {"_id": {"$maxKey":1}}) [{"$numberInt":"33"}]`}) {
		t.Fatalf("mismatches %q", got)
	}
	ranges, whole := c.src.scansOf("shop.big")
	if whole != 0 || len(ranges) != 4 || ranges[`{"$minKey":1}`] != 1 {
		t.Fatalf("scans %v (whole %d): each range once", ranges, whole)
	}
}

// A destination whose range scans the server refuses (no index of exactly the
// shard key: one prefixed by it serves the key too) has its namespace compared
// whole from the next step on, instead of failing every step.
func TestContinuousVerificationComparesWholeWhereAServerRefusesRangeScans(t *testing.T) {
	c := &contClusters{src: newContSide(), dst: newContSide()}
	shardedOnID(t, c, "shop.big", 40, 10, 20, 30)
	c.dst.noKeyIndex = true
	r := newContRun(t, c, nil)
	if _, err := r.v.step(context.Background()); err == nil {
		t.Fatal("the refused range scan passed")
	}
	if !r.step() {
		t.Fatal("the next step compared nothing")
	}
	if _, whole := c.src.scansOf("shop.big"); whole != 1 {
		t.Fatalf("%d whole scans, want 1", whole)
	}
	if p := r.v.progress(); p.NamespacesCompared != 1 || p.Namespaces != 1 {
		t.Fatalf("progress %s", p.Text())
	}
	if v := r.final(); !v.OK() || v.Continuous.Reused != 1 || v.Continuous.RangesCompared != 0 {
		t.Fatalf("verification %+v, reuse %+v", v, v.Continuous)
	}
}

// A unit is a run of adjacent chunks, at most 16, whichever shards hold them (a
// range scan is not targeted by its bounds: every shard walks its own index
// between them): 40 chunks alternating between two shards make units of 16, 16
// and 8 chunks, each ending where the next begins.
func TestContinuousUnitsRunAcrossShards(t *testing.T) {
	c := &contClusters{src: newContSide(), dst: newContSide()}
	mins := make([]int, 39)
	for i := range mins {
		mins[i] = 10 * (i + 1)
	}
	shardedOnID(t, c, "shop.big", 0, mins...)
	units := unitsOf(c.plan[0], false, continuousRangeChunks)
	var chunks []int
	for i, u := range units {
		chunks = append(chunks, u.Chunks)
		if i > 0 && shardkey.CompareKeys(units[i-1].Max, u.Min) != 0 {
			t.Fatalf("unit %d begins at %s, the one before ends at %s", i, u.Min, units[i-1].Max)
		}
	}
	n := c.plan[0]
	if !slices.Equal(chunks, []int{16, 16, 8}) || shardkey.CompareKeys(units[0].Min, n.Chunks[0].Min) != 0 || shardkey.CompareKeys(units[2].Max, n.Chunks[39].Max) != 0 {
		t.Fatalf("units of %v chunks from %s to %s", chunks, units[0].Min, units[len(units)-1].Max)
	}
}

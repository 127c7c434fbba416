package shard

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// TestFindMinMaxBoundTheIDIndexAcrossTypes checks find's min and max on the _id
// index as MongoDB has them: the index's order, across type classes, min
// included and max excluded; and $sample, which draws the partitions' boundaries.
func TestFindMinMaxBoundTheIDIndexAcrossTypes(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("mixed")
	oid := primitive.ObjectID{0x65}
	ids := []any{nil, int32(-1), 2.5, int64(3), "a", "b", bson.D{{Key: "k", Value: 1}}, primitive.Binary{Data: []byte{1}}, oid, false, true, primitive.DateTime(5), primitive.Timestamp{T: 1}}
	var docs []any
	for i, id := range ids {
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	scan := func(min, max any) []int {
		t.Helper()
		opts := options.Find().SetHint(bson.D{{Key: "_id", Value: 1}}).SetSort(bson.D{{Key: "_id", Value: 1}})
		if min != nil {
			opts.SetMin(bson.D{{Key: "_id", Value: min}})
		}
		if max != nil {
			opts.SetMax(bson.D{{Key: "_id", Value: max}})
		}
		cur, err := coll.Find(ctx, bson.D{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for cur.Next(ctx) {
			got = append(got, int(cur.Current.Lookup("i").Int32()))
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tc := range []struct {
		name     string
		min, max any
		want     []int
	}{
		{"same class", int32(-1), int64(3), []int{1, 2}},
		{"numbers to strings", 2.5, "b", []int{2, 3, 4}},
		{"strings to ObjectIds, classes between by type", "b", oid, []int{5, 6, 7}},
		{"open below", nil, 2.5, []int{0, 1}},
		{"open above", true, nil, []int{10, 11, 12}},
	} {
		got := scan(tc.min, tc.max)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: [%v, %v) scanned %v, want %v", tc.name, tc.min, tc.max, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s: [%v, %v) scanned %v, want %v", tc.name, tc.min, tc.max, got, tc.want)
			}
		}
	}
	_, err := coll.Find(ctx, bson.D{}, options.Find().SetMin(bson.D{{Key: "_id", Value: 1}}))
	if err == nil || !strings.Contains(err.Error(), "hint") {
		t.Fatalf("min without a hint: %v, want MongoDB's refusal asking for a hint", err)
	}

	cur, err := coll.Aggregate(ctx, bson.A{bson.D{{Key: "$sample", Value: bson.D{{Key: "size", Value: 5}}}}, bson.D{{Key: "$project", Value: bson.D{{Key: "_id", Value: 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var sampled []bson.Raw
	if err := cur.All(ctx, &sampled); err != nil {
		t.Fatal(err)
	}
	if len(sampled) != 5 {
		t.Fatalf("$sample of 5 gave %d documents", len(sampled))
	}
}

// TestSampleDecodesItsDrawAtOnce: a $sample of the copy's partition bounds (up to 32
// per partition) decoded one row at a time on the workbench, under the shard's write
// lock, held every write of the shard for two FerretDB round trips per document,
// minutes under load (a user's migration with --partition-min-size 1MiB stopped the
// source's writes for 5 minutes). A real server's $sample blocks no write; the front
// decodes its draw in process (sandbox/sjson), with no workbench round trip.
func TestSampleDecodesItsDrawAtOnce(t *testing.T) {
	f := startFront(t, Config{})
	coll := connect(t, f).Database("app").Collection("numbers")
	ctx := context.Background()
	want := map[int64]bool{}
	var docs []any
	for i := range int64(300) {
		want[i*7] = true
		docs = append(docs, bson.D{{Key: "_id", Value: i * 7}, {Key: "v", Value: strings.Repeat("x", int(i%50))}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	bench := f.mu.nodes[0].be.bench
	f.mu.RUnlock()
	before := bench.trips.Load()
	cur, err := coll.Aggregate(ctx, bson.A{bson.D{{Key: "$sample", Value: bson.D{{Key: "size", Value: 200}}}}, bson.D{{Key: "$project", Value: bson.D{{Key: "_id", Value: 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var sampled []bson.Raw
	if err := cur.All(ctx, &sampled); err != nil {
		t.Fatal(err)
	}
	if trips := bench.trips.Load() - before; trips > 2 {
		t.Errorf("a $sample of 200 took %d workbench round trips under the write lock; want at most 2", trips)
	}
	seen := map[int64]bool{}
	for _, d := range sampled {
		id, ok := d.Lookup("_id").AsInt64OK()
		if elems, _ := d.Elements(); !ok || !want[id] || seen[id] || len(elems) != 1 {
			t.Fatalf("$sample gave %s: want distinct _ids of the collection, alone", d)
		}
		seen[id] = true
	}
	if len(seen) != 200 {
		t.Fatalf("$sample of 200 gave %d documents", len(seen))
	}
	// The bench held 200 documents: a keyed update after it still changes one.
	if res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: int64(7)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: "y"}}}}); err != nil || res.ModifiedCount != 1 {
		t.Fatalf("update after the sample: %+v, %v", res, err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: int64(7)}}).Decode(&got); err != nil || got["v"] != "y" {
		t.Fatalf("after the update: %v, %v", got, err)
	}
}

package shard

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// idsInMongoDBOrder are _ids of the types FerretDB stores, in MongoDB's order across
// types: numbers by exact value whatever their type (2^53 as a double before 2^53+1
// as a long, which a float64 comparison calls equal), then strings bytewise, objects,
// binary data, ObjectIds, booleans and dates.
func idsInMongoDBOrder() []any {
	oid := func(s string) primitive.ObjectID { id, _ := primitive.ObjectIDFromHex(s); return id }
	return []any{
		int64(-1 << 62), int32(-5), -2.5, int32(0), 0.5, int64(1), 2.5, int32(3),
		float64(1 << 53), int64(1<<53 + 1), int64(1<<53 + 2),
		"", "A", "a", "ab", "b",
		bson.D{{Key: "a", Value: int32(1)}}, bson.D{{Key: "a", Value: int32(2)}}, bson.D{{Key: "b", Value: int32(0)}},
		primitive.Binary{Subtype: 0, Data: []byte{1}}, primitive.Binary{Subtype: 0, Data: []byte{1, 2}},
		oid("000000000000000000000001"), oid("5f0000000000000000000000"), oid("ff0000000000000000000000"),
		false, true,
		primitive.NewDateTimeFromTime(time.UnixMilli(-1)), primitive.NewDateTimeFromTime(time.UnixMilli(1700000000000)),
	}
}

func TestAFindSortedByIDStreamsInMongoDBsOrderFromTheFrontsCursor(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("mixed")
	want := idsInMongoDBOrder()
	docs := make([]any, len(want))
	for i, id := range want {
		docs[i] = bson.D{{Key: "_id", Value: id}, {Key: "n", Value: int32(i)}}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	read := func(opts *options.FindOptions, filter bson.D) []int32 {
		t.Helper()
		cur, err := coll.Find(ctx, filter, opts)
		if err != nil {
			t.Fatal(err)
		}
		if cur.ID() == 0 {
			t.Fatal("the first batch closed the cursor")
		}
		if _, own := n.idOrdered.get(cur.ID()); !own {
			t.Fatalf("cursor %d is FerretDB's: the front left the sorted find to it", cur.ID())
		}
		var got []int32
		for cur.Next(ctx) {
			got = append(got, cur.Current.Lookup("n").Int32())
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		if _, open := n.idOrdered.get(cur.ID()); open {
			t.Fatal("the exhausted cursor stays open")
		}
		return got
	}
	in := func(lo, hi int) []int32 {
		var out []int32
		for i := lo; i < hi; i++ {
			out = append(out, int32(i))
		}
		return out
	}
	if got := read(options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(4), bson.D{}); !slices.Equal(got, in(0, len(want))) {
		t.Fatalf("ascending: %v", got)
	}
	desc := in(0, len(want))
	slices.Reverse(desc)
	if got := read(options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetBatchSize(4), bson.D{}); !slices.Equal(got, desc) {
		t.Fatalf("descending: %v", got)
	}
	if got := read(options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(2).SetLimit(5), bson.D{}); !slices.Equal(got, in(0, 5)) {
		t.Fatalf("limit 5: %v", got)
	}
	// A filter is FerretDB's, applied as it reads: the strings only.
	if got := read(options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(2), bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: "string"}}}}); !slices.Equal(got, in(11, 16)) {
		t.Fatalf("strings: %v", got)
	}

	// A cursor killed is gone; one left half read is killed with the others of the
	// command, FerretDB's among them.
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(3))
	if err != nil {
		t.Fatal(err)
	}
	other, err := coll.Find(ctx, bson.D{}, options.Find().SetBatchSize(3))
	if err != nil {
		t.Fatal(err)
	}
	reply := c.Database("shop").RunCommand(ctx, bson.D{{Key: "killCursors", Value: "mixed"}, {Key: "cursors", Value: bson.A{cur.ID(), other.ID()}}})
	var killed struct {
		Killed []int64 `bson:"cursorsKilled"`
	}
	if err := reply.Decode(&killed); err != nil {
		t.Fatal(err)
	}
	if slices.Sort(killed.Killed); !slices.Equal(killed.Killed, slices.Sorted(slices.Values([]int64{cur.ID(), other.ID()}))) {
		t.Fatalf("killed %v, want %d and %d", killed.Killed, cur.ID(), other.ID())
	}
	if _, open := n.idOrdered.get(cur.ID()); open {
		t.Fatal("the killed cursor stays open")
	}
	// A find with a projection stays FerretDB's.
	proj, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(3).SetProjection(bson.D{{Key: "n", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	defer proj.Close(ctx)
	if _, own := n.idOrdered.get(proj.ID()); own {
		t.Fatal("a find with a projection went to the front's cursor")
	}
}

// Large documents are read from FerretDB in batches that fit in a wire message:
// 60 documents of 1 MiB, 60 MiB in all, come back sorted.
func TestAFindSortedByIDReadsLargeDocumentsInBatchesThatFit(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("large")
	pad := strings.Repeat("x", 1<<20)
	var docs []any
	for i := range 60 {
		docs = append(docs, bson.D{{Key: "_id", Value: int32(59 - i)}, {Key: "pad", Value: pad}})
	}
	for start := 0; start < len(docs); start += 10 {
		if _, err := coll.InsertMany(ctx, docs[start:start+10]); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	for cur.Next(ctx) {
		ids = append(ids, cur.Current.Lookup("_id").Int32())
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 60 || !slices.IsSorted(ids) {
		t.Fatalf("%d documents, in order %v", len(ids), ids)
	}
}

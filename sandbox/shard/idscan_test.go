package shard

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// insertShuffled inserts {_id: i, n: i} for i in ids, in a shuffled order.
func insertShuffled(t *testing.T, coll *mongo.Collection, ids []int32) {
	t.Helper()
	docs := make([]any, len(ids))
	for i, id := range ids {
		docs[i] = bson.D{{Key: "_id", Value: id}, {Key: "n", Value: id}}
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := coll.InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
}

func count(lo, hi int32) []int32 {
	var out []int32
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// readN reads the n field of every document of cur.
func readN(t *testing.T, cur *mongo.Cursor) []int32 {
	t.Helper()
	var got []int32
	for cur.Next(context.Background()) {
		got = append(got, cur.Current.Lookup("n").AsInt32())
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// A find sorted by _id reads, for its first batch, about that batch from the shard's
// SQLite table, not the collection; a range bounded by min and max on the _id index
// reads the range. So a copy's first write comes at once, and a partition costs what
// it holds.
func TestAnIDScanReadsWhatItServesNotTheCollection(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("orders")
	insertShuffled(t, coll, count(0, 5000))
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}

	before := n.idScanRows.Load()
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	if read := n.idScanRows.Load() - before; read == 0 || read > 10 {
		t.Fatalf("the first batch of 10 read %d rows", read)
	}
	if got := readN(t, cur); !slices.Equal(got, count(0, 5000)) {
		t.Fatalf("the whole scan gave %d documents, not 0 to 4999 in order", len(got))
	}

	before = n.idScanRows.Load()
	hint := bson.D{{Key: "_id", Value: 1}}
	cur, err = coll.Find(ctx, bson.D{}, options.Find().SetSort(hint).SetHint(hint).
		SetMin(bson.D{{Key: "_id", Value: int32(1000)}}).SetMax(bson.D{{Key: "_id", Value: int64(1500)}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := readN(t, cur); !slices.Equal(got, count(1000, 1500)) {
		t.Fatalf("the range [1000, 1500) gave %v", got)
	}
	// Each page reads again the row it starts after.
	if read := n.idScanRows.Load() - before; read < 500 || read > 505 {
		t.Fatalf("the range of 500 documents read %d rows", read)
	}
}

// Between two batches the scan sees what a mongod's _id index scan sees: documents
// inserted ahead of it, not those deleted, updates made before it got there; nothing
// twice and nothing behind it.
func TestAnIDScanSeesWritesAheadOfItBetweenBatches(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("orders")
	var even []int32
	for i := int32(0); i < 100; i += 2 {
		even = append(even, i)
	}
	insertShuffled(t, coll, even)
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	var got []int32
	for range 10 {
		cur.Next(ctx)
		got = append(got, cur.Current.Lookup("n").AsInt32())
	}
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: int32(5)}, {Key: "n", Value: int32(5)}}, bson.D{{Key: "_id", Value: int32(51)}, {Key: "n", Value: int32(51)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: int32(60)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: int32(70)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int32(-70)}}}}); err != nil {
		t.Fatal(err)
	}
	got = append(got, readN(t, cur)...)
	var want []int32
	for _, i := range even {
		switch i {
		case 52:
			want = append(want, 51, 52)
		case 60:
		case 70:
			want = append(want, -70)
		default:
			want = append(want, i)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %v\nwant %v", got, want)
	}
}

// Bounds across type classes, with the classes the index does not order (documents,
// binaries) between them: each class in MongoDB's order, the bounds' own classes cut
// at the bounds; a filter on _id (a copy's resume) applies on top.
func TestAnIDScanKeepsMongoDBsOrderAcrossTypeClassesWithinBounds(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("mixed")
	ids := idsInMongoDBOrder()
	docs := make([]any, len(ids))
	for i, id := range ids {
		docs[i] = bson.D{{Key: "_id", Value: id}, {Key: "n", Value: int32(i)}}
	}
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	at := func(i int) bson.D { return bson.D{{Key: "_id", Value: ids[i]}} }
	hint := bson.D{{Key: "_id", Value: 1}}
	for _, tc := range []struct {
		name   string
		opts   *options.FindOptions
		filter bson.D
		want   []int32
	}{
		{"whole", options.Find(), bson.D{}, count(0, int32(len(ids)))},
		{"from a number to a string", options.Find().SetHint(hint).SetMin(at(5)).SetMax(at(13)), bson.D{}, count(5, 13)},
		{"from a string over documents and binaries to an ObjectId", options.Find().SetHint(hint).SetMin(at(13)).SetMax(at(22)), bson.D{}, count(13, 22)},
		{"from a boolean on", options.Find().SetHint(hint).SetMin(at(24)), bson.D{}, count(24, int32(len(ids)))},
		{"a resume after a string", options.Find(), bson.D{{Key: "_id", Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$lte", Value: "a"}}}}}},
			append(count(0, 11), count(14, int32(len(ids)))...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := coll.Find(ctx, tc.filter, tc.opts.SetSort(hint).SetBatchSize(3))
			if err != nil {
				t.Fatal(err)
			}
			if got := readN(t, cur); !slices.Equal(got, tc.want) {
				t.Fatalf("read %v\nwant %v", got, tc.want)
			}
		})
	}
}

// Every query of a page is a search of the index of _id order: no scan of the table
// or of the index from its start, no sort.
func TestAnIDScanPageSearchesTheIndex(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	if _, err := c.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	conn, table := shardSQL(t, dir, "app", "c")
	num := func(v int32) bsoncore.Value {
		return bsoncore.Value{Type: bson.TypeInt32, Data: bsoncore.AppendInt32(nil, v)}
	}
	oid := primitive.NewObjectID()
	for name, s := range map[string]*idScan{
		"first page":          {},
		"from min to max":     {lo: num(5), hi: bsoncore.Value{Type: bson.TypeObjectID, Data: oid[:]}},
		"after a row":         {started: true, inClass: true, afterClass: 10, afterValue: int64(7), afterRow: 3, hi: num(9)},
		"after a whole class": {started: true, afterClass: 20},
	} {
		for _, q := range s.pageSQL(table, 100) {
			joined := queryPlan(t, conn, q.sql, q.args...)
			if !strings.HasPrefix(joined, "SEARCH "+table+" USING INDEX "+table+"_shardlift_idorder") || strings.Contains(joined, "SCAN") || strings.Contains(joined, "TEMP B-TREE") {
				t.Errorf("%s: %s\nplan %s; want a search of the _id order index", name, q.sql, joined)
			}
		}
	}
}

// A collection scan (no filter, no sort) reads the table in pages as the _id index
// scan does, in the order FerretDB gives: what it gave before is what it gives now;
// with a filter it stays FerretDB's.
func TestACollectionScanReadsTheTableInPages(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("orders")
	insertShuffled(t, coll, count(0, 3000))
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	before := n.idScanRows.Load()
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetBatchSize(7))
	if err != nil {
		t.Fatal(err)
	}
	if read := n.idScanRows.Load() - before; read == 0 || read > 7 {
		t.Fatalf("the first batch of 7 read %d rows", read)
	}
	got := readN(t, cur)
	if read := n.idScanRows.Load() - before; read != 3000 {
		t.Fatalf("the scan read %d rows of 3000", read)
	}
	raw, err := n.be.run(ctx, "shop", bson.D{{Key: "find", Value: "orders"}, {Key: "batchSize", Value: 5000}})
	if err != nil {
		t.Fatal(err)
	}
	var want []int32
	for _, v := range values(raw.Lookup("cursor", "firstBatch")) {
		want = append(want, v.Document().Lookup("n").AsInt32())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the scan's order differs from FerretDB's: %v...\nwant %v...", got[:10], want[:10])
	}

	before = n.idScanRows.Load()
	if _, err := coll.Find(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: 10}}}}); err != nil {
		t.Fatal(err)
	}
	if read := n.idScanRows.Load() - before; read != 0 {
		t.Fatalf("a filtered collection scan read %d rows itself", read)
	}
}

// A collection renamed or dropped under a scan kills it with QueryPlanKilled, as a
// mongod kills its cursor: a scan that ended quietly would say it read everything.
func TestAnIDScanOfACollectionRenamedOrDroppedIsKilled(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	for _, ddl := range []string{"renameCollection", "drop"} {
		t.Run(ddl, func(t *testing.T) {
			coll := c.Database("shop").Collection("orders_" + ddl)
			insertShuffled(t, coll, count(0, 100))
			cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(10))
			if err != nil {
				t.Fatal(err)
			}
			cmd := bson.D{{Key: "drop", Value: coll.Name()}}
			db := "shop"
			if ddl == "renameCollection" {
				cmd, db = bson.D{{Key: "renameCollection", Value: "shop." + coll.Name()}, {Key: "to", Value: "shop.renamed"}}, "admin"
			}
			if err := c.Database(db).RunCommand(ctx, cmd).Err(); err != nil {
				t.Fatal(err)
			}
			n := 0
			for cur.Next(ctx) {
				n++
			}
			if n != 10 || commandCode(cur.Err()) != 175 {
				t.Fatalf("read %d documents, then %v; want the first batch of 10, then QueryPlanKilled", n, cur.Err())
			}
		})
	}
}

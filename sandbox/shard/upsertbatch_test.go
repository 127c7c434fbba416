package shard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// replaceUpsert is a replacement of the document of _id id with upsert, as an oplog
// replay sends an insert.
func replaceUpsert(id any, fields ...bson.E) mongo.WriteModel {
	return mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).
		SetReplacement(append(bson.D{{Key: "_id", Value: id}}, fields...)).SetUpsert(true)
}

func upsertsTogether(t *testing.T, f *Front) int64 {
	t.Helper()
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	return n.upsertsTogether.Load()
}

// Replace-upserts of _ids without documents are inserted together, whatever the _id's
// type, and each still answers and logs as one upsert: its index and _id in the reply,
// its own insert entry, in statement order.
func TestReplaceUpsertsOfNewIDsAreInsertedTogether(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "first"}}); err != nil {
		t.Fatal(err)
	}
	var models []mongo.WriteModel
	var ids []any
	// (From 11: FerretDB stores the date 1970-01-01, i = 10, with the text of 0.)
	for i := 11; i < 51; i++ {
		for _, k := range idKinds {
			id := k.id(i)
			ids = append(ids, id)
			models = append(models, replaceUpsert(id, bson.E{Key: "kind", Value: k.name}, bson.E{Key: "i", Value: i}))
		}
	}
	from := lastTS(t, c)
	res, err := coll.BulkWrite(ctx, models)
	if err != nil {
		t.Fatal(err)
	}
	if res.UpsertedCount != int64(len(models)) || len(res.UpsertedIDs) != len(models) {
		t.Fatalf("%d upserted (%d ids), want %d", res.UpsertedCount, len(res.UpsertedIDs), len(models))
	}
	for i, id := range ids {
		want, _ := bson.Marshal(bson.D{{Key: "v", Value: id}})
		got, _ := bson.Marshal(bson.D{{Key: "v", Value: res.UpsertedIDs[int64(i)]}})
		if string(want) != string(got) {
			t.Fatalf("statement %d upserted %v, want %v", i, res.UpsertedIDs[int64(i)], id)
		}
	}
	if got := upsertsTogether(t, f); got != int64(len(models)) {
		t.Errorf("%d upserts inserted together, want all %d", got, len(models))
	}
	entries := entriesAfter(t, c, from)
	if len(entries) != len(models) {
		t.Fatalf("%d oplog entries, want an insert per upsert (%d)", len(entries), len(models))
	}
	for i, e := range entries {
		if op := e.Lookup("op").StringValue(); op != "i" {
			t.Fatalf("entry %d: %s, want an insert", i, e)
		}
		doc := e.Lookup("o").Document()
		if k, want := doc.Lookup("kind").StringValue(), idKinds[i%len(idKinds)].name; k != want || doc.Lookup("i").Int32() != int32(11+i/len(idKinds)) {
			t.Fatalf("entry %d is %s, want statement %d's document (%s)", i, doc, i, want)
		}
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != int64(len(models))+1 {
		t.Errorf("%d documents (%v), want %d", n, err, len(models)+1)
	}
}

// Among other statements, the upserts of new _ids keep their place: a statement that
// finds its document (a replacement, an update) or repeats an _id runs alone, and the
// entries follow the statements' order.
func TestUpsertsInsertedTogetherKeepTheirPlace(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("c")
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "b"}, {Key: "v", Value: 0}}, bson.D{{Key: "_id", Value: "e"}, {Key: "v", Value: 0}}}); err != nil {
		t.Fatal(err)
	}
	models := []mongo.WriteModel{
		replaceUpsert("a", bson.E{Key: "v", Value: 1}),
		replaceUpsert("b", bson.E{Key: "v", Value: 1}), // replaces
		replaceUpsert("c", bson.E{Key: "v", Value: 1}),
		replaceUpsert("d", bson.E{Key: "v", Value: 1}),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: "e"}}).SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 1}}}}),
		replaceUpsert("a", bson.E{Key: "v", Value: 2}), // replaces what statement 0 inserted
		replaceUpsert("f", bson.E{Key: "v", Value: 1}),
	}
	from := lastTS(t, c)
	res, err := coll.BulkWrite(ctx, models)
	if err != nil {
		t.Fatal(err)
	}
	if res.UpsertedCount != 4 || res.MatchedCount != 3 || res.ModifiedCount != 3 {
		t.Errorf("upserted %d, matched %d, modified %d: want 4, 3, 3", res.UpsertedCount, res.MatchedCount, res.ModifiedCount)
	}
	for i, id := range map[int64]string{0: "a", 2: "c", 3: "d", 6: "f"} {
		if res.UpsertedIDs[i] != id {
			t.Errorf("statement %d upserted %v, want %s", i, res.UpsertedIDs[i], id)
		}
	}
	var got []string
	for _, e := range entriesAfter(t, c, from) {
		key := "o"
		if e.Lookup("op").StringValue() == "u" {
			key = "o2"
		}
		id := e.Lookup(key, "_id").StringValue()
		got = append(got, e.Lookup("op").StringValue()+" "+id)
	}
	if want := "i a, u b, i c, i d, u e, u a, i f"; strings.Join(got, ", ") != want {
		t.Errorf("entries %s, want %s", strings.Join(got, ", "), want)
	}
	if n := upsertsTogether(t, f); n != 2 {
		t.Errorf("%d upserts inserted together, want 2 (c and d; a and f are alone in their runs)", n)
	}
	var a bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&a); err != nil || a["v"] != int32(2) {
		t.Errorf("a is %v (%v), want v: 2", a, err)
	}
}

// An upsert that fails on a unique index fails alone: an ordered command stops there
// (the upserts before it are done, the ones after it are not), an unordered one goes
// on; only what was inserted is logged.
func TestAnUpsertInsertedTogetherFailsAlone(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			f := startFront(t, Config{})
			c := connect(t, f)
			ctx := context.Background()
			coll := c.Database("app").Collection("c")
			if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
				t.Fatal(err)
			}
			models := []mongo.WriteModel{
				replaceUpsert(1, bson.E{Key: "email", Value: "x"}),
				replaceUpsert(2, bson.E{Key: "email", Value: "y"}),
				replaceUpsert(3, bson.E{Key: "email", Value: "x"}),
				replaceUpsert(4, bson.E{Key: "email", Value: "z"}),
				replaceUpsert(5, bson.E{Key: "email", Value: "w"}),
			}
			from := lastTS(t, c)
			_, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(ordered))
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 1 || bwe.WriteErrors[0].Index != 2 || bwe.WriteErrors[0].Code != 11000 {
				t.Fatalf("got %v, want one duplicate key error at statement 2", err)
			}
			want := []int32{1, 2}
			if !ordered {
				want = []int32{1, 2, 4, 5}
			}
			var got []int32
			for _, e := range entriesAfter(t, c, from) {
				got = append(got, e.Lookup("o", "_id").Int32())
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("inserts logged for %v, want %v", got, want)
			}
			if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != int64(len(want)) {
				t.Errorf("%d documents (%v), want %d", n, err, len(want))
			}
		})
	}
}

// A retried command of upserts inserted together is not applied twice.
func TestARetriedCommandOfUpsertsIsAppliedOnce(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	lsid := bson.D{{Key: "id", Value: primitive.Binary{Subtype: 4, Data: []byte("0123456789abcdef")}}}
	cmd := bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: bson.A{
		bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "u", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "upsert", Value: true}},
		bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: 2}}}, {Key: "u", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "upsert", Value: true}},
	}}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(7)}}
	from := lastTS(t, c)
	for try := range 2 {
		var reply bson.Raw
		if err := c.Database("app").RunCommand(ctx, cmd).Decode(&reply); err != nil {
			t.Fatalf("try %d: %v", try, err)
		}
		if n := reply.Lookup("n").Int32(); n != 2 {
			t.Errorf("try %d: n %d, want 2: %s", try, n, reply)
		}
	}
	inserts := 0
	for _, e := range entriesAfter(t, c, from) {
		if e.Lookup("op").StringValue() == "i" {
			inserts++
		}
	}
	if inserts != 2 {
		t.Errorf("%d inserts logged after the retry, want the 2 of the first try", inserts)
	}
	if n := upsertsTogether(t, f); n != 2 {
		t.Errorf("%d upserts inserted together, want 2", n)
	}
}

// An upsert whose _id has a document under another number type (5.0 for the int 5,
// which MongoDB counts as one _id) runs alone and replaces that document.
func TestAnUpsertOfAnEqualNumberRunsAlone(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: int32(5)}, {Key: "v", Value: "int"}}); err != nil {
		t.Fatal(err)
	}
	res, err := coll.BulkWrite(ctx, []mongo.WriteModel{replaceUpsert(5.0, bson.E{Key: "v", Value: "double"}), replaceUpsert(6.0)})
	if err != nil {
		t.Fatal(err)
	}
	if res.MatchedCount != 1 || res.UpsertedCount != 1 || res.UpsertedIDs[1] != 6.0 {
		t.Errorf("matched %d, upserted %v: want 5 replaced and 6.0 inserted", res.MatchedCount, res.UpsertedIDs)
	}
	var five bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: 5}}).Decode(&five); err != nil || five["v"] != "double" {
		t.Errorf("_id 5 is %v (%v), want the replacement", five, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
		t.Errorf("%d documents (%v), want 2", n, err)
	}
	if n := upsertsTogether(t, f); n != 0 {
		t.Errorf("%d upserts inserted together, want none (each is alone in its run)", n)
	}
}

// The look-up of the command's _ids searches the _id index, once per text.
func TestPresentIDsSearchesTheIDIndex(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	if _, err := c.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	conn, table := shardSQL(t, dir, "app", "c")
	plan := queryPlan(t, conn, presentIDsSQL(table, 3), "1", "2", `"x"`)
	if !strings.Contains(plan, "SEARCH") || strings.Contains(plan, "SCAN "+table) {
		t.Errorf("plan %q: want a search of the _id index, no scan of the table", plan)
	}
}

package faults_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
)

// The comparison every scenario ends with must catch one lost, one extra and one
// altered document, field order included, and a whole namespace missing on one side.
func TestCompareCatchesASingleLostExtraOrAlteredDocument(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two sandbox clusters")
	}
	ctx := context.Background()
	var clients [2]*mongo.Client
	for i, name := range []string{"source", "destination"} {
		c, err := sandbox.Start(ctx, name, sandbox.Options{Shards: 1, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = connect(t, c.URI())
	}
	src, dst := clients[0], clients[1]
	docs := []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: "x"}, {Key: "b", Value: 2}},
		bson.D{{Key: "_id", Value: 2}, {Key: "a", Value: "y"}},
		bson.D{{Key: "_id", Value: 3}, {Key: "a", Value: "z"}},
	}
	insert(t, src, "db", "c", docs...)
	insert(t, dst, "db", "c", docs...)
	check := func(what string, want faults.Diff) {
		t.Helper()
		got, err := faults.Compare(ctx, src, dst)
		if err != nil {
			t.Fatal(err)
		}
		if got.Lost != want.Lost || got.Extra != want.Extra || got.Different != want.Different || got.Duplicated != want.Duplicated || got.OK() != want.OK() {
			t.Fatalf("%s: got %+v, want lost %d extra %d different %d", what, got, want.Lost, want.Extra, want.Different)
		}
	}
	check("equal", faults.Diff{})
	if _, err := dst.Database("db").Collection("c").DeleteOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	check("one lost", faults.Diff{Lost: 1})
	insert(t, dst, "db", "c", bson.D{{Key: "_id", Value: 2}, {Key: "a", Value: "y"}}, bson.D{{Key: "_id", Value: 4}})
	check("one extra", faults.Diff{Extra: 1})
	if _, err := dst.Database("db").Collection("c").DeleteOne(ctx, bson.D{{Key: "_id", Value: 4}}); err != nil {
		t.Fatal(err)
	}
	// The same fields in another order are another document.
	if _, err := dst.Database("db").Collection("c").ReplaceOne(ctx, bson.D{{Key: "_id", Value: 1}},
		bson.D{{Key: "_id", Value: 1}, {Key: "b", Value: 2}, {Key: "a", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	check("fields reordered", faults.Diff{Different: 1})
	if _, err := dst.Database("db").Collection("c").ReplaceOne(ctx, bson.D{{Key: "_id", Value: 1}}, docs[0]); err != nil {
		t.Fatal(err)
	}
	insert(t, src, "other", "only_on_source", bson.D{{Key: "_id", Value: "s"}})
	check("a namespace missing on the destination", faults.Diff{Lost: 1})
}

func insert(t *testing.T, c *mongo.Client, db, coll string, docs ...any) {
	t.Helper()
	if _, err := c.Database(db).Collection(coll).InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
}

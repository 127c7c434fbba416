package shard

import (
	"bytes"
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	engineoplog "github.com/shardlift/shardlift/engine/oplog"
)

const testUUID = `{"$binary": {"base64": "AAECAwQFBgcICQoLDA0ODw==", "subType": "04"}}`

func setCollection(t *testing.T, c *mongo.Client, db, coll string, key bson.D) {
	t.Helper()
	cmd := bson.D{{Key: "_sandboxSetCollection", Value: coll}}
	if key != nil {
		cmd = append(cmd, bson.E{Key: "key", Value: key})
	}
	cmd = append(cmd, bson.E{Key: "uuid", Value: primitive.Binary{Subtype: 4, Data: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}})
	if err := c.Database(db).RunCommand(context.Background(), cmd).Err(); err != nil {
		t.Fatalf("_sandboxSetCollection: %v", err)
	}
}

// expectEntries checks entries (ts and wall aside) against extended JSON documents.
func expectEntries(t *testing.T, got []bson.Raw, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("got entry %s", g)
		}
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g := without(got[i], "ts", "wall")
		w := ext(t, want[i])
		if !bytes.Equal(g, w) {
			t.Errorf("entry %d:\n got  %s\n want %s", i, g, w)
		}
	}
}

func TestWritesProduceMongoDBOplogEntries(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f, options.Client().SetRetryWrites(false)) // retryable writes: see sessions_test.go
	ctx := context.Background()
	coll := c.Database("app").Collection("people")
	setCollection(t, c, "app", "people", bson.D{{Key: "sk", Value: 1}})

	start := lastTS(t, c)
	doc := ext(t, `{"_id": 1, "sk": "a", "name": "Ann", "prof": {"city": "Paris", "zip": "75001", "street": "Rue de Rivoli"}, "tags": ["a", "b", "c"]}`)
	if _, err := coll.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	expectEntries(t, entriesAfter(t, c, start),
		`{"op": "c", "ns": "app.$cmd", "ui": `+testUUID+`, "o": {"create": "people", "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}, "t": {"$numberLong": "1"}, "v": {"$numberLong": "2"}}`,
		`{"op": "i", "ns": "app.people", "ui": `+testUUID+`, "o": `+doc.String()+`, "o2": {"_id": 1, "sk": "a"}, "t": {"$numberLong": "1"}, "v": {"$numberLong": "2"}}`,
	)

	// Each update must log exactly the $v:2 diff MongoDB writes, and that diff must
	// rebuild the post-image from the pre-image byte for byte.
	updates := []struct {
		name   string
		update bson.D
		diff   string
	}{
		{"nested sub-document change", bson.D{{Key: "$set", Value: bson.D{{Key: "prof.city", Value: "Lyon"}}}},
			`{"sprof": {"u": {"city": "Lyon"}}}`},
		{"array append", bson.D{{Key: "$push", Value: bson.D{{Key: "tags", Value: "d"}}}},
			`{"stags": {"a": true, "u3": "d"}}`},
		{"array shrink", bson.D{{Key: "$pop", Value: bson.D{{Key: "tags", Value: 1}}}},
			`{"stags": {"a": true, "l": 3}}`},
		{"array element change", bson.D{{Key: "$set", Value: bson.D{{Key: "tags.0", Value: "z"}}}},
			`{"stags": {"a": true, "u0": "z"}}`},
		{"unset and new field", bson.D{{Key: "$unset", Value: bson.D{{Key: "name", Value: ""}}}, {Key: "$set", Value: bson.D{{Key: "age", Value: 30}}}},
			`{"d": {"name": false}, "i": {"age": 30}}`},
		{"type change in place", bson.D{{Key: "$set", Value: bson.D{{Key: "sk", Value: "a"}, {Key: "age", Value: "thirty"}}}},
			`{"u": {"age": "thirty"}}`},
	}
	for _, u := range updates {
		var pre, post bson.Raw
		pre, _ = coll.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Raw()
		before := lastTS(t, c)
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "sk", Value: "a"}}, u.update); err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
		post, _ = coll.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Raw()
		entries := entriesAfter(t, c, before)
		expectEntries(t, entries,
			`{"op": "u", "ns": "app.people", "ui": `+testUUID+`, "o": {"$v": 2, "diff": `+u.diff+`}, "o2": {"_id": 1, "sk": "a"}, "t": {"$numberLong": "1"}, "v": {"$numberLong": "2"}}`)
		diff := entries[0].Lookup("o", "diff").Document()
		rebuilt, err := engineoplog.ApplyDiff(pre, diff)
		if err != nil || !bytes.Equal(rebuilt, post) {
			t.Errorf("%s: diff applied to the pre-image gives %s (%v), want %s", u.name, rebuilt, err, post)
		}
	}

	// A replacement logs the whole new document; a delete logs the document key.
	before := lastTS(t, c)
	if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "sk", Value: "a"}, {Key: "only", Value: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 2}, {Key: "sk", Value: "b"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 1}}}}, options.Update().SetUpsert(true)); err != nil {
		t.Fatal(err)
	}
	expectEntries(t, entriesAfter(t, c, before),
		`{"op": "u", "ns": "app.people", "ui": `+testUUID+`, "o": {"_id": 1, "sk": "a", "only": true}, "o2": {"_id": 1, "sk": "a"}, "t": {"$numberLong": "1"}, "v": {"$numberLong": "2"}}`,
		`{"op": "d", "ns": "app.people", "ui": `+testUUID+`, "o": {"_id": 1, "sk": "a"}, "t": {"$numberLong": "1"}, "v": {"$numberLong": "2"}}`,
		`{"op": "i", "ns": "app.people", "ui": `+testUUID+`, "o": {"_id": 2, "sk": "b", "n": 1}, "o2": {"_id": 2, "sk": "b"}, "t": {"$numberLong": "1"}, "v": {"$numberLong": "2"}}`,
	)
}

func TestFromMigrateMarksInsertAndDeleteEntries(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	db := c.Database("app")
	if _, err := db.Collection("m").InsertOne(ctx, bson.D{{Key: "_id", Value: "plain"}}); err != nil {
		t.Fatal(err)
	}
	before := lastTS(t, c)
	if err := db.RunCommand(ctx, bson.D{
		{Key: "insert", Value: "m"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: "moved"}}}}, {Key: "fromMigrate", Value: true},
	}).Err(); err != nil {
		t.Fatalf("insert fromMigrate: %v", err)
	}
	if err := db.RunCommand(ctx, bson.D{
		{Key: "delete", Value: "m"}, {Key: "deletes", Value: bson.A{bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "moved"}}}, {Key: "limit", Value: 1}}}}, {Key: "fromMigrate", Value: true},
	}).Err(); err != nil {
		t.Fatalf("delete fromMigrate: %v", err)
	}
	if _, err := db.Collection("m").DeleteOne(ctx, bson.D{{Key: "_id", Value: "plain"}}); err != nil {
		t.Fatal(err)
	}
	got := entriesAfter(t, c, before)
	if len(got) != 3 {
		t.Fatalf("got %d entries, want 3", len(got))
	}
	for i, want := range []bool{true, true, false} {
		fm, _ := got[i].Lookup("fromMigrate").BooleanOK()
		if fm != want {
			t.Errorf("entry %d (%s): fromMigrate = %v, want %v", i, got[i].Lookup("op"), fm, want)
		}
	}
}

package shard

import (
	"bytes"
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// expectCommandEntries checks the o (and o2 when given) of `c` entries.
func expectCommandEntries(t *testing.T, got []bson.Raw, want ...[2]string) {
	t.Helper()
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("got entry %s", g)
		}
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		if op := got[i].Lookup("op").StringValue(); op != "c" {
			t.Errorf("entry %d is %q, want a c entry", i, op)
		}
		if o := got[i].Lookup("o").Document(); !bytes.Equal(o, ext(t, w[0])) {
			t.Errorf("entry %d o:\n got  %s\n want %s", i, o, ext(t, w[0]))
		}
		if w[1] != "" {
			if o2 := got[i].Lookup("o2").Document(); !bytes.Equal(o2, ext(t, w[1])) {
				t.Errorf("entry %d o2:\n got  %s\n want %s", i, o2, ext(t, w[1]))
			}
		}
	}
}

func indexNames(t *testing.T, coll *mongo.Collection) map[string]bson.M {
	t.Helper()
	cur, err := coll.Indexes().List(context.Background())
	if err != nil {
		t.Fatalf("listIndexes: %v", err)
	}
	var specs []bson.M
	if err := cur.All(context.Background(), &specs); err != nil {
		t.Fatal(err)
	}
	out := map[string]bson.M{}
	for _, s := range specs {
		out[s["name"].(string)] = s
	}
	return out
}

func collectionInfo(t *testing.T, db *mongo.Database, name string) bson.M {
	t.Helper()
	cur, err := db.ListCollections(context.Background(), bson.D{{Key: "name", Value: name}})
	if err != nil {
		t.Fatal(err)
	}
	var infos []bson.M
	if err := cur.All(context.Background(), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("listCollections for %s: %v", name, infos)
	}
	return infos[0]
}

func TestDDLProducesCommandEntries(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	db := c.Database("app")
	idIndex := `"idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}`

	start := lastTS(t, c)
	if err := db.CreateCollection(ctx, "events", options.CreateCollection().SetCapped(true).SetSizeInBytes(4096)); err != nil {
		t.Fatalf("create capped: %v", err)
	}
	users := db.Collection("users")
	models := []mongo.IndexModel{
		{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true).SetName("email_1")},
		{Keys: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: -1}}, Options: options.Index().SetName("a_1_b_-1")},
		{Keys: bson.D{{Key: "h", Value: "hashed"}}, Options: options.Index().SetName("h_hashed")},
		{Keys: bson.D{{Key: "createdAt", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(3600).SetName("createdAt_1")},
		{Keys: bson.D{{Key: "p", Value: 1}}, Options: options.Index().SetPartialFilterExpression(bson.D{{Key: "p", Value: bson.D{{Key: "$gt", Value: 0}}}}).SetName("p_1")},
	}
	if _, err := users.Indexes().CreateMany(ctx, models); err != nil {
		t.Fatalf("createIndexes: %v", err)
	}
	expectCommandEntries(t, entriesAfter(t, c, start),
		[2]string{`{"create": "events", "capped": true, "size": {"$numberLong": "4096"}, ` + idIndex + `}`, ""},
		[2]string{`{"create": "users", ` + idIndex + `}`, ""},
		[2]string{`{"createIndexes": "users", "v": 2, "key": {"email": 1}, "name": "email_1", "unique": true}`, ""},
		[2]string{`{"createIndexes": "users", "v": 2, "key": {"a": 1, "b": -1}, "name": "a_1_b_-1"}`, ""},
		[2]string{`{"createIndexes": "users", "v": 2, "key": {"h": "hashed"}, "name": "h_hashed"}`, ""},
		[2]string{`{"createIndexes": "users", "v": 2, "key": {"createdAt": 1}, "name": "createdAt_1", "expireAfterSeconds": 3600}`, ""},
		[2]string{`{"createIndexes": "users", "v": 2, "key": {"p": 1}, "name": "p_1", "partialFilterExpression": {"p": {"$gt": 0}}}`, ""},
	)
	if capped := collectionInfo(t, db, "events")["options"].(bson.M); capped["capped"] != true {
		t.Fatalf("listCollections does not show events as capped: %v", capped)
	}
	ix := indexNames(t, users)
	if len(ix) != 6 || ix["h_hashed"]["key"].(bson.M)["h"] != "hashed" || ix["createdAt_1"]["expireAfterSeconds"] != int32(3600) || ix["email_1"]["unique"] != true {
		t.Fatalf("listIndexes: %v", ix)
	}
	// Creating the same index again is a no-op, and logs nothing.
	before := lastTS(t, c)
	if _, err := users.Indexes().CreateOne(ctx, models[2]); err != nil {
		t.Fatalf("re-create hashed index: %v", err)
	}
	if got := entriesAfter(t, c, before); len(got) != 0 {
		t.Fatalf("re-creating an index logged %v", got)
	}

	// collMod changes the TTL (kept by the front) and can make a FerretDB index a TTL one.
	var res bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "collMod", Value: "users"}, {Key: "index", Value: bson.D{{Key: "name", Value: "createdAt_1"}, {Key: "expireAfterSeconds", Value: 7200}}}}).Decode(&res); err != nil {
		t.Fatalf("collMod: %v", err)
	}
	if res["expireAfterSeconds_old"] != int32(3600) || res["expireAfterSeconds_new"] != int64(7200) {
		t.Fatalf("collMod reply: %v", res)
	}
	uuid := collectionInfo(t, db, "users")["info"].(bson.M)["uuid"].(primitive.Binary)
	uuidJSON := mustMarshalExt(t, uuid)
	// Dropping indexes by name (one FerretDB holds, one the front holds) and by key.
	if _, err := users.Indexes().DropOne(ctx, "h_hashed"); err != nil {
		t.Fatalf("drop hashed index: %v", err)
	}
	if err := db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: "users"}, {Key: "index", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: -1}}}}).Err(); err != nil {
		t.Fatalf("drop index by key: %v", err)
	}
	expectCommandEntries(t, entriesAfter(t, c, before),
		[2]string{`{"collMod": "users", "index": {"name": "createdAt_1", "expireAfterSeconds": {"$numberLong": "7200"}}}`,
			`{"collectionOptions_old": {"uuid": ` + uuidJSON + `}, "indexOptions_old": {"expireAfterSeconds": 3600}}`},
		[2]string{`{"dropIndexes": "users", "index": "h_hashed"}`, `{"v": 2, "key": {"h": "hashed"}, "name": "h_hashed"}`},
		[2]string{`{"dropIndexes": "users", "index": "a_1_b_-1"}`, ""},
	)
	ix = indexNames(t, users)
	if len(ix) != 4 || ix["createdAt_1"]["expireAfterSeconds"] != int64(7200) {
		t.Fatalf("listIndexes after collMod and drops: %v", ix)
	}

	// Rename keeps the UUID; views live in the front; drop and dropDatabase.
	if _, err := users.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "active", Value: true}, {Key: "email", Value: "a"}},
		bson.D{{Key: "_id", Value: 2}, {Key: "active", Value: false}, {Key: "email", Value: "b"}},
	}); err != nil {
		t.Fatal(err)
	}
	before = lastTS(t, c)
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "app.users"}, {Key: "to", Value: "app.people"}}).Err(); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if got := collectionInfo(t, db, "people")["info"].(bson.M)["uuid"].(primitive.Binary); !got.Equal(uuid) {
		t.Fatalf("renamed collection's UUID = %v, want %v", got, uuid)
	}
	if err := db.CreateView(ctx, "activePeople", "people", bson.A{bson.D{{Key: "$match", Value: bson.D{{Key: "active", Value: true}}}}}); err != nil {
		t.Fatalf("create view: %v", err)
	}
	if info := collectionInfo(t, db, "activePeople"); info["type"] != "view" {
		t.Fatalf("view listed as %v", info)
	}
	var viewDocs []bson.M
	cur, err := db.Collection("activePeople").Find(ctx, bson.D{})
	if err != nil || cur.All(ctx, &viewDocs) != nil || len(viewDocs) != 1 || viewDocs[0]["_id"] != int32(1) {
		t.Fatalf("find on view: %v %v", viewDocs, err)
	}
	if err := db.Collection("people").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	expectCommandEntries(t, entriesAfter(t, c, before),
		[2]string{`{"renameCollection": "app.users", "to": "app.people", "stayTemp": false}`, ""},
		[2]string{`{"create": "activePeople", "viewOn": "people", "pipeline": [{"$match": {"active": true}}]}`, ""},
		[2]string{`{"drop": "people"}`, `{"numRecords": 2}`},
		[2]string{`{"drop": "activePeople"}`, ""},
		[2]string{`{"drop": "events"}`, ""},
		[2]string{`{"dropDatabase": 1}`, ""},
	)
}

func mustMarshalExt(t *testing.T, v primitive.Binary) string {
	t.Helper()
	b, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, true, false)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return s[len(`{"v":`) : len(s)-1]
}

package sandbox

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func TestDDLThroughRouterReachesEveryShardHoldingTheCollection(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.h"}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}})
	h := cl.Database("app").Collection("h")
	if _, err := h.InsertMany(ctx, []any{bson.D{{Key: "a", Value: 1}}, bson.D{{Key: "a", Value: 2}}, bson.D{{Key: "a", Value: 3}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Database("app").Collection("plain").InsertOne(ctx, bson.D{{Key: "a", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Database("other").Collection("x").InsertOne(ctx, bson.D{{Key: "a", Value: 1}}); err != nil {
		t.Fatal(err)
	}

	names, err := cl.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"admin", "config", "app", "other"}; !slices.Equal(names, want) {
		t.Errorf("listDatabases = %v, want %v (admin and config as a mongos lists them, no local)", names, want)
	}
	if cfg, err := cl.ListDatabaseNames(ctx, bson.D{{Key: "name", Value: "config"}}); err != nil || len(cfg) != 1 {
		t.Errorf("listDatabases asked for config: %v, %v", cfg, err)
	}
	colls, err := cl.Database("app").ListCollectionNames(ctx, bson.D{})
	if err != nil || len(colls) != 2 || colls[0] != "h" || colls[1] != "plain" {
		t.Errorf("listCollections = %v, %v", colls, err)
	}

	_, err = h.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "a", Value: 1}}},
		{Keys: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: -1}}, Options: options.Index().SetName("compound")},
		{Keys: bson.D{{Key: "u", Value: 1}}, Options: options.Index().SetUnique(true).SetSparse(true)},
		{Keys: bson.D{{Key: "hk", Value: "hashed"}}},
		{Keys: bson.D{{Key: "at", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(3600)},
	})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]bson.Raw{}
	for _, ix := range findAllIndexes(t, h) {
		byName[ix.Lookup("name").StringValue()] = ix
	}
	for _, name := range []string{"_id_", "a_1", "compound", "u_1", "hk_hashed", "at_1"} {
		if byName[name] == nil {
			t.Errorf("listIndexes lacks %s: %v", name, byName)
		}
	}
	if ttl := byName["at_1"]; ttl == nil || ttl.Lookup("expireAfterSeconds").Type == 0 {
		t.Errorf("the TTL index lost its expireAfterSeconds: %v", ttl)
	}
	run(t, cl, "app", bson.D{{Key: "collMod", Value: "h"}, {Key: "index", Value: bson.D{{Key: "name", Value: "at_1"}, {Key: "expireAfterSeconds", Value: 60}}}})
	for _, ix := range findAllIndexes(t, h) {
		if ix.Lookup("name").StringValue() == "at_1" {
			if n, _ := ix.Lookup("expireAfterSeconds").AsInt64OK(); n != 60 {
				t.Errorf("after collMod, expireAfterSeconds = %v", ix.Lookup("expireAfterSeconds"))
			}
		}
	}
	if _, err := h.Indexes().DropOne(ctx, "compound"); err != nil {
		t.Fatal(err)
	}

	// The hashed collection lives on both shards: the build of its index is in both
	// oplogs, as 7.0 logs it: a createIndexes entry where the shard's collection is
	// empty, a two-phase build's commitIndexBuild where it holds documents.
	for _, s := range c.Shards() {
		n := 0
		for _, e := range oplog(t, shardClient(t, c, s), "app.$cmd") {
			switch {
			case str(e.Lookup("op")) != "c":
			case str(e.Lookup("o", "createIndexes")) == "h" && str(e.Lookup("o", "name")) == "a_1":
				n++
			case str(e.Lookup("o", "commitIndexBuild")) == "h":
				for _, spec := range values(e.Lookup("o", "indexes")) {
					if str(spec.Document().Lookup("name")) == "a_1" {
						n++
					}
				}
			}
		}
		if n != 1 {
			t.Errorf("shard %s's oplog has %d builds of app.h a_1, want 1", s.Name, n)
		}
	}

	if err := cl.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "app.h"}, {Key: "to", Value: "app.h2"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.Database("app").Collection("h2").CountDocuments(ctx, bson.D{}); err != nil || n != 3 {
		t.Errorf("after rename: %d documents in app.h2, %v", n, err)
	}
	renamed, err := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "app.h2"}}).Raw()
	if err != nil {
		t.Fatalf("config.collections does not follow the rename: %v", err)
	}
	if err := cl.Database("app").Collection("h2").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := cl.Database("config").Collection("collections").CountDocuments(ctx, bson.D{{Key: "_id", Value: "app.h2"}}); n != 0 {
		t.Errorf("config.collections keeps app.h2 after the drop")
	}
	if n, _ := cl.Database("config").Collection("chunks").CountDocuments(ctx, bson.D{{Key: "uuid", Value: renamed.Lookup("uuid")}}); n != 0 {
		t.Errorf("config.chunks keeps %d chunks of app.h2 after the drop", n)
	}
	for _, s := range c.Shards() {
		names, _ := shardClient(t, c, s).Database("app").ListCollectionNames(ctx, bson.D{{Key: "name", Value: "h2"}})
		if len(names) != 0 {
			t.Errorf("shard %s still has app.h2", s.Name)
		}
	}
	if err := cl.Database("other").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := cl.Database("config").Collection("databases").CountDocuments(ctx, bson.D{{Key: "_id", Value: "other"}}); n != 0 {
		t.Errorf("config.databases keeps the dropped database")
	}
	if names, _ := cl.ListDatabaseNames(ctx, bson.D{}); slices.Contains(names, "other") {
		t.Errorf("after dropDatabase: %v", names)
	}
	if err := cl.Database("app").CreateCollection(ctx, "made"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Database("app").CreateCollection(ctx, "made"); commandCode(err) != 48 {
		t.Errorf("creating an existing collection: %v, want NamespaceExists", err)
	}
}

func TestWriteThroughRouterLandsInOwningShardOplogWithShardKeyInO2(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := shardedCollection(t, c, cl, bson.D{{Key: "k", Value: 1}})
	splitAndMove(t, cl)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}, {Key: "k", Value: 77}, {Key: "v", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "x"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 2}}}}); err != nil {
		t.Fatal(err)
	}
	owner := shardClient(t, c, c.Shards()[1])
	var update bson.Raw
	for _, e := range oplog(t, owner, "app.c") {
		if str(e.Lookup("op")) == "u" {
			update = e
		}
	}
	if update == nil {
		t.Fatal("no update entry in the owning shard's oplog")
	}
	o2 := update.Lookup("o2").Document()
	if o2.Lookup("_id").StringValue() != "x" || o2.Lookup("k").Int32() != 77 {
		t.Errorf("o2 = %s, want {_id: x, k: 77}", o2)
	}
	if update.Lookup("ui").Type != bsontype.Binary {
		t.Errorf("the entry has no ui: %s", update)
	}
	for _, e := range oplog(t, shardClient(t, c, c.Shards()[0]), "app.c") {
		if op := str(e.Lookup("op")); op == "u" {
			t.Errorf("the other shard logged an update: %s", e)
		}
	}
}

package sandbox

import (
	"bytes"
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// The moves a DBA makes by hand (issue 15) leave what a real cluster's leave: the
// documents on the new shard, fromMigrate inserts and deletes in the two shards'
// oplogs, the changelog entries and the new chunk versions.

func shardHolding(t *testing.T, c *Cluster, db, coll string, id any) (holder string, others []string) {
	t.Helper()
	for _, s := range c.Shards() {
		n, err := shardClient(t, c, s).Database(db).Collection(coll).CountDocuments(context.Background(), bson.D{{Key: "_id", Value: id}})
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			holder = s.Name
		} else {
			others = append(others, s.Name)
		}
	}
	return holder, others
}

func fromMigrateOps(t *testing.T, sc *mongo.Client, ns, op string) int {
	n := 0
	for _, e := range oplog(t, sc, ns) {
		if e.Lookup("op").StringValue() == op && e.Lookup("fromMigrate").Type != 0 && e.Lookup("fromMigrate").Boolean() {
			n++
		}
	}
	return n
}

func changelogOf(t *testing.T, cl *mongo.Client, what, ns string) []bson.Raw {
	t.Helper()
	return findAll(t, cl.Database("config").Collection("changelog"), bson.D{{Key: "what", Value: what}, {Key: "ns", Value: ns}})
}

func shardByName(c *Cluster, name string) ShardInfo {
	for _, s := range c.Shards() {
		if s.Name == name {
			return s
		}
	}
	return ShardInfo{}
}

func TestMoveRangeSplitsAndMigratesTheRange(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.r"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	coll := cl.Database("app").Collection("r")
	for i := range 30 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	donor, others := shardHolding(t, c, "app", "r", 15)
	to := others[0]
	run(t, cl, "admin", bson.D{{Key: "moveRange", Value: "app.r"}, {Key: "min", Value: bson.D{{Key: "k", Value: 10}}}, {Key: "max", Value: bson.D{{Key: "k", Value: 20}}}, {Key: "toShard", Value: to}})

	_, m := chunkMap(t, cl, "app.r")
	if m.Len() != 3 {
		t.Fatalf("%d chunks after moveRange [10, 20), want 3 (split at both bounds)", m.Len())
	}
	for _, k := range []int{0, 10, 19, 20, 29} {
		want := donor
		if k >= 10 && k < 20 {
			want = to
		}
		if holder, _ := shardHolding(t, c, "app", "r", k); holder != want {
			t.Errorf("document k=%d is on %s, want %s", k, holder, want)
		}
	}
	if n := fromMigrateOps(t, shardClient(t, c, shardByName(c, to)), "app.r", "i"); n != 10 {
		t.Errorf("recipient %s logged %d fromMigrate inserts, want 10", to, n)
	}
	if n := fromMigrateOps(t, shardClient(t, c, shardByName(c, donor)), "app.r", "d"); n != 10 {
		t.Errorf("donor %s logged %d fromMigrate deletes, want 10", donor, n)
	}
	commits := changelogOf(t, cl, "moveChunk.commit", "app.r")
	if len(commits) != 1 || commits[0].Lookup("details", "from").StringValue() != donor || commits[0].Lookup("details", "to").StringValue() != to {
		t.Errorf("changelog moveChunk.commit entries %v, want one from %s to %s", commits, donor, to)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 30 {
		t.Errorf("%d documents through the router, want 30", n)
	}
}

func TestMovePrimaryMovesUnshardedCollections(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := cl.Database("shop").Collection("notes")
	for i := range 12 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	from, others := shardHolding(t, c, "shop", "notes", 3)
	to := others[0]
	oldCreate := oplog(t, shardClient(t, c, shardByName(c, from)), "shop.$cmd")
	run(t, cl, "admin", bson.D{{Key: "movePrimary", Value: "shop"}, {Key: "to", Value: to}})

	if holder, _ := shardHolding(t, c, "shop", "notes", 3); holder != to {
		t.Errorf("after movePrimary the documents are on %s, want %s", holder, to)
	}
	var db struct {
		Primary string `bson:"primary"`
	}
	if err := cl.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: "shop"}}).Decode(&db); err != nil || db.Primary != to {
		t.Errorf("config.databases primary %q (%v), want %s", db.Primary, err, to)
	}
	if len(changelogOf(t, cl, "movePrimary.commit", "shop")) != 1 {
		t.Error("no movePrimary.commit in config.changelog")
	}
	// The recipient: a create under a new UUID, not fromMigrate; the inserts fromMigrate.
	var create, drop bson.Raw
	for _, e := range oplog(t, shardClient(t, c, shardByName(c, to)), "shop.$cmd") {
		if str(e.Lookup("o", "create")) == "notes" {
			create = e
		}
	}
	for _, e := range oplog(t, shardClient(t, c, shardByName(c, from)), "shop.$cmd") {
		if str(e.Lookup("o", "drop")) == "notes" {
			drop = e
		}
	}
	if create == nil || drop == nil {
		t.Fatalf("create on %s %v, drop on %s %v: want both", to, create, from, drop)
	}
	if create.Lookup("fromMigrate").Type != 0 || drop.Lookup("fromMigrate").Type != 0 {
		t.Errorf("movePrimary's create %v or drop %v is marked fromMigrate", create, drop)
	}
	_, newUUID, _ := create.Lookup("ui").BinaryOK()
	_, oldUUID, _ := drop.Lookup("ui").BinaryOK()
	if len(newUUID) == 0 || bytes.Equal(newUUID, oldUUID) {
		t.Errorf("create under UUID %x, drop under %x: want two UUIDs (earlier entries %d)", newUUID, oldUUID, len(oldCreate))
	}
	if n := fromMigrateOps(t, shardClient(t, c, shardByName(c, to)), "shop.notes", "i"); n != 12 {
		t.Errorf("recipient logged %d fromMigrate inserts, want 12", n)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 100}}); err != nil {
		t.Fatal(err)
	}
	if holder, _ := shardHolding(t, c, "shop", "notes", 100); holder != to {
		t.Errorf("a write after movePrimary went to %s, want %s", holder, to)
	}
}

func TestReshardCollectionGivesANewKeyAndUUID(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.z"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	coll := cl.Database("app").Collection("z")
	for i := range 20 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}, {Key: "n", Value: 20 - i}}); err != nil {
			t.Fatal(err)
		}
	}
	_, others := shardHolding(t, c, "app", "z", 1)
	run(t, cl, "admin", bson.D{{Key: "moveChunk", Value: "app.z"}, {Key: "find", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "to", Value: others[0]}})
	before := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "app.z"}})
	was, _ := before.Raw()
	run(t, cl, "admin", bson.D{{Key: "reshardCollection", Value: "app.z"}, {Key: "key", Value: bson.D{{Key: "n", Value: 1}}}})
	now, err := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "app.z"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(now.Lookup("uuid").Value, was.Lookup("uuid").Value) || now.Lookup("key", "n").Type == 0 {
		t.Errorf("after reshardCollection config.collections says %s, want a new uuid and key {n: 1} (was %s)", now, was)
	}
	if len(changelogOf(t, cl, "resharding.coordinator.transition", "app.z")) == 0 {
		t.Error("no resharding.coordinator.transition in config.changelog")
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 20 {
		t.Errorf("%d documents through the router after resharding, want 20", n)
	}
	if got := findAll(t, coll, bson.D{{Key: "n", Value: 5}}); len(got) != 1 {
		t.Errorf("find by the new key n=5 returned %d documents, want 1", len(got))
	}
}

// A held router keeps every chunk command from acting until the release: one cut by
// its maxTimeMS meanwhile changed nothing; after the release they run.
func TestHeldChunkCommandsWaitForTheRelease(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.h"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	release := c.HoldChunkCommands()
	err := cl.Database("admin").RunCommand(ctx, bson.D{{Key: "split", Value: "app.h"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 5}}}, {Key: "maxTimeMS", Value: 300}}).Err()
	if err == nil {
		t.Fatal("a split returned while chunk commands are held")
	}
	if _, m := chunkMap(t, cl, "app.h"); m.Len() != 1 {
		t.Fatalf("%d chunks after a held split, want 1", m.Len())
	}
	release()
	release() // twice is harmless
	run(t, cl, "admin", bson.D{{Key: "split", Value: "app.h"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 5}}}})
	if _, m := chunkMap(t, cl, "app.h"); m.Len() != 2 {
		t.Fatalf("%d chunks after the release, want 2", m.Len())
	}
}

package sandbox

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/router"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// The seed's many-chunks option (issue 17): every sharded collection gets the chunks
// asked for in one catalog change, owned by every shard in runs, and the documents
// inserted afterwards lie on the shard owning their chunk.
func TestSeedManyChunksInRuns(t *testing.T) {
	c := startCluster(t, Options{Shards: 3})
	cl := routerClient(t, c)
	ctx := context.Background()
	const chunks = 300
	if _, err := seed.PopulateWith(ctx, cl, seed.Options{Docs: 3000, Chunks: chunks}, rand.New(rand.NewPCG(3, 4))); err != nil {
		t.Fatal(err)
	}
	for _, sc := range seed.Collections() {
		if sc.Key == nil {
			continue
		}
		ns := sc.Namespace()
		var coll struct {
			UUID primitive.Binary `bson:"uuid"`
		}
		if err := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: ns}}).Decode(&coll); err != nil {
			t.Fatal(err)
		}
		var list []shardkey.Chunk
		for _, d := range findAll(t, cl.Database("config").Collection("chunks"), bson.D{{Key: "uuid", Value: coll.UUID}}) {
			list = append(list, shardkey.Chunk{Min: shardkey.Key(d.Lookup("min").Document()), Shard: d.Lookup("shard").StringValue()})
		}
		slices.SortFunc(list, func(a, b shardkey.Chunk) int { return shardkey.CompareKeys(a.Min, b.Min) })
		// Cuts between distinct seeded keys only: items has 300 skus (299 cuts),
		// orders 450 customers, customers hashed _ids.
		if len(list) < chunks*9/10 || len(list) > chunks {
			t.Errorf("%s has %d chunks, want about %d", ns, len(list), chunks)
		}
		changes := 0
		for i := 1; i < len(list); i++ {
			if list[i].Shard != list[i-1].Shard {
				changes++
			}
		}
		if changes < 2 || changes > 4*len(c.Shards())*2 {
			t.Errorf("%s: ownership changes %d times over %d chunks, want runs (a few per shard)", ns, changes, len(list))
		}
		p, m := chunkMap(t, cl, ns)
		if got := m.Shards(); len(got) != len(c.Shards()) {
			t.Errorf("%s: chunks on %v, want every shard", ns, got)
		}
		total := 0
		for _, s := range c.Shards() {
			docs := findAll(t, shardClient(t, c, s).Database(sc.DB).Collection(sc.Name), bson.D{})
			total += len(docs)
			for _, d := range docs {
				k, err := p.Extract(d)
				if err != nil {
					t.Fatal(err)
				}
				if owner, _ := m.Owner(k); owner != s.Name {
					t.Fatalf("%s: document %s is on %s, its chunk on %s", ns, d.Lookup("_id"), s.Name, owner)
				}
			}
		}
		if n, _ := cl.Database(sc.DB).Collection(sc.Name).CountDocuments(ctx, bson.D{}); total == 0 || int64(total) != n {
			t.Errorf("%s: %d documents on the shards, %d through the router", ns, total, n)
		}
	}
	// The bulk path refuses a collection that already holds documents.
	err := cl.Database("admin").RunCommand(ctx, bson.D{{Key: "_sandboxSetChunks", Value: "inventory.items"},
		{Key: "splits", Value: bson.A{}}, {Key: "shards", Value: bson.A{c.Shards()[0].Name}}}).Err()
	if err == nil {
		t.Error("_sandboxSetChunks on a collection holding documents succeeded")
	}
}

// The command latency option delays moveChunk and split before they change anything:
// with an hour's latency, a command bounded by maxTimeMS ends without moving or
// splitting (no timing is measured: the hour never passes).
func TestCommandLatencyDelaysSplitAndMoveChunk(t *testing.T) {
	c := startCluster(t, Options{CommandLatency: router.CommandLatency{MoveChunk: time.Hour, Split: time.Hour}})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.l"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	_, before := chunkMap(t, cl, "app.l")
	owner := before.Shards()[0]
	other := c.Shards()[0].Name
	if other == owner {
		other = c.Shards()[1].Name
	}
	admin := cl.Database("admin")
	err := admin.RunCommand(ctx, bson.D{{Key: "split", Value: "app.l"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 5}}}, {Key: "maxTimeMS", Value: 3000}}).Err()
	if err == nil {
		t.Error("split with an hour's latency returned within maxTimeMS")
	}
	err = admin.RunCommand(ctx, bson.D{{Key: "moveChunk", Value: "app.l"}, {Key: "find", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "to", Value: other}, {Key: "maxTimeMS", Value: 3000}}).Err()
	if err == nil {
		t.Error("moveChunk with an hour's latency returned within maxTimeMS")
	}
	if _, after := chunkMap(t, cl, "app.l"); after.Len() != 1 || !slices.Equal(after.Shards(), []string{owner}) {
		t.Errorf("after the interrupted commands: %d chunks on %v, want 1 on %s", after.Len(), after.Shards(), owner)
	}
}

// The config server answers config.chunks queries as its indexes on {uuid, min} and
// {uuid, lastmod} let a real one: a query naming a collection examines that
// collection's chunks only, one with a lastmod bound beside it (the move watcher's
// look, one $or branch per collection) only the chunks above the bound; any other
// filter scans every chunk. Each returns what the scan would
// (serverStatus' metrics.queryExecutor.scannedObjects counts what was examined).
func TestConfigChunksQueriesUseTheirIndexes(t *testing.T) {
	c := startCluster(t, Options{Shards: 2})
	cl := routerClient(t, c)
	cfg := connect(t, configClientOptions(c))
	ctx := context.Background()
	const chunks = 400
	if _, err := seed.PopulateWith(ctx, cl, seed.Options{Docs: 500, Chunks: chunks}, rand.New(rand.NewPCG(5, 6))); err != nil {
		t.Fatal(err)
	}
	chunkColl := cl.Database("config").Collection("chunks")
	all := findAll(t, chunkColl, bson.D{})
	var coll struct {
		UUID primitive.Binary `bson:"uuid"`
	}
	if err := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "shop.customers"}}).Decode(&coll); err != nil {
		t.Fatal(err)
	}
	var mine []primitive.Timestamp // shop.customers' chunks' lastmods
	for _, d := range all {
		if _, data, _ := d.Lookup("uuid").BinaryOK(); string(data) == string(coll.UUID.Data) {
			t, i, _ := d.Lookup("lastmod").TimestampOK()
			mine = append(mine, primitive.Timestamp{T: t, I: i})
		}
	}
	slices.SortFunc(mine, func(a, b primitive.Timestamp) int { return a.Compare(b) })
	if len(mine) < 10 || len(mine) == len(all) {
		t.Fatalf("shop.customers has %d of the %d chunks: the test needs several collections of many chunks", len(mine), len(all))
	}
	newest, third := mine[len(mine)-1], mine[len(mine)-3]
	scanned := func() int64 {
		raw := run(t, cfg, "admin", bson.D{{Key: "serverStatus", Value: 1}})
		n, _ := raw.Lookup("metrics", "queryExecutor", "scannedObjects").AsInt64OK()
		return n
	}
	byUUID := bson.D{{Key: "uuid", Value: coll.UUID}}
	above := func(ts primitive.Timestamp) bson.D {
		return bson.D{{Key: "uuid", Value: coll.UUID}, {Key: "lastmod", Value: bson.D{{Key: "$gt", Value: ts}}}}
	}
	for _, q := range []struct {
		name        string
		filter      bson.D
		returned    int
		maxExamined int
	}{
		{"one collection", byUUID, len(mine), len(mine)},
		{"its chunks above its version (an unchanged collection)", above(newest), 0, 0},
		{"$or of a lastmod bound", bson.D{{Key: "$or", Value: bson.A{above(third)}}}, 2, 2},
		{"$gte bound", bson.D{{Key: "uuid", Value: coll.UUID}, {Key: "lastmod", Value: bson.D{{Key: "$gte", Value: third}}}}, 3, 3},
		{"a collection that does not exist", bson.D{{Key: "uuid", Value: primitive.Binary{Subtype: 4, Data: make([]byte, 16)}}}, 0, 0},
		{"no index (scans)", bson.D{{Key: "$and", Value: bson.A{byUUID}}}, len(mine), len(all)},
	} {
		before := scanned()
		got := findAll(t, chunkColl, q.filter)
		examined := scanned() - before
		if len(got) != q.returned || examined > int64(q.maxExamined) {
			t.Errorf("%s: %d chunks returned, %d examined; want %d returned, at most %d examined", q.name, len(got), examined, q.returned, q.maxExamined)
		}
		// The same query through the config server directly.
		if direct := findAll(t, cfg.Database("config").Collection("chunks"), q.filter); len(direct) != len(got) {
			t.Errorf("%s: the config server returned %d chunks, the router %d", q.name, len(direct), len(got))
		}
	}
}

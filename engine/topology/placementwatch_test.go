package topology_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
)

// chunkReads counts the config.chunks documents a client's finds and getMores
// return.
type chunkReads struct{ n atomic.Int64 }

func (c *chunkReads) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
		if e.CommandName != "find" && e.CommandName != "getMore" {
			return
		}
		cur, ok := e.Reply.Lookup("cursor").DocumentOK()
		if ns, _ := cur.Lookup("ns").StringValueOK(); !ok || ns != "config.chunks" {
			return
		}
		for _, batch := range []string{"firstBatch", "nextBatch"} {
			if arr, ok := cur.Lookup(batch).ArrayOK(); ok {
				vals, _ := arr.Values()
				c.n.Add(int64(len(vals)))
			}
		}
	}}
}

// samePlacement fails unless the watch's collections are Placement's, chunk for
// chunk.
func samePlacement(t *testing.T, client *mongo.Client, colls []topology.Collection) {
	t.Helper()
	_, want, err := topology.Placement(context.Background(), client, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	text := func(cs []topology.Collection) string {
		var b bytes.Buffer
		for _, c := range cs {
			chunks := slices.Clone(c.Chunks)
			slices.SortFunc(chunks, func(x, y topology.Chunk) int { return shardkey.CompareKeys(shardkey.Key(x.Min), shardkey.Key(y.Min)) })
			fmt.Fprintf(&b, "%s:", c.Namespace)
			for _, ch := range chunks {
				fmt.Fprintf(&b, " [%s %s) %s", ch.Min, ch.Max, ch.Shard)
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	if got, want := text(colls), text(want); got != want {
		t.Fatalf("the watch's chunk map:\n%s\nPlacement's:\n%s", got, want)
	}
}

// The move watcher's chunk map between looks (issue 15, cost at scale): a read of
// an unchanged cluster reads no chunk; a move, a split or a new sharded
// collection reads only the chunks written since, and the map equals a whole
// read's.
func TestPlacementWatchReadsOnlyTheChunksThatChanged(t *testing.T) {
	e, c := source(t, sandbox.Options{Shards: 2})
	ctx := context.Background()
	var reads chunkReads
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(e.URI).SetMonitor(reads.monitor()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	must(t, client, bson.D{{Key: "shardCollection", Value: "app.p"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	for k := 10; k <= 70; k += 10 {
		must(t, client, bson.D{{Key: "split", Value: "app.p"}, {Key: "middle", Value: bson.D{{Key: "k", Value: k}}}})
	}
	var w topology.PlacementWatch
	read := func(what string, wantChanged bool, maxChunks int64) {
		t.Helper()
		before := reads.n.Load()
		_, colls, changed, err := w.Read(ctx, client, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		n := reads.n.Load() - before
		if changed != wantChanged || n > maxChunks {
			t.Fatalf("%s: changed %v reading %d chunks; want changed %v reading at most %d", what, changed, n, wantChanged, maxChunks)
		}
		t.Logf("%s: changed %v, %d chunk documents read", what, changed, n)
		samePlacement(t, client, colls)
	}
	read("the first read", true, 1000)
	read("nothing changed", false, 0)
	var other string
	for _, s := range c.Shards() {
		var db struct{ Primary string }
		if err := client.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: "app"}}).Decode(&db); err != nil {
			t.Fatal(err)
		}
		if s.Name != db.Primary {
			other = s.Name
		}
	}
	must(t, client, bson.D{{Key: "moveChunk", Value: "app.p"}, {Key: "find", Value: bson.D{{Key: "k", Value: 35}}}, {Key: "to", Value: other}})
	read("a chunk moved", true, 2)
	must(t, client, bson.D{{Key: "split", Value: "app.p"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 35}}}})
	read("a chunk split", true, 2)
	must(t, client, bson.D{{Key: "shardCollection", Value: "app.q"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	read("a collection sharded", true, 1)
	read("nothing changed again", false, 0)
}

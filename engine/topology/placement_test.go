package topology_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
)

// The move watcher's reads: the chunk map of now (databases' primaries, tracked
// collections with their chunks) and the changelog's moves since a time, in order.
func TestPlacementAndChangelogSeeAChunkMove(t *testing.T) {
	e, c := source(t, sandbox.Options{Shards: 2})
	client := connect(t, e)
	ctx := context.Background()
	must(t, client, bson.D{{Key: "shardCollection", Value: "app.p"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	must(t, client, bson.D{{Key: "split", Value: "app.p"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 10}}}})
	dbs, colls, err := topology.Placement(ctx, client, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var primary string
	for _, d := range dbs {
		if d.Name == "app" {
			primary = d.Primary
		}
	}
	var chunks []topology.Chunk
	for _, coll := range colls {
		if coll.Namespace == "app.p" {
			chunks = coll.Chunks
		}
	}
	if primary == "" || len(chunks) != 2 || chunks[0].Shard != primary || chunks[1].Shard != primary {
		t.Fatalf("primary %q, chunks %+v: want two chunks on the primary", primary, chunks)
	}
	other := c.Shards()[0].Name
	if other == primary {
		other = c.Shards()[1].Name
	}
	before := time.Now().Add(-time.Second)
	must(t, client, bson.D{{Key: "moveChunk", Value: "app.p"}, {Key: "find", Value: bson.D{{Key: "k", Value: 20}}}, {Key: "to", Value: other}})
	must(t, client, bson.D{{Key: "movePrimary", Value: "app"}, {Key: "to", Value: other}})
	entries, err := topology.Changelog(ctx, client, time.Minute, before, []string{"moveChunk.commit", "movePrimary.commit"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].What != "moveChunk.commit" || entries[0].NS != "app.p" || entries[1].What != "movePrimary.commit" || entries[1].NS != "app" {
		t.Fatalf("changelog since %v: %+v, want the moveChunk's commit then the movePrimary's", before, entries)
	}
	if to, _ := entries[0].Details.Lookup("to").StringValueOK(); to != other {
		t.Errorf("moveChunk.commit details %s, want to %s", entries[0].Details, other)
	}
	if later, err := topology.Changelog(ctx, client, time.Minute, entries[1].Time, []string{"moveChunk.commit", "movePrimary.commit"}); err != nil || len(later) != 0 {
		t.Errorf("changelog after the last move: %+v (%v), want nothing", later, err)
	}
	_, colls, err = topology.Placement(ctx, client, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, coll := range colls {
		if coll.Namespace == "app.p" && len(coll.ChunksOn(other)) != 1 {
			t.Errorf("after the move, %s holds %d chunks of app.p, want 1", other, len(coll.ChunksOn(other)))
		}
	}
	// A move after a read is found by the next read from where it stopped: the
	// changelog is read newest first ({$natural: -1}, config.changelog being capped)
	// down to the last entry read. A server answering oldest first stops that read at
	// its first entry, and the watcher never sees a move again.
	must(t, client, bson.D{{Key: "moveChunk", Value: "app.p"}, {Key: "find", Value: bson.D{{Key: "k", Value: 20}}}, {Key: "to", Value: primary}})
	later, err := topology.Changelog(ctx, client, time.Minute, entries[1].Time, []string{"moveChunk.commit", "movePrimary.commit"})
	if err != nil {
		t.Fatal(err)
	}
	if len(later) != 1 || later[0].What != "moveChunk.commit" {
		t.Fatalf("changelog since the movePrimary: %+v, want the moveChunk back", later)
	}
	if to, _ := later[0].Details.Lookup("to").StringValueOK(); to != primary {
		t.Errorf("moveChunk.commit details %s, want to %s", later[0].Details, primary)
	}
}

package replay_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/sandbox"
)

// An idle shard's primary, asked for an entry past another shard's newest one
// with that shard's cluster time gossiped, writes one after it, even when its own
// clock is behind; asked past an entry it already passed, it writes nothing and
// that is not an error. (What DDLOnce asks of a shard a DDL waits for.)
func TestAdvancePastAnotherShardsNewestEntry(t *testing.T) {
	c := startClusters(t, sandbox.Options{Shards: 2, NoopInterval: time.Hour})
	if len(c.shards) < 2 {
		t.Skip("needs a source of two shards or more")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := c.shards[0], c.shards[1]
	// Entries on a, so that its clock runs ahead of b's within the second.
	for i := range 50 {
		if err := a.client.Database("admin").RunCommand(ctx, bson.D{{Key: "appendOplogNote", Value: 1},
			{Key: "data", Value: bson.D{{Key: "msg", Value: "shardlift test"}, {Key: "i", Value: i}}}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	tsA, err := replay.NewMongoSource(a.client, replay.MongoSourceOptions{}).Newest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srcB := replay.NewMongoSource(b.client, replay.MongoSourceOptions{})
	gossip, err := replay.ClusterTimeOf(ctx, a.client)
	if err != nil {
		t.Fatal(err)
	}
	if gossip == nil {
		t.Fatalf("shard %s gossips no $clusterTime", a.name)
	}
	if err := replay.AdvancePast(ctx, b.client, tsA, gossip); err != nil {
		t.Fatal(err)
	}
	tsB, err := srcB.Newest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !tsA.Before(tsB) {
		t.Fatalf("shard %s's newest entry %v is not after shard %s's %v", b.name, tsB, a.name, tsA)
	}
	if err := replay.AdvancePast(ctx, b.client, tsA, nil); err != nil {
		t.Fatalf("asked past an entry the shard passed: %v", err)
	}
	if again, err := srcB.Newest(ctx); err != nil || again != tsB {
		t.Fatalf("asked past an entry it passed, shard %s wrote %v (had %v): %v", b.name, again, tsB, err)
	}
}

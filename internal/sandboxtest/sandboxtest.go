// Package sandboxtest starts what tests need from a sandbox: for the engine's tests of
// the real-MongoDB adapters, a one-shard cluster holding a few documents and a direct
// connection to its shard that records the finds it sends; for the app's tests of the
// CLI and the desktop app, a seeded cluster and its contents (clusters.go).
package sandboxtest

import (
	"context"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox"
)

// ShardWithFinds starts a one-shard sandbox with opts (Shards is set to 1), inserts
// {_id: 0}, {_id: 1} and {_id: 2} into db.c through its router, and returns a direct
// client of the shard with finds, which returns a copy of every find command that
// client sent so far. Everything is closed when the test ends.
func ShardWithFinds(t *testing.T, opts sandbox.Options) (shard *mongo.Client, finds func() []bson.Raw) {
	t.Helper()
	ctx := context.Background()
	opts.Shards = 1
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	src, err := sandbox.Start(ctx, "source", opts)
	if err != nil {
		t.Fatalf("start the sandbox: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	router, err := mongo.Connect(ctx, options.Client().ApplyURI(src.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { router.Disconnect(context.Background()) })
	for i := range 3 {
		if _, err := router.Database("db").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var sent []bson.Raw
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "find" {
			mu.Lock()
			sent = append(sent, append(bson.Raw(nil), e.Command...))
			mu.Unlock()
		}
	}}
	shard, err = mongo.Connect(ctx, options.Client().ApplyURI("mongodb://"+src.Shards()[0].Addr+"/?directConnection=true").SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shard.Disconnect(context.Background()) })
	return shard, func() []bson.Raw {
		mu.Lock()
		defer mu.Unlock()
		return append([]bson.Raw(nil), sent...)
	}
}

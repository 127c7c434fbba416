package load_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
)

// The cutover of every end-to-end test relies on it: the source is quiet only once no
// shard's oplog takes a new entry for the whole quiet period.
func TestAwaitQuietWaitsWhileAnyShardStillTakesWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sandbox cluster")
	}
	c, err := sandbox.Start(t.Context(), "source", sandbox.Options{Shards: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	router, err := mongo.Connect(t.Context(), options.Client().ApplyURI(c.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { router.Disconnect(context.Background()) })
	var shards []*mongo.Client
	for _, sh := range c.Shards() {
		s, err := mongo.Connect(t.Context(), options.Client().ApplyURI("mongodb://"+sh.Addr+"/?directConnection=true"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Disconnect(context.Background()) })
		shards = append(shards, s)
	}

	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			router.Database("quiet").Collection("c").InsertOne(ctx, bson.D{{Key: "i", Value: i}})
		}
	}()
	if err := load.AwaitQuiet(t.Context(), shards, time.Second, 3*time.Second); err == nil {
		t.Fatal("the source was called quiet while a writer kept inserting")
	}
	stop()
	<-done
	stopped := time.Now()
	if err := load.AwaitQuiet(t.Context(), shards, time.Second, time.Minute); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(stopped); waited < time.Second {
		t.Fatalf("quiet after %v, less than the quiet period", waited)
	}
}

package sandbox

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// moveRange (6.0+) moves a part of a chunk, splitting it at the bounds given, and
// completes a range given by min alone or max alone up to the chunk's other bound
// (the sandbox's ranges are far below the chunk size); a range across two chunks is
// refused, and before 6.0 the command does not exist.
func TestMoveRange(t *testing.T) {
	c := startCluster(t, Options{MongoDBVersion: "6.0"})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.r"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	var docs []any
	for k := range 100 {
		docs = append(docs, bson.D{{Key: "_id", Value: k}, {Key: "k", Value: k}})
	}
	if _, err := cl.Database("app").Collection("r").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	_, before := chunkMap(t, cl, "app.r")
	owner := before.Shards()[0]
	other := c.Shards()[0]
	if other.Name == owner {
		other = c.Shards()[1]
	}
	key := func(k int) bson.D { return bson.D{{Key: "k", Value: k}} }
	moveRange := func(bounds ...bson.E) error {
		cmd := append(bson.D{{Key: "moveRange", Value: "app.r"}, {Key: "toShard", Value: other.Name}}, bounds...)
		return cl.Database("admin").RunCommand(ctx, cmd).Err()
	}
	if err := moveRange(bson.E{Key: "min", Value: key(10)}, bson.E{Key: "max", Value: key(20)}); err != nil {
		t.Fatalf("moveRange [10, 20): %v", err)
	}
	if err := moveRange(bson.E{Key: "min", Value: key(50)}); err != nil {
		t.Fatalf("moveRange from 50: %v", err)
	}
	if err := moveRange(bson.E{Key: "max", Value: key(5)}); err != nil {
		t.Fatalf("moveRange up to 5: %v", err)
	}
	if err := moveRange(bson.E{Key: "min", Value: key(30)}, bson.E{Key: "max", Value: key(60)}); err == nil {
		t.Error("moveRange [30, 60) across two chunks succeeded")
	}
	_, after := chunkMap(t, cl, "app.r")
	if after.Len() != 5 {
		t.Errorf("%d chunks after the moves, want 5: [MinKey, 5) [5, 10) [10, 20) [20, 50) [50, MaxKey)", after.Len())
	}
	for k := range 100 {
		want := owner
		if k < 5 || (k >= 10 && k < 20) || k >= 50 {
			want = other.Name
		}
		kb, _ := bson.Marshal(key(k))
		if got, _ := after.Owner(kb); got != want {
			t.Errorf("k %d is owned by %s, want %s", k, got, want)
		}
	}
	n, err := shardClient(t, c, other).Database("app").Collection("r").CountDocuments(ctx, bson.D{})
	if err != nil || n != 5+10+50 {
		t.Errorf("%s holds %d documents (%v), want the 65 of the moved ranges", other.Name, n, err)
	}

	old := startCluster(t, Options{MongoDBVersion: "5.0"})
	err = routerClient(t, old).Database("admin").RunCommand(ctx, bson.D{{Key: "moveRange", Value: "app.r"}, {Key: "toShard", Value: other.Name}, {Key: "min", Value: key(1)}}).Err()
	if commandCode(err) != 59 {
		t.Errorf("moveRange on 5.0: %v, want CommandNotFound", err)
	}
}

// The network delay option reaches the router and every shard member: with an
// hour's delay, no client gets an answer within its timeout.
func TestLatencyDelaysTheRouterAndTheShards(t *testing.T) {
	c := startCluster(t, Options{Latency: time.Hour})
	for what, opts := range map[string]*options.ClientOptions{
		"router": options.Client().ApplyURI(c.URI()),
		"shard":  options.Client().SetHosts([]string{c.Shards()[0].Addr}).SetDirect(true),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := connect(t, opts).Ping(ctx, nil); err == nil {
			t.Errorf("the %s answered within 2 s at an hour's delay", what)
		}
		cancel()
	}
}

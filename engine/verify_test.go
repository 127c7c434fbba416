package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/fakemongos"
)

// The verification compares what the migration carries: not MongoDB's own
// namespaces, nor stored JavaScript a destination may hold.
func TestVerifyComparesOnlyMigratedNamespaces(t *testing.T) {
	dst := fakemongos.EmptyCluster("7.0.16", "rs0", "rs1")
	dst.Databases["shop"] = []fakemongos.Collection{{Name: "orders"}, {Name: "customers"}, {Name: "system.js"}, {Name: "system.profile"}}
	cfg := Config{ID: "verify",
		Source:      topology.Endpoint{URI: fakemongos.Start(t, fakemongos.Cluster("7.0.16")), Timeout: 2 * time.Second},
		Destination: topology.Endpoint{URI: fakemongos.Start(t, dst), Timeout: 2 * time.Second}}
	ctx := context.Background()
	c, err := NewMongoClusters(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	v, err := c.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Namespaces != 2 { // shop.orders and shop.customers
		t.Errorf("verified %d namespaces, want 2: %+v", v.Namespaces, v)
	}
}

// A finalize resumed after a restart runs without a sync, so nothing connected
// the source shards: looking for late writes connects the shard it asks about.
func TestWritesAfterConnectsAShardNoSyncConnected(t *testing.T) {
	cfg := Config{ID: "late",
		Source:      topology.Endpoint{URI: fakemongos.Start(t, fakemongos.Cluster("7.0.16")), Timeout: 2 * time.Second},
		Destination: topology.Endpoint{URI: fakemongos.Start(t, fakemongos.EmptyCluster("7.0.16", "rs0", "rs1")), Timeout: 2 * time.Second}}
	ctx := context.Background()
	c, err := NewMongoClusters(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	first, _ := fakemongos.ShardNames("7.0.16")
	_, err = c.WritesAfter(ctx, first, primitive.Timestamp{T: 1})
	if errors.Is(err, ErrUnknownShard) {
		t.Fatalf("WritesAfter without a sync: %v", err)
	}
}

package prepare

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/internal/fakemongos"
)

// A collection the source shards, or whose key it refines, during the migration
// gets the same key on the destination, once; a resharded one is refused.
func TestEnsureShardKeyFollowsTheSource(t *testing.T) {
	fake := destination("6.0.20", "rs0", "rs1")
	fake.Databases["shop"] = []fakemongos.Collection{{Name: "orders"}} // as the replay created it
	_, client := discover(t, fake)
	ctx := context.Background()
	key := raw(t, bson.D{{Key: "customerId", Value: 1}})
	refined := raw(t, bson.D{{Key: "customerId", Value: 1}, {Key: "day", Value: 1}})

	if err := EnsureShardKey(ctx, client, "shop.orders", key, false); err != nil {
		t.Fatal(err)
	}
	cmds := fake.Commands("shardCollection")
	if len(cmds) != 1 || cmds[0].Lookup("collation", "locale").StringValue() != "simple" {
		t.Fatalf("shardCollection commands %v, want one with the simple collation", cmds)
	}
	if err := EnsureShardKey(ctx, client, "shop.orders", raw(t, bson.D{{Key: "customerId", Value: 1.0}}), false); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Commands("shardCollection")); n != 1 {
		t.Errorf("the same key again sent shardCollection %d times in all", n)
	}
	if err := EnsureShardKey(ctx, client, "shop.orders", refined, false); err != nil {
		t.Fatal(err)
	}
	if cmds := fake.Commands("refineCollectionShardKey"); len(cmds) != 1 {
		t.Errorf("refineCollectionShardKey commands %v", cmds)
	}
	// Dropped on the source since (the replay dropped it here too): left alone.
	if err := EnsureShardKey(ctx, client, "shop.gone", key, false); err != nil || len(fake.Commands("shardCollection")) != 1 {
		t.Errorf("a collection the destination lacks: %v, shardCollection commands %v", err, fake.Commands("shardCollection"))
	}
	err := EnsureShardKey(ctx, client, "shop.orders", raw(t, bson.D{{Key: "region", Value: 1}}), false)
	if err == nil || !strings.Contains(err.Error(), "resharded") {
		t.Errorf("a different key: %v, want a refusal naming the resharding", err)
	}
}

package prepare

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// A collection the source shards, or whose key it refines, during the migration
// gets the same key on the destination, once; a resharded one is refused.
func TestEnsureShardKeyFollowsTheSource(t *testing.T) {
	fake := destination("6.0.20", "rs0", "rs1")
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
	err := EnsureShardKey(ctx, client, "shop.orders", raw(t, bson.D{{Key: "region", Value: 1}}), false)
	if err == nil || !strings.Contains(err.Error(), "resharded") {
		t.Errorf("a different key: %v, want a refusal naming the resharding", err)
	}
}

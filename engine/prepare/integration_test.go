package prepare_test

import (
	"context"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
)

// The copy's integration test (engine/initialsync) drives Prepare, ClearShard,
// Wipe and the balancer through a whole migration; this one covers the balancer
// states that one does not meet.

// router connects to the source named by SHARDLIFT_TEST_SOURCE_URI, or to a sandbox.
func router(t *testing.T) *mongo.Client {
	t.Helper()
	ctx := context.Background()
	uri := os.Getenv("SHARDLIFT_TEST_SOURCE_URI")
	if uri == "" {
		if testing.Short() {
			t.Skip("integration test: starts a sandbox cluster")
		}
		c, err := sandbox.Start(ctx, "source", sandbox.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		uri = c.URI()
	}
	client, err := topology.Connect(ctx, topology.Endpoint{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client
}

func mode(t *testing.T, c *mongo.Client) string {
	t.Helper()
	reply, err := c.Database("admin").RunCommand(context.Background(), bson.D{{Key: "balancerStatus", Value: 1}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := reply.Lookup("mode").StringValueOK()
	return m
}

func TestBalancerStoppedAndRestoredToItsOriginalState(t *testing.T) {
	c := router(t)
	ctx := context.Background()
	original := mode(t, c)
	t.Cleanup(func() {
		cmd := "balancerStart"
		if original == "off" {
			cmd = "balancerStop"
		}
		c.Database("admin").RunCommand(context.Background(), bson.D{{Key: cmd, Value: 1}})
	})
	for _, start := range []string{"balancerStart", "balancerStop"} {
		t.Run(start, func(t *testing.T) {
			if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: start, Value: 1}}).Err(); err != nil {
				t.Fatal(err)
			}
			before := mode(t, c)
			wasOn, err := prepare.StopBalancer(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if wasOn != (before != "off") || mode(t, c) != "off" {
				t.Fatalf("StopBalancer from %q: wasOn %v, mode now %q; want %v and off", before, wasOn, mode(t, c), before != "off")
			}
			for range 2 {
				if err := prepare.RestoreBalancer(ctx, c, wasOn); err != nil {
					t.Fatal(err)
				}
			}
			if got := mode(t, c); got != before {
				t.Fatalf("after RestoreBalancer the mode is %q, want %q as before", got, before)
			}
		})
	}
}

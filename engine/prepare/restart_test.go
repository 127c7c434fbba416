package prepare_test

import (
	"context"
	"testing"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/sandbox"
)

// A mongos restarted while the migration ran leaves dead connections in the pool:
// the balancer must still be restored at the end (issue 9, scenario 4 found it not).
func TestBalancerIsRestoredAfterTheRouterRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts a sandbox cluster")
	}
	ctx := context.Background()
	c, err := sandbox.Start(ctx, "source", sandbox.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	client, err := topology.Connect(ctx, sandboxtest.Endpoint(c.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	wasOn, err := prepare.StopBalancer(ctx, client)
	if err != nil || !wasOn {
		t.Fatalf("StopBalancer: wasOn %v, %v", wasOn, err)
	}
	if err := c.RestartRouter(); err != nil {
		t.Fatal(err)
	}
	if err := prepare.RestoreBalancer(ctx, client, wasOn); err != nil {
		t.Fatalf("RestoreBalancer after a router restart: %v", err)
	}
	if got := mode(t, client); got == "off" {
		t.Fatal("the balancer is still off")
	}
}

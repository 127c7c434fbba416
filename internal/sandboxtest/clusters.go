package sandboxtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// StartCluster starts one sandbox cluster, seeded with docs documents when docs > 0.
func StartCluster(t *testing.T, name string, docs int) (*sandbox.Cluster, *mongo.Client) {
	t.Helper()
	ctx := context.Background()
	c, err := sandbox.Start(ctx, name, sandbox.Options{Shards: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	client, err := c.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	if docs > 0 {
		if _, err := seed.Populate(ctx, client, docs, rand.New(rand.NewPCG(5, 6))); err != nil {
			t.Fatal(err)
		}
	}
	return c, client
}

// Contents is every user namespace of a cluster with its document count.
func Contents(t *testing.T, c *mongo.Client) []string {
	t.Helper()
	ctx := context.Background()
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, db := range dbs {
		if !namespaces.UserDatabase(db) {
			continue
		}
		names, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			count, err := c.Database(db).Collection(n).CountDocuments(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s.%s %d", db, n, count))
		}
	}
	slices.Sort(out)
	return out
}

// NeedSandbox skips the test under -short: it starts sandbox clusters and runs a
// migration.
func NeedSandbox(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts two sandbox clusters and runs a migration")
	}
}

// EndpointTimeout is the connect and command timeout of Endpoint: the driver's
// own server selection timeout rather than the app's 10 s (topology.DefaultTimeout).
// A sandbox runs inside the test process, so a stall of the machine stalls it too:
// a CI run on a loaded shared machine once saw no answer to a local sandbox's
// hello for 10 s (TestGUIResumeOnAnotherClusterIsRefused, session 13).
const EndpointTimeout = 30 * time.Second

// Endpoint is a test's endpoint for a sandbox cluster's URI (see EndpointTimeout).
func Endpoint(uri string) topology.Endpoint {
	return topology.Endpoint{URI: uri, Timeout: EndpointTimeout}
}

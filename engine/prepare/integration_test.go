package prepare_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/sandbox"
)

// The copy's integration test (engine/initialsync) drives Prepare, ClearShard,
// Wipe and the balancer through a whole migration; this one covers the balancer
// states that one does not meet.

// router connects to the source named by SHARDLIFT_TEST_SOURCE_URI, or to a sandbox.
func router(t *testing.T) *mongo.Client {
	t.Helper()
	return routerOf(t, "SHARDLIFT_TEST_SOURCE_URI")
}

// routerOf connects to the cluster the variable names, or to a sandbox.
func routerOf(t *testing.T, env string) *mongo.Client {
	t.Helper()
	ctx := context.Background()
	uri := os.Getenv(env)
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
	client, err := topology.Connect(ctx, sandboxtest.Endpoint(uri))
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

// The marker holds a destination for one migration: a second one cannot place its
// own nor wipe, the holder's wipe drops every user database (each reported) but
// the marker, which counts as no data, and removing it leaves nothing behind.
// The destination is wiped: SHARDLIFT_TEST_DESTINATION_URI names a test cluster.
func TestTheMarkerHoldsTheDestinationForOneMigration(t *testing.T) {
	c := routerOf(t, "SHARDLIFT_TEST_DESTINATION_URI")
	ctx := context.Background()
	for _, db := range []string{"crm", "shop"} {
		if _, err := c.Database(db).Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, db := range []string{"crm", "shop", topology.MarkerDatabase} {
			c.Database(db).Drop(context.Background())
		}
	})
	mine := topology.Marker{MigrationID: "m-mine", SourceClusterID: primitive.NewObjectID(), Workstation: "here", StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := prepare.PlaceMarker(ctx, c, mine); err != nil {
		t.Fatal(err)
	}
	if err := prepare.PlaceMarker(ctx, c, mine); err != nil {
		t.Fatalf("placing its own marker again: %v", err)
	}
	var held *prepare.HeldError
	if err := prepare.PlaceMarker(ctx, c, topology.Marker{MigrationID: "m-other"}); !errors.As(err, &held) || held.Marker != mine {
		t.Fatalf("another migration's marker: %v", err)
	}
	if err := prepare.Wipe(ctx, c, "m-other", func(db string) { t.Errorf("another migration's wipe dropped %s", db) }); !errors.As(err, &held) {
		t.Fatalf("another migration's wipe: %v", err)
	}
	var dropped []string
	if err := prepare.Wipe(ctx, c, "m-mine", func(db string) { dropped = append(dropped, db) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(dropped)
	if !slices.Equal(dropped, []string{"crm", "shop"}) {
		t.Fatalf("the wipe reported dropping %v", dropped)
	}
	if has, dbs, err := prepare.HasUserData(ctx, c); err != nil || has {
		t.Fatalf("the marker counts as data: %v %v", dbs, err)
	}
	if m, err := topology.ReadMarker(ctx, c); err != nil || m == nil || *m != mine {
		t.Fatalf("the marker after the wipe: %+v %v", m, err)
	}
	if found, err := prepare.RemoveMarker(ctx, c, "m-other"); err != nil || found == nil || found.MigrationID != "m-mine" {
		t.Fatalf("another migration's remove: %+v %v", found, err)
	}
	if m, _ := topology.ReadMarker(ctx, c); m == nil {
		t.Fatal("another migration removed the marker")
	}
	if _, err := prepare.RemoveMarker(ctx, c, "m-mine"); err != nil {
		t.Fatal(err)
	}
	names, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, topology.MarkerDatabase) {
		t.Fatalf("the marker's database is left: %v", names)
	}
}

package load_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// seeded is a router client on a cluster holding the seed data set: a new sandbox, or
// the real cluster named by SHARDLIFT_TEST_SOURCE_URI (seeded when it is not yet).
func seeded(t *testing.T, docs int, ids seed.IDs) *mongo.Client {
	t.Helper()
	uri := os.Getenv("SHARDLIFT_TEST_SOURCE_URI")
	if uri == "" {
		c, err := sandbox.Start(t.Context(), "source", sandbox.Options{Shards: 2, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		})
		uri = c.URI()
	}
	client, err := mongo.Connect(t.Context(), options.Client().ApplyURI(uri).SetServerSelectionTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	present, err := seed.Present(t.Context(), client)
	if err != nil {
		t.Fatal(err)
	}
	if !present {
		if _, err := seed.PopulateIDs(t.Context(), client, docs, rand.New(rand.NewPCG(1, 2)), ids); err != nil {
			t.Fatal(err)
		}
	}
	return client
}

// everyKindCleanly runs the load at 200 writes/s until it made 10 writes of every
// kind, and fails the test on a failed write or when a tenth of them matched nothing.
func everyKindCleanly(t *testing.T, client *mongo.Client, ids seed.IDs, rnd *rand.Rand) {
	t.Helper()
	stats := runUntil(t, client, 200, ids, rnd, func(s *load.Stats) bool {
		for _, k := range load.Kinds {
			if s.Ops(k) < 10 {
				return false
			}
		}
		return true
	})
	t.Logf("load: %s", stats)
	if stats.Errors() != 0 {
		t.Fatalf("%d writes failed; last: %v", stats.Errors(), stats.LastError())
	}
	// A write that matches nothing is a race with a write in flight; a router that
	// sent writes to the wrong shard would make most of them miss.
	if stats.Missed()*10 > stats.Total() {
		t.Errorf("%d of %d writes matched no document", stats.Missed(), stats.Total())
	}
}

func TestLoadRunsEveryKindOfWriteWithoutErrors(t *testing.T) {
	client := seeded(t, 600, seed.ObjectIDs)
	everyKindCleanly(t, client, seed.ObjectIDs, rand.New(rand.NewPCG(3, 4)))
	dbs, err := client.ListDatabaseNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range dbs {
		if !slices.Contains([]string{"shop", "inventory", "analytics", "admin", "config", "local"}, db) {
			t.Errorf("the load created database %s", db)
		}
	}
}

// runUntil runs the load until enough(stats) (a few seconds at most on an idle machine;
// a minute is the limit on a busy one), then stops it.
func runUntil(t *testing.T, client *mongo.Client, rate int, ids seed.IDs, rnd *rand.Rand, enough func(*load.Stats) bool) *load.Stats {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stats := &load.Stats{}
	done := make(chan error, 1)
	go func() { done <- load.RunIDs(ctx, client, rate, ids, rnd, stats) }()
	limit := time.After(time.Minute)
	for !enough(stats) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before it was stopped: %v (%s)", err, stats)
		case <-limit:
			t.Fatalf("the load did not get there in a minute: %s", stats)
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return stats
}

// emptySandbox is a router client on a new two-shard sandbox holding no data, whose
// replies take latency.
func emptySandbox(t *testing.T, latency time.Duration) *mongo.Client {
	t.Helper()
	c, err := sandbox.Start(t.Context(), "source", sandbox.Options{Shards: 2, Dir: t.TempDir(), Latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	client, err := mongo.Connect(t.Context(), options.Client().ApplyURI(c.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client
}

func TestLoadFillsAnEmptyCluster(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("needs an empty cluster")
	}
	client := emptySandbox(t, 0)
	stats := runUntil(t, client, 100, seed.ObjectIDs, rand.New(rand.NewPCG(5, 6)), func(s *load.Stats) bool { return s.Total() >= 50 })
	if stats.Errors() != 0 || stats.Ops(load.Insert) == 0 {
		t.Fatalf("load on an empty cluster: %s", stats)
	}
}

// A load stopped while it starts (sampling the documents it will write to) has
// stopped, not failed: a test that stopped its load a moment after starting it
// failed on "sample the documents of ...: context canceled" on a busy machine
// (TestReplayRetriesWhileASourceShardIsDown, 10 of 11 runs under two busy loops).
func TestLoadStoppedWhileItStartsIsNoError(t *testing.T) {
	client := seeded(t, 200, seed.ObjectIDs)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stats load.Stats
	if err := load.Run(ctx, client, 100, rand.New(rand.NewPCG(3, 4)), &stats); err != nil {
		t.Fatalf("a load stopped before its first write: %v", err)
	}
	if stats.Total() != 0 {
		t.Fatalf("a load stopped before it started wrote: %s", &stats)
	}
}

// TestLoadOnNumberIDsKeepsToNumbers: on a data set seeded with numeric _ids, every kind
// of write runs without errors and what the load inserts has numeric _ids too, ints,
// longs and doubles alike.
func TestLoadOnNumberIDsKeepsToNumbers(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("needs an empty cluster to seed with numeric _ids")
	}
	client := seeded(t, 600, seed.NumberIDs)
	everyKindCleanly(t, client, seed.NumberIDs, rand.New(rand.NewPCG(5, 6)))
	for _, c := range seed.CollectionsWith(seed.NumberIDs) {
		if c.Namespace() == "shop.customers" {
			continue // its _ids are customer numbers (strings) in every data set
		}
		types := map[string]int64{}
		for _, typ := range []string{"int", "long", "double", "objectId"} {
			n, err := client.Database(c.DB).Collection(c.Name).CountDocuments(t.Context(), bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: typ}}}})
			if err != nil {
				t.Fatal(err)
			}
			types[typ] = n
		}
		if types["objectId"] != 0 || types["int"] == 0 || types["long"] == 0 || types["double"] == 0 {
			t.Errorf("%s holds _ids of types %v; want ints, longs and doubles only", c.Namespace(), types)
		}
	}
}

// A stopped load waits for the writes it sent: an application stopped for the cutover
// finishes them, and a write its client abandoned may still be applied by the server
// after the caller took the load for stopped (the GUI's sandbox cutover then found "1
// writes after the sync stopped" in CI). Every reply of this cluster takes 300 ms, so
// writes are in flight whenever the load stops.
func TestLoadStopWaitsForTheWritesInFlight(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("needs a sandbox whose replies are slow")
	}
	client := emptySandbox(t, 300*time.Millisecond)
	stats := runUntil(t, client, 50, seed.ObjectIDs, rand.New(rand.NewPCG(7, 8)), func(s *load.Stats) bool { return s.Total() >= 20 })
	if stats.CutShort() != 0 || stats.Errors() != 0 {
		t.Fatalf("the stop cut writes short: %s", stats)
	}
	// What the answered inserts and deletes left is there, and nothing arrives after
	// the stop (a delete that matched nothing, counted in Missed, left a document).
	var docs int64
	for _, col := range seed.CollectionsWith(seed.ObjectIDs) {
		n, err := client.Database(col.DB).Collection(col.Name).CountDocuments(t.Context(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		docs += n
	}
	least := stats.Ops(load.Insert) - stats.Ops(load.Delete)
	if docs < least || docs > least+stats.Missed() {
		t.Fatalf("the cluster holds %d documents after the load stopped; its answered writes leave %d to %d (%s)", docs, least, least+stats.Missed(), stats)
	}
}

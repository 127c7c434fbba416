package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// createsBeforeT0 are the real clusters, except that while the destination is
// prepared (after the plan's discovery, before any shard's T0) an application
// creates collections on the source: one in an existing database, one in a new one,
// and one it renames at once, as `$out` and daily collections do.
type createsBeforeT0 struct {
	Clusters
	e *e2e
}

func (c createsBeforeT0) PrepareDestination(ctx context.Context, placed func(Placement)) error {
	for _, ns := range []struct{ db, coll string }{{"shop", "made_while_preparing"}, {"appnew", "events"}, {"shop", "batch_0003"}} {
		var docs []any
		for i := range 30 {
			docs = append(docs, bson.D{{Key: "_id", Value: int32(i)}, {Key: "v", Value: ns.coll}})
		}
		if _, err := c.e.srcC.Database(ns.db).Collection(ns.coll).InsertMany(ctx, docs); err != nil {
			c.e.t.Fatal(err)
		}
	}
	if err := c.e.srcC.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "shop.batch_0003"}, {Key: "to", Value: "shop.batch_0003_done"}}).Err(); err != nil {
		c.e.t.Fatal(err)
	}
	return c.Clusters.PrepareDestination(ctx, placed)
}

// A collection created between the plan's discovery and a shard's T0 is in
// neither the plan the copy took nor the replay, which starts after T0: a user's
// sandbox lost shop.batch_0003_done, created 6 s before T0 while the destination
// was prepared. The copy now discovers the collections after its T0.
func TestSandboxCollectionsCreatedBeforeT0AreCopied(t *testing.T) {
	e := startE2EWith(t, 500, "collections created while the destination is prepared", nil)
	cfg := Config{ID: "e2e", Source: e.src, Destination: e.dst, PollEvery: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	m, err := New(cfg, newMemCheckpoints("e2e"), WithConnector(func(ctx context.Context, cfg Config, relaxed RelaxSink) (Clusters, error) {
		c, err := NewMongoClusters(ctx, cfg, relaxed)
		return createsBeforeT0{Clusters: c, e: e}, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 5*time.Minute, "ready", func(s Snapshot) bool { return s.State == Ready })
	s := e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.State != Done || !s.Verification.OK() {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	for _, ns := range []struct{ db, coll string }{{"shop", "made_while_preparing"}, {"appnew", "events"}, {"shop", "batch_0003_done"}} {
		n, err := e.dstC.Database(ns.db).Collection(ns.coll).CountDocuments(context.Background(), bson.D{})
		if err != nil || n != 30 {
			t.Errorf("the destination's %s.%s holds %d documents (%v); the source's 30", ns.db, ns.coll, n, err)
		}
	}
}

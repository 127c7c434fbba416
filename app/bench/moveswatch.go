package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Figure 11 (issue 15) is what one look of the move watcher reads from a source
// with 50,000 chunks in one collection (the seed's hashed shop.customers), every
// 5 s of a migration: documents and reply bytes of config.* reads, and time.
// Before: each look read config.changelog's 500 newest entries, and once a
// minute the whole chunk map (topology.Placement). After: the changelog back to
// the last entry seen, config.databases, config.collections, and the chunks
// written since the last look (topology.PlacementWatch); measured on a cluster
// that did not change, and after one moveChunk.

// watchChunks is the figure's chunk count; watchLooks how many looks each figure
// averages.
const (
	watchChunks = 50_000
	watchLooks  = 5
)

// configReads counts what a client's reads of config.* return.
type configReads struct{ docs, bytes atomic.Int64 }

func (c *configReads) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
		if e.CommandName != "find" && e.CommandName != "getMore" {
			return
		}
		cur, ok := e.Reply.Lookup("cursor").DocumentOK()
		if ns, _ := cur.Lookup("ns").StringValueOK(); !ok || !strings.HasPrefix(ns, "config.") {
			return
		}
		c.bytes.Add(int64(len(e.Reply)))
		for _, batch := range []string{"firstBatch", "nextBatch"} {
			if arr, ok := cur.Lookup(batch).ArrayOK(); ok {
				vals, _ := arr.Values()
				c.docs.Add(int64(len(vals)))
			}
		}
	}}
}

// lookCost is what one look read, on average.
type lookCost struct {
	docs, bytes float64
	took        time.Duration
}

func (l lookCost) String() string {
	return fmt.Sprintf("%.0f documents, %.1f KiB, %.0f ms", l.docs, l.bytes/1024, float64(l.took.Microseconds())/1000)
}

// measure runs look n times and returns its average cost.
func (c *configReads) measure(n int, look func() error) (lookCost, error) {
	docs, bytes, began := c.docs.Load(), c.bytes.Load(), time.Now()
	for range n {
		if err := look(); err != nil {
			return lookCost{}, err
		}
	}
	return lookCost{docs: float64(c.docs.Load()-docs) / float64(n), bytes: float64(c.bytes.Load()-bytes) / float64(n), took: time.Since(began) / time.Duration(n)}, nil
}

func (r *runner) movesWatch(ctx context.Context) error {
	log := slog.New(slog.NewTextHandler(r.o.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := sandbox.Start(ctx, "source", sandbox.Options{Shards: r.o.Shards, Logger: log.With("cluster", "source")})
	if err != nil {
		return fmt.Errorf("start the source sandbox: %w", err)
	}
	defer src.Close()
	var reads configReads
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(src.URI()).SetMonitor(reads.monitor()).SetTimeout(10*time.Minute))
	if err != nil {
		return fmt.Errorf("connect to the source: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	began := time.Now()
	if _, err := seed.PopulateWith(ctx, client, seed.Options{Docs: 2000, Chunks: watchChunks}, rand.New(rand.NewPCG(0x5eed, 0x15))); err != nil {
		return fmt.Errorf("seed the source: %w", err)
	}
	r.logf("figure 11: seeded the source with up to %d chunks in %v", watchChunks, time.Since(began).Round(time.Millisecond))
	const timeout = 10 * time.Minute
	oldChangelog := func() error { // the look before: the 500 newest entries
		_, err := readAllOf(ctx, client.Database("config").Collection("changelog"), options.Find().SetSort(bson.D{{Key: "$natural", Value: -1}}).SetLimit(500))
		return err
	}
	before, err := reads.measure(watchLooks, oldChangelog)
	if err != nil {
		return err
	}
	whole, err := reads.measure(watchLooks, func() error { _, _, err := topology.Placement(ctx, client, timeout); return err })
	if err != nil {
		return err
	}
	var w topology.PlacementWatch
	since := time.Now()
	look := func() error {
		if _, err := topology.Changelog(ctx, client, timeout, since, []string{"moveChunk.commit"}); err != nil {
			return err
		}
		_, _, _, err := w.Read(ctx, client, timeout)
		return err
	}
	first, err := reads.measure(1, look)
	if err != nil {
		return err
	}
	unchanged, err := reads.measure(watchLooks, look)
	if err != nil {
		return err
	}
	var chunk struct {
		Min   bson.Raw `bson:"min"`
		Max   bson.Raw `bson:"max"`
		Shard string   `bson:"shard"`
	}
	var coll struct {
		UUID bson.RawValue `bson:"uuid"`
	}
	if err := client.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "shop.customers"}}).Decode(&coll); err != nil {
		return fmt.Errorf("config.collections shop.customers: %w", err)
	}
	if err := client.Database("config").Collection("chunks").FindOne(ctx, bson.D{{Key: "uuid", Value: coll.UUID}}).Decode(&chunk); err != nil {
		return fmt.Errorf("a chunk of shop.customers: %w", err)
	}
	to := src.Shards()[0].Name
	if to == chunk.Shard {
		to = src.Shards()[1].Name
	}
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "moveChunk", Value: "shop.customers"}, {Key: "bounds", Value: bson.A{chunk.Min, chunk.Max}}, {Key: "to", Value: to}}).Err(); err != nil {
		return fmt.Errorf("moveChunk: %w", err)
	}
	moved, err := reads.measure(1, look)
	if err != nil {
		return err
	}
	perLookBefore := before.bytes + whole.bytes/12
	r.note("figure 11: the move watcher's look every 5 s at %s chunks. Before: the changelog's 500 newest entries every look (%s) and the whole chunk map every minute (%s); per look on average %.1f KiB. After: the first look %s; a look at an unchanged cluster %s; the look after one moveChunk %s. Load average %s",
		thousands(watchChunks), before, whole, perLookBefore/1024, first, unchanged, moved, loadAverage())
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("11. move watcher's look at %s chunks, cluster unchanged", thousands(watchChunks)),
		Shardlift: unchanged.String(),
		Ceiling:   fmt.Sprintf("before: %.1f KiB per look on average (changelog %s; each minute, the chunk map %s)", perLookBefore/1024, before, whole),
		Ratio:     Ratio(unchanged.bytes, perLookBefore),
		Target:    "a few small reads: under 100 documents",
		Verdict:   AtMost(unchanged.docs, 100),
	})
	return nil
}

// readAllOf reads every document a find returns.
func readAllOf(ctx context.Context, coll *mongo.Collection, opts *options.FindOptions) ([]bson.Raw, error) {
	cur, err := coll.Find(ctx, bson.D{}, opts)
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, cur.Current)
	}
	return out, cur.Err()
}

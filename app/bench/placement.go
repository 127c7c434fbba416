package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/router"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Figure 7 (issue 17) is Prepare's placement of a source with 100,000 chunks in one
// collection (shop.customers; the seed's two ranged collections get as many chunks as
// they have distinct seeded keys), on a destination whose split and moveChunk take as
// long as a real cluster's (router.RealisticCommandLatency):
//
//	shardlift sandbox --docs 20000 --chunks 100000 --command-latency realistic
//
// then discovery of both clusters, the plan, and Prepare, timed apart. It counts the
// split, moveChunk and moveRange commands Prepare sends against the places where
// the source's owning shard changes, the least a placement must send; the ceiling
// is what those commands alone cost at the realistic latencies, sent one at a time.

// placementChunks is how many chunks the source's hashed collection gets.
const placementChunks = 100_000

// placementDocs is the seed's size: enough for the ranged collections to have a few
// thousand chunks, little enough to leave the time to the chunks.
const placementDocs = 20_000

func (r *runner) placement(ctx context.Context) error {
	log := slog.New(slog.NewTextHandler(r.o.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := sandbox.Start(ctx, "source", sandbox.Options{Shards: r.o.Shards, Logger: log.With("cluster", "source")})
	if err != nil {
		return fmt.Errorf("start the source sandbox: %w", err)
	}
	defer src.Close()
	lat := router.RealisticCommandLatency
	dst, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: r.o.Shards, CommandLatency: lat, Logger: log.With("cluster", "destination")})
	if err != nil {
		return fmt.Errorf("start the destination sandbox: %w", err)
	}
	defer dst.Close()
	srcEnd := topology.Endpoint{URI: src.URI(), Timeout: 10 * time.Minute}
	srcC, err := topology.Connect(ctx, srcEnd)
	if err != nil {
		return fmt.Errorf("connect to the source: %w", err)
	}
	defer srcC.Disconnect(context.WithoutCancel(ctx))
	began := time.Now()
	if _, err := seed.PopulateWith(ctx, srcC, seed.Options{Docs: placementDocs, Chunks: placementChunks}, rand.New(rand.NewPCG(0x5eed, 0x17))); err != nil {
		return fmt.Errorf("seed the source: %w", err)
	}
	r.logf("figure 7: seeded the source with %d documents and up to %d chunks per sharded collection in %v", placementDocs, placementChunks, time.Since(began).Round(time.Millisecond))

	began = time.Now()
	srcTopo, err := topology.Discover(ctx, srcEnd)
	if err != nil {
		return fmt.Errorf("discover the source: %w", err)
	}
	discovered := time.Since(began)
	dstEnd := topology.Endpoint{URI: dst.URI(), Timeout: 10 * time.Minute}
	dstTopo, err := topology.Discover(ctx, dstEnd)
	if err != nil {
		return fmt.Errorf("discover the destination: %w", err)
	}
	began = time.Now()
	plan, err := prepare.NewPlan(srcTopo, dstTopo)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	planned := time.Since(began)
	chunks, changes, sharded := 0, 0, 0
	for _, c := range plan.Collections {
		if len(c.Chunks) > 0 {
			sharded++
		}
		chunks += len(c.Chunks)
		for i := 1; i < len(c.Chunks); i++ {
			if c.Chunks[i].Shard != c.Chunks[i-1].Shard {
				changes++
			}
		}
	}

	var splits, moves, ranges atomic.Int64
	opts, err := dstEnd.ClientOptions()
	if err != nil {
		return err
	}
	opts.SetMonitor(&event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "split":
			splits.Add(1)
		case "moveChunk":
			moves.Add(1)
		case "moveRange":
			ranges.Add(1)
		}
	}})
	dstC, err := mongo.Connect(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to the destination: %w", err)
	}
	defer dstC.Disconnect(context.WithoutCancel(ctx))
	began = time.Now()
	var last prepare.Placement
	if err := prepare.Prepare(ctx, dstC, plan, nil, log, func(p prepare.Placement) { last = p }); err != nil {
		return fmt.Errorf("prepare the destination: %w", err)
	}
	placed := time.Since(began)
	// At most one split per ownership change and one move per run (a run that lands
	// where the destination's initial chunk lies needs none); with moveRange (6.0+)
	// no split.
	most := 2*changes + sharded
	floor := time.Duration(changes)*lat.Split + time.Duration(changes+sharded)*lat.MoveChunk
	sent := splits.Load() + moves.Load() + ranges.Load()
	r.note("figure 7: %s source chunks in %d sharded collections, %d ownership changes; discovery of the source %.1f s, the plan %.2f s, Prepare %.1f s (%d splits, %d moveChunks, %d moveRanges at split %v, moveChunk and moveRange %v, up to %d collections at once; placement progress at the end: %s; the commands a placement by ranges needs at most take %.1f s one at a time); ratio = commands sent / the most a placement by ranges needs (%d); load average %s",
		thousands(int64(chunks)), sharded, changes, discovered.Seconds(), planned.Seconds(), placed.Seconds(), splits.Load(), moves.Load(), ranges.Load(), lat.Split, lat.MoveChunk, prepare.PlacementParallel, last, floor.Seconds(), most, loadAverage())
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("7. placement of %s source chunks, %d shards, realistic command latency", thousands(int64(chunks)), r.o.Shards),
		Shardlift: fmt.Sprintf("%.1f s: %d splits, %d moveChunks, %d moveRanges", placed.Seconds(), splits.Load(), moves.Load(), ranges.Load()),
		Ceiling:   fmt.Sprintf("%d ownership changes: up to %d commands", changes, most),
		Ratio:     Ratio(float64(sent), float64(most)),
		Target:    "under 60 s",
		Verdict:   AtMost(placed.Seconds(), 60),
	})
	return nil
}

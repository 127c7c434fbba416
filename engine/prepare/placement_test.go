package prepare_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// commandCounter counts the commands a client sends, by name.
type commandCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[e.CommandName]++
	}}
}

func (c *commandCounter) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// startSandbox starts a sandbox cluster of the release, closed at cleanup.
func startSandbox(t *testing.T, name, version string) *sandbox.Cluster {
	t.Helper()
	c, err := sandbox.Start(context.Background(), name, sandbox.Options{Dir: t.TempDir(), MongoDBVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seeded is a source seeded with documents and chunks, an empty destination, and
// the plan to migrate the one into the other.
type seeded struct {
	src, dst  *sandbox.Cluster
	srcClient *mongo.Client
	plan      *prepare.Plan
}

// seededPair starts a source and a destination of the release, seeds the source
// as opts and rnd say, and plans the migration; all end at cleanup.
func seededPair(t *testing.T, version string, opts seed.Options, rnd *rand.Rand) seeded {
	t.Helper()
	ctx := context.Background()
	sb := seeded{src: startSandbox(t, "source", version), dst: startSandbox(t, "destination", version)}
	sb.srcClient, _ = countingClient(t, sb.src.URI())
	if _, err := seed.PopulateWith(ctx, sb.srcClient, opts, rnd); err != nil {
		t.Fatal(err)
	}
	srcTopo, err := topology.Discover(ctx, sandboxtest.Endpoint(sb.src.URI()))
	if err != nil {
		t.Fatal(err)
	}
	dstTopo, err := topology.Discover(ctx, sandboxtest.Endpoint(sb.dst.URI()))
	if err != nil {
		t.Fatal(err)
	}
	if sb.plan, err = prepare.NewPlan(srcTopo, dstTopo); err != nil {
		t.Fatal(err)
	}
	return sb
}

// countingClient connects to a cluster, counting its commands.
func countingClient(t *testing.T, uri string) (*mongo.Client, *commandCounter) {
	t.Helper()
	e := topology.Endpoint{URI: uri, Timeout: time.Minute}
	opts, err := e.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	cc := &commandCounter{n: map[string]int{}}
	opts.SetMonitor(cc.monitor())
	client, err := mongo.Connect(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client, cc
}

// Placement by ranges (issue 17): a source whose sharded collections have hundreds
// of chunks in runs is placed with one move per misplaced range and, from 6.0, no
// split at all (moveRange splits as it moves); before 6.0 a split per missing
// bound and a moveChunk per misplaced chunk. Every source chunk's range ends on the
// twin of its owner, and the progress reaches its totals.
func TestPlacementByRanges(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts sandbox clusters")
	}
	for _, version := range []string{"8.0", "5.0"} {
		t.Run(version, func(t *testing.T) {
			ctx := context.Background()
			sb := seededPair(t, version, seed.Options{Docs: 600, Chunks: 300}, rand.New(rand.NewPCG(1, 17)))
			dst, plan := sb.dst, sb.plan
			chunks, runs, sharded := 0, 0, 0
			for _, c := range plan.Collections {
				if !c.Sharded {
					continue
				}
				sharded++
				chunks += len(c.Chunks)
				runs++
				for i := 1; i < len(c.Chunks); i++ {
					if c.Chunks[i].Shard != c.Chunks[i-1].Shard {
						runs++
					}
				}
			}
			if chunks < 3*runs {
				t.Fatalf("the seed made %d chunks in %d runs: too few chunks per run to tell placement by ranges", chunks, runs)
			}
			client, cc := countingClient(t, dst.URI())
			var mu sync.Mutex
			var last prepare.Placement
			if err := prepare.Prepare(ctx, client, plan, nil, nil, func(p prepare.Placement) { mu.Lock(); last = p; mu.Unlock() }); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			moves := cc.count("moveRange") + cc.count("moveChunk")
			t.Logf("%d chunks in %d runs of %d collections: %d splits, %d moveRange, %d moveChunk", chunks, runs, sharded, cc.count("split"), cc.count("moveRange"), cc.count("moveChunk"))
			if version >= "6.0" {
				if cc.count("split") != 0 || cc.count("moveChunk") != 0 || cc.count("moveRange") == 0 {
					t.Errorf("on %s: %d splits, %d moveChunk, %d moveRange; want moveRange alone", version, cc.count("split"), cc.count("moveChunk"), cc.count("moveRange"))
				}
			} else if cc.count("moveRange") != 0 || cc.count("split") > runs {
				t.Errorf("on %s: %d splits, %d moveRange; want at most a split per run and no moveRange", version, cc.count("split"), cc.count("moveRange"))
			}
			if moves > runs {
				t.Errorf("%d moves for %d runs", moves, runs)
			}
			if last.Collections != sharded || last.CollectionsPlaced != sharded || last.Ranges < runs || last.RangesPlaced != last.Ranges {
				t.Errorf("placement progress %+v, want %d collections and at least %d ranges, all placed", last, sharded, runs)
			}
			dstTopo, err := topology.Discover(ctx, sandboxtest.Endpoint(dst.URI()))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range plan.Collections {
				if !c.Sharded {
					continue
				}
				owners := destinationOwners(t, dstTopo, c.NS())
				for _, ch := range c.Chunks {
					if got, _ := owners.Owner(ch.Min); got != plan.Twin(ch.Shard) {
						t.Fatalf("%s: [%s, %s) is on %s on the destination, want %s", c.NS(), ch.Min, ch.Max, got, plan.Twin(ch.Shard))
					}
				}
			}
		})
	}
}

// destinationOwners is a collection's chunk map as discovery read it.
func destinationOwners(t *testing.T, c *topology.Cluster, ns string) *shardkey.ChunkMap {
	t.Helper()
	for _, coll := range c.Collections {
		if coll.Namespace != ns {
			continue
		}
		var chunks []shardkey.Chunk
		for _, ch := range coll.Chunks {
			chunks = append(chunks, shardkey.Chunk{Min: shardkey.Key(ch.Min), Max: shardkey.Key(ch.Max), Shard: ch.Shard})
		}
		m, err := shardkey.NewChunkMap(chunks)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("the destination has no sharded %s", ns)
	return nil
}

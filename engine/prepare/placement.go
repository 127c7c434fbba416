package prepare

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
)

// PlacementParallel bounds how many collections Prepare shards and places at
// once. A real cluster's config server serialises the migrations of one
// collection, not those of different collections; a few at once keep the
// destination's shards from copying many ranges together.
const PlacementParallel = 4

// Placement is how far Prepare has placed the sharded collections on the
// destination: collections sharded and placed, and their ranges (runs of source
// chunks owned by one shard, cut at zone bounds) on the twin of their owner.
// The totals come from the plan, so they are known before the first command.
type Placement struct {
	Collections, CollectionsPlaced int
	Ranges, RangesPlaced           int
}

// String is the placement as the status shows it: "placed 12 of 40 ranges, 1 of 3
// sharded collections".
func (p Placement) String() string {
	return fmt.Sprintf("placed %d of %d ranges, %d of %d sharded collections", p.RangesPlaced, p.Ranges, p.CollectionsPlaced, p.Collections)
}

// placementCounter counts Placement across the collections placed in parallel and
// reports each change.
type placementCounter struct {
	mu     sync.Mutex
	p      Placement
	report func(Placement)
}

func newPlacementCounter(plan *Plan, report func(Placement)) *placementCounter {
	pc := &placementCounter{report: report}
	for _, c := range plan.Collections {
		if c.Sharded {
			pc.p.Collections++
			pc.p.Ranges += len(placementBounds(c, plan.Zones)) + 1
		}
	}
	pc.add(0, 0)
	return pc
}

func (pc *placementCounter) add(collections, ranges int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.p.CollectionsPlaced += collections
	pc.p.RangesPlaced += ranges
	if pc.report != nil {
		pc.report(pc.p)
	}
}

// moveRangeFrom is the first release with moveRange, which moves a part of a
// chunk (splitting it at the part's bounds) in one command.
const moveRangeFrom = "6.0"

// placeChunks gives each range of the collection (ownerRuns) to the twin of its
// source owner and returns how many move commands it sent. From 6.0 each
// misplaced part of a destination chunk moves with one moveRange; before, the
// destination is first split at the range bounds it lacks and each misplaced
// chunk moves with moveChunk.
//
// Only ownership matters to the migration: a run of source chunks on one shard
// becomes one destination range, so 100,000 source chunks in a few runs cost a few
// commands, not 100,000 (the destination's own balancer and auto-splitter shape
// the chunks afterwards, as they would on any cluster).
func placeChunks(ctx context.Context, client *mongo.Client, plan *Plan, c *Collection, placed func()) (int, error) {
	bounds := placementBounds(c, plan.Zones)
	dst, err := destinationChunks(ctx, client, c.NS())
	if err != nil {
		return 0, err
	}
	byRange := !topology.OlderThan(plan.DestinationVersion, moveRangeFrom)
	admin := client.Database("admin")
	if !byRange {
		for _, at := range missingSplits(bounds, dst) {
			if err := admin.RunCommand(ctx, bson.D{{Key: "split", Value: c.NS()}, {Key: "middle", Value: bson.Raw(at)}}).Err(); err != nil {
				return 0, fmt.Errorf("split %s on the destination at %s (where the source's owning shard changes): %w", c.NS(), at, err)
			}
		}
		if dst, err = destinationChunks(ctx, client, c.NS()); err != nil {
			return 0, err
		}
		if left := missingSplits(bounds, dst); len(left) > 0 {
			return 0, fmt.Errorf("split %s on the destination: the chunk boundary %s is still missing after the split", c.NS(), left[0])
		}
	}
	runs, err := ownerRuns(c, bounds, plan.Twin)
	if err != nil {
		return 0, fmt.Errorf("place the chunks of %s: %w", c.NS(), err)
	}
	sent := 0
	for _, run := range runs {
		for _, m := range misplaced(run, dst) {
			cmd := bson.D{{Key: "moveChunk", Value: c.NS()}, {Key: "bounds", Value: bson.A{bson.Raw(m.Min), bson.Raw(m.Max)}}, {Key: "to", Value: m.To}}
			if byRange {
				cmd = bson.D{{Key: "moveRange", Value: c.NS()}, {Key: "toShard", Value: m.To}, {Key: "min", Value: bson.Raw(m.Min)}, {Key: "max", Value: bson.Raw(m.Max)}}
			}
			if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
				return 0, fmt.Errorf("move the range [%s, %s) of %s on the destination from %s to %s (%s): %w", m.Min, m.Max, c.NS(), m.From, m.To, cmd[0].Key, err)
			}
			sent++
		}
		placed()
	}
	if sent == 0 {
		return 0, nil
	}
	if dst, err = destinationChunks(ctx, client, c.NS()); err != nil {
		return 0, err
	}
	for _, run := range runs {
		if left := misplaced(run, dst); len(left) > 0 {
			return 0, fmt.Errorf("place the chunks of %s: the range [%s, %s) is on %s after it was moved to %s (is the destination's balancer moving chunks?)",
				c.NS(), left[0].Min, left[0].Max, left[0].From, left[0].To)
		}
	}
	return sent, nil
}

// placementBounds are the keys where the destination must have a chunk boundary:
// each source chunk min whose shard differs from the chunk before it, and each
// bound of the collection's zone ranges (a chunk must lie within one zone for
// moveChunk to place it), sorted, without the global minimum and maximum.
func placementBounds(c *Collection, zones []topology.ZoneRange) []shardkey.Key {
	var out []shardkey.Key
	for i := 1; i < len(c.Chunks); i++ {
		if c.Chunks[i].Shard != c.Chunks[i-1].Shard {
			out = append(out, c.Chunks[i].Min)
		}
	}
	if len(c.Chunks) > 0 {
		lo, hi := c.Chunks[0].Min, c.Chunks[len(c.Chunks)-1].Max
		for _, z := range zones {
			if z.Namespace != c.NS() {
				continue
			}
			for _, at := range []shardkey.Key{shardkey.Key(z.Min), shardkey.Key(z.Max)} {
				if shardkey.CompareKeys(at, lo) > 0 && shardkey.CompareKeys(at, hi) < 0 {
					out = append(out, at)
				}
			}
		}
	}
	slices.SortFunc(out, shardkey.CompareKeys)
	return slices.CompactFunc(out, func(a, b shardkey.Key) bool { return shardkey.CompareKeys(a, b) == 0 })
}

// missingSplits are the bounds (sorted) that are not yet a destination chunk
// boundary; dst is sorted by Min.
func missingSplits(bounds []shardkey.Key, dst []shardkey.Chunk) []shardkey.Key {
	var out []shardkey.Key
	j := 0
	for _, at := range bounds {
		for j < len(dst) && shardkey.CompareKeys(dst[j].Min, at) < 0 {
			j++
		}
		if j < len(dst) && shardkey.CompareKeys(dst[j].Min, at) == 0 {
			continue
		}
		out = append(out, at)
	}
	return out
}

// move is one range Prepare moves.
type move struct {
	Min, Max shardkey.Key
	From, To string
}

// ownerRuns cuts the collection's key space at bounds (placementBounds) into the
// ranges each owned by one source shard, each with the destination twin of that
// owner as its Shard.
func ownerRuns(c *Collection, bounds []shardkey.Key, twin func(string) string) ([]shardkey.Chunk, error) {
	if len(c.Chunks) == 0 {
		return nil, nil
	}
	edges := append(append([]shardkey.Key{c.Chunks[0].Min}, bounds...), c.Chunks[len(c.Chunks)-1].Max)
	runs := make([]shardkey.Chunk, 0, len(edges)-1)
	for i := 0; i+1 < len(edges); i++ {
		owner, ok := c.chunkMap.Owner(edges[i])
		if !ok {
			return nil, fmt.Errorf("no source chunk holds %s", edges[i])
		}
		to := twin(owner)
		if to == "" {
			return nil, fmt.Errorf("source shard %s has no destination twin", owner)
		}
		runs = append(runs, shardkey.Chunk{Min: edges[i], Max: edges[i+1], Shard: to})
	}
	return runs, nil
}

// misplaced are the parts of run that lie on another destination shard than
// run.Shard: each destination chunk overlapping run, cut to run's bounds. dst is
// sorted by Min.
func misplaced(run shardkey.Chunk, dst []shardkey.Chunk) []move {
	var out []move
	i, _ := slices.BinarySearchFunc(dst, run.Min, func(ch shardkey.Chunk, k shardkey.Key) int { return shardkey.CompareKeys(ch.Max, k) })
	for ; i < len(dst) && shardkey.CompareKeys(dst[i].Min, run.Max) < 0; i++ {
		ch := dst[i]
		if shardkey.CompareKeys(ch.Max, run.Min) <= 0 || ch.Shard == run.Shard {
			continue
		}
		lo, hi := ch.Min, ch.Max
		if shardkey.CompareKeys(lo, run.Min) < 0 {
			lo = run.Min
		}
		if shardkey.CompareKeys(hi, run.Max) > 0 {
			hi = run.Max
		}
		out = append(out, move{Min: lo, Max: hi, From: ch.Shard, To: run.Shard})
	}
	return out
}

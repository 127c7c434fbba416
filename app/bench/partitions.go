package bench

import (
	"context"
	"fmt"
	"strings"
)

// partitionsSide is the number of cursors figure 10 compares with one.
const partitionsSide = 8

// partitionedCopy is figure 10: the copy of one collection that holds the data
// (bench.docs, hashed over the shards), by one cursor per shard and by 8 _id
// ranges per shard, each in a child, one after the other in the same run.
func (r *runner) partitionedCopy(ctx context.Context) error {
	if r.seeded < r.o.Docs {
		if err := r.seed(ctx, r.o.Docs); err != nil {
			return err
		}
	}
	return r.copyByPartitions(ctx, 10, "")
}

// partitionedCopyFar is figure 13: figure 10 on a second pair of clusters
// benchLatency away (figure 8's), where a cursor's round trips, not the servers'
// CPU, should bound one cursor.
func (r *runner) partitionedCopyFar(ctx context.Context) error {
	far := &runner{o: r.o, t: r.t}
	if err := far.start(ctx, benchLatency); err != nil {
		return err
	}
	defer far.stop()
	if err := far.seed(ctx, r.o.Docs); err != nil {
		return err
	}
	return far.copyByPartitions(ctx, 13, fmt.Sprintf(", at %v added latency", benchLatency))
}

// partitionsOrder is the order of figure 10's and 13's copies: one cursor per
// shard, the ranges, the ranges, one cursor. Mirrored, the machine's drift over
// the run weighs on both sides alike, and each side's rate is its two copies' mean.
var partitionsOrder = []int{1, partitionsSide, partitionsSide, 1}

// copyByPartitions copies whatever bench.docs holds on r's source by one cursor
// and by partitionsSide ranges per shard, interleaved (partitionsOrder), and adds
// the row of figure fig, where suffix says how far the clusters are.
func (r *runner) copyByPartitions(ctx context.Context, fig int, suffix string) error {
	docs := r.seeded // figure 5 may have seeded 4x as many before this one
	var first int64  // what the first copy wrote: every other must write as much
	sides := map[int]*partitionsSideResult{}
	var runs []string
	for i, parts := range partitionsOrder {
		if err := r.dropDestination(ctx); err != nil {
			return err
		}
		load := loadAverage()
		r.logf("%d. the copy of %d documents in one collection, %d cursor(s) per shard%s (load average %s)", fig, docs, parts, suffix, load)
		cp, err := runChildProcess(ctx, "copy", r.src.URI(), r.dst.URI(), 0, "", r.o.Log, "--partitions", fmt.Sprint(parts))
		if err != nil {
			return err
		}
		// The source may hold a few more than bench.docs: the lag figure's load.
		if cp.Docs < int64(docs) || (i > 0 && cp.Docs != first) {
			return fmt.Errorf("the copy by %d cursor(s) per shard wrote %d documents; bench.docs holds %d, the first copy wrote %d", parts, cp.Docs, docs, first)
		}
		if i == 0 {
			first = cp.Docs
		}
		r.logf("   %s in %.1f s; %s", rate(cp.docsPerSec(), "docs/s"), cp.Seconds, cp.cpuShare())
		runs = append(runs, fmt.Sprintf("%d: %.1f s (load %s; %s)", parts, cp.Seconds, load, cp.cpuShare()))
		side := sides[parts]
		if side == nil {
			side = &partitionsSideResult{}
			sides[parts] = side
		}
		side.seconds = append(side.seconds, cp.Seconds)
	}
	one, many := sides[1], sides[partitionsSide]
	r.note("figure %d, copies in the order %v (cursors per shard: seconds, load average at its start, CPU): %s", fig, partitionsOrder, strings.Join(runs, "; "))
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("%d. copy of one collection, %s docs, %d shards: %d _id ranges per shard against 1%s", fig, thousands(first), r.o.Shards, partitionsSide, suffix),
		Shardlift: fmt.Sprintf("%s, %.1f s (%d ranges, mean of %d)", rate(float64(first)/many.mean(), "docs/s"), many.mean(), partitionsSide, len(many.seconds)),
		Ceiling:   fmt.Sprintf("%s, %.1f s (1 cursor, mean of %d)", rate(float64(first)/one.mean(), "docs/s"), one.mean(), len(one.seconds)),
		Ratio:     Ratio(one.mean(), many.mean()),
	})
	return nil
}

// partitionsSideResult is one side of figure 10 or 13: the seconds of its copies.
type partitionsSideResult struct{ seconds []float64 }

func (s *partitionsSideResult) mean() float64 {
	var sum float64
	for _, v := range s.seconds {
		sum += v
	}
	return sum / float64(len(s.seconds))
}

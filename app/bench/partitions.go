package bench

import (
	"context"
	"fmt"
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

// copyByPartitions copies whatever bench.docs holds on r's source by one cursor
// and by partitionsSide ranges per shard and adds the row of figure fig, where suffix
// says how far the clusters are.
func (r *runner) copyByPartitions(ctx context.Context, fig int, suffix string) error {
	docs := r.seeded // figure 5 may have seeded 4x as many before this one
	var res [2]childResult
	for i, parts := range []int{1, partitionsSide} {
		if err := r.dropDestination(ctx); err != nil {
			return err
		}
		r.logf("%d. the copy of %d documents in one collection, %d cursor(s) per shard%s", fig, docs, parts, suffix)
		cp, err := runChildProcess(ctx, "copy", r.src.URI(), r.dst.URI(), 0, "", r.o.Log, "--partitions", fmt.Sprint(parts))
		if err != nil {
			return err
		}
		// The source may hold a few more than bench.docs: the lag figure's load.
		if cp.Docs < int64(docs) || (i > 0 && cp.Docs != res[0].Docs) {
			return fmt.Errorf("the copy by %d cursor(s) per shard wrote %d documents; bench.docs holds %d, the copy by one cursor wrote %d", parts, cp.Docs, docs, res[0].Docs)
		}
		r.logf("   %s in %.1f s; %s", rate(cp.docsPerSec(), "docs/s"), cp.Seconds, cp.cpuShare())
		res[i] = cp
	}
	one, eight := res[0], res[1]
	r.note("figure %d: CPU while one cursor per shard copied: %s; with %d: %s", fig, one.cpuShare(), partitionsSide, eight.cpuShare())
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("%d. copy of one collection, %s docs, %d shards: %d _id ranges per shard against 1%s", fig, thousands(eight.Docs), r.o.Shards, partitionsSide, suffix),
		Shardlift: fmt.Sprintf("%s, %.1f s (%d ranges)", rate(eight.docsPerSec(), "docs/s"), eight.Seconds, partitionsSide),
		Ceiling:   fmt.Sprintf("%s, %.1f s (1 cursor)", rate(one.docsPerSec(), "docs/s"), one.Seconds),
		Ratio:     Ratio(eight.docsPerSec(), one.docsPerSec()),
	})
	return nil
}

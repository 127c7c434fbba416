package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/shardlift/shardlift/internal/units"
)

// benchLatency is figure 8's network delay between Shardlift and the clusters.
const benchLatency = 40 * time.Millisecond

// latency is figure 8 (issue 17): figure 1's copy and figure 2's replay again, on a
// second pair of clusters whose every reply to a client comes benchLatency late
// (sandbox.Options.Latency: the routers, config servers and shard members; not the
// routers' own requests to their shards), each as a ratio to the same figure
// measured without the delay. The copy reads the source shards and writes through
// the destination's router, both across the delay; the replay reads its backlog
// from memory, as figure 2's does, and writes across it.
func (r *runner) latency(ctx context.Context, copied childResult, replayed float64) error {
	far := &runner{o: r.o, t: r.t}
	if err := far.start(ctx, benchLatency); err != nil {
		return err
	}
	defer far.stop()
	if err := far.seed(ctx, r.o.Docs); err != nil {
		return err
	}
	// Figure 1's copy runs after its pipe wrote the destination once and it was
	// emptied; so does this one, which also gives the pipe's own cost of the delay.
	// The copy into files never written before ran at 0.72 to 0.78 of figure 1's,
	// copies after it at 0.80 to 0.91, whatever the writers (session 16).
	r.logf("8. plain driver pipe of the source shards' %d documents, %v away from both clusters", r.o.Docs, benchLatency)
	pipe, err := runChildProcess(ctx, "pipe", far.src.URI(), far.dst.URI(), 0, "", r.o.Log)
	if err != nil {
		return err
	}
	r.logf("   %s in %.1f s; %s", rate(pipe.docsPerSec(), "docs/s"), pipe.Seconds, pipe.cpuShare())
	if r.piped.Docs > 0 {
		r.note("figure 8: the plain driver pipe %v away: %s, %.2f of figure 1's pipe (%s)", benchLatency,
			rate(pipe.docsPerSec(), "docs/s"), Ratio(pipe.docsPerSec(), r.piped.docsPerSec()), rate(r.piped.docsPerSec(), "docs/s"))
	}
	if err := far.dropDestination(ctx); err != nil {
		return err
	}
	r.logf("8. Shardlift's copy of %d documents, %v away from both clusters", r.o.Docs, benchLatency)
	stopProfile := r.startProfile("servers-copy-latency.cpu")
	cp, err := runChildProcess(ctx, "copy", far.src.URI(), far.dst.URI(), 0, r.profile("copy-latency.cpu"), r.o.Log)
	stopProfile()
	if err != nil {
		return err
	}
	if cp.Docs != int64(r.o.Docs) {
		return fmt.Errorf("the copy at %v wrote %d documents, the source holds %d", benchLatency, cp.Docs, r.o.Docs)
	}
	r.logf("   %s in %.1f s (first write after %.1f s); %s", rate(cp.docsPerSec(), "docs/s"), cp.Seconds, cp.FirstWrite, cp.cpuShare())
	ratio := Ratio(cp.docsPerSec(), copied.docsPerSec())
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("8. initial sync at %v added latency, %s docs", benchLatency, thousands(cp.Docs)),
		Shardlift: fmt.Sprintf("%s, %s", rate(cp.docsPerSec(), "docs/s"), units.Rate(cp.bytesPerSec())),
		Ceiling:   fmt.Sprintf("%s (figure 1, no added latency)", rate(copied.docsPerSec(), "docs/s")),
		Ratio:     ratio, Target: ">= 0.80", Verdict: AtLeast(ratio, 0.8),
	})

	b, err := makeBacklog(r.o.Backlog, r.o.Shards)
	if err != nil {
		return err
	}
	r.logf("8. Shardlift's replay of the backlog's %d entries, %v away from the destination", b.entries, benchLatency)
	stopProfile = r.startProfile("replay-latency.cpu")
	rep, err := replayBacklog(ctx, far.dstC, b, false)
	stopProfile()
	if err != nil {
		return err
	}
	got := float64(b.entries) / rep.Seconds()
	r.logf("   %s in %v", rate(got, "entries/s"), rep.Round(time.Millisecond))
	ratio = Ratio(got, replayed)
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("8. oplog replay at %v added latency, %s entries", benchLatency, thousands(int64(b.entries))),
		Shardlift: rate(got, "entries/s"),
		Ceiling:   fmt.Sprintf("%s (figure 2, no added latency)", rate(replayed, "entries/s")),
		Ratio:     ratio, Target: ">= 0.80", Verdict: AtLeast(ratio, 0.8),
	})
	return nil
}

package bench

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
)

// replayLatencies are figure 11's network delays between Shardlift and the
// destination.
var replayLatencies = []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}

// replayAtLatencies is figure 11 (issue 17): figure 2's replay on a destination
// each of replayLatencies away (a cluster started for each, sandbox.Options.Latency),
// by the applier that writes in rounds and by the one before it (one bulk write per
// batch, ordered when a document repeats: replay.Config.SerialBulks), one after the
// other on the same cluster, the serial one first.
func (r *runner) replayAtLatencies(ctx context.Context) error {
	b, err := makeBacklog(r.o.Backlog, r.o.Shards)
	if err != nil {
		return err
	}
	var atZero float64
	for _, latency := range replayLatencies {
		var rates, commands [2]float64
		var writes atomic.Int64
		err := withDestination(ctx, r, latency, &writes, func(dst *mongo.Client) error {
			for i, serial := range []bool{true, false} {
				r.logf("11. the replay of %d entries, %v from the destination, serial applier: %v", b.entries, latency, serial)
				before := writes.Load()
				took, err := replayBacklog(ctx, dst, b, serial)
				if err != nil {
					return err
				}
				rates[i] = float64(b.entries) / took.Seconds()
				commands[i] = float64(writes.Load() - before)
				r.logf("   %s in %v, %.0f write commands", rate(rates[i], "entries/s"), took.Round(time.Millisecond), commands[i])
			}
			return nil
		})
		if err != nil {
			return err
		}
		serial, rounds := rates[0], rates[1]
		if latency == 0 {
			atZero = rounds
		}
		perK := func(n float64) float64 { return n * 1000 / float64(b.entries) }
		r.t.Rows = append(r.t.Rows, Row{
			Figure:    fmt.Sprintf("11. oplog replay at %v added latency, %s entries: rounds against one bulk per batch", latency, thousands(int64(b.entries))),
			Shardlift: fmt.Sprintf("%s, %.0f write commands per 1,000 entries (%.2f of rounds at 0 ms)", rate(rounds, "entries/s"), perK(commands[1]), Ratio(rounds, atZero)),
			Ceiling:   fmt.Sprintf("%s, %.0f write commands per 1,000 entries (one bulk per batch)", rate(serial, "entries/s"), perK(commands[0])),
			Ratio:     Ratio(rounds, serial),
		})
	}
	return nil
}

// withDestination starts a destination cluster latency away from this process,
// connects to it as figure 2 does, counting the write commands sent (each a round
// trip) in writes, runs f and stops the cluster.
func withDestination(ctx context.Context, r *runner, latency time.Duration, writes *atomic.Int64, f func(dst *mongo.Client) error) error {
	log := slog.New(slog.NewTextHandler(r.o.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: r.o.Shards, Latency: latency, Logger: log.With("cluster", "destination")})
	if err != nil {
		return fmt.Errorf("start a destination sandbox %v away: %w", latency, err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			r.logf("stop a sandbox cluster: %v", err)
		}
	}()
	count := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "insert", "update", "delete":
			writes.Add(1)
		}
	}}
	client, err := connectMajorityMonitored(ctx, topology.Endpoint{URI: c.URI(), Timeout: time.Minute}, count)
	if err != nil {
		return fmt.Errorf("connect to the destination: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	return f(client)
}

package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/topology"
)

// replayLatencies are figure 12's network delays between Shardlift and the
// destination.
var replayLatencies = []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}

// replayAtLatencies is figure 12 (issue 17): figure 2's replay into a destination
// that acknowledges every write at once, each of replayLatencies away (ackServer),
// by three appliers one after the other: a migration's (rounds, appliers sized to
// the round trip), the rounds with replay.DefaultAppliers per shard whatever the
// round trip (before the sizing), and one bulk write per batch with as many
// (before the rounds: replay.Config.SerialBulks); with the write commands each
// sent. On a destination that costs nothing but round trips, what remains is how
// the appliers wait on them. The ratio is a migration's rate at each latency to
// its own at 0 ms (the target: 0.8 at 40 ms).
func (r *runner) replayAtLatencies(ctx context.Context) error {
	b, err := makeBacklog(r.o.Backlog, r.o.Shards)
	if err != nil {
		return err
	}
	appliers := []struct {
		name string
		a    applier
	}{
		{"rounds, appliers sized to the round trip", sizedRounds},
		{fmt.Sprintf("rounds, %d appliers", defaultAppliers), applier{appliers: defaultAppliers}},
		{fmt.Sprintf("one bulk per batch, %d appliers", defaultAppliers), applier{serial: true, appliers: defaultAppliers}},
	}
	var atZero [3]float64
	for _, latency := range replayLatencies {
		var rates, commands [3]float64
		var writes atomic.Int64
		err := withAckServer(ctx, latency, &writes, func(dst *mongo.Client) error {
			for i, a := range appliers {
				r.logf("12. the replay of %d entries, %v from a destination that only acknowledges: %s", b.entries, latency, a.name)
				before := writes.Load()
				took, err := replayStreams(ctx, dst, b, a.a)
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
		if latency == 0 {
			atZero = rates
		}
		perK := func(n float64) float64 { return n * 1000 / float64(b.entries) }
		cell := func(i int) string {
			return fmt.Sprintf("%s: %s, %.0f write commands per 1,000 entries (%.2f of its 0 ms)", appliers[i].name, rate(rates[i], "entries/s"), perK(commands[i]), Ratio(rates[i], atZero[i]))
		}
		ratio := Ratio(rates[0], atZero[0])
		row := Row{
			Figure:    fmt.Sprintf("12. oplog replay, %s entries, %v from a destination that only acknowledges", thousands(int64(b.entries)), latency),
			Shardlift: cell(0),
			Ceiling:   cell(1) + "; " + cell(2),
			Ratio:     ratio,
		}
		if latency == benchLatency {
			row.Target, row.Verdict = ">= 0.80 of 0 ms", AtLeast(ratio, 0.8)
		}
		r.t.Rows = append(r.t.Rows, row)
	}
	return nil
}

// withAckServer starts an ackServer latency away, connects to it counting the
// write commands sent (each a round trip) in writes, runs f and stops the server.
func withAckServer(ctx context.Context, latency time.Duration, writes *atomic.Int64, f func(dst *mongo.Client) error) error {
	srv, err := ackServer(latency)
	if err != nil {
		return fmt.Errorf("start a destination that only acknowledges: %w", err)
	}
	defer srv.Close()
	count := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "insert", "update", "delete":
			writes.Add(1)
		}
	}}
	client, err := connectMajorityMonitored(ctx, topology.Endpoint{URI: "mongodb://" + srv.Addr() + "/?directConnection=true", Timeout: time.Minute}, count)
	if err != nil {
		return fmt.Errorf("connect to the destination that only acknowledges: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	return f(client)
}

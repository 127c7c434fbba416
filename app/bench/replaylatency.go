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
// by the applier that writes in rounds and by the one before it (one bulk write
// per batch, ordered when a document repeats: replay.Config.SerialBulks), one after
// the other; with the write commands each sent. On a destination that costs nothing
// but round trips, what remains is how the appliers wait on them.
func (r *runner) replayAtLatencies(ctx context.Context) error {
	b, err := makeBacklog(r.o.Backlog, r.o.Shards)
	if err != nil {
		return err
	}
	var atZero float64
	for _, latency := range replayLatencies {
		var rates, commands [2]float64
		var writes atomic.Int64
		err := withAckServer(ctx, latency, &writes, func(dst *mongo.Client) error {
			for i, serial := range []bool{true, false} {
				r.logf("12. the replay of %d entries, %v from a destination that only acknowledges, serial applier: %v", b.entries, latency, serial)
				before := writes.Load()
				took, err := replayStreams(ctx, dst, b, serial, nil)
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
			Figure:    fmt.Sprintf("12. oplog replay, %s entries, %v from a destination that only acknowledges: rounds against one bulk per batch", thousands(int64(b.entries)), latency),
			Shardlift: fmt.Sprintf("%s, %.0f write commands per 1,000 entries (%.2f of rounds at 0 ms)", rate(rounds, "entries/s"), perK(commands[1]), Ratio(rounds, atZero)),
			Ceiling:   fmt.Sprintf("%s, %.0f write commands per 1,000 entries (one bulk per batch)", rate(serial, "entries/s"), perK(commands[0])),
			Ratio:     Ratio(rounds, serial),
		})
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

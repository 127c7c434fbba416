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
// by three appliers one after the other on the same server: the one before rounds
// (one bulk write per batch, ordered when a document repeats:
// replay.Config.SerialBulks), the one that writes in rounds one batch at a time
// (replay.Config.Pipeline 1, session 11's before) and the default, which keeps
// several full batches of each applier in flight when the destination is 1 ms or
// more away (one nearer: at 0 ms it is the one before); with the write commands each
// sent. On a destination that costs nothing but round trips, what remains is how
// the appliers wait on them. The client's connections are opened first (see
// below).
func (r *runner) replayAtLatencies(ctx context.Context) error {
	b, err := makeBacklog(r.o.Backlog, r.o.Shards)
	if err != nil {
		return err
	}
	appliers := []struct {
		name     string
		serial   bool
		pipeline int
	}{{"one bulk per batch", true, 0}, {"rounds, one batch in flight", false, 1}, {"rounds, pipelined", false, 0}}
	var atZero [3]float64
	for _, latency := range replayLatencies {
		var rates, commands [3]float64
		var writes atomic.Int64
		err := withAckServer(ctx, latency, &writes, func(dst *mongo.Client) error {
			// A migration's destination client lives for hours: its connections are
			// opened once. One replay, not timed, opens those the replays below use
			// (about 100 for the pipelined one), so that none of them pays for
			// opening connections (each a round trip or more away) as it goes.
			if _, err := replayStreamsPipelined(ctx, dst, b, false, nil, 0); err != nil {
				return err
			}
			for i, a := range appliers {
				r.logf("12. the replay of %d entries, %v from a destination that only acknowledges, %s", b.entries, latency, a.name)
				before := writes.Load()
				took, err := replayStreamsPipelined(ctx, dst, b, a.serial, nil, a.pipeline)
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
		r.t.Rows = append(r.t.Rows, Row{
			Figure: fmt.Sprintf("12. oplog replay, %s entries, %v from a destination that only acknowledges: rounds pipelined against one bulk per batch", thousands(int64(b.entries)), latency),
			Shardlift: fmt.Sprintf("%s, %.0f write commands per 1,000 entries (%.2f of pipelined at 0 ms); one batch in flight (before): %s, %.0f per 1,000 (%.2f of its 0 ms)",
				rate(rates[2], "entries/s"), perK(commands[2]), Ratio(rates[2], atZero[2]), rate(rates[1], "entries/s"), perK(commands[1]), Ratio(rates[1], atZero[1])),
			Ceiling: fmt.Sprintf("%s, %.0f write commands per 1,000 entries (one bulk per batch)", rate(rates[0], "entries/s"), perK(commands[0])),
			Ratio:   Ratio(rates[2], rates[0]),
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

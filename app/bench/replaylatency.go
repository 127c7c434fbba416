package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"

	"github.com/shardlift/shardlift/engine/topology"
)

// replayLatencies are figure 12's network delays between Shardlift and the
// destination.
var replayLatencies = []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}

// replayAtLatencies is figure 12 (issue 17): figure 2's replay into a destination
// that acknowledges every write at once, each of replayLatencies away (ackServer),
// by a migration's applier (rounds, appliers sized to the round trip) and by the
// same rounds with replay.DefaultAppliers per shard whatever the round trip (before
// the sizing), each twice, interleaved (A, B, A, B); with the write commands each
// sent and how many were in flight on average. On a destination that costs nothing
// but round trips, what remains is how the appliers wait on them. The ratio is a
// migration's rate at each latency to its own at 0 ms (the target: 0.8 at
// 40 ms). One bulk write per batch, the applier before the rounds, is no longer
// kept: 10 to 15 times slower from 20 ms on (docs/performance.md).
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
		{fmt.Sprintf("rounds, %d appliers (before)", defaultAppliers), applier{appliers: defaultAppliers}},
	}
	const repeats = 2
	var atZero [2]float64
	for _, latency := range replayLatencies {
		var took [2]time.Duration
		var commands, busy [2]int64
		var w writeCounts
		err := withAckServer(ctx, latency, &w, func(dst *mongo.Client) error {
			for range repeats {
				for i, a := range appliers {
					r.logf("12. the replay of %d entries, %v from a destination that only acknowledges: %s", b.entries, latency, a.name)
					c0, b0 := w.commands.Load(), w.busy.Load()
					t, err := replayStreams(ctx, dst, b, a.a)
					if err != nil {
						return err
					}
					took[i] += t
					commands[i] += w.commands.Load() - c0
					busy[i] += w.busy.Load() - b0
					r.logf("   %s in %v, %d write commands", rate(float64(b.entries)/t.Seconds(), "entries/s"), t.Round(time.Millisecond), w.commands.Load()-c0)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		var rates [2]float64
		for i := range rates {
			rates[i] = float64(repeats*b.entries) / took[i].Seconds()
		}
		if latency == 0 {
			atZero = rates
		}
		cell := func(i int) string {
			// Little's law: the write commands' total time over the elapsed time.
			return fmt.Sprintf("%s: %s, %.0f write commands per 1,000 entries, %.1f in flight on average (%.2f of its 0 ms)", appliers[i].name,
				rate(rates[i], "entries/s"), float64(commands[i])*1000/float64(repeats*b.entries), float64(busy[i])/float64(took[i]), Ratio(rates[i], atZero[i]))
		}
		ratio := Ratio(rates[0], atZero[0])
		row := Row{
			Figure:    fmt.Sprintf("12. oplog replay, %s entries twice, %v from a destination that only acknowledges", thousands(int64(b.entries)), latency),
			Shardlift: cell(0),
			Ceiling:   cell(1),
			Ratio:     ratio,
		}
		if latency == benchLatency {
			row.Target, row.Verdict = ">= 0.80 of 0 ms", AtLeast(ratio, 0.8)
		}
		r.t.Rows = append(r.t.Rows, row)
	}
	return nil
}

// writeCounts are the write commands sent (each a round trip) and the sum of
// their durations.
type writeCounts struct {
	commands, busy atomic.Int64
}

func isWrite(command string) bool {
	return command == "insert" || command == "update" || command == "delete"
}

// withAckServer starts an ackServer latency away, connects to it counting the
// write commands sent in writes, runs f and stops the server. The client opens
// its connections all at once: the driver's default, 2 at a time and each a round
// trip away, would make a replay of a few seconds measure the opening of its pool
// (2 s for 100 connections at 40 ms) rather than its appliers, where a migration's
// replay runs for hours on connections opened in its first seconds.
func withAckServer(ctx context.Context, latency time.Duration, writes *writeCounts, f func(dst *mongo.Client) error) error {
	srv, err := ackServer(latency)
	if err != nil {
		return fmt.Errorf("start a destination that only acknowledges: %w", err)
	}
	defer srv.Close()
	count := &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if isWrite(e.CommandName) {
				writes.commands.Add(1)
			}
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			if isWrite(e.CommandName) {
				writes.busy.Add(int64(e.Duration))
			}
		},
	}
	opts, err := topology.Endpoint{URI: "mongodb://" + srv.Addr() + "/?directConnection=true", Timeout: time.Minute}.ClientOptions()
	if err != nil {
		return err
	}
	opts.SetWriteConcern(writeconcern.Majority()).SetMonitor(count).SetMaxConnecting(100)
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to the destination that only acknowledges: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	return f(client)
}

package replay

import (
	"context"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"golang.org/x/sync/errgroup"
)

// RoundTripper is a destination that can time a round trip to itself, as
// MongoDestination does: the replay then chooses how many batches each applier
// keeps in flight from it (see Shard.pipelineDepth).
type RoundTripper interface {
	RoundTrip(ctx context.Context) (time.Duration, error)
}

const (
	// farPipeline is the batches in flight per applier for a destination a round
	// trip of farRoundTrip or more away, or one that cannot be timed: at 40 ms, 4
	// in flight replay at 0.84 of the rate without the delay, 1 at a fraction of
	// it (figure 12, docs/performance.md).
	farPipeline = 4
	// farRoundTrip is the round trip from which batches are pipelined. Nearer (the
	// same host or the same data centre) a batch travels in less time than an
	// applier takes to fill the next, the appliers of every shard already keep the
	// destination busy side by side, and more batches in flight only contend
	// there: on the sandbox, 4 in flight replayed at 0.84 to 0.89 of the direct
	// writes, 1 at 1.01 to 1.10 (figure 2's A/B, session 12).
	farRoundTrip = time.Millisecond
	// roundTrips is how many pings pipelineDepth times; it takes the fastest (the
	// first may open a connection).
	roundTrips = 3
)

// pipelineDepth is the run's window: Config.Pipeline when set, else farPipeline
// for a destination farRoundTrip or more away (or whose round trip cannot be
// timed) and 1 for a nearer one. Once a round trip was timed, later runs (after
// a fault) keep its choice: a destination that is down would only make them wait
// for the pings' timeout.
func (s *Shard) pipelineDepth(ctx context.Context) int {
	if s.cfg.Pipeline > 0 {
		s.depth.Store(int32(s.cfg.Pipeline))
		return s.cfg.Pipeline
	}
	if s.timedDepth.Load() {
		return int(s.depth.Load())
	}
	depth, why := farPipeline, "the destination's round trip is not known"
	if rt, ok := s.cfg.Destination.(RoundTripper); ok {
		d, err := rt.RoundTrip(ctx)
		switch {
		case err != nil:
			why = "the destination's round trip could not be timed: " + err.Error()
		case d < farRoundTrip:
			depth, why = 1, "the destination is "+d.Round(time.Microsecond).String()+" away"
		default:
			why = "the destination is " + d.Round(100*time.Microsecond).String() + " away"
		}
		s.timedDepth.Store(err == nil)
	}
	if old := s.depth.Swap(int32(depth)); old != int32(depth) {
		s.cfg.Logger.Info("replay batches in flight per applier", "batches", depth, "why", why)
	}
	return depth
}

// RoundTrip times the fastest of a few pings of the destination's router, sent
// at once (one round trip in all: the replay waits for it before it writes).
func (d *MongoDestination) RoundTrip(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	took := make([]time.Duration, roundTrips)
	var g errgroup.Group
	for i := range took {
		g.Go(func() error {
			start := time.Now()
			err := d.client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
			took[i] = time.Since(start)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return slices.Min(took), nil
}

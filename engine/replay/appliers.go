package replay

import (
	"context"
	"time"
)

// RoundTripTimer is implemented by destinations that can time one round trip to
// the server they write through: the replay sizes its appliers to it (see
// appliersFor).
type RoundTripTimer interface {
	RoundTrip(ctx context.Context) (time.Duration, error)
}

const (
	// DefaultAppliers is the number of appliers per shard next to the destination.
	DefaultAppliers = 4
	// MaxAppliers bounds the appliers of a shard however far the destination is.
	MaxAppliers = 32
	// applierRoundTrip is the round trip that adds an applier: a bulk write costs a
	// real cluster about 10 ms of its own time (the router, the primary's writes,
	// a majority of members acknowledging on the cluster's network), during which
	// DefaultAppliers keep as many bulks in flight. A round trip r makes each bulk
	// take 10 ms + r, so as many bulks per second need DefaultAppliers × (10 ms + r)
	// / 10 ms appliers in flight (Little's law): one more per 2.5 ms.
	applierRoundTrip = 10 * time.Millisecond / DefaultAppliers
	// roundTripSamples are timed at the start of a run; the fastest counts (the
	// first may open a connection).
	roundTripSamples = 3
)

// appliersFor is the number of appliers that keeps a shard's writes flowing at a
// round trip rtt from the destination: each applier waits for one bulk write at a
// time (a document's writes stay in order within it), so only more appliers,
// each owning fewer documents, put more writes in flight.
func appliersFor(rtt time.Duration) int {
	return min(DefaultAppliers+int(rtt/applierRoundTrip), MaxAppliers)
}

// sizing is the appliers of a run and the round trip they were sized to (zero
// when they were not: Config.Appliers, or a destination that could not be timed).
type sizing struct {
	appliers  int
	roundTrip time.Duration
}

// appliers sizes the next run: Config.Appliers when set, or else to the
// destination's round trip as measured now.
func (s *Shard) appliers(ctx context.Context) sizing {
	if s.cfg.Appliers > 0 {
		return sizing{appliers: s.cfg.Appliers}
	}
	timer, ok := s.cfg.Destination.(RoundTripTimer)
	if !ok {
		return sizing{appliers: DefaultAppliers}
	}
	var best time.Duration
	for i := range roundTripSamples {
		rtt, err := timer.RoundTrip(ctx)
		if err != nil {
			s.cfg.Logger.Warn("could not time a round trip to the destination: the replay runs with the default number of appliers", "appliers", DefaultAppliers, "err", err)
			return sizing{appliers: DefaultAppliers}
		}
		if i == 0 || rtt < best {
			best = rtt
		}
	}
	n := appliersFor(best)
	s.cfg.Logger.Info("appliers sized to the destination's round trip", "round_trip", best, "appliers", n)
	return sizing{appliers: n, roundTrip: best}
}

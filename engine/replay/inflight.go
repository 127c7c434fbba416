package replay

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/shardlift/shardlift/engine/oplog"
)

// Answers that take longer than slowRoundTrips round trips plus slowWork, on
// average over the last few (an average weighing each new answer 1/smoothing), cut
// the writes in flight: a real cluster's bulk write costs it tens of milliseconds of
// its own (the router, the primary, a majority acknowledging), so answers that take
// far longer waited in the destination's queues, behind the other writes in flight.
// One slow answer alone (a pause of the client's own process) does not.
const (
	slowRoundTrips = 8
	slowWork       = 250 * time.Millisecond
	smoothing      = 8
)

// gateClock times the answers of a run's writes (see writeGate).
var gateClock = time.Now

// writeGate bounds a run's bulk writes in flight, shared by its appliers.
//
// When the appliers were sized to the round trip, the bound adapts to the answers'
// latency (AIMD): it starts where DefaultAppliers would be and doubles per window
// of answers that come back in time, up to the ceiling (the appliers, each with up
// to writesPerApplier writes), until the answers come back slow (see
// slowRoundTrips); from then on it halves, down to where it started, when the
// answers are slow, and rises by one per window otherwise. Slow answers say that
// more writes in flight no longer go faster, they wait in the destination's queues:
// a destination that cannot take more is not buried. Appliers set by the user are
// the bound as they are.
type writeGate struct {
	now            func() time.Time
	floor, ceiling float64
	slow           time.Duration // answers slower than this cut the bound; zero: never

	mu        sync.Mutex
	limit     float64
	probing   bool          // no answer was slow yet: the bound doubles per window
	latency   time.Duration // the answers' latency, smoothed
	inFlight  int
	started   uint64        // writes started so far
	cutBefore uint64        // a write started before this one cut the bound already
	waiters   []chan flight // the writes waiting for room, in the order they asked
}

// writesPerApplier is the most bulk writes an applier has in flight: a round's
// deletes and its other writes go at once (see writeRound).
const writesPerApplier = 2

func newWriteGate(size sizing, now func() time.Time) *writeGate {
	most := float64(writesPerApplier * size.appliers)
	g := &writeGate{now: now, ceiling: most, floor: most}
	if size.roundTrip > 0 {
		g.floor = float64(writesPerApplier * min(size.appliers, DefaultAppliers))
		g.slow = slowRoundTrips*size.roundTrip + slowWork
	}
	g.limit, g.probing = g.floor, true
	return g
}

// flight is one write in flight.
type flight struct {
	seq   uint64
	start time.Time
}

// acquire waits for room for one more write in flight, after the writes that asked
// before it: room goes to the write that waited longest, never to an applier that
// was just answered and asks again at once (overtaken again and again, a waiting
// write would hold the shard's resume point while the others go on).
func (g *writeGate) acquire(ctx context.Context) (flight, error) {
	g.mu.Lock()
	if len(g.waiters) == 0 && float64(g.inFlight) < g.limit {
		f := g.startLocked()
		g.mu.Unlock()
		return f, nil
	}
	w := make(chan flight, 1)
	g.waiters = append(g.waiters, w)
	g.mu.Unlock()
	select {
	case f := <-w:
		return f, nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		if i := slices.Index(g.waiters, w); i >= 0 {
			g.waiters = slices.Delete(g.waiters, i, i+1)
		} else { // let in meanwhile: the room goes to the next
			g.inFlight--
			g.admitLocked()
		}
		return flight{}, ctx.Err()
	}
}

// startLocked counts one more write in flight.
func (g *writeGate) startLocked() flight {
	g.inFlight++
	g.started++
	return flight{seq: g.started, start: g.now()}
}

// admitLocked lets the waiting writes in, oldest first, while there is room.
func (g *writeGate) admitLocked() {
	for len(g.waiters) > 0 && float64(g.inFlight) < g.limit {
		w := g.waiters[0]
		g.waiters = g.waiters[1:]
		w <- g.startLocked()
	}
}

// release ends a write; answered is false when it got no answer (its context
// ended), whose latency says nothing.
func (g *writeGate) release(s flight, answered bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	defer g.admitLocked()
	if !answered {
		return
	}
	if took := g.now().Sub(s.start); g.latency == 0 {
		g.latency = took
	} else {
		g.latency += (took - g.latency) / smoothing
	}
	switch {
	case g.slow > 0 && g.latency > g.slow:
		if s.seq > g.cutBefore { // once per window: the writes sent before the cut all wait alike
			g.limit = max(g.floor, g.limit/2)
			g.cutBefore = g.started
			g.probing = false
		}
	case g.probing:
		g.limit = min(g.ceiling, g.limit+1)
	default:
		g.limit = min(g.ceiling, g.limit+1/g.limit)
	}
}

// bound is the number of writes allowed in flight now.
func (g *writeGate) bound() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return int(g.limit)
}

// gatedDestination writes through a writeGate.
type gatedDestination struct {
	Destination
	gate *writeGate
}

func (d gatedDestination) Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	s, err := d.gate.acquire(ctx)
	if err != nil {
		return 0, err
	}
	n, err := d.Destination.Write(ctx, ns, writes)
	d.gate.release(s, err == nil || ctx.Err() == nil)
	return n, err
}

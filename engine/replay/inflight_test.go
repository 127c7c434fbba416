package replay

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// drive sends rounds of as many writes as the gate allows at once to a destination
// that answers each after latency(writes in flight), and returns the bound at the
// end and the most writes in flight over the last rounds.
func drive(t *testing.T, g *writeGate, clock *fakeClock, latency func(inFlight int) time.Duration) (bound, lastMost int) {
	t.Helper()
	for round := range 50 {
		n := g.bound()
		flights := make([]flight, n)
		for i := range flights {
			f, err := g.acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			flights[i] = f
		}
		clock.advance(latency(n))
		for _, f := range flights {
			g.release(f, true)
		}
		if round >= 40 {
			lastMost = max(lastMost, n)
		}
	}
	return g.bound(), lastMost
}

// The writes in flight of appliers sized to the round trip come down when the
// destination's latency climbs with them (it queues them: one write lock), and stay
// at the ceiling while it answers in about a round trip; appliers set by the user
// are the bound as they are.
func TestWritesInFlightComeDownWhenTheDestinationQueuesThem(t *testing.T) {
	const rtt = 40 * time.Millisecond
	size := sizing{appliers: appliersFor(rtt), roundTrip: rtt}
	queues := func(inFlight int) time.Duration { return rtt + time.Duration(inFlight)*15*time.Millisecond }
	keepsUp := func(inFlight int) time.Duration { return rtt + 10*time.Millisecond }

	clock := &fakeClock{now: time.Unix(0, 0)}
	bound, most := drive(t, newWriteGate(size, clock.Now), clock, queues)
	ceiling, floor := writesPerApplier*size.appliers, writesPerApplier*DefaultAppliers
	if most >= ceiling || bound < floor {
		t.Errorf("against a destination whose latency climbs with the writes in flight: %d in flight at most over the last rounds, bound %d; want fewer than the %d the appliers can send, at least %d",
			most, bound, ceiling, floor)
	}
	if slowest := queues(most); slowest > 2*(slowRoundTrips*rtt+slowWork) {
		t.Errorf("writes still take %v with %d in flight", slowest, most)
	}

	clock = &fakeClock{now: time.Unix(0, 0)}
	if bound, most := drive(t, newWriteGate(size, clock.Now), clock, keepsUp); bound != ceiling || most != ceiling {
		t.Errorf("against a destination that keeps up: bound %d, %d in flight; want the %d the appliers can send", bound, most, ceiling)
	}

	clock = &fakeClock{now: time.Unix(0, 0)}
	if bound, _ := drive(t, newWriteGate(sizing{appliers: 16}, clock.Now), clock, queues); bound != writesPerApplier*16 {
		t.Errorf("appliers set to 16: bound %d, want %d", bound, writesPerApplier*16)
	}
}

// The gate lets writes in in the order they asked for room: a write that finds the
// gate full is not overtaken by the writes of appliers that keep getting answers
// and ask again at once. Overtaken, it waits while they go on, holding the shard's
// resume point (more appliers than writes in flight, as when the appliers are sized
// to a round trip and the bound came down: see fault scenario 6 in correctness.md).
func TestTheGateLetsWritesInInTheOrderTheyAsked(t *testing.T) {
	g := newWriteGate(sizing{appliers: 1}, time.Now) // 2 writes in flight
	first, _ := g.acquire(context.Background())
	second, _ := g.acquire(context.Background())
	waiting := make(chan struct{})
	go func() {
		f, err := g.acquire(context.Background()) // finds the gate full
		if err == nil {
			close(waiting)
			g.release(f, true)
		}
	}()
	eventually(t, "a write waiting for room", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.waiters) == 1
	})
	g.release(first, true)
	asksAgain, cancel := context.WithCancel(context.Background())
	cancel()                                        // asks only once: room now, or never
	if f, err := g.acquire(asksAgain); err == nil { // the applier answered first asks again at once
		t.Error("a write that asked for room after the waiting one was let in first")
		g.release(f, true)
	}
	eventually(t, "the write that waited let in", func() bool {
		select {
		case <-waiting:
			return true
		default:
			return false
		}
	})
	g.release(second, true)
}

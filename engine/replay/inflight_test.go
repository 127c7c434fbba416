package replay

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// heldWrite blocks dest's bulk writes of the document with _id held until release
// is closed or their context ends, and counts how often that document was sent.
type heldWrite struct {
	release chan struct{}
	started chan context.Context // the context of each send of the held document
	mu      sync.Mutex
	sends   int
}

func holdWrites(dest *fakeDest, held int) *heldWrite {
	h := &heldWrite{release: make(chan struct{}), started: make(chan context.Context, 8)}
	dest.gate = func(ctx context.Context, _ oplog.Namespace, writes []oplog.Write) error {
		if writes[0].Filter.Lookup("_id").Int32() != int32(held) {
			return nil
		}
		h.mu.Lock()
		h.sends++
		h.mu.Unlock()
		h.started <- ctx
		select {
		case <-h.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h
}

func insertOf(id int) []oplog.Write {
	raw, _ := bson.Marshal(doc(id, 0))
	key, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(id)}})
	return []oplog.Write{{Kind: oplog.InsertReplace, NS: oplog.ParseNamespace(ns), Filter: key, Replacement: raw}}
}

// A bulk write the destination is still running (it waits in its queue) while it
// answers the run's other writes has no deadline of its own and is not abandoned,
// so it is never sent again on top of itself; only a destination that answers none
// of the run's writes between two ticks has its writes abandoned, as a transient
// failure the replay sends again.
func TestAWriteIsAbandonedOnlyWhenTheDestinationAnswersNone(t *testing.T) {
	inner := newFakeDest()
	held := holdWrites(inner, 0)
	r := &run{cfg: &Config{Destination: inner}, gate: newWriteGate(sizing{appliers: 4}, time.Now)}
	done := make(chan error, 1)
	go func() {
		_, err := r.writeInFlight(context.Background(), oplog.ParseNamespace(ns), insertOf(0))
		done <- err
	}()
	ctx := <-held.started
	if deadline, ok := ctx.Deadline(); ok {
		t.Fatalf("the write carries a deadline of its own (%v): abandoned there while the destination still runs it, it would be sent again on top of itself", deadline)
	}
	r.gate.mu.Lock()
	abandoned := r.gate.stalled // done when the held write is abandoned
	r.gate.mu.Unlock()
	for i := 1; i <= 3; i++ {
		if _, err := r.writeInFlight(context.Background(), oplog.ParseNamespace(ns), insertOf(i)); err != nil {
			t.Fatal(err)
		}
		r.gate.tick()
		if abandoned.Err() != nil {
			t.Fatalf("tick %d abandoned the held write while the destination answered another one since the tick before", i)
		}
	}
	r.gate.tick() // nothing answered since the last tick: the destination stalled
	err := <-done
	if !errors.Is(err, errDestinationStalled) || !isTransient(err) {
		t.Fatalf("the stalled write ended with %v, want a transient errDestinationStalled", err)
	}
	held.mu.Lock()
	sends := held.sends
	held.mu.Unlock()
	if sends != 1 {
		t.Errorf("the held document was sent %d times, want 1", sends)
	}
}

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

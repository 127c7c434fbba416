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

// timedDest is a fakeDest whose round trip, as RoundTrip reports it, is rtt (or
// err): nothing waits, the replay only reads it.
type timedDest struct {
	*fakeDest
	rtt time.Duration
	err error
}

func (d *timedDest) RoundTrip(context.Context) (time.Duration, error) { return d.rtt, d.err }

// inFlight gates every bulk write of dest until one is let through by next or all
// by closing release, counting the bulk writes waiting at once: the round trips a
// shard has in flight.
type inFlight struct {
	mu      sync.Mutex
	now     int
	most    int
	next    chan struct{}
	release chan struct{}
}

func gateInFlight(dest *fakeDest) *inFlight {
	f := &inFlight{next: make(chan struct{}), release: make(chan struct{})}
	dest.gate = func(ctx context.Context, _ oplog.Namespace, _ []oplog.Write) error {
		f.mu.Lock()
		f.now++
		f.most = max(f.most, f.now)
		f.mu.Unlock()
		defer func() { f.mu.Lock(); f.now--; f.mu.Unlock() }()
		select {
		case <-f.next:
			return nil
		case <-f.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f
}

func (f *inFlight) counts() (now, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now, f.most
}

// insertsOf is a finite oplog of n inserts of distinct documents after a noop at 1.
func insertsOf(n int) *fakeOplog {
	entries := []bson.Raw{noopOp(at(1))}
	for i := range n {
		entries = append(entries, insertOp(at(uint32(i+2)), ns, doc(i, i)))
	}
	src := newFakeOplog(entries...)
	src.finite = true
	src.batch = 50
	return src
}

// A destination 40 ms away gets as many bulk writes in flight at once as the
// appliers sized to that round trip, each one's documents its own, where 4
// appliers (one bulk write each) left the shard waiting on 4 round trips: the
// writes in flight start at 4 and grow while the answers come back in time (the
// clock stands still here, so every answer is in time).
func TestAFarDestinationGetsAsManyWritesInFlightAsItsRoundTripNeeds(t *testing.T) {
	stopped := time.Unix(0, 0)
	gateClock = func() time.Time { return stopped }
	t.Cleanup(func() { gateClock = time.Now })
	inner := newFakeDest()
	gate := gateInFlight(inner)
	dest := &timedDest{fakeDest: inner, rtt: 40 * time.Millisecond}
	want := appliersFor(dest.rtt)
	if want <= DefaultAppliers {
		t.Fatalf("appliersFor(%v) = %d: no more than next to the destination", dest.rtt, want)
	}
	const docs = 2000
	s := testShard(t, Config{Source: insertsOf(docs), Destination: dest, Resume: at(1), BatchWrites: 10, // each applier has many bulk writes to send
		DDL: startDDL(t, []string{"s0"}, &fakeExec{dest: inner})})
	wait := start(t, context.Background(), s)
	eventually(t, "as many bulk writes in flight as appliers sized to 40 ms", func() bool {
		if now, _ := gate.counts(); now == want {
			return true
		}
		select {
		case gate.next <- struct{}{}: // an answer in time: room for more
		default:
		}
		return false
	})
	close(gate.release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if _, most := gate.counts(); most != want {
		t.Errorf("%d bulk writes in flight at most, want %d (one per applier)", most, want)
	}
	if got := len(inner.docs(ns)); got != docs {
		t.Errorf("the destination holds %d documents, want %d", got, docs)
	}
}

func TestAppliersFollowTheRoundTripWithinBounds(t *testing.T) {
	for _, c := range []struct {
		rtt  time.Duration
		want int
	}{
		{0, DefaultAppliers},
		{500 * time.Microsecond, DefaultAppliers}, // the same machine or network
		{20 * time.Millisecond, 12},
		{40 * time.Millisecond, 20},
		{80 * time.Millisecond, MaxAppliers},
		{time.Second, MaxAppliers},
	} {
		if got := appliersFor(c.rtt); got != c.want {
			t.Errorf("appliersFor(%v) = %d, want %d", c.rtt, got, c.want)
		}
	}
	far := &timedDest{fakeDest: newFakeDest(), rtt: time.Second}
	for _, c := range []struct {
		what string
		cfg  Config
		want int
	}{
		{"a destination that cannot time a round trip", Config{Destination: newFakeDest()}, DefaultAppliers},
		{"a round trip that failed", Config{Destination: &timedDest{fakeDest: newFakeDest(), err: errors.New("no route to host")}}, DefaultAppliers},
		{"a far destination", Config{Destination: far}, MaxAppliers},
		{"appliers set, a far destination", Config{Destination: far, Appliers: 2}, 2},
	} {
		c.cfg.Source = newFakeOplog()
		s := testShard(t, c.cfg)
		if got := s.appliers(context.Background()).appliers; got != c.want {
			t.Errorf("%s: %d appliers, want %d", c.what, got, c.want)
		}
	}
}

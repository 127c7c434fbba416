package replay

import (
	"math/rand"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

func ts(t uint32, i uint32) primitive.Timestamp { return primitive.Timestamp{T: t, I: i} }

func TestCheckpointNeverPassesAnUnappliedEntry(t *testing.T) {
	w := NewWatermark(ts(100, 0))
	a, _ := w.Dispatch(ts(100, 1)) // to a slow applier
	b, _ := w.Dispatch(ts(100, 2))
	c, _ := w.Dispatch(ts(100, 3))

	w.Applied(b)
	w.Applied(c)
	if got := w.Floor(); got != ts(100, 0) {
		t.Fatalf("floor %v passed the unapplied entry at 100,1", got)
	}
	w.Applied(a)
	if got := w.Floor(); got != ts(100, 3) {
		t.Fatalf("floor %v, want 100,3 once everything is applied", got)
	}
}

func TestIdleApplierHoldsTheFloor(t *testing.T) {
	// A worker that was handed an entry and has applied nothing keeps the resume point
	// at the entry before it, however far other workers get.
	w := NewWatermark(ts(1, 0))
	held, _ := w.Dispatch(ts(2, 0))
	for i := uint32(3); i < 1000; i++ {
		tk, _ := w.Dispatch(ts(i, 0))
		w.Applied(tk)
	}
	if got := w.Floor(); got != ts(1, 0) {
		t.Fatalf("floor %v, want 1,0 while the entry at 2,0 is unapplied", got)
	}
	w.Applied(held)
	if got := w.Floor(); got != ts(999, 0) {
		t.Fatalf("floor %v, want 999,0", got)
	}
}

func TestCheckpointNeverSplitsATransaction(t *testing.T) {
	// The operations of a committed transaction share the commit's ts: resuming at that
	// ts must not skip the ones not yet applied.
	w := NewWatermark(ts(10, 0))
	first, _ := w.Dispatch(ts(11, 0))
	second, _ := w.Dispatch(ts(11, 0))
	w.Applied(first)
	if got := w.Floor(); got != ts(10, 0) {
		t.Fatalf("floor %v moved to the transaction's ts with one operation pending", got)
	}
	w.Applied(second)
	if got := w.Floor(); got != ts(11, 0) {
		t.Fatalf("floor %v, want 11,0", got)
	}
}

func TestSkippedEntriesAdvanceThePosition(t *testing.T) {
	w := NewWatermark(ts(1, 0))
	if err := w.Skip(ts(5, 0)); err != nil {
		t.Fatal(err)
	}
	if got := w.Floor(); got != ts(5, 0) {
		t.Fatalf("no-op did not advance the floor: %v", got)
	}
	pending, _ := w.Dispatch(ts(6, 0))
	w.Skip(ts(7, 0))
	if got := w.Floor(); got != ts(5, 0) {
		t.Fatalf("a no-op after a pending entry moved the floor to %v", got)
	}
	w.Applied(pending)
	if got := w.Floor(); got != ts(7, 0) {
		t.Fatalf("floor %v, want 7,0", got)
	}
}

func TestOutOfOrderDispatchIsRefused(t *testing.T) {
	w := NewWatermark(ts(10, 0))
	if _, err := w.Dispatch(ts(9, 0)); err == nil {
		t.Fatal("an entry older than the floor was accepted")
	}
	w.Dispatch(ts(12, 0))
	if _, err := w.Dispatch(ts(11, 0)); err == nil {
		t.Fatal("an entry older than the last dispatched one was accepted")
	}
}

func TestFloorUnderConcurrentAppliers(t *testing.T) {
	const n = 20000
	w := NewWatermark(ts(0, 0))
	var mu sync.Mutex
	applied := make([]bool, n)
	tickets := make(chan struct {
		tk  Ticket
		idx int
	}, 64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range tickets {
				if rand.Intn(8) == 0 {
					time.Sleep(time.Microsecond)
				}
				mu.Lock()
				applied[x.idx] = true
				mu.Unlock()
				w.Applied(x.tk)
			}
		}()
	}
	check := func() {
		floor := w.Floor()
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < n && uint32(i+1) <= floor.T; i++ {
			if !applied[i] {
				t.Errorf("floor %v passes unapplied entry %d", floor, i+1)
				return
			}
		}
	}
	for i := 0; i < n; i++ {
		tk, err := w.Dispatch(ts(uint32(i+1), 0))
		if err != nil {
			t.Fatal(err)
		}
		tickets <- struct {
			tk  Ticket
			idx int
		}{tk, i}
		if i%500 == 0 {
			check()
		}
	}
	close(tickets)
	wg.Wait()
	check()
	if got := w.Floor(); got != ts(n, 0) {
		t.Fatalf("final floor %v, want %d", got, n)
	}
}

// Memory stays bounded: no-ops and filtered entries behind a write still in flight
// (hours of idle no-ops behind a destination that does not answer) take one slot in
// all, and the floor still moves past them once the write is applied.
func TestSkipsBehindAWriteInFlightTakeOneSlot(t *testing.T) {
	w := NewWatermark(ts(1, 0))
	held, _ := w.Dispatch(ts(2, 0))
	for i := uint32(3); i < 100_000; i++ {
		if err := w.Skip(ts(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.InFlight(); n > 2 {
		t.Fatalf("%d slots held for one write and a run of skips", n)
	}
	if got := w.Floor(); got != ts(1, 0) {
		t.Fatalf("floor %v passed the write in flight at 2,0", got)
	}
	if err := w.Skip(ts(5, 0)); err == nil {
		t.Fatal("a skip older than the last one was accepted")
	}
	next, _ := w.Dispatch(ts(100_000, 1))
	w.Applied(held)
	if got := w.Floor(); got != ts(99_999, 0) {
		t.Fatalf("floor %v, want the last skip 99999,0 once the write is applied", got)
	}
	w.Applied(next)
	if got := w.Floor(); got != ts(100_000, 1) {
		t.Fatalf("floor %v, want 100000,1", got)
	}
}

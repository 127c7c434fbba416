package engine

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A throttled scan hands on at most perSecond documents a second: it waits, every
// 100 documents, for the time those documents are due.
func TestThrottledScanKeepsToItsRate(t *testing.T) {
	side := newContSide()
	for id := range 250 {
		side.put("shop.a", id, "v")
	}
	now := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	var slept []time.Duration
	s := &throttledSide{Side: side, perSecond: 100, now: func() time.Time { return now },
		sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil }}
	cur, err := s.Scan(context.Background(), "shop", "a", false, false)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for cur.Next(context.Background()) {
		n++
		now = now.Add(time.Millisecond) // reading costs a millisecond a document
	}
	if err := cur.Err(); err != nil || n != 250 {
		t.Fatalf("read %d documents, %v", n, err)
	}
	// After 100 documents in 100 ms it waits 900 ms (100 are due at 1 s), after 200, the same.
	if want := []time.Duration{900 * time.Millisecond, 900 * time.Millisecond}; !slices.Equal(slept, want) {
		t.Fatalf("slept %v, want %v", slept, want)
	}
}

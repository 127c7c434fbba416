package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/verify"
)

// fakeTime is a clock the governor's pauses advance.
type fakeTime struct {
	now   time.Time
	slept time.Duration
	// onSleep, when set, runs after each pause.
	onSleep func(d time.Duration)
}

func newFakeTime() *fakeTime { return &fakeTime{now: time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)} }

func (f *fakeTime) Now() time.Time { return f.now }

func (f *fakeTime) sleep(_ context.Context, d time.Duration) error {
	f.now = f.now.Add(d)
	f.slept += d
	if f.onSleep != nil {
		f.onSleep(d)
	}
	return nil
}

// costlyCursor is a cursor each of whose documents takes cost of the clock to
// read; before calls at each read begun.
type costlyCursor struct {
	verify.Cursor
	clock  *fakeTime
	cost   time.Duration
	before func()
}

func (c *costlyCursor) Next(ctx context.Context) bool {
	if c.before != nil {
		c.before()
	}
	if !c.Cursor.Next(ctx) {
		return false
	}
	c.clock.now = c.clock.now.Add(c.cost)
	return true
}

func scanAll(t *testing.T, s verify.Side) (int, error) {
	t.Helper()
	cur, err := s.Scan(context.Background(), "shop", "a", false, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for cur.Next(context.Background()) {
		n++
	}
	return n, cur.Err()
}

// A governed scan reads at most its duty of the time, measured: documents that
// take 1 ms each to read are followed by pauses of 4 ms each (duty 0.2), paid
// once they add up to minPause; twice the cost, twice the pauses.
func TestGovernedScanReadsAtMostItsDutyOfTheTime(t *testing.T) {
	for _, cost := range []time.Duration{time.Millisecond, 2 * time.Millisecond} {
		side := newContSide()
		for id := range 250 {
			side.put("shop.a", id, "v")
		}
		clock := newFakeTime()
		g := &readGovernor{duty: 0.2, yieldLag: time.Second, now: clock.Now, sleep: clock.sleep,
			lag: func() (time.Duration, bool) { return 0, true }}
		costly := &costlySide{Side: side, clock: clock, cost: cost}
		start := clock.now
		n, err := scanAll(t, g.govern(costly))
		if err != nil || n != 250 {
			t.Fatalf("read %d documents, %v", n, err)
		}
		read := clock.now.Sub(start) - clock.slept
		// What is still owed at the end is under minPause.
		if owed := 4*read - clock.slept; read != 250*cost || owed < 0 || owed >= minPause {
			t.Fatalf("cost %v: read for %v, paused %v: want pauses of 4 times the reads", cost, read, clock.slept)
		}
	}
}

// costlySide's scans are costlyCursors.
type costlySide struct {
	verify.Side
	clock  *fakeTime
	cost   time.Duration
	before func()
}

func (s *costlySide) Scan(ctx context.Context, db, coll string, idOnly, simple bool) (verify.Cursor, error) {
	c, err := s.Side.Scan(ctx, db, coll, idOnly, simple)
	if err != nil {
		return nil, err
	}
	return &costlyCursor{Cursor: c, clock: s.clock, cost: s.cost, before: s.before}, nil
}

// The replay has priority: a scan opened while a replay lags waits before its
// first read, and one whose replay starts lagging part way stops reading within
// yieldPoll of its clock, until the lag is gone; the lag here ends only after the
// scan waited 10 polls for it. A shard no longer in sync stops the scan with
// errReplayFirst.
func TestGovernedScanYieldsToALaggingReplay(t *testing.T) {
	side := newContSide()
	for id := range 1000 {
		side.put("shop.a", id, "v")
	}
	clock := newFakeTime()
	var lagging bool
	var since time.Time // when the lag began
	waited := 0         // yield polls waited during this lag
	lag := func() (time.Duration, bool) {
		if lagging {
			return 2 * time.Second, true
		}
		return 0, true
	}
	startLag := func() { lagging, since, waited = true, clock.now, 0 }
	var g *readGovernor
	notWaiting := 0 // yield polls the progress did not show
	clock.onSleep = func(d time.Duration) {
		if lagging && d == yieldPoll && !g.waiting() {
			notWaiting++
		}
		if lagging && d == yieldPoll {
			if waited++; waited == 10 {
				lagging = false
			}
		}
	}
	reads, late := 0, 0
	costly := &costlySide{Side: side, clock: clock, cost: time.Millisecond, before: func() {
		reads++
		if lagging && clock.now.Sub(since) > yieldPoll {
			late++ // a read begun more than a poll after the lag began
		}
		if reads == 500 {
			startLag()
		}
	}}
	g = &readGovernor{duty: 0.5, yieldLag: time.Second, now: clock.Now, sleep: clock.sleep, lag: lag}
	startLag()
	n, err := scanAll(t, g.govern(costly))
	if err != nil || n != 1000 {
		t.Fatalf("read %d documents, %v", n, err)
	}
	if late != 0 {
		t.Fatalf("%d reads began more than %v into a replay's lag", late, yieldPoll)
	}
	// The progress says the verification waits while it does, and only then.
	if notWaiting != 0 || g.waiting() {
		t.Fatalf("%d waits for the replay not shown; shown after: %v", notWaiting, g.waiting())
	}

	notSynced := &readGovernor{duty: 0.5, yieldLag: time.Second, now: clock.Now, sleep: clock.sleep,
		lag: func() (time.Duration, bool) { return 0, false }}
	if _, err := scanAll(t, notSynced.govern(costly)); !errors.Is(err, errReplayFirst) {
		t.Fatalf("a scan with a shard out of sync: %v, want errReplayFirst", err)
	}
}

// The migration's governor reads the largest lag of the shards' replays, and
// none while the migration is not syncing.
func TestContinuousVerificationReadsTheReplaysLag(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	if _, ok := h.m.replayLag(); ok {
		t.Fatal("a lag before the sync")
	}
	rs := h.ready()
	for name, r := range rs {
		if err := r.sink.SaveApplied(name, replay.OpTime{TS: r.Snapshot().Applied}); err != nil {
			t.Fatal(err)
		}
	}
	rs["s1"].behind(2 * time.Second)
	if lag, ok := h.m.replayLag(); !ok || lag != 2*time.Second {
		t.Fatalf("lag %v (%v), want s1's 2s", lag, ok)
	}
}

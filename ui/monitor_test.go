package ui

import (
	"errors"
	"slices"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

// The totals of a copy still running are estimates and say so ("about", "~"), in
// binary units; the lag of a shard still copying, and so the overall lag, is not
// known and never shows as 0:00.
func TestProgressShowsHumanizedTotals(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(syncing()))
	for _, s := range []string{
		"384 GiB of about 596 GiB  ·  1.4 M of about 2 M documents",
		"Time remaining  1 h 12 min",
		"2.1 M docs/s copied  ·  340 oplog entries/s applied  ·  lag — until every shard replays",
		"130 GiB / ~214 GiB\n600,000 / ~1 M docs",
		"12,400 docs/s",
		"catching up",
		"0:41", // rs1's lag
		"28 min",
		"Cancel migration",
	} {
		h.mustShow(s)
	}
	h.mustNotShow("lag 0:00")
	rows := h.a.cur.(*monitorScreen).shards.rows
	if rows["rs0"].lag.Text != "—" || rows["rs2"].lag.Text != "—" || rows["rs1"].lag.Text != "0:41" {
		t.Fatalf("lag cells %q %q %q, want — for the shards copying and 0:41", rows["rs0"].lag.Text, rows["rs1"].lag.Text, rows["rs2"].lag.Text)
	}
	if got := h.a.cur.(*monitorScreen).bar.Value; got < 0.64 || got > 0.65 {
		t.Fatalf("overall bar at %v, want 412/640", got)
	}
	if h.a.side.labels[stepSync].Importance != widget.HighImportance {
		t.Fatal("the step list does not mark Sync as the current step")
	}
}

func TestProgressPerShardCanBeHiddenAndShown(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(syncing()))
	h.tap("Hide progress per shard")
	h.mustNotShow("130 GiB / ~214 GiB")
	h.tap("View progress per shard")
	h.mustShow("130 GiB / ~214 GiB")
}

func failedShard() engine.Snapshot {
	s := syncing()
	s.Shards[2].Phase = engine.ShardFailed
	s.Shards[2].Error = "the oplog of shard rs2 no longer reaches back to 10:02:11: restart this shard"
	return s
}

func TestRestartIsOfferedForAFailedShardOnly(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	h.attach(m)
	for _, b := range h.buttons() {
		if b == "Restart rs0" || b == "Restart rs1" || b == "Restart rs2" {
			t.Fatalf("%s is offered for a shard that did not fail", b)
		}
	}
	m.snap = failedShard()
	h.tick()
	h.mustShow("the oplog of shard rs2 no longer reaches back to 10:02:11: restart this shard")
	restart := h.button("Restart rs2")
	if restart.Importance != widget.DangerImportance {
		t.Fatal("Restart of a failed shard is not prominent")
	}
	if h.findButton("Restart rs0") != nil || h.findButton("Hide progress per shard") != nil {
		t.Fatal("only the failed shard offers Restart, and its row cannot be hidden")
	}
}

func TestRestartAsksFirst(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(failedShard())
	h.attach(m)
	h.tap("Restart rs2")
	h.mustShow("Shard rs2 starts its sync again from the beginning")
	h.tap("Don't restart")
	if len(m.calls) != 0 {
		t.Fatalf("Don't restart called %v", m.calls)
	}
	h.tap("Restart rs2")
	h.tap("Restart rs2") // the dialog's button
	if !slices.Equal(m.calls, []string{"RestartShard rs2"}) {
		t.Fatalf("calls %v, want RestartShard rs2", m.calls)
	}
}

func TestCancelAsksAndSaysTheDataStays(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	h.attach(m)
	h.tap("Cancel migration")
	h.mustShow("The data copied so far stays on the destination. The source balancer is put back as it was before the migration")
	h.tap("Keep migrating")
	if len(m.calls) != 0 {
		t.Fatalf("Keep migrating called %v", m.calls)
	}
	h.tap("Cancel migration")
	h.tap("Cancel migration") // the dialog's button
	if !slices.Equal(m.calls, []string{"Cancel"}) {
		t.Fatalf("calls %v, want Cancel", m.calls)
	}
	h.mustShow("Migration cancelled")
}

func TestActionErrorsAreShownWhereTheyHappen(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	m.errs["Cancel"] = errors.New("the source balancer could not be restarted: run sh.startBalancer() on the source mongos")
	h.attach(m)
	h.tap("Cancel migration")
	h.tap("Cancel migration")
	h.mustShow("the source balancer could not be restarted: run sh.startBalancer() on the source mongos")
	if h.button("Cancel migration").Disabled() {
		t.Fatal("Cancel migration stays disabled after the error")
	}
}

func TestActionButtonsAreDisabledWhileTheActionRuns(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(ready()))
	h.a.cur.(*monitorScreen).extendTimer()
	for _, b := range []string{"Extend time (+24 h)", "Start cutover", "Cancel migration"} {
		if !h.button(b).Disabled() {
			t.Fatalf("%s is enabled while the timer is being extended", b)
		}
	}
	h.q.drain()
	if h.button("Start cutover").Disabled() {
		t.Fatal("Start cutover stays disabled")
	}
}

func TestTimerCountsDownAndExtends(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(ready())
	h.attach(m)
	h.mustShow("All shards are in sync (lag 0:01)")
	h.mustShow("3 d 0 h 0 min")
	if h.a.side.labels[stepReady].Importance != widget.HighImportance {
		t.Fatal("the step list does not mark Ready for cutover")
	}
	h.now = h.now.Add(2*time.Minute + 30*time.Second)
	h.tick()
	h.mustShow("2 d 23 h 57 min")
	h.tap("Extend time (+24 h)")
	if !slices.Equal(m.calls, []string{"ExtendTimer"}) {
		t.Fatalf("calls %v, want ExtendTimer", m.calls)
	}
	h.mustShow("3 d 23 h 57 min")
	h.mustShow("The cutover window was extended by 24 hours.")

	countdown := h.a.cur.(*monitorScreen).countdown
	if countdown.Importance != widget.SuccessImportance {
		t.Fatal("a long countdown should read green")
	}
	h.now = m.snap.TimerDeadline.Add(-11 * time.Hour)
	h.tick()
	h.mustShow("11 h 0 min")
	if countdown.Importance != widget.WarningImportance {
		t.Fatal("the last hours of the countdown should stand out")
	}
}

func TestFellBehindNoticeFollowsTheReason(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(ready())
	h.attach(m)
	h.mustNotShow("fell behind")
	m.snap.Reason = "shard rs1 fell behind again (lag 0:45)"
	h.tick()
	h.mustShow("shard rs1 fell behind again (lag 0:45)")
	m.snap.Reason = ""
	h.tick()
	h.mustNotShow("fell behind")
}

// TestStartCutoverTurnsGreenAndOpensTheCutover: as in Atlas ("when the migration
// timer and the Start Cutover button turn green") and DESIGN step 5.
func TestStartCutoverTurnsGreenAndOpensTheCutover(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	h.attach(m)
	if h.findButton("Start cutover") != nil {
		t.Fatal("Start cutover is offered before every shard is in sync")
	}
	m.snap = ready()
	h.tick()
	b := h.button("Start cutover")
	if b.Importance != widget.SuccessImportance {
		t.Fatal("Start cutover is not green")
	}
	h.tap("Start cutover")
	if _, ok := h.a.cur.(*cutoverScreen); !ok {
		t.Fatalf("screen %T after Start cutover, want the cutover", h.a.cur)
	}
}

func TestFailedMigrationSaysWhyAndOffersRetry(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := syncing()
	s.State = engine.Failed
	s.Reason = "the destination mongos atlas-eu:27017 stopped answering: check it, then retry"
	m := newFakeMigration(s)
	h.attach(m)
	h.mustShow("the destination mongos atlas-eu:27017 stopped answering: check it, then retry")
	h.tap("Retry")
	if !slices.Equal(m.calls, []string{"Retry"}) {
		t.Fatalf("calls %v, want Retry", m.calls)
	}
}

func TestHistoryListsEventsNewestFirst(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	h.attach(m)
	texts := h.texts()
	first := slices.IndexFunc(texts, func(s string) bool { return s == eventText(m.snap.History[2]) })
	last := slices.IndexFunc(texts, func(s string) bool { return s == eventText(m.snap.History[0]) })
	if first < 0 || last < 0 || first > last {
		t.Fatalf("history not newest first: %d, %d", first, last)
	}
	h.mustShow("shard rs1   catching up")
	h.mustShow("migration   started: balancer stopped")
}

// countingRunner counts the trips to the event goroutine and can hold them, as a busy
// event loop would.
type countingRunner struct {
	queueRunner
	dos  int
	hold bool
	held []func()
}

func (c *countingRunner) Do(f func()) {
	c.dos++
	if c.hold {
		c.held = append(c.held, f)
		return
	}
	f()
}

func TestSnapshotsReachTheScreenOncePerTickNotPerEvent(t *testing.T) {
	fa := newHarness(t, &fakeBackend{}).a.fa
	r := &countingRunner{}
	a := newApp(fa, &fakeBackend{}, r, func() time.Time { return t0 })
	r.drain()
	s := syncing()
	for range 500 { // a burst of engine events between two ticks
		s.History = append(s.History, engine.Event{At: t0, Shard: "rs0", From: "copying", To: "copying", Reason: "batch"})
	}
	a.attach(newFakeMigration(s), s, "")
	r.dos = 0
	a.tick()
	if r.dos != 1 {
		t.Fatalf("one tick went to the event goroutine %d times, want 1", r.dos)
	}
	// While the event goroutine has not drawn the last tick, further ticks wait.
	r.hold = true
	a.tick()
	a.tick()
	a.tick()
	if r.dos != 2 {
		t.Fatalf("%d trips with a tick pending, want 2", r.dos)
	}
	for _, f := range r.held {
		f()
	}
	r.hold = false
	a.tick()
	if r.dos != 3 {
		t.Fatalf("ticks did not resume after the pending one was drawn: %d trips", r.dos)
	}
}

func TestChartsKeepTenMinutesSampledEveryFiveSeconds(t *testing.T) {
	s := newSamples()
	at := t0
	for i := range 200 {
		if !s.add(at, map[string]float64{"x": float64(i)}) {
			t.Fatalf("sample %d at a new 5 s step was dropped", i)
		}
		if s.add(at.Add(time.Second), map[string]float64{"x": -1}) {
			t.Fatal("a sample within 5 s of the last was kept")
		}
		at = at.Add(sampleEvery)
	}
	pts := s.lines["x"]
	if len(pts) != int(chartWindow/sampleEvery)+1 {
		t.Fatalf("%d points kept, want ten minutes' worth (%d)", len(pts), int(chartWindow/sampleEvery)+1)
	}
	if pts[len(pts)-1].v != 199 {
		t.Fatalf("newest point %v, want 199", pts[len(pts)-1].v)
	}
	s.add(at.Add(time.Hour), map[string]float64{"y": 1})
	if _, ok := s.lines["x"]; ok {
		t.Fatal("a line with no point in the window is kept")
	}
}

func TestChartSaysCollectingUntilALineCanBeDrawn(t *testing.T) {
	test.NewTempApp(t)
	c := newLineChart("lag", func(v float64) string { return clockText(time.Duration(v) * time.Second) })
	r := test.TempWidgetRenderer(t, c).(*chartRenderer)
	s := newSamples()
	s.add(t0, map[string]float64{"a": 1, "b": 2, "c": 3})
	c.set(s, []string{"a", "b", "c"}, []string{"rs0", "rs1", "rs2"}, t0)
	if r.empty.Hidden || len(r.lines) != 0 {
		t.Fatalf("one point per line: empty hidden %v, %d segments", r.empty.Hidden, len(r.lines))
	}
	s.add(t0.Add(sampleEvery), map[string]float64{"a": 4, "b": 2, "c": 3})
	c.set(s, []string{"a", "b", "c"}, []string{"rs0", "rs1", "rs2"}, t0.Add(sampleEvery))
	if !r.empty.Hidden || len(r.lines) != 3 {
		t.Fatalf("two points per line: empty hidden %v, %d segments, want 3", r.empty.Hidden, len(r.lines))
	}
	if r.top.Text != "max 0:04" {
		t.Fatalf("top label %q, want the largest value", r.top.Text)
	}
}

func TestHistorySaysNothingYetBeforeTheFirstEvent(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := syncing()
	s.History = nil
	h.attach(newFakeMigration(s))
	h.mustShow("Nothing yet.")
}

// A shard's row says why it waits or retries, once: a DDL waiting for the other
// shards explains the lag that grows meanwhile, and an engine note that already says
// "retrying" is not prefixed a second time.
func TestShardRowSaysWhatItWaitsForOrRetries(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := syncing()
	s.Shards[0].Waiting = "waiting for every shard to pass the createIndexes of shop.orders (10:02:11 UTC) before applying it once; writes to it wait too"
	m := newFakeMigration(s)
	h.attach(m)
	h.mustShow("Waiting for every shard to pass the createIndexes of shop.orders")
	m.snap.Shards[0].Waiting = ""
	m.snap.Shards[0].Retrying = "retrying: the source shard has not answered since 10:02:11"
	h.tick()
	h.mustNotShow("Waiting for every shard")
	h.mustShow("Retrying: the source shard has not answered since 10:02:11")
	h.mustNotShow("Retrying: retrying")
	m.snap.Shards[0].Retrying = ""
	h.tick()
	h.mustNotShow("Retrying")
	// A shard copying again because a DBA moved a chunk says which.
	m.snap.Shards[0].Moved = "a chunk of shop.orders [{customerId: 10}, {customerId: 20}) moved from shard rs0 to rs1 at 10:03:00 UTC (moveChunk or moveRange)"
	h.tick()
	h.mustShow("Copying again: a chunk of shop.orders [{customerId: 10}, {customerId: 20}) moved from shard rs0 to rs1")
}

// A restarted shard clearing its data on the destination is in a phase of its own,
// and its row says where the clear is; both go once it copies.
func TestShardRowSaysItClears(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := syncing()
	s.Shards[1].Phase = engine.Clearing
	s.Shards[1].Clearing = engine.ClearProgress{Namespace: "shop.orders", Done: 2, Total: 5}
	m := newFakeMigration(s)
	h.attach(m)
	h.mustShow("clearing")
	h.mustShow("Clearing its data on the destination before copying again: shop.orders, 2 of 5 namespaces cleared")
	m.snap.Shards[1].Phase = engine.Copying
	m.snap.Shards[1].Clearing = engine.ClearProgress{}
	h.tick()
	h.mustNotShow("Clearing its data")
	h.mustNotShow("clearing")
}

// A shard whose replay waits for its source replica set's majority says so in its
// row, with how far the majority is behind, so that the DBA sees why its lag grows
// (the secondaries are behind, not Shardlift), and stops saying it once they catch up.
func TestShardRowSaysWhenItWaitsForTheSourceMajority(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := syncing()
	s.Shards[1].Waiting = "waiting for a majority of the source shard's members to catch up: its majority commit point is 31s behind its newest entry; " +
		"entries are applied once a majority holds them, so that a failover cannot take back a write applied here"
	m := newFakeMigration(s)
	h.attach(m)
	h.mustShow("Waiting for a majority of the source shard's members to catch up: its majority commit point is 31s behind its newest entry")
	m.snap.Shards[1].Waiting = ""
	h.tick()
	h.mustNotShow("Waiting for a majority")
}

// The header never says ready, nor that every shard is in sync, while a shard is
// not: Start cutover is disabled with the reason, naming the shard.
func TestNotReadyWhileAShardIsNotInSync(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := ready()
	s.Shards[2].Phase = engine.ShardFailed
	s.Shards[2].Error = "the oplog of shard rs2 no longer reaches back to 10:02:11: restart this shard"
	m := newFakeMigration(s) // the engine still says ready: it has not looked since
	h.attach(m)
	check := func() {
		t.Helper()
		if st := h.a.cur.(*monitorScreen).state.Text; st != "syncing" {
			t.Fatalf("the header says %q", st)
		}
		h.mustNotShow("All shards are in sync")
		h.mustNotShow("Every shard in sync")
		h.mustShow("Not ready for cutover: a shard is not in sync.")
		h.mustShow("Start cutover is disabled: shard rs2 failed: the oplog of shard rs2 no longer reaches back to 10:02:11: restart this shard")
		if !h.button("Start cutover").Disabled() {
			t.Fatal("Start cutover is enabled while shard rs2 has failed")
		}
		if h.a.side.labels[stepReady].Importance == widget.HighImportance {
			t.Fatal("the step list marks Ready for cutover")
		}
		h.button("Restart rs2")
	}
	check()
	// Once the engine looked: syncing again, the cutover window still running.
	m.snap.State = engine.Syncing
	m.snap.Reason = "shard rs2 failed: " + s.Shards[2].Error
	h.tick()
	check()
	h.mustShow("3 d 0 h 0 min")
	// An action ending does not enable it either.
	h.tap("Extend time (+24 h)")
	if !h.button("Start cutover").Disabled() {
		t.Fatal("Start cutover enabled after extending the window")
	}
	// In sync again: ready.
	m.snap = ready()
	h.tick()
	h.mustShow("All shards are in sync (lag 0:01). You can start the cutover.")
	if h.button("Start cutover").Disabled() {
		t.Fatal("Start cutover stays disabled once every shard is in sync")
	}
}

// While the start places the destination's collections, the monitor says how far.
func TestStartingShowsThePlacement(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	snap := syncing()
	snap.State, snap.Shards, snap.Overall = engine.Starting, nil, engine.Progress{}
	snap.Placement = &engine.Placement{Collections: 3, CollectionsPlaced: 1, Ranges: 41, RangesPlaced: 17}
	h.attach(newFakeMigration(snap))
	h.mustShow("Starting: preparing the destination: placed 17 of 41 ranges, 1 of 3 sharded collections…")
}

// While it syncs, the screen says how far the continuous verification is; it
// says nothing before it runs.
func TestMonitorShowsTheContinuousVerification(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	snap := syncing()
	m := newFakeMigration(snap)
	h.attach(m)
	h.mustNotShow("Continuous verification")
	snap.Continuous = &engine.ContinuousProgress{Namespaces: 5, NamespacesCompared: 3, Ranges: 40, RangesCompared: 12, Rechecked: 1500, Pending: 2, Persisting: 1}
	m.snap = snap
	h.tick()
	h.mustShow("Continuous verification: 12 of 40 ranges compared (3 of 5 namespaces)  ·  1,500 documents rechecked since  ·  2 differing, pending recheck  ·  1 still differing")
}

// Once ready, the screen says how far the unique indexes are made unique on the
// destination (the status line and the API say it too).
func TestMonitorShowsTheUniqueIndexesRestoredWhileReady(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	snap := ready()
	snap.UniqueIndexes = "1 of 2 unique indexes restored on the destination while syncing"
	h.attach(newFakeMigration(snap))
	h.mustShow("Unique indexes: 1 of 2 unique indexes restored on the destination while syncing")
}

// A shard copying a large collection in _id ranges says in its row how many of
// each namespace's ranges are copied, and stops once its copy is over.
func TestShardRowSaysHowManyRangesAreCopied(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := syncing()
	s.Shards[0].Ranges = []engine.NamespaceRanges{{Namespace: "shop.orders", Done: 3, Total: 8}}
	m := newFakeMigration(s)
	h.attach(m)
	h.mustShow("Copying in parallel _id ranges: shop.orders: 3 of 8 ranges copied")
	m.snap.Shards[0].Ranges = []engine.NamespaceRanges{{Namespace: "shop.orders", Done: 8, Total: 8}, {Namespace: "shop.items", Done: 1, Total: 8}}
	h.tick()
	h.mustShow("Copying in parallel _id ranges: shop.orders: 8 of 8 ranges copied, shop.items: 1 of 8 ranges copied")
	m.snap.Shards[0].Ranges = nil
	m.snap.Shards[0].Phase = engine.CatchingUp
	h.tick()
	h.mustNotShow("ranges copied")
}

// A shard whose oplog buffer holds entries says in its row how much, and says
// nothing once the buffer is empty or absent.
func TestShardRowSaysWhatItsOplogBufferHolds(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := syncing()
	s.Shards[0].Buffer = &engine.OplogBuffer{Bytes: 1288490189, Entries: 340_000, Limit: 10 << 30}
	m := newFakeMigration(s)
	h.attach(m)
	h.mustShow("Oplog buffered 1.2 GiB (340,000 entries)")
	m.snap.Shards[0].Buffer = &engine.OplogBuffer{Limit: 10 << 30}
	h.tick()
	h.mustNotShow("Oplog buffered")
	m.snap.Shards[0].Buffer = nil
	h.tick()
	h.mustNotShow("Oplog buffered")
}

package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/replay"
)

// set changes the replay's progress as the test needs it.
func (r *fakeReplayer) set(change func(p *replay.Progress)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.p)
}

// tsAt is the oplog timestamp of t, to the second.
func tsAt(t time.Time) primitive.Timestamp { return primitive.Timestamp{T: uint32(t.Unix()), I: 1} }

func (h *harness) row(shard string) ShardProgress {
	for _, s := range h.m.Snapshot().Shards {
		if s.Name == shard {
			return s
		}
	}
	h.t.Fatalf("no shard %s", shard)
	return ShardProgress{}
}

// noted reports whether the history has a step (no change of state) whose reason
// contains s.
func (h *harness) noted(s string) bool {
	return slices.ContainsFunc(h.m.Snapshot().History, func(e Event) bool {
		return e.Shard == "" && e.From == e.To && strings.Contains(e.Reason, s)
	})
}

func TestAFailedShardBlocksTheCutoverAndItsFinishNamingTheShard(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.ready()
	rs["s1"].fail <- &replay.GapError{Shard: "s1", Resume: primitive.Timestamp{T: 1_800_000_000}}
	h.eventually("s1 failed", func() bool { return h.phase("s1") == ShardFailed })
	// Refused at once, whether or not the monitor has looked since.
	var ns *NotSyncedError
	err := h.m.StartCutover(bg)
	if !errors.As(err, &ns) || ns.Shard != "s1" || ns.Phase != ShardFailed || !errors.Is(err, ErrRefused) ||
		!strings.Contains(err.Error(), "shard s1 failed") || !strings.Contains(err.Error(), "restart this shard") {
		t.Fatalf("StartCutover with s1 failed: %v", err)
	}
	h.waitState(Syncing)
	if s := h.m.Snapshot(); !strings.HasPrefix(s.Reason, "shard s1 failed: ") {
		t.Fatalf("reason %q", s.Reason)
	}
	if !slices.Contains(h.events(), "ready>syncing") {
		t.Fatalf("history %v lacks ready>syncing", h.events())
	}

	// Restarted and in sync again: ready, then cutting over; then it fails again.
	if err := h.m.RestartShard(bg, "s1"); err != nil {
		t.Fatal(err)
	}
	h.eventually("s1 replaying again", func() bool { return h.fc.replayers("s1") == 2 && h.phase("s1") == CatchingUp })
	h.fc.replayer("s1").behind(0)
	h.waitState(Ready)
	if err := h.m.StartCutover(bg); err != nil {
		t.Fatal(err)
	}
	h.fc.replayer("s1").fail <- errBoom
	h.eventually("the cutover to say it cannot finish", func() bool {
		return strings.HasPrefix(h.m.Snapshot().Reason, "the cutover cannot finish: shard s1 failed: boom")
	})
	if st := h.m.State(); st != CuttingOver {
		t.Fatalf("state %s: the cutover goes on (the applications are stopped), it only cannot finish", st)
	}
	if !h.noted("the cutover cannot finish: shard s1 failed") {
		t.Fatalf("the history does not say why the cutover cannot finish: %+v", h.m.Snapshot().History)
	}
	err = h.m.Done(bg, false)
	if !errors.As(err, &ns) || ns.Shard != "s1" || !strings.Contains(err.Error(), "cannot finish the cutover: shard s1 failed") {
		t.Fatalf("Done with s1 failed: %v", err)
	}
	if ok, why := h.m.Snapshot().CanFinish(); ok || !strings.Contains(why, "shard s1 failed") || strings.Contains(why, "stop every write") {
		t.Fatalf("CanFinish: %v %q", ok, why)
	}

	// Restarted during the cutover: refused while it copies, accepted once caught up.
	h.fc.mu.Lock()
	h.fc.shards["s1"].copyGate = make(chan struct{})
	h.fc.mu.Unlock()
	if err := h.m.RestartShard(bg, "s1"); err != nil {
		t.Fatal(err)
	}
	h.eventually("s1 copying", func() bool { return h.phase("s1") == Copying })
	if err := h.m.Done(bg, false); !errors.As(err, &ns) || ns.Shard != "s1" || ns.Phase != Copying {
		t.Fatalf("Done with s1 copying again: %v", err)
	}
	close(h.fc.shards["s1"].copyGate)
	h.eventually("s1 replaying again", func() bool { return h.fc.replayers("s1") == 3 && h.phase("s1") == CatchingUp })
	h.fc.replayer("s1").behind(0)
	h.eventually("the history to say the cutover can finish", func() bool { return h.noted("every shard replays again") })
	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
}

// A failed shard's gap is never frozen: it grows with its source's newest entry,
// and with the wall clock while its source does not answer. The advice then names
// the shard, not writes to the source.
func TestAFailedShardsGapKeepsGrowingWithTheSourceAndTheClock(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.cuttingOver()
	start := h.clk.Now()
	rs["s1"].set(func(p *replay.Progress) {
		p.Applied, p.Newest, p.Lag = tsAt(start.Add(-5*time.Second)), tsAt(start), 5*time.Second
	})
	rs["s1"].fail <- errBoom
	h.eventually("s1 failed", func() bool { return h.phase("s1") == ShardFailed })
	if g := h.row("s1").Gap; g != 5*time.Second {
		t.Fatalf("gap of s1 when it failed: %v, want 5 s", g)
	}

	// The source keeps writing (its periodic no-ops at least): the gap follows it.
	h.fc.mu.Lock()
	h.fc.shards["s1"].newest = tsAt(start.Add(60 * time.Second))
	h.fc.mu.Unlock()
	h.clk.Advance(60 * time.Second)
	h.eventually("the gap to follow the source", func() bool { return h.row("s1").Gap == 65*time.Second })
	s := h.m.Snapshot()
	if s.OptimeGap != 65*time.Second || s.GapShard != "s1" {
		t.Fatalf("optime gap %v of %q, want s1's 1:05", s.OptimeGap, s.GapShard)
	}
	if ok, why := s.CanFinish(); ok || !strings.Contains(why, "shard s1 failed") || strings.Contains(why, "write") {
		t.Fatalf("CanFinish: %v %q: the advice must name the failed shard, not writes to the source", ok, why)
	}

	// Its source stops answering: the wall clock takes over.
	h.fc.mu.Lock()
	h.fc.shards["s1"].newestErr = errBoom
	h.fc.mu.Unlock()
	h.eventually("the gap to follow the clock", func() bool {
		h.clk.Advance(watchEvery)
		return h.row("s1").Gap == h.clk.Now().Sub(start.Add(-5*time.Second))
	})
	h.clk.Advance(10 * time.Minute)
	if g, want := h.row("s1").Gap, h.clk.Now().Sub(start.Add(-5*time.Second)); g != want || g < 10*time.Minute {
		t.Fatalf("gap %v ten minutes later, want %v", g, want)
	}
}

// After a restart, the overall progress counts the restarted shard again: it is
// not 100% while that shard waits to copy or copies.
func TestOverallProgressCountsARestartedShard(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.ready()
	if f := h.m.Snapshot().Overall.Fraction(); f != 1 {
		t.Fatalf("overall %v when ready", f)
	}
	h.fc.mu.Lock()
	h.fc.clearGate = make(chan struct{})
	h.fc.mu.Unlock()
	if err := h.m.RestartShard(bg, "s1"); err != nil {
		t.Fatal(err)
	}
	s := h.m.Snapshot()
	o, row := s.Overall, h.row("s1")
	if row.Phase != Pending || row.DocsTotal != 100 || row.DocsCopied != 0 || o.DocsTotal != 200 || o.DocsCopied != 100 || o.Fraction() != 0.5 {
		t.Fatalf("after the restart: s1 %s %d/%d, overall %d/%d docs (%v)", row.Phase, row.DocsCopied, row.DocsTotal, o.DocsCopied, o.DocsTotal, o.Fraction())
	}
	if s := h.m.Snapshot(); s.State != Syncing || s.Reason != "shard s1 is not in sync: it is pending; wait until it has copied its data and caught up" {
		t.Fatalf("state %s reason %q right after the restart", s.State, s.Reason)
	}
	close(h.fc.clearGate)
	h.eventually("s1 replaying again", func() bool { return h.fc.replayers("s1") == 2 && h.phase("s1") == CatchingUp })
	if f := h.m.Snapshot().Overall.Fraction(); f != 1 {
		t.Fatalf("overall %v once s1 copied again", f)
	}
}

// Cancelling during the cutover with a failed shard says where each shard stopped:
// not "a staging copy 0:20 behind", since the failed shard's copy is not consistent.
func TestCancelSaysEachShardsPositionAndThatAFailedShardIsNotAConsistentCopy(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.cuttingOver()
	rs["s1"].behind(20 * time.Second)
	stoppedAt := tsTime(rs["s1"].Snapshot().Applied)
	rs["s1"].fail <- errBoom
	h.eventually("s1 failed", func() bool { return h.phase("s1") == ShardFailed })
	s0At := tsTime(rs["s0"].Snapshot().Applied)
	if err := h.m.Cancel(bg); err != nil {
		t.Fatal(err)
	}
	s := h.m.Snapshot()
	if s.State != Cancelled || s.Summary == nil || len(s.Summary.Shards) != 2 {
		t.Fatalf("state %s summary %+v", s.State, s.Summary)
	}
	p0, p1 := s.Summary.Shards[0], s.Summary.Shards[1]
	if !p0.Consistent || !p0.AppliedUpTo.Equal(s0At) || !strings.Contains(p0.Text, "shard s0 applied every entry up to "+s0At.Format("2006-01-02 15:04:05 UTC")) {
		t.Fatalf("s0's position %+v", p0)
	}
	if p1.Consistent || p1.Phase != ShardFailed || !p1.AppliedUpTo.Equal(stoppedAt) ||
		!strings.Contains(p1.Text, "shard s1 failed and stopped at "+stoppedAt.Format("2006-01-02 15:04:05 UTC")) ||
		!strings.Contains(p1.Text, "not a consistent staging copy") {
		t.Fatalf("s1's position %+v", p1)
	}
	if !strings.Contains(s.Reason, "not a consistent staging copy: shard s1 failed and stopped at") || strings.Contains(s.Reason, "behind the source") {
		t.Fatalf("reason %q", s.Reason)
	}
	if sum := h.cp.record().Summary; sum == nil || len(sum.Shards) != 2 || !slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, "not a consistent staging copy") }) {
		t.Fatalf("saved summary %+v", sum)
	}
}

// The cutover screen shows how long ago the source was last written: the newest
// write any shard's tail read.
func TestSnapshotSaysWhenTheSourceWasLastWritten(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.cuttingOver()
	if s := h.m.Snapshot(); !s.LastSourceWrite.IsZero() {
		t.Fatalf("last write %v before any was read", s.LastSourceWrite)
	}
	now := h.clk.Now()
	rs["s0"].set(func(p *replay.Progress) { p.LastWrite = tsAt(now.Add(-30 * time.Second)) })
	rs["s1"].set(func(p *replay.Progress) { p.LastWrite = tsAt(now.Add(-4 * time.Second)) })
	if s := h.m.Snapshot(); !s.LastSourceWrite.Equal(now.Add(-4*time.Second)) || s.SourceWriteAge != 4*time.Second {
		t.Fatalf("last write %v, %v ago; want s1's, 4 s ago", s.LastSourceWrite, s.SourceWriteAge)
	}
	h.clk.Advance(10 * time.Second)
	if age := h.m.Snapshot().SourceWriteAge; age != 14*time.Second {
		t.Fatalf("age %v ten seconds later, want 14 s", age)
	}
}

// checkNow runs one look of the monitor, as its timer would.
func (h *harness) checkNow() {
	h.m.life.Lock()
	defer h.m.life.Unlock()
	h.m.check(bg, h.m.run)
}

// A restart of Shardlift is not a shard falling behind: a ready migration stays
// ready through it unless a shard's lag reaches FellBehindLag.
func TestARestartOfShardliftKeepsAReadyMigrationReady(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.ready()
	h.fc.mu.Lock()
	h.fc.replayLag = 5 * time.Second // above SyncedLag, under FellBehindLag
	h.fc.mu.Unlock()
	h.restart()
	h.eventually("both replaying again", func() bool { return h.fc.replayers("s0") == 2 && h.fc.replayers("s1") == 2 })
	h.checkNow()
	if s := h.m.Snapshot(); s.State != Ready || h.phase("s0") != Synced || h.phase("s1") != Synced || slices.Contains(h.events(), "ready>syncing") {
		t.Fatalf("after the restart: state %s, phases %s %s, history %v", s.State, h.phase("s0"), h.phase("s1"), h.events())
	}
	if !slices.ContainsFunc(h.m.Snapshot().History, func(e Event) bool {
		return e.Shard == "s0" && strings.HasPrefix(e.Reason, "resumed from the checkpoint")
	}) {
		t.Fatalf("the resume is not in the history: %v", h.events())
	}
	// A replay that has not read its source yet: its lag is not known. The migration
	// stays ready, but the cutover waits for it, and I'm done for its gap.
	s0 := h.fc.replayer("s0")
	s0.set(func(p *replay.Progress) { p.Newest = primitive.Timestamp{} })
	h.checkNow()
	var ns *NotSyncedError
	if err := h.m.StartCutover(bg); !errors.As(err, &ns) || ns.Shard != "s0" || !strings.Contains(err.Error(), "its lag is not known yet") || h.m.State() != Ready {
		t.Fatalf("StartCutover with s0's lag unknown: %v (state %s)", err, h.m.State())
	}
	s0.behind(0)
	h.fc.replayer("s1").behind(0)
	if err := h.m.StartCutover(bg); err != nil {
		t.Fatal(err)
	}
	s0.set(func(p *replay.Progress) { p.Newest = primitive.Timestamp{} })
	if err := h.m.Done(bg, false); !errors.As(err, &ns) || ns.Shard != "s0" || !strings.Contains(err.Error(), "the optime gap is not known yet") {
		t.Fatalf("Done with s0's gap unknown: %v", err)
	}
	if ok, why := h.m.Snapshot().CanFinish(); ok || !strings.Contains(why, "not known yet") {
		t.Fatalf("CanFinish with s0's gap unknown: %v %q", ok, why)
	}
	s0.behind(0)
	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
}

// A shard that falls behind after a restart makes the ready migration syncing.
func TestAShardBehindAfterARestartMakesTheMigrationSyncing(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.ready()
	h.restart()
	h.eventually("both replaying again", func() bool { return h.fc.replayers("s0") == 2 && h.fc.replayers("s1") == 2 })
	h.fc.replayer("s0").behind(0)
	h.fc.replayer("s1").behind(41 * time.Second)
	h.checkNow()
	if s := h.m.Snapshot(); s.State != Syncing || !strings.Contains(s.Reason, "shard s1 is behind (lag 0:41)") {
		t.Fatalf("s1 41 s behind: state %s reason %q", s.State, s.Reason)
	}
}

// While a restarted shard clears its data on the destination (hours for a large
// shard on a real cluster), its row is in the clearing phase and says where the
// clear is, not only "pending"; both go once the clear ends.
func TestARestartedShardsRowSaysItClears(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.ready()
	h.fc.mu.Lock()
	h.fc.clearGate = make(chan struct{})
	h.fc.mu.Unlock()
	if err := h.m.RestartShard(bg, "s1"); err != nil {
		t.Fatal(err)
	}
	want := ClearProgress{Namespace: "shop.orders", Done: 0, Total: 1}
	h.eventually("s1's row to say it clears", func() bool { r := h.row("s1"); return r.Phase == Clearing && r.Clearing == want })
	if w := h.row("s1").Waiting; w != "" {
		t.Fatalf("while it clears, s1's row waits for %q", w)
	}
	close(h.fc.clearGate)
	h.eventually("s1 replaying again", func() bool { return h.fc.replayers("s1") == 2 && h.phase("s1") == CatchingUp })
	if r := h.row("s1"); r.Phase == Clearing || r.Clearing != (ClearProgress{}) {
		t.Fatalf("after the clear, s1's row is %s, clearing %+v", r.Phase, r.Clearing)
	}
}

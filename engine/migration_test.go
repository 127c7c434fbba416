package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/validate"
)

var bg = context.Background()

func TestFullLifecycleFromStartToDone(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.shards["s0"].relaxIndex = bsonDoc("name", "email_1")
	h.start(StartOptions{})
	rs := h.replaying()
	if st := h.m.State(); st != Syncing {
		t.Fatalf("state %s while shards catch up, want syncing", st)
	}
	rs["s0"].behind(0)
	h.eventually("s0 synced", func() bool { return h.phase("s0") == Synced })
	if st := h.m.State(); st != Syncing {
		t.Fatalf("state %s with one shard still behind, want syncing", st)
	}
	rs["s1"].behind(2 * time.Second) // under SyncedLag (3 s)
	h.waitState(Ready)
	s := h.m.Snapshot()
	if want := h.clk.Now().Add(72 * time.Hour); !s.TimerDeadline.Equal(want) {
		t.Fatalf("deadline %v, want %v", s.TimerDeadline, want)
	}
	if got := h.cp.record().TimerDeadline; !got.Equal(s.TimerDeadline) {
		t.Fatalf("stored deadline %v, want %v", got, s.TimerDeadline)
	}
	if err := h.m.StartCutover(bg); err != nil {
		t.Fatal(err)
	}
	rs["s1"].behind(0)
	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s = h.m.Snapshot()
	if s.State != Done || !s.Verification.OK() {
		t.Fatalf("state %s, verification %+v", s.State, s.Verification)
	}
	for name, r := range rs {
		if !r.isStopped() {
			t.Errorf("shard %s: the replay was not stopped gracefully", name)
		}
	}
	if !h.fc.srcBalancer || !h.fc.dstBalancer {
		t.Fatalf("balancers after done: source %v, destination %v; want both on", h.fc.srcBalancer, h.fc.dstBalancer)
	}
	if len(h.fc.restored) != 2 {
		t.Fatalf("restored %v, want the relaxed TTL option and index", h.fc.restored)
	}
	want := []string{"draft>validated", "validated>starting", "starting>syncing", "ready>cutting_over", "cutting_over>finalizing", "finalizing>done"}
	got := h.events()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("history lacks %s: %v", w, got)
		}
	}
	for _, w := range []string{"s0:pending>copying", "s0:copying>building_indexes", "s0:building_indexes>catching_up", "s0:catching_up>synced"} {
		if !slices.Contains(got, w) {
			t.Errorf("history lacks shard event %s: %v", w, got)
		}
	}
	if sum := h.cp.record().Summary; sum == nil || sum.Documents != 200 || len(sum.UsersToRecreate) != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if h.fc.closed != 1 {
		t.Fatalf("connections closed %d times, want once", h.fc.closed)
	}
}

func TestBalancerStateIsRecordedBeforeTheBalancerIsStopped(t *testing.T) {
	h := newHarness(t, "s0")
	var recorded *bool
	h.fc.beforeStop = func() { recorded = h.cp.record().BalancerWasOn }
	h.start(StartOptions{})
	h.replaying()
	if recorded == nil || !*recorded {
		t.Fatalf("when the balancer was stopped, the record held %v; want true (it was on)", recorded)
	}
	if h.fc.srcBalancer {
		t.Fatal("the source balancer is still on")
	}
	if h.fc.dstBalancer {
		t.Fatal("the destination balancer is on during the sync: chunks could leave their twin shards")
	}
	// The stop is in the history, as its restore will be, for the logs and the CLI.
	if !slices.ContainsFunc(h.m.Snapshot().History, func(e Event) bool { return e.Shard == "" && e.Reason == "source balancer stopped" }) {
		t.Fatalf("the history does not record the balancer's stop: %+v", h.m.Snapshot().History)
	}
}

func TestFailedCheckRefusesToStartAndChangesNothing(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.validateErr = &ValidationError{Failed: []validate.Finding{{Title: "Same shard count", Detail: "source 2, destination 3", Fix: "add a shard"}}}
	h.start(StartOptions{})
	err := h.wait()
	if !errors.Is(err, ErrValidation) || !strings.Contains(err.Error(), "add a shard") {
		t.Fatalf("Run: %v", err)
	}
	if h.m.State() != Draft || h.fc.called("StopSourceBalancer") != 0 || h.fc.called("PrepareDestination") != 0 {
		t.Fatalf("state %s, calls %v", h.m.State(), h.fc.calls)
	}
}

func TestDestinationWithDataIsRefusedUnlessWipeConfirmed(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.destData = []string{"legacy"}
	h.start(StartOptions{})
	err := h.wait()
	var ne *DestinationNotEmptyError
	if !errors.As(err, &ne) || ne.Databases[0] != "legacy" {
		t.Fatalf("Run: %v", err)
	}
	if h.fc.wiped || h.fc.called("StopSourceBalancer") != 0 {
		t.Fatalf("refused start touched the clusters: %v", h.fc.calls)
	}
	h.start(StartOptions{WipeDestination: true})
	h.replaying()
	if !h.fc.wiped {
		t.Fatal("the confirmed wipe did not happen")
	}
}

func TestResumedMigrationRecognisesItsOwnDataFromTheCheckpoints(t *testing.T) {
	h := newHarness(t, "s0")
	h.start(StartOptions{})
	h.replaying()
	h.fc.destData = []string{"shop"} // what the migration copied
	h.restart()
	h.replaying()
	if h.fc.called("DestinationData") != 1 || h.fc.wiped {
		t.Fatalf("resume looked at the destination's data again (calls %v)", h.fc.calls)
	}
}

func TestDoneBeforeCutoverIsRefused(t *testing.T) {
	h := newHarness(t, "s0")
	h.start(StartOptions{})
	h.replaying()
	err := h.m.Done(bg, false)
	var re *RefusedError
	if !errors.As(err, &re) || re.State != Syncing || !errors.Is(err, ErrRefused) {
		t.Fatalf("Done while syncing: %v", err)
	}
	h.ready()
	if err := h.m.Done(bg, true); !errors.As(err, &re) || re.State != Ready {
		t.Fatalf("Done while ready: %v", err)
	}
	if h.m.State() != Ready {
		t.Fatalf("state %s after refusals", h.m.State())
	}
}

func TestDoneWithAnOptimeGapIsRefusedWithTheGap(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.cuttingOver()
	rs["s1"].behind(41 * time.Second)
	err := h.m.Done(bg, false)
	var ge *GapError
	if !errors.As(err, &ge) || ge.Gap != 41*time.Second || ge.Shard != "s1" {
		t.Fatalf("Done with a gap: %v", err)
	}
	if !strings.Contains(err.Error(), "0:41") {
		t.Fatalf("message %q does not show the gap", err)
	}
	if s := h.m.Snapshot(); s.OptimeGap != 41*time.Second || s.State != CuttingOver {
		t.Fatalf("snapshot gap %v state %s", s.OptimeGap, s.State)
	}
	rs["s1"].behind(0)
	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
}

// A gap of 0 read from the replays' last look at the source is not enough: I'm done
// waits until every shard applied the newest entry its oplog has now.
func TestDoneWaitsForTheNewestEntryBeforeStoppingTheTail(t *testing.T) {
	h := newHarness(t, "s0")
	rs := h.cuttingOver()
	r := rs["s0"]
	h.fc.mu.Lock()
	h.fc.shards["s0"].newest = primitive.Timestamp{T: r.Snapshot().Newest.T + 5}
	h.fc.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- h.m.Done(bg, false) }()
	h.eventually("the drain to wait", func() bool { h.clk.Advance(50 * time.Millisecond); return len(done) == 0 })
	r.mu.Lock()
	r.p.Applied = primitive.Timestamp{T: r.p.Newest.T + 5}
	r.p.Newest = r.p.Applied
	r.mu.Unlock()
	h.eventually("Done to return", func() bool { h.clk.Advance(50 * time.Millisecond); return len(done) == 1 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// And it gives up after DrainTimeout with the gap.
	h2 := newHarness(t, "s0")
	rs2 := h2.cuttingOver()
	h2.fc.mu.Lock()
	h2.fc.shards["s0"].newest = primitive.Timestamp{T: rs2["s0"].Snapshot().Newest.T + 9}
	h2.fc.mu.Unlock()
	go func() { done <- h2.m.Done(bg, false) }()
	h2.eventually("Done to give up", func() bool { h2.clk.Advance(time.Second); return len(done) == 1 })
	var ge *GapError
	if err := <-done; !errors.As(err, &ge) || ge.Gap != 9*time.Second {
		t.Fatalf("Done after the drain timeout: %v", err)
	}
	if h2.m.State() != CuttingOver {
		t.Fatalf("state %s", h2.m.State())
	}
}

// The DBA reads 0:00 and presses I'm done while one more entry arrives (the no-op a
// primary writes every 10 s, or the applications' last write): a gap of a second or
// two is waited out, not refused; a larger one is refused at once.
func TestDoneWaitsOutAGapOfASecond(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.cuttingOver()
	r := rs["s1"]
	r.behind(time.Second)
	h.fc.mu.Lock()
	h.fc.shards["s1"].newest = r.Snapshot().Newest
	h.fc.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- h.m.Done(bg, false) }()
	// The drain polls every 50 ms: its timer says it waits.
	h.eventually("the drain to wait", func() bool { return len(done) == 1 || h.clk.hasTimerIn(50*time.Millisecond) })
	if len(done) == 1 {
		t.Fatalf("I'm done with a gap of 0:01 did not wait: %v", <-done)
	}
	r.behind(0)
	h.eventually("Done to return", func() bool { h.clk.Advance(50 * time.Millisecond); return len(done) == 1 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := h.m.State(); s != Done && s != Finalizing {
		t.Fatalf("state %s after I'm done", s)
	}

	h2 := newHarness(t, "s0")
	rs2 := h2.cuttingOver()
	rs2["s0"].behind(3 * time.Second)
	var ge *GapError
	if err := h2.m.Done(bg, false); !errors.As(err, &ge) || ge.Gap != 3*time.Second {
		t.Fatalf("Done with a gap of 0:03: %v", err)
	}
}

func TestStartCutoverOnlyWhenReady(t *testing.T) {
	h := newHarness(t, "s0")
	h.start(StartOptions{})
	h.replaying()
	var ns *NotSyncedError
	if err := h.m.StartCutover(bg); !errors.As(err, &ns) || ns.Shard != "s0" || ns.Phase != CatchingUp {
		t.Fatalf("StartCutover while syncing: %v", err)
	}
	h.ready()
	var re *RefusedError
	if err := h.m.StartCutover(bg); err != nil {
		t.Fatal(err)
	}
	if err := h.m.StartCutover(bg); !errors.As(err, &re) || re.State != CuttingOver {
		t.Fatalf("StartCutover twice: %v", err)
	}
}

// A shard that falls behind makes a ready migration syncing again, naming it; the
// cutover window keeps running (neither reset nor extended) and the migration is
// ready again, with the same deadline, once the shard is back in sync.
func TestShardFallingBehindWhileReadyMakesItSyncingAndTheWindowKeepsRunning(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.ready()
	deadline := h.m.Snapshot().TimerDeadline
	// A lag between SyncedLag and FellBehindLag does not flap the shard.
	rs["s0"].behind(5 * time.Second)
	h.m.poke()
	if h.phase("s0") != Synced || h.m.State() != Ready {
		t.Fatalf("s0 at 5 s lag is %s (state %s), want still synced and ready", h.phase("s0"), h.m.State())
	}
	rs["s1"].behind(41 * time.Second)
	h.waitState(Syncing)
	s := h.m.Snapshot()
	if s.Reason != "shard s1 is behind (lag 0:41): wait until it is in sync again" || !s.TimerDeadline.Equal(deadline) || h.phase("s1") != CatchingUp {
		t.Fatalf("reason %q deadline %v phase %s", s.Reason, s.TimerDeadline, h.phase("s1"))
	}
	last := s.History[len(s.History)-1]
	if last.From != "ready" || last.To != "syncing" || !strings.Contains(last.Reason, "shard s1 is behind") || !strings.Contains(last.Reason, "window keeps running") {
		t.Fatalf("history's last event %+v", last)
	}
	var ns *NotSyncedError
	if err := h.m.StartCutover(bg); !errors.As(err, &ns) || ns.Shard != "s1" || !errors.Is(err, ErrRefused) {
		t.Fatalf("StartCutover with s1 behind: %v", err)
	}
	if ok, why := h.m.Snapshot().CanStartCutover(); ok || !strings.Contains(why, "shard s1") {
		t.Fatalf("CanStartCutover: %v %q", ok, why)
	}
	// The window can still be extended while it runs.
	if err := h.m.ExtendTimer(bg); err != nil {
		t.Fatal(err)
	}
	deadline = deadline.Add(24 * time.Hour)
	rs["s1"].behind(0)
	h.waitState(Ready)
	if s := h.m.Snapshot(); !s.TimerDeadline.Equal(deadline) || s.Reason != "" {
		t.Fatalf("ready again: deadline %v (want %v) reason %q", s.TimerDeadline, deadline, s.Reason)
	}
	if ok, why := h.m.Snapshot().CanStartCutover(); !ok {
		t.Fatalf("CanStartCutover once in sync again: %q", why)
	}
	// And a window that closes while a shard is not in sync expires the migration.
	rs["s1"].behind(41 * time.Second)
	h.waitState(Syncing)
	h.clk.Advance(96 * time.Hour)
	h.waitState(Expired)
}

func TestTimerExtendsByADayAnyNumberOfTimes(t *testing.T) {
	h := newHarness(t, "s0")
	var re *RefusedError
	h.start(StartOptions{})
	h.replaying()
	if err := h.m.ExtendTimer(bg); !errors.As(err, &re) {
		t.Fatalf("extend before ready: %v", err)
	}
	h.ready()
	first := h.m.Snapshot().TimerDeadline
	for range 3 {
		if err := h.m.ExtendTimer(bg); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := h.m.Snapshot().TimerDeadline, first.Add(72*time.Hour); !got.Equal(want) {
		t.Fatalf("deadline %v after 3 extensions, want %v", got, want)
	}
	if got := h.cp.record().TimerDeadline; !got.Equal(first.Add(72 * time.Hour)) {
		t.Fatalf("stored deadline %v", got)
	}
}

func TestTimerExpiryStopsSyncingAndRestores(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.shards["s1"].relaxIndex = bsonDoc("name", "sku_1")
	rs := h.ready()
	h.clk.Advance(72*time.Hour - time.Second)
	h.m.poke()
	if err := h.m.ExtendTimer(bg); err != nil {
		t.Fatalf("extend a second before the deadline: %v", err)
	}
	h.clk.Advance(24*time.Hour + time.Second)
	h.waitState(Expired)
	if err := h.wait(); err != nil {
		t.Fatalf("Run after expiry: %v", err)
	}
	for name, r := range rs {
		if !r.isStopped() {
			t.Errorf("shard %s still syncing after expiry", name)
		}
	}
	if !h.fc.srcBalancer || !h.fc.dstBalancer || len(h.fc.restored) != 2 || h.fc.wiped || len(h.fc.cleared) != 0 {
		t.Fatalf("after expiry: balancers %v/%v restored %d wiped %v cleared %v", h.fc.srcBalancer, h.fc.dstBalancer, len(h.fc.restored), h.fc.wiped, h.fc.cleared)
	}
	err := h.m.ExtendTimer(bg)
	if !errors.Is(err, ErrExpired) || !errors.Is(err, ErrRefused) {
		t.Fatalf("extend after expiry: %v", err)
	}
	if s := h.m.Snapshot(); !strings.Contains(s.Reason, "cutover window closed") {
		t.Fatalf("reason %q", s.Reason)
	}
	// Expired -> cancelled, without a Run: Cancel connects by itself.
	if err := h.m.Cancel(bg); err != nil || h.m.State() != Cancelled {
		t.Fatalf("cancel an expired migration: %v (%s)", err, h.m.State())
	}
}

func TestTimerDeadlineSurvivesARestart(t *testing.T) {
	h := newHarness(t, "s0")
	h.ready()
	deadline := h.m.Snapshot().TimerDeadline
	if err := h.m.ExtendTimer(bg); err != nil {
		t.Fatal(err)
	}
	h.restart()
	// The restarted replay starts behind (the fakes' 30 s): the migration may fall
	// back to syncing before its shard catches up, the window kept running.
	if s := h.m.Snapshot(); !s.TimerDeadline.Equal(deadline.Add(24 * time.Hour)) {
		t.Fatalf("after restart: deadline %v, want %v", s.TimerDeadline, deadline.Add(24*time.Hour))
	}
	h.ready()
	if s := h.m.Snapshot(); !s.TimerDeadline.Equal(deadline.Add(24 * time.Hour)) {
		t.Fatalf("ready again after the restart: deadline %v, want %v", s.TimerDeadline, deadline.Add(24*time.Hour))
	}
	// The process is down when the deadline passes: the next start expires it at once.
	h.crash()
	h.clk.Advance(96 * time.Hour)
	h.m = h.newMigration()
	replays := h.fc.replayers("s0")
	h.start(StartOptions{})
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if h.m.State() != Expired || h.fc.replayers("s0") != replays {
		t.Fatalf("state %s, replays %d -> %d: an expired migration must not sync again", h.m.State(), replays, h.fc.replayers("s0"))
	}
}

func TestCancelAtEachPhaseRestoresAndKeepsTheData(t *testing.T) {
	phases := map[string]func(h *harness){
		"starting": func(h *harness) {
			h.fc.prepareGate = make(chan struct{})
			h.start(StartOptions{})
			h.eventually("preparing", func() bool { return h.fc.called("PrepareDestination") == 1 })
		},
		"syncing":      func(h *harness) { h.replaying() },
		"ready":        func(h *harness) { h.ready() },
		"cutting over": func(h *harness) { h.cuttingOver()["s0"].behind(7 * time.Second) },
		"failed": func(h *harness) {
			h.fc.prepareErr = errBoom
			h.start(StartOptions{})
			if err := h.wait(); !errors.Is(err, errBoom) {
				t.Fatalf("Run: %v", err)
			}
		},
		"expired": func(h *harness) {
			h.ready()
			h.clk.Advance(73 * time.Hour)
			h.waitState(Expired)
		},
	}
	for name, reach := range phases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "s0")
			h.fc.shards["s0"].relaxIndex = bsonDoc("name", "email_1")
			reach(h)
			if err := h.m.Cancel(bg); err != nil {
				t.Fatal(err)
			}
			if h.m.State() != Cancelled {
				t.Fatalf("state %s", h.m.State())
			}
			if !h.fc.srcBalancer {
				t.Error("source balancer not restored")
			}
			if !h.fc.dstBalancer {
				t.Error("destination balancer not started")
			}
			if h.fc.wiped || len(h.fc.cleared) > 0 {
				t.Error("cancel removed migrated data")
			}
			if relaxed := h.cp.record().Relaxed; len(h.fc.restored) < len(relaxed) {
				t.Errorf("relaxed %d options, restored %d", len(relaxed), len(h.fc.restored))
			}
			for _, r := range h.fc.shards["s0"].replayers {
				if r.Snapshot().Err == nil && !r.isStopped() {
					select {
					case <-r.done:
					default:
						t.Error("a replay is still running")
					}
				}
			}
			if name == "cutting over" {
				s := h.m.Snapshot()
				if s.OptimeGap != 7*time.Second || h.cp.record().Summary.OptimeGap != 7*time.Second || !strings.Contains(s.Reason, "staging copy 0:07 behind") {
					t.Fatalf("staging gap: snapshot %v, summary %v, reason %q", s.OptimeGap, h.cp.record().Summary.OptimeGap, s.Reason)
				}
			}
		})
	}
}

// DESIGN section 1: Cancel is available at any time, a finalize stuck on a
// verification mismatch included; once the migration ended it is refused.
func TestCancelWhileFinalizingRestoresAndIsRefusedOnceEnded(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.verifyRes = &Verification{Ranges: 1, Mismatches: []Mismatch{{Namespace: "shop.orders", Range: "[MinKey, MaxKey)"}}}
	h.cuttingOver()
	if err := h.m.Done(bg, false); !errors.Is(err, ErrVerificationMismatch) {
		t.Fatalf("Done: %v", err)
	}
	if h.m.State() != Finalizing {
		t.Fatalf("state %s", h.m.State())
	}
	if err := h.m.Cancel(bg); err != nil {
		t.Fatalf("cancel while finalizing: %v", err)
	}
	s := h.m.Snapshot()
	if s.State != Cancelled || !strings.Contains(s.Reason, "while finalizing") {
		t.Fatalf("state %s reason %q", s.State, s.Reason)
	}
	if !h.fc.srcBalancer || !h.fc.dstBalancer || h.fc.wiped || len(h.fc.cleared) > 0 {
		t.Fatalf("after cancel: source balancer %v, destination balancer %v, wiped %v, cleared %v", h.fc.srcBalancer, h.fc.dstBalancer, h.fc.wiped, h.fc.cleared)
	}
	var re *RefusedError
	if err := h.m.Cancel(bg); !errors.As(err, &re) || re.State != Cancelled {
		t.Fatalf("cancel when cancelled: %v", err)
	}
	if err := h.m.Done(bg, true); !errors.As(err, &re) || re.State != Cancelled {
		t.Fatalf("I'm done when cancelled: %v", err)
	}
}

func TestVerificationMismatchBlocksDoneUnlessOverridden(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.verifyRes = &Verification{Namespaces: 1, Ranges: 3, Matched: 2, Mismatches: []Mismatch{{Namespace: "shop.orders", Range: "[{k: 100}, {k: 200})", SourceCount: 10, DestCount: 10, SampleIDs: []string{"7"}}}}
	h.cuttingOver()
	err := h.m.Done(bg, false)
	var me *MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "1 of 3 ranges") {
		t.Fatalf("Done with a mismatch: %v", err)
	}
	if s := h.m.Snapshot(); s.State != Finalizing || s.Verification.OK() {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	verifications := h.fc.called("Verify")
	if err := h.m.Done(bg, true); err != nil {
		t.Fatal(err)
	}
	s := h.m.Snapshot()
	if s.State != Done || !s.Verification.Overridden {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	if h.fc.called("Verify") != verifications {
		t.Fatal("the override verified again instead of accepting the result it overrides")
	}
	if !slices.ContainsFunc(s.History, func(e Event) bool { return strings.Contains(e.Reason, "override") }) {
		t.Fatalf("the override is not in the history: %v", h.events())
	}
	if !h.cp.record().Verification.Overridden {
		t.Fatal("the override is not saved")
	}
}

// An index the destination does not hold as the source does (a relaxed unique
// index never restored) stops the finalize as a differing range does: every
// document can match while the destination would accept a duplicate the source
// refuses.
func TestIndexDifferencesBlockDoneUnlessOverridden(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.indexDiffs = []IndexDifference{{Namespace: "shop.orders", Index: "sku_1", What: "unique on the source, not on the destination"}}
	h.cuttingOver()
	err := h.m.Done(bg, false)
	var me *MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "1 index difference (shop.orders index sku_1: unique on the source, not on the destination)") {
		t.Fatalf("Done with an index difference: %v", err)
	}
	if s := h.m.Snapshot(); s.State != Finalizing || s.Verification.OK() || len(s.Verification.Indexes) != 1 {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	if len(h.cp.record().Verification.Indexes) != 1 {
		t.Fatal("the index difference is not saved")
	}
	if err := h.m.Done(bg, true); err != nil {
		t.Fatal(err)
	}
	if s := h.m.Snapshot(); s.State != Done || !s.Verification.Overridden {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
}

// finalizeWithIndexDifference runs I'm done on a destination that differs from the
// source by d (its Source the spec named name), and checks the migration ends done
// and verified.
func finalizeWithIndexDifference(t *testing.T, d IndexDifference, name string) *harness {
	t.Helper()
	h := newHarness(t, "s0")
	spec, err := bson.Marshal(bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "name", Value: name}, {Key: "unique", Value: true}})
	if err != nil {
		t.Fatal(err)
	}
	d.Index, d.Source = name, spec
	h.fc.indexDiffs = []IndexDifference{d}
	h.cuttingOver()
	if err := h.m.Done(bg, false); err != nil {
		t.Fatalf("Done: %v", err)
	}
	if s := h.m.Snapshot(); s.State != Done || !s.Verification.OK() {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	return h
}

// A relaxed index the recorded originals do not reach (its collection renamed since
// it was built) is restored from the source's specification before the
// verification, which then passes.
func TestFinalizeRestoresRelaxedIndexesNoRecordReaches(t *testing.T) {
	h := finalizeWithIndexDifference(t, IndexDifference{Namespace: "app.final", What: "unique on the source, not on the destination", Relaxed: true}, "v_1")
	if !slices.ContainsFunc(h.fc.restored, func(r Relaxed) bool {
		n, _ := r.Original.Lookup("name").StringValueOK()
		return r.NS == "app.final" && n == "v_1"
	}) {
		t.Fatalf("restored %+v: want app.final's v_1 from the source's specification", h.fc.restored)
	}
}

// An index gone from the destination (a kill between the drop and the build of a
// restore that rebuilds it: fault scenario 1 found it) is built again from the
// source's specification before the verification, which then passes.
func TestFinalizeBuildsAnIndexTheDestinationLost(t *testing.T) {
	h := finalizeWithIndexDifference(t, IndexDifference{Namespace: "analytics.sessions", What: "missing on the destination", Missing: true}, "token_1")
	if h.fc.called("BuildIndex") != 1 {
		t.Fatalf("BuildIndex called %d times, want once", h.fc.called("BuildIndex"))
	}
}

func TestFinalizeResumesAfterACrash(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.verifyErr = errBoom
	h.cuttingOver()
	if err := h.m.Done(bg, false); !errors.Is(err, errBoom) {
		t.Fatalf("Done: %v", err)
	}
	if h.m.State() != Finalizing {
		t.Fatalf("state %s", h.m.State())
	}
	restores := len(h.fc.restored)
	h.fc.mu.Lock()
	h.fc.verifyErr = nil
	h.fc.mu.Unlock()
	h.restart()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if h.m.State() != Done {
		t.Fatalf("state %s after the resumed finalize", h.m.State())
	}
	if h.fc.replayers("s0") != 1 {
		t.Fatal("a resumed finalize started tailing again")
	}
	if len(h.fc.restored) != 2*restores {
		t.Fatalf("restores %d then %d: the resumed finalize must run every step again (they are idempotent)", restores, len(h.fc.restored))
	}
}

func TestRestartShardCopiesItAgainWhileOthersKeepSyncing(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	rs := h.ready()
	gap := &replay.GapError{Shard: "s1", Resume: primitive.Timestamp{T: 1_800_000_000}}
	rs["s1"].fail <- gap
	h.waitState(Syncing)
	s := h.m.Snapshot()
	if !strings.HasPrefix(s.Reason, "shard s1 failed: ") || !strings.Contains(s.Reason, "no longer reaches back") || !strings.Contains(s.Shards[1].Error, "restart this shard") {
		t.Fatalf("state %s reason %q error %q", s.State, s.Reason, s.Shards[1].Error)
	}
	if h.fc.called("ReleaseDDL s1") == 0 {
		t.Fatal("a failed shard still holds the other shards' DDL")
	}
	h.fc.mu.Lock()
	h.fc.shards["s1"].newest = primitive.Timestamp{T: 1_900_000_000, I: 3}
	h.fc.mu.Unlock()
	if err := h.m.RestartShard(bg, "s1"); err != nil {
		t.Fatal(err)
	}
	h.eventually("s1 replaying again", func() bool { return h.fc.replayers("s1") == 2 && h.phase("s1") == CatchingUp })
	if !slices.Equal(h.fc.cleared, []string{"s1"}) {
		t.Fatalf("cleared %v, want s1 only", h.fc.cleared)
	}
	if cp := h.cp.shard("s1"); cp.T0.T != 1_900_000_000 {
		t.Fatalf("new T0 %v", cp.T0)
	}
	if copiers := h.fc.copiers("s1"); len(copiers) != 2 || copiers[1].saved != nil {
		t.Fatal("the restarted shard's copy did not start from scratch")
	}
	if h.fc.replayers("s0") != 1 || h.fc.replayer("s0").isStopped() {
		t.Fatal("the other shard's sync was disturbed")
	}
	if s := h.m.Snapshot(); s.State != Syncing || !strings.Contains(s.Reason, "shard s1") {
		t.Fatalf("state %s reason %q while s1 catches up after its restart", s.State, s.Reason)
	}
	var re *RefusedError
	if err := h.m.RestartShard(bg, "nope"); !errors.Is(err, ErrUnknownShard) {
		t.Fatalf("restart an unknown shard: %v", err)
	}
	h.fc.replayer("s1").behind(0)
	h.waitState(Ready)
	if err := h.m.StartCutover(bg); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
	if err := h.m.RestartShard(bg, "s0"); !errors.As(err, &re) || re.State != Done {
		t.Fatalf("restart when done: %v", err)
	}
}

func TestResumeContinuesEveryShardFromItsCheckpoint(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.shards["s0"].copyGate = make(chan struct{}) // s0 stops half way through its copy
	h.start(StartOptions{})
	h.eventually("s1 replaying", func() bool { return h.fc.replayer("s1") != nil })
	h.eventually("s0 half copied", func() bool { return h.cp.shard("s0").Copied["shop.orders"].Docs == 50 })
	r1 := h.fc.replayer("s1")
	r1.behind(12 * time.Second)
	r1.checkpoint(t)
	applied := r1.Snapshot().Applied
	h.fc.shards["s0"].copyGate = nil
	h.restart()
	h.eventually("both replaying", func() bool { return h.fc.replayers("s0") == 1 && h.fc.replayers("s1") == 2 })
	if got := h.fc.copiers("s0"); len(got) != 2 || got[1].saved["shop.orders"].Docs != 50 {
		t.Fatalf("s0's copy resumed from %v, want its saved progress", got[len(got)-1].saved)
	}
	if got := h.fc.replayer("s1").resume; got != applied {
		t.Fatalf("s1 replay resumed after %v, want its checkpoint %v", got, applied)
	}
	if len(h.fc.copiers("s1")) != 1 {
		t.Fatal("s1, past its copy, was copied again")
	}
	if h.fc.called("ClearShard s0") != 0 || h.fc.called("ClearShard s1") != 0 {
		t.Fatal("a resume cleared a shard that had checkpoints")
	}
}

// A shard that had not recorded its T0 when the process stopped may have left part
// of a copy behind (the copy starts right after): it is cleared before it starts.
func TestPendingShardIsClearedOnResume(t *testing.T) {
	h := newHarness(t, "s0")
	h.cp.failShard = errBoom // nothing of the shard can be saved: it stays pending
	h.start(StartOptions{})
	h.eventually("s0 failed", func() bool { return h.phase("s0") == ShardFailed })
	h.cp.mu.Lock()
	h.cp.failShard = nil
	h.cp.mu.Unlock()
	h.restart()
	h.replaying()
	if h.fc.called("ClearShard s0") != 1 {
		t.Fatalf("calls %v", h.fc.calls)
	}
}

func TestCopyFailureFailsOnlyThatShard(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.shards["s0"].copyErr = errBoom
	h.fc.shards["s0"].copyGate = make(chan struct{})
	close(h.fc.shards["s0"].copyGate)
	h.start(StartOptions{})
	h.eventually("s0 failed", func() bool { return h.phase("s0") == ShardFailed })
	h.eventually("s1 replaying", func() bool { return h.fc.replayer("s1") != nil })
	h.fc.replayer("s1").behind(0)
	h.eventually("s1 synced", func() bool { return h.phase("s1") == Synced })
	if st := h.m.State(); st != Syncing {
		t.Fatalf("state %s with a failed shard, want syncing", st)
	}
	if cp := h.cp.shard("s0"); cp.Phase != ShardFailed || !strings.Contains(cp.Error, "boom") {
		t.Fatalf("saved checkpoint %+v", cp)
	}
}

func TestStartFailureFailsTheMigrationAndRunRetriesIt(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.prepareErr = errBoom
	h.start(StartOptions{})
	if err := h.wait(); !errors.Is(err, errBoom) {
		t.Fatalf("Run: %v", err)
	}
	if s := h.m.Snapshot(); s.State != Failed || s.Reason != "boom" {
		t.Fatalf("state %s reason %q", s.State, s.Reason)
	}
	h.fc.prepareErr = nil
	h.m = h.newMigration()
	h.start(StartOptions{})
	h.ready()
	if h.fc.called("Validate") != 1 {
		t.Fatal("the retry validated again: the destination holds the migration's own data")
	}
	if !*h.cp.record().BalancerWasOn {
		t.Fatal("the retry overwrote the balancer's original state")
	}
}

func TestSnapshotCountsAndMasksThePassword(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.start(StartOptions{})
	h.replaying()
	s := h.m.Snapshot()
	if s.Overall.DocsCopied != 200 || s.Overall.DocsTotal != 200 || len(s.Shards) != 2 {
		t.Fatalf("overall %+v", s.Overall)
	}
	if s.Overall.Lag != 30*time.Second || s.OptimeGap != 30*time.Second {
		t.Fatalf("lag %v gap %v", s.Overall.Lag, s.OptimeGap)
	}
	if strings.Contains(s.Name+s.DestinationURI, "s3cret") || s.DestinationURI != "mongodb://app@dst-mongos:27017/?tls=true" {
		t.Fatalf("name %q destination %q", s.Name, s.DestinationURI)
	}
	if len(s.SourceUsers) != 1 || s.SourceUsers[0].Roles[0] != "readWrite@shop" {
		t.Fatalf("users %+v", s.SourceUsers)
	}
	if s.SourceReads != "nearest" {
		t.Fatalf("source reads %q, want the default nearest", s.SourceReads)
	}
}

func TestActionsNeedARunningMigration(t *testing.T) {
	h := newHarness(t, "s0")
	h.start(StartOptions{})
	h.cuttingOver()
	h.crash()
	if err := h.m.Done(bg, false); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Done without Run: %v", err)
	}
	if err := h.m.RestartShard(bg, "s0"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("RestartShard without Run: %v", err)
	}
}

func TestVerificationOnDemandWhileReady(t *testing.T) {
	h := newHarness(t, "s0")
	h.replaying()
	var re *RefusedError
	if _, err := h.m.Verify(bg); !errors.As(err, &re) || re.State != Syncing {
		t.Fatalf("verify while syncing: %v", err)
	}
	h.ready()
	v, err := h.m.Verify(bg)
	if err != nil || !v.OK() {
		t.Fatalf("verify while ready: %+v %v", v, err)
	}
	if s := h.m.Snapshot(); s.Verification == nil || !s.Verification.At.Equal(h.clk.Now()) || s.State != Ready {
		t.Fatalf("snapshot after verify: %+v", s.Verification)
	}
	if h.cp.record().Verification == nil {
		t.Fatal("the verification is not saved")
	}
	// I'm done does not take an earlier verification for its own.
	verifications := h.fc.called("Verify")
	if err := h.m.StartCutover(bg); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Done(bg, true); err != nil {
		t.Fatal(err)
	}
	if h.fc.called("Verify") != verifications+1 {
		t.Fatal("I'm done reused the verification made while ready")
	}
}

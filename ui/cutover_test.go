package ui

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

func cuttingOver(gap time.Duration) engine.Snapshot {
	s := ready()
	s.State = engine.CuttingOver
	s.OptimeGap = gap
	return s
}

func TestImDoneIsEnabledOnlyAtGapZero(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(7 * time.Second))
	h.attach(m)
	h.mustShow("0:07")
	h.mustShow("The destination is 0:07 behind the source.")
	h.mustShow("Available at optime gap 0:00")
	if !h.button("I'm done").Disabled() {
		t.Fatal("I'm done enabled at gap 0:07")
	}
	for _, c := range []struct {
		gap     time.Duration
		shown   string
		enabled bool
	}{
		{time.Second, "0:01", false},
		{999 * time.Millisecond, "0:00", true},
		{0, "0:00", true},
		{2*time.Minute + 5*time.Second, "2:05", false},
	} {
		m.snap.OptimeGap = c.gap
		h.tick()
		h.mustShow(c.shown)
		if got := !h.button("I'm done").Disabled(); got != c.enabled {
			t.Fatalf("gap %v: I'm done enabled %v, want %v", c.gap, got, c.enabled)
		}
	}
}

// finish presses I'm done and confirms it.
func (h *harness) finish() {
	h.t.Helper()
	h.tap("I'm done")
	h.tap("Finish the cutover")
}

// A shard restarted during the cutover has no lag until it replays again: the gap
// is not known, shows as —, never as 0:00, and I'm done waits for it.
func TestAnUnknownGapIsNotZero(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := cuttingOver(0)
	s.OptimeGapKnown = false
	s.Shards[1].Phase, s.Shards[1].LagKnown, s.Shards[1].Lag = engine.Copying, false, 0
	m := newFakeMigration(s)
	h.attach(m)
	if got := h.a.cur.(*cutoverScreen).gap.Text; got != "—" {
		t.Fatalf("the gap reads %q while a shard copies, want —", got)
	}
	// The shard that keeps the gap unknown is named, rather than writes blamed.
	h.mustShow("Shard rs1 is copying its data again: the gap cannot close until it has caught up. Writes to the source are not the cause.")
	if !h.button("I'm done").Disabled() {
		t.Fatal("I'm done enabled while the gap is not known")
	}
	m.snap.OptimeGapKnown = true
	m.snap.Shards[1].Phase, m.snap.Shards[1].LagKnown = engine.Synced, true
	h.tick()
	if h.button("I'm done").Disabled() {
		t.Fatal("I'm done still disabled at a known gap of 0:00")
	}
}

func TestImDoneFinishesAndShowsTheSummary(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	h.attach(m)
	h.finish()
	if !slices.Equal(m.calls, []string{"Done false"}) {
		t.Fatalf("calls %v, want Done without override", m.calls)
	}
	h.mustShow("Migration complete")
	if h.a.side.labels[stepSummary].Text != "6  Done" {
		t.Fatalf("last step reads %q", h.a.side.labels[stepSummary].Text)
	}
}

func TestCopyPutsTheConnectionStringOnTheClipboard(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(cuttingOver(7 * time.Second)))
	h.mustShow("mongodb://atlas-eu:27017/?tls=true")
	h.tap("Copy")
	if got := h.a.fa.Clipboard().Content(); got != "mongodb://atlas-eu:27017/?tls=true" {
		t.Fatalf("clipboard %q", got)
	}
}

func TestCutoverCancelExplainsTheStagingCopyAndItsGap(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(7 * time.Second))
	h.attach(m)
	h.mustShow("Making a staging copy? Note the optime gap, now 0:07")
	h.tap("Cancel (keep a staging copy)")
	h.mustShow("Syncing stops now, with the destination 0:07 behind the source")
	h.mustShow("The data migrated so far stays on the destination")
	h.tap("Keep cutting over")
	if len(m.calls) != 0 {
		t.Fatalf("Keep cutting over called %v", m.calls)
	}
	h.tap("Cancel (keep a staging copy)")
	h.tap("Cancel migration")
	if !slices.Equal(m.calls, []string{"Cancel"}) {
		t.Fatalf("calls %v, want Cancel", m.calls)
	}
	h.mustShow("Migration cancelled")
	h.mustShow("with the destination 0:07 behind the source (optime gap at cancel)")
}

func TestVerificationMismatchNeedsAnExplicitOverride(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	m.snap.Verification = &engine.Verification{Namespaces: 12, Ranges: 240, Mismatches: []engine.Mismatch{
		{Namespace: "shop.orders", Range: "{customer: 1042} to {customer: 2210}", SourceCount: 1204, DestCount: 1198, SampleIDs: []string{"1"}},
		{Namespace: "crm.notes", Range: "{_id: MinKey} to {_id: 500}", SourceCount: 500, DestCount: 499},
	}}
	m.errs["Done"] = fmt.Errorf("%w: 2 of 240 ranges differ", ErrVerificationMismatch)
	h.attach(m)
	h.finish()
	h.mustShow("The destination differs from the source")
	h.mustShow("shop.orders {customer: 1042} to {customer: 2210}: source 1,204 documents, destination 1,198 (for example _id 1)")
	h.mustShow("Shardlift found no write to the source after the sync stopped")
	if !h.button("Finish anyway").Disabled() {
		t.Fatal("Finish anyway is enabled before the mismatch was accepted")
	}
	h.tap("Don't finish")
	if _, ok := h.a.cur.(*cutoverScreen); !ok || !slices.Equal(m.calls, []string{"Done false"}) {
		t.Fatalf("Don't finish: screen %T, calls %v", h.a.cur, m.calls)
	}
	h.finish()
	h.check("I accept that 2 ranges differ").SetChecked(true)
	h.tap("Finish anyway")
	if !slices.Equal(m.calls, []string{"Done false", "Done false", "Done true"}) {
		t.Fatalf("calls %v, want the override last", m.calls)
	}
	h.mustShow("Migration complete")
}

// Writes the source took after the sync stopped are listed with the ranges, and
// the override names what it accepts.
func TestLateWritesAreListedBeforeAnOverride(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	m.snap.Verification = &engine.Verification{Namespaces: 12, Ranges: 240, Matched: 240, Late: []engine.LateWrites{
		{Shard: "shard02", Writes: 7, First: time.Date(2026, 12, 6, 17, 4, 5, 0, time.UTC), Namespaces: []string{"shop.orders"}},
	}}
	m.errs["Done"] = fmt.Errorf("%w: shard shard02 took 7 writes after the sync stopped", ErrVerificationMismatch)
	h.attach(m)
	h.finish()
	h.mustShow("The destination differs from the source")
	h.mustShow("shard shard02 took 7 writes after the sync stopped (the first at 17:04:05 UTC) to shop.orders: the destination lacks them.")
	h.mustShow("these writes cannot reach the destination any more")
	h.check("I accept that the destination lacks what is listed").SetChecked(true)
	h.tap("Finish anyway")
	if !slices.Equal(m.calls, []string{"Done false", "Done true"}) {
		t.Fatalf("calls %v, want the override last", m.calls)
	}
}

func TestFinalizingDisablesTheCutoverButtons(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	h.attach(m)
	m.snap.State = engine.Finalizing
	m.snap.Reason = "verifying: 3 of 12 namespaces compared"
	h.tick()
	h.mustShow("Finalizing the destination")
	h.mustShow("Now: verifying: 3 of 12 namespaces compared")
	if !h.button("I'm done").Disabled() || !h.button("Cancel (keep a staging copy)").Disabled() {
		t.Fatal("cutover buttons enabled while finalizing")
	}
}

// TestAFinalizeThatStoppedCanBeResumedWithImDone: the engine keeps a migration
// finalizing when a step fails and resumes it on the next I'm done; the buttons must
// not stay disabled then.
func TestAFinalizeThatStoppedCanBeResumedWithImDone(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	h.attach(m)
	m.errs["Done"] = errors.New("restore the source balancer: connection refused")
	h.finish()
	m.snap.State = engine.Finalizing
	m.snap.Reason = "restore the source balancer: connection refused"
	h.tick()
	h.mustShow("restore the source balancer: connection refused")
	if h.button("I'm done").Disabled() {
		t.Fatal("I'm done stays disabled after the finalize stopped on an error")
	}
	if h.button("Cancel (keep a staging copy)").Disabled() {
		t.Fatal("Cancel stays disabled after the finalize stopped on an error")
	}
	delete(m.errs, "Done")
	h.tap("I'm done")
	if !slices.Equal(m.calls, []string{"Done false", "Done false"}) {
		t.Fatalf("calls %v, want I'm done twice", m.calls)
	}
	h.mustShow("Migration complete")
}

func TestReopeningOnAFinalizeOffersImDoneToResumeIt(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	m.snap.State = engine.Finalizing
	h.attach(m)
	if h.button("I'm done").Disabled() {
		t.Fatal("a window opened on a finalize started earlier cannot resume it")
	}
	h.mustShow("If finalizing stopped, press I'm done to try again")
}

// TestTheCutoverWindowKeepsRunningDuringTheCutover: the engine expires a migration
// cutting over too and lets the window be extended then; the screen shows both.
func TestTheCutoverWindowKeepsRunningDuringTheCutover(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(7 * time.Second))
	h.attach(m)
	h.mustShow("Cutover window: 3 d 0 h 0 min left (until ")
	h.tap("Extend time (+24 h)")
	if !slices.Equal(m.calls, []string{"ExtendTimer"}) {
		t.Fatalf("calls %v, want ExtendTimer", m.calls)
	}
	h.mustShow("The cutover window was extended by 24 hours.")
	h.mustShow("Cutover window: 4 d 0 h 0 min left")
	h.now = m.snap.TimerDeadline.Add(-2 * time.Hour)
	h.tick()
	if l := h.a.cur.(*cutoverScreen).left; l.Importance != widget.WarningImportance {
		t.Fatal("the last hours of the cutover window do not stand out")
	}
}

// cutoverWithAFailedShard is a cutover whose shard rs2 failed: it stopped at
// 10:02:11 and its gap keeps growing.
func cutoverWithAFailedShard() engine.Snapshot {
	s := cuttingOver(5*time.Minute + 3*time.Second)
	s.GapShard = "rs2"
	rs2 := &s.Shards[2]
	rs2.Phase = engine.ShardFailed
	rs2.Error = "the oplog of shard rs2 no longer reaches back to 10:02:11 (its checkpoint): restart this shard"
	rs2.Gap = 5*time.Minute + 3*time.Second
	rs2.AppliedUpTo = time.Date(2026, 11, 20, 10, 2, 11, 0, time.Local)
	s.Reason = "the cutover cannot finish: shard rs2 failed: " + rs2.Error
	return s
}

func TestCutoverNamesTheFailedShardAndOffersItsRestart(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cutoverWithAFailedShard())
	h.attach(m)
	h.mustShow("Shard rs2 failed and stopped at 10:02:11 (source time); it is 5:03 behind and falling further: the oplog of shard rs2 no longer reaches back")
	h.mustShow("Shard rs2 failed: the gap cannot close until you restart it and it has caught up. Writes to the source are not the cause.")
	h.mustNotShow("something still writes to the source")
	h.mustShow("Not available: shard rs2 is not in sync")
	if !h.button("I'm done").Disabled() {
		t.Fatal("I'm done is enabled while shard rs2 has failed")
	}
	h.mustShow("Making a staging copy? Not now: while shard rs2 is not in sync")
	// The gap keeps growing: the screen follows.
	m.snap.OptimeGap, m.snap.Shards[2].Gap = 6*time.Minute, 6*time.Minute
	h.tick()
	h.mustShow("it is 6:00 behind and falling further")
	h.tap("Restart rs2")
	h.mustShow("Shard rs2 starts its sync again from the beginning")
	h.tap("Restart rs2") // the dialog's button
	if !slices.Equal(m.calls, []string{"RestartShard rs2"}) {
		t.Fatalf("calls %v, want RestartShard rs2", m.calls)
	}
	// Copying again: named, no Restart, I'm done still disabled.
	m.snap.Shards[2].Phase, m.snap.Shards[2].Error = engine.Copying, ""
	h.tick()
	h.mustShow("Shard rs2 is copying again: the cutover can finish once it has copied its data and caught up.")
	if h.findButton("Restart rs2") != nil || !h.button("I'm done").Disabled() {
		t.Fatal("a shard copying again offers Restart, or I'm done is enabled")
	}
	// A shard that is only behind is named with its gap.
	m.snap = cuttingOver(41 * time.Second)
	m.snap.GapShard = "rs1"
	m.snap.Shards[1].Phase, m.snap.Shards[1].Gap = engine.CatchingUp, 41*time.Second
	h.tick()
	h.mustShow("Shard rs1 is 0:41 behind the source.")
	h.mustShow("If the gap does not shrink, something still writes to the source. Shard rs1 is furthest behind.")
}

func TestCutoverCancelWithAFailedShardSaysItIsNotAConsistentCopy(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(cutoverWithAFailedShard()))
	h.tap("Cancel (keep a staging copy)")
	h.mustShow("Syncing stops now, but shard rs2 is not in sync: the destination is not a consistent staging copy. Shard rs2 stopped at 10:02:11 (source time) when it failed; its entries after that are lost.")
	h.mustNotShow("behind the source: as a staging copy")
}

// The users and roles to re-create are listed at the cutover, before the
// applications move to the destination.
func TestCutoverListsTheUsersToRecreateBeforeTheApplicationsMove(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(cuttingOver(0)))
	h.mustShow("Re-create the source's users and roles on the destination: Shardlift does not migrate them")
	h.mustShow("•  user app@admin: readWrite@shop, read@crm")
	h.mustShow("•  role reporting@admin: read@shop")
	texts := h.texts()
	users := slices.Index(texts, "•  user app@admin: readWrite@shop, read@crm")
	point := slices.IndexFunc(texts, func(s string) bool { return strings.HasPrefix(s, "Point your applications at the destination") })
	if users < 0 || point < 0 || users > point {
		t.Fatalf("the users (%d) come after pointing the applications at the destination (%d)", users, point)
	}
	h.tap("Copy as mongosh commands")
	if js := h.a.fa.Clipboard().Content(); !strings.Contains(js, `createUser({user: "app"`) {
		t.Fatalf("clipboard %q", js)
	}
}

func TestImDoneAsksFirstAndSaysWhatHappens(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	h.attach(m)
	h.tap("I'm done")
	for _, want := range []string{"Finish the cutover?", "stops syncing", "Restores the index and collection options relaxed for the sync",
		"Puts the source balancer back as it was before the migration", "Verifies every range of the destination against the source",
		"Writes sent to the source after this are not migrated"} {
		h.mustShow(want)
	}
	h.tap("Keep cutting over")
	if len(m.calls) != 0 || h.dialogs() != 0 {
		t.Fatalf("Keep cutting over: calls %v, %d dialogs", m.calls, h.dialogs())
	}
	h.finish()
	if !slices.Equal(m.calls, []string{"Done false"}) {
		t.Fatalf("calls %v", m.calls)
	}
}

// The cutover shows whether the source still takes writes: the age of its last
// write, which grows once the applications stopped.
func TestCutoverShowsHowLongAgoTheSourceWasWritten(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := cuttingOver(0)
	s.LastSourceWrite, s.SourceWriteAge = time.Date(2026, 11, 20, 10, 0, 7, 0, time.Local), 4*time.Second
	m := newFakeMigration(s)
	h.attach(m)
	h.mustShow("Last write to the source: 4 s ago (10:00:07). The source still takes writes: stop every application that writes to it.")
	if l := h.a.cur.(*cutoverScreen).writes; l.Importance != widget.WarningImportance {
		t.Fatal("a recent write to the source does not stand out")
	}
	m.snap.SourceWriteAge = 2*time.Minute + 5*time.Second
	h.tick()
	h.mustShow("Last write to the source: 2 min 5 s ago (10:00:07).")
	h.mustNotShow("still takes writes")
	m.snap.LastSourceWrite, m.snap.SourceWriteAge = time.Time{}, 0
	h.tick()
	h.mustShow("Last write to the source: none read since the sync (re)started.")
}

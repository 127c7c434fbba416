package ui

import (
	"errors"
	"fmt"
	"slices"
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
	h.mustShow("the optime gap is known, and I'm done possible, once every shard replays")
	if !h.button("I'm done").Disabled() {
		t.Fatal("I'm done enabled while the gap is not known")
	}
	m.snap.OptimeGapKnown = true
	h.tick()
	if h.button("I'm done").Disabled() {
		t.Fatal("I'm done still disabled at a known gap of 0:00")
	}
}

func TestImDoneFinishesAndShowsTheSummary(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(cuttingOver(0))
	h.attach(m)
	h.tap("I'm done")
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
	h.tap("I'm done")
	h.mustShow("The destination differs from the source")
	h.mustShow("shop.orders {customer: 1042} to {customer: 2210}: source 1,204 documents, destination 1,198 (for example _id 1)")
	if !h.button("Finish anyway").Disabled() {
		t.Fatal("Finish anyway is enabled before the mismatch was accepted")
	}
	h.tap("Don't finish")
	if _, ok := h.a.cur.(*cutoverScreen); !ok || !slices.Equal(m.calls, []string{"Done false"}) {
		t.Fatalf("Don't finish: screen %T, calls %v", h.a.cur, m.calls)
	}
	h.tap("I'm done")
	h.check("I accept that 2 ranges differ").SetChecked(true)
	h.tap("Finish anyway")
	if !slices.Equal(m.calls, []string{"Done false", "Done false", "Done true"}) {
		t.Fatalf("calls %v, want the override last", m.calls)
	}
	h.mustShow("Migration complete")
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
	h.tap("I'm done")
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

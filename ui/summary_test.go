package ui

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/shardlift/shardlift/engine"
)

func finished(state engine.State) engine.Snapshot {
	s := ready()
	s.State = state
	s.History = append(s.History, engine.Event{At: s.StartedAt.Add(5*time.Hour + 41*time.Minute), From: "finalizing", To: string(state)})
	return s
}

func TestDoneSummaryHasCountsDurationVerificationAndUsers(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := finished(engine.Done)
	s.Verification = &engine.Verification{Namespaces: 212, Ranges: 1024, Matched: 1024, Documents: 1_400_000_000}
	h.attach(newFakeMigration(s))
	for _, want := range []string{
		"Migration complete",
		"prod-eu:27017 -> atlas-eu:27017 was migrated in 5 h 41 min.",
		"Copied 2 M documents (596 GiB) from 3 shards.",
		"Verified: 212 namespaces, 1024 ranges, 1.4 B documents: every range matches.",
		"user app@admin: readWrite@shop, read@crm",
		"role reporting@admin: read@shop",
		"Export diagnostics…",
	} {
		h.mustShow(want)
	}
	h.tap("Copy as mongosh commands")
	js := h.a.fa.Clipboard().Content()
	if !strings.Contains(js, `db.getSiblingDB("admin").createUser({user: "app", pwd: passwordPrompt(), roles: [{role: "readWrite", db: "shop"}, {role: "read", db: "crm"}]})`) {
		t.Fatalf("mongosh commands:\n%s", js)
	}
}

// A finalize that stopped (a verification that found a range differing) and ran
// again restores the relaxed options and the balancers again, and the history says
// so twice; the summary says what was put back once.
func TestASecondFinalizeDoesNotRepeatWhatTheSummarySaysWasRestored(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := finished(engine.Done)
	s.Verification = &engine.Verification{Namespaces: 5, Ranges: 10, Matched: 10, Documents: 5116}
	end := s.History[len(s.History)-1]
	s.History = s.History[:len(s.History)-1]
	restoredText := "restored 4 index and collection options relaxed for the sync (unique, TTL): 0 unique indexes made unique now, 2 already restored while syncing"
	for range 2 {
		for _, r := range []string{restoredText, "source balancer started again, as it was on before the migration", "destination balancer started"} {
			s.History = append(s.History, engine.Event{At: end.At, From: "finalizing", To: "finalizing", Reason: r})
		}
	}
	s.History = append(s.History, end)
	h.attach(newFakeMigration(s))
	for _, want := range []string{"Restored 4 index and collection options", "Source balancer started again", "Destination balancer started."} {
		if n := strings.Count(h.textDump(), `"`+want); n != 1 {
			t.Errorf("the summary says %q %d times, want once:\n%s", want, n, h.textDump())
		}
	}
}

func TestOverriddenVerificationIsReportedAsSuch(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := finished(engine.Done)
	s.Verification = &engine.Verification{Ranges: 240, Mismatches: make([]engine.Mismatch, 2), Overridden: true}
	h.attach(newFakeMigration(s))
	h.mustShow("Finished with an override: 2 of 240 ranges differ")
}

func TestCancelledSummaryShowsTheGapAtCancel(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := finished(engine.Cancelled)
	s.OptimeGap = 41 * time.Second
	h.attach(newFakeMigration(s))
	h.mustShow("Migration cancelled")
	h.mustShow("was cancelled after 5 h 41 min, with the destination 0:41 behind the source (optime gap at cancel).")
	h.mustShow("Use it as a staging copy")
	if h.a.side.labels[stepSummary].Text != "6  Cancelled" {
		t.Fatalf("last step reads %q", h.a.side.labels[stepSummary].Text)
	}
}

// expiredWith is an expired migration as the engine leaves it: the history notes
// what expire restored, the reason what it could not.
func expiredWith(problem string, notes ...string) engine.Snapshot {
	s := finished(engine.Expired)
	s.Reason = "the cutover window closed at 2026-11-23T10:00:00Z: syncing stopped with the destination 0:03 behind; the migrated data stays on the destination"
	if problem != "" {
		s.Reason += "; " + problem + " (cancel the migration to try again)"
	}
	at := s.History[len(s.History)-1].At
	for _, n := range notes {
		s.History = append(s.History[:len(s.History)-1], engine.Event{At: at, From: "ready", To: "ready", Reason: n}, s.History[len(s.History)-1])
	}
	return s
}

// TestExpiredSummarySaysTheBalancerIsAlreadyRestored: the engine restores the source
// balancer (as it was), the destination balancer and the relaxed index options when
// the window closes; the screen must not ask the user to cancel for that.
func TestExpiredSummarySaysTheBalancerIsAlreadyRestored(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(expiredWith("",
		"restored 2 index and collection options relaxed for the sync (unique, TTL)",
		"source balancer left off, as it was before the migration",
		"destination balancer started")))
	h.mustShow("Cutover window expired")
	h.mustShow("The cutover window closed on Mon 23 Nov")
	h.mustShow("Source balancer left off, as it was before the migration.")
	h.mustShow("Destination balancer started.")
	h.mustShow("Restored 2 index and collection options relaxed for the sync (unique, TTL).")
	h.mustNotShow("turn the source balancer back on")
	h.mustNotShow("Still to do")
	if h.findButton("Cancel migration") != nil {
		t.Fatal("Cancel is offered although everything was restored when the window closed")
	}
}

func TestExpiredSummaryOffersCancelToRetryAFailedRestore(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	problem := "restore the source balancer: connection refused (start it by hand with sh.startBalancer() on a source mongos)"
	m := newFakeMigration(expiredWith(problem, "destination balancer started"))
	h.attach(m)
	h.mustShow("Still to do: " + problem + ". Cancel the migration to try again.")
	h.tap("Cancel migration")
	h.tap("Not now")
	if len(m.calls) != 0 {
		t.Fatalf("Not now called %v", m.calls)
	}
	h.tap("Cancel migration")
	h.tap("Cancel migration")
	if !slices.Equal(m.calls, []string{"Cancel"}) {
		t.Fatalf("calls %v, want Cancel", m.calls)
	}
	h.mustShow("Migration cancelled")
}

func TestDoneAndCancelledSayHowTheBalancerWasLeft(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := finished(engine.Done)
	s.Verification = &engine.Verification{Namespaces: 1, Ranges: 1, Matched: 1}
	s.History = append(s.History[:len(s.History)-1],
		engine.Event{At: t0, From: "finalizing", To: "finalizing", Reason: "source balancer left off, as it was before the migration"},
		s.History[len(s.History)-1])
	h.attach(newFakeMigration(s))
	h.mustShow("Source balancer left off, as it was before the migration.")
	h.mustNotShow("balancer is on again")

	h = newHarness(t, &fakeBackend{})
	c := finished(engine.Cancelled)
	c.Reason = "cancelled: syncing stopped; the migrated data stays on the destination; but start the destination balancer: timeout (start it by hand with sh.startBalancer() on a destination mongos)"
	h.attach(newFakeMigration(c))
	h.mustShow("Still to do: start the destination balancer: timeout (start it by hand with sh.startBalancer() on a destination mongos)")
	h.mustNotShow("balancer is on again")
}

type closingBuffer struct {
	bytes.Buffer
	closed bool
}

func (b *closingBuffer) Close() error {
	b.closed = true
	return nil
}

func TestExportDiagnosticsSaysWhereTheFileWent(t *testing.T) {
	b := &fakeBackend{}
	h := newHarness(t, b)
	h.attach(newFakeMigration(finished(engine.Done)))
	where := h.a.cur.(live).bannerArea()
	w := &closingBuffer{}
	h.a.writeDiagnostics("m1", w, "/home/dba/diag.zip", where)
	h.mustShow("Exporting diagnostics to /home/dba/diag.zip…")
	h.q.drain()
	if w.String() != "diagnostics of m1" || !w.closed {
		t.Fatalf("wrote %q, closed %v", w.String(), w.closed)
	}
	h.mustShow("Diagnostics saved to /home/dba/diag.zip.")

	b.exportErr = errors.New("write /home/dba/diag.zip: no space left on device")
	h.a.writeDiagnostics("m1", &closingBuffer{}, "/home/dba/diag.zip", where)
	h.q.drain()
	h.mustShow("Diagnostics not exported: write /home/dba/diag.zip: no space left on device")
}

func TestEscapeClosesTheFileDialogs(t *testing.T) {
	b := &fakeBackend{}
	h := newHarness(t, b)
	h.attach(newFakeMigration(finished(engine.Done)))
	h.tap("Export diagnostics…")
	if h.dialogs() != 1 {
		t.Fatalf("%d dialogs after Export diagnostics, want the save dialog", h.dialogs())
	}
	h.escape()
	h.q.drain()
	if h.dialogs() != 0 || len(b.exported) != 0 {
		t.Fatalf("Escape: %d dialogs, exported %v", h.dialogs(), b.exported)
	}

	fillForms(h)
	test.Tap(h.a.forms.src.tls)
	h.a.forms.src.chooseFile()
	h.escape()
	if h.dialogs() != 0 || h.a.forms.src.caFile != "" {
		t.Fatalf("Escape in the CA file dialog: %d dialogs, CA file %q", h.dialogs(), h.a.forms.src.caFile)
	}
}

// Open log, next to Export diagnostics while a migration is on screen: the backend
// opens the file; when it cannot, the screen says where the file is.
func TestOpenLogOpensTheFileOrSaysWhereItIs(t *testing.T) {
	b := &fakeBackend{logPath: "/home/dba/.config/shardlift/logs/m1.log"}
	h := newHarness(t, b)
	if h.findButton("Open log") != nil {
		t.Fatal("Open log is shown without a migration")
	}
	m := newFakeMigration(syncing())
	h.attach(m)
	h.tap("Open log")
	h.q.drain()
	if len(b.logOpened) != 1 || b.logOpened[0] != m.snap.ID {
		t.Fatalf("logs opened %v, want %s's", b.logOpened, m.snap.ID)
	}
	h.mustShow("The log is open in your desktop's viewer. It is the file /home/dba/.config/shardlift/logs/m1.log")
	b.logErr = errors.New(`xdg-open: exit status 3: no method available for opening '/home/dba/.config/shardlift/logs/m1.log'`)
	h.tap("Open log")
	h.q.drain()
	h.mustShow("The log could not be opened (xdg-open: exit status 3")
	h.mustShow("It is the file /home/dba/.config/shardlift/logs/m1.log")
}

// A cancel with a failed shard says where each shard stopped instead of one gap.
func TestCancelledSummarySaysWhereEachShardStopped(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	s := finished(engine.Cancelled)
	s.OptimeGap = 20 * time.Second
	s.Summary = &engine.Summary{Shards: []engine.ShardPosition{
		{Shard: "rs0", Consistent: true, Text: "shard rs0 applied every entry up to 2026-11-20 10:20:11 UTC (source time)"},
		{Shard: "rs2", Phase: engine.ShardFailed, Text: "shard rs2 failed and stopped at 2026-11-20 10:02:11 UTC: its source's entries after that were never applied (entries lost), so the copy of this shard is not a consistent staging copy"},
	}}
	h.attach(newFakeMigration(s))
	h.mustShow("was cancelled after 5 h 41 min. The destination is not a consistent staging copy, shard by shard:")
	h.mustShow("•  Shard rs0 applied every entry up to 2026-11-20 10:20:11 UTC (source time).")
	h.mustShow("•  Shard rs2 failed and stopped at 2026-11-20 10:02:11 UTC: its source's entries after that were never applied (entries lost)")
	h.mustNotShow("0:20 behind")
}

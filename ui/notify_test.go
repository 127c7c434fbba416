package ui

import (
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/shardlift/shardlift/engine"
)

// recordNotifications keeps every notification the app sends (the test app keeps
// only the last one).
func recordNotifications(h *harness) *[]*fyne.Notification {
	sent := &[]*fyne.Notification{}
	h.a.notify = func(n *fyne.Notification) { *sent = append(*sent, n) }
	return sent
}

// stepTo moves the migration to next (changed by change) at now+d, ticks, and returns
// the notifications that tick sent.
func (h *harness) stepTo(m *fakeMigration, sent *[]*fyne.Notification, d time.Duration, change func(s *engine.Snapshot)) []*fyne.Notification {
	h.t.Helper()
	*sent = (*sent)[:0]
	h.now = h.now.Add(d)
	m.snap.Shards = slices.Clone(m.snap.Shards) // the engine's snapshots share nothing
	change(&m.snap)
	h.tick()
	return append([]*fyne.Notification(nil), *sent...)
}

func mustNotify(t *testing.T, got []*fyne.Notification, title, content string) {
	t.Helper()
	if len(got) != 1 || got[0].Title != title || !strings.Contains(got[0].Content, content) {
		var all []string
		for _, n := range got {
			all = append(all, n.Title+": "+n.Content)
		}
		t.Fatalf("notifications %q, want one %q saying %q", all, title, content)
	}
}

func TestNotifiesWhenTheMigrationIsReadyForCutover(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	h.attach(m)
	h.tick() // no news: still syncing
	want := fyne.NewNotification("Ready for cutover", "Every shard of prod-eu:27017 -> atlas-eu:27017 is in sync. The cutover window closes "+
		t0.Add(72*time.Hour).Local().Format("Mon 15:04")+".")
	// Through Fyne's own notifications.
	test.AssertNotificationSent(t, want, func() {
		m.snap = ready()
		h.tick()
	})
	test.AssertNotificationSent(t, nil, h.tick) // once
}

// Opening a migration that is already ready is no news.
func TestOpeningAReadyMigrationSendsNothing(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	sent := recordNotifications(h)
	m := newFakeMigration(ready())
	h.attach(m)
	h.tick()
	if len(*sent) != 0 {
		t.Fatalf("sent %v", *sent)
	}
}

func TestNotifiesWhenAShardFailsWhileReady(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	sent := recordNotifications(h)
	m := newFakeMigration(ready())
	h.attach(m)
	got := h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) {
		s.Shards[1].Phase, s.Shards[1].Error = engine.ShardFailed, "the oplog of rs1 no longer reaches back to 10:02:11: restart this shard"
	})
	mustNotify(t, got, "Shard rs1 failed", "restart this shard")
	// The engine then makes the migration syncing: that is the same news.
	if got := h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) { s.State = engine.Syncing }); len(got) != 0 {
		t.Fatalf("sent again: %v", got[0].Title)
	}
}

func TestNotifiesWhenAShardFallsBehindWhileReady(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	sent := recordNotifications(h)
	m := newFakeMigration(ready())
	h.attach(m)
	got := h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) {
		s.State = engine.Syncing
		s.Shards[2].Phase, s.Shards[2].Lag = engine.CatchingUp, 3*time.Minute
	})
	mustNotify(t, got, "A shard fell behind", "rs2")
}

func TestNotifiesSixHoursAndOneHourBeforeTheCutoverWindowCloses(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	sent := recordNotifications(h)
	m := newFakeMigration(ready())
	deadline := m.snap.TimerDeadline
	h.attach(m)
	same := func(*engine.Snapshot) {}
	if got := h.stepTo(m, sent, deadline.Sub(h.now)-6*time.Hour-time.Minute, same); len(got) != 0 {
		t.Fatalf("6 h 1 min before: %v", got[0].Title)
	}
	mustNotify(t, h.stepTo(m, sent, 2*time.Minute, same), "Cutover window closes in 6 hours", deadline.Local().Format("Mon 15:04"))
	if got := h.stepTo(m, sent, time.Hour, same); len(got) != 0 {
		t.Fatalf("sent again: %v", got[0].Title)
	}
	// Extended meanwhile: no warning until the new deadline comes near.
	if got := h.stepTo(m, sent, 4*time.Hour, func(s *engine.Snapshot) { s.TimerDeadline = s.TimerDeadline.Add(24 * time.Hour) }); len(got) != 0 {
		t.Fatalf("after extending: %v", got[0].Title)
	}
	deadline = m.snap.TimerDeadline
	h.now = deadline.Add(-61 * time.Minute)
	h.tick()
	mustNotify(t, h.stepTo(m, sent, 2*time.Minute, same), "Cutover window closes in 1 hour", "extend the window")
}

func TestNotifiesWhenAVerificationEnds(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	sent := recordNotifications(h)
	m := newFakeMigration(ready())
	h.attach(m)
	mustNotify(t, h.stepTo(m, sent, time.Minute, func(s *engine.Snapshot) {
		s.Verification = &engine.Verification{At: h.now, Ranges: 12, Matched: 12}
	}), "Verification passed", "12 of 12 ranges match")
	mustNotify(t, h.stepTo(m, sent, time.Minute, func(s *engine.Snapshot) {
		s.Verification = &engine.Verification{At: h.now, Ranges: 12, Matched: 11, Mismatches: []engine.Mismatch{{Namespace: "shop.orders"}}}
	}), "Verification found differences", "1 of 12 ranges differ")
}

func TestNotifiesWhenTheMigrationEnds(t *testing.T) {
	for state, title := range map[engine.State]string{engine.Done: "Migration done", engine.Cancelled: "Migration cancelled", engine.Expired: "Cutover window expired"} {
		h := newHarness(t, &fakeBackend{})
		sent := recordNotifications(h)
		m := newFakeMigration(ready())
		h.attach(m)
		mustNotify(t, h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) { s.State = state }), title, "prod-eu:27017")
	}
}

// Each kind is turned off in the Notifications dialog; the choice is kept in the
// app's preferences and shown again by the next window.
func TestEachNotificationCanBeTurnedOff(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	sent := recordNotifications(h)
	h.tap("Notifications…")
	for _, k := range notificationKinds {
		c := h.check(k.label)
		if !c.Checked {
			t.Fatalf("%q is off by default", k.label)
		}
		test.Tap(c)
	}
	h.escape()
	// Every trigger, with every kind off.
	m := newFakeMigration(syncing())
	h.attach(m)
	h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) { *s = ready() })
	h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) { s.Shards[0].Phase = engine.ShardFailed })
	h.stepTo(m, sent, m.snap.TimerDeadline.Sub(h.now)-30*time.Minute, func(*engine.Snapshot) {})
	h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) { s.Verification = &engine.Verification{At: h.now, Ranges: 1, Matched: 1} })
	h.stepTo(m, sent, time.Second, func(s *engine.Snapshot) { s.State = engine.Expired })
	if len(*sent) != 0 {
		t.Fatalf("sent with notifications off: %v", (*sent)[0].Title)
	}
	// The same app (its preferences) opens a window that shows them off.
	again := newApp(h.a.fa, &fakeBackend{}, h.q, func() time.Time { return h.now })
	for _, k := range notificationKinds {
		if again.notificationsOn(k.kind) {
			t.Errorf("%q is on again in a new window", k.label)
		}
	}
	// Turned back on, one kind sends again.
	h.tap("Notifications…")
	test.Tap(h.check("When the migration is ready for cutover"))
	h.escape()
	m2 := newFakeMigration(syncing())
	h.attach(m2)
	mustNotify(t, h.stepTo(m2, sent, time.Second, func(s *engine.Snapshot) { *s = ready() }), "Ready for cutover", "in sync")
}

// fakeTray records the menu the app puts in the system tray.
type fakeTray struct {
	menu *fyne.Menu
	sets int
}

func (f *fakeTray) SetSystemTrayMenu(m *fyne.Menu) { f.menu, f.sets = m, f.sets+1 }

func (f *fakeTray) status() string { return f.menu.Items[0].Label }

func (f *fakeTray) item(t *testing.T, label string) *fyne.MenuItem {
	t.Helper()
	for _, i := range f.menu.Items {
		if i.Label == label {
			return i
		}
	}
	t.Fatalf("no tray item %q", label)
	return nil
}

// The tray shows the migration's state as it changes; with a tray, keeping the
// migration syncing hides the window instead of closing it, and the tray's Quit
// asks again, in the window, whether to keep syncing or pause.
func TestTrayReflectsTheMigrationsState(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	tray := &fakeTray{}
	h.a.UseSystemTray(tray)
	if tray.status() != "No migration open" {
		t.Fatalf("tray %q", tray.status())
	}
	m := newFakeMigration(syncing())
	h.attach(m)
	if want := "prod-eu:27017 -> atlas-eu:27017: syncing"; tray.status() != want {
		t.Fatalf("tray %q, want %q", tray.status(), want)
	}
	h.tick()
	if tray.sets != 2 {
		t.Fatalf("the tray menu was rebuilt %d times for 2 states", tray.sets)
	}
	h.a.requestClose()
	h.tap("Keep syncing in the background")
	if h.closed || len(m.calls) != 1 || m.calls[0] != "Detach" {
		t.Fatalf("with a tray, keep syncing: closed %v, calls %v", h.closed, m.calls)
	}
	// Hidden, the window keeps following the migration.
	m.snap = ready()
	h.tick()
	if !strings.HasSuffix(tray.status(), ": ready for cutover") {
		t.Fatalf("tray %q once ready", tray.status())
	}
	if tray.item(t, "Open Shardlift").Action == nil {
		t.Fatal("Open Shardlift does nothing")
	}
	quit := tray.item(t, "Quit Shardlift…")
	if !quit.IsQuit {
		t.Fatal("the tray's Quit is not the menu's quit item: Fyne would add its own, which quits without asking")
	}
	quit.Action()
	h.mustShow("A migration is running")
}

package ui

import (
	"errors"
	"slices"
	"testing"

	"github.com/shardlift/shardlift/engine"
)

func TestClosingWithoutARunningMigrationJustCloses(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.requestClose()
	if !h.closed || h.a.ctx.Err() == nil {
		t.Fatal("the window did not close, or background work was not stopped")
	}

	h = newHarness(t, &fakeBackend{})
	h.attach(newFakeMigration(finished(engine.Done)))
	h.a.requestClose()
	if !h.closed {
		t.Fatal("a finished migration must not hold the window open")
	}
}

func TestClosingDuringAMigrationAsksKeepSyncingOrPause(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	h.attach(m)
	h.a.requestClose()
	h.mustShow("A migration is running")
	h.tap("Don't close")
	if h.closed || len(m.calls) != 0 {
		t.Fatalf("Don't close: closed %v, calls %v", h.closed, m.calls)
	}

	h.a.requestClose()
	h.tap("Keep syncing in the background")
	if !slices.Equal(m.calls, []string{"Detach"}) || !h.closed {
		t.Fatalf("keep syncing: calls %v, closed %v", m.calls, h.closed)
	}
}

func TestPauseAndCloseCheckpointsFirst(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(ready())
	h.attach(m)
	h.a.requestClose()
	pause := h.button("Pause and close")
	pause.OnTapped()
	if h.closed {
		t.Fatal("the window closed before the pause finished")
	}
	h.mustShow("Pausing at a checkpoint…")
	h.q.drain()
	if !slices.Equal(m.calls, []string{"Pause"}) || !h.closed {
		t.Fatalf("pause: calls %v, closed %v", m.calls, h.closed)
	}
}

func TestCloseKeepsTheWindowWhenTheHandOverFails(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	m.errs["Detach"] = errors.New("cannot start the background process: permission denied on /usr/bin/shardlift")
	h.attach(m)
	h.a.requestClose()
	h.tap("Keep syncing in the background")
	if h.closed {
		t.Fatal("the window closed although the migration was not handed over")
	}
	h.mustShow("cannot start the background process: permission denied on /usr/bin/shardlift")
	if h.button("Pause and close").Disabled() {
		t.Fatal("the other choice stays disabled after the error")
	}
}

func TestEscapeClosesTheTopDialogWhileTyping(t *testing.T) {
	b := &fakeBackend{migrations: listed()[:1], needPw: true}
	h := newHarness(t, b)
	h.tap("Resume")
	src, _ := passwordEntries(t, h)
	h.a.win.Canvas().Focus(src)
	h.escape()
	if h.dialogs() != 0 {
		t.Fatal("Escape in a password field left the dialog open")
	}
}

func TestMigrationsButtonLeavesTheMigrationRunning(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	m := newFakeMigration(syncing())
	h.attach(m)
	h.tap("Migrations")
	if h.a.att.Load() != nil {
		t.Fatal("the migration is still attached to the screens")
	}
	h.tick() // no migration on screen: nothing to read
	if len(m.calls) != 0 {
		t.Fatalf("leaving the screen called %v", m.calls)
	}
	if _, ok := h.a.cur.(*startScreen); !ok {
		t.Fatalf("screen %T, want the list", h.a.cur)
	}
}

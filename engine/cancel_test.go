package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
)

// A cancel is recorded before its clean-up, so a process that stops during the
// clean-up, or after it and before the migration is recorded cancelled, never
// syncs again: the next Run finishes the cancel.
func TestCancelInterruptedByACrashIsFinishedOnRestartNeverResumesSyncing(t *testing.T) {
	cancelUnrecorded := func(t *testing.T, h *harness, running bool) {
		h.cp.mu.Lock()
		h.cp.failEvent = func(ev Event) error {
			if ev.To == string(Cancelled) {
				return errBoom // the process died before this write
			}
			return nil
		}
		h.cp.mu.Unlock()
		if err := h.m.Cancel(bg); !errors.Is(err, errBoom) {
			t.Fatalf("Cancel: %v", err)
		}
		if !h.fc.srcBalancer || !h.fc.dstBalancer {
			t.Fatal("the clean-up did not run")
		}
		if running {
			h.crash()
		}
		h.cp.mu.Lock()
		h.cp.failEvent = nil
		h.cp.mu.Unlock()
	}
	for _, tc := range []struct {
		name string
		// cancel runs Cancel and stops the process at the point the case is about,
		// leaving the migration recorded in state left.
		cancel func(t *testing.T, h *harness)
		left   State
	}{
		{"after the clean-up, before it is recorded", func(t *testing.T, h *harness) { cancelUnrecorded(t, h, true) }, Ready},
		{"of an expired migration, before it is recorded", func(t *testing.T, h *harness) {
			h.clk.Advance(73 * time.Hour)
			if err := h.wait(); err != nil || h.m.State() != Expired {
				t.Fatalf("Run at the deadline: %v, state %s", err, h.m.State())
			}
			cancelUnrecorded(t, h, false) // Cancel connects by itself
		}, Expired},
		{"during the clean-up", func(t *testing.T, h *harness) {
			h.fc.mu.Lock()
			h.fc.restoreGate = make(chan struct{})
			h.fc.mu.Unlock()
			ctx, cancel := context.WithCancel(bg)
			errc := make(chan error, 1)
			go func() { errc <- h.m.Cancel(ctx) }()
			h.eventually("restoring", func() bool { return h.fc.called("Restore") > 0 })
			cancel() // the process dies: Cancel's caller and Run go together
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("Cancel: %v", err)
			}
			h.crash()
			h.fc.mu.Lock()
			h.fc.restoreGate = nil
			h.fc.mu.Unlock()
		}, Ready},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "s0", "s1")
			h.fc.shards["s0"].relaxIndex = bsonDoc("name", "email_1")
			h.ready()
			tc.cancel(t, h)
			replays, stops := h.fc.replayers("s0")+h.fc.replayers("s1"), h.fc.called("StopSourceBalancer")
			if st := h.cp.record().State; st != tc.left {
				t.Fatalf("recorded state %s, want the crash to leave it %s", st, tc.left)
			}

			h.m = h.newMigration()
			s := h.m.Snapshot()
			if !strings.Contains(s.Reason, "cancelling") {
				t.Fatalf("reason after the restart %q, want the cancel in progress", s.Reason)
			}
			if err := h.m.ExtendTimer(bg); !errors.Is(err, ErrRefused) {
				t.Fatalf("extend the timer while cancelling: %v", err)
			}
			h.start(StartOptions{})
			if err := h.wait(); err != nil {
				t.Fatalf("Run after the restart: %v", err)
			}
			if h.m.State() != Cancelled {
				t.Fatalf("state %s after the restart, want cancelled", h.m.State())
			}
			if n := h.fc.replayers("s0") + h.fc.replayers("s1"); n != replays {
				t.Fatalf("%d replays after the restart, %d before: a cancelled migration synced again", n, replays)
			}
			if n := h.fc.called("StopSourceBalancer"); n != stops {
				t.Fatal("the restart stopped the source balancer again")
			}
			if !h.fc.srcBalancer || !h.fc.dstBalancer {
				t.Fatalf("balancers after the finished cancel: source %v destination %v", h.fc.srcBalancer, h.fc.dstBalancer)
			}
			if rec := h.cp.record(); rec.Summary == nil || len(h.fc.restored) < len(rec.Relaxed) {
				t.Fatalf("summary %+v, restored %d of %d relaxed options", rec.Summary, len(h.fc.restored), len(rec.Relaxed))
			}
		})
	}
}

// A Cancel whose caller stops waiting while the start steps wind down leaves the
// recorded cancel to the running migration, which finishes it.
func TestCancelGivenUpByItsCallerIsFinishedByTheRunningMigration(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.prepareGate = make(chan struct{})
	h.start(StartOptions{})
	h.eventually("preparing", func() bool { return h.fc.called("PrepareDestination") == 1 })
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := h.m.Cancel(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Cancel: %v", err)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if h.m.State() != Cancelled || !h.fc.srcBalancer {
		t.Fatalf("state %s, source balancer %v", h.m.State(), h.fc.srcBalancer)
	}
	if h.fc.replayers("s0") != 0 {
		t.Fatal("a cancelled start launched the shards")
	}
}

// The DDL a shard read that is applied stays in its checkpoint until the resume
// point passes it, and a restarted process hands it to the shard's new replay (see
// replay.DDLOnce: a copy read again is not applied twice).
func TestAppliedDDLIsKeptInTheShardCheckpointUntilTheResumePointPassesIt(t *testing.T) {
	h := newHarness(t, "s0")
	r := h.replaying()["s0"]
	ddl := replay.DDLCopy{TS: primitive.Timestamp{T: r.resume.T + 5, I: 1}, Key: oplog.DDLKey{7}}
	if err := r.sink.DDLApplied("s0", ddl); err != nil {
		t.Fatal(err)
	}
	h.restart()
	h.eventually("replaying again", func() bool { return h.fc.replayers("s0") == 2 })
	again := h.fc.replayer("s0")
	if len(again.ddlApplied) != 1 || again.ddlApplied[0] != ddl {
		t.Fatalf("the resumed replay got %+v, want %+v", again.ddlApplied, ddl)
	}
	again.mu.Lock()
	again.p.Applied = ddl.TS
	again.mu.Unlock()
	again.checkpoint(t)
	if cp := h.cp.shard("s0"); len(cp.DDLApplied) != 0 {
		t.Fatalf("the checkpoint at %v still holds %+v", cp.Applied, cp.DDLApplied)
	}
}

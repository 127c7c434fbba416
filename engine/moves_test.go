package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/prepare"
)

// owning is an ownership whose only difference between shards is the primary of
// database shop: enough for the fakes to tell one chunk map from another.
func owning(primary string) prepare.Ownership {
	return prepare.Ownership{Primaries: map[string]string{"shop": primary}}
}

// A resumed copy takes what the shard owned at its T0, saved with it, never the
// chunk map of the resume (issue 15: a resume used to plan again while a shard was
// half copied).
func TestResumedCopyTakesTheOwnershipOfItsT0(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.owners = map[string]prepare.Ownership{"s0": owning("s0"), "s1": owning("s0")}
	h.fc.shards["s0"].copyGate = make(chan struct{}) // s0 stops half way through its copy
	h.start(StartOptions{})
	h.eventually("s0 half copied", func() bool { return h.cp.shard("s0").Copied["shop.orders"].Docs == 50 })
	if got := h.cp.shard("s0").Owned; got == nil || got.Primaries["shop"] != "s0" {
		t.Fatalf("s0's checkpoint keeps ownership %+v, want the chunk map of its T0", got)
	}
	h.fc.mu.Lock()
	h.fc.owners = map[string]prepare.Ownership{"s0": owning("s1"), "s1": owning("s1")} // the chunk map changed meanwhile
	h.fc.mu.Unlock()
	h.fc.shards["s0"].copyGate = nil
	h.restart()
	h.eventually("s0 replaying", func() bool { return h.fc.replayer("s0") != nil })
	h.fc.mu.Lock()
	got := h.fc.copierOwned["s0"]
	h.fc.mu.Unlock()
	if got.Primaries["shop"] != "s0" {
		t.Fatalf("s0's resumed copy took ownership %+v, want the one of its T0 (shop on s0)", got)
	}
}

// lookForMoves is one look of the move watcher on the running migration.
func (h *harness) lookForMoves() {
	h.t.Helper()
	h.m.life.Lock()
	r := h.m.run
	h.m.life.Unlock()
	if r == nil {
		h.t.Fatal("the migration does not run")
	}
	h.m.lookForMoves(r.ctx, r)
}

// A chunk moved between two shards during the sync: both copy again from a new
// T0, the move named in the history and in their rows (kept across a restart of
// Shardlift) until they are in sync; a third shard keeps syncing.
func TestAMoveRestartsTheShardsItTouchedNamingIt(t *testing.T) {
	h := newHarness(t, "s0", "s1", "s2")
	h.fc.owners = map[string]prepare.Ownership{"s0": owning("s0"), "s1": owning("s0"), "s2": owning("s0")}
	h.ready()
	h.lookForMoves() // nothing moved
	// The watcher also looks by itself (when the run starts, and before ready):
	// the last look is the one above.
	h.fc.mu.Lock()
	asked := h.fc.movesAsked
	h.fc.mu.Unlock()
	if len(asked) == 0 || len(asked[len(asked)-1]) != 3 || asked[len(asked)-1]["s1"].Primaries["shop"] != "s0" {
		t.Fatalf("the watcher asked about %+v, want every shard's ownership of its T0 last", asked)
	}
	if h.fc.replayers("s0") != 1 || h.fc.replayers("s1") != 1 {
		t.Fatal("a look that found nothing restarted a shard")
	}
	const what = "a chunk of shop.orders [{c: 1}, {c: 9}) moved from shard s0 to s1 at 10:03:00 UTC (moveChunk or moveRange)"
	h.fc.mu.Lock()
	h.fc.moves = []prepare.Change{{NS: "shop.orders", Shards: []string{"s0", "s1"}, What: what}}
	h.fc.mu.Unlock()
	h.lookForMoves()
	h.eventually("s0 and s1 replaying again", func() bool { return h.fc.replayers("s0") == 2 && h.fc.replayers("s1") == 2 })
	if h.fc.replayers("s2") != 1 || h.fc.replayer("s2").isStopped() {
		t.Fatal("s2, which the move did not touch, was disturbed")
	}
	if !slices.Contains(h.fc.cleared, "s0") || !slices.Contains(h.fc.cleared, "s1") || slices.Contains(h.fc.cleared, "s2") {
		t.Fatalf("cleared %v, want s0 and s1", h.fc.cleared)
	}
	s := h.m.Snapshot()
	if s.State != Syncing {
		t.Errorf("state %s while two shards copy again, want syncing", s.State)
	}
	for _, p := range s.Shards {
		if want := p.Name != "s2"; (p.Moved == what) != want {
			t.Errorf("shard %s's row says moved %q", p.Name, p.Moved)
		}
	}
	named := 0
	for _, ev := range s.History {
		if strings.Contains(ev.Reason, what) {
			named++
		}
	}
	if named < 2 {
		t.Errorf("the history names the move %d times, want in both shards' restarts: %v", named, h.events())
	}
	h.restart()
	h.eventually("s1 replaying after the restart", func() bool { return h.fc.replayers("s1") == 3 })
	if p := h.m.Snapshot().Shards[1]; p.Moved != what {
		t.Errorf("after a restart of Shardlift s1's row says moved %q", p.Moved)
	}
	h.fc.replayer("s1").behind(0)
	h.eventually("s1 in sync", func() bool { return h.phase("s1") == Synced })
	if p := h.m.Snapshot().Shards[1]; p.Moved != "" {
		t.Errorf("s1 is in sync and its row still says moved %q", p.Moved)
	}
}

// A resharding cannot be followed: the migration stops, failed, saying what to do.
func TestAReshardingStopsTheMigration(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.ready()
	h.fc.mu.Lock()
	h.fc.moves = []prepare.Change{{NS: "shop.orders", Resharded: true, What: "shop.orders was resharded (now shard key {c: 1})"}}
	h.fc.mu.Unlock()
	h.lookForMoves()
	h.waitState(Failed)
	s := h.m.Snapshot()
	for _, want := range []string{"shop.orders was resharded", "syncing stopped", "Cancel this migration and start a new one"} {
		if !strings.Contains(s.Reason, want) {
			t.Errorf("reason %q does not say %q", s.Reason, want)
		}
	}
	for name := range h.fc.shards {
		if r := h.fc.replayer(name); !r.isStopped() {
			t.Errorf("shard %s still replays after the stop", name)
		}
	}
}

// Issue 15's cross-check: a fromMigrate insert into a range a shard did not own
// at its T0 is a move into it. When no look for moves explains it, the shard
// copies again, its row and the history naming the range; never a silent skip.
// An insert into what the shard owned changes nothing.
func TestAFromMigrateInsertNoMoveExplainsRestartsTheShardNamingTheRange(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.owners = map[string]prepare.Ownership{"s0": owning("s0"), "s1": owning("s0")} // shop's primary is s0
	h.ready()
	doc := bson.Raw(bsoncore.NewDocumentBuilder().AppendInt32("_id", 7).Build())
	h.fc.replayer("s0").from.FromMigrate("shop.orders", doc) // s0 owned it: no news
	h.lookForMoves()
	if h.fc.replayers("s0") != 1 || h.m.State() != Ready {
		t.Fatalf("an insert into what s0 owned restarted it, or the migration is %s", h.m.State())
	}
	h.fc.replayer("s1").from.FromMigrate("shop.orders", doc) // s1 did not
	const what = "fromMigrate inserts into shop.orders (unsharded; its database's primary shard at T0 was s0), a range shard s1 did not own at its T0"
	h.lookForMoves() // the move may commit after its documents arrived: not yet
	if s := h.m.Snapshot(); noted(s, what) || s.Shards[1].Phase != Synced {
		t.Fatalf("s1 copies again (%s) before the grace for the move's commit ended: %v", s.Shards[1].Phase, h.events())
	}
	if err := h.m.StartCutover(context.Background()); err == nil {
		t.Fatal("the cutover started while a fromMigrate insert waited for its move")
	}
	h.clk.Advance(DefaultMissedMoveGrace)
	h.lookForMoves()
	h.eventually("s1 replaying again", func() bool { return h.fc.replayers("s1") >= 2 })
	s := h.m.Snapshot()
	if !noted(s, what) {
		t.Errorf("the history does not name the range %q: %v", what, h.events())
	}
	for _, p := range s.Shards {
		if named := strings.Contains(p.Moved, what); named != (p.Name == "s1") {
			t.Errorf("shard %s's row says moved %q", p.Name, p.Moved)
		}
	}
	if h.fc.replayers("s0") != 1 || h.fc.replayer("s0").isStopped() {
		t.Error("s0, which owned the range, was disturbed")
	}
}

// A migration resumed ready is not cut over before a look for moves has compared
// the shards' saved ownerships with the source: a move made while Shardlift was
// down must not reach the cutover unseen (fault scenario 18 saw the resumed
// migration ready, every shard synced, before its first look restarted them).
func TestAResumedMigrationStartsNoCutoverBeforeItLookedForMoves(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.ready()
	h.fc.mu.Lock()
	h.fc.movesErr = errors.New("config server away")
	h.fc.mu.Unlock()
	h.restart()
	for _, r := range h.replaying() {
		r.behind(0)
	}
	h.eventually("every shard in sync, the look for moves awaited", func() bool {
		return strings.Contains(h.m.Snapshot().Reason, "looking for chunk moves") || h.m.State() == Ready
	})
	err := h.m.StartCutover(context.Background())
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("start the cutover before any look: %v, want refused", err)
	}
	h.fc.mu.Lock()
	h.fc.movesErr = nil
	h.fc.mu.Unlock()
	h.lookForMoves()
	h.waitState(Ready)
	if err := h.m.StartCutover(context.Background()); err != nil {
		t.Fatalf("start the cutover after a look: %v", err)
	}
}

// A shard in sync again soon after its new T0 (a small collection copied at once)
// makes the migration ready after one look for moves that covers that T0, asked
// for then, not after the watcher's next periodic look (MovesWatchEvery): the
// fake clock stays 1 s after the last look, so that look never comes due.
func TestReadyAfterARestartDoesNotWaitForThePeriodicLookForMoves(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.ready()
	h.clk.Advance(time.Second) // the watcher's next look is due 4 s later
	if err := h.m.RestartShard(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	h.eventually("s1 replaying again", func() bool { return h.fc.replayers("s1") == 2 && h.phase("s1") == CatchingUp })
	h.fc.replayer("s1").behind(0)
	h.waitState(Ready)
}

package engine

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/prepare"
)

// DefaultMovesWatchEvery is how often the move watcher looks at the source's
// changelog and at what changed in its chunk map (topology.PlacementWatch).
const DefaultMovesWatchEvery = 5 * time.Second

// watchMoves looks for chunk and collection moves on the source while the
// migration syncs (a DBA's moveChunk, moveRange, movePrimary, reshardCollection,
// moveCollection or unshardCollection; the balancer is off). A move makes
// documents that both of its shards skip: the donor's copy or ownership no longer
// has them, the recipient's plan calls them orphans and its replay skips their
// fromMigrate inserts. So every shard whose ownership changed since its T0 is
// restarted (its copy then takes the chunk map of now), the move named in the
// history, the log and its row; a resharding, which the destination cannot
// follow, stops the migration. Nothing is skipped silently.
func (m *Migration) watchMoves(ctx context.Context, r *runState) {
	for {
		m.lookForMoves(ctx, r)
		t := m.clock.NewTimer(m.cfg.MovesWatchEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-m.lookNow:
			t.Stop()
		}
	}
}

// fromMigrateCheck is a shard replay's cross-check of the moves the watcher saw:
// a fromMigrate insert into a range the shard did not own at its T0 (own) is a
// chunk migration into it, whose documents the replay skips and the shard's copy
// never had. A move the watcher saw restarts the shard with a new T0 that owns
// the range; one it did not see must not be skipped silently: the range is
// recorded, the migration is not ready meanwhile, the watcher looks at once, and
// restarts the shard if no look Config.MissedMoveGrace after the insert found a move
// that explains it (lookForMoves). Only inserts are checked: a
// fromMigrate delete of a range the shard did not own removes orphans, which no
// copy took (the range deleter runs up to 15 minutes after a move, which may
// predate T0).
func (m *Migration) fromMigrateCheck(sh *shardState, own prepare.Ownership) func(ns string, doc bson.Raw) {
	unowned := prepare.NewUnowned(sh.name, own)
	return func(ns string, doc bson.Raw) {
		what, err := unowned.Range(ns, doc)
		if err != nil {
			what = fmt.Sprintf("%s (a document whose range cannot be told: %v)", ns, err)
		}
		if what == "" {
			return
		}
		m.mu.Lock()
		first := sh.unexplained == ""
		if first {
			sh.unexplained, sh.unexplainedAt = what, m.clock.Now()
		}
		m.mu.Unlock()
		if first {
			m.log.Warn("a fromMigrate insert into a range the shard did not own at its T0: looking for the move", "shard", sh.name, "range", what)
			select {
			case m.lookNow <- struct{}{}:
			default:
			}
		}
	}
}

// DefaultMissedMoveGrace is how long a fromMigrate insert no look explained waits
// before its shard copies again (Config.MissedMoveGrace): a recipient receives a
// chunk's documents before the move commits in the chunk map, so a look right
// after the first of them finds the move only once it committed.
const DefaultMissedMoveGrace = 30 * time.Second

// unexplainedBefore returns the ranges the shards' replays read fromMigrate
// inserts into, that they did not own at T0, Config.MissedMoveGrace or more before t (a
// look that started then found any move that explains them). Only shards in owned
// count.
func (m *Migration) unexplainedBefore(t time.Time, owned map[string]prepare.Ownership) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for _, sh := range m.mu.shards {
		if _, ok := owned[sh.name]; ok && sh.unexplained != "" && !sh.unexplainedAt.Add(m.cfg.MissedMoveGrace).After(t) {
			out[sh.name] = sh.unexplained
		}
	}
	return out
}

// movesUnseen reports whether a shard recorded its T0 after the start of the last
// completed look for moves: the migration is not ready until a look has covered
// every shard's ownership (a move right after a T0 must not reach the cutover).
// Called with mu held.
func (m *Migration) movesUnseenLocked() bool {
	if m.mu.movesLooked.Before(m.mu.lastT0) {
		return true
	}
	// A fromMigrate insert no look has explained yet may be a move.
	return slices.ContainsFunc(m.mu.shards, func(sh *shardState) bool { return sh.unexplained != "" })
}

// lookForReady wakes the move watcher when every shard is in sync and no look
// has covered the last T0 yet, once per T0: the migration becomes ready after
// that look, not after the next periodic one (up to MovesWatchEvery later; a
// small collection copies in less). A look in progress, started before the T0,
// is followed by another at once.
func (m *Migration) lookForReady() {
	m.mu.Lock()
	ask := m.mu.movesLooked.Before(m.mu.lastT0) && !m.mu.lookAskedFor.Equal(m.mu.lastT0)
	if ask {
		m.mu.lookAskedFor = m.mu.lastT0
	}
	m.mu.Unlock()
	if ask {
		select {
		case m.lookNow <- struct{}{}:
		default: // a look is asked for already
		}
	}
}

// lookForMoves compares what each copying or replaying shard owned at its T0 with
// the source's chunk map now, and restarts or stops on a move.
func (m *Migration) lookForMoves(ctx context.Context, r *runState) {
	started := m.clock.Now()
	seen := func() {
		m.mu.Lock()
		m.mu.movesLooked = started
		m.mu.Unlock()
		m.poke()
	}
	owned := map[string]prepare.Ownership{}
	for _, sh := range m.shardList() {
		if cp := sh.checkpoint(); cp.Owned != nil && cp.Phase != Pending && cp.Phase != ShardFailed {
			owned[sh.name] = *cp.Owned
		}
	}
	switch st := m.State(); {
	case st != Syncing && st != Ready && st != CuttingOver, len(owned) == 0:
		seen() // nothing recorded a T0 before this look: nothing to look at
		return
	}
	changes, err := r.clusters.Moves(ctx, owned)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("look for chunk and collection moves on the source", "err", err)
		}
		return
	}
	missed := m.unexplainedBefore(started, owned)
	if len(changes) == 0 && len(missed) == 0 {
		seen()
		return
	}
	m.life.Lock()
	defer m.life.Unlock()
	if m.run != r || r.stopped {
		return
	}
	switch m.State() {
	case Syncing, Ready, CuttingOver:
	default:
		return
	}
	var resharded []string
	moved := map[string][]string{}
	for _, c := range changes {
		if c.Resharded {
			resharded = append(resharded, c.What)
			continue
		}
		for _, s := range c.Shards {
			if !slices.Contains(moved[s], c.What) {
				moved[s] = append(moved[s], c.What)
			}
		}
	}
	if len(resharded) > 0 {
		m.stopForResharding(ctx, r, resharded)
		return
	}
	for s, what := range missed {
		if _, restarts := moved[s]; !restarts {
			moved[s] = []string{"fromMigrate inserts into " + what + ", a range shard " + s + " did not own at its T0, which no move on the source's chunk map or changelog explains (a chunk move Shardlift did not see)"}
		}
	}
	names := slices.Sorted(maps.Keys(moved))
	var shards []*shardState
	for _, name := range names {
		if sh := m.shard(name); sh != nil {
			// Every affected shard stops before any is cleared: a donor's
			// replay must not apply an old write over its recipient's new copy.
			m.haltShard(r, name)
			shards = append(shards, sh)
		}
	}
	for _, sh := range shards {
		why := strings.Join(moved[sh.name], "; ")
		m.noteAt(slog.LevelWarn, "shard "+sh.name+" copies again: "+why+" during the migration")
		reason := "restarted because the source's chunks moved during the migration (" + why + "): its data on the destination is cleared, then copied and replayed again"
		if err := m.relaunch(r, sh, reason, why); err != nil {
			m.log.Error("restart a shard after a chunk move", "shard", sh.name, "err", err)
		}
	}
}

// stopForResharding stops syncing for good and fails the migration: a resharded
// collection has a new shard key and new chunks the destination does not have,
// and no copy of a shard can make that right. Called with life held.
func (m *Migration) stopForResharding(ctx context.Context, r *runState, what []string) {
	m.stopSync(ctx, r)
	reason := (&ReshardedError{What: strings.Join(what, "; ")}).Error()
	m.noteAt(slog.LevelError, reason)
	if err := m.transition(Failed, reason); err != nil {
		m.log.Error("stop the migration after a resharding", "err", err)
	}
}

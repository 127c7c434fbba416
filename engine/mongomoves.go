package engine

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
)

// moveEvents are the config.changelog entries of a chunk or collection move:
// every chunk migration's commit (moveChunk, moveRange and the balancer's:
// MigrationSourceManager), movePrimary's, and the resharding coordinator's state
// transitions (reshardCollection, and 8.0's moveCollection and unshardCollection,
// which reshard).
var moveEvents = []string{"moveChunk.commit", "movePrimary.start", "movePrimary.commit", "resharding.coordinator.transition"}

// moveWatch is what the move watcher remembers between two looks.
type moveWatch struct {
	since     time.Time // the newest changelog entry read
	placement topology.PlacementWatch
	// compared are the shards' T0 ownerships the last complete look compared
	// with the chunk map: a look at a cluster that did not change since, with
	// the same ownerships, has nothing to compare.
	compared  map[string]prepare.Ownership
	resharded map[string]bool // collections the changelog showed resharded
	recent    []topology.ChangelogEntry
}

func (c *mongoClusters) Moves(ctx context.Context, owned map[string]prepare.Ownership) ([]prepare.Change, error) {
	timeout := c.cfg.Source.Timeout
	if timeout <= 0 {
		timeout = topology.DefaultTimeout
	}
	c.movesMu.Lock()
	defer c.movesMu.Unlock()
	w := &c.moves
	// The chunk map before the changelog: a move committed between the two reads
	// is then in the changelog the changes are named from (the other way round, a
	// change would be named after an older move of its collection).
	dbs, colls, changed, err := w.placement.Read(ctx, c.src, timeout)
	if err != nil {
		return nil, err
	}
	entries, err := c.readMoveLog(ctx, timeout)
	if err != nil {
		return nil, err
	}
	if entries == 0 && !changed && reflect.DeepEqual(owned, w.compared) {
		return nil, nil
	}
	// A look that fails from here on is made whole at the next one: the moves it
	// read are only in the chunk map now.
	w.compared = nil
	var changes []prepare.Change
	for _, shard := range slices.Sorted(maps.Keys(owned)) {
		current, err := prepare.OwnershipOf(dbs, colls, shard)
		if err != nil {
			return nil, err
		}
		for _, ch := range prepare.Changes(shard, owned[shard], current, w.resharded) {
			changes = append(changes, c.named(ch))
		}
	}
	if len(changes) > 0 {
		if _, err := c.Discover(ctx); err != nil {
			return nil, fmt.Errorf("plan again after %s: %w", changes[0].What, err)
		}
	}
	w.compared = owned
	return changes, nil
}

// readMoveLog reads the move entries the changelog gained since the last read,
// and returns how many. Called with movesMu held.
func (c *mongoClusters) readMoveLog(ctx context.Context, timeout time.Duration) (int, error) {
	w := &c.moves
	if w.resharded == nil {
		w.resharded = map[string]bool{}
	}
	entries, err := topology.Changelog(ctx, c.src, timeout, w.since, moveEvents)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		w.since = e.Time
		if e.What == "resharding.coordinator.transition" {
			w.resharded[e.NS] = true
		}
		w.recent = append(w.recent, e)
	}
	if n := len(w.recent); n > 100 {
		w.recent = slices.Delete(w.recent, 0, n-100)
	}
	return len(entries), nil
}

// named adds to a change the latest changelog entry of its namespace: which
// command moved what from where to where, and when; the shards it names are
// affected too.
func (c *mongoClusters) named(ch prepare.Change) prepare.Change {
	for i := len(c.moves.recent) - 1; i >= 0; i-- {
		e := c.moves.recent[i]
		if e.NS != ch.NS {
			continue
		}
		from, _ := e.Details.Lookup("from").StringValueOK()
		to, _ := e.Details.Lookup("to").StringValueOK()
		at := e.Time.Format("15:04:05 UTC")
		switch e.What {
		case "moveChunk.commit":
			minB, _ := e.Details.Lookup("min").DocumentOK()
			maxB, _ := e.Details.Lookup("max").DocumentOK()
			ch.What = fmt.Sprintf("a chunk of %s [%s, %s) moved from shard %s to %s at %s (moveChunk or moveRange)", ch.NS, bson.Raw(minB), bson.Raw(maxB), from, to, at)
		case "movePrimary.start", "movePrimary.commit":
			ch.What = fmt.Sprintf("the primary shard of database %s moved from %s to %s at %s (movePrimary): its unsharded collections moved", ch.NS, from, to, at)
		case "resharding.coordinator.transition":
			ch.What += " at " + at
		}
		for _, s := range []string{from, to} {
			if s != "" && !slices.Contains(ch.Shards, s) {
				ch.Shards = append(ch.Shards, s)
			}
		}
		slices.Sort(ch.Shards)
		break
	}
	return ch
}

func (c *mongoClusters) Ownership(ctx context.Context, shard string) (prepare.Ownership, error) {
	plan, err := c.plan()
	if err != nil {
		return prepare.Ownership{}, err
	}
	planned, ok := plan.Ownership(shard)
	if !ok {
		return prepare.Ownership{}, fmt.Errorf("source shard %s: %w", shard, ErrUnknownShard)
	}
	timeout := c.cfg.Source.Timeout
	if timeout <= 0 {
		timeout = topology.DefaultTimeout
	}
	dbs, colls, err := topology.Placement(ctx, c.src, timeout)
	if err != nil {
		return prepare.Ownership{}, fmt.Errorf("read the chunk map of source shard %s: %w", shard, err)
	}
	own, err := prepare.OwnershipOf(dbs, colls, shard)
	if err != nil {
		return prepare.Ownership{}, err
	}
	// A collection resharded since the plan: the destination was prepared with
	// its old shard key.
	c.movesMu.Lock()
	defer c.movesMu.Unlock()
	if _, err := c.readMoveLog(ctx, timeout); err != nil {
		return prepare.Ownership{}, err
	}
	for _, ch := range prepare.Changes(shard, planned, own, c.moves.resharded) {
		if ch.Resharded {
			return prepare.Ownership{}, &ReshardedError{What: c.named(ch).What}
		}
	}
	return own, nil
}

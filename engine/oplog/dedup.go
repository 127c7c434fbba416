package oplog

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

// DDLKey identifies a DDL by what it does: its kind, namespaces and a SHA-256
// digest of everything else it carries. Two shards' copies of one command have
// the same key.
type DDLKey [sha256.Size]byte

// Key returns the DDL's key.
func (d *DDL) Key() DDLKey {
	h := sha256.New()
	var b []byte
	b = append(b, byte(d.Kind))
	b = append(b, d.NS.DB...)
	b = append(b, 0)
	b = append(b, d.NS.Coll...)
	b = append(b, 0)
	b = append(b, d.To.DB...)
	b = append(b, 0)
	b = append(b, d.To.Coll...)
	b = append(b, 0)
	if d.DropTarget {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.Options)))
	b = append(b, d.Options...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.Indexes)))
	for _, ix := range d.Indexes {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ix)))
		b = append(b, ix...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.IndexNames)))
	for _, n := range d.IndexNames {
		b = append(b, n...)
		b = append(b, 0)
	}
	h.Write(b)
	var k DDLKey
	h.Sum(k[:0])
	return k
}

// DDLGroups matches the copies of one DDL that the shards of a sharded source
// write to their own oplogs (mongos sends drop, createIndexes, collMod, ... to
// every shard concerned), so that the engine applies each DDL once, and only
// when every shard's writes that precede it are applied.
//
// Two copies belong to the same group when they have the same Key, come from
// different shards and their ts are within the window of the group's first
// copy. A shard repeating a DDL (create an index, drop it, create it again)
// opens a new group the second time, which the other shards' second copies
// join.
//
// How the engine uses it, per shard pipeline:
//
//  1. When the Translator yields an ItemDDL, stop dispatching that shard's
//     later writes to the namespaces the DDL touches (NS and To; every
//     collection of the database for DDLDropDatabase), wait until the shard's
//     appliers have applied everything before the DDL, then call Add.
//  2. Call Ready with every shard's applied position (after each Add and as
//     positions advance). A group is ready when every shard has either added
//     its copy or applied past the group's first ts plus the window, so no
//     copy can still join and no shard still holds writes from before it.
//  3. Apply each ready group's DDL once through mongos (index specs and
//     options relaxed first), then let the contributing shards dispatch the
//     held namespaces again. Applying is idempotent, so a copy that arrives
//     later than the window and opens its own group does no harm.
//
// Holding only the namespaces, not the whole shard, keeps two shards that
// meet two DDLs in different orders from waiting on each other. DDLGroups is
// safe for concurrent use.
type DDLGroups struct {
	shards []string
	window uint32 // seconds

	mu struct {
		sync.Mutex
		groups []*DDLGroup
		nextID uint64
	}
}

// DDLGroup is one logical DDL and the shards whose copies joined it.
type DDLGroup struct {
	ID     uint64
	Key    DDLKey
	DDL    DDL                 // the first copy
	First  primitive.Timestamp // ts of the first copy
	Shards []string            // shards that added a copy, in order
}

// DefaultDDLWindow is how far apart in time the copies of one DDL on different
// shards may be.
const DefaultDDLWindow = 5 * time.Minute

// NewDDLGroups returns an empty set of groups for the given shards. A window of
// zero means DefaultDDLWindow.
func NewDDLGroups(shards []string, window time.Duration) *DDLGroups {
	if window <= 0 {
		window = DefaultDDLWindow
	}
	return &DDLGroups{shards: slices.Clone(shards), window: uint32((window + time.Second - 1) / time.Second)}
}

// Add records the copy of d that shard read at ts and returns the ID of the
// group it joined, and whether it opened that group (the first copy).
func (g *DDLGroups) Add(shard string, ts primitive.Timestamp, d DDL) (id uint64, opened bool, err error) {
	if !slices.Contains(g.shards, shard) {
		return 0, false, fmt.Errorf("DDL from shard %q, which is not one of the shards %v", shard, g.shards)
	}
	key := d.Key()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, grp := range g.mu.groups {
		if grp.Key == key && g.near(grp.First, ts) && !slices.Contains(grp.Shards, shard) {
			grp.Shards = append(grp.Shards, shard)
			return grp.ID, false, nil
		}
	}
	g.mu.nextID++
	grp := &DDLGroup{ID: g.mu.nextID, Key: key, DDL: d, First: ts, Shards: []string{shard}}
	g.mu.groups = append(g.mu.groups, grp)
	return grp.ID, true, nil
}

func (g *DDLGroups) near(a, b primitive.Timestamp) bool {
	d := int64(a.T) - int64(b.T)
	return d <= int64(g.window) && -d <= int64(g.window)
}

// Ready removes and returns the groups that are safe to apply, oldest first:
// every shard either added a copy or has applied past the group's first ts
// plus the window. applied maps each shard to its applied position; a shard
// missing from it has applied nothing.
func (g *DDLGroups) Ready(applied map[string]primitive.Timestamp) []DDLGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ready []DDLGroup
	kept := g.mu.groups[:0]
	for _, grp := range g.mu.groups {
		if g.isReady(grp, applied) {
			c := *grp
			c.Shards = slices.Clone(grp.Shards)
			ready = append(ready, c)
			continue
		}
		kept = append(kept, grp)
	}
	clear(g.mu.groups[len(kept):])
	g.mu.groups = kept
	slices.SortStableFunc(ready, func(a, b DDLGroup) int { return a.First.Compare(b.First) })
	return ready
}

func (g *DDLGroups) isReady(grp *DDLGroup, applied map[string]primitive.Timestamp) bool {
	horizon := primitive.Timestamp{T: grp.First.T + g.window, I: grp.First.I}
	if horizon.T < grp.First.T {
		horizon = primitive.Timestamp{T: ^uint32(0), I: ^uint32(0)}
	}
	for _, s := range g.shards {
		if slices.Contains(grp.Shards, s) {
			continue
		}
		pos, ok := applied[s]
		if !ok || pos.Compare(horizon) <= 0 {
			return false
		}
	}
	return true
}

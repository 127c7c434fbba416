package replay

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

// catalog remembers what the DDL applied on the destination did to each namespace
// and collection UUID, so that the writes and DDL a shard replays after them (a
// shard that was still copying, or replays again from its resume point) reach the
// collection they were made to, or nothing when it is gone:
//
//   - a write or index DDL made before a drop of its namespace (or of its
//     database) is left out: the drop erased it on the source;
//   - one made before a rename of its namespace follows the rename;
//   - a write to a collection UUID dropped since is left out (a shard of a sharded
//     collection may log writes after another shard logged the drop: its own
//     copy of the drop erases them);
//   - a write to a collection UUID renamed since goes to its new name.
//
// It also tells movePrimary's create and drop apart from an application's: see
// effect.
type catalog struct {
	used atomic.Bool // anything recorded: route has work to do
	mu   struct {
		sync.RWMutex
		events  map[oplog.Namespace][]nsEvent    // drops and renames away, oldest first
		dbDrops map[string][]primitive.Timestamp // dropDatabase, oldest first
		dropped map[string]bool                  // dropped collection UUIDs
		renamed map[string]oplog.Namespace       // collection UUID -> name it was renamed to
		live    map[oplog.Namespace][]liveColl   // the UUIDs a namespace was created or renamed in under
	}
}

// nsEvent is a drop of a namespace, or a rename of it to To, applied at At.
type nsEvent struct {
	at     primitive.Timestamp
	rename bool
	to     oplog.Namespace
}

// liveColl is a collection UUID a namespace holds since at.
type liveColl struct {
	uuid string
	at   primitive.Timestamp
}

func (c *catalog) init() {
	c.mu.events = map[oplog.Namespace][]nsEvent{}
	c.mu.dbDrops = map[string][]primitive.Timestamp{}
	c.mu.dropped = map[string]bool{}
	c.mu.renamed = map[string]oplog.Namespace{}
	c.mu.live = map[oplog.Namespace][]liveColl{}
}

// maxRenameHops bounds the renames route follows (a chain of renames, each later
// than the last, is finite; the bound only guards against a corrupt catalog).
const maxRenameHops = 64

// route says where a write made at ts to ns in the collection ui goes now.
func (c *catalog) route(ns oplog.Namespace, ui []byte, ts primitive.Timestamp) (oplog.Namespace, bool) {
	if !c.used.Load() {
		return ns, true
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	at := ts
	for range maxRenameHops {
		for _, d := range c.mu.dbDrops[ns.DB] {
			if at.Before(d) {
				return ns, false
			}
		}
		i := slices.IndexFunc(c.mu.events[ns], func(e nsEvent) bool { return at.Before(e.at) })
		if i < 0 {
			break
		}
		e := c.mu.events[ns][i]
		if !e.rename {
			return ns, false
		}
		ns, at = e.to, e.at
	}
	if ui != nil {
		if c.mu.dropped[string(ui)] {
			return ns, false
		}
		if to, ok := c.mu.renamed[string(ui)]; ok {
			ns = to
		}
	}
	return ns, true
}

// recreatedSince reports whether the namespace of a drop applied at first was
// created or renamed into since.
func (c *catalog) recreatedSince(d *oplog.DDL, first primitive.Timestamp) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.ContainsFunc(c.mu.live[d.NS], func(l liveColl) bool { return first.Before(l.at) })
}

// effect returns the DDL to run on the destination for d, applied by the source
// at first, whether to run it at all (and why not), and what to record once it
// ran.
//
// movePrimary clones each unsharded collection of the database onto its new
// primary shard (a create under a new UUID, on releases that do not mark it
// fromMigrate, and the documents, marked fromMigrate) and then drops it from the
// old one under the old UUID. A drop of a UUID while its namespace holds another
// UUID created before the drop is that second step: the collection lives on, and
// the drop changes nothing on the destination. (An application cannot create a
// namespace that exists, so no other sequence puts two UUIDs in one namespace.)
func (c *catalog) effect(d oplog.DDL, first primitive.Timestamp) (out oplog.DDL, run bool, why string, record func()) {
	switch d.Kind {
	case oplog.DDLDrop, oplog.DDLDropDatabase, oplog.DDLRename, oplog.DDLCreateCollection, oplog.DDLCreateView:
		c.mu.RLock()
		defer c.mu.RUnlock()
		run, why, record := c.catalogChange(d, first)
		return d, run, why, record
	}
	// Index and option changes follow their collection.
	ns, ok := c.route(d.NS, d.UUID, first)
	if !ok {
		return d, false, fmt.Sprintf("%s was dropped after this %s", d.NS, d.Kind), nil
	}
	d.NS = ns
	return d, true, "", nil
}

// catalogChange is effect for the DDL that create, drop or rename, with the read
// lock held.
func (c *catalog) catalogChange(d oplog.DDL, first primitive.Timestamp) (run bool, why string, record func()) {
	uuid := string(d.UUID)
	switch d.Kind {
	case oplog.DDLDrop:
		others := slices.ContainsFunc(c.mu.live[d.NS], func(l liveColl) bool { return l.uuid != uuid && l.at.Before(first) })
		if d.UUID != nil && others {
			return false, "movePrimary dropped the collection from the database's old primary shard; it lives on under another UUID on the new one", func() {
				c.mu.live[d.NS] = slices.DeleteFunc(c.mu.live[d.NS], func(l liveColl) bool { return l.uuid == uuid })
			}
		}
		return true, "", func() {
			c.mu.events[d.NS] = append(c.mu.events[d.NS], nsEvent{at: first})
			delete(c.mu.live, d.NS)
			if d.UUID != nil {
				c.mu.dropped[uuid] = true
			}
		}
	case oplog.DDLDropDatabase:
		return true, "", func() {
			c.mu.dbDrops[d.NS.DB] = append(c.mu.dbDrops[d.NS.DB], first)
			for ns := range c.mu.live {
				if ns.DB == d.NS.DB {
					delete(c.mu.live, ns)
				}
			}
		}
	case oplog.DDLRename:
		return true, "", func() {
			c.mu.events[d.NS] = append(c.mu.events[d.NS], nsEvent{at: first, rename: true, to: d.To})
			if d.DropTarget {
				c.mu.events[d.To] = append(c.mu.events[d.To], nsEvent{at: first})
			}
			if d.DropTargetUUID != nil {
				c.mu.dropped[string(d.DropTargetUUID)] = true
			}
			c.mu.live[d.NS] = slices.DeleteFunc(c.mu.live[d.NS], func(l liveColl) bool { return l.uuid == uuid })
			c.mu.live[d.To] = nil
			if d.UUID != nil {
				c.mu.live[d.To] = []liveColl{{uuid: uuid, at: first}}
				c.mu.renamed[uuid] = d.To
			}
		}
	case oplog.DDLCreateCollection, oplog.DDLCreateView:
		return true, "", func() {
			if d.UUID != nil {
				c.mu.live[d.NS] = append(c.mu.live[d.NS], liveColl{uuid: uuid, at: first})
			}
		}
	}
	return true, "", nil
}

// remember records d, applied at ts before a process restart (DDLOnce.Recover).
func (c *catalog) remember(d oplog.DDL, ts primitive.Timestamp) {
	c.mu.RLock()
	_, _, record := c.catalogChange(d, ts)
	c.mu.RUnlock()
	c.commit(record)
}

// commit runs a record effect returned.
func (c *catalog) commit(record func()) {
	if record == nil {
		return
	}
	c.mu.Lock()
	record()
	c.mu.Unlock()
	c.used.Store(true)
}

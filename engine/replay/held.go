package replay

import (
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

// HeldScope is a namespace ({DB, ""}: a whole database) a shard's position leaves
// aside, and the ts of its oldest entry there the shard has not applied: a write
// on its way to the destination or parked behind one of the shard's own DDL, or a
// DDL not yet handed to the DDL applier (see DDLApplier.Position).
type HeldScope struct {
	NS oplog.Namespace
	TS primitive.Timestamp
}

// heldScopes tracks a run's dispatched items by namespace, from when they are
// dispatched until they are applied (written, or, for a DDL, handed to the DDL
// applier), so that the shard's position can move past them while other shards'
// DDL that touch their namespaces still wait for them, and only those.
//
// An item's ticket in the position watermark is applied as soon as it is
// dispatched, so the position is how far the shard has read and dispatched. Why:
// a DDL of one shard must follow the other shards' earlier entries on its own
// namespaces, not their every write. With the position held at the oldest write
// not applied, one DDL waiting on the destination held the shard's position at the
// first write parked behind it and two shards whose DDL alternate applied them one
// at a time between them (scenario 12 of the fault suite, a busy destination: a lag
// of 15 s that never shrank); and every DDL of a shard waited for the other
// shards' write pipelines to pass its second, the apply lag of each shard, at
// every step of a chain of DDL on one namespace ($out's create and rename).
type heldScopes struct {
	mu      sync.Mutex
	byScope map[oplog.Namespace][]*heldMark // per scope, in ts order
	moved   chan<- struct{}                 // poked, without blocking, when a scope's oldest item is applied (nil: none)
}

// heldMark is one parked item.
type heldMark struct {
	ts     primitive.Timestamp
	scopes []oplog.Namespace
	done   bool
}

func newHeldScopes(moved chan<- struct{}) *heldScopes {
	return &heldScopes{byScope: map[oplog.Namespace][]*heldMark{}, moved: moved}
}

// add records an item parked on scopes; calls come in ts order (the dispatcher's).
func (h *heldScopes) add(scopes []oplog.Namespace, ts primitive.Timestamp) *heldMark {
	m := &heldMark{ts: ts, scopes: scopes}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sc := range scopes {
		h.byScope[sc] = append(h.byScope[sc], m)
	}
	return m
}

// release records that m's item is applied. A nil m is none.
func (h *heldScopes) release(m *heldMark) {
	if m == nil {
		return
	}
	h.mu.Lock()
	m.done = true
	moved := false
	for _, sc := range m.scopes {
		marks := h.byScope[sc]
		n := 0
		for n < len(marks) && marks[n].done {
			n++
		}
		switch {
		case n == 0:
			continue
		case n == len(marks):
			delete(h.byScope, sc)
		default:
			h.byScope[sc] = marks[n:]
		}
		moved = true
	}
	h.mu.Unlock()
	if moved && h.moved != nil {
		select {
		case h.moved <- struct{}{}:
		default:
		}
	}
}

// snapshot is each held scope with its oldest unapplied item's ts.
func (h *heldScopes) snapshot() []HeldScope {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.byScope) == 0 {
		return nil
	}
	out := make([]HeldScope, 0, len(h.byScope))
	for sc, marks := range h.byScope {
		out = append(out, HeldScope{NS: sc, TS: marks[0].ts})
	}
	slices.SortFunc(out, func(a, b HeldScope) int { return a.TS.Compare(b.TS) })
	return out
}

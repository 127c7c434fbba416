package replay

import (
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

// HeldScope is a namespace ({DB, ""}: a whole database) a shard's position leaves
// aside, and the ts of its oldest entry there the shard has not applied: a write
// or a DDL parked behind one of the shard's own DDL on its way (see
// DDLApplier.Position).
type HeldScope struct {
	NS oplog.Namespace
	TS primitive.Timestamp
}

// heldScopes tracks a run's parked items, from when they are parked until they
// are applied (released and written, or, for a DDL, handed to the DDL applier),
// so that the shard's position can move past them while other shards' DDL that
// touch their namespaces still wait for them.
//
// A parked item's ticket in the position watermark is applied when it is parked:
// without that, one DDL waiting on the destination would hold the shard's position
// at the first write parked behind it, every other shard's DDL would wait for it
// too, and two shards whose DDL alternate would apply them one at a time between
// them (scenario 12 of the fault suite, a busy destination: a lag of 15 s that
// never shrank).
type heldScopes struct {
	mu      sync.Mutex
	byScope map[oplog.Namespace][]*heldMark // per scope, in ts order
}

// heldMark is one parked item.
type heldMark struct {
	ts     primitive.Timestamp
	scopes []oplog.Namespace
	done   bool
}

func newHeldScopes() *heldScopes {
	return &heldScopes{byScope: map[oplog.Namespace][]*heldMark{}}
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
	defer h.mu.Unlock()
	m.done = true
	for _, sc := range m.scopes {
		marks := h.byScope[sc]
		n := 0
		for n < len(marks) && marks[n].done {
			n++
		}
		if n == len(marks) {
			delete(h.byScope, sc)
		} else {
			h.byScope[sc] = marks[n:]
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

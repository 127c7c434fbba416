package replay

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/shardlift/shardlift/engine/oplog"
)

// OrderedNamespaces are the namespaces whose writes every shard's replay applies in
// its oplog order: those with a unique index (other than _id) restored on the
// destination while the sync runs. A shard's other writes go to its appliers by
// document and meet the destination in any order across documents, so two writes
// that swap a unique value between documents could reach it in the other order: a
// duplicate the source never held, which a unique index refuses. The writes of an
// ordered namespace all go to one applier (by namespace), which sends them in
// ordered bulk writes, so the destination passes through the source's own states,
// none of which held a duplicate: two documents that share a unique value live on
// one shard (a sharded collection's unique index is prefixed by its shard key; an
// unsharded collection lives on one shard).
//
// Add changes the set for every replay that shares it: each running one drains its
// appliers (everything queued before, by document) before it applies a write by
// the new routing, and then acknowledges the version (Acked). A new run starts
// with the set as it is. Safe for concurrent use.
type OrderedNamespaces struct {
	mu      sync.Mutex
	set     map[oplog.Namespace]bool
	version uint64
	changed chan struct{} // closed and replaced by Add
	acked   map[string]uint64
	ackedCh chan struct{} // closed and replaced by every acknowledgement
}

// NewOrderedNamespaces starts with ns.
func NewOrderedNamespaces(ns ...oplog.Namespace) *OrderedNamespaces {
	o := &OrderedNamespaces{set: map[oplog.Namespace]bool{}, changed: make(chan struct{}), acked: map[string]uint64{}, ackedCh: make(chan struct{})}
	for _, n := range ns {
		o.set[n] = true
	}
	return o
}

// Add makes ns ordered and returns the set's version that includes it.
func (o *OrderedNamespaces) Add(ns oplog.Namespace) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.set[ns] {
		return o.version
	}
	o.set[ns] = true
	o.version++
	close(o.changed)
	o.changed = make(chan struct{})
	return o.version
}

// Has reports whether ns is ordered.
func (o *OrderedNamespaces) Has(ns oplog.Namespace) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.set[ns]
}

// snapshot is the set as a run applies it, its version, and what closes when it
// changes.
func (o *OrderedNamespaces) snapshot() (map[oplog.Namespace]bool, uint64, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.set), o.version, o.changed
}

// ack records that shard's replay applies every write it dispatches from now on by
// the set's version v.
func (o *OrderedNamespaces) ack(shard string, v uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.acked[shard] >= v && v != 0 {
		return
	}
	o.acked[shard] = v
	close(o.ackedCh)
	o.ackedCh = make(chan struct{})
}

// WaitAcked blocks until the replay of shard acknowledged version v (every write it
// has not applied yet goes by it), or until gone reports that the shard's replay is
// not running (its next run starts with the set as it is then; gone is asked
// again every second).
func (o *OrderedNamespaces) WaitAcked(ctx context.Context, shard string, v uint64, gone func() bool) error {
	for {
		o.mu.Lock()
		done, ch := o.acked[shard] >= v, o.ackedCh
		o.mu.Unlock()
		if done || gone() {
			return nil
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

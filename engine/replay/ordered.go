package replay

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// OrderedNamespaces are the namespaces with a unique index (other than _id)
// restored on the destination while the sync runs, and those indexes. A shard's
// writes go to its appliers by document and meet the destination in any order
// across documents, so two writes that swap a unique value between documents could
// reach it in the other order: a duplicate the source never held, which a unique
// index refuses. The writes of these namespaces keep the parallel appliers but
// obey two rules (see uniqueOrder), so that the destination never holds a
// duplicate the source did not, and a duplicate it meets is either resolved by
// waiting or a divergence:
//
//   - a write that gives its document a key of a restored index is not sent while
//     an earlier write of the namespace that gives that key (or one not known
//     here) is not applied;
//   - a write refused as a duplicate waits until every earlier write of this shard
//     to its namespace is applied, and is then sent again: a second refusal is a
//     divergence (or, after a restart, a document left in a later state).
//
// Two documents that share a unique value live on one shard (a sharded
// collection's unique index is prefixed by its shard key; an unsharded collection
// lives on one shard), so one shard's order is enough.
//
// Add changes the set for every replay that shares it: each running one drains its
// appliers (everything queued before) before it applies a write by the new rules,
// and then acknowledges the version (Acked). A new run starts with the set as it
// is. Safe for concurrent use.
type OrderedNamespaces struct {
	mu      sync.Mutex
	set     map[oplog.Namespace][]uniqueIndex
	version uint64
	changed chan struct{} // closed and replaced by Add
	acked   map[string]uint64
	ackedCh chan struct{} // closed and replaced by every acknowledgement
}

// UniqueIndex is a unique index of NS restored on the destination: Spec is its
// specification as listIndexes gives it (key, collation, ...).
type UniqueIndex struct {
	NS   oplog.Namespace
	Spec bson.Raw
}

// NewOrderedNamespaces starts with the indexes ix.
func NewOrderedNamespaces(ix ...UniqueIndex) *OrderedNamespaces {
	o := &OrderedNamespaces{set: map[oplog.Namespace][]uniqueIndex{}, changed: make(chan struct{}), acked: map[string]uint64{}, ackedCh: make(chan struct{})}
	for _, x := range ix {
		o.set[x.NS] = append(o.set[x.NS], parseUniqueIndex(x.Spec))
	}
	return o
}

// Add orders the writes of x's namespace by x too and returns the set's version
// that includes it.
func (o *OrderedNamespaces) Add(x UniqueIndex) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	u := parseUniqueIndex(x.Spec)
	for _, have := range o.set[x.NS] {
		if slices.Equal(have.paths, u.paths) && have.collated == u.collated {
			return o.version
		}
	}
	o.set[x.NS] = append(o.set[x.NS], u)
	o.version++
	close(o.changed)
	o.changed = make(chan struct{})
	return o.version
}

// Has reports whether ns is ordered.
func (o *OrderedNamespaces) Has(ns oplog.Namespace) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.set[ns]) > 0
}

// snapshot is the set as a run applies it, its version, and what closes when it
// changes.
func (o *OrderedNamespaces) snapshot() (map[oplog.Namespace][]uniqueIndex, uint64, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	set := make(map[oplog.Namespace][]uniqueIndex, len(o.set))
	for ns, ix := range o.set {
		set[ns] = slices.Clone(ix)
	}
	return set, o.version, o.changed
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

package replay

import (
	"context"
	"sync"

	"github.com/shardlift/shardlift/engine/oplog"
)

// uniqueOrder holds, for one run and one namespace of OrderedNamespaces, the
// writes dispatched and not applied yet, so that a write can wait for the earlier
// ones that its rules name: those that take a key it takes (mayTake), or all of
// them (earlierApplied). Every wait is for earlier writes only, and an applier
// sends a batch's writes of one ordered namespace in dispatch order up to the
// first that waits, so the earliest write waiting never waits for one held behind
// another wait: the waits always end.
type uniqueOrder struct {
	mu      sync.Mutex
	pending markList             // every write, in dispatch order
	byKey   map[string]*markList // by key taken; "i:" lists the writes that take any key of index i
	changed chan struct{}        // closed when a write is applied; nil while nobody waits
}

// orderMark is a write's place in its namespace's uniqueOrder.
type orderMark struct {
	o    *uniqueOrder
	seq  uint64   // dispatch order
	doc  string   // the document written (docKey)
	keys []string // the keys it takes (takenKeys)
	done bool     // applied; under o.mu
}

// markList is a list of marks in dispatch order, the applied ones dropped from its
// head.
type markList []*orderMark

func (l *markList) trim() {
	for len(*l) > 0 && (*l)[0].done {
		(*l)[0] = nil
		*l = (*l)[1:]
	}
}

// before reports whether a write dispatched before m is in l, not applied; with
// other, only a write of another document counts.
func (l *markList) before(m *orderMark, other bool) bool {
	l.trim()
	for _, e := range *l {
		if e.seq >= m.seq {
			return false
		}
		if !e.done && (!other || e.doc != m.doc) {
			return true
		}
	}
	return false
}

func newUniqueOrders(set map[oplog.Namespace][]uniqueIndex) map[oplog.Namespace]*uniqueOrder {
	orders := make(map[oplog.Namespace]*uniqueOrder, len(set))
	for ns := range set {
		orders[ns] = &uniqueOrder{byKey: map[string]*markList{}}
	}
	return orders
}

// add records a write of doc dispatched as seq that takes keys.
func (o *uniqueOrder) add(seq uint64, doc string, keys []string) *orderMark {
	m := &orderMark{o: o, seq: seq, doc: doc, keys: keys}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending = append(o.pending, m)
	for _, k := range keys {
		prefix, _ := indexPrefix(k)
		o.list(k).append(m)
		o.list(prefix).append(m)
	}
	return m
}

func (o *uniqueOrder) list(key string) *markList {
	l := o.byKey[key]
	if l == nil {
		l = &markList{}
		o.byKey[key] = l
	}
	return l
}

func (l *markList) append(m *orderMark) { *l = append(*l, m) }

// finish records m applied (or stepped over).
func (m *orderMark) finish() {
	o := m.o
	o.mu.Lock()
	defer o.mu.Unlock()
	m.done = true
	o.pending.trim()
	for _, k := range m.keys {
		prefix, _ := indexPrefix(k)
		o.trimKey(k)
		o.trimKey(prefix)
	}
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
}

func (o *uniqueOrder) trimKey(key string) {
	if l := o.byKey[key]; l != nil {
		if l.trim(); len(*l) == 0 {
			delete(o.byKey, key)
		}
	}
}

// mayTake reports whether no write of another document dispatched before m that
// takes a key m takes (or any key of its index, where either takes any) is left to
// apply. The earlier writes of m's own document are before it on its applier, in
// order, bulk write after bulk write.
func (m *orderMark) mayTake() bool {
	o := m.o
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range m.keys {
		prefix, any := indexPrefix(k)
		lists := []string{k, prefix + "*"}
		if any {
			lists = []string{prefix}
		}
		for _, key := range lists {
			if l := o.byKey[key]; l != nil && l.before(m, true) {
				return false
			}
		}
	}
	return true
}

// earlierApplied reports whether every write dispatched before m is applied.
func (m *orderMark) earlierApplied() bool {
	o := m.o
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.pending.before(m, false)
}

// wait blocks until ok reports true.
func (m *orderMark) wait(ctx context.Context, ok func() bool) error {
	o := m.o
	for !ok() {
		o.mu.Lock()
		if o.changed == nil {
			o.changed = make(chan struct{})
		}
		ch := o.changed
		o.mu.Unlock()
		if ok() { // applied between the check and the channel
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

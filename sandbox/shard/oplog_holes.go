package shard

import (
	"sync"
	"time"
)

// Oplog holes. On a real primary, writes commit concurrently: an entry can be visible
// while an earlier one (a smaller ts) is not yet, so a reader that takes the newest
// visible entry, or a tailer that passes the gap, misses the earlier one for good.
// The sandbox's writes are serialized, so it makes holes on purpose: an entry in a
// hole is skipped by every reader of local.oplog.rs (forward, backward, tailing)
// until the hole closes, while the entries after it are served; secondaries
// replicate only up to the first open hole, as MongoDB's replication reads up to the
// all-durable point. The write's data change is visible in FerretDB at once: a hole
// hides the entry only.

// hole is an entry's invisibility: until a time, or until closed.
type hole struct {
	mu     sync.Mutex
	until  time.Time // zero: until closed
	closed bool
}

// open reports whether the entry is still hidden (nil: never was).
func (h *hole) open() bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closed && (h.until.IsZero() || time.Now().Before(h.until))
}

func (h *hole) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
}

// holePolicy says which new entries fall into holes (under the oplog's lock).
type holePolicy struct {
	every   time.Duration // >0: every other write's entry hides for this long
	flip    bool
	pending []*hole // holes opened by HideNextEntry, waiting for an entry
	opened  []*hole // holes HideNextEntry made, until RevealEntries
}

// next is the hole of a new entry for draft d (nil: visible at once). No-ops never
// fall into one.
func (p *holePolicy) next(d draft) *hole {
	if d.op == "n" && d.ns == "" {
		return nil
	}
	if len(p.pending) > 0 {
		h := p.pending[0]
		p.pending = p.pending[1:]
		return h
	}
	if p.every <= 0 {
		return nil
	}
	p.flip = !p.flip
	if !p.flip {
		return nil
	}
	return &hole{until: time.Now().Add(p.every)}
}

// setHoles makes every other write's entry hide for d (0: none).
func (l *oplog) setHoles(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.holes.every = d
}

// hideNext makes the next n entries of writes hidden until revealAll.
func (l *oplog) hideNext(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		h := &hole{}
		l.mu.holes.pending = append(l.mu.holes.pending, h)
		l.mu.holes.opened = append(l.mu.holes.opened, h)
	}
}

// revealAll closes the holes hideNext opened (and forgets those not yet used).
func (l *oplog) revealAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.mu.holes.opened {
		h.close()
	}
	l.mu.holes.opened, l.mu.holes.pending = nil, nil
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
}

// revealHeld shows the entries a draft's held hole hid, and wakes their readers.
func (l *oplog) revealHeld(h *hole) {
	h.close()
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
}

// HideNextEntries makes the primary's next n entries of writes invisible to readers of
// its oplog, the entries after them visible, until RevealEntries: oplog holes for a
// test to place exactly.
func (f *Front) HideNextEntries(n int) error {
	p, err := f.primaryNode()
	if err != nil {
		return err
	}
	p.oplog.hideNext(n)
	return nil
}

// RevealEntries closes the holes HideNextEntries opened.
func (f *Front) RevealEntries() error {
	nodes, err := f.running()
	if err != nil {
		return err
	}
	for _, n := range nodes {
		n.oplog.revealAll()
	}
	return nil
}

// primaryNode is the set's primary.
func (f *Front) primaryNode() (*node, error) {
	nodes, err := f.running()
	if err != nil {
		return nil, err
	}
	f.set.mu.Lock()
	defer f.set.mu.Unlock()
	return nodes[f.set.primary], nil
}

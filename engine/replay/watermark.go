package replay

import (
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

// OpTime is an entry's place in its shard's oplog: its ts and the term ("t") of the
// primary that wrote it. Term 0 is unknown: an entry without one, or a checkpoint
// saved before terms were kept (a replica set writes term 0 only before its first
// election, when it takes no writes).
type OpTime struct {
	TS   primitive.Timestamp
	Term int64
}

// Ticket identifies one entry handed to an applier; the applier returns it once the
// entry's write is durable on the destination.
type Ticket uint64

// Watermark computes a shard's resume point: the newest oplog ts such that the entry at
// that ts and every entry before it have been applied durably.
//
// Entries are dispatched in oplog order to many appliers, which finish in any order. The
// resume point is therefore not the newest ts any applier reached but the minimum over
// appliers: an applier that was handed entries and applied none holds the floor, however
// far the others went. Entries sharing one ts (the operations of a committed
// transaction carry the commit's ts) move the floor only when all of them are applied,
// so a resume never starts after a half-applied transaction.
type Watermark struct {
	moved chan<- struct{} // poked, without blocking, when the floor moves (nil: none)
	mu    struct {
		sync.Mutex
		floor   OpTime
		head    Ticket // ticket of pending[0]
		pending []slot // dispatched, in dispatch order, from head on
	}
}

type slot struct {
	ts   primitive.Timestamp
	term int64
	done bool
}

// NewWatermark starts at floor: the ts from which the shard is known applied (its T0
// or the checkpoint it resumes from).
func NewWatermark(floor primitive.Timestamp) *Watermark {
	return newWatermarkAt(OpTime{TS: floor})
}

func newWatermarkAt(floor OpTime) *Watermark {
	w := &Watermark{}
	w.mu.floor = floor
	return w
}

// Dispatch records that the entry at ts was handed to an applier. Calls must come in
// non-decreasing ts order, from one goroutine (the shard's dispatcher).
func (w *Watermark) Dispatch(ts primitive.Timestamp) (Ticket, error) {
	return w.DispatchAt(OpTime{TS: ts})
}

// DispatchAt is Dispatch of an entry whose term is known: the floor keeps it.
func (w *Watermark) DispatchAt(at OpTime) (Ticket, error) {
	ts := at.TS
	w.mu.Lock()
	defer w.mu.Unlock()
	last := w.mu.floor.TS
	if n := len(w.mu.pending); n > 0 {
		last = w.mu.pending[n-1].ts
	}
	if ts.Before(last) {
		return 0, fmt.Errorf("oplog entry %v dispatched after %v: entries must arrive in ts order", ts, last)
	}
	t := w.mu.head + Ticket(len(w.mu.pending))
	w.mu.pending = append(w.mu.pending, slot{ts: ts, term: at.Term})
	return t, nil
}

// Skip moves the position past an entry that needs no write (a no-op, a filtered
// entry): it counts as applied as soon as everything before it is. Skips that follow
// a done slot extend that slot instead of adding one, so a long run of no-ops behind
// a write still in flight holds one slot, not one per entry.
func (w *Watermark) Skip(ts primitive.Timestamp) error {
	return w.SkipAt(OpTime{TS: ts})
}

// SkipAt is Skip of an entry whose term is known.
func (w *Watermark) SkipAt(at OpTime) error {
	ts := at.TS
	w.mu.Lock()
	if n := len(w.mu.pending); n > 0 && w.mu.pending[n-1].done {
		last := &w.mu.pending[n-1]
		if ts.Before(last.ts) {
			w.mu.Unlock()
			return fmt.Errorf("oplog entry %v dispatched after %v: entries must arrive in ts order", ts, last.ts)
		}
		last.ts, last.term = ts, at.Term
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	t, err := w.DispatchAt(at)
	if err != nil {
		return err
	}
	w.Applied(t)
	return nil
}

// Applied records that the entry behind t is durable on the destination.
func (w *Watermark) Applied(t Ticket) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := int(t - w.mu.head)
	if t < w.mu.head || i >= len(w.mu.pending) {
		return // already accounted for
	}
	w.mu.pending[i].done = true
	n := 0
	for n < len(w.mu.pending) && w.mu.pending[n].done {
		n++
	}
	if n == 0 {
		return
	}
	// Move the floor to the newest completed ts none of whose siblings is still pending.
	for k := n; k > 0; k-- {
		ts := w.mu.pending[k-1].ts
		if k == len(w.mu.pending) || w.mu.pending[k].ts != ts {
			w.mu.floor = OpTime{TS: ts, Term: w.mu.pending[k-1].term}
			break
		}
	}
	w.mu.pending = w.mu.pending[n:]
	w.mu.head += Ticket(n)
	if len(w.mu.pending) == 0 {
		w.mu.pending = nil
	}
	if w.moved != nil {
		select {
		case w.moved <- struct{}{}:
		default:
		}
	}
}

// Floor is the resume point: every entry at or before it has been applied.
func (w *Watermark) Floor() primitive.Timestamp {
	return w.At().TS
}

// At is the resume point with the term of its entry.
func (w *Watermark) At() OpTime {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.floor
}

// InFlight is the number of dispatched entries not yet accounted for.
func (w *Watermark) InFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.mu.pending)
}

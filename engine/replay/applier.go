package replay

import (
	"context"
	"time"

	"github.com/shardlift/shardlift/engine/oplog"
)

// apply is one applier: it takes tasks in queue order, accumulates writes into a
// batch and writes it when it is full or, when no more writes arrived within the
// linger, once none of its batches is in flight.
//
// Full batches are pipelined: up to the run's window of them (Config.Pipeline, or
// chosen from the destination's round trip: see Shard.pipelineDepth) are in
// flight at once, so that a destination far away costs a round trip per window
// of batches rather than per round of every batch. A document's writes keep their order: a write
// waits (deferred) while its document has a write in a batch in flight, or an
// earlier write deferred, or while the batch being filled holds a write of the
// document on the other side of a delete (which would need a second round: see
// writeRounds); it joins a batch once that batch is answered, and the writes of
// other documents go on meanwhile. So every batch in flight is one round.
//
// A batch that is not full goes only when nothing else of the applier is in
// flight (or the queue is closed), so that writes arriving slowly gather into one
// bulk write while the one before it travels, as when each batch waited for the
// one before: pipelining adds no commands for a destination that is slow rather
// than far. A write of an ordered namespace (a unique index restored, see
// OrderedNamespaces) is applied as before pipelining: once every batch in flight
// is answered and every deferred write sent, in a batch that goes alone, in
// rounds; its waits on other appliers' writes (see sendable) then never hold up
// a deferred write.
func (r *run) apply(ctx context.Context, q *queue) error {
	a := &applier{r: r, q: q, window: r.window,
		inFlight: map[string]*flight{}, deferred: map[string][]task{}, batchDocs: map[string]bool{},
		landed: make(chan *flight, max(r.window, 1))}
	err := a.loop(ctx)
	if werr := a.settleFlights(); err == nil {
		err = werr
	}
	return err
}

// applier is one applier's state (see run.apply).
type applier struct {
	r      *run
	q      *queue
	window int // batches in flight at most (run.window)

	b         batch
	batchKeys []string        // flightKey of each of b.tasks, when pipelining
	batchDocs map[string]bool // the documents of b, when pipelining: whether their writes in it are deletes

	flights  int                // batches in flight
	inFlight map[string]*flight // by document (flightKey): the batch in flight that writes it
	landed   chan *flight       // answered batches
	failed   error              // the first error of a batch answered

	deferred  map[string][]task // writes waiting, by document, in queue order
	nDeferred int
	ready     []string // documents with deferred writes whose batch landed
}

// flight is a batch in flight.
type flight struct {
	keys []string // its documents (flightKey), one per write
	err  error
}

// flightKey names a write's document across namespaces.
func flightKey(w *oplog.Write) string {
	id := w.Filter.Lookup("_id")
	k := make([]byte, 0, len(w.NS.DB)+len(w.NS.Coll)+3+len(id.Value))
	k = append(k, w.NS.DB...)
	k = append(k, 0)
	k = append(k, w.NS.Coll...)
	k = append(k, 0, byte(id.Type))
	k = append(k, id.Value...)
	return string(k)
}

func (a *applier) pipelining() bool { return a.window > 1 }

func (a *applier) loop(ctx context.Context) error {
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		if err := a.reap(); err != nil {
			return err
		}
		if err := a.drain(ctx); err != nil {
			return err
		}
		if a.nDeferred >= a.r.cfg.BatchWrites && a.flights > 0 {
			// Enough writes wait on batches in flight: read no more until one lands.
			if err := a.awaitLanding(ctx); err != nil {
				return err
			}
			continue
		}
		t, ok, closed := a.q.pop()
		if ok {
			if err := a.add(ctx, t); err != nil {
				return err
			}
			continue
		}
		if a.flights == 0 && len(a.b.tasks) == 0 && a.nDeferred > 0 {
			a.readyAll() // (never left so: what they waited on landed or was sent)
			continue
		}
		switch {
		case closed && len(a.b.tasks) > 0:
			// Nothing more comes: the batch goes as soon as there is room.
			if err := a.send(ctx); err != nil {
				return err
			}
			continue
		case closed && a.flights == 0:
			return nil
		case closed:
			if err := a.awaitLanding(ctx); err != nil {
				return err
			}
			continue
		}
		if len(a.b.tasks) == 0 || a.flights > 0 {
			// Nothing to write, or a batch that is not full waits for the batches in
			// flight: more writes may join it meanwhile.
			select {
			case <-a.q.signal:
			case f := <-a.landed:
				a.land(f)
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		linger.Reset(a.r.cfg.Linger)
		select {
		case <-a.q.signal:
			linger.Stop()
		case <-linger.C:
			if err := a.send(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// add takes a write from the queue (see place); one of an ordered namespace only
// once nothing is in flight or deferred.
func (a *applier) add(ctx context.Context, t task) error {
	if t.mark != nil && (a.flights > 0 || a.nDeferred > 0) {
		if err := a.settle(ctx); err != nil {
			return err
		}
	}
	if !a.r.fits(&a.b, &t) {
		if err := a.send(ctx); err != nil {
			return err
		}
	}
	if !a.pipelining() || t.mark != nil || a.b.ordered != nil {
		// (While the batch holds a write of an ordered namespace nothing is in
		// flight or deferred: see settle and send.)
		return a.put(ctx, t, "")
	}
	key := flightKey(&t.write)
	if q, ok := a.deferred[key]; ok || a.busy(key, &t) {
		a.deferred[key] = append(q, t)
		a.nDeferred++
		return nil
	}
	return a.put(ctx, t, key)
}

// busy reports whether t, a write of the document key, must wait: the document
// is in flight, or the batch holds a write of it on the other side of a delete.
func (a *applier) busy(key string, t *task) bool {
	if a.inFlight[key] != nil {
		return true
	}
	del, ok := a.batchDocs[key]
	return ok && del != (t.write.Kind == oplog.Delete)
}

// put appends t (of the document key, "" when not pipelining) to the batch, which
// has room for it, and sends the batch when it is full.
func (a *applier) put(ctx context.Context, t task, key string) error {
	b := &a.b
	b.tasks = append(b.tasks, t)
	b.bytes += t.bytes
	if t.mark != nil {
		b.ordered = &t.write.NS
	}
	if isUpdateStatement(&t.write) {
		b.updates++
	}
	if key != "" {
		a.batchKeys = append(a.batchKeys, key)
		a.batchDocs[key] = t.write.Kind == oplog.Delete
	}
	if a.r.full(b) {
		return a.send(ctx)
	}
	return nil
}

// send writes the batch: in flight beside the others when pipelining (waiting for
// room first), else here, once nothing is in flight.
func (a *applier) send(ctx context.Context) error {
	if len(a.b.tasks) == 0 {
		return nil
	}
	if !a.pipelining() || a.b.ordered != nil || len(a.batchKeys) != len(a.b.tasks) {
		for a.flights > 0 {
			if err := a.awaitLanding(ctx); err != nil {
				return err
			}
		}
		tasks := a.b.tasks
		err := a.r.flush(ctx, tasks)
		clear(tasks)
		a.b = batch{tasks: tasks[:0]}
		a.batchKeys = a.batchKeys[:0]
		clear(a.batchDocs)
		return err
	}
	for a.flights >= a.window {
		if err := a.awaitLanding(ctx); err != nil {
			return err
		}
	}
	tasks := a.b.tasks
	f := &flight{keys: a.batchKeys}
	// The next batch's slices are new (these two go with the flight), sized as
	// these were.
	a.b = batch{tasks: make([]task, 0, cap(tasks))}
	a.batchKeys = make([]string, 0, cap(f.keys))
	clear(a.batchDocs)
	for _, k := range f.keys {
		a.inFlight[k] = f
	}
	a.flights++
	go func() {
		f.err = a.r.flush(ctx, tasks)
		a.landed <- f
	}()
	return nil
}

// land records an answered batch: its documents are free again, and those with
// writes deferred are ready.
func (a *applier) land(f *flight) {
	a.flights--
	for _, k := range f.keys {
		if a.inFlight[k] != f {
			continue // already seen (a document written twice), or in a later batch
		}
		delete(a.inFlight, k)
		if _, ok := a.deferred[k]; ok {
			a.ready = append(a.ready, k)
		}
	}
	if f.err != nil && a.failed == nil {
		a.failed = f.err
	}
}

// reap lands the batches answered, without waiting, and returns the first error.
func (a *applier) reap() error {
	for {
		select {
		case f := <-a.landed:
			a.land(f)
		default:
			return a.failed
		}
	}
}

// awaitLanding waits for a batch in flight to be answered.
func (a *applier) awaitLanding(ctx context.Context) error {
	select {
	case f := <-a.landed:
		a.land(f)
		return a.failed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readyAll marks every document with deferred writes ready.
func (a *applier) readyAll() {
	for k := range a.deferred {
		a.ready = append(a.ready, k)
	}
}

// drain moves the deferred writes of the ready documents into the batch, each
// document's in order, up to the first that must wait again (see busy).
func (a *applier) drain(ctx context.Context) error {
	for len(a.ready) > 0 {
		k := a.ready[len(a.ready)-1]
		a.ready = a.ready[:len(a.ready)-1]
		q, ok := a.deferred[k]
		if !ok {
			continue
		}
		delete(a.deferred, k)
		for i := range q {
			t := q[i]
			if !a.r.fits(&a.b, &t) {
				if err := a.send(ctx); err != nil {
					a.deferred[k] = q[i:] // the run fails
					return err
				}
			}
			if a.busy(k, &t) {
				a.deferred[k] = q[i:]
				break
			}
			a.nDeferred--
			if err := a.put(ctx, t, k); err != nil {
				if i+1 < len(q) {
					a.deferred[k] = q[i+1:] // the run fails
				}
				return err
			}
		}
	}
	return nil
}

// settle waits until nothing of the applier is in flight or deferred: the deferred
// writes are sent meanwhile.
func (a *applier) settle(ctx context.Context) error {
	for a.flights > 0 || a.nDeferred > 0 {
		if a.flights == 0 {
			// What is deferred waits on the batch (a document's next round).
			if err := a.send(ctx); err != nil {
				return err
			}
			if a.flights == 0 {
				a.readyAll()
			}
		}
		if a.flights > 0 {
			if err := a.awaitLanding(ctx); err != nil {
				return err
			}
		}
		if err := a.drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

// settleFlights waits for every batch in flight to be answered, however the applier
// ends (their writes run on the destination whatever happens here).
func (a *applier) settleFlights() error {
	for a.flights > 0 {
		a.land(<-a.landed)
	}
	return a.failed
}

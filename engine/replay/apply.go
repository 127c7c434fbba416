package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shardlift/shardlift/engine/oplog"
)

// batch is what an applier accumulates before a bulk write.
type batch struct {
	tasks   []task
	bytes   int64
	updates int
}

func isUpdateStatement(w *oplog.Write) bool {
	return w.Kind == oplog.Update || w.Kind == oplog.InsertReplace
}

// fits reports whether t can join b within the bulk limits.
func (r *run) fits(b *batch, t *task) bool {
	if len(b.tasks) == 0 {
		return true
	}
	return len(b.tasks) < r.cfg.BatchWrites && b.bytes+t.bytes <= r.cfg.BatchBytes &&
		(!isUpdateStatement(&t.write) || b.updates < r.cfg.BatchUpdates)
}

func (r *run) full(b *batch) bool {
	return len(b.tasks) >= r.cfg.BatchWrites || b.bytes >= r.cfg.BatchBytes || b.updates >= r.cfg.BatchUpdates
}

// apply is one applier: it takes tasks in queue order, accumulates writes into a
// batch and writes it when it is full, when a barrier comes, or when no more writes
// arrived within the linger.
func (r *run) apply(ctx context.Context, q *queue) error {
	var b batch
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	flush := func() error {
		if len(b.tasks) == 0 {
			return nil
		}
		err := r.flush(ctx, b.tasks)
		clear(b.tasks)
		b = batch{tasks: b.tasks[:0]}
		return err
	}
	for {
		t, ok, closed := q.pop()
		if !ok {
			if closed {
				return flush()
			}
			if len(b.tasks) == 0 {
				select {
				case <-q.signal:
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			linger.Reset(r.cfg.Linger)
			select {
			case <-q.signal:
				linger.Stop()
			case <-linger.C:
				if err := flush(); err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if t.barrier != nil {
			if err := flush(); err != nil {
				return err
			}
			t.barrier.pass()
			continue
		}
		if !r.fits(&b, &t) {
			if err := flush(); err != nil {
				return err
			}
		}
		b.tasks = append(b.tasks, t)
		b.bytes += t.bytes
		if isUpdateStatement(&t.write) {
			b.updates++
		}
		if r.full(&b) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// flush writes a batch: one ordered bulk write per namespace (a document's writes
// all go to one namespace, in order), then marks each write applied.
func (r *run) flush(ctx context.Context, tasks []task) error {
	type group struct {
		ns    oplog.Namespace
		tasks []task
	}
	var groups []group
next:
	for _, t := range tasks {
		for i := range groups {
			if groups[i].ns == t.write.NS {
				groups[i].tasks = append(groups[i].tasks, t)
				continue next
			}
		}
		groups = append(groups, group{ns: t.write.NS, tasks: []task{t}})
	}
	for _, g := range groups {
		if err := r.writeNS(ctx, g.ns, g.tasks); err != nil {
			return err
		}
	}
	return nil
}

// writeNS writes tasks to ns, retrying transient errors and, up to the consistency
// point, stepping over the idempotency errors (see idempotencyCodes). A pipeline
// update the destination cannot run is applied from its diff instead (DiffWriter).
func (r *run) writeNS(ctx context.Context, ns oplog.Namespace, tasks []task) error {
	writes := make([]oplog.Write, len(tasks))
	for i := range tasks {
		writes[i] = tasks[i].write
	}
	retry := newBackoff()
	retried := false
	for start := 0; start < len(tasks); {
		end := len(tasks)
		if r.s.noPipelines.Load() {
			for i := start; i < end; i++ {
				if byDiff(&tasks[i]) {
					end = i
					break
				}
			}
		}
		var n int
		var err error
		if end == start {
			err = r.cfg.Destination.(DiffWriter).WriteDiff(ctx, ns, tasks[start].write.Filter, tasks[start].diff)
		} else {
			n, err = r.cfg.Destination.Write(ctx, ns, writes[start:end])
		}
		if err == nil {
			r.applied(tasks[start:max(end, start+1)])
			start = max(end, start+1)
			continue
		}
		n = min(max(n, 0), max(end-start-1, 0))
		r.applied(tasks[start : start+n])
		start += n
		failed := &tasks[start]
		if _, ok := r.cfg.Destination.(DiffWriter); ok && byDiff(failed) && hasCode(err, codeNotImplemented) {
			if !r.s.noPipelines.Swap(true) {
				r.cfg.Logger.Warn("the destination runs no pipeline updates: applying those from their diff, reading and replacing the document", "err", err)
			}
			continue
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case isTransient(err):
			retried = true
			r.s.setRetrying(retryWork, fmt.Sprintf("retrying: write to %s: %v", ns, err))
			if err := retry.wait(ctx, nil); err != nil {
				return err
			}
		case failed.done.tolerate && (hasCode(err, idempotencyCodes...) || errors.Is(err, errDiffMismatch)):
			r.s.c.tolerated.Add(1)
			r.cfg.Logger.Debug("tolerated an idempotency error before the consistency point",
				"ns", ns, "entry", tsString(failed.done.entry), "err", err)
			r.applied(tasks[start : start+1])
			start++
		default:
			return fmt.Errorf("apply the %s of the entry at %s to %s: %w", failed.write.Kind, tsString(failed.done.entry), ns, err)
		}
	}
	if retried {
		r.s.setRetrying(retryWork, "")
	}
	return nil
}

// byDiff reports whether a task is a pipeline update to apply from its diff.
func byDiff(t *task) bool { return t.write.Pipeline != nil && t.diff != nil }

// applied marks written tasks: their tickets, their bytes, the counters.
func (r *run) applied(tasks []task) {
	var bytes int64
	for i := range tasks {
		t := &tasks[i]
		r.complete(t.done)
		bytes += t.bytes
		switch t.write.Kind {
		case oplog.InsertReplace:
			r.s.c.inserts.Add(1)
		case oplog.Update:
			r.s.c.updates.Add(1)
		case oplog.Delete:
			r.s.c.deletes.Add(1)
		}
	}
	r.budget.release(bytes)
	r.s.c.bytes.Add(bytes)
}

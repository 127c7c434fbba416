package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/oplog"
)

// batch is what an applier accumulates before a bulk write.
type batch struct {
	tasks   []task
	bytes   int64
	updates int
	// ordered is the one namespace of OrderedNamespaces whose writes the batch holds,
	// if any: writes of a second one wait for the next batch, since an applier may
	// wait on the one it writes first (see uniqueOrder) and must not hold back
	// earlier writes of another behind that wait.
	ordered *oplog.Namespace
}

func isUpdateStatement(w *oplog.Write) bool {
	return w.Kind == oplog.Update || w.Kind == oplog.InsertReplace
}

// fits reports whether t can join b within the bulk limits.
func (r *run) fits(b *batch, t *task) bool {
	if len(b.tasks) == 0 {
		return true
	}
	if t.mark != nil && b.ordered != nil && *b.ordered != t.write.NS {
		return false
	}
	return len(b.tasks) < r.cfg.BatchWrites && b.bytes+t.bytes <= r.cfg.BatchBytes &&
		(!isUpdateStatement(&t.write) || b.updates < r.cfg.BatchUpdates)
}

func (r *run) full(b *batch) bool {
	return len(b.tasks) >= r.cfg.BatchWrites || b.bytes >= r.cfg.BatchBytes || b.updates >= r.cfg.BatchUpdates
}

// flush writes a batch: one bulk write per namespace (a document's writes
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

// sendable returns the end of the run of tasks from start that may be sent now:
// up to the first write of an ordered namespace that takes a key an earlier write
// not applied yet takes (see OrderedNamespaces). It first waits until tasks[start]
// is not one.
func sendable(ctx context.Context, tasks []task, start int) (int, error) {
	if m := tasks[start].mark; m != nil {
		if err := m.wait(ctx, m.mayTake); err != nil {
			return 0, err
		}
	}
	for i := start + 1; i < len(tasks); i++ {
		if m := tasks[i].mark; m != nil && !m.mayTake() {
			return i, nil
		}
	}
	return len(tasks), nil
}

// writeNS writes tasks to ns, retrying transient errors and, up to the consistency
// point, stepping over the idempotency errors it can confirm (see expected). On a
// destination that runs no pipeline updates, those with a diff at hand go as
// replacements of the document read and patched here (see ImageReader, resolve).
func (r *run) writeNS(ctx context.Context, ns oplog.Namespace, tasks []task) error {
	var p prepared
	retry := newBackoff()
	retried := false
	var waited *orderMark // the write sent again after every earlier one was applied
	for start := 0; start < len(tasks); {
		limit, err := sendable(ctx, tasks, start)
		if err != nil {
			return err
		}
		end, perr := r.prepare(ctx, ns, tasks[:limit], start, &p)
		sent := true // every write of p applied: perr (if any) is that of tasks[end]
		if len(p.writes) > 0 {
			var n int
			n, err = r.writeInFlight(ctx, ns, p.writes)
			if err != nil || n < len(p.writes) {
				// The writes before the first one not applied are, and so are the
				// tasks before its own (diffs of absent documents send nothing).
				end = p.task[min(max(n, 0), len(p.writes)-1)]
				sent = false
			}
		}
		if err == nil && sent {
			err = perr
		}
		r.applied(tasks[start:end])
		start = end
		if err == nil {
			continue
		}
		failed := &tasks[start]
		if _, ok := r.cfg.Destination.(ImageReader); ok && byDiff(failed) && mongoerr.HasCode(err, codeNotImplemented) {
			if !r.s.noPipelines.Swap(true) {
				r.cfg.Logger.Warn("the destination runs no pipeline updates: applying those from their diff, reading and replacing the document", "err", err)
			}
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		why := ""
		// tolerate counts the failed write as applied: before the consistency point,
		// its document is in a later state than the entry wrote.
		tolerate := func(what string) {
			r.s.c.tolerated.Add(1)
			r.cfg.Logger.Debug(what, "ns", ns, "entry", tsString(failed.done.entry), "err", err)
			r.applied(tasks[start : start+1])
			start++
		}
		if m := failed.mark; m != nil && !isTransient(err) && mongoerr.HasCode(err, codeDuplicateKey) {
			if waited != m {
				// An earlier write of another document may not have left the key yet
				// (a swap of unique values, applied by document in another order):
				// once every earlier write of ns is applied, the source's own state
				// before this write holds no duplicate.
				r.cfg.Logger.Debug("a duplicate key on a restored unique index: sending the write again once every earlier one is applied", "ns", ns, "entry", tsString(failed.done.entry), "err", err)
				waited = m
				r.s.c.uniqueWaits.Add(1)
				if err := m.wait(ctx, m.earlierApplied); err != nil {
					return err
				}
				continue
			}
			if failed.done.tolerate {
				tolerate("tolerated a duplicate key on a restored unique index before the consistency point or a restart (a document in a later state)")
				continue
			}
			return refused(ns, failed, err, fmt.Sprintf("the document %s meets a unique index restored on the destination although every earlier write of this shard to %s is applied and no later one gives that key: the destination holds a document the source does not, it diverged (verify, then restart this shard)", failed.write.Filter, ns))
		}
		if !isTransient(err) && failed.done.tolerate && (mongoerr.HasCode(err, idempotencyCodes...) || errors.Is(err, errDiffMismatch)) {
			var expected bool
			var cerr error
			expected, why, cerr = r.expected(ctx, ns, failed, err)
			switch {
			case cerr != nil && !isTransient(cerr):
				return fmt.Errorf("apply the %s of the entry at %s to %s: %w; and telling whether the destination's document is merely in a later state failed: %v",
					failed.write.Kind, tsString(failed.done.entry), ns, err, cerr)
			case cerr != nil:
				err = cerr // retried below
			case expected:
				tolerate("tolerated an idempotency error before the consistency point")
				continue
			}
		}
		if !isTransient(err) {
			return refused(ns, failed, err, why)
		}
		retried = true
		r.s.setRetrying(retryWork, fmt.Sprintf("retrying: write to %s: %v", ns, err))
		if err := retry.wait(ctx, nil); err != nil {
			return err
		}
	}
	if retried {
		r.s.setRetrying(retryWork, "")
	}
	return nil
}

// inFlightGrace bounds how long a bulk write already sent goes on after the shard
// was told to stop.
const inFlightGrace = 15 * time.Second

// writeInFlight sends writes (in rounds, see writeRounds) and waits for their
// answers however long the destination takes, and even when the shard is told to
// stop meanwhile (up to inFlightGrace). A write has no deadline of its own: one
// abandoned by its client still runs on the server (a write waiting on a lock, or
// queued behind others), so sending it again, as a deadline led to, could have the
// first copy land after the document's next writes and take it back (a delete run
// late removes the document inserted again after it). The server makes a copy sent
// again safe only when it carries the first one's session and txnNumber (a
// retryable write), which is what the driver itself does once after a network
// error, and never after a client-side timeout. A process that takes over after a
// stop (a resume, a hand-over to another window) writes the same documents again:
// the grace lets the writes in flight end first. It returns how many leading
// writes are applied; fewer than all with a nil error when the rest must be sent
// again.
func (r *run) writeInFlight(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopped := context.AfterFunc(ctx, func() { time.AfterFunc(inFlightGrace, cancel) })
	defer stopped()
	if r.cfg.SerialBulks {
		return r.cfg.Destination.Write(wctx, ns, writes)
	}
	return writeRounds(wctx, r.cfg.Destination, ns, writes)
}

// expected reports whether err, the failure of t's write up to the consistency
// point, is one an idempotent replay meets when a document is already in a later
// state, which later entries repair (see idempotencyCodes), and not the
// destination refusing the write:
//
//   - a diff that does not fit the document it was read against (errDiffMismatch);
//   - DuplicateKey on an insert (a replace-upsert) whose _id the destination holds
//     under another document key, rather than on a unique index of other fields;
//   - PathNotViable or TypeMismatch on an update the destination takes the form of:
//     the same update against no document succeeds (a server without pipeline
//     updates refuses those with TypeMismatch whatever the document).
//
// When it is not, why says what the check found ("" when it could not check: the
// destination is no IdempotencyChecker). An error means the check itself failed.
func (r *run) expected(ctx context.Context, ns oplog.Namespace, t *task, err error) (ok bool, why string, cerr error) {
	if errors.Is(err, errDiffMismatch) {
		return true, "", nil
	}
	check, isChecker := r.cfg.Destination.(IdempotencyChecker)
	if !isChecker {
		return false, "", nil
	}
	switch {
	case t.write.Kind == oplog.InsertReplace && mongoerr.HasCode(err, codeDuplicateKey):
		held, cerr := check.HoldsID(ctx, ns, t.write.Filter.Lookup("_id"))
		if cerr != nil || held {
			return held, "", cerr
		}
		return false, "no document has this _id: the duplicate is on a unique index of other fields, which the source does not have or does not hold this value in", nil
	case t.write.Kind == oplog.Update && mongoerr.HasCode(err, codePathNotViable, codeTypeMismatch):
		ferr := check.AcceptsUpdate(ctx, ns, t.write)
		switch {
		case ferr == nil:
			return true, "", nil
		case isTransient(ferr):
			return false, "", ferr
		}
		return false, "the destination refuses this form of update whatever the document: use a destination that takes it (pipeline updates need MongoDB 4.2 or newer)", nil
	}
	return false, "", nil
}

// refused is the error that stops a shard whose destination refused a write: the
// entry's write is not applied, so the shard's resume point stays before it.
func refused(ns oplog.Namespace, t *task, err error, why string) error {
	if why != "" {
		return fmt.Errorf("apply the %s of the entry at %s to %s: %w; %s. The shard stops here, with this entry not applied",
			t.write.Kind, tsString(t.done.entry), ns, err, why)
	}
	return fmt.Errorf("apply the %s of the entry at %s to %s: %w", t.write.Kind, tsString(t.done.entry), ns, err)
}

// prepared is the bulk write for a run of tasks: writes[i] is the write of
// tasks[task[i]]; task[len(writes)] is the end of the run.
type prepared struct {
	writes []oplog.Write
	task   []int
	images map[string]image // by _id, for resolve
}

// image is a document as the writes before the current one leave it.
type image struct {
	filter bson.Raw
	doc    bson.Raw // nil: no such document
	known  bool     // false: a write other than a diff changed it, in a way not known here
}

// prepare fills p with the writes of tasks[start:end] and returns end, at most
// len(tasks). An error is that of tasks[end], which is then also where p's writes
// stop (and end == start when p has none).
func (r *run) prepare(ctx context.Context, ns oplog.Namespace, tasks []task, start int, p *prepared) (int, error) {
	p.writes, p.task = p.writes[:0], p.task[:0]
	clear(p.images)
	resolve := r.s.noPipelines.Load()
	for i := start; i < len(tasks); i++ {
		t := &tasks[i]
		if !resolve {
			p.add(t.write, i)
			continue
		}
		w, send, ok, err := r.resolve(ctx, ns, t, p)
		if err != nil || !ok {
			p.task = append(p.task, i)
			return i, err
		}
		if send {
			p.add(w, i)
		}
	}
	p.task = append(p.task, len(tasks))
	return len(tasks), nil
}

func (p *prepared) add(w oplog.Write, i int) {
	p.writes = append(p.writes, w)
	p.task = append(p.task, i)
}

// resolve returns the write to send for t, on a destination without pipeline
// updates: t's own write, or for a diff the replacement of its document with the
// diff applied (send is false when there is no document: nothing to update). ok is
// false when t's document must first be written by the bulk so far: an earlier
// write of this run changed it in a way not known here.
func (r *run) resolve(ctx context.Context, ns oplog.Namespace, t *task, p *prepared) (w oplog.Write, send, ok bool, err error) {
	if p.images == nil {
		p.images = map[string]image{}
	}
	key := docKey(t.write.Filter)
	img, seen := p.images[key]
	if !byDiff(t) {
		p.images[key] = image{}
		return t.write, true, true, nil
	}
	if seen && (!img.known || !bytes.Equal(img.filter, t.write.Filter)) {
		return w, false, false, nil
	}
	if !seen {
		doc, err := r.cfg.Destination.(ImageReader).Image(ctx, ns, t.write.Filter)
		if err != nil {
			return w, false, false, fmt.Errorf("read the document %s to apply an update's diff: %w", t.write.Filter, err)
		}
		img = image{filter: t.write.Filter, doc: doc, known: true}
	}
	if img.doc == nil {
		p.images[key] = img
		return w, false, true, nil
	}
	post, err := oplog.ApplyDiff(img.doc, t.diff)
	if err != nil {
		return w, false, false, fmt.Errorf("%w: %v", errDiffMismatch, err)
	}
	img.doc = post
	p.images[key] = img
	return oplog.Write{Kind: oplog.InsertReplace, NS: ns, Filter: t.write.Filter, Replacement: post}, true, true, nil
}

// byDiff reports whether a task is a pipeline update to apply from its diff.
func byDiff(t *task) bool { return t.write.Pipeline != nil && t.diff != nil }

// applied marks written tasks: their tickets, their bytes, the counters.
func (r *run) applied(tasks []task) {
	var bytes int64
	for i := range tasks {
		t := &tasks[i]
		r.complete(t.done)
		if t.mark != nil {
			t.mark.finish()
		}
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
	r.queued.applied(tasks)
	r.budget.release(bytes)
	r.s.c.bytes.Add(bytes)
}

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/cutover"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
)

// The sync builds unique indexes non-unique on the destination (see
// oplog.RelaxIndexForSync). Restoring them at the finalize costs an index build
// inside the application's downtime, so once every shard is in sync (the migration
// ready, or cutting over) they are restored while the sync runs, one at a time:
//
//  1. the index is marked InOrder in the record (a resume orders its namespace's
//     writes by it from its first write, whatever happened next);
//  2. it joins the replays' ordered namespaces (replay.OrderedNamespaces) and every
//     running replay acknowledges it: from then on the writes of that namespace
//     still go to the appliers by document, but a write that gives a document a
//     key of the index waits for the earlier writes that give it the same key,
//     and one refused as a duplicate is sent again once every earlier write of
//     its namespace is applied, so the destination never keeps a duplicate the
//     source did not hold;
//  3. the destination's index is made unique (collMod prepareUnique then unique, or
//     a rebuild: cutover.RestoreIndex), its TTL left relaxed for the finalize;
//  4. it is marked UniqueRestored.
//
// A restore that fails is tried once more after every shard applied what its
// source's oplog held at the failure; a failure then (the destination holds
// documents that break the index: it differs from the source) is noted for the
// DBA and left to the finalize, which tries again and fails there, as before.

// orderedOf are the unique indexes the record says the replays order writes by.
func orderedOf(rec *Record) []replay.UniqueIndex {
	var out []replay.UniqueIndex
	for _, x := range rec.Relaxed {
		if x.InOrder {
			out = append(out, replay.UniqueIndex{NS: oplog.ParseNamespace(x.NS), Spec: x.Original})
		}
	}
	return out
}

// uniqueToRestore are the relaxed unique indexes not restored yet.
func uniqueToRestore(rec *Record) []Relaxed {
	var out []Relaxed
	for _, x := range rec.Relaxed {
		if x.Kind == RelaxedIndex && !x.UniqueRestored && cutover.WantsUnique(x.Original) {
			out = append(out, x)
		}
	}
	return out
}

// uniqueOnly is an index's original without its TTL: restored while the sync runs,
// a TTL would delete documents the source still holds (their deletes arrive through
// the oplog); the finalize restores it.
func uniqueOnly(original bson.Raw) bson.Raw {
	elems, err := original.Elements()
	if err != nil {
		return original
	}
	var d bson.D
	for _, e := range elems {
		if e.Key() != "expireAfterSeconds" {
			d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	raw, err := bson.Marshal(d)
	if err != nil {
		return original
	}
	return raw
}

// startUniqueRestore starts restoring the relaxed unique indexes while the sync
// runs, unless it runs already, went through every index in this Run, or none is
// left. Called with life held, while the migration is ready or cutting over.
func (m *Migration) startUniqueRestore(r *runState) {
	if r.stopped || m.ordered == nil || r.uniqueTried.Load() {
		return
	}
	if r.uniqueDone != nil {
		select {
		case <-r.uniqueDone: // interrupted (the migration was not ready a while): again
		default:
			return
		}
	}
	m.recMu.Lock()
	left := len(uniqueToRestore(&m.rec))
	restored, all := uniqueTally(&m.rec)
	m.recMu.Unlock()
	if left == 0 {
		if all > 0 { // restored before a resume: say so again
			m.setUniqueText(uniqueRestoredText(restored, all))
		}
		return
	}
	ctx, stop := context.WithCancel(r.ctx)
	done := make(chan struct{})
	r.stopUnique, r.uniqueDone = stop, done
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(done)
		m.restoreUniqueWhileSyncing(ctx, r)
	}()
}

// stopUniqueRestore ends the restore started while the sync runs and waits for it:
// an index being changed on the destination is finished first. Called with life
// held (the finalize, a cancel, an expiry).
func (m *Migration) stopUniqueRestore(r *runState) {
	if r.uniqueDone == nil {
		return
	}
	r.stopUnique()
	<-r.uniqueDone
}

func (m *Migration) restoreUniqueWhileSyncing(ctx context.Context, r *runState) {
	m.recMu.Lock()
	todo := uniqueToRestore(&m.rec)
	m.recMu.Unlock()
	m.note(fmt.Sprintf("every shard is in sync: restoring %d unique indexes on the destination while the sync runs (their writes keep the order those indexes need from now on), so that the finalize does not build them", len(todo)))
	for i, x := range todo {
		if st := m.State(); st != Ready && st != CuttingOver || ctx.Err() != nil {
			return // again once the migration is ready
		}
		name, _ := x.Original.Lookup("name").StringValueOK()
		m.setUniqueText(fmt.Sprintf("restoring the unique index %s of %s on the destination (%d of %d)", name, x.NS, i+1, len(todo)))
		start := m.clock.Now()
		err := m.restoreUnique(ctx, r, x)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.noteAt(slog.LevelWarn, fmt.Sprintf("the unique index %s of %s could not be restored while syncing: %v; it stays relaxed, and the finalize tries again", name, x.NS, err))
			continue
		}
		m.note(fmt.Sprintf("unique index %s of %s restored on the destination while syncing, in %v", name, x.NS, m.clock.Now().Sub(start).Round(time.Millisecond)))
	}
	m.recMu.Lock()
	restored, all := uniqueTally(&m.rec)
	m.recMu.Unlock()
	m.setUniqueText(uniqueRestoredText(restored, all))
	r.uniqueTried.Store(true)
}

// uniqueTally counts the relaxed unique indexes, and those of them restored while
// syncing, in this Run or before a resume.
func uniqueTally(rec *Record) (restored, all int) {
	for _, x := range rec.Relaxed {
		if x.Kind == RelaxedIndex && cutover.WantsUnique(x.Original) {
			all++
			if x.UniqueRestored {
				restored++
			}
		}
	}
	return restored, all
}

func uniqueRestoredText(restored, all int) string {
	return fmt.Sprintf("%d of %d unique indexes restored on the destination while syncing", restored, all)
}

// restoreUnique orders x's namespace, makes x unique on the destination (a second
// try after the replays caught up with the source) and records it.
func (m *Migration) restoreUnique(ctx context.Context, r *runState, x Relaxed) error {
	if err := m.markRelaxed(x, func(y *Relaxed) { y.InOrder = true }); err != nil {
		return err
	}
	v := m.ordered.Add(replay.UniqueIndex{NS: oplog.ParseNamespace(x.NS), Spec: x.Original})
	for _, sh := range m.shardList() {
		gone := func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return sh.replayer == nil || sh.phase != CatchingUp && sh.phase != Synced // failed, or copying again
		}
		if err := m.ordered.WaitAcked(ctx, sh.name, v, gone); err != nil {
			return err
		}
	}
	unique := x
	unique.Original = uniqueOnly(x.Original)
	// An index change under way is finished even when the sync stops meanwhile:
	// a rebuild interrupted between its drop and its build would lose the index.
	err := r.clusters.Restore(context.WithoutCancel(ctx), unique)
	if err != nil {
		// The writes in flight when the namespace became ordered may have left a
		// duplicate for a moment: once every shard applied what its source holds
		// now, none is left but one the source does not have.
		if derr := m.caughtUp(ctx, r); derr != nil {
			return fmt.Errorf("%w (and waiting for the replays to catch up before trying again: %v)", err, derr)
		}
		if err = r.clusters.Restore(context.WithoutCancel(ctx), unique); err != nil {
			return err
		}
	}
	return m.markRelaxed(x, func(y *Relaxed) { y.UniqueRestored = true })
}

// caughtUp waits until every shard applied the newest entry its source oplog holds
// now.
func (m *Migration) caughtUp(ctx context.Context, r *runState) error {
	err := m.drain(ctx, r)
	var gap *GapError
	if errors.As(err, &gap) {
		return fmt.Errorf("shard %s did not catch up within %v", gap.Shard, m.cfg.DrainTimeout)
	}
	return err
}

// markRelaxed changes the record's entry of x.
func (m *Migration) markRelaxed(x Relaxed, change func(*Relaxed)) error {
	return m.saveRecord(func(rec *Record) {
		for i := range rec.Relaxed {
			y := &rec.Relaxed[i]
			if y.NS == x.NS && y.Kind == x.Kind && bytes.Equal(y.Original, x.Original) {
				change(y)
			}
		}
	})
}

func (m *Migration) setUniqueText(s string) {
	m.mu.Lock()
	m.mu.uniqueText = s
	m.mu.Unlock()
}

// orderedNamespaces builds the replays' ordered namespaces from the record, once
// per Run, before any replay starts.
func (m *Migration) orderedNamespaces() *replay.OrderedNamespaces {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	return replay.NewOrderedNamespaces(orderedOf(&m.rec)...)
}

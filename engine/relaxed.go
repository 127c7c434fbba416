package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// relaxedLog is the RelaxSink of a migration: every original is saved in the
// record before the stage that reported it relaxes anything, so no interruption can
// lose one. Safe for concurrent use (copies of several shards and the DDL applier
// report at once).
type relaxedLog struct {
	m *Migration
}

func (l *relaxedLog) add(ns string, kind RelaxedKind, original bson.Raw) error {
	m := l.m
	m.recMu.Lock()
	defer m.recMu.Unlock()
	for _, x := range m.rec.Relaxed {
		if x.NS == ns && x.Kind == kind && bytes.Equal(x.Original, original) {
			return nil // the same index built again (a shard restart, a resumed copy)
		}
	}
	next := m.rec
	next.Relaxed = append(slices.Clone(m.rec.Relaxed), Relaxed{NS: ns, Kind: kind, Original: slices.Clone(original)})
	if err := m.cp.SaveRecord(next); err != nil {
		return fmt.Errorf("save the original options of %s: %w", ns, err)
	}
	m.rec = next
	return nil
}

// RelaxedCollection implements prepare.RelaxSink.
func (l *relaxedLog) RelaxedCollection(ns string, withheld bson.Raw) error {
	return l.add(ns, RelaxedOptions, withheld)
}

// RelaxedIndex implements initialsync.IndexSink.
func (l *relaxedLog) RelaxedIndex(ns string, original bson.Raw) error {
	return l.add(ns, RelaxedIndex, original)
}

// IndexRelaxed implements replay.RelaxedSink.
func (l *relaxedLog) IndexRelaxed(ns oplog.Namespace, original bson.Raw) error {
	return l.add(ns.DB+"."+ns.Coll, RelaxedIndex, original)
}

// OptionsWithheld implements replay.RelaxedSink.
func (l *relaxedLog) OptionsWithheld(ns oplog.Namespace, withheld bson.Raw) error {
	return l.add(ns.DB+"."+ns.Coll, RelaxedOptions, withheld)
}

// restoreFromSource makes unique or TTL again, from the source's specification,
// every destination index still held as the sync relaxes it once the recorded
// originals are restored, and builds the ones the destination lost. An original
// names the collection the index was built in; one renamed since (an application
// staging a collection and renaming it into place, $out over a target) holds the
// index under another name, where no record points. With the source's writes
// stopped, the source says what each index is. It returns the differences left:
// compared again when it changed anything, else those it found.
func (m *Migration) restoreFromSource(ctx context.Context, c Clusters) ([]IndexDifference, error) {
	diffs, err := c.IndexDifferences(ctx)
	if err != nil {
		return nil, fmt.Errorf("compare the indexes: %w", err)
	}
	restored := map[string]bool{}
	for _, d := range diffs {
		key := d.Namespace + "\x00" + d.Index
		if (!d.Relaxed && !d.Missing) || restored[key] {
			continue
		}
		restored[key] = true
		if d.Missing {
			// Gone from the destination: a kill between the drop and the build of a
			// restore that rebuilds the index (a server without collMod unique).
			if err := c.BuildIndex(ctx, d.Namespace, d.Source); err != nil {
				return nil, fmt.Errorf("build index %s of %s as the source has it (%s): %w", d.Index, d.Namespace, d.What, err)
			}
			continue
		}
		if err := c.Restore(ctx, Relaxed{NS: d.Namespace, Kind: RelaxedIndex, Original: d.Source}); err != nil {
			return nil, fmt.Errorf("make index %s of %s as the source has it (%s): %w", d.Index, d.Namespace, d.What, err)
		}
	}
	if len(restored) == 0 {
		return diffs, nil
	}
	m.note(fmt.Sprintf("made %d destination indexes as the source's specifications say (relaxed under a collection renamed since, or lost in an interrupted restore)", len(restored)))
	diffs, err = c.IndexDifferences(ctx)
	if err != nil {
		return nil, fmt.Errorf("compare the indexes: %w", err)
	}
	return diffs, nil
}

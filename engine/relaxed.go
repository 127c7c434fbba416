package engine

import (
	"bytes"
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

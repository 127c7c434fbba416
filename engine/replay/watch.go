package replay

import (
	"context"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
)

// ShardKeyWatch is the metadata watcher: it finds the collections the source
// shards, or whose shard key it refines, during the migration by comparing the
// source's config.collections with the destination's, because 3.6 to 4.4 record
// neither in any shard's oplog, nor refines before 6.1 (later releases do: see
// oplog/sharding.go; there the watcher finds the destination already sharded).
//
// For each collection whose destination key differs it first tells KeyChanged
// the new key fields (so that the replays build the documents' filters with
// them from then on), then reads the newest ts of the source shards, and
// schedules the sharding of the destination collection with the DDL applier for
// once every shard has applied past that ts: the writes translated before the
// new key was known, whose filters lack it, are all applied before the
// destination is sharded, while it still accepts them.
type ShardKeyWatch struct {
	// Source and Destination return each cluster's sharded user collections
	// (topology.ShardedCollections).
	Source, Destination func(context.Context) ([]topology.Collection, error)
	// Newest returns the newest oplog ts over every source shard.
	Newest func(context.Context) (primitive.Timestamp, error)
	// DDL applies the sharding in order with the shards' DDL (DDLOnce).
	DDL interface {
		Schedule(ts primitive.Timestamp, d oplog.DDL, done func(error))
	}
	// KeyChanged is told the shard key fields of a collection the source sharded.
	KeyChanged func(ns string, fields []string)
	Logger     *slog.Logger

	scheduled map[string]string // ns -> key scheduled, until the destination has it
}

// Run checks every interval until ctx ends. A failed check is logged and tried
// again at the next one.
func (w *ShardKeyWatch) Run(ctx context.Context, interval time.Duration) {
	for {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.logger().Warn("compare the source's sharded collections with the destination's", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (w *ShardKeyWatch) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

// Check compares the clusters once and schedules what the destination lacks.
func (w *ShardKeyWatch) Check(ctx context.Context) error {
	src, err := w.Source(ctx)
	if err != nil {
		return err
	}
	dst, err := w.Destination(ctx)
	if err != nil {
		return err
	}
	have := map[string]bson.Raw{}
	for _, c := range dst {
		if key, err := bson.Marshal(c.Key); err == nil {
			have[c.Namespace] = key
		}
	}
	if w.scheduled == nil {
		w.scheduled = map[string]string{}
	}
	var todo []oplog.DDL
	for _, c := range src {
		b, err := bson.Marshal(c.Key)
		if err != nil {
			return err
		}
		key := bson.Raw(b)
		old, sharded := have[c.Namespace]
		if sharded && prepare.SameShardKey(old, key) {
			delete(w.scheduled, c.Namespace)
			continue
		}
		if w.scheduled[c.Namespace] == string(key) {
			continue // waiting for the replays, or failed and logged
		}
		fields := make([]string, len(c.Key))
		for i, e := range c.Key {
			fields[i] = e.Key
		}
		w.KeyChanged(c.Namespace, fields)
		kind := oplog.DDLShardCollection
		opts := bson.D{{Key: "key", Value: key}, {Key: "unique", Value: c.Unique}}
		if sharded && prepare.RefinesShardKey(old, key) {
			kind, opts = oplog.DDLRefineShardKey, opts[:1]
		}
		raw, err := bson.Marshal(opts)
		if err != nil {
			return err
		}
		w.scheduled[c.Namespace] = string(key)
		todo = append(todo, oplog.DDL{Kind: kind, NS: oplog.ParseNamespace(c.Namespace), Options: raw})
	}
	if len(todo) == 0 {
		return nil
	}
	ts, err := w.Newest(ctx)
	if err != nil {
		for _, d := range todo {
			delete(w.scheduled, d.NS.String()) // scheduled at the next check
		}
		return err
	}
	for _, d := range todo {
		w.logger().Info("the source sharded a collection during the migration; the destination follows once the shards have replayed up to now",
			"kind", d.Kind, "ns", d.NS, "options", d.Options.String(), "ts", tsString(ts))
		w.DDL.Schedule(ts, d, func(err error) {
			if err != nil {
				w.logger().Error("the destination could not follow the source's sharding; its collection stays as it is, the data is still synced",
					"kind", d.Kind, "ns", d.NS, "err", err)
			}
		})
	}
	return nil
}

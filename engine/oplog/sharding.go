package oplog

import (
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/engine/namespaces"
)

// How a source records that a collection got sharded, or its shard key refined,
// during the migration (src/mongo/db/s create_collection_coordinator,
// refine_collection_shard_key_coordinator, change_stream_oplog_notification):
//
//	5.0+  the coordinating (primary) shard's DDL coordinator writes a no-op for
//	      change streams (which show it as an event from 6.0):
//	      {op: "n", ns: "db.coll", o: {msg: {shardCollection: "db.coll"}},
//	       o2: {shardCollection: "db.coll", shardKey: {...}, unique, collation, ...}}
//	      (8.0's tracked unsharded collections write none: they are not sharded)
//	6.1+  likewise for a refine:
//	      {op: "n", ns: "db.coll", o: {msg: "Refine shard key for collection ..."},
//	       o2: {refineCollectionShardKey: "db.coll", shardKey: {...}, oldShardKey: {...}}}
//	3.6 to 4.4 (and refines before 6.1)  nothing in any shard's oplog: the config
//	      servers' catalog changes only, so the engine's metadata watcher
//	      (replay.ShardKeyWatch) polls config.collections for them. It runs for
//	      every version; where the no-op came first it finds the destination
//	      already sharded.
//
// Both become DDL: shard (or refine) the destination collection with the same key.
const (
	o2ShardCollection = "shardCollection"
	o2RefineShardKey  = "refineCollectionShardKey"
)

// noop translates a no-op entry: nothing to apply, except the sharding events
// above. ShardKeyChanged hears of a new key before the DDL is returned, so that
// the documents this translator inserts later carry it in their filters.
func (t *Translator) noop(e *Entry, out []Item) ([]Item, error) {
	first, ok := firstElement(e.O2)
	if !ok || first.t != bsontype.String || !(first.is(o2ShardCollection) || first.is(o2RefineShardKey)) {
		return out, nil
	}
	ns := ParseNamespace(string(str(first.val)))
	if !namespaces.Migrated(ns.DB, ns.Coll) {
		return out, nil
	}
	key, ok := lookup(e.O2, "shardKey")
	if !ok {
		key, ok = lookup(e.O2, "key")
	}
	if !ok || key.t != bsontype.EmbeddedDocument {
		return out, nil // a form without the key: the metadata watcher reads it
	}
	fields, err := keyFieldNames(e, key.val)
	if err != nil {
		return out, err
	}
	opts := bson.D{{Key: "key", Value: bson.Raw(key.val)}}
	kind := DDLRefineShardKey
	if first.is(o2ShardCollection) {
		kind = DDLShardCollection
		unique := false
		if u, ok := lookup(e.O2, "unique"); ok {
			unique = u.truthy()
		}
		opts = append(opts, bson.E{Key: "unique", Value: unique})
	}
	raw, err := bson.Marshal(opts)
	if err != nil {
		return out, malformed(e.TS, "o2.shardKey", "%v", err)
	}
	if t.shardKeyChanged != nil {
		t.shardKeyChanged(ns, fields)
	}
	return append(out, Item{Kind: ItemDDL, TS: e.TS, DDL: &DDL{Kind: kind, NS: ns, Options: raw}}), nil
}

// keyFieldNames are a key pattern's field paths, in order.
func keyFieldNames(e *Entry, key []byte) ([]string, error) {
	var fields []string
	it, _ := newIter(key)
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		fields = append(fields, string(el.name))
	}
	if it.bad || len(fields) == 0 {
		return nil, malformed(e.TS, "o2.shardKey", "an empty or corrupt shard key")
	}
	return fields, nil
}

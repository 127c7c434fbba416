package oplog

import (
	"slices"
	"testing"
)

// The no-ops 5.0+ (shardCollection) and 6.1+ (refineCollectionShardKey) write on
// the coordinating shard, as MongoDB's change_stream_oplog_notification and
// refine_collection_shard_key_coordinator build them, become DDL; the
// translator's later inserts of the collection carry the new key.
func TestShardingNoOpsBecomeDDL(t *testing.T) {
	var told []string
	keys := map[string][]string{}
	tr := NewTranslator(Config{
		KeyFields:       func(ns Namespace) []string { return keys[ns.String()] },
		ShardKeyChanged: func(ns Namespace, fields []string) { told = append(told, ns.String()); keys[ns.String()] = fields },
	})
	items := process(t, tr,
		`{op: 'n', ns: 'shop.orders', ui: {$binary: {base64: 'AAAAAAAAAAAAAAAAAAAAAA==', subType: '04'}}, `+tsAt(1)+`, o: {msg: {shardCollection: 'shop.orders'}}, `+
			`o2: {shardCollection: 'shop.orders', shardKey: {customerId: 1}, unique: false, presplitHashedZones: false, collation: {locale: 'simple'}}}`,
		`{op: 'i', ns: 'shop.orders', `+tsAt(2)+`, o: {_id: 7, customerId: 42, total: 1}}`,
		`{op: 'n', ns: 'shop.orders', `+tsAt(3)+`, o: {msg: 'Refine shard key for collection shop.orders with { customerId: 1, day: 1 }'}, `+
			`o2: {refineCollectionShardKey: 'shop.orders', shardKey: {customerId: 1, day: 1}, oldShardKey: {customerId: 1}}}`,
		`{op: 'i', ns: 'shop.orders', `+tsAt(4)+`, o: {_id: 8, day: 3, customerId: 43}}`,
		// 8.0 and later also write the event's prepare and abort phases: nothing to do.
		`{op: 'n', ns: 'shop.other', `+tsAt(5)+`, o: {msg: {shardCollectionPrepare: 'shop.other'}}, o2: {shardCollectionPrepare: 'shop.other', shards: ['s0'], shardKey: {a: 1}}}`,
		// MongoDB's own collections are never sharded on the destination.
		`{op: 'n', ns: 'config.system.sessions', `+tsAt(6)+`, o: {msg: {shardCollection: 'config.system.sessions'}}, o2: {shardCollection: 'config.system.sessions', shardKey: {_id: 1}}}`,
		// A form without the key is left to the metadata watcher.
		`{op: 'n', ns: 'shop.legacy', `+tsAt(7)+`, o: {msg: {shardCollection: 'shop.legacy'}}, o2: {shardCollection: 'shop.legacy'}}`,
	)
	if len(items) != 7 {
		t.Fatalf("got %d items: %+v", len(items), items)
	}
	sharded := items[0]
	if sharded.Kind != ItemDDL || sharded.DDL.Kind != DDLShardCollection || sharded.DDL.NS.String() != "shop.orders" {
		t.Fatalf("item 0 = %+v, want shardCollection of shop.orders", sharded)
	}
	sameDoc(t, "shardCollection options", sharded.DDL.Options, doc(t, `{key: {customerId: 1}, unique: false}`))
	sameDoc(t, "insert filter after shardCollection", items[1].Write.Filter, doc(t, `{_id: 7, customerId: 42}`))
	refined := items[2]
	if refined.Kind != ItemDDL || refined.DDL.Kind != DDLRefineShardKey {
		t.Fatalf("item 2 = %+v, want refineCollectionShardKey", refined)
	}
	sameDoc(t, "refine options", refined.DDL.Options, doc(t, `{key: {customerId: 1, day: 1}}`))
	sameDoc(t, "insert filter after the refine", items[3].Write.Filter, doc(t, `{_id: 8, customerId: 43, day: 3}`))
	for i, it := range items[4:] {
		if it.Kind != ItemPosition {
			t.Errorf("item %d = %+v, want a position", 4+i, it)
		}
	}
	if !slices.Equal(told, []string{"shop.orders", "shop.orders"}) {
		t.Errorf("ShardKeyChanged heard of %v", told)
	}
}

package oplog

import (
	"errors"
	"testing"
)

func TestFromMigrateEntriesAreSkipped(t *testing.T) {
	items := process(t, NewTranslator(Config{}),
		`{op: 'i', ns: 'shop.orders', `+tsAt(1)+`, o: {_id: 1}, fromMigrate: true}`,
		`{op: 'd', ns: 'shop.orders', `+tsAt(2)+`, o: {_id: 1}, fromMigrate: true}`,
		`{op: 'c', ns: 'shop.$cmd', `+tsAt(3)+`, o: {create: 'orders'}, fromMigrate: true}`,
		`{op: 'c', ns: 'admin.$cmd', `+tsAt(4)+`, o: {applyOps: [{op: 'i', ns: 'shop.orders', o: {_id: 2}, fromMigrate: true}, {op: 'i', ns: 'shop.orders', o: {_id: 3}}]}}`,
	)
	if len(items) != 4 {
		t.Fatalf("got %d items: %+v", len(items), items)
	}
	for i, it := range items[:3] {
		if it.Kind != ItemPosition {
			t.Errorf("item %d: %v, want a position", i, it.Kind)
		}
	}
	if ids := writtenIDs(items[3:]); ids != "3" {
		t.Errorf("applyOps wrote %q, want only the operation not from a migration", ids)
	}
}

func TestNoOpsAdvanceThePosition(t *testing.T) {
	items := process(t, NewTranslator(Config{}),
		`{op: 'n', ns: '', o: {msg: 'periodic noop'}, `+tsAt(1)+`}`,
		`{op: 'n', ns: 'shop.orders', o: {msg: 'Migrating chunk from shard shard01 to shard shard02'}, o2: {type: 'migrateChunkToNewShard', fromShard: 'shard01', toShard: 'shard02'}, `+tsAt(2)+`}`,
	)
	if len(items) != 2 || items[0].Kind != ItemPosition || items[0].TS != ts(1700000000, 1) || items[1].TS != ts(1700000000, 2) {
		t.Fatalf("items %+v, want one position per no-op", items)
	}
}

func TestInternalNamespacesAreSkippedButAdvanceThePosition(t *testing.T) {
	for _, entry := range []string{
		`{op: 'i', ns: 'admin.system.users', o: {_id: 'admin.u', user: 'u'}}`,
		`{op: 'i', ns: 'admin.data', o: {_id: 1}}`,
		`{op: 'i', ns: 'config.system.sessions', o: {_id: {id: 1}}}`,
		`{op: 'u', ns: 'config.transactions', o: {_id: 1, txnNum: 2}, o2: {_id: 1}}`,
		`{op: 'd', ns: 'local.oplog.rs', o: {_id: 1}}`,
		`{op: 'i', ns: 'shop.system.profile', o: {_id: 1}}`,
		`{op: 'i', ns: 'shop.system.js', o: {_id: 'f', value: 1}}`,
		`{op: 'i', ns: 'shop.system.buckets.weather', o: {_id: 1}}`,
		`{op: 'c', ns: 'config.$cmd', o: {create: 'cache.chunks.shop.orders'}}`,
		`{op: 'c', ns: 'admin.$cmd', o: {dropDatabase: 1}}`,
		`{op: 'c', ns: 'shop.$cmd', o: {create: 'system.profile'}}`,
		`{op: 'c', ns: 'shop.$cmd', o: {createIndexes: 'system.js', v: 2, key: {a: 1}, name: 'a_1'}}`,
		`{op: 'c', ns: 'local.$cmd', o: {renameCollection: 'local.a', to: 'local.b'}}`,
	} {
		items := process(t, NewTranslator(Config{}), entry[:len(entry)-1]+`, `+tsAt(9)+`}`)
		if len(items) != 1 || items[0].Kind != ItemPosition || items[0].TS != ts(1700000000, 9) {
			t.Errorf("%s: items %+v, want a single position", entry, items)
		}
	}
}

// MongoDB records views in <db>.system.views; those writes are view DDL, not
// skipped system data.
func TestViewDefinitionsBecomeViewDDL(t *testing.T) {
	items := process(t, NewTranslator(Config{}),
		`{op: 'i', ns: 'shop.system.views', `+tsAt(1)+`, o: {_id: 'shop.big', viewOn: 'orders', pipeline: [{$match: {qty: {$gt: 10}}}]}}`,
		`{op: 'u', ns: 'shop.system.views', `+tsAt(2)+`, o: {_id: 'shop.big', viewOn: 'orders', pipeline: [{$match: {qty: {$gt: 20}}}]}, o2: {_id: 'shop.big'}}`,
		`{op: 'u', ns: 'shop.system.views', `+tsAt(3)+`, o: {$v: 2, diff: {u: {viewOn: 'invoices'}}}, o2: {_id: 'shop.big'}}`,
		`{op: 'd', ns: 'shop.system.views', `+tsAt(4)+`, o: {_id: 'shop.big'}}`,
		`{op: 'c', ns: 'shop.$cmd', `+tsAt(5)+`, o: {create: 'small', viewOn: 'orders', pipeline: [], collation: {locale: 'fr'}}}`,
		`{op: 'c', ns: 'shop.$cmd', `+tsAt(6)+`, o: {collMod: 'small', viewOn: 'orders', pipeline: [{$limit: 1}]}}`,
	)
	want := []struct {
		kind DDLKind
		opts string
	}{
		{DDLCreateView, `{viewOn: 'orders', pipeline: [{$match: {qty: {$gt: 10}}}]}`},
		{DDLModifyView, `{viewOn: 'orders', pipeline: [{$match: {qty: {$gt: 20}}}]}`},
		{DDLModifyView, ``},
		{DDLDrop, ``},
		{DDLCreateView, `{viewOn: 'orders', pipeline: [], collation: {locale: 'fr'}}`},
		{DDLModifyView, `{viewOn: 'orders', pipeline: [{$limit: 1}]}`},
	}
	if len(items) != len(want) {
		t.Fatalf("got %d items, want %d", len(items), len(want))
	}
	for i, w := range want {
		d := items[i].DDL
		if items[i].Kind != ItemDDL || d.Kind != w.kind {
			t.Fatalf("item %d: %+v, want %v", i, items[i], w.kind)
		}
		if d.NS.DB != "shop" || (d.NS.Coll != "big" && d.NS.Coll != "small") {
			t.Errorf("item %d: view %v", i, d.NS)
		}
		if w.opts == "" {
			if d.Options != nil {
				t.Errorf("item %d: options %s, want none (re-read the view definition)", i, d.Options)
			}
			continue
		}
		sameDoc(t, "view definition", d.Options, doc(t, w.opts))
	}
}

// Time-series collections are reported by validation; one created during the
// migration stops the sync with a clear error instead of vanishing.
func TestTimeSeriesCreatedDuringSyncIsUnsupportedNotSkipped(t *testing.T) {
	for _, entry := range []string{
		`{op: 'i', ns: 'iot.system.views', ` + tsAt(1) + `, o: {_id: 'iot.weather', viewOn: 'system.buckets.weather', pipeline: [{$_internalUnpackBucket: {timeField: 't'}}]}}`,
		`{op: 'c', ns: 'iot.$cmd', ` + tsAt(1) + `, o: {create: 'weather', timeseries: {timeField: 't'}}}`,
	} {
		e := decode(t, entry)
		if _, err := NewTranslator(Config{}).Process(&e, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", entry, err)
		}
	}
}

package oplog

import (
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// benchEntries is a realistic mix for a sharded collection on MongoDB 5.0+,
// every entry of a retryable write (lsid, txnNumber, stmtId, prevOpTime): 40%
// inserts of ~300-byte documents, 30% $v:2 updates (15% field updates, 10% new
// fields with an array append, 5% a delete and a nested sub-diff), 15% deletes,
// 5% replacements and 10% periodic no-ops.
func benchEntries(tb testing.TB) []bson.Raw {
	var out []bson.Raw
	for i := range 100 {
		id := fmt.Sprintf(`{$oid: '65a0c0ffee00000000%06x'}`, i)
		meta := fmt.Sprintf(`lsid: {id: {$binary: {base64: 'DK+8+nZ+Eem9p6vK9BEt9g==', subType: '04'}}, uid: {$binary: {base64: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', subType: '00'}}}, txnNumber: {$numberLong: '%d'}, stmtId: 0, ui: {$binary: {base64: 'UG740CdIQ0yW3Szj7wyRPQ==', subType: '04'}}, ts: {$timestamp: {t: 1700000000, i: %d}}, t: {$numberLong: '3'}, v: {$numberLong: '2'}, wall: {$date: {$numberLong: '1700000000123'}}, prevOpTime: {ts: {$timestamp: {t: 0, i: 0}}, t: {$numberLong: '-1'}}`, i, i+1)
		key := fmt.Sprintf(`{region: 'eu-west', 'cust.id': %d, _id: %s}`, i%50, id)
		var e string
		switch r := i % 20; {
		case r < 8:
			e = fmt.Sprintf(`{op: 'i', ns: 'shop.orders', o: {_id: %s, region: 'eu-west', cust: {id: %d, name: 'Customer %d', email: 'c%d@example.com'}, status: 'new', items: [{sku: 'SKU-1001', qty: 2, price: 19.99}, {sku: 'SKU-2002', qty: 1, price: 5.5}], total: 45.48, createdAt: {$date: {$numberLong: '1700000000000'}}, notes: 'Leave at the door, ring twice. Fragile contents.'}, o2: %s, %s}`, id, i%50, i, i, key, meta)
		case r < 11:
			e = fmt.Sprintf(`{op: 'u', ns: 'shop.orders', o: {$v: 2, diff: {u: {status: 'paid', total: 51.2}}}, o2: %s, %s}`, key, meta)
		case r < 13:
			e = fmt.Sprintf(`{op: 'u', ns: 'shop.orders', o: {$v: 2, diff: {i: {shippedAt: {$date: {$numberLong: '1700000100000'}}}, sitems: {a: true, u2: {sku: 'SKU-3003', qty: 1, price: 5.72}}}}, o2: %s, %s}`, key, meta)
		case r < 14:
			e = fmt.Sprintf(`{op: 'u', ns: 'shop.orders', o: {$v: 2, diff: {d: {notes: false}, scust: {u: {email: 'new@example.com'}}}}, o2: %s, %s}`, key, meta)
		case r < 17:
			e = fmt.Sprintf(`{op: 'd', ns: 'shop.orders', o: %s, %s}`, key, meta)
		case r < 18:
			e = fmt.Sprintf(`{op: 'u', ns: 'shop.orders', o: {_id: %s, region: 'eu-west', cust: {id: %d}, status: 'archived'}, o2: %s, %s}`, id, i%50, key, meta)
		default:
			e = fmt.Sprintf(`{op: 'n', ns: '', o: {msg: 'periodic noop'}, ts: {$timestamp: {t: 1700000000, i: %d}}, t: {$numberLong: '3'}, v: {$numberLong: '2'}, wall: {$date: {$numberLong: '1700000000123'}}}`, i+1)
		}
		out = append(out, doc(tb, e))
	}
	return out
}

// BenchmarkDecodeTranslate measures decode + filter + translate on one core.
func BenchmarkDecodeTranslate(b *testing.B) {
	entries := benchEntries(b)
	keys := []string{"region", "cust.id"}
	tr := NewTranslator(Config{KeyFields: func(Namespace) []string { return keys }})
	items := make([]Item, 0, 8)
	var bytes int64
	for _, e := range entries {
		bytes += int64(len(e))
	}
	b.SetBytes(bytes / int64(len(entries)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e, err := Decode(entries[i%len(entries)])
		if err != nil {
			b.Fatal(err)
		}
		if items, err = tr.Process(&e, items[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// The benchmark's mix translates to what it should, so the numbers measure
// real work.
func TestBenchmarkMixTranslates(t *testing.T) {
	tr := NewTranslator(Config{KeyFields: func(Namespace) []string { return []string{"region", "cust.id"} }})
	kinds := map[WriteKind]int{}
	positions := 0
	for _, raw := range benchEntries(t) {
		e, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		items, err := tr.Process(&e, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Kind == ItemPosition {
				positions++
				continue
			}
			kinds[it.Write.Kind]++
		}
	}
	// Updates adding fields are two writes (the $unset prelude and the update).
	if kinds[InsertReplace] != 45 || kinds[Update] != 40 || kinds[Delete] != 15 || positions != 10 {
		t.Errorf("writes %v, positions %d", kinds, positions)
	}
}

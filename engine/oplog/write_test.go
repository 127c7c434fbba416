package oplog

import (
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func shardedByRegion(ns Namespace) []string {
	if ns == (Namespace{DB: "shop", Coll: "orders"}) {
		return []string{"region", "cust.id"}
	}
	return nil
}

func TestUpdateIsTargetedByFullDocumentKey(t *testing.T) {
	tr := NewTranslator(Config{KeyFields: shardedByRegion})
	items := process(t, tr,
		`{op: 'i', ns: 'shop.orders', `+tsAt(1)+`, o: {_id: 7, region: 'eu', cust: {id: 3, name: 'x'}, qty: 1}}`,
		`{op: 'u', ns: 'shop.orders', `+tsAt(2)+`, o: {$v: 2, diff: {u: {qty: 2}}}, o2: {region: 'eu', 'cust.id': 3, _id: 7}}`,
		`{op: 'd', ns: 'shop.orders', `+tsAt(3)+`, o: {region: 'eu', 'cust.id': 3, _id: 7}}`,
	)
	ws := writes(items)
	if len(ws) != 3 {
		t.Fatalf("got %d writes", len(ws))
	}
	sameDoc(t, "insert filter", ws[0].Filter, doc(t, `{_id: 7, region: 'eu', 'cust.id': 3}`))
	sameDoc(t, "update filter", ws[1].Filter, doc(t, `{region: 'eu', 'cust.id': 3, _id: 7}`))
	sameDoc(t, "delete filter", ws[2].Filter, doc(t, `{region: 'eu', 'cust.id': 3, _id: 7}`))
	if ws[0].Kind != InsertReplace || !ws[0].Upsert || ws[1].Kind != Update || ws[1].Upsert || ws[2].Kind != Delete {
		t.Errorf("kinds %v %v %v", ws[0].Kind, ws[1].Kind, ws[2].Kind)
	}
	if got, want := ws[0].Size(), len(ws[0].Filter)+len(ws[0].Replacement); got != want {
		t.Errorf("insert size %d, want %d", got, want)
	}
}

// A shard key change moves the document: the source shard deletes it by its
// old key and the new owner inserts it with the new key. The destination must
// not let the two clobber each other whatever order they arrive in.
func TestShardKeyChangeCannotClobberTheMovedDocument(t *testing.T) {
	old := decode(t, `{op: 'd', ns: 'shop.orders', `+tsAt(5)+`, o: {region: 'eu', 'cust.id': 3, _id: 7}}`)
	moved := decode(t, `{op: 'i', ns: 'shop.orders', `+tsAt(4)+`, o: {_id: 7, region: 'us', cust: {id: 3}}}`)
	for _, order := range [][]*Entry{{&moved, &old}, {&old, &moved}} {
		db := refDB{}
		db.coll(Namespace{DB: "shop", Coll: "orders"}).docs = []bson.Raw{doc(t, `{_id: 7, region: 'eu', cust: {id: 3}}`)}
		for _, e := range order {
			items, err := NewTranslator(Config{KeyFields: shardedByRegion}).Process(e, nil)
			if err != nil {
				t.Fatal(err)
			}
			applyAll(t, db, items)
		}
		got := db[Namespace{DB: "shop", Coll: "orders"}].docs
		if len(got) != 1 {
			t.Fatalf("%d documents after the move, want 1", len(got))
		}
		sameDoc(t, "moved document", got[0], doc(t, `{_id: 7, region: 'us', cust: {id: 3}}`))
	}
}

func TestInsertKeyGivesNullForAMissingShardKeyField(t *testing.T) {
	items := process(t, NewTranslator(Config{KeyFields: shardedByRegion}),
		`{op: 'i', ns: 'shop.orders', `+tsAt(1)+`, o: {_id: 1, cust: 'not a document'}}`)
	sameDoc(t, "filter", writes(items)[0].Filter, doc(t, `{_id: 1, region: null, 'cust.id': null}`))
}

func TestInsertWithAnArrayShardKeyIsAnError(t *testing.T) {
	e := decode(t, `{op: 'i', ns: 'shop.orders', `+tsAt(1)+`, o: {_id: 1, region: ['eu']}}`)
	if _, err := NewTranslator(Config{KeyFields: shardedByRegion}).Process(&e, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}

func TestInsertWithoutShardKeyUsesTheServersDocumentKey(t *testing.T) {
	items := process(t, NewTranslator(Config{}),
		`{op: 'i', ns: 'a.b', `+tsAt(1)+`, o: {_id: 1, x: 2}, o2: {x: 2, _id: 1}}`,
		`{op: 'i', ns: 'a.b', `+tsAt(2)+`, o: {x: 2, _id: 3}}`)
	ws := writes(items)
	sameDoc(t, "with o2", ws[0].Filter, doc(t, `{x: 2, _id: 1}`))
	sameDoc(t, "without o2", ws[1].Filter, doc(t, `{_id: 3}`))
}

func TestDocumentKeyWithoutIDIsAnError(t *testing.T) {
	for _, entry := range []string{
		`{op: 'i', ns: 'a.b', ` + tsAt(1) + `, o: {x: 1}}`,
		`{op: 'u', ns: 'a.b', ` + tsAt(1) + `, o: {$set: {x: 1}}, o2: {x: 1}}`,
		`{op: 'd', ns: 'a.b', ` + tsAt(1) + `, o: {x: 1}}`,
	} {
		e := decode(t, entry)
		if _, err := NewTranslator(Config{}).Process(&e, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", entry, err)
		}
	}
}

func TestModifierUpdateIsPassedThroughWithoutV(t *testing.T) {
	items := process(t, NewTranslator(Config{}),
		`{op: 'u', ns: 'a.b', `+tsAt(1)+`, o: {$v: 1, $set: {'a.c': 2, b: 1}, $unset: {z: true}}, o2: {_id: 1}}`,
		`{op: 'u', ns: 'a.b', `+tsAt(2)+`, o: {$set: {n: 1}}, o2: {_id: 1}}`,
		`{op: 'u', ns: 'a.b', `+tsAt(3)+`, o: {$v: 1, $set: {}}, o2: {_id: 1}}`,
	)
	ws := writes(items)
	if len(ws) != 2 || items[2].Kind != ItemPosition {
		t.Fatalf("items %+v, want two updates and a position for the empty $set", items)
	}
	sameDoc(t, "$v: 1 update", ws[0].Update, doc(t, `{$set: {'a.c': 2, b: 1}, $unset: {z: true}}`))
	sameDoc(t, "legacy update", ws[1].Update, doc(t, `{$set: {n: 1}}`))
	db := refDB{}
	db.coll(Namespace{DB: "a", Coll: "b"}).docs = []bson.Raw{doc(t, `{_id: 1, a: {x: 0}, z: 1}`)}
	applyAll(t, db, items)
	sameDoc(t, "document", db[Namespace{DB: "a", Coll: "b"}].docs[0], doc(t, `{_id: 1, a: {x: 0, c: 2}, b: 1, n: 1}`))
}

func TestReplacementUpdateIsAReplaceUpsert(t *testing.T) {
	items := process(t, NewTranslator(Config{}),
		`{op: 'u', ns: 'a.b', `+tsAt(1)+`, o: {_id: 1, z: 1, a: 2}, o2: {_id: 1}}`)
	w := writes(items)[0]
	if w.Kind != InsertReplace || !w.Upsert {
		t.Fatalf("write %+v", w)
	}
	sameDoc(t, "replacement", w.Replacement, doc(t, `{_id: 1, z: 1, a: 2}`))
}

// Resuming from a checkpoint re-applies entries the destination may already
// have; every translated write must converge to the same documents.
func TestReplayFromAnyEarlierPointConverges(t *testing.T) {
	entries := []string{
		`{op: 'i', ns: 'shop.orders', ` + tsAt(1) + `, o: {_id: 1, region: 'eu', cust: {id: 1}, items: ['a'], qty: 1}}`,
		`{op: 'i', ns: 'shop.orders', ` + tsAt(2) + `, o: {_id: 2, region: 'us', cust: {id: 2}, qty: 5}}`,
		`{op: 'u', ns: 'shop.orders', ` + tsAt(3) + `, o: {$v: 2, diff: {u: {qty: 2}, i: {note: 'x'}, sitems: {a: true, u1: 'b'}}}, o2: {region: 'eu', 'cust.id': 1, _id: 1}}`,
		`{op: 'u', ns: 'shop.orders', ` + tsAt(4) + `, o: {$v: 2, diff: {d: {note: false}, sitems: {a: true, l: 1}}}, o2: {region: 'eu', 'cust.id': 1, _id: 1}}`,
		`{op: 'u', ns: 'shop.orders', ` + tsAt(5) + `, o: {$v: 2, diff: {i: {qty: 5}}}, o2: {region: 'us', 'cust.id': 2, _id: 2}}`,
		`{op: 'u', ns: 'shop.orders', ` + tsAt(6) + `, o: {_id: 2, region: 'us', cust: {id: 2}, qty: 6}, o2: {region: 'us', 'cust.id': 2, _id: 2}}`,
		`{op: 'd', ns: 'shop.orders', ` + tsAt(7) + `, o: {region: 'us', 'cust.id': 2, _id: 2}}`,
		`{op: 'i', ns: 'shop.orders', ` + tsAt(8) + `, o: {_id: 3, region: 'eu', cust: {id: 3}}}`,
	}
	var items []Item
	tr := NewTranslator(Config{KeyFields: shardedByRegion})
	for _, s := range entries {
		items = append(items, process(t, tr, s)...)
	}
	ns := Namespace{DB: "shop", Coll: "orders"}
	final := refDB{}
	applyAll(t, final, items)
	want := final[ns].docs
	for k := range items {
		db := refDB{}
		applyAll(t, db, items)
		applyAll(t, db, items[k:])
		got := db[ns].docs
		if len(got) != len(want) {
			t.Fatalf("replay from item %d: %d documents, want %d", k, len(got), len(want))
		}
		for i := range want {
			sameDoc(t, "replayed document", got[i], want[i])
		}
	}
	sameDoc(t, "document 1", want[0], doc(t, `{_id: 1, region: 'eu', cust: {id: 1}, items: ['a'], qty: 2}`))
}

func TestWritesToOneDocumentShareAPartition(t *testing.T) {
	items := process(t, NewTranslator(Config{KeyFields: shardedByRegion}),
		`{op: 'i', ns: 'shop.orders', `+tsAt(1)+`, o: {_id: {$oid: '5ea8b2fca5fd2094399b496a'}, region: 'eu', cust: {id: 1}}}`,
		`{op: 'u', ns: 'shop.orders', `+tsAt(2)+`, o: {$v: 2, diff: {i: {x: 1}}}, o2: {region: 'eu', 'cust.id': 1, _id: {$oid: '5ea8b2fca5fd2094399b496a'}}}`,
		`{op: 'd', ns: 'shop.orders', `+tsAt(3)+`, o: {region: 'us', 'cust.id': 1, _id: {$oid: '5ea8b2fca5fd2094399b496a'}}}`,
		`{op: 'i', ns: 'shop.orders', `+tsAt(4)+`, o: {_id: {$oid: '5ea8b2fca5fd2094399b496b'}, region: 'eu', cust: {id: 1}}}`,
		`{op: 'i', ns: 'shop.invoices', `+tsAt(5)+`, o: {_id: {$oid: '5ea8b2fca5fd2094399b496a'}}}`,
	)
	ws := writes(items) // insert, the update's $unset prelude and $set, delete, two other documents
	if len(ws) != 6 {
		t.Fatalf("got %d writes, want 6", len(ws))
	}
	first := PartitionKey(&ws[0])
	for i := 1; i < 4; i++ {
		if PartitionKey(&ws[i]) != first {
			t.Errorf("write %d of the same document has another partition", i)
		}
	}
	if PartitionKey(&ws[4]) == first || PartitionKey(&ws[5]) == first {
		t.Error("another _id or another collection hashes like the first document")
	}
	if a := testing.AllocsPerRun(100, func() { _ = PartitionKey(&ws[1]) }); a != 0 {
		t.Errorf("PartitionKey allocates %v times", a)
	}
}

// A $v: 2 update that only a pipeline reproduces carries its diff, wherever it comes
// from (a transaction's applyOps too), so that a destination without pipeline
// updates can apply the diff instead; the diff gives the document MongoDB has.
func TestPipelineUpdateCarriesItsDiffInsideTransactionsToo(t *testing.T) {
	// The inserted fields are not in the order MongoDB's $set would append them: only
	// a pipeline (or the diff itself) puts them where the source has them.
	upd := `{op: 'u', ns: 'shop.items', o: {$v: 2, diff: {u: {x: 1}, i: {z: 1, b: 2}}}, o2: {_id: 0}}`
	for name, entry := range map[string]string{
		"plain":       `{op: 'u', ns: 'shop.items', ` + tsAt(1) + `, o: {$v: 2, diff: {u: {x: 1}, i: {z: 1, b: 2}}}, o2: {_id: 0}}`,
		"transaction": txnEntry(1, lsidA, 1, upd, ``, nullPrev),
	} {
		t.Run(name, func(t *testing.T) {
			ws := writes(process(t, NewTranslator(Config{}), entry))
			if len(ws) != 1 || ws[0].Pipeline == nil {
				t.Fatalf("writes %+v, want one pipeline update", ws)
			}
			want := doc(t, `{u: {x: 1}, i: {z: 1, b: 2}}`)
			sameDoc(t, "diff", ws[0].Diff, want)
			post, err := ApplyDiff(doc(t, `{_id: 0, x: 0}`), ws[0].Diff)
			if err != nil {
				t.Fatal(err)
			}
			sameDoc(t, "document after the diff", post, doc(t, `{_id: 0, x: 1, z: 1, b: 2}`))
		})
	}
	ws := writes(process(t, NewTranslator(Config{}), `{op: 'u', ns: 'shop.items', `+tsAt(1)+`, o: {$v: 2, diff: {u: {x: 1}}}, o2: {_id: 0}}`))
	if len(ws) != 1 || ws[0].Pipeline != nil || ws[0].Diff != nil {
		t.Fatalf("an operator update %+v carries a diff it does not need", ws)
	}
}

package oplog

import (
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/internal/corpus"
)

const ui = `ui: {$binary: {base64: 'UG740CdIQ0yW3Szj7wyRPQ==', subType: '04'}}`

// ddlOf translates one command entry (as MongoDB 4.2 to 8.0 write them) and
// returns its DDL, nil when it yields only a position.
func ddlOf(t *testing.T, o string, extra string) *DDL {
	t.Helper()
	entry := `{op: 'c', ns: 'shop.$cmd', ` + ui + `, o: ` + o + `, ` + tsAt(1) + `, v: {$numberLong: '2'}, wall: {$date: {$numberLong: '1616670994481'}}`
	if extra != "" {
		entry += `, ` + extra
	}
	items := process(t, NewTranslator(Config{}), entry+`}`)
	if len(items) != 1 {
		t.Fatalf("%s: %d items", o, len(items))
	}
	if items[0].Kind == ItemPosition {
		return nil
	}
	if items[0].TS != ts(1700000000, 1) {
		t.Errorf("DDL at %v", items[0].TS)
	}
	return items[0].DDL
}

func TestDDLEntriesTranslateToDDL(t *testing.T) {
	shop := func(c string) Namespace { return Namespace{DB: "shop", Coll: c} }

	d := ddlOf(t, `{create: 'log', capped: true, size: 1048576, max: 1000, idIndex: {v: 2, key: {_id: 1}, name: '_id_'}}`, ``)
	if d.Kind != DDLCreateCollection || d.NS != shop("log") {
		t.Fatalf("create: %+v", d)
	}
	sameDoc(t, "create options", d.Options, doc(t, `{capped: true, size: 1048576, max: 1000}`))

	d = ddlOf(t, `{drop: 'orders'}`, `o2: {numRecords: 3}`)
	if d.Kind != DDLDrop || d.NS != shop("orders") {
		t.Fatalf("drop: %+v", d)
	}

	d = ddlOf(t, `{dropDatabase: 1}`, ``)
	if d.Kind != DDLDropDatabase || d.NS != (Namespace{DB: "shop"}) {
		t.Fatalf("dropDatabase: %+v", d)
	}

	d = ddlOf(t, `{renameCollection: 'shop.tmp.agg_out.1', to: 'shop.report', stayTemp: false, dropTarget: {$binary: {base64: 'eDZOnxEAQcqDUU94UF8IHQ==', subType: '04'}}}`, ``)
	if d.Kind != DDLRename || d.NS != shop("tmp.agg_out.1") || d.To != shop("report") || !d.DropTarget {
		t.Fatalf("renameCollection: %+v", d)
	}
	d = ddlOf(t, `{renameCollection: 'shop.a', to: 'archive.a', stayTemp: false, dropTarget: false}`, ``)
	if d.Kind != DDLRename || d.To != (Namespace{DB: "archive", Coll: "a"}) || d.DropTarget {
		t.Fatalf("renameCollection across databases: %+v", d)
	}

	d = ddlOf(t, `{createIndexes: 'orders', v: 2, unique: true, key: {sku: 1}, name: 'sku_1', ns: 'shop.orders'}`, ``)
	if d.Kind != DDLCreateIndexes || d.NS != shop("orders") || len(d.Indexes) != 1 {
		t.Fatalf("createIndexes: %+v", d)
	}
	sameDoc(t, "index spec", d.Indexes[0], doc(t, `{unique: true, key: {sku: 1}, name: 'sku_1'}`))

	if d = ddlOf(t, `{startIndexBuild: 'orders', indexBuildUUID: {$binary: {base64: '4bxQ3jVUS+yW7PKdH21C6Q==', subType: '04'}}, indexes: [{v: 2, key: {a: 1}, name: 'a_1'}]}`, ``); d != nil {
		t.Fatalf("startIndexBuild: %+v, want nothing until the commit", d)
	}
	if d = ddlOf(t, `{abortIndexBuild: 'orders', indexBuildUUID: {$binary: {base64: '4bxQ3jVUS+yW7PKdH21C6Q==', subType: '04'}}, indexes: [{v: 2, key: {a: 1}, name: 'a_1'}], cause: {ok: false, code: 11601}}`, ``); d != nil {
		t.Fatalf("abortIndexBuild: %+v, want nothing", d)
	}
	d = ddlOf(t, `{commitIndexBuild: 'orders', indexBuildUUID: {$binary: {base64: '4bxQ3jVUS+yW7PKdH21C6Q==', subType: '04'}}, indexes: [{v: 2, key: {a: 1}, name: 'a_1'}, {v: 2, key: {b: -1}, name: 'b_-1', expireAfterSeconds: 60}]}`, ``)
	if d.Kind != DDLCreateIndexes || len(d.Indexes) != 2 {
		t.Fatalf("commitIndexBuild: %+v", d)
	}
	sameDoc(t, "second spec", d.Indexes[1], doc(t, `{key: {b: -1}, name: 'b_-1', expireAfterSeconds: 60}`))

	for _, o := range []string{`{dropIndexes: 'orders', index: 'sku_1'}`, `{deleteIndexes: 'orders', index: 'sku_1'}`, `{deleteIndex: 'orders', index: 'sku_1'}`} {
		d = ddlOf(t, o, `o2: {v: 2, key: {sku: 1}, name: 'sku_1'}`)
		if d.Kind != DDLDropIndexes || d.NS != shop("orders") || len(d.IndexNames) != 1 || d.IndexNames[0] != "sku_1" {
			t.Fatalf("%s: %+v", o, d)
		}
	}
	d = ddlOf(t, `{dropIndexes: 'orders', index: {sku: 1}}`, ``)
	if d.Kind != DDLDropIndexes || d.IndexNames != nil {
		t.Fatalf("dropIndexes by key: %+v", d)
	}
	sameDoc(t, "dropIndexes by key", d.Options, doc(t, `{index: {sku: 1}}`))

	d = ddlOf(t, `{collMod: 'orders', validator: {qty: {$gte: 0}}, validationLevel: 'moderate'}`, `o2: {collectionOptions_old: {uuid: {$binary: {base64: 'UG740CdIQ0yW3Szj7wyRPQ==', subType: '04'}}}}`)
	if d.Kind != DDLCollMod || d.NS != shop("orders") {
		t.Fatalf("collMod: %+v", d)
	}
	sameDoc(t, "collMod options", d.Options, doc(t, `{validator: {qty: {$gte: 0}}, validationLevel: 'moderate'}`))

	d = ddlOf(t, `{emptycapped: 'log'}`, ``)
	if d.Kind != DDLEmptyCapped || d.NS != shop("log") {
		t.Fatalf("emptycapped: %+v", d)
	}
	d = ddlOf(t, `{convertToCapped: 'log', size: 4096}`, ``)
	if d.Kind != DDLConvertToCapped {
		t.Fatalf("convertToCapped: %+v", d)
	}
	sameDoc(t, "convertToCapped options", d.Options, doc(t, `{size: 4096}`))
	if d = ddlOf(t, `{dbCheck: 'orders', type: 'batch'}`, ``); d != nil {
		t.Fatalf("dbCheck: %+v", d)
	}
}

func TestIndexDDLCarriesSpecsAsTheDestinationTakesThem(t *testing.T) {
	// A 4.2 source's inline createIndexes and a 4.4 source's commitIndexBuild, with
	// what older servers leave in a spec (v: 1 indexes from before 3.4, ns before 4.4,
	// background before 4.2, dropDups before 3.0): a 5.0+ destination refuses ns.
	want := doc(t, `{key: {sku: 1}, name: 'sku_1', unique: true, partialFilterExpression: {qty: {$gt: 0}}}`)
	d := ddlOf(t, `{createIndexes: 'orders', v: 1, key: {sku: 1}, name: 'sku_1', ns: 'shop.orders', background: true, unique: true, partialFilterExpression: {qty: {$gt: 0}}}`, ``)
	sameDoc(t, "createIndexes spec", d.Indexes[0], want)
	d = ddlOf(t, `{commitIndexBuild: 'orders', indexBuildUUID: {$binary: {base64: '4bxQ3jVUS+yW7PKdH21C6Q==', subType: '04'}}, indexes: [{v: 1, key: {sku: 1}, name: 'sku_1', background: true, dropDups: true, unique: true, partialFilterExpression: {qty: {$gt: 0}}}]}`, ``)
	sameDoc(t, "commitIndexBuild spec", d.Indexes[0], want)
	sameDoc(t, "DestinationIndexSpec", DestinationIndexSpec(doc(t, `{v: 2, key: {loc: 'geoHaystack', type: 1}, name: 'loc', bucketSize: 1, ns: 'shop.places'}`)),
		doc(t, `{key: {loc: 'geoHaystack', type: 1}, name: 'loc', bucketSize: 1}`))
}

func TestUnreplayableCommandsAreErrors(t *testing.T) {
	for _, o := range []string{
		`{importCollection: 'orders', collectionProperties: {}}`,
		`{renameCollection: 'shop.orders', to: 'shop.system.orders'}`,
		`{renameCollection: 'config.x', to: 'shop.x'}`,
	} {
		e := decode(t, `{op: 'c', ns: 'shop.$cmd', o: `+o+`, `+tsAt(1)+`}`)
		if _, err := NewTranslator(Config{}).Process(&e, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", o, err)
		}
	}
	e := decode(t, `{op: 'c', ns: 'shop.$cmd', o: {drop: 5}, `+tsAt(1)+`}`)
	if _, err := NewTranslator(Config{}).Process(&e, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("drop of a number: got %v, want ErrMalformed", err)
	}
}

func TestDDLKeyDistinguishesWhatTheDDLDoes(t *testing.T) {
	base := DDL{Kind: DDLCreateIndexes, NS: Namespace{DB: "a", Coll: "b"}, Indexes: []bson.Raw{doc(t, `{key: {a: 1}, name: 'a_1'}`)}}
	other := []DDL{
		{Kind: DDLCreateIndexes, NS: Namespace{DB: "a", Coll: "c"}, Indexes: base.Indexes},
		{Kind: DDLCreateIndexes, NS: base.NS, Indexes: []bson.Raw{doc(t, `{key: {a: -1}, name: 'a_1'}`)}},
		{Kind: DDLDropIndexes, NS: base.NS, IndexNames: []string{"a_1"}},
	}
	for _, o := range other {
		if o.Key() == base.Key() {
			t.Errorf("%+v has the key of %+v", o, base)
		}
	}
	same := base
	same.Indexes = []bson.Raw{doc(t, `{key: {a: 1}, name: 'a_1'}`)}
	if same.Key() != base.Key() {
		t.Error("identical DDL has another key")
	}
	withUUID := base
	withUUID.UUID = []byte("0123456789abcdef")
	if withUUID.Key() == base.Key() {
		t.Error("the same DDL of another collection (UUID) has the same key")
	}
}

func TestUniqueIndexIsBuiltNonUniqueDuringSync(t *testing.T) {
	spec := doc(t, `{v: 2, unique: true, key: {sku: 1}, name: 'sku_1', partialFilterExpression: {sku: {$exists: true}}, prepareUnique: true}`)
	relaxed, original, err := RelaxIndexForSync(spec)
	if err != nil {
		t.Fatal(err)
	}
	sameDoc(t, "relaxed", relaxed, doc(t, `{v: 2, key: {sku: 1}, name: 'sku_1', partialFilterExpression: {sku: {$exists: true}}}`))
	sameDoc(t, "original", original, spec)
	clear(spec)
	if _, ok := lookup(original, "unique"); !ok {
		t.Error("original aliases the input")
	}
}

func TestTTLIndexGetsAHugeExpiryDuringSync(t *testing.T) {
	spec := doc(t, `{v: 2, key: {createdAt: 1}, name: 'createdAt_1', expireAfterSeconds: 3600}`)
	relaxed, original, err := RelaxIndexForSync(spec)
	if err != nil {
		t.Fatal(err)
	}
	sameDoc(t, "relaxed", relaxed, doc(t, `{v: 2, key: {createdAt: 1}, name: 'createdAt_1', expireAfterSeconds: 2147483647}`))
	sameDoc(t, "original", original, spec)
}

func TestIDIndexAndPlainIndexesAreNotChanged(t *testing.T) {
	for _, s := range []string{`{v: 2, key: {_id: 1}, name: '_id_'}`, `{v: 2, key: {a: 1, b: 'hashed'}, name: 'ab', unique: false}`} {
		relaxed, _, err := RelaxIndexForSync(doc(t, s))
		if err != nil {
			t.Fatal(err)
		}
		sameDoc(t, "spec", relaxed, doc(t, s))
	}
	if _, _, err := RelaxIndexForSync(bson.Raw{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Errorf("corrupt spec: %v", err)
	}
}

func TestCollModUniqueAndTTLAreWithheldUntilFinalize(t *testing.T) {
	cases := []struct{ opts, apply, withheld string }{
		{`{index: {name: 'a_1', unique: true}}`, ``, `{index: {name: 'a_1', unique: true}}`},
		{`{index: {name: 'a_1', prepareUnique: true}}`, ``, `{index: {name: 'a_1', prepareUnique: true}}`},
		{`{index: {keyPattern: {a: 1}, forceNonUnique: true}}`, ``, `{index: {keyPattern: {a: 1}, forceNonUnique: true}}`},
		{`{index: {name: 'ts_1', expireAfterSeconds: {$numberLong: '1000'}}}`, `{index: {name: 'ts_1', expireAfterSeconds: 2147483647}}`, `{index: {name: 'ts_1', expireAfterSeconds: {$numberLong: '1000'}}}`},
		{`{index: {name: 'f_1', hidden: true}}`, `{index: {name: 'f_1', hidden: true}}`, ``},
		{`{validator: {a: 1}, expireAfterSeconds: 60}`, `{validator: {a: 1}, expireAfterSeconds: 2147483647}`, `{expireAfterSeconds: 60}`},
		{`{expireAfterSeconds: 'off'}`, `{expireAfterSeconds: 'off'}`, ``},
	}
	for _, c := range cases {
		apply, withheld, err := RelaxCollectionOptionsForSync(doc(t, c.opts))
		if err != nil {
			t.Fatal(err)
		}
		if c.apply == "" {
			if apply != nil {
				t.Errorf("%s: apply %s, want nothing", c.opts, apply)
			}
		} else {
			sameDoc(t, c.opts+" apply", apply, doc(t, c.apply))
		}
		if c.withheld == "" {
			if withheld != nil {
				t.Errorf("%s: withheld %s, want nothing", c.opts, withheld)
			}
		} else {
			sameDoc(t, c.opts+" withheld", withheld, doc(t, c.withheld))
		}
	}
}

// The corpus' collMod entries (MongoDB 6.0+ unique conversion) go through the
// relaxation as the engine would apply them.
func TestCorpusCollModIsRelaxed(t *testing.T) {
	entries := readBSONFile(t, corpus.Dir(t)+"/oplogs__bson__collMod_indexUniqueness.bson")
	withheldUnique := 0
	for _, raw := range entries {
		e, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		items, err := NewTranslator(Config{}).Process(&e, nil)
		if err != nil || len(items) != 1 || items[0].Kind != ItemDDL {
			t.Fatalf("%s: %v %+v", raw, err, items)
		}
		d := items[0].DDL
		switch d.Kind {
		case DDLCollMod:
			apply, withheld, err := RelaxCollectionOptionsForSync(d.Options)
			if err != nil {
				t.Fatal(err)
			}
			if ix, ok := lookup(apply, "index"); ok {
				for _, f := range []string{"unique", "prepareUnique", "forceNonUnique"} {
					if _, bad := lookup(ix.val, f); bad {
						t.Errorf("%s applied during sync: %s", f, apply)
					}
				}
			}
			if ix, ok := lookup(withheld, "index"); ok {
				if _, ok := lookup(ix.val, "unique"); ok {
					withheldUnique++
				}
			}
		case DDLCreateIndexes:
			relaxed, _, err := RelaxIndexForSync(d.Indexes[0])
			if err != nil {
				t.Fatal(err)
			}
			if ttl, ok := lookup(relaxed, "expireAfterSeconds"); ok && ttl.int32() != RelaxedExpireAfterSeconds {
				t.Errorf("TTL not relaxed: %s", relaxed)
			}
		}
	}
	if withheldUnique != 4 {
		t.Errorf("withheld %d unique conversions, want the corpus' 4", withheldUnique)
	}
}

package oplog

import (
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// The oplog forms of each MongoDB version from 3.6 to 8.0, in whole entries laid out
// as each version writes them (MongoDB's op_observer_impl, repl/oplog.cpp, update/ and
// index build code; the entries of the mongo-tools corpus): one application's session
// (a retryable insert, update and findAndModify, an insertMany, a deleteMany, index
// builds, sharded DDL records and DDL) decodes, translates and, applied, leaves the
// documents and the DDL the source has.

// release describes how one version lays out its entries.
type release struct {
	name string
	// legacy: ts, t, h, v (int32), op, ns, ui, fromMigrate, o2, wall, session fields, o
	// (3.6 to 4.2); else the IDL order (4.4+).
	legacy bool
	hash   string // h: random before 4.2, 0 in 4.2, absent after
	uuids  bool   // ui (FCV 3.6+)
}

// shaped is one entry's content, laid out by release.entry.
type shaped struct {
	op, ns, o, o2 string
	session       string // lsid, txnNumber (and stmtId) of a retryable write
	prev          string // prevOpTime
	extra         string // fields after the optime (images, multiOpType)
	fromMigrate   bool
	noUI          bool
}

const (
	lsid    = `lsid: {id: {$binary: {base64: 'zdhPCAvuT7Gsagxqmkn7Bw==', subType: '04'}}, uid: {$binary: {base64: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', subType: '00'}}}`
	colUI   = `ui: {$binary: {base64: 'U7qahbLASrC1hH9NFBxwjw==', subType: '04'}}`
	nullOp  = `prevOpTime: {ts: {$timestamp: {t: 0, i: 0}}, t: {$numberLong: '-1'}}`
	buildID = `indexBuildUUID: {$binary: {base64: '4bxQ3jVUS+yW7PKdH21C6Q==', subType: '04'}}`
)

func opTimeAt(field string, i int) string {
	return fmt.Sprintf(`%s: {ts: {$timestamp: {t: 1700000000, i: %d}}, t: {$numberLong: '1'}}`, field, i)
}

func txn(n, stmt int) string {
	s := fmt.Sprintf(`%s, txnNumber: {$numberLong: '%d'}`, lsid, n)
	if stmt >= 0 {
		s += fmt.Sprintf(`, stmtId: %d`, stmt)
	}
	return s
}

// entry lays out one entry at ts (1700000000, i) the way the release writes it.
func (r release) entry(i int, s shaped) string {
	var f []string
	add := func(parts ...string) {
		for _, p := range parts {
			if p != "" {
				f = append(f, p)
			}
		}
	}
	ui := ""
	if r.uuids && !s.noUI && s.op != "n" || r.uuids && s.op == "n" && strings.Contains(s.ns, ".") {
		ui = colUI
	}
	o2 := ""
	if s.o2 != "" {
		o2 = "o2: " + s.o2
	}
	fm := ""
	if s.fromMigrate {
		fm = "fromMigrate: true"
	}
	tsf := fmt.Sprintf(`ts: {$timestamp: {t: 1700000000, i: %d}}, t: {$numberLong: '1'}`, i)
	wall := `wall: {$date: {$numberLong: '1700000000000'}}`
	opns := fmt.Sprintf(`op: '%s', ns: '%s'`, s.op, s.ns)
	if r.legacy {
		h := ""
		if r.hash != "" {
			h = `h: {$numberLong: '` + r.hash + `'}`
		}
		add(tsf, h, `v: 2`, opns, ui, fm, o2, wall, s.session, s.prev, s.extra, "o: "+s.o)
	} else {
		sess, stmt := s.session, ""
		if k := strings.Index(sess, ", stmtId"); k >= 0 {
			sess, stmt = sess[:k], sess[k+2:]
		}
		add(sess, opns, ui, "o: "+s.o, o2, fm, stmt, tsf, `v: {$numberLong: '2'}`, wall, s.prev, s.extra)
	}
	return "{" + strings.Join(f, ", ") + "}"
}

func TestEveryVersionsFormsDecodeTranslateAndApply(t *testing.T) {
	releases := []struct {
		release
		fcv34, v1, v2, noteIndex, twoPhase, imageNoop, imageLinked, batchedDelete, vectored, insertKey, shardNote, refineNote, participantDrop, dropCounts bool
	}{
		{release: release{"3.6 FCV 3.4", true, "-3142817491011217351", false}, fcv34: true, imageNoop: true},
		{release: release{"3.6", true, "8813424003126712210", true}, v1: true, imageNoop: true},
		{release: release{"4.0", true, "-2519416839232140839", true}, v1: true, noteIndex: true, imageNoop: true},
		{release: release{"4.2", true, "0", true}, v1: true, noteIndex: true, imageNoop: true, dropCounts: true},
		{release: release{"4.4", false, "", true}, v1: true, twoPhase: true, imageNoop: true, imageLinked: true, dropCounts: true},
		{release: release{"5.0", false, "", true}, v2: true, twoPhase: true, imageNoop: true, imageLinked: true, shardNote: true, dropCounts: true},
		{release: release{"6.0", false, "", true}, v2: true, twoPhase: true, insertKey: true, shardNote: true, participantDrop: true, dropCounts: true},
		{release: release{"7.0", false, "", true}, v2: true, twoPhase: true, batchedDelete: true, insertKey: true, shardNote: true, refineNote: true, participantDrop: true, dropCounts: true},
		{release: release{"8.0", false, "", true}, v2: true, twoPhase: true, batchedDelete: true, vectored: true, insertKey: true, shardNote: true, refineNote: true, participantDrop: true, dropCounts: true},
	}
	for _, v := range releases {
		t.Run(v.name, func(t *testing.T) {
			r := v.release
			i := 0
			var entries []string
			add := func(s shaped) int {
				i++
				entries = append(entries, r.entry(i, s))
				return i
			}
			idIndex := `{v: 2, key: {_id: 1}, name: '_id_'}`
			if r.legacy {
				idIndex = `{v: 2, key: {_id: 1}, name: '_id_', ns: 'shop.orders'}`
			}
			add(shaped{op: "c", ns: "shop.$cmd", o: `{create: 'orders', idIndex: ` + idIndex + `}`})

			// A retryable insert, update and findAndModify (one session, txnNumbers 1 to 3).
			key := func(id string) string {
				if v.insertKey {
					return `{_id: ` + id + `}`
				}
				return ""
			}
			add(shaped{op: "i", ns: "shop.orders", o: `{_id: 1, sku: 'a', qty: 1, box: {w: 1}}`, o2: key("1"), session: txn(1, 0), prev: nullOp})
			var update string
			switch {
			case v.fcv34:
				update = `{$set: {'box.w': 2, qty: 2}}`
			case v.v1:
				update = `{$v: 1, $set: {'box.w': 2, qty: 2}}`
			default:
				update = `{$v: 2, diff: {u: {qty: 2}, sbox: {u: {w: 2}}}}`
			}
			add(shaped{op: "u", ns: "shop.orders", o: update, o2: `{_id: 1}`, session: txn(2, 0), prev: nullOp})
			inc := `{$v: 2, diff: {u: {qty: 3}}}`
			switch {
			case v.fcv34:
				inc = `{$set: {qty: 3}}`
			case v.v1:
				inc = `{$v: 1, $set: {qty: 3}}`
			}
			if v.imageNoop {
				notePrev := ""
				if v.imageLinked {
					notePrev = nullOp
				}
				n := add(shaped{op: "n", ns: "shop.orders", o: `{_id: 1, sku: 'a', qty: 3, box: {w: 2}}`, session: txn(3, 0), prev: notePrev})
				add(shaped{op: "u", ns: "shop.orders", o: inc, o2: `{_id: 1}`, session: txn(3, 0), prev: nullOp, extra: opTimeAt("postImageOpTime", n)})
			} else {
				add(shaped{op: "u", ns: "shop.orders", o: inc, o2: `{_id: 1}`, session: txn(3, 0), prev: nullOp, extra: `needsRetryImage: 'postImage'`})
			}

			// insertMany of three documents (retryable, txnNumber 4), then a deleteMany of two.
			docs := []string{`{_id: 2, sku: 'b'}`, `{_id: 3, sku: 'c'}`, `{_id: 4, sku: 'd'}`}
			if v.vectored {
				var ops []string
				for k, d := range docs {
					ops = append(ops, fmt.Sprintf(`{op: 'i', ns: 'shop.orders', %s, o: %s, o2: {_id: %d}, stmtId: %d}`, colUI, d, k+2, k))
				}
				add(shaped{op: "c", ns: "admin.$cmd", o: `{applyOps: [` + strings.Join(ops, ", ") + `]}`, session: txn(4, -1), prev: nullOp, extra: `multiOpType: 1`, noUI: true})
			} else {
				prev := nullOp
				for k, d := range docs {
					j := add(shaped{op: "i", ns: "shop.orders", o: d, o2: key(fmt.Sprint(k + 2)), session: txn(4, k), prev: prev})
					prev = opTimeAt("prevOpTime", j)
				}
			}
			if v.batchedDelete {
				add(shaped{op: "c", ns: "admin.$cmd", noUI: true, o: `{applyOps: [{op: 'd', ns: 'shop.orders', ` + colUI + `, o: {_id: 3}}, {op: 'd', ns: 'shop.orders', ` + colUI + `, o: {_id: 4}}]}`})
			} else {
				add(shaped{op: "d", ns: "shop.orders", o: `{_id: 3}`})
				add(shaped{op: "d", ns: "shop.orders", o: `{_id: 4}`})
			}

			// An index build that succeeds and one that fails.
			spec := `{v: 2, key: {sku: 1}, name: 'sku_1'}`
			switch {
			case v.fcv34:
				add(shaped{op: "i", ns: "shop.system.indexes", noUI: true, o: `{v: 2, key: {sku: 1}, name: 'sku_1', ns: 'shop.orders'}`})
			case v.twoPhase:
				add(shaped{op: "c", ns: "shop.$cmd", o: `{startIndexBuild: 'orders', ` + buildID + `, indexes: [` + spec + `]}`})
				add(shaped{op: "c", ns: "shop.$cmd", o: `{commitIndexBuild: 'orders', ` + buildID + `, indexes: [` + spec + `]}`})
				add(shaped{op: "c", ns: "shop.$cmd", o: `{startIndexBuild: 'orders', ` + buildID + `, indexes: [{v: 2, key: {qty: 1}, name: 'qty_1', unique: true}]}`})
				add(shaped{op: "c", ns: "shop.$cmd", o: `{abortIndexBuild: 'orders', ` + buildID + `, indexes: [{v: 2, key: {qty: 1}, name: 'qty_1', unique: true}], cause: {ok: false, code: 11000, codeName: 'DuplicateKey', errmsg: 'E11000 duplicate key error'}}`})
			default:
				if v.noteIndex {
					add(shaped{op: "n", ns: "", o: `{msg: 'Creating indexes. Coll: shop.orders'}`})
				}
				add(shaped{op: "c", ns: "shop.$cmd", o: `{createIndexes: 'orders', v: 2, key: {sku: 1}, name: 'sku_1'}`})
			}

			// Sharding records: shardCollection (5.0+) and refineCollectionShardKey (6.1+).
			if v.shardNote {
				add(shaped{op: "n", ns: "shop.orders", o: `{msg: {shardCollection: 'shop.orders'}}`, o2: `{shardCollection: 'shop.orders', shardKey: {sku: 1}, unique: false, numInitialChunks: {$numberLong: '0'}, presplitHashedZones: false}`})
			}
			if v.refineNote {
				add(shaped{op: "n", ns: "shop.orders", o: `{msg: 'Refine shard key for collection shop.orders with { sku: 1, _id: 1 }'}`, o2: `{refineCollectionShardKey: 'shop.orders', shardKey: {sku: 1, _id: 1}, oldShardKey: {sku: 1}}`})
			}

			// dropIndexes, collMod, a rename over a target and a sharded drop.
			droppedSpec := spec
			if r.legacy {
				droppedSpec = `{v: 2, key: {sku: 1}, name: 'sku_1', ns: 'shop.orders'}`
			}
			add(shaped{op: "c", ns: "shop.$cmd", o: `{dropIndexes: 'orders', index: 'sku_1'}`, o2: droppedSpec})
			uuid := strings.TrimPrefix(colUI, "ui: ")
			collModOld := `{collectionOptions_old: {uuid: ` + uuid + `}, expireAfterSeconds_old: {$numberLong: '60'}}`
			switch {
			case v.fcv34:
				collModOld = `{collectionOptions_old: {}, expireAfterSeconds_old: {$numberLong: '60'}}`
			case v.participantDrop:
				collModOld = `{collectionOptions_old: {uuid: ` + uuid + `}, indexOptions_old: {expireAfterSeconds: {$numberLong: '60'}}}`
			}
			add(shaped{op: "c", ns: "shop.$cmd", o: `{collMod: 'orders', index: {name: 'ttl_1', expireAfterSeconds: {$numberLong: '120'}}}`, o2: collModOld})
			dropTarget := `dropTarget: {$binary: {base64: 'eDZOnxEAQcqDUU94UF8IHQ==', subType: '04'}}`
			if v.fcv34 {
				dropTarget = `dropTarget: true`
			}
			renameO2 := ""
			if v.dropCounts {
				renameO2 = `{numRecords: 0}`
			}
			add(shaped{op: "c", ns: "shop.$cmd", o: `{renameCollection: 'shop.tmp', to: 'shop.report', stayTemp: false, ` + dropTarget + `}`, o2: renameO2})
			renameFlag := strings.HasPrefix(v.name, "3.6") // dropTarget: false when nothing was dropped
			if renameFlag {
				add(shaped{op: "c", ns: "shop.$cmd", o: `{renameCollection: 'shop.tmp2', to: 'shop.report2', stayTemp: false, dropTarget: false}`})
			}
			dropO2 := ""
			if v.dropCounts {
				dropO2 = `{numRecords: 2}`
			}
			if v.participantDrop {
				add(shaped{op: "c", ns: "shop.$cmd", o: `{drop: 'report'}`, o2: dropO2, fromMigrate: true})
			}
			add(shaped{op: "c", ns: "shop.$cmd", o: `{drop: 'report'}`, o2: dropO2})

			tr := NewTranslator(Config{})
			var items []Item
			for _, s := range entries {
				e, err := Decode(doc(t, s))
				if err != nil {
					t.Fatalf("Decode(%s): %v", s, err)
				}
				n := len(items)
				if items, err = tr.Process(&e, items); err != nil {
					t.Fatalf("Process(%s): %v", s, err)
				}
				if len(items) == n {
					t.Fatalf("Process(%s) gave nothing, not even a position", s)
				}
			}
			if _, open := tr.OpenTxnFloor(); open {
				t.Errorf("a retryable write or batch was held as an open transaction")
			}

			db := refDB{}
			applyAll(t, db, items)
			orders := Namespace{DB: "shop", Coll: "orders"}
			got := db[orders].docs
			want := []bson.Raw{doc(t, `{_id: 1, sku: 'a', qty: 3, box: {w: 2}}`), doc(t, `{_id: 2, sku: 'b'}`)}
			if len(got) != len(want) {
				t.Fatalf("shop.orders holds %v, want %v", got, want)
			}
			for k := range want {
				sameDoc(t, "document", got[k], want[k])
			}
			var ddl []string
			for _, it := range items {
				if it.Kind == ItemDDL {
					ddl = append(ddl, it.DDL.Kind.String()+" "+it.DDL.NS.String())
				}
			}
			// The sharding records become DDL too: the destination shards (or refines)
			// the collection with the same key.
			wantDDL := "create shop.orders, createIndexes shop.orders"
			if v.shardNote {
				wantDDL += ", shardCollection shop.orders"
			}
			if v.refineNote {
				wantDDL += ", refineCollectionShardKey shop.orders"
			}
			wantDDL += ", dropIndexes shop.orders, collMod shop.orders, renameCollection shop.tmp"
			if renameFlag {
				wantDDL += ", renameCollection shop.tmp2"
			}
			wantDDL += ", drop shop.report"
			if g := strings.Join(ddl, ", "); g != wantDDL {
				t.Errorf("DDL %s, want %s", g, wantDDL)
			}
			for _, it := range items {
				if it.Kind == ItemDDL && it.DDL.Kind == DDLCreateIndexes {
					sameDoc(t, "index spec", it.DDL.Indexes[0], DestinationIndexSpec(doc(t, spec)))
				}
			}
		})
	}
}

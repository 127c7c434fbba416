package oplog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/internal/corpus"
)

func TestDecodeReadsEveryField(t *testing.T) {
	e := decode(t, `{
		lsid: {id: {$binary: {base64: '8v/sU+r6SbOjTCbgmQABDg==', subType: '04'}}, uid: {$binary: {base64: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', subType: '00'}}},
		txnNumber: {$numberLong: '7'},
		op: 'u', ns: 'shop.orders',
		ui: {$binary: {base64: 'U7qahbLASrC1hH9NFBxwjw==', subType: '04'}},
		o: {$v: 2, diff: {u: {qty: 3}}},
		o2: {_id: {$oid: '5ea8b2fca5fd2094399b496a'}, region: 'eu'},
		stmtId: 4,
		ts: {$timestamp: {t: 1719861048, i: 3}}, t: {$numberLong: '5'}, v: {$numberLong: '2'},
		wall: {$date: {$numberLong: '1719861048464'}},
		prevOpTime: {ts: {$timestamp: {t: 1719861048, i: 2}}, t: {$numberLong: '5'}},
		fromMigrate: true
	}`)
	if e.Op != OpUpdate || e.NS != (Namespace{DB: "shop", Coll: "orders"}) || e.Update != UpdateDiff {
		t.Errorf("op %q ns %v form %v", e.Op, e.NS, e.Update)
	}
	if e.TS != ts(1719861048, 3) || e.Term != 5 || e.Version != 2 || e.TxnNumber != 7 || !e.HasTxnNumber {
		t.Errorf("ts %v t %d v %d txnNumber %d", e.TS, e.Term, e.Version, e.TxnNumber)
	}
	if !e.HasPrevOpTime || e.PrevOpTime != (OpTime{TS: ts(1719861048, 2), Term: 5}) {
		t.Errorf("prevOpTime %+v", e.PrevOpTime)
	}
	if !e.Wall.Equal(time.UnixMilli(1719861048464)) || len(e.UI) != 16 || e.LSID == nil || !e.FromMigrate {
		t.Errorf("wall %v ui %x lsid %v fromMigrate %v", e.Wall, e.UI, e.LSID, e.FromMigrate)
	}
	if e.StmtID.Int32() != 4 {
		t.Errorf("stmtId %v", e.StmtID)
	}
}

func TestDecodeClassifiesUpdateForms(t *testing.T) {
	cases := map[string]UpdateForm{
		`{_id: 1, a: 2}`:                              UpdateReplacement,
		`{$v: 1, $set: {a: 2}}`:                       UpdateModifier,
		`{$set: {a: 2}, $unset: {b: 1}}`:              UpdateModifier,
		`{$v: 2, diff: {u: {a: 2}}}`:                  UpdateDiff,
		`{$v: {$numberLong: '2'}, diff: {u: {a: 2}}}`: UpdateDiff,
	}
	for o, want := range cases {
		e := decode(t, `{op: 'u', ns: 'a.b', ts: {$timestamp: {t: 1, i: 1}}, o2: {_id: 1}, o: `+o+`}`)
		if e.Update != want {
			t.Errorf("%s: form %v, want %v", o, e.Update, want)
		}
	}
}

// A malformed entry is an error naming the field and the entry's ts; nothing
// is skipped silently and nothing panics.
func TestMalformedEntryIsAnErrorNotASkip(t *testing.T) {
	const tsField = `ts: {$timestamp: {t: 1600000000, i: 7}}`
	cases := []struct {
		name, entry, field string
	}{
		{"missing ts", `{op: 'i', ns: 'a.b', o: {_id: 1}}`, "ts"},
		{"ts not a timestamp", `{op: 'i', ns: 'a.b', o: {_id: 1}, ts: 5}`, "ts"},
		{"missing op", `{ns: 'a.b', o: {_id: 1}, ` + tsField + `}`, "op"},
		{"unknown op", `{op: 'x', ns: 'a.b', o: {_id: 1}, ` + tsField + `}`, "op"},
		{"long op", `{op: 'ii', ns: 'a.b', o: {_id: 1}, ` + tsField + `}`, "op"},
		{"op not a string", `{op: 1, ns: 'a.b', o: {_id: 1}, ` + tsField + `}`, "op"},
		{"missing ns", `{op: 'i', o: {_id: 1}, ` + tsField + `}`, "ns"},
		{"ns without collection", `{op: 'i', ns: 'a', o: {_id: 1}, ` + tsField + `}`, "ns"},
		{"ns not a string", `{op: 'i', ns: 3, o: {_id: 1}, ` + tsField + `}`, "ns"},
		{"insert without o", `{op: 'i', ns: 'a.b', ` + tsField + `}`, "o"},
		{"o not a document", `{op: 'i', ns: 'a.b', o: [1], ` + tsField + `}`, "o"},
		{"update without o2", `{op: 'u', ns: 'a.b', o: {$set: {x: 1}}, ` + tsField + `}`, "o2"},
		{"update with unknown $v", `{op: 'u', ns: 'a.b', o: {$v: 3, diff: {}}, o2: {_id: 1}, ` + tsField + `}`, "o.$v"},
		{"update with $inc", `{op: 'u', ns: 'a.b', o: {$v: 1, $inc: {x: 1}}, o2: {_id: 1}, ` + tsField + `}`, "o.$inc"},
		{"diff without $v 2", `{op: 'u', ns: 'a.b', o: {$v: 1, diff: {u: {a: 1}}}, o2: {_id: 1}, ` + tsField + `}`, "o.diff"},
		{"$v 2 without diff", `{op: 'u', ns: 'a.b', o: {$v: 2}, o2: {_id: 1}, ` + tsField + `}`, "o.diff"},
		{"delete without o", `{op: 'd', ns: 'a.b', ` + tsField + `}`, "o"},
		{"unknown command", `{op: 'c', ns: 'a.$cmd', o: {frobnicate: 'b'}, ` + tsField + `}`, "o"},
		{"empty command", `{op: 'c', ns: 'a.$cmd', o: {}, ` + tsField + `}`, "o"},
		{"applyOps not an array", `{op: 'c', ns: 'admin.$cmd', o: {applyOps: {}}, ` + tsField + `}`, "o.applyOps"},
		{"fromMigrate not a boolean", `{op: 'i', ns: 'a.b', o: {_id: 1}, fromMigrate: 1, ` + tsField + `}`, "fromMigrate"},
		{"ui not a UUID", `{op: 'i', ns: 'a.b', o: {_id: 1}, ui: 'x', ` + tsField + `}`, "ui"},
		{"txnNumber a double", `{op: 'i', ns: 'a.b', o: {_id: 1}, txnNumber: 1.5, ` + tsField + `}`, "txnNumber"},
		{"prevOpTime without ts", `{op: 'i', ns: 'a.b', o: {_id: 1}, prevOpTime: {t: 1}, ` + tsField + `}`, "prevOpTime.ts"},
		{"partialTxn not a boolean", `{op: 'c', ns: 'admin.$cmd', o: {applyOps: [], partialTxn: 1}, ` + tsField + `}`, "o.partialTxn"},
		{"duplicate op", `{op: 'i', op: 'd', ns: 'a.b', o: {_id: 1}, ` + tsField + `}`, "op"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(doc(t, c.entry))
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want an *EntryError wrapping ErrMalformed", err)
			}
			if ee.Field != c.field {
				t.Errorf("field %q, want %q (%v)", ee.Field, c.field, err)
			}
			if c.field != "ts" && ee.TS != ts(1600000000, 7) {
				t.Errorf("error does not name the entry's ts: %v", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

func TestTruncatedEntryIsAnError(t *testing.T) {
	raw := doc(t, `{op: 'i', ns: 'a.b', o: {_id: 1, x: 'abcdef'}, ts: {$timestamp: {t: 1, i: 1}}}`)
	for n := 0; n < len(raw); n++ {
		if _, err := Decode(raw[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Decode of the first %d of %d bytes = %v, want ErrMalformed", n, len(raw), err)
		}
	}
	// An entry whose declared lengths are right but whose inserted document is
	// corrupt: the entry's own fields decode, the document is refused when it
	// is translated.
	bad := append(bson.Raw(nil), raw...)
	o := strings.Index(string(bad), "x\x00")
	bad[o+2] = 0x7f // string length byte of x
	e, err := Decode(bad)
	if err == nil {
		_, err = NewTranslator(Config{}).Process(&e, nil)
	}
	var ee *EntryError
	if !errors.As(err, &ee) || !errors.Is(err, ErrMalformed) || ee.Field != "o" {
		t.Fatalf("corrupt o: %v, want ErrMalformed about o", err)
	}
}

// FuzzDecode feeds arbitrary bytes through Decode and, when they decode,
// through the Translator: neither may panic, and every failure is an error
// wrapping one of the package's sentinels. Seeds: every entry of the shared
// corpus and the hand-written entries of this package's tests.
func FuzzDecode(f *testing.F) {
	if dir, _ := corpus.Find(); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*.bson"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			for len(b) >= 4 {
				n := int(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
				if n < 5 || n > len(b) {
					break
				}
				f.Add(b[:n])
				b = b[n:]
			}
		}
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(doc(f, s)))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Decode(bson.Raw(raw))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v wraps no sentinel", err)
			}
			return
		}
		tr := NewTranslator(Config{KeyFields: func(Namespace) []string { return []string{"sk", "a.b"} }, TxnBufferBytes: 1 << 20})
		items, err := tr.Process(&e, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTxnIncomplete) && !errors.Is(err, ErrTxnTooLarge) {
				t.Fatalf("Process error %v wraps no sentinel", err)
			}
			return
		}
		valid := validDoc(raw, maxDocDepth)
		for _, it := range items {
			if it.Kind != ItemWrite {
				continue
			}
			_ = PartitionKey(&it.Write)
			// Translation never corrupts a well-formed entry.
			for _, d := range append([]bson.Raw{it.Write.Filter, it.Write.Update, it.Write.Replacement}, it.Write.Pipeline...) {
				if valid && d != nil && !validDoc(d, maxDocDepth+10) {
					t.Fatalf("translation of a valid entry built corrupt BSON: %x", []byte(d))
				}
			}
		}
	})
}

var fuzzSeeds = []string{
	`{op: 'u', ns: 'a.b', ts: {$timestamp: {t: 1, i: 1}}, o: {$v: 2, diff: {d: {x: false}, u: {a: 1}, i: {z: 1, y: [1]}, sa: {a: true, l: 3, u1: 2, s0: {u: {q: 1}}}}}, o2: {_id: 1}}`,
	`{op: 'u', ns: 'a.b', ts: {$timestamp: {t: 1, i: 1}}, o: {$v: 1, $set: {'a.b': 1}, $unset: {c: true}}, o2: {_id: 1, sk: 2}}`,
	`{op: 'i', ns: 'a.b', ts: {$timestamp: {t: 1, i: 1}}, o: {_id: 1, sk: 3, a: {b: 4}}}`,
	`{op: 'c', ns: 'admin.$cmd', ts: {$timestamp: {t: 1, i: 1}}, lsid: {id: 1}, txnNumber: {$numberLong: '1'}, o: {applyOps: [{op: 'i', ns: 'a.b', o: {_id: 1}}], partialTxn: true}, prevOpTime: {ts: {$timestamp: {t: 0, i: 0}}, t: {$numberLong: '-1'}}}`,
	`{op: 'c', ns: 'a.system.views', ts: {$timestamp: {t: 1, i: 1}}, o: {create: 'v', viewOn: 'c', pipeline: []}}`,
	`{op: 'i', ns: 'a.system.views', ts: {$timestamp: {t: 1, i: 1}}, o: {_id: 'a.v', viewOn: 'c', pipeline: [{$match: {x: 1}}]}}`,
	`{op: 'c', ns: 'a.$cmd', ts: {$timestamp: {t: 1, i: 1}}, o: {renameCollection: 'a.b', to: 'a.c', dropTarget: true}}`,
}

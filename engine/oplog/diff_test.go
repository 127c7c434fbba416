package oplog

import (
	"bytes"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// diffCase is a pre-image, a $v: 2 diff and the post-image MongoDB produces.
// consistent marks a pre-image the diff was computed from (the normal case);
// the others are MongoDB's re-application cases, where the pre-image is a later
// state of the document.
type diffCase struct {
	name       string
	pre, diff  string
	post       string
	consistent bool
}

// The cases of src/mongo/db/update/document_diff_applier_test.cpp, with the
// diffs written as document_diff_serialization.cpp serializes them, plus cases
// for 5.0+ oplog updates as servers write them ($set of a new nested field,
// $push, $pop, pipeline updates reordering fields).
var diffCases = []diffCase{
	{name: "DeleteSimple", pre: `{f1: 1, foo: 2, f2: 3}`, diff: `{d: {f1: false, f2: false, f3: false}}`, post: `{foo: 2}`, consistent: true},
	{name: "InsertSimple", pre: `{f1: 1, foo: 2, f2: 3}`, diff: `{i: {f1: 1, newField: 2}}`, post: `{foo: 2, f2: 3, f1: 1, newField: 2}`, consistent: true},
	{name: "UpdateSimple", pre: `{f1: 0, foo: 2, f2: 3}`, diff: `{u: {f1: 1, newField: 2}}`, post: `{f1: 1, foo: 2, f2: 3, newField: 2}`},
	{name: "SubObjDiffSimple", pre: `{obj: {dField: 0, iField: 0, uField: 0}, otherField: 0}`,
		diff: `{sobj: {d: {dField: false}, u: {uField: 2}, i: {iField: 1}}}`,
		post: `{obj: {uField: 2, iField: 1}, otherField: 0}`, consistent: true},
	{name: "SubArrayDiffSimpleWithAppend", pre: `{arr: [999, 999, 999, 999]}`, diff: `{sarr: {a: true, u1: 1, u4: 2}}`,
		post: `{arr: [999, 1, 999, 999, 2]}`, consistent: true},
	{name: "SubArrayDiffSimpleWithTruncate", pre: `{arr: [999, 999, 999, 999]}`, diff: `{sarr: {a: true, l: 3, u1: 1}}`,
		post: `{arr: [999, 1, 999]}`, consistent: true},
	{name: "SubArrayDiffSimpleWithNullPadding", pre: `{arr: [0]}`, diff: `{sarr: {a: true, u3: 1}}`,
		post: `{arr: [0, null, null, 1]}`, consistent: true},
	{name: "NestedSubObjUpdateScalar", pre: `{subObj: {subObj: {a: 0}}}`, diff: `{ssubObj: {ssubObj: {u: {a: 1}}}}`,
		post: `{subObj: {subObj: {a: 1}}}`, consistent: true},
	{name: "NestedSubObjUpdateScalar/no-op", pre: `{someOtherField: 1}`, diff: `{ssubObj: {ssubObj: {u: {a: 1}}}}`,
		post: `{someOtherField: 1}`},
	{name: "NestedSubObjUpdateScalar/scalar", pre: `{dummyA: 1, dummyB: 2, subObj: "scalar!", dummyC: 3, dummyD: 4}`,
		diff: `{ssubObj: {ssubObj: {u: {a: 1}}}}`, post: `{dummyA: 1, dummyB: 2, subObj: null, dummyC: 3, dummyD: 4}`},
	{name: "NestedSubObjUpdateScalar/inner scalar", pre: `{dummyA: 1, dummyB: 2, subObj: {subDummyA: 1, subObj: "scalar!", subDummyB: 2}, dummyC: 3}`,
		diff: `{ssubObj: {ssubObj: {u: {a: 1}}}}`, post: `{dummyA: 1, dummyB: 2, subObj: {subDummyA: 1, subObj: null, subDummyB: 2}, dummyC: 3}`},
	{name: "UpdateArrayOfObjectsSubDiff", pre: `{uField: 1, dFieldA: 1, arr: [null, {a: 0}, {b: 0}, {c: 0}], dFieldB: 1}`,
		diff: arrayOfObjectsDiff, post: `{uField: 999, arr: [null, {a: 1}, {b: 2}, {c: 3}, {x: 1}]}`, consistent: true},
	{name: "UpdateArrayOfObjectsSubDiff/extra fields", pre: `{uField: 1, dFieldA: 1, arr: [{a: 0}, {b: 0}, {c: 0}, {}], dFieldB: 1}`,
		diff: arrayOfObjectsDiff, post: `{uField: 999, arr: [{a: 0}, {b: 0, a: 1}, {c: 0, b: 2}, {c: 3}, {x: 1}]}`},
	{name: "UpdateArrayOfObjectsSubDiff/no-op", pre: `{arr: [null, {a: 1}, {b: 2}, {c: 3}, {x: 1}], uField: 999}`,
		diff: arrayOfObjectsDiff, post: `{arr: [null, {a: 1}, {b: 2}, {c: 3}, {x: 1}], uField: 999}`},
	{name: "UpdateArrayOfObjectsSubDiff/scalars", pre: `{arr: [0, 0, 0, 0, {x: 2}], uField: 1}`,
		diff: arrayOfObjectsDiff, post: `{arr: [0, null, null, null, {x: 1}], uField: 999}`},
	{name: "UpdateArrayOfObjectsSubDiff/short", pre: `{arr: [], uField: 1}`,
		diff: arrayOfObjectsDiff, post: `{arr: [null, null, null, null, {x: 1}], uField: 999}`},
	{name: "UpdateArrayOfObjectsSubDiff/long", pre: `{arr: [0, {}, {}, {}, 4, 5, 6], uField: 1}`,
		diff: arrayOfObjectsDiff, post: `{arr: [0, {a: 1}, {b: 2}, {c: 3}, {x: 1}, 5, 6], uField: 999}`},
	{name: "UpdateArrayOfObjectsSubDiff/object", pre: `{dummyA: 1, arr: {foo: 1}, dummyB: 1}`,
		diff: arrayOfObjectsDiff, post: `{dummyA: 1, arr: null, dummyB: 1, uField: 999}`},
	{name: "UpdateArrayOfObjectsSubDiff/scalar", pre: `{dummyA: 1, arr: 1, dummyB: 1}`,
		diff: arrayOfObjectsDiff, post: `{dummyA: 1, arr: null, dummyB: 1, uField: 999}`},
	{name: "NonContiguous", pre: `{arr: [null, {}, {}, {}, {}, {}]}`, diff: nonContiguousDiff,
		post: `{arr: [null, 997, {newVal: 998}, {}, {}, 999]}`, consistent: true},
	{name: "NonContiguous/padding", pre: `{arr: [{}, {}, {}, {}]}`, diff: nonContiguousDiff,
		post: `{arr: [{}, 997, {newVal: 998}, {}, null, 999]}`, consistent: true},
	{name: "NonContiguous/no-op", pre: `{arr: [{}, 997, {newVal: 998}, {}, {}, 999]}`, diff: nonContiguousDiff,
		post: `{arr: [{}, 997, {newVal: 998}, {}, {}, 999]}`, consistent: true},
	{name: "NonContiguous/long", pre: `{arr: [0, 1, 2, 3, 4, 5, 6]}`, diff: nonContiguousDiff,
		post: `{arr: [0, 997, {newVal: 998}, 3, 4, 999, 6]}`, consistent: true},
	{name: "NonContiguous/sub-arrays", pre: `{arr: [0, 1, [], [], ['a', 'b'], 5, 6]}`, diff: nonContiguousDiff,
		post: `{arr: [0, 997, {newVal: 998}, [], ['a', 'b'], 999, 6]}`, consistent: true},
	{name: "NonContiguous/object", pre: `{arr: {x: 1}}`, diff: nonContiguousDiff, post: `{arr: null}`},
	{name: "NonContiguous/scalar", pre: `{dummyA: 1, arr: 1, dummyB: 1}`, diff: nonContiguousDiff, post: `{dummyA: 1, arr: null, dummyB: 1}`},

	// 5.0+ oplog updates.
	{name: "$set new nested field", pre: `{_id: 1, a: {b: 1}}`, diff: `{sa: {i: {c: 2}}}`, post: `{_id: 1, a: {b: 1, c: 2}}`, consistent: true},
	{name: "$set path creating objects", pre: `{_id: 1}`, diff: `{i: {x: {y: {z: 1}}}}`, post: `{_id: 1, x: {y: {z: 1}}}`, consistent: true},
	{name: "$inc and $unset", pre: `{_id: 1, n: 1, tmp: 'x', z: 0}`, diff: `{d: {tmp: false}, u: {n: 2}}`, post: `{_id: 1, n: 2, z: 0}`, consistent: true},
	{name: "$push", pre: `{_id: 1, tags: ['a']}`, diff: `{stags: {a: true, u1: 'b'}}`, post: `{_id: 1, tags: ['a', 'b']}`, consistent: true},
	{name: "$pop", pre: `{_id: 1, tags: ['a', 'b', 'c']}`, diff: `{stags: {a: true, l: 2}}`, post: `{_id: 1, tags: ['a', 'b']}`, consistent: true},
	{name: "$pull middle", pre: `{_id: 1, v: [1, 2, 3, 4]}`, diff: `{sv: {a: true, l: 3, u1: 3, u2: 4}}`, post: `{_id: 1, v: [1, 3, 4]}`, consistent: true},
	{name: "nested array in array", pre: `{_id: 1, m: [[1, 2], [3, 4]]}`, diff: `{sm: {a: true, s1: {a: true, u0: 30, u2: 5}}}`, post: `{_id: 1, m: [[1, 2], [30, 4, 5]]}`, consistent: true},
	{name: "pipeline moves a field to the end", pre: `{_id: 1, a: 1, b: 2, c: 3}`, diff: `{i: {a: 1}}`, post: `{_id: 1, b: 2, c: 3, a: 1}`, consistent: true},
	{name: "pipeline inserts out of order", pre: `{_id: 1}`, diff: `{i: {z: 1, y: 2}}`, post: `{_id: 1, z: 1, y: 2}`, consistent: true},
	{name: "numeric field names", pre: `{_id: 1, o: {}}`, diff: `{so: {i: {'9': 1, '10': 2}}}`, post: `{_id: 1, o: {'9': 1, '10': 2}}`, consistent: true},
	{name: "dotted field name", pre: `{_id: 1}`, diff: `{i: {'a.b': 1}}`, post: `{_id: 1, 'a.b': 1}`, consistent: true},
	{name: "dollar field name", pre: `{_id: 1, '$x': 1}`, diff: `{u: {'$x': 2}}`, post: `{_id: 1, '$x': 2}`, consistent: true},
	{name: "replace sub-document type", pre: `{_id: 1, a: {b: 1}}`, diff: `{u: {a: [1, 2]}}`, post: `{_id: 1, a: [1, 2]}`, consistent: true},
	{name: "array of objects deep", pre: `{_id: 1, items: [{q: 1, tags: ['x']}, {q: 2, tags: []}]}`,
		diff: `{sitems: {a: true, s1: {u: {q: 3}, stags: {a: true, u0: 'y'}}}}`,
		post: `{_id: 1, items: [{q: 1, tags: ['x']}, {q: 3, tags: ['y']}]}`, consistent: true},
}

const arrayOfObjectsDiff = `{d: {dFieldA: false, dFieldB: false}, u: {uField: 999}, sarr: {a: true, s1: {u: {a: 1}}, s2: {u: {b: 2}}, s3: {u: {c: 3}}, u4: {x: 1}}}`
const nonContiguousDiff = `{sarr: {a: true, u1: 997, u2: {newVal: 998}, u5: 999}}`

func TestDiffPreservesFieldOrder(t *testing.T) {
	for _, c := range diffCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ApplyDiff(doc(t, c.pre), doc(t, c.diff))
			if err != nil {
				t.Fatal(err)
			}
			sameDoc(t, "post-image", got, doc(t, c.post))
		})
	}
}

// MongoDB's checkDiff applies every diff twice: re-applying to the post-image
// must give the post-image again.
func TestDiffReappliedToPostImageIsANoOp(t *testing.T) {
	for _, c := range diffCases {
		t.Run(c.name, func(t *testing.T) {
			post := doc(t, c.post)
			got, err := ApplyDiff(post, doc(t, c.diff))
			if err != nil {
				t.Fatal(err)
			}
			sameDoc(t, "re-applied", got, post)
		})
	}
}

func TestMalformedDiffIsAnError(t *testing.T) {
	cases := map[string]string{
		"empty":                      `{}`,
		"array diff at the top":      `{a: true, l: 5, d0: false}`,
		"duplicate delete":           `{d: {a: false, b: false, a: false}}`,
		"duplicate update":           `{u: {f1: 3, f1: 4}}`,
		"duplicate insert":           `{i: {a: {}, a: null}}`,
		"duplicate sub-diff":         `{sa: {d: {p: false}}, sa: {a: true, d: {p: false}}}`,
		"delete and insert":          `{d: {b: false}, i: {a: {}, b: null}}`,
		"update and insert":          `{u: {b: false}, i: {a: {}, b: null}}`,
		"update and sub-diff":        `{u: {a: {}}, sa: {d: {k: false}}}`,
		"sections out of order":      `{u: {a: 1}, d: {b: false}}`,
		"section after sub-diffs":    `{sa: {u: {x: 1}}, u: {b: 1}}`,
		"unknown section":            `{x: {a: 1}}`,
		"section not a document":     `{u: 1}`,
		"empty sub-diff":             `{sa: {}}`,
		"array header false":         `{sa: {a: false, u0: 1}}`,
		"array length not int32":     `{sa: {a: true, l: 2.0}}`,
		"negative array length":      `{sa: {a: true, l: -1}}`,
		"array index not a number":   `{sa: {a: true, ux: 1}}`,
		"array index out of order":   `{sa: {a: true, u2: 1, u1: 1}}`,
		"array index past length":    `{sa: {a: true, l: 2, u3: 1}}`,
		"array modification unknown": `{sa: {a: true, d0: false}}`,
		"array sub-diff not a doc":   `{sa: {a: true, s0: 1}}`,
		"huge array index":           `{sa: {a: true, u999999999: 1}}`,
	}
	for name, diff := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ApplyDiff(doc(t, `{a: [1], b: 1}`), doc(t, diff))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ApplyDiff(%s) = %v, want ErrMalformed", diff, err)
			}
		})
	}
}

func TestBinaryDiffIsUnsupportedNotMisapplied(t *testing.T) {
	_, err := ApplyDiff(doc(t, `{b1: {$binary: {base64: 'YWJj', subType: '07'}}}`),
		doc(t, `{b: {b1: {o: 3, d: {$binary: {base64: 'ZGVm', subType: '00'}}}}}`))
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
}

// withID returns the document with _id: 1 first, for cases whose pre-image
// has no _id (a collection document always has one).
func withID(t testing.TB, s string) bson.Raw {
	d := doc(t, s)
	if _, ok := lookup(d, "_id"); ok {
		return d
	}
	off, b := startDoc(nil)
	b = appendInt32(b, "_id", 1)
	body, _ := docBody(d)
	b = append(b, body...)
	return bson.Raw(endDoc(b, off))
}

// updateEntry builds a 5.0+ update entry for document {_id: 1}.
func updateEntry(t testing.TB, diff bson.Raw) Entry {
	t.Helper()
	off, o := startDoc(nil)
	o = appendInt32(o, "$v", 2)
	o = appendElem(o, "diff", 0x03, diff)
	o = endDoc(o, off)
	eoff, e := startDoc(nil)
	e = appendStr(e, "op", "u")
	e = appendStr(e, "ns", "shop.orders")
	e = appendElem(e, "o", 0x03, o)
	e = appendElem(e, "o2", 0x03, doc(t, `{_id: 1}`))
	e = append(e, 0x11)
	e = append(e, "ts\x00"...)
	e = append(e, 1, 0, 0, 0, 100, 0, 0, 0)
	e = endDoc(e, eoff)
	ent, err := Decode(bson.Raw(e))
	if err != nil {
		t.Fatal(err)
	}
	return ent
}

// translateAndApply translates an update of {_id: 1} and applies it to pre
// with the reference applier.
func translateAndApply(t *testing.T, pre, diff bson.Raw) ([]Write, bson.Raw) {
	t.Helper()
	e := updateEntry(t, diff)
	items, err := NewTranslator(Config{}).Process(&e, nil)
	if err != nil {
		t.Fatal(err)
	}
	db := refDB{}
	ns := Namespace{DB: "shop", Coll: "orders"}
	db.coll(ns).docs = []bson.Raw{pre}
	applyAll(t, db, items)
	return writes(items), db[ns].docs[0]
}

// The translation reproduces MongoDB's post-image on the destination, whichever
// form it picks, for every diff computed from its pre-image.
func TestUpdateTranslationReproducesPostImage(t *testing.T) {
	for _, c := range diffCases {
		if !c.consistent {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			pre := withID(t, c.pre)
			want, err := ApplyDiff(pre, doc(t, c.diff))
			if err != nil {
				t.Fatal(err)
			}
			_, got := translateAndApply(t, pre, doc(t, c.diff))
			sameDoc(t, "destination document", got, want)
		})
	}
}

// The pipeline form reproduces the applier in every case, including MongoDB's
// re-application cases (type mismatches set null, short arrays pad null).
func TestPipelineUpdateMatchesDiffApplierEverywhere(t *testing.T) {
	for _, c := range diffCases {
		t.Run(c.name, func(t *testing.T) {
			pre := withID(t, c.pre)
			var p diffParser
			d, err := p.parseDocDiff(doc(t, c.diff), "", 0)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ApplyDiff(pre, doc(t, c.diff))
			if err != nil {
				t.Fatal(err)
			}
			got, err := applyPipeline(pre, []bson.Raw{pipelineStage(d)})
			if err != nil {
				t.Fatalf("pipeline %s: %v", pipelineStage(d), err)
			}
			sameDoc(t, "pipeline result", got, want)
		})
	}
}

// MongoDB 5.0+ applies the fields of a $set in lexicographic order, so inserts
// out of that order, array truncation and unaddressable names need a pipeline;
// everything else is plain $set/$unset.
func TestDiffTranslationUsesPlainOperatorsOnlyWhenExact(t *testing.T) {
	cases := []struct {
		diff     string
		pipeline bool
		update   string // the plain update, when not a pipeline
	}{
		{`{u: {a: 2}}`, false, `{$set: {a: 2}}`},
		{`{d: {b: false}}`, false, `{$unset: {b: true}}`},
		{`{d: {x: false}, u: {a: 2}, i: {n1: 1, n2: 2}, ss: {i: {k: 1}}, sarr: {a: true, s0: {u: {q: 1}}, u3: 'v'}}`, false,
			`{$set: {a: 2, n1: 1, n2: 2, 's.k': 1, 'arr.0.q': 1, 'arr.3': 'v'}, $unset: {x: true}}`},
		{`{i: {z: 1, y: 2}}`, true, ``},                   // inserts out of order
		{`{i: {'10': 1, '9': 2}}`, true, ``},              // bytewise order, not numeric order
		{`{i: {'9': 1, '10': 2}}`, true, ``},              // numeric order, not bytewise order
		{`{sa: {a: true, l: 1}}`, true, ``},               // truncation
		{`{i: {'a.b': 1}}`, true, ``},                     // dotted name
		{`{u: {'$x': 1}}`, true, ``},                      // $-prefixed name
		{`{sa: {sb: {i: {y: 1, x: 2}}}}`, true, ``},       // nested order matters too
		{`{sa: {i: {x: 1}}, sb: {i: {a: 1}}}`, false, ``}, // order is per object
	}
	for _, c := range cases {
		t.Run(c.diff, func(t *testing.T) {
			e := updateEntry(t, doc(t, c.diff))
			items, err := NewTranslator(Config{}).Process(&e, nil)
			if err != nil {
				t.Fatal(err)
			}
			ws := writes(items)
			last := ws[len(ws)-1]
			if got := last.Pipeline != nil; got != c.pipeline {
				t.Fatalf("pipeline = %v, want %v (writes %+v)", got, c.pipeline, ws)
			}
			if c.pipeline && len(ws) != 1 {
				t.Errorf("a pipeline update is a single write, got %d", len(ws))
			}
			if c.update != "" {
				sameDoc(t, "update", last.Update, doc(t, c.update))
			}
		})
	}
}

// An inserted field may be one that moved: the diff calculator encodes
// {a, b} -> {b, a} as i: {a}. A $set alone would leave a in place, so the plain
// form unsets the inserted paths first.
func TestMovedFieldIsUnsetBeforeItIsSet(t *testing.T) {
	pre := doc(t, `{_id: 1, a: 1, b: 2}`)
	ws, got := translateAndApply(t, pre, doc(t, `{i: {a: 1}}`))
	sameDoc(t, "destination document", got, doc(t, `{_id: 1, b: 2, a: 1}`))
	if len(ws) != 2 {
		t.Fatalf("got %d writes, want the $unset prelude and the update", len(ws))
	}
	sameDoc(t, "prelude", ws[0].Update, doc(t, `{$unset: {a: true}}`))
	sameDoc(t, "update", ws[1].Update, doc(t, `{$set: {a: 1}}`))
}

func TestShardKeyFieldIsNeverUnsetByThePrelude(t *testing.T) {
	e := decode(t, `{op: 'u', ns: 'shop.orders', ts: {$timestamp: {t: 100, i: 1}}, o: {$v: 2, diff: {i: {region: 'eu', z: 1}}}, o2: {region: null, _id: 1}}`)
	items, err := NewTranslator(Config{}).Process(&e, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := writes(items)
	if len(ws) != 2 {
		t.Fatalf("got %d writes, want 2", len(ws))
	}
	sameDoc(t, "prelude", ws[0].Update, doc(t, `{$unset: {z: true}}`))
}

// FuzzApplyDiff checks ApplyDiff never panics and that the pipeline form of a
// diff rebuilds exactly what ApplyDiff builds, for any diff it accepts and any
// pre-image a server could hold.
func FuzzApplyDiff(f *testing.F) {
	for _, c := range diffCases {
		f.Add([]byte(withID(f, c.pre)), []byte(doc(f, c.diff)))
	}
	f.Fuzz(func(t *testing.T, pre, diff []byte) {
		want, err := ApplyDiff(pre, diff)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("ApplyDiff error %v wraps no sentinel", err)
			}
			return
		}
		if !validDoc(want, maxDocDepth+maxDiffDepth) {
			t.Fatalf("ApplyDiff built corrupt BSON %x", []byte(want))
		}
		if _, ok := lookup(pre, "_id"); !ok || !canonical(pre, false) || !canonical(diff, false) {
			return
		}
		var p diffParser
		d, err := p.parseDocDiff(diff, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lookup(want, "_id"); !err {
			return // the diff deleted _id, which a server never writes
		}
		got, err := applyPipeline(pre, []bson.Raw{pipelineStage(d)})
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("pipeline\n got %s\nwant %s", got, want)
		}
	})
}

// canonical reports whether doc is what a server stores: no document repeats
// a field name and array elements are named 0, 1, ... (the pipeline form
// renames array elements, as MongoDB's expression values do).
func canonical(doc []byte, array bool) bool {
	it, ok := newIter(doc)
	if !ok {
		return false
	}
	seen := map[string]bool{}
	for i := 0; ; i++ {
		el, ok := it.next()
		if !ok {
			return !it.bad
		}
		if seen[string(el.name)] || array && string(el.name) != itoa(i) {
			return false
		}
		seen[string(el.name)] = true
		if (el.t == 0x03 || el.t == 0x04) && !canonical(el.val, el.t == 0x04) {
			return false
		}
	}
}

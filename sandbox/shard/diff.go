package shard

import (
	"bytes"
	"strconv"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	engineoplog "github.com/shardlift/shardlift/engine/oplog"
)

// The $v:2 update format MongoDB 5.0+ writes to the oplog ("delta" updates): a document
// diff has sections d (deleted fields: false), u (fields given a new value in place),
// i (fields appended at the end, in order) and s<field> (sub-diffs of embedded documents
// and arrays); an array diff has a: true, l (new length, when shrinking), u<index>
// (new element) and s<index> (sub-diff of an element).

// updateEntryObject returns the o of an update entry: a $v:2 diff from pre to post, or
// the whole post-image when the diff would not rebuild it byte for byte.
func updateEntryObject(pre, post bson.Raw) bson.Raw {
	d := diffDoc(pre, post)
	if d == nil {
		return post
	}
	// The engine's applier must rebuild post exactly, or the entry would mislead it.
	if got, err := engineoplog.ApplyDiff(pre, bson.Raw(d)); err != nil || !bytes.Equal(got, post) {
		return post
	}
	idx, b := bsoncore.AppendDocumentStart(nil)
	b = bsoncore.AppendInt32Element(b, "$v", 2)
	b = bsoncore.AppendDocumentElement(b, "diff", d)
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// diffDoc returns the diff that turns pre into post, or nil when they are identical.
func diffDoc(pre, post bson.Raw) bsoncore.Document {
	preElems, _ := pre.Elements()
	postElems, _ := post.Elements()
	preIdx := make(map[string]int, len(preElems))
	for i, e := range preElems {
		preIdx[e.Key()] = i
	}
	inPost := make(map[string]bool, len(postElems))
	for _, e := range postElems {
		inPost[e.Key()] = true
	}

	// Fields kept in place are the longest prefix of post whose fields appear in pre in
	// the same relative order; the applier rebuilds the rest by appending inserts.
	kept, last := 0, -1
	for kept < len(postElems) {
		i, ok := preIdx[postElems[kept].Key()]
		if !ok || i <= last {
			break
		}
		last = i
		kept++
	}

	var deletes []string
	for _, e := range preElems {
		if !inPost[e.Key()] {
			deletes = append(deletes, e.Key())
		}
	}
	var updates []bson.RawElement
	type sub struct {
		name string
		diff bsoncore.Document
	}
	var subs []sub
	for _, e := range postElems[:kept] {
		newV := e.Value()
		oldV := preElems[preIdx[e.Key()]].Value()
		if sameValue(oldV, newV) {
			continue
		}
		if d := subDiff(oldV, newV); d != nil {
			subs = append(subs, sub{e.Key(), d})
			continue
		}
		updates = append(updates, e)
	}
	inserts := postElems[kept:]
	if len(deletes)+len(updates)+len(inserts)+len(subs) == 0 {
		return nil
	}

	idx, b := bsoncore.AppendDocumentStart(nil)
	if len(deletes) > 0 {
		var di int32
		di, b = bsoncore.AppendDocumentElementStart(b, "d")
		for _, k := range deletes {
			b = bsoncore.AppendBooleanElement(b, k, false)
		}
		b, _ = bsoncore.AppendDocumentEnd(b, di)
	}
	for _, section := range []struct {
		name  string
		elems []bson.RawElement
	}{{"u", updates}, {"i", inserts}} {
		if len(section.elems) == 0 {
			continue
		}
		var si int32
		si, b = bsoncore.AppendDocumentElementStart(b, section.name)
		for _, e := range section.elems {
			b = append(b, e...)
		}
		b, _ = bsoncore.AppendDocumentEnd(b, si)
	}
	for _, s := range subs {
		b = bsoncore.AppendDocumentElement(b, "s"+s.name, s.diff)
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// subDiff returns a sub-diff between two embedded documents or two arrays when it is
// smaller than the new value (as MongoDB chooses), else nil.
func subDiff(oldV, newV bson.RawValue) bsoncore.Document {
	var d bsoncore.Document
	switch {
	case oldV.Type == bsontype.EmbeddedDocument && newV.Type == bsontype.EmbeddedDocument:
		d = diffDoc(oldV.Document(), newV.Document())
	case oldV.Type == bsontype.Array && newV.Type == bsontype.Array:
		d = diffArray(oldV.Array(), newV.Array())
	default:
		return nil
	}
	if d == nil || len(d) >= len(newV.Value) {
		return nil
	}
	return d
}

// diffArray returns the array diff turning pre into post, or nil when identical.
func diffArray(pre, post bson.Raw) bsoncore.Document {
	preVals, _ := pre.Values()
	postVals, _ := post.Values()
	idx, b := bsoncore.AppendDocumentStart(nil)
	b = bsoncore.AppendBooleanElement(b, "a", true)
	changed := false
	if len(postVals) < len(preVals) {
		b = bsoncore.AppendInt32Element(b, "l", int32(len(postVals)))
		changed = true
	}
	for i, v := range postVals {
		key := strconv.Itoa(i)
		if i < len(preVals) {
			if sameValue(preVals[i], v) {
				continue
			}
			if d := subDiff(preVals[i], v); d != nil {
				b = bsoncore.AppendDocumentElement(b, "s"+key, d)
				changed = true
				continue
			}
		}
		b = bsoncore.AppendValueElement(b, "u"+key, bsoncore.Value{Type: v.Type, Data: v.Value})
		changed = true
	}
	if !changed {
		return nil
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

func sameValue(a, b bson.RawValue) bool {
	return a.Type == b.Type && bytes.Equal(a.Value, b.Value)
}

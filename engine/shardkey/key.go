package shardkey

import (
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// Key is a shard key value: a BSON document whose fields are the pattern's
// paths in pattern order, {a: 5, "b.c": "x"}, with hashed fields already
// replaced by their NumberLong hash. Pattern.Extract builds one from a document;
// the min and max bounds of config.chunks documents are Keys as stored
// (convert with shardkey.Key(raw)).
type Key []byte

// String returns the key as extended JSON, for messages.
func (k Key) String() string { return bson.Raw(k).String() }

// CompareKeys orders two keys as the routing table does: value by value in
// pattern order with Compare, ignoring field names (a pattern fixes them); when
// one key runs out first it is the smaller. Malformed keys compare as far as
// they can be read.
func CompareKeys(a, b Key) int {
	ba, _ := docBody(a)
	bb, _ := docBody(b)
	for {
		ta, _, va, ra, oka := readElement(ba)
		tb, _, vb, rb, okb := readElement(bb)
		if !oka || !okb {
			return cmp3(b2i(oka), b2i(okb))
		}
		if c := compareTyped(ta, va, tb, vb); c != 0 {
			return c
		}
		ba, bb = ra, rb
	}
}

// keyValues appends the values of k to dst; ok is false if k is malformed.
func keyValues(dst []bsoncore.Value, k Key) ([]bsoncore.Value, bool) {
	body, ok := docBody(k)
	if !ok {
		return dst, false
	}
	for len(body) > 0 {
		t, _, v, rest, ok := readElement(body)
		if !ok {
			return dst, false
		}
		dst = append(dst, bsoncore.Value{Type: t, Data: v})
		body = rest
	}
	return dst, true
}

// compareValueLists is CompareKeys on decoded keys.
func compareValueLists(a, b []bsoncore.Value) int {
	for i := range min(len(a), len(b)) {
		if c := compareTyped(a[i].Type, a[i].Data, b[i].Type, b[i].Data); c != 0 {
			return c
		}
	}
	return cmp3(len(a), len(b))
}

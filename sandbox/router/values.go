package router

import (
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// compareValues orders two values as MongoDB does (shardkey.Compare).
func compareValues(a, b bson.RawValue) int {
	return shardkey.Compare(core(a), core(b))
}

func core(v bson.RawValue) bsoncore.Value { return bsoncore.Value{Type: v.Type, Data: v.Value} }

var nullValue = bson.RawValue{Type: bsontype.Null}

// pathValues collects the values at a dotted path, descending into arrays the way
// MongoDB's query and sort paths do: "a.b" on {a: [{b: 1}, {b: 2}]} yields 1 and 2.
// A numeric part also indexes an array ("a.0.b").
func pathValues(doc bson.Raw, path string) []bson.RawValue {
	var out []bson.RawValue
	collectPath(bson.RawValue{Type: bsontype.EmbeddedDocument, Value: doc}, strings.Split(path, "."), &out)
	return out
}

func collectPath(v bson.RawValue, parts []string, out *[]bson.RawValue) {
	if len(parts) == 0 {
		*out = append(*out, v)
		return
	}
	switch v.Type {
	case bsontype.EmbeddedDocument:
		next, err := v.Document().LookupErr(parts[0])
		if err != nil {
			return
		}
		collectPath(next, parts[1:], out)
	case bsontype.Array:
		arr := v.Array()
		if i, err := strconv.Atoi(parts[0]); err == nil && i >= 0 {
			if next, err := arr.IndexErr(uint(i)); err == nil {
				collectPath(next.Value(), parts[1:], out)
			}
			return
		}
		vals, _ := arr.Values()
		for _, e := range vals {
			if e.Type == bsontype.EmbeddedDocument {
				collectPath(e, parts, out)
			}
		}
	}
}

// lookupPath is the value at a dotted path through embedded documents only.
func lookupPath(doc bson.Raw, path string) (bson.RawValue, bool) {
	v, err := doc.LookupErr(strings.Split(path, ".")...)
	if err != nil {
		return bson.RawValue{}, false
	}
	return v, true
}

// flatten expands arrays one level, as MongoDB does when it matches or sorts on a
// field holding an array.
func flatten(vals []bson.RawValue) []bson.RawValue {
	var out []bson.RawValue
	for _, v := range vals {
		if v.Type == bsontype.Array {
			elems, _ := v.Array().Values()
			out = append(out, elems...)
			continue
		}
		out = append(out, v)
	}
	return out
}

// rawDoc marshals d, which the router built itself and so always marshals.
func rawDoc(d any) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		panic("router: cannot marshal its own document: " + err.Error())
	}
	return b
}

// rawValue marshals a Go value to a RawValue.
func rawValue(v any) bson.RawValue {
	t, data, err := bson.MarshalValue(v)
	if err != nil {
		panic("router: cannot marshal its own value: " + err.Error())
	}
	return bson.RawValue{Type: t, Value: data}
}

// copyRaw detaches a document from a driver buffer that will be reused.
func copyRaw(b bson.Raw) bson.Raw { return append(bson.Raw(nil), b...) }

// asInt64 reads any BSON number as an int64 (truncating doubles).
func asInt64(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bsontype.Int32:
		return int64(v.Int32()), true
	case bsontype.Int64:
		return v.Int64(), true
	case bsontype.Double:
		return int64(v.Double()), true
	}
	return 0, false
}

// truthy is how MongoDB reads a boolean option given as a number or bool.
func truthy(v bson.RawValue) bool {
	switch v.Type {
	case bsontype.Boolean:
		return v.Boolean()
	case bsontype.Int32, bsontype.Int64, bsontype.Double:
		n, _ := asInt64(v)
		return n != 0 || (v.Type == bsontype.Double && v.Double() != 0)
	}
	return false
}

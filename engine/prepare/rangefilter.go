package prepare

import (
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// rangeFilter is the query filter matching the documents whose shard key
// (fields, none hashed) lies in [min, max), in the shard key's order: BSON types
// first, then values, the fields compared in turn. A query's $gt and $lt compare
// within one type only, so each comparison also takes the types sorting after
// (greater) or before (less) it; a missing field is null in a shard key, as
// {f: null} matches it. rankedTypes says which stored values it cannot find. ok
// is false when a bound holds a type the filter does not bracket (undefined,
// arrays, regexes, code, symbols, DBPointers): scan instead. matchesNothing is
// set for a range no document can be in; the filter is empty (everything) for
// the whole key space. Strings compare bytewise only under the simple
// collation, which the caller must give a collection with another default.
func rangeFilter(fields []string, min, max []bsoncore.Value) (filter bson.D, matchesNothing, ok bool) {
	for _, b := range [][]bsoncore.Value{min, max} {
		for _, v := range b {
			if !bracketed(v.Type) {
				return nil, false, false
			}
		}
	}
	var from, below []cond
	for i := range fields {
		from = append(from, and(append(equalPrefix(fields, min, i), greater(fields[i], min[i]))...))
		below = append(below, and(append(equalPrefix(fields, max, i), less(fields[i], max[i]))...))
	}
	from = append(from, and(equalPrefix(fields, min, len(fields))...))
	c := and(or(from...), or(below...))
	switch {
	case c.none:
		return nil, true, true
	case c.all:
		return bson.D{}, false, true
	}
	return c.d, false, true
}

// cond is a filter that may be known to match everything (all) or nothing (none).
type cond struct {
	all, none bool
	d         bson.D
}

var (
	always = cond{all: true}
	never  = cond{none: true}
)

func and(cs ...cond) cond {
	return combine("$and", cs, func(c cond) bool { return c.none }, func(c cond) bool { return c.all }, always, never)
}
func or(cs ...cond) cond {
	return combine("$or", cs, func(c cond) bool { return c.all }, func(c cond) bool { return c.none }, never, always)
}

// combine joins cs with op: one that decides the result (absorbing) gives decided,
// neutral ones drop out, and nothing left gives empty.
func combine(op string, cs []cond, absorbing, neutral func(cond) bool, empty, decided cond) cond {
	var arms bson.A
	var last cond
	for _, c := range cs {
		switch {
		case absorbing(c):
			return decided
		case neutral(c):
			continue
		}
		arms, last = append(arms, c.d), c
	}
	switch len(arms) {
	case 0:
		return empty
	case 1:
		return last
	}
	return cond{d: bson.D{{Key: op, Value: arms}}}
}

// equalPrefix is fields[:n] equal to the bound's values.
func equalPrefix(fields []string, bound []bsoncore.Value, n int) []cond {
	out := make([]cond, 0, n+1)
	for i := range n {
		out = append(out, equal(fields[i], bound[i]))
	}
	return out
}

func equal(f string, v bsoncore.Value) cond {
	switch v.Type {
	case bsontype.MinKey, bsontype.MaxKey:
		return never // no document stores them (see bracketed)
	case bsontype.Null:
		return cond{d: bson.D{{Key: f, Value: nil}}}
	}
	return cond{d: bson.D{{Key: f, Value: rawValue(v)}}}
}

// greater is f > v: a greater value of v's type, or a value of a type that sorts
// after it, that is any value but null (or missing) and the types up to v's.
func greater(f string, v bsoncore.Value) cond {
	switch v.Type {
	case bsontype.MaxKey:
		return never
	case bsontype.MinKey:
		return always
	}
	rank := shardkey.CanonicalType(v.Type)
	after := bson.D{{Key: "$ne", Value: nil}}
	if upTo := typeAliases(func(r int) bool { return r <= rank }); len(upTo) > 0 {
		after = append(after, bson.E{Key: "$not", Value: bson.D{{Key: "$type", Value: upTo}}})
	}
	return or(cond{d: bson.D{{Key: f, Value: bson.D{{Key: "$gt", Value: rawValue(v)}}}}}, cond{d: bson.D{{Key: f, Value: after}}})
}

// less is f < v: a smaller value of v's type, a value of a type that sorts
// before it, or null (or missing) when v's type sorts after null.
func less(f string, v bsoncore.Value) cond {
	switch v.Type {
	case bsontype.MinKey:
		return never
	case bsontype.MaxKey:
		return always
	}
	rank := shardkey.CanonicalType(v.Type)
	arms := []cond{{d: bson.D{{Key: f, Value: bson.D{{Key: "$lt", Value: rawValue(v)}}}}}}
	if before := typeAliases(func(r int) bool { return r < rank }); len(before) > 0 {
		arms = append(arms, cond{d: bson.D{{Key: f, Value: bson.D{{Key: "$type", Value: before}}}}})
	}
	if rank > shardkey.CanonicalType(bsontype.Null) {
		arms = append(arms, cond{d: bson.D{{Key: f, Value: nil}}}) // null and missing
	}
	return or(arms...)
}

// rankedTypes are the $type aliases, by rank, of the types a range filter's
// bounds may hold (bracketed) besides null, which is matched as {f: null} with
// the missing fields. A stored value of a type sorting after them (regex, code,
// MaxKey) is found by greater's complement; one that only the deprecated types
// could be (undefined, symbol), or MinKey, which no application stores and which
// FerretDB refuses in $type, is not found by less. "number" is every numeric type.
var rankedTypes = []struct {
	alias string
	t     bsontype.Type
}{
	{"number", bsontype.Double}, {"string", bsontype.String}, {"object", bsontype.EmbeddedDocument}, {"binData", bsontype.Binary},
	{"objectId", bsontype.ObjectID}, {"bool", bsontype.Boolean}, {"date", bsontype.DateTime}, {"timestamp", bsontype.Timestamp},
}

// typeAliases are the aliases of rankedTypes whose rank keep accepts.
func typeAliases(keep func(rank int) bool) bson.A {
	var out bson.A
	for _, rt := range rankedTypes {
		if keep(shardkey.CanonicalType(rt.t)) {
			out = append(out, rt.alias)
		}
	}
	return out
}

// bracketed reports whether rangeFilter handles a bound of type t.
func bracketed(t bsontype.Type) bool {
	switch t {
	case bsontype.MinKey, bsontype.MaxKey, bsontype.Null, bsontype.Double, bsontype.Int32, bsontype.Int64, bsontype.Decimal128,
		bsontype.String, bsontype.EmbeddedDocument, bsontype.Binary, bsontype.ObjectID, bsontype.Boolean, bsontype.DateTime, bsontype.Timestamp:
		return true
	}
	return false
}

func rawValue(v bsoncore.Value) bson.RawValue { return bson.RawValue{Type: v.Type, Value: v.Data} }

package shard

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// find's min and max on another index than _id (a shard key's, as the continuous
// verification scans one range: engine/verify.CompareRange): a mongod walks the
// hinted index from min (included) to max (excluded), comparing whole index keys
// in its order across types; a hashed index's keys are the hashes. FerretDB has
// neither, so the front sends FerretDB a filter selecting a superset (the leading
// field's values between the bounds' leading values, when that field is not
// hashed) and drops, from the first batch and every getMore's, each document
// whose key (shardkey.Pattern.Extract, hashed as MongoDB hashes) lies outside the
// bounds. A batch may come back short, or empty with the cursor still open, as
// MongoDB's may: drivers ask again.

// keyBounds are one cursor's bounds.
type keyBounds struct {
	pattern  *shardkey.Pattern
	min, max shardkey.Key // nil: open
}

func (b *keyBounds) contains(doc bson.Raw) bool {
	key, err := b.pattern.Extract(doc)
	if err != nil {
		return false // a key with an array is in no index range of a shard key
	}
	return (b.min == nil || shardkey.CompareKeys(key, b.min) >= 0) && (b.max == nil || shardkey.CompareKeys(key, b.max) < 0)
}

// keyBoundedFind answers a find with min or max on a hinted index other than
// _id's; ok is false when cmd is not one.
func (n *node) keyBoundedFind(ctx context.Context, cmd *wire.Command) (bson.Raw, bool) {
	minDoc, hasMin := cmd.Lookup("min").DocumentOK()
	maxDoc, hasMax := cmd.Lookup("max").DocumentOK()
	hint, isDoc := cmd.Lookup("hint").DocumentOK()
	if !hasMin && !hasMax || !isDoc || idHint(cmd.Lookup("hint")) {
		return nil, false
	}
	pattern, err := shardkey.ParsePattern(hint)
	if err != nil {
		return wire.ErrorReply(wire.BadValue("the sandbox takes min and max on the _id index or a shard key index (fields 1 or \"hashed\"): " + err.Error())), true
	}
	b := &keyBounds{pattern: pattern}
	for _, bound := range []struct {
		doc bson.Raw
		has bool
		to  *shardkey.Key
	}{{minDoc, hasMin, &b.min}, {maxDoc, hasMax, &b.max}} {
		if !bound.has {
			continue
		}
		elems, _ := bound.doc.Elements()
		if len(elems) != len(pattern.Fields()) {
			return wire.ErrorReply(wire.BadValue("min and max must name the hinted index's fields, in its order")), true
		}
		for i, e := range elems {
			if e.Key() != pattern.Fields()[i] {
				return wire.ErrorReply(wire.BadValue("min and max must name the hinted index's fields, in its order")), true
			}
		}
		*bound.to = shardkey.Key(bound.doc)
	}
	var d bson.D
	if err := bson.Unmarshal(cmd.Body, &d); err != nil {
		return wire.ErrorReply(wire.BadValue(err.Error())), true
	}
	filter, _ := cmd.Lookup("filter").DocumentOK()
	d = slices.DeleteFunc(d, func(e bson.E) bool { return e.Key == "min" || e.Key == "max" || e.Key == "hint" || e.Key == "filter" })
	var and bson.A
	if len(filter) > 5 { // not an empty document
		and = append(and, filter)
	}
	if !pattern.IsHashed() || pattern.HashedField() != pattern.Fields()[0] {
		if pre := leadingFieldFilter(pattern.Fields()[0], b.min, b.max); pre != nil {
			and = append(and, pre)
		}
	}
	f := bson.D{}
	if len(and) > 0 {
		f = bson.D{{Key: "$and", Value: and}}
	}
	d = slices.Insert(d, 1, bson.E{Key: "filter", Value: f})
	reply := n.passthrough(ctx, &wire.Command{Name: cmd.Name, DB: cmd.DB, Body: mustMarshal(d), Legacy: cmd.Legacy})
	out, id := filterBatch(reply, "firstBatch", b)
	if id != 0 {
		n.keyBounded.Store(id, b)
	}
	return out, true
}

// leadingFieldFilter selects the documents whose field lies between the bounds'
// leading values, both included (the trailing fields decide within them); nil
// when it cannot narrow anything.
func leadingFieldFilter(field string, min, max shardkey.Key) bson.D {
	lead := func(k shardkey.Key) bson.RawValue {
		if k == nil {
			return bson.RawValue{}
		}
		elems, _ := bson.Raw(k).Elements()
		if len(elems) == 0 {
			return bson.RawValue{}
		}
		v := elems[0].Value()
		if v.Type == bsontype.MinKey || v.Type == bsontype.MaxKey {
			return bson.RawValue{} // an open end
		}
		return v
	}
	lo, hi := lead(min), lead(max)
	if lo.Type == 0 && hi.Type == 0 {
		return nil
	}
	f := valueRangeFilter(field, lo, hi, "$lte")
	if lo.Type == 0 || lo.Type == bsontype.Null {
		// A missing field indexes as null, which no $type matches.
		f = bson.D{{Key: "$or", Value: bson.A{f, bson.D{{Key: field, Value: bson.D{{Key: "$exists", Value: false}}}}}}}
	}
	return f
}

// filterBatch drops from a cursor reply's batch the documents outside b; id is
// the cursor's (0: closed, or an error).
func filterBatch(reply bson.Raw, batchName string, b *keyBounds) (out bson.Raw, id int64) {
	cursor, ok := reply.Lookup("cursor").DocumentOK()
	if !ok {
		return reply, 0 // an error: as FerretDB said it
	}
	id, _ = cursor.Lookup("id").AsInt64OK()
	ns, _ := cursor.Lookup("ns").StringValueOK()
	batch, _ := cursor.Lookup(batchName).ArrayOK()
	values, _ := batch.Values()
	kept := bson.A{}
	for _, v := range values {
		if doc, ok := v.DocumentOK(); ok && b.contains(doc) {
			kept = append(kept, doc)
		}
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{{Key: batchName, Value: kept}, {Key: "id", Value: id}, {Key: "ns", Value: ns}}}), id
}

// keyBoundedGetMore answers a getMore of a cursor keyBoundedFind opened.
func (n *node) keyBoundedGetMore(ctx context.Context, cmd *wire.Command) (bson.Raw, bool) {
	id, _ := cmd.Lookup("getMore").AsInt64OK()
	b, ok := n.keyBounded.Load(id)
	if !ok {
		return nil, false
	}
	out, next := filterBatch(n.passthrough(ctx, cmd), "nextBatch", b.(*keyBounds))
	if next == 0 {
		n.keyBounded.Delete(id)
	}
	return out, true
}

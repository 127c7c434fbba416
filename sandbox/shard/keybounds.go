package shard

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// find's min and max on another index than _id (a shard key's, as the continuous
// verification scans one range: engine/verify.CompareRange): a mongod walks the
// hinted index from min (included) to max (excluded), comparing whole index keys
// in its order across types; a hashed index's keys are the hashes. FerretDB has
// neither, so the front sends FerretDB the find without its bounds (its own
// filter, if any, kept) and drops, from the first batch and every getMore's,
// each document whose key (shardkey.Pattern.Extract, hashed as MongoDB hashes)
// lies outside the bounds. A batch may come back short, or empty with the cursor
// still open, as MongoDB's may: drivers ask again.
//
// Why no filter narrows what FerretDB reads: FerretDB (v1.24.2, SQLite) pushes
// down only {_id: <string or ObjectId>} (keyed.go); any other filter decodes and
// tests every row in Go, all of it in the find's first call. Measured on 20,000
// documents (session 10, load average 14): a find narrowed to an eighth of a
// compound key's range answered its first call in 2.8 to 3.1 s (3.2 to 3.5 s in
// all); the same eighths unfiltered took 0.7 to 1.7 s in all, no call over
// 152 ms. Each call costs one FerretDB batch, so a range scan of the continuous
// verification never holds the sandbox for seconds at a time, at the price of
// reading the collection once per range (its duty cycle paces
// that: engine/throttle.go).

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
	d = slices.DeleteFunc(d, func(e bson.E) bool { return e.Key == "min" || e.Key == "max" || e.Key == "hint" })
	reply := n.passthrough(ctx, &wire.Command{Name: cmd.Name, DB: cmd.DB, Body: mustMarshal(d), Legacy: cmd.Legacy})
	out, id := filterBatch(reply, "firstBatch", b)
	if id != 0 {
		n.keyBounded.Store(id, b)
	}
	return out, true
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

package shard

import (
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// find's min and max options bound the scan of the hinted index: min included,
// max excluded, in the index's order across types (MongoDB 4.2 and later require
// the hint; 3.6 and 4.0 take it). FerretDB ignores all three, so the front turns
// bounds on the _id index into the filter selecting the same documents. A
// filter's $gte and $lt only match their bound's type class, so bounds of two
// classes become an $or: the lower class from min, the classes between by
// $type, the upper class up to max.

// bsonTypes are the types FerretDB stores in an _id, in no particular order.
var bsonTypes = []bsontype.Type{
	bsontype.Null, bsontype.Double, bsontype.Int32, bsontype.Int64, bsontype.String,
	bsontype.EmbeddedDocument, bsontype.Binary, bsontype.ObjectID, bsontype.Boolean,
	bsontype.DateTime, bsontype.Timestamp,
}

// boundedFind is cmd with its _id index bounds made a filter; ok is false when
// cmd has none. A reply is an error to send instead.
func boundedFind(cmd *wire.Command) (out *wire.Command, reply bson.Raw, ok bool) {
	minDoc, hasMin := cmd.Lookup("min").DocumentOK()
	maxDoc, hasMax := cmd.Lookup("max").DocumentOK()
	if !hasMin && !hasMax {
		return nil, nil, false
	}
	if cmd.Lookup("hint").Type == 0 {
		return nil, wire.ErrorReply(&wire.Error{Code: 51173, Name: "Location51173", Msg: "When using min()/max() a hint of which index to use must be provided"}), true
	}
	var lo, hi bson.RawValue
	for _, b := range []struct {
		doc bson.Raw
		has bool
		to  *bson.RawValue
	}{{minDoc, hasMin, &lo}, {maxDoc, hasMax, &hi}} {
		if !b.has {
			continue
		}
		elems, _ := b.doc.Elements()
		if len(elems) != 1 || elems[0].Key() != "_id" || !idHint(cmd.Lookup("hint")) {
			return nil, wire.ErrorReply(wire.BadValue("the sandbox takes min and max on the _id index only, hinted {_id: 1} or \"_id_\"")), true
		}
		*b.to = elems[0].Value()
	}
	var d bson.D
	if err := bson.Unmarshal(cmd.Body, &d); err != nil {
		return nil, wire.ErrorReply(wire.BadValue(err.Error())), true
	}
	filter, _ := cmd.Lookup("filter").DocumentOK()
	bounds := idRangeFilter(lo, hi)
	d = slices.DeleteFunc(d, func(e bson.E) bool { return e.Key == "min" || e.Key == "max" || e.Key == "hint" || e.Key == "filter" })
	f := bson.D{{Key: "$and", Value: bson.A{bounds, filter}}}
	if len(filter) <= 5 { // an empty document
		f = bounds
	}
	d = slices.Insert(d, 1, bson.E{Key: "filter", Value: f})
	return &wire.Command{Name: cmd.Name, DB: cmd.DB, Body: mustMarshal(d), Legacy: cmd.Legacy}, nil, true
}

func idHint(h bson.RawValue) bool {
	if s, ok := h.StringValueOK(); ok {
		return s == "_id_"
	}
	doc, ok := h.DocumentOK()
	if !ok {
		return false
	}
	elems, _ := doc.Elements()
	return len(elems) == 1 && elems[0].Key() == "_id" && elems[0].Value().Type != bsontype.String // {_id: "hashed"} is another index
}

// idRangeFilter selects the _ids in [lo, hi) in MongoDB's order; a zero bound
// leaves its end open.
func idRangeFilter(lo, hi bson.RawValue) bson.D {
	class := func(v bson.RawValue) int { return shardkey.CanonicalType(v.Type) }
	if lo.Type != 0 && hi.Type != 0 && class(lo) == class(hi) {
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}}}
	}
	var or bson.A
	if lo.Type != 0 {
		or = append(or, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: lo}}}})
	}
	var between bson.A
	for _, t := range bsonTypes {
		c := shardkey.CanonicalType(t)
		if (lo.Type == 0 || c > class(lo)) && (hi.Type == 0 || c < class(hi)) {
			between = append(between, int32(t))
		}
	}
	if len(between) > 0 {
		or = append(or, bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: between}}}})
	}
	if hi.Type != 0 {
		or = append(or, bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: hi}}}})
	}
	return bson.D{{Key: "$or", Value: or}}
}

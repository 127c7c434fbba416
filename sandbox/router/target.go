package router

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Targeting: which shards a command goes to. A filter that pins every shard key
// field to one value (implicit equality or $eq, at the top level or inside a
// top-level $and) targets the one shard owning that key; anything else goes to
// every shard owning a chunk of the collection, as mongos does.

// equalityKey extracts the shard key a filter pins, hashing hashed fields.
func equalityKey(rt *Routing, filter bson.Raw) (shardkey.Key, bool) {
	if rt.Pattern == nil || len(filter) == 0 {
		return nil, false
	}
	idx, dk := bsoncore.AppendDocumentStart(nil)
	for _, path := range rt.Pattern.Fields() {
		v, ok := equalityValue(filter, path)
		if !ok {
			return nil, false
		}
		dk = bsoncore.AppendValueElement(dk, path, core(v))
	}
	dk, _ = bsoncore.AppendDocumentEnd(dk, idx)
	key, err := rt.Pattern.ExtractDocumentKey(dk)
	if err != nil {
		return nil, false
	}
	return key, true
}

// equalityValue finds an equality on path in a filter.
func equalityValue(filter bson.Raw, path string) (bson.RawValue, bool) {
	elems, err := filter.Elements()
	if err != nil {
		return bson.RawValue{}, false
	}
	for _, e := range elems {
		switch {
		case e.Key() == path:
			if v, ok := asEquality(e.Value()); ok {
				return v, true
			}
		case e.Key() == "$and":
			arr, ok := e.Value().ArrayOK()
			if !ok {
				continue
			}
			subs, _ := arr.Values()
			for _, s := range subs {
				if d, ok := s.DocumentOK(); ok {
					if v, ok := equalityValue(d, path); ok {
						return v, true
					}
				}
			}
		}
	}
	return bson.RawValue{}, false
}

// asEquality reads a filter value as an exact equality: a plain value, or {$eq: v}.
// Arrays, regexes and operator documents other than $eq are not equalities on one key.
func asEquality(v bson.RawValue) (bson.RawValue, bool) {
	switch v.Type {
	case bsontype.Array, bsontype.Regex:
		return bson.RawValue{}, false
	case bsontype.EmbeddedDocument:
		elems, _ := v.Document().Elements()
		if len(elems) > 0 && strings.HasPrefix(elems[0].Key(), "$") {
			if len(elems) == 1 && elems[0].Key() == "$eq" {
				return asEquality(elems[0].Value())
			}
			return bson.RawValue{}, false
		}
	}
	return v, true
}

// docShard is the shard a document belongs on.
func docShard(rt *Routing, doc bson.Raw) (string, error) {
	if rt.Coll == nil {
		return rt.DB.Primary, nil
	}
	key, err := rt.Pattern.Extract(doc)
	if err != nil {
		return "", &wire.Error{Code: 61, Name: "ShardKeyNotFound", Msg: fmt.Sprintf("document for %s: %v", rt.NS, err)}
	}
	shard, ok := rt.Map.Owner(key)
	if !ok {
		return "", &wire.Error{Code: 61, Name: "ShardKeyNotFound", Msg: fmt.Sprintf("no chunk of %s contains shard key %s", rt.NS, key)}
	}
	return shard, nil
}

// target returns the shards a filter must go to and whether it pins one shard key
// (so the shard needs no orphan filtering).
func target(rt *Routing, filter bson.Raw) (shards []string, pinned bool) {
	if rt.Coll == nil {
		return []string{rt.DB.Primary}, true
	}
	if key, ok := equalityKey(rt, filter); ok {
		if s, ok := rt.Map.Owner(key); ok {
			return []string{s}, true
		}
	}
	return rt.Map.Shards(), false
}

// keyProjection asks a shard for just what the router needs to count and filter:
// _id and the shard key fields.
func keyProjection(rt *Routing) bson.Raw {
	d := bson.D{{Key: "_id", Value: 1}}
	if rt.Pattern != nil {
		for _, f := range rt.Pattern.Fields() {
			if f != "_id" && !strings.HasPrefix(f, "_id.") {
				d = append(d, bson.E{Key: f, Value: 1})
			}
		}
	}
	return rawDoc(d)
}

// ensureID puts an ObjectId _id first in a document that has none, as drivers and
// mongod do.
func ensureID(doc bson.Raw) bson.Raw {
	if _, err := doc.LookupErr("_id"); err == nil {
		return doc
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendObjectIDElement(out, "_id", primitive.NewObjectID())
	elems, _ := doc.Elements()
	for _, e := range elems {
		out = append(out, e...)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// pinFilter narrows a filter to one document by its _id: {_id: id, $and: [filter]}.
// Sent to the shard that owns the document, _id is unique there, and a lone _id
// equality is what the shard front can look up without a scan.
func pinFilter(id bson.RawValue, filter bson.Raw) bson.Raw {
	if v, ok := equalityValue(filter, "_id"); ok && compareValues(v, id) == 0 {
		return filter // already pinned: keep the filter the shard can look up directly
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendValueElement(out, "_id", core(id))
	if elems, _ := filter.Elements(); len(elems) > 0 {
		aidx, arr := bsoncore.AppendArrayElementStart(out, "$and")
		arr = bsoncore.AppendDocumentElement(arr, "0", filter)
		out, _ = bsoncore.AppendArrayEnd(arr, aidx)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// withField returns doc with key set to v: replaced in place if present, else
// appended.
func withField(doc bson.Raw, key string, v bson.RawValue) bson.Raw {
	idx, out := bsoncore.AppendDocumentStart(nil)
	elems, _ := doc.Elements()
	found := false
	for _, e := range elems {
		if e.Key() == key {
			out = bsoncore.AppendValueElement(out, key, core(v))
			found = true
			continue
		}
		out = append(out, e...)
	}
	if !found {
		out = bsoncore.AppendValueElement(out, key, core(v))
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// without returns doc minus the named top-level fields.
func without(doc bson.Raw, drop map[string]bool) bson.Raw {
	idx, out := bsoncore.AppendDocumentStart(nil)
	elems, _ := doc.Elements()
	for _, e := range elems {
		if !drop[e.Key()] {
			out = append(out, e...)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// sessionFields are the fields of a client command that concern the client's
// connection to the router (sessions, transactions, read/write concerns, server API),
// not the shards: the router drops them before forwarding.
var sessionFields = map[string]bool{
	"$db": true, "lsid": true, "$clusterTime": true, "txnNumber": true, "autocommit": true,
	"startTransaction": true, "$readPreference": true, "readConcern": true, "writeConcern": true,
	"apiVersion": true, "apiStrict": true, "apiDeprecationErrors": true, "maxTimeMS": true,
	"$audit": true, "$client": true, "$configServerState": true, "$topologyTime": true,
}

// forwardable is a client command ready to be sent on to a shard.
func forwardable(cmd *wire.Command) bson.Raw { return without(cmd.Body, sessionFields) }

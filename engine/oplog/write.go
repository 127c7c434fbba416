package oplog

import (
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/namespaces"
)

// WriteKind is the destination operation of a Write.
type WriteKind uint8

const (
	// InsertReplace: replace the document matching Filter with Replacement,
	// inserting it when none matches (replaceOne with upsert). Inserts and
	// replacement-style updates translate to it, so replaying one is harmless.
	InsertReplace WriteKind = iota + 1
	// Update: apply Update (an operator document) or Pipeline (an update
	// pipeline) to the document matching Filter (updateOne, no upsert).
	Update
	// Delete: delete the document matching Filter (deleteOne).
	Delete
)

func (k WriteKind) String() string {
	switch k {
	case InsertReplace:
		return "insert-replace"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Write is one destination write, targeted by the full document key.
//
// Filter is the document key: {_id: ...} plus the shard key fields, named by
// their dotted paths ({"_id": 1, "a.b": 2}). For an update it is the entry's o2
// and for a delete its o, exactly as MongoDB's own secondaries use them as
// queries; for an insert it is built from the document and the collection's
// shard key (a missing shard key field is null, which matches a missing field).
// Never target by _id alone: after a shard key change the same _id can exist
// on two shards of the destination for a while.
//
// A bulk writer maps a Write to one driver model:
//
//	InsertReplace  mongo.NewReplaceOneModel().SetFilter(Filter).SetReplacement(Replacement).SetUpsert(Upsert)
//	Update         mongo.NewUpdateOneModel().SetFilter(Filter).SetUpdate(Update)      (operator form)
//	               mongo.NewUpdateOneModel().SetFilter(Filter).SetUpdate(Pipeline)    (pipeline form)
//	Delete         mongo.NewDeleteOneModel().SetFilter(Filter)
//
// An update that changes shard key values must run as a retryable write or in
// a transaction on MongoDB 4.2 and later. The byte slices alias the entry's raw
// bytes or a buffer made for this write; do not modify them.
type Write struct {
	Kind        WriteKind
	NS          Namespace
	Filter      bson.Raw
	Update      bson.Raw   // Update in operator form: {$set: ..., $unset: ...}
	Pipeline    []bson.Raw // Update in pipeline form (stages); nil for the operator form
	Replacement bson.Raw   // InsertReplace: the whole document
	Upsert      bool       // InsertReplace inserts when none matches: true for every write the Translator makes
	// Diff is the $v: 2 diff that Pipeline reproduces (nil for other writes). A
	// destination that runs no pipeline updates (FerretDB) applies it instead: it
	// reads the document, applies the diff (ApplyDiff) and replaces the document.
	// It is set wherever the update comes from, transactions and applyOps included.
	Diff bson.Raw
}

// Size is the number of document bytes the write sends, for cutting bulk
// writes by bytes (a replacement can be 16 MiB).
func (w *Write) Size() int {
	n := len(w.Filter) + len(w.Update) + len(w.Replacement)
	for _, st := range w.Pipeline {
		n += len(st)
	}
	return n
}

// ItemKind says what an Item carries.
type ItemKind uint8

const (
	// ItemWrite: a document write.
	ItemWrite ItemKind = iota + 1
	// ItemDDL: a collection, index or view change.
	ItemDDL
	// ItemPosition: nothing to apply; the entry at TS is done (no-ops, skipped
	// entries, ignored commands, aborted transactions).
	ItemPosition
)

// Item is one thing to do for an oplog entry. TS is the ts of the entry that
// completes it: the entry itself, or for a transaction's operations the entry
// that committed it, so that a checkpoint never passes a commit whose
// operations are not all applied.
type Item struct {
	Kind  ItemKind
	TS    primitive.Timestamp
	Write Write // ItemWrite
	DDL   *DDL  // ItemDDL
	// UI is the UUID of the collection the entry wrote to (its ui), nil when
	// the entry has none: writes are told apart by it from writes to an earlier
	// collection of the same name (see replay's DDL catalog).
	UI []byte
}

// userNamespace reports whether ns holds user data (namespaces.Migrated).
// Writes to <db>.system.views are the exception handled by the caller: they
// are view definitions.
func userNamespace(ns Namespace) bool { return namespaces.Migrated(ns.DB, ns.Coll) }

// docKeyOf checks that a document key (o2 of an update, o of a delete) holds
// _id.
func docKeyOf(ts primitive.Timestamp, field string, key bson.Raw) (bson.Raw, error) {
	it, _ := newIter(key)
	hasID := false
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		hasID = hasID || el.is("_id")
	}
	if it.bad {
		return nil, malformed(ts, field, "corrupt BSON in the document key")
	}
	if !hasID {
		return nil, malformed(ts, field, "the document key has no _id")
	}
	return key, nil
}

// insertKey builds the document key of an inserted document: _id, then each
// shard key path in pattern order with its value (null when missing, as
// MongoDB's shard key extraction gives). Without key fields it uses the entry's
// o2 when the server wrote one (7.0 and later do), else {_id}. It reads the
// document's top level once.
func insertKey(ts primitive.Timestamp, doc, o2 bson.Raw, fields []string) (bson.Raw, error) {
	if len(fields) == 0 && o2 != nil {
		return docKeyOf(ts, "o2", o2)
	}
	var topBuf [4]element
	var partBuf [4]string
	top, parts := topBuf[:0], partBuf[:0]
	if len(fields) > len(topBuf) {
		top, parts = make([]element, len(fields)), make([]string, len(fields))
	} else {
		top, parts = topBuf[:len(fields)], partBuf[:len(fields)]
	}
	for i, f := range fields {
		parts[i] = firstPart(f)
	}
	var id element
	it, _ := newIter(doc)
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		if id.raw == nil && el.is("_id") {
			id = el
		}
		for i, p := range parts {
			if top[i].raw == nil && p == string(el.name) {
				top[i] = el
			}
		}
	}
	if it.bad {
		return nil, malformed(ts, "o", "corrupt BSON in the inserted document")
	}
	if id.raw == nil {
		return nil, malformed(ts, "o._id", "an inserted document must have an _id")
	}
	size := 5 + len(id.raw)
	for i, f := range fields {
		size += 2 + len(f) + len(top[i].val)
	}
	off, dst := startDoc(make([]byte, 0, size))
	dst = append(dst, id.raw...)
	for i, f := range fields {
		if f == "_id" {
			continue
		}
		t, v := bsontype.Null, []byte(nil)
		if el := top[i]; el.raw != nil {
			rest := f[len(parts[i]):]
			switch {
			case el.t == bsontype.Array:
				return nil, malformed(ts, "o."+f, "%v", errArrayInKey)
			case rest == "":
				t, v = el.t, el.val
			case el.t == bsontype.EmbeddedDocument:
				var err error
				if t, v, err = lookupPath(el.val, rest[1:]); err != nil {
					return nil, malformed(ts, "o."+f, "%v", err)
				}
			}
		}
		dst = appendElem(dst, f, t, v)
	}
	return bson.Raw(endDoc(dst, off)), nil
}

// firstPart returns a dotted path's first part.
func firstPart(path string) string {
	if i := strings.IndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return path
}

// lookupPath finds a dotted path in a document as MongoDB's shard key
// extraction does: the first field of each name, null when a part is missing or
// a non-document lies on the way, an error when an array does.
func lookupPath(doc []byte, path string) (bsontype.Type, []byte, error) {
	for {
		part, rest, more := strings.Cut(path, ".")
		el, ok := lookup(doc, part)
		switch {
		case !ok:
			return bsontype.Null, nil, nil
		case el.t == bsontype.Array:
			return 0, nil, errArrayInKey
		case !more:
			return el.t, el.val, nil
		case el.t != bsontype.EmbeddedDocument:
			return bsontype.Null, nil, nil
		}
		doc, path = el.val, rest
	}
}

type keyError string

func (e keyError) Error() string { return string(e) }

const errArrayInKey = keyError("shard key values cannot be arrays or lie inside arrays")

// modifierUpdate returns a $v: 1 (or older) modifier update without $v: the
// $set and $unset elements byte for byte.
func modifierUpdate(o bson.Raw) (bson.Raw, bool) {
	it, _ := newIter(o)
	off, dst := startDoc(make([]byte, 0, len(o)))
	n := 0
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		if el.is("$v") {
			continue
		}
		if b, _ := docBody(el.val); len(b) == 0 {
			continue // an empty $set or $unset is refused by servers and changes nothing
		}
		dst = append(dst, el.raw...)
		n++
	}
	return bson.Raw(endDoc(dst, off)), n > 0
}

// idValue returns the raw _id element value bytes (type byte first) of a
// document key, for partitioning.
func idValue(filter bson.Raw) (bsontype.Type, []byte, bool) {
	el, ok := lookup(filter, "_id")
	return el.t, el.val, ok
}

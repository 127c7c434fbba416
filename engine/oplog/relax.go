package oplog

import (
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// While shards apply independently, a unique index can be violated for a
// moment (a document moved between shards is inserted on one before it is
// deleted on the other), and a TTL index would delete documents the source
// still has (the source deletes them itself, and those deletes arrive through
// the oplog). So indexes are built relaxed during sync and restored when the
// migration finishes or is cancelled:
//
//   - unique: true and prepareUnique: true are left out (the index is built
//     non-unique);
//   - expireAfterSeconds becomes RelaxedExpireAfterSeconds (about 68 years).
//
// The engine records the original of every index and collection option it
// relaxed, in the store, and re-applies them: a unique index once every shard
// is in sync, its namespace then applied in oplog order (engine/unique.go), and
// what is left at finalize (collMod prepareUnique then unique on 6.0 and later,
// or drop and re-create; collMod expireAfterSeconds).

// RelaxedExpireAfterSeconds is the TTL given to TTL indexes during sync: the
// largest value MongoDB accepts.
const RelaxedExpireAfterSeconds = math.MaxInt32

// RelaxIndexForSync returns the spec to build during sync and a copy of the
// original spec to restore at finalize. The relaxed spec keeps the name, key
// and every other option, in the same order. The _id index is never changed.
func RelaxIndexForSync(spec bson.Raw) (relaxed, original bson.Raw, err error) {
	if !validDoc(spec, maxDocDepth) {
		return nil, nil, fmt.Errorf("relax index spec: %w: corrupt BSON", ErrMalformed)
	}
	original = append(bson.Raw(nil), spec...)
	if isIDIndex(spec) {
		return original, original, nil
	}
	it, _ := newIter(spec)
	off, dst := startDoc(make([]byte, 0, len(spec)+8))
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		switch {
		case (el.is("unique") || el.is("prepareUnique")) && el.truthy():
			continue
		case el.is("expireAfterSeconds"):
			dst = appendInt32(dst, "expireAfterSeconds", RelaxedExpireAfterSeconds)
			continue
		}
		dst = append(dst, el.raw...)
	}
	return bson.Raw(endDoc(dst, off)), original, nil
}

// isIDIndex reports whether spec is the _id index ({key: {_id: 1}}).
func isIDIndex(spec bson.Raw) bool {
	if name, ok := lookup(spec, "name"); ok && name.t == bsontype.String && string(str(name.val)) == "_id_" {
		return true
	}
	key, ok := lookup(spec, "key")
	if !ok || key.t != bsontype.EmbeddedDocument {
		return false
	}
	it, _ := newIter(key.val)
	first, ok := it.next()
	if !ok || !first.is("_id") {
		return false
	}
	_, more := it.next()
	return !more
}

// RelaxCollectionOptionsForSync splits collection options (of a create or a
// collMod) into what to apply during sync and what to withhold until
// finalize:
//
//   - a collection-level expireAfterSeconds (clustered collections) is applied
//     as RelaxedExpireAfterSeconds, unless it is "off";
//   - collMod's index: {name or keyPattern, ...} is applied without unique,
//     prepareUnique and forceNonUnique, and with a relaxed expireAfterSeconds;
//     the index entry is dropped from apply when nothing else is left in it.
//
// withheld holds the original values of what was changed or left out
// ({expireAfterSeconds: ..., index: {name: ..., unique: true, ...}}), nil when
// nothing was. apply is nil when nothing is left to apply.
func RelaxCollectionOptionsForSync(opts bson.Raw) (apply, withheld bson.Raw, err error) {
	if !validDoc(opts, maxDocDepth) {
		return nil, nil, fmt.Errorf("relax collection options: %w: corrupt BSON", ErrMalformed)
	}
	it, _ := newIter(opts)
	aOff, a := startDoc(nil)
	wOff, w := startDoc(nil)
	nApply, nWithheld := 0, 0
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		switch {
		case el.is("expireAfterSeconds") && el.t != bsontype.String:
			a = appendInt32(a, "expireAfterSeconds", RelaxedExpireAfterSeconds)
			w = append(w, el.raw...)
			nApply++
			nWithheld++
		case el.is("index") && el.t == bsontype.EmbeddedDocument:
			ia, iw, keep, hold := relaxIndexMod(el.val)
			if keep {
				a = appendElem(a, "index", bsontype.EmbeddedDocument, ia)
				nApply++
			}
			if hold {
				w = appendElem(w, "index", bsontype.EmbeddedDocument, iw)
				nWithheld++
			}
		default:
			a = append(a, el.raw...)
			nApply++
		}
	}
	if nApply > 0 {
		apply = bson.Raw(endDoc(a, aOff))
	}
	if nWithheld > 0 {
		withheld = bson.Raw(endDoc(w, wOff))
	}
	return apply, withheld, nil
}

// relaxIndexMod splits collMod's index: {...}. keep reports whether apply
// changes anything beyond naming the index; hold whether anything was withheld.
func relaxIndexMod(ix []byte) (apply, withheld []byte, keep, hold bool) {
	it, _ := newIter(ix)
	aOff, a := startDoc(nil)
	wOff, w := startDoc(nil)
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		switch {
		case el.is("name"), el.is("keyPattern"):
			a = append(a, el.raw...)
			w = append(w, el.raw...)
		case el.is("unique"), el.is("prepareUnique"), el.is("forceNonUnique"):
			w = append(w, el.raw...)
			hold = true
		case el.is("expireAfterSeconds"):
			a = appendInt32(a, "expireAfterSeconds", RelaxedExpireAfterSeconds)
			w = append(w, el.raw...)
			keep, hold = true, true
		default:
			a = append(a, el.raw...)
			keep = true
		}
	}
	return endDoc(a, aOff), endDoc(w, wOff), keep, hold
}

package shard

import (
	"bytes"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/sandbox/modify"
	"github.com/shardlift/shardlift/sandbox/sjson"
)

// In-process keyed updates: the update of one stored row computed by sandbox/modify
// and written back as FerretDB's text by sjson.Encode, with no FerretDB round trip
// (keyed.go's header tells where it fits). Only what modify computes as MongoDB does,
// and what FerretDB would store as is, is done here; anything else is left to FerretDB
// (the workbench, or the shard's own FerretDB for string and ObjectId _ids), with its
// errors.

// inProcessOps are the update operators modify applies as MongoDB does. $rename is
// not among them (where MongoDB puts a renamed field is not what modify does in every
// case), nor $setOnInsert (an update of an existing document ignores it, but MongoDB
// still checks its paths against the others').
var inProcessOps = map[string]bool{"$set": true, "$unset": true, "$inc": true, "$mul": true, "$min": true, "$max": true, "$currentDate": true}

// maxInProcessBSON: bigger results are left to FerretDB, which enforces MongoDB's
// 16 MiB limit on documents; below it both store the same document.
const maxInProcessBSON = 15 << 20

// inProcessUpdate reports whether the update is one applyInProcess may take: a
// non-empty replacement, or field operators, each named once, on paths that are plain
// field names (no array indexes or positional operators, not _id) none of which is
// another's prefix (MongoDB refuses those as conflicting; modify would apply both),
// and no arrayFilters.
func inProcessUpdate(update, arrayFilters bson.RawValue) bool {
	if arrayFilters.Type != 0 {
		return false
	}
	u, ok := update.DocumentOK()
	if !ok {
		return false
	}
	ops, err := u.Elements()
	if err != nil || len(ops) == 0 {
		return false
	}
	if !strings.HasPrefix(ops[0].Key(), "$") {
		for i, e := range ops {
			// An operator among replacement fields is MongoDB's error; an _id
			// anywhere but first is placed by rules left to FerretDB.
			if strings.HasPrefix(e.Key(), "$") || (i > 0 && e.Key() == "_id") {
				return false
			}
		}
		return true
	}
	var paths []string
	seen := map[string]bool{}
	for _, op := range ops {
		fields, ok := op.Value().DocumentOK()
		if !inProcessOps[op.Key()] || !ok || seen[op.Key()] {
			return false
		}
		seen[op.Key()] = true
		elems, err := fields.Elements()
		if err != nil || len(elems) == 0 {
			return false
		}
		for _, f := range elems {
			if !plainPath(f.Key()) {
				return false
			}
			switch op.Key() {
			case "$inc", "$mul":
				switch f.Value().Type {
				case bsontype.Int32, bsontype.Int64, bsontype.Double:
				default:
					return false
				}
			case "$currentDate":
				// true, false or {$type: "date"}: the current date ({$type:
				// "timestamp"} takes MongoDB's clock, not modify's).
				if f.Value().Type != bsontype.Boolean {
					spec, ok := f.Value().DocumentOK()
					typ, isStr := spec.Lookup("$type").StringValueOK()
					n, _ := spec.Elements()
					if !ok || !isStr || typ != "date" || len(n) != 1 {
						return false
					}
				}
			}
			paths = append(paths, f.Key())
		}
	}
	return !conflicting(paths)
}

// plainPath reports whether a dotted update path names only document fields: no empty
// part, none starting with '$' (positional operators), none all digits (an array
// index where the value is an array), and not _id or a part of it.
func plainPath(path string) bool {
	parts := strings.Split(path, ".")
	if parts[0] == "_id" {
		return false
	}
	for _, p := range parts {
		if p == "" || p[0] == '$' || strings.Trim(p, "0123456789") == "" {
			return false
		}
	}
	return true
}

// conflicting reports whether a path repeats or is a prefix (at a dot) of another.
func conflicting(paths []string) bool {
	for i, a := range paths {
		for _, b := range paths[i+1:] {
			if a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".") {
				return true
			}
		}
	}
	return false
}

// applyInProcess applies update to the document the row stores, whose _id must be
// exactly id, and returns the result and its text; ok is false when the update is
// left to FerretDB (the row does not hold that _id, modify refuses the update, or the
// result is one FerretDB would refuse or store as another document).
func applyInProcess(row storedRow, id, update bson.RawValue) (post bson.Raw, out string, ok bool) {
	pre := row.doc
	if pre == nil {
		var err error
		if pre, err = sjson.Decode(nil, []byte(row.text)); err != nil {
			return nil, "", false
		}
	}
	preID := bson.Raw(pre).Lookup("_id")
	if preID.Type != id.Type || !bytes.Equal(preID.Value, id.Value) {
		return nil, "", false
	}
	u := bson.Raw(update.Value)
	if newID, err := u.LookupErr("_id"); err == nil && (newID.Type != id.Type || !bytes.Equal(newID.Value, id.Value)) {
		return nil, "", false // a replacement that changes the _id: MongoDB's error
	}
	post, err := modify.Apply(pre, u)
	if err != nil || len(post) > maxInProcessBSON {
		return nil, "", false
	}
	enc, err := sjson.Encode(nil, post)
	if err != nil {
		return nil, "", false
	}
	return post, string(enc), true
}

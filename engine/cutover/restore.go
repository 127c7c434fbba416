// Package cutover holds the destination-side steps of the end of a migration: the
// unique and TTL index options and the collection options the sync relaxed
// (oplog.RelaxIndexForSync, oplog.RelaxCollectionOptionsForSync) are put back as the
// source has them, when the migration finishes, is cancelled or expires.
//
//	original spec (recorded before the relaxed index was built)
//	    │ listIndexes on the destination: the index by name, same key?
//	    ├─ gone, or another key now ─► nothing to do
//	    ├─ options already as the original ─► nothing to do (a restore runs again safely)
//	    └─ collMod: prepareUnique then unique (6.0+), expireAfterSeconds
//	         └─ refused by the server (older, or no collMod) ─► dropIndexes + createIndexes(original)
//
// Withheld collection options (a clustered collection's expireAfterSeconds, a
// collMod's index change) are applied with collMod, the index part through the same
// index restore.
package cutover

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/oplog"
)

// Server error codes the restore reacts to.
const (
	codeIllegalOperation        = 20
	codeNamespaceNotFound       = 26
	codeIndexNotFound           = 27
	codeCommandNotFound         = 59
	codeInvalidOptions          = 72
	codeInvalidIndexSpecOption  = 197
	codeCommandNotSupported     = 115
	codeNotImplemented          = 238
	codeFailedToParse           = 9
	codeBadValue                = 2
	codeCannotConvertIndexToUni = 359
	codeDuplicateKey            = 11000
)

// fallbackCodes are collMod refusals that mean "this server cannot change the
// index in place": the index is dropped and built again instead.
var fallbackCodes = []int{
	codeCommandNotFound, codeInvalidOptions, codeInvalidIndexSpecOption, codeCommandNotSupported,
	codeNotImplemented, codeFailedToParse, codeBadValue, codeIllegalOperation,
}

// RestoreIndex makes the destination's index as the original specification says:
// unique and expireAfterSeconds as on the source. An index that is gone, or that
// has another key under the same name, is left alone; so is one already restored.
func RestoreIndex(ctx context.Context, client *mongo.Client, ns string, original bson.Raw) error {
	db, coll, ok := strings.Cut(ns, ".")
	if !ok {
		return fmt.Errorf("restore an index: %q is not a namespace", ns)
	}
	name, _ := original.Lookup("name").StringValueOK()
	current, err := findIndex(ctx, client, db, coll, func(spec bson.Raw) bool {
		n, _ := spec.Lookup("name").StringValueOK()
		return n == name
	})
	if err != nil || current == nil {
		return err
	}
	if !bytesEqual(current.Lookup("key"), original.Lookup("key")) {
		return nil // another index now has that name: the original was dropped
	}
	return restore(ctx, client, db, coll, current, oplog.DestinationIndexSpec(original))
}

// WantsUnique reports whether an index specification is unique.
func WantsUnique(spec bson.Raw) bool { return truthy(spec.Lookup("unique")) }

// RestoreOptions applies collection options withheld during the sync.
func RestoreOptions(ctx context.Context, client *mongo.Client, ns string, withheld bson.Raw) error {
	db, coll, ok := strings.Cut(ns, ".")
	if !ok {
		return fmt.Errorf("restore collection options: %q is not a namespace", ns)
	}
	if ttl := withheld.Lookup("expireAfterSeconds"); ttl.Type != 0 {
		cmd := bson.D{{Key: "collMod", Value: coll}, {Key: "expireAfterSeconds", Value: ttl}}
		if err := client.Database(db).RunCommand(ctx, cmd).Err(); err != nil && !mongoerr.HasCode(err, codeNamespaceNotFound) {
			return fmt.Errorf("collMod %s expireAfterSeconds %s: %w", ns, ttl, err)
		}
	}
	ix, ok := withheld.Lookup("index").DocumentOK()
	if !ok {
		return nil
	}
	name, byName := ix.Lookup("name").StringValueOK()
	pattern := ix.Lookup("keyPattern")
	current, err := findIndex(ctx, client, db, coll, func(spec bson.Raw) bool {
		if byName {
			n, _ := spec.Lookup("name").StringValueOK()
			return n == name
		}
		return bytesEqual(spec.Lookup("key"), pattern)
	})
	if err != nil || current == nil {
		return err
	}
	want := current
	elems, err := ix.Elements()
	if err != nil {
		return fmt.Errorf("withheld options of %s: %w", ns, err)
	}
	for _, e := range elems {
		switch e.Key() {
		case "unique", "expireAfterSeconds":
			want = withField(want, e.Key(), e.Value())
		case "forceNonUnique":
			if truthy(e.Value()) {
				want = withoutField(want, "unique")
			}
		}
	}
	return restore(ctx, client, db, coll, current, want)
}

// restore changes the current index into want (same name and key).
func restore(ctx context.Context, client *mongo.Client, db, coll string, current, want bson.Raw) error {
	name, _ := current.Lookup("name").StringValueOK()
	needUnique := truthy(want.Lookup("unique")) && !truthy(current.Lookup("unique"))
	ttl := want.Lookup("expireAfterSeconds")
	needTTL := ttl.Type != 0 && !sameNumber(ttl, current.Lookup("expireAfterSeconds"))
	if !needUnique && !needTTL {
		return nil
	}
	err := collModIndex(ctx, client, db, coll, name, needUnique, needTTL, ttl)
	if err == nil {
		return nil
	}
	if !mongoerr.HasCode(err, fallbackCodes...) {
		return fmt.Errorf("index %s of %s.%s: %w", name, db, coll, explain(err))
	}
	// The server cannot change the index in place: build it again as it should be.
	database := client.Database(db)
	if err := database.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: coll}, {Key: "index", Value: name}}).Err(); err != nil && !mongoerr.HasCode(err, codeIndexNotFound, codeNamespaceNotFound) {
		return fmt.Errorf("index %s of %s.%s: drop it to build it again with its original options: %w", name, db, coll, err)
	}
	create := func(spec bson.Raw) error {
		return database.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: bson.A{spec}}}).Err()
	}
	if err := create(want); err != nil {
		err = fmt.Errorf("index %s of %s.%s: build it again with its original options %s: %w", name, db, coll, want, explain(err))
		// Leave the index as it was rather than without it.
		if berr := create(current); berr != nil {
			return fmt.Errorf("%w; and building it back as it was failed too (%v): create it by hand", err, berr)
		}
		return err
	}
	return nil
}

// collModIndex changes an index in place: unique needs prepareUnique first
// (MongoDB 6.0 and later).
func collModIndex(ctx context.Context, client *mongo.Client, db, coll, name string, unique, setTTL bool, ttl bson.RawValue) error {
	run := func(fields ...bson.E) error {
		ix := append(bson.D{{Key: "name", Value: name}}, fields...)
		return client.Database(db).RunCommand(ctx, bson.D{{Key: "collMod", Value: coll}, {Key: "index", Value: ix}}).Err()
	}
	if setTTL {
		if err := run(bson.E{Key: "expireAfterSeconds", Value: ttl}); err != nil {
			return err
		}
	}
	if unique {
		if err := run(bson.E{Key: "prepareUnique", Value: true}); err != nil {
			return err
		}
		if err := run(bson.E{Key: "unique", Value: true}); err != nil {
			return err
		}
	}
	return nil
}

// explain adds what a DBA should do to a unique index that cannot be built.
func explain(err error) error {
	if mongoerr.HasCode(err, codeDuplicateKey, codeCannotConvertIndexToUni) {
		return fmt.Errorf("%w: the destination holds documents that violate the unique index the source has; verification lists the ranges that differ", err)
	}
	return err
}

// findIndex returns the destination index that match accepts, nil when there is
// none or the collection is gone.
func findIndex(ctx context.Context, client *mongo.Client, db, coll string, match func(bson.Raw) bool) (bson.Raw, error) {
	cur, err := client.Database(db).Collection(coll).Indexes().List(ctx)
	if mongoerr.HasCode(err, codeNamespaceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the indexes of %s.%s on the destination: %w", db, coll, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		if match(cur.Current) {
			return append(bson.Raw(nil), cur.Current...), nil
		}
	}
	if err := cur.Err(); err != nil && !mongoerr.HasCode(err, codeNamespaceNotFound) {
		return nil, fmt.Errorf("list the indexes of %s.%s on the destination: %w", db, coll, err)
	}
	return nil, nil
}

func truthy(v bson.RawValue) bool {
	if b, ok := v.BooleanOK(); ok {
		return b
	}
	f, ok := number(v)
	return ok && f != 0
}

func sameNumber(a, b bson.RawValue) bool {
	fa, okA := number(a)
	fb, okB := number(b)
	return okA && okB && fa == fb
}

func number(v bson.RawValue) (float64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return float64(v.Int32()), true
	case bson.TypeInt64:
		return float64(v.Int64()), true
	case bson.TypeDouble:
		return v.Double(), true
	}
	return 0, false
}

func bytesEqual(a, b bson.RawValue) bool {
	return a.Type == b.Type && string(a.Value) == string(b.Value)
}

// withField sets a top-level field, in place of the old one or at the end.
func withField(doc bson.Raw, key string, v bson.RawValue) bson.Raw {
	elems, err := doc.Elements()
	if err != nil {
		return doc
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	done := false
	for _, e := range elems {
		if e.Key() == key {
			out = bsoncore.AppendValueElement(out, key, bsoncore.Value{Type: v.Type, Data: v.Value})
			done = true
			continue
		}
		out = append(out, e...)
	}
	if !done {
		out = bsoncore.AppendValueElement(out, key, bsoncore.Value{Type: v.Type, Data: v.Value})
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// withoutField drops a top-level field.
func withoutField(doc bson.Raw, key string) bson.Raw {
	if doc.Lookup(key).Type == 0 {
		return doc
	}
	elems, err := doc.Elements()
	if err != nil {
		return doc
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		if e.Key() != key {
			out = append(out, e...)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

package shard

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
)

// A secondary applies its primary's entries to its own FerretDB (replset.go): inserts
// and updates as the whole document (an update's post-image comes with its entry in
// memory; an entry read back from the file after a restart has none, and the
// document is fetched from the primary, which is then at the end of its oplog: see
// catchUp), deletes by _id, DDL as the command it records. The shard's catalog
// (UUIDs, shard keys, views) is the set's, shared by its members.

// applyEntry applies one entry to n's data; from is the member it came from.
func (n *node) applyEntry(ctx context.Context, e entry, from *node) error {
	op := str(e.raw.Lookup("op"))
	ns := str(e.raw.Lookup("ns"))
	o, _ := e.raw.Lookup("o").DocumentOK()
	return n.applyOp(ctx, op, ns, o, e.post, e.raw, from)
}

func (n *node) applyOp(ctx context.Context, op, ns string, o, post, raw bson.Raw, from *node) error {
	db, coll, _ := strings.Cut(ns, ".")
	switch op {
	case "n":
		return nil
	case "i":
		return n.replaceDoc(ctx, db, coll, o)
	case "u":
		if post == nil {
			o2, _ := raw.Lookup("o2").DocumentOK()
			return n.refetch(ctx, from, db, coll, o2.Lookup("_id"))
		}
		return n.replaceDoc(ctx, db, coll, post)
	case "d":
		_, err := n.be.deleteByID(ctx, db, coll, o.Lookup("_id"))
		return ignoreMissing(err)
	case "c":
		return n.applyCommand(ctx, db, o, from)
	}
	return fmt.Errorf("cannot apply an entry with op %q", op)
}

// replaceDoc makes doc the document with its _id, in one write (an upserting
// replacement), as a real secondary applies an entry: a delete then an insert
// left a moment without the document, and a read served by this member meanwhile
// (a copy at read concern majority) missed a document the set never lost.
//
// FerretDB finds a document by a full scan unless its _id is an ObjectId or a string
// (pushedDown): other _ids take the keyed path, which rewrites the row in place
// (a secondary applied an update of a numeric _id 0.5 s late per 5,000 documents).
func (n *node) replaceDoc(ctx context.Context, db, coll string, doc bson.Raw) error {
	if id := doc.Lookup("_id"); !pushedDown(id) {
		if _, keyed := idKeys(id); keyed {
			docs, err := n.be.fetchByID(ctx, db, coll, id)
			if ignoreMissing(err) != nil {
				return err
			}
			if len(docs) == 0 {
				return n.insertOne(ctx, db, coll, doc)
			}
			_, err = n.be.modifyByID(ctx, db, coll, docs[0].Lookup("_id"), bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}, bson.RawValue{})
			return err
		}
	}
	reply, err := n.be.run(ctx, db, bson.D{{Key: "update", Value: coll}, {Key: "updates", Value: bson.A{
		bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: doc.Lookup("_id")}}}, {Key: "u", Value: doc}, {Key: "upsert", Value: true}},
	}}})
	if err != nil {
		return err
	}
	return firstWriteError(reply)
}

// refetch makes the document with _id id what it is on member from (absent if it is
// absent there), as MongoDB's refetch-based rollback does. It holds n's write lock,
// not from's: from is read without its workbench.
func (n *node) refetch(ctx context.Context, from *node, db, coll string, id bson.RawValue) error {
	docs, _, err := n.be.readByID(ctx, from.be, db, coll, id)
	if ignoreMissing(err) != nil {
		return err
	}
	if len(docs) == 0 {
		_, err := n.be.deleteByID(ctx, db, coll, id)
		return ignoreMissing(err)
	}
	return n.replaceDoc(ctx, db, coll, docs[0])
}

// ignoreMissing treats a collection or database that does not exist as nothing to do.
func ignoreMissing(err error) error {
	if err == nil || hasCode(err, 26) || strings.Contains(err.Error(), "no such table") {
		return nil
	}
	return err
}

// applyCommand applies a c entry's command.
func (n *node) applyCommand(ctx context.Context, db string, o bson.Raw, from *node) error {
	elems, _ := o.Elements()
	if len(elems) == 0 {
		return nil
	}
	name := elems[0].Key()
	arg := elems[0].Value()
	coll, _ := arg.StringValueOK()
	run := func(cmd bson.D) error {
		_, err := n.be.run(ctx, db, cmd)
		return err
	}
	switch name {
	case "create":
		if _, view := o.Lookup("viewOn").StringValueOK(); view {
			return nil // views live in the set's catalog
		}
		if err := run(bson.D{{Key: "create", Value: coll}}); err != nil && !hasCode(err, 48) {
			return err
		}
		return n.be.ensureIDIndex(ctx, db, coll)
	case "drop":
		return ignoreMissing(run(bson.D{{Key: "drop", Value: coll}}))
	case "dropDatabase":
		if err := n.be.files.release(db); err != nil {
			return err
		}
		return run(bson.D{{Key: "dropDatabase", Value: 1}})
	case "renameCollection":
		to, _ := o.Lookup("to").StringValueOK()
		toDB, toColl, _ := strings.Cut(to, ".")
		// dropTarget is a boolean up to 4.2, the dropped target's UUID from 4.4.
		drop, _ := o.Lookup("dropTarget").BooleanOK()
		if _, _, uuid := o.Lookup("dropTarget").BinaryOK(); drop || uuid {
			if _, err := n.be.run(ctx, toDB, bson.D{{Key: "drop", Value: toColl}}); ignoreMissing(err) != nil {
				return err
			}
		}
		fromDB, fromColl, _ := strings.Cut(coll, ".")
		if fromDB == toDB {
			// As the primary does: FerretDB refuses $out's tmp.agg_out.<uuid> names.
			return n.renameInBackend(ctx, toDB, fromColl, toColl)
		}
		_, err := n.be.run(ctx, "admin", bson.D{{Key: "renameCollection", Value: coll}, {Key: "to", Value: to}})
		return err
	case "createIndexes":
		spec := bson.D{}
		for _, e := range elems[1:] {
			spec = append(spec, bson.E{Key: e.Key(), Value: e.Value()})
		}
		return n.buildIndexes(ctx, db, coll, bson.A{spec})
	case "commitIndexBuild":
		specs, _ := o.Lookup("indexes").ArrayOK()
		vals, _ := specs.Values()
		a := bson.A{}
		for _, v := range vals {
			a = append(a, v)
		}
		return n.buildIndexes(ctx, db, coll, a)
	case "dropIndexes", "deleteIndexes":
		idx := o.Lookup("index")
		return ignoreMissing(run(bson.D{{Key: "dropIndexes", Value: coll}, {Key: "index", Value: idx}}))
	case "applyOps":
		ops, _ := arg.ArrayOK()
		vals, _ := ops.Values()
		for _, v := range vals {
			d, _ := v.DocumentOK()
			inner, _ := d.Lookup("o").DocumentOK()
			if err := n.applyOp(ctx, str(d.Lookup("op")), str(d.Lookup("ns")), inner, nil, d, from); err != nil {
				return err
			}
		}
		return nil
	}
	// startIndexBuild, abortIndexBuild, collMod, and the rest change nothing a
	// secondary's FerretDB holds (the set's catalog keeps what FerretDB cannot).
	return nil
}

// buildIndexes creates in this member's FerretDB the indexes the primary built in
// its own: each spec as the primary gave it to FerretDB (splitIndexSpec: without the
// version FerretDB refuses, "Index option v is unknown", and without the options the
// set's catalog keeps); a virtual index lives in the catalog alone, as on the primary.
// (Before, every spec went as logged, FerretDB refused each, and a secondary that
// became primary served no index but _id.)
func (n *node) buildIndexes(ctx context.Context, db, coll string, specs bson.A) error {
	for _, s := range specs {
		raw, err := bson.Marshal(bson.D{{Key: "spec", Value: s}})
		if err != nil {
			return err
		}
		spec, ok := bson.Raw(raw).Lookup("spec").DocumentOK()
		if !ok {
			return fmt.Errorf("index build on %s.%s: a spec is not a document: %v", db, coll, s)
		}
		normalized, err := normalizeIndexSpec(spec)
		if err != nil {
			return fmt.Errorf("index build on %s.%s: %w", db, coll, err)
		}
		backendSpec, _, virtual := splitIndexSpec(normalized)
		if virtual {
			continue
		}
		if err := n.be.createIndexes(ctx, db, coll, []bson.Raw{backendSpec}); err != nil {
			return fmt.Errorf("index build %s on %s.%s: %w", specName(normalized), db, coll, err)
		}
	}
	return nil
}

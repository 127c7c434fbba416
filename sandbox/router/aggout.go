package router

import (
	"context"
	"encoding/hex"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Aggregations that write their results, as a mongos has the database's primary
// shard run them, so that the shards' oplogs show what a real server logs:
//
//   - $out: create <db>.tmp.agg_out.<uuid>, the target's indexes built on it,
//     the result inserted into it, then renameCollection over the target with
//     dropTarget (the target's UUID in the rename's entry).
//   - $merge into a collection: an upsert by _id per result document (the
//     collection created implicitly by the first, with its create entry).
//
// Both write to the aggregation's own database; the target of $out must not be
// sharded (MongoDB refuses it too).

// writeStage splits a pipeline's last stage off when it is $out or $merge.
func writeStage(pipeline bson.Raw) (rest bson.Raw, name string, spec bson.RawValue) {
	vals, _ := pipeline.Values()
	if len(vals) == 0 {
		return pipeline, "", bson.RawValue{}
	}
	last, ok := vals[len(vals)-1].DocumentOK()
	if !ok {
		return pipeline, "", bson.RawValue{}
	}
	elems, _ := last.Elements()
	if len(elems) != 1 || elems[0].Key() != "$out" && elems[0].Key() != "$merge" {
		return pipeline, "", bson.RawValue{}
	}
	arr := bson.A{}
	for _, v := range vals[:len(vals)-1] {
		arr = append(arr, v)
	}
	_, raw, _ := bson.MarshalValue(arr)
	return raw, elems[0].Key(), elems[0].Value()
}

// writeTarget reads the collection $out or $merge writes to: a name, or
// {db, coll} ($out) / {into: name or {db, coll}} ($merge), in the same database.
func writeTarget(db, stage string, spec bson.RawValue) (string, error) {
	if stage == "$merge" {
		if d, ok := spec.DocumentOK(); ok {
			spec = d.Lookup("into")
		}
	}
	if s, ok := spec.StringValueOK(); ok && s != "" {
		return s, nil
	}
	if d, ok := spec.DocumentOK(); ok {
		tdb, _ := d.Lookup("db").StringValueOK()
		coll, _ := d.Lookup("coll").StringValueOK()
		if coll != "" && (tdb == "" || tdb == db) {
			return coll, nil
		}
	}
	return "", wire.BadValue(fmt.Sprintf("the sandbox router runs %s into a collection of the aggregation's database only", stage))
}

// aggregateInto runs the rest of the pipeline and writes its result with stage.
func (r *Router) aggregateInto(ctx context.Context, sess *wire.Session, db string, it docIter, stage string, spec bson.RawValue) (bson.Raw, error) {
	target, err := writeTarget(db, stage, spec)
	if err != nil {
		return nil, err
	}
	docs, err := drain(ctx, it)
	if err != nil {
		return nil, err
	}
	if stage == "$out" {
		err = r.out(ctx, sess, db, target, docs)
	} else {
		err = r.merge(ctx, sess, db, target, spec, docs)
	}
	if err != nil {
		return nil, err
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{{Key: "id", Value: int64(0)}, {Key: "ns", Value: db + "." + target}, {Key: "firstBatch", Value: bson.A{}}}}), nil
}

func (r *Router) out(ctx context.Context, sess *wire.Session, db, target string, docs []bson.Raw) error {
	if rt, ok := r.cat.Route(db + "." + target); ok && rt.Sharded() {
		return &wire.Error{Code: 28769, Name: "Location28769", Msg: db + "." + target + " cannot be sharded"}
	}
	id := newUUID()
	tmp := "tmp.agg_out." + hex.EncodeToString(id.Data)
	if _, err := r.create(ctx, sess, command(db, bson.D{{Key: "create", Value: tmp}})); err != nil {
		return err
	}
	indexes, err := r.targetIndexes(ctx, sess, db, target)
	if err != nil {
		return err
	}
	if len(indexes) > 0 {
		if err := replyErr(r.createIndexes(ctx, sess, command(db, bson.D{{Key: "createIndexes", Value: tmp}, {Key: "indexes", Value: indexes}}))); err != nil {
			return err
		}
	}
	for start := 0; start < len(docs); start += 1000 {
		batch := bson.A{}
		for _, d := range docs[start:min(start+1000, len(docs))] {
			batch = append(batch, d)
		}
		if err := replyErr(r.insert(ctx, sess, command(db, bson.D{{Key: "insert", Value: tmp}, {Key: "documents", Value: batch}}))); err != nil {
			return err
		}
	}
	rename := bson.D{{Key: "renameCollection", Value: db + "." + tmp}, {Key: "to", Value: db + "." + target}, {Key: "dropTarget", Value: true}}
	return replyErr(r.renameCollection(ctx, sess, command("admin", rename)))
}

// targetIndexes lists the indexes of $out's target but _id's, for the temporary
// collection; none when the target does not exist.
func (r *Router) targetIndexes(ctx context.Context, sess *wire.Session, db, target string) (bson.A, error) {
	reply, err := r.listIndexes(ctx, sess, command(db, bson.D{{Key: "listIndexes", Value: target}}))
	if isCode(err, codeNamespaceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := bson.A{}
	arr, _ := reply.Lookup("cursor", "firstBatch").ArrayOK()
	batch, _ := arr.Values()
	for _, v := range batch {
		spec, ok := v.DocumentOK()
		if !ok || spec.Lookup("name").StringValue() == "_id_" {
			continue
		}
		out = append(out, without(spec, map[string]bool{"v": true, "ns": true}))
	}
	return out, nil
}

// merge upserts each document by _id: whenMatched "replace" replaces it,
// "keepExisting" leaves it, "merge" (the default) sets its fields.
func (r *Router) merge(ctx context.Context, sess *wire.Session, db, target string, spec bson.RawValue, docs []bson.Raw) error {
	whenMatched := "merge"
	if d, ok := spec.DocumentOK(); ok {
		if on := d.Lookup("on"); on.Type != 0 && on.StringValue() != "_id" {
			return wire.BadValue("the sandbox router merges on _id only")
		}
		if w, ok := d.Lookup("whenMatched").StringValueOK(); ok {
			whenMatched = w
		}
	}
	for start := 0; start < len(docs); start += 99 { // FerretDB deadlocks on 100 updates in one bulk
		updates := bson.A{}
		for _, d := range docs[start:min(start+99, len(docs))] {
			q := bson.D{{Key: "_id", Value: d.Lookup("_id")}}
			var u any
			switch whenMatched {
			case "replace":
				u = d
			case "keepExisting":
				u = bson.D{{Key: "$setOnInsert", Value: without(d, map[string]bool{"_id": true})}}
			case "merge":
				u = bson.D{{Key: "$set", Value: without(d, map[string]bool{"_id": true})}}
			default:
				return wire.BadValue("the sandbox router's $merge takes whenMatched replace, keepExisting or merge")
			}
			updates = append(updates, bson.D{{Key: "q", Value: q}, {Key: "u", Value: u}, {Key: "upsert", Value: true}})
		}
		if err := replyErr(r.update(ctx, sess, command(db, bson.D{{Key: "update", Value: target}, {Key: "updates", Value: updates}}))); err != nil {
			return err
		}
	}
	return nil
}

// command builds a command the router runs on itself.
func command(db string, body bson.D) *wire.Command {
	raw, err := bson.Marshal(append(body, bson.E{Key: "$db", Value: db}))
	if err != nil {
		panic("router: marshal a command: " + err.Error())
	}
	return &wire.Command{Name: body[0].Key, DB: db, Body: raw}
}

// replyErr is the error of a command's reply, its first write error included.
func replyErr(reply bson.Raw, err error) error {
	if err != nil {
		return err
	}
	if we, ok := reply.Lookup("writeErrors").ArrayOK(); ok {
		if vals, _ := we.Values(); len(vals) > 0 {
			first, _ := vals[0].DocumentOK()
			code, _ := first.Lookup("code").AsInt64OK()
			return &wire.Error{Code: int32(code), Name: "WriteError", Msg: first.Lookup("errmsg").StringValue()}
		}
	}
	return nil
}

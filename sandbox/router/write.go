package router

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/modify"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Write routing. Inserts go to the shard owning each document's chunk. Updates and
// deletes pinned to one shard key go to its shard; multi-document ones without it go
// to every shard owning a chunk; single-document ones without it first find a
// matching document the way a find does (orphans excluded), then write it on its
// shard by _id. An update that moves a document to another chunk's shard becomes an
// insert there and a delete on the old shard. The statements that go to one shard as
// they are travel in child batches (batchwrite.go); the others run alone.

// retryableWrite is the session of a client's retryable write (lsid and txnNumber),
// which mongos forwards to the shards with the ids of the statements each runs, so that
// their entries carry the client's session, or of a write in a transaction (txn.go).
// The lsid travels as _sandboxLsid: the router's driver adds an lsid of its own to
// every command.
type retryableWrite struct {
	lsid, txnNumber bson.RawValue
	txn             bool
}

func retryableOf(cmd *wire.Command) *retryableWrite {
	w := &retryableWrite{lsid: cmd.Lookup("lsid"), txnNumber: cmd.Lookup("txnNumber"), txn: cmd.Lookup("autocommit").Type != 0}
	if w.lsid.Type != bsontype.EmbeddedDocument || w.txnNumber.Type == 0 {
		return nil
	}
	return w
}

// fields are what a shard command of statements stmtIDs adds (none for nil).
func (w *retryableWrite) fields(stmtIDs ...int) bson.D {
	if w == nil {
		return nil
	}
	if w.txn {
		return txnFields(w.lsid, w.txnNumber)
	}
	ids := make(bson.A, len(stmtIDs))
	for i, id := range stmtIDs {
		ids[i] = int32(id)
	}
	return bson.D{{Key: "_sandboxLsid", Value: w.lsid}, {Key: "txnNumber", Value: w.txnNumber}, {Key: "stmtIds", Value: ids}}
}

// stmtError is a statement's write error as a shard reported it (without index).
type stmtError struct{ body bson.Raw }

func (e *stmtError) Error() string { return e.body.Lookup("errmsg").StringValue() }

// writeError is one failed statement of a write command.
type writeError struct {
	index int
	err   error
}

// doc renders the write error in MongoDB's format.
func (w writeError) doc() bson.D {
	d := bson.D{{Key: "index", Value: int32(w.index)}}
	var se *stmtError
	var we *wire.Error
	var ce mongo.CommandError
	switch {
	case errors.As(w.err, &se):
		elems, _ := se.body.Elements()
		for _, e := range elems {
			if e.Key() != "index" {
				d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
			}
		}
	case errors.As(w.err, &we):
		d = append(d, bson.E{Key: "code", Value: we.Code}, bson.E{Key: "codeName", Value: we.Name}, bson.E{Key: "errmsg", Value: we.Msg})
	case errors.As(w.err, &ce):
		d = append(d, bson.E{Key: "code", Value: ce.Code}, bson.E{Key: "codeName", Value: ce.Name}, bson.E{Key: "errmsg", Value: ce.Message})
	default:
		d = append(d, bson.E{Key: "code", Value: int32(1)}, bson.E{Key: "codeName", Value: "InternalError"}, bson.E{Key: "errmsg", Value: w.err.Error()})
	}
	return d
}

// writeErrorsOf returns the writeErrors of a shard's write reply.
func writeErrorsOf(reply bson.Raw) []bson.Raw { return docsOf(reply, "writeErrors") }

// docsOf returns the documents of an array field of a reply.
func docsOf(reply bson.Raw, field string) []bson.Raw {
	arr, ok := reply.Lookup(field).ArrayOK()
	if !ok {
		return nil
	}
	vals, _ := arr.Values()
	out := make([]bson.Raw, 0, len(vals))
	for _, v := range vals {
		if d, ok := v.DocumentOK(); ok {
			out = append(out, d)
		}
	}
	return out
}

func writeReply(fields bson.D, errs []writeError) bson.Raw {
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b writeError) int { return a.index - b.index })
		arr := make(bson.A, len(errs))
		for i, e := range errs {
			arr[i] = e.doc()
		}
		fields = append(fields, bson.E{Key: "writeErrors", Value: arr})
	}
	return wire.OK(fields...)
}

// statements reads a write command's array of documents or statements.
func statements(cmd *wire.Command, field string) ([]bson.Raw, error) {
	arr, ok := cmd.Lookup(field).ArrayOK()
	if !ok {
		return nil, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: fmt.Sprintf("%s needs a %s array", cmd.Name, field)}
	}
	vals, _ := arr.Values()
	out := make([]bson.Raw, len(vals))
	for i, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: fmt.Sprintf("%s.%d must be a document", field, i)}
		}
		out[i] = d
	}
	return out, nil
}

func ordered(cmd *wire.Command) bool {
	v := cmd.Lookup("ordered")
	return v.Type == 0 || truthy(v)
}

func (r *Router) insert(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	db := cmd.DB
	if err := checkWritable(db); err != nil {
		return nil, err
	}
	docs, err := statements(cmd, insertKind.field)
	if err != nil {
		return nil, err
	}
	ns := db + "." + coll
	l := r.lockNS(ns)
	l.RLock()
	defer l.RUnlock()
	if _, err := r.cat.EnsureDatabase(db, ""); err != nil {
		return nil, err
	}
	rt, _ := r.cat.Route(ns)
	w := newWriteCommand(cmd, insertKind, coll, docs)
	targetErr := make([]error, len(docs))
	for i, d := range docs {
		docs[i] = ensureID(d)
		w.shards[i], targetErr[i] = docShard(rt, docs[i])
	}
	// A document without a shard runs alone, to fail where it stands.
	w.alone = func(_ context.Context, i int) (stmtResult, error) { return stmtResult{}, targetErr[i] }
	return r.execute(ctx, w).reply(insertKind), nil
}

// stmtResult is what one statement the router runs alone did.
type stmtResult struct {
	n, modified int64
	upserted    bson.RawValue // the new _id, when the statement inserted
}

func (r *Router) update(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	if coll, _ := cmd.Lookup(cmd.Name).StringValueOK(); cmd.DB == "config" && coll == "collections" {
		return r.setCollectionBalancing(cmd)
	}
	return r.writeStatements(ctx, cmd, updateKind, updateShard, r.updateStmt)
}

// setCollectionBalancing is the one write a mongos takes on config.collections here:
// sh.disableBalancing's and sh.enableBalancing's {q: {_id: ns}, u: {$set: {noBalance:
// bool}}}, which keeps the balancer off a sharded collection or lets it back on.
func (r *Router) setCollectionBalancing(cmd *wire.Command) (bson.Raw, error) {
	stmts, err := statements(cmd, "updates")
	if err != nil {
		return nil, err
	}
	var n, modified int64
	for _, s := range stmts {
		ns, okID := s.Lookup("q", "_id").StringValueOK()
		set, okSet := s.Lookup("u", "$set").DocumentOK()
		elems, _ := set.Elements()
		if !okID || !okSet || len(elems) != 1 || elems[0].Key() != "noBalance" || elems[0].Value().Type != bsontype.Boolean {
			return nil, wire.IllegalOperation("the sandbox router takes only {q: {_id: <namespace>}, u: {$set: {noBalance: <bool>}}} on config.collections (sh.disableBalancing / sh.enableBalancing)")
		}
		found, changed, err := r.cat.SetNoBalance(ns, elems[0].Value().Boolean())
		if err != nil {
			return nil, err
		}
		if found {
			n++
		}
		if changed {
			modified++
		}
	}
	return writeReply(bson.D{{Key: "n", Value: narrowInt(n)}, {Key: "nModified", Value: narrowInt(modified)}}, nil), nil
}

func (r *Router) delete(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	return r.writeStatements(ctx, cmd, deleteKind, deleteShard, r.deleteStmt)
}

// writeStatements runs an update or delete command: shardOf gives the shard a
// statement goes to as it is (in a child batch), alone runs the others; session holds
// the fields that carry a retryable write's session and the statement's id.
func (r *Router) writeStatements(ctx context.Context, cmd *wire.Command, kind writeKind, shardOf func(rt *Routing, stmt bson.Raw) string,
	alone func(ctx context.Context, rt *Routing, db, coll string, stmt bson.Raw, session bson.D) (stmtResult, error)) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	db := cmd.DB
	if err := checkWritable(db); err != nil {
		return nil, err
	}
	stmts, err := statements(cmd, kind.field)
	if err != nil {
		return nil, err
	}
	ns := db + "." + coll
	l := r.lockNS(ns)
	l.RLock()
	defer l.RUnlock()
	for _, s := range stmts {
		if truthy(s.Lookup("upsert")) {
			if _, err := r.cat.EnsureDatabase(db, ""); err != nil {
				return nil, err
			}
			break
		}
	}
	rt, exists := r.cat.Route(ns)
	if !exists {
		return (&writeResult{}).reply(kind), nil // nothing to update or delete in a database that does not exist
	}
	w := newWriteCommand(cmd, kind, coll, stmts)
	for i, s := range stmts {
		w.shards[i] = shardOf(rt, s)
	}
	w.alone = func(ctx context.Context, i int) (stmtResult, error) {
		return alone(ctx, rt, db, coll, stmts[i], w.rw.fields(i))
	}
	return r.execute(ctx, w).reply(kind), nil
}

// updateShard is the one shard an update statement goes to as the client wrote it; ""
// when the router runs it alone (updateStmt), as mongos does a write it broadcasts, a
// single-document one without the shard key, and one that may change the shard key.
func updateShard(rt *Routing, stmt bson.Raw) string {
	if !rt.Sharded() {
		return rt.DB.Primary
	}
	q, _ := stmt.Lookup("q").DocumentOK()
	shards, pinned := target(rt, q)
	if len(shards) != 1 || changesShardKey(rt, q, stmt.Lookup("u"), pinned) {
		return ""
	}
	if !pinned && !truthy(stmt.Lookup("multi")) {
		return "" // found first: the router picks the one document (findOneOwned)
	}
	return shards[0]
}

// updateStmt runs an update statement of a sharded collection that updateShard gives
// no shard: a multi-document update broadcast to the shards, an update that must find
// its document first (no shard key in its filter) or may change its shard key.
func (r *Router) updateStmt(ctx context.Context, rt *Routing, db, coll string, stmt bson.Raw, session bson.D) (stmtResult, error) {
	q, _ := stmt.Lookup("q").DocumentOK()
	u := stmt.Lookup("u")
	multi, upsert := truthy(stmt.Lookup("multi")), truthy(stmt.Lookup("upsert"))
	shards, pinned := target(rt, q)
	changesKey := changesShardKey(rt, q, u, pinned)
	if multi {
		if changesKey {
			return stmtResult{}, &wire.Error{Code: 66, Name: "ImmutableField", Msg: fmt.Sprintf(
				"a multi-document update cannot modify the shard key %s of %s", rt.Pattern, rt.NS)}
		}
		var total stmtResult
		for _, s := range shards {
			res, err := r.sendUpdate(ctx, s, db, coll, stmt, session)
			if err != nil {
				return total, err
			}
			total.n += res.n
			total.modified += res.modified
			if res.upserted.Type != 0 {
				total.upserted = res.upserted
			}
		}
		return total, nil
	}
	if !pinned && upsert {
		return stmtResult{}, upsertNeedsKey(rt)
	}
	pre, shard, found, err := r.findOneOwned(ctx, rt, q, nil)
	if err != nil {
		return stmtResult{}, err
	}
	if !found {
		if pinned {
			return r.sendUpdate(ctx, shards[0], db, coll, stmt, session)
		}
		return stmtResult{}, nil
	}
	pinnedStmt := withField(stmt, "q", rawValue(pinFilter(pre.Lookup("_id"), q)))
	if changesKey {
		if inTxn(session) {
			return stmtResult{}, notInTxn("an update that changes a document's shard key")
		}
		ud, _ := u.DocumentOK()
		post, err := modify.Apply(pre, ud)
		if err != nil {
			return stmtResult{}, err
		}
		moved, err := r.moveDocument(ctx, rt, db, coll, shard, pre, post)
		if err != nil || moved {
			return stmtResult{n: 1, modified: 1}, err
		}
	}
	return r.sendUpdate(ctx, shard, db, coll, pinnedStmt, session)
}

// changesShardKey reports whether an update may change its document's shard key, so
// that the router must compute the new document (and move it when its key moves to
// another shard): not when it is a replacement keeping the key its filter pins.
func changesShardKey(rt *Routing, q bson.Raw, u bson.RawValue, pinned bool) bool {
	return touchesPaths(u, rt.Pattern.Fields()) && !(pinned && keepsKey(rt, q, u))
}

// keepsKey reports whether a replacement keeps the shard key its filter pins, so
// it can go straight to that shard (the common replace-by-document-key case).
func keepsKey(rt *Routing, q bson.Raw, u bson.RawValue) bool {
	doc, ok := u.DocumentOK()
	if !ok || !modify.IsReplacement(doc) {
		return false
	}
	want, ok := equalityKey(rt, q)
	if !ok {
		return false
	}
	if _, err := doc.LookupErr("_id"); err != nil {
		if id, ok := equalityValue(q, "_id"); ok {
			doc = withField(doc, "_id", id)
		}
	}
	got, err := rt.Pattern.Extract(doc)
	return err == nil && shardkey.CompareKeys(got, want) == 0
}

func upsertNeedsKey(rt *Routing) error {
	return &wire.Error{Code: 61, Name: "ShardKeyNotFound", Msg: fmt.Sprintf(
		"Failed to target upsert by query :: could not extract exact shard key: an upsert on %s must give every shard key field %s in its filter", rt.NS, rt.Pattern)}
}

// moveDocument handles an update that changed a document's shard key: when the
// new key belongs to another shard, the result is inserted there and the old
// document deleted from its shard (an insert and a delete entry in two oplogs,
// as MongoDB writes them). It reports false when the document stays put.
func (r *Router) moveDocument(ctx context.Context, rt *Routing, db, coll, shard string, pre, post bson.Raw) (bool, error) {
	to, err := docShard(rt, post)
	if err != nil {
		return false, err
	}
	if to == shard {
		return false, nil
	}
	dst, err := r.backend(to)
	if err != nil {
		return false, err
	}
	src, err := r.backend(shard)
	if err != nil {
		return false, err
	}
	reply, err := dst.run(ctx, db, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: bson.A{post}}})
	if err != nil {
		return false, err
	}
	if we := writeErrorsOf(reply); len(we) > 0 {
		return false, &stmtError{we[0]}
	}
	if err := deleteByID(ctx, src, db, coll, []bson.RawValue{pre.Lookup("_id")}, false); err != nil {
		return false, fmt.Errorf("the document moved to %s but its old copy stays on %s: %w", to, shard, err)
	}
	return true, nil
}

// findOneOwned finds the first document matching a filter the way a find does
// (orphans excluded) and the shard that owns it.
func (r *Router) findOneOwned(ctx context.Context, rt *Routing, filter, sort bson.Raw) (bson.Raw, string, bool, error) {
	it, err := r.openFind(ctx, rt, findQuery{filter: filter, sort: sort, limit: 1})
	if err != nil {
		return nil, "", false, err
	}
	docs, err := drain(ctx, it)
	if err != nil || len(docs) == 0 {
		return nil, "", false, err
	}
	shard, err := docShard(rt, docs[0])
	if err != nil {
		return nil, "", false, err
	}
	return docs[0], shard, true, nil
}

func (r *Router) sendUpdate(ctx context.Context, shard, db, coll string, stmt bson.Raw, session bson.D) (stmtResult, error) {
	reply, err := r.sendStatement(ctx, shard, db, append(bson.D{{Key: "update", Value: coll}, {Key: "updates", Value: bson.A{stmt}}}, session...))
	if err != nil {
		return stmtResult{}, err
	}
	res := stmtResult{}
	res.n, _ = asInt64(reply.Lookup("n"))
	res.modified, _ = asInt64(reply.Lookup("nModified"))
	if arr, ok := reply.Lookup("upserted").ArrayOK(); ok {
		if vals, _ := arr.Values(); len(vals) > 0 {
			res.upserted = vals[0].Document().Lookup("_id")
		}
	}
	return res, nil
}

// sendStatement sends a one-statement write command and turns its write error into
// an error.
func (r *Router) sendStatement(ctx context.Context, shard, db string, cmd bson.D) (bson.Raw, error) {
	b, err := r.backend(shard)
	if err != nil {
		return nil, err
	}
	r.txns.join(shard, cmd)
	reply, err := b.run(ctx, db, cmd)
	if err != nil {
		return nil, err
	}
	if we := writeErrorsOf(reply); len(we) > 0 {
		return nil, &stmtError{we[0]}
	}
	return reply, nil
}

// deleteShard is the one shard a delete statement goes to as the client wrote it; ""
// when the router runs it alone (deleteStmt): a delete it broadcasts, and a
// single-document one without the shard key.
func deleteShard(rt *Routing, stmt bson.Raw) string {
	q, _ := stmt.Lookup("q").DocumentOK()
	limit, _ := asInt64(stmt.Lookup("limit"))
	shards, pinned := target(rt, q)
	if len(shards) != 1 || (!pinned && limit == 1) {
		return ""
	}
	return shards[0]
}

// deleteStmt runs a delete statement that deleteShard gives no shard: a multi-document
// delete broadcast to the shards, or a single-document one that finds its document
// first.
func (r *Router) deleteStmt(ctx context.Context, rt *Routing, db, coll string, stmt bson.Raw, session bson.D) (stmtResult, error) {
	q, _ := stmt.Lookup("q").DocumentOK()
	if limit, _ := asInt64(stmt.Lookup("limit")); limit != 1 {
		shards, _ := target(rt, q)
		var total stmtResult
		for _, s := range shards {
			res, err := r.sendDelete(ctx, s, db, coll, stmt, session)
			if err != nil {
				return total, err
			}
			total.n += res.n
		}
		return total, nil
	}
	pre, shard, found, err := r.findOneOwned(ctx, rt, q, nil)
	if err != nil || !found {
		return stmtResult{}, err
	}
	return r.sendDelete(ctx, shard, db, coll, withField(stmt, "q", rawValue(pinFilter(pre.Lookup("_id"), q))), session)
}

func (r *Router) sendDelete(ctx context.Context, shard, db, coll string, stmt bson.Raw, session bson.D) (stmtResult, error) {
	reply, err := r.sendStatement(ctx, shard, db, append(bson.D{{Key: "delete", Value: coll}, {Key: "deletes", Value: bson.A{stmt}}}, session...))
	if err != nil {
		return stmtResult{}, err
	}
	n, _ := asInt64(reply.Lookup("n"))
	return stmtResult{n: n}, nil
}

func (r *Router) findAndModify(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	if cmd.Lookup("autocommit").Type != 0 {
		return nil, notInTxn("findAndModify")
	}
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	db := cmd.DB
	if err := checkWritable(db); err != nil {
		return nil, err
	}
	query, _ := cmd.Lookup("query").DocumentOK()
	sort, _ := cmd.Lookup("sort").DocumentOK()
	remove, upsert := truthy(cmd.Lookup("remove")), truthy(cmd.Lookup("upsert"))
	u := cmd.Lookup("update")
	ns := db + "." + coll
	l := r.lockNS(ns)
	l.RLock()
	defer l.RUnlock()
	if upsert {
		if _, err := r.cat.EnsureDatabase(db, ""); err != nil {
			return nil, err
		}
	}
	rt, ok := r.cat.Route(ns)
	if !ok {
		return famReply(0, false, nil), nil
	}
	body := without(forwardable(cmd), map[string]bool{cmd.Name: true})
	send := func(shard string, body bson.Raw) (bson.Raw, error) {
		b, err := r.backend(shard)
		if err != nil {
			return nil, err
		}
		full := append(bson.D{{Key: "findAndModify", Value: coll}}, rawElems(body)...)
		return b.run(ctx, db, append(full, retryableOf(cmd).fields(0)...))
	}
	if !rt.Sharded() {
		return send(rt.DB.Primary, body)
	}
	shards, pinned := target(rt, query)
	changesKey := !remove && changesShardKey(rt, query, u, pinned)
	if pinned && !changesKey {
		return send(shards[0], body)
	}
	if !pinned && upsert {
		return nil, upsertNeedsKey(rt)
	}
	pre, shard, found, err := r.findOneOwned(ctx, rt, query, sort)
	if err != nil {
		return nil, err
	}
	if !found {
		if pinned {
			return send(shards[0], body)
		}
		return famReply(0, false, nil), nil
	}
	if changesKey {
		ud, _ := u.DocumentOK()
		post, err := modify.Apply(pre, ud)
		if err != nil {
			return nil, err
		}
		moved, err := r.moveDocument(ctx, rt, db, coll, shard, pre, post)
		if err != nil {
			return nil, err
		}
		if moved {
			value := pre
			if truthy(cmd.Lookup("new")) {
				value = post
			}
			fields, _ := cmd.Lookup("fields").DocumentOK()
			proj, err := parseProjection(fields, false)
			if err != nil {
				return nil, err
			}
			return famReply(1, true, proj.apply(value)), nil
		}
	}
	pinnedBody := withField(without(body, map[string]bool{"sort": true}), "query", rawValue(pinFilter(pre.Lookup("_id"), query)))
	return send(shard, pinnedBody)
}

func famReply(n int32, updatedExisting bool, value bson.Raw) bson.Raw {
	var v any
	if value != nil {
		v = value
	}
	return wire.OK(
		bson.E{Key: "lastErrorObject", Value: bson.D{{Key: "n", Value: n}, {Key: "updatedExisting", Value: updatedExisting}}},
		bson.E{Key: "value", Value: v},
	)
}

// rawElems lists a document's elements as a bson.D of raw values.
func rawElems(doc bson.Raw) bson.D {
	elems, _ := doc.Elements()
	out := make(bson.D, len(elems))
	for i, e := range elems {
		out[i] = bson.E{Key: e.Key(), Value: e.Value()}
	}
	return out
}

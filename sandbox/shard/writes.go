package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Writes: each command takes the shard's write lock, changes FerretDB one document at a
// time by its _id, through an index whatever the _id's type (keyed.go), and appends the
// matching oplog entry before the next document is touched.

// maxInsertChunk is how many documents go to FerretDB per insert command: within one of
// its internal batches, its ordered/unordered semantics hold.
const maxInsertChunk = 100

// writeError is one failed statement of a write command.
type writeError struct {
	index int
	code  int32
	msg   string
}

func (w writeError) doc() bson.D {
	return bson.D{{Key: "index", Value: int32(w.index)}, {Key: "code", Value: w.code}, {Key: "errmsg", Value: w.msg}}
}

// classify returns the MongoDB code, code name and message of a failure.
func classify(err error, ns string) (int32, string, string) {
	var we *wire.Error
	var be *backendError
	switch {
	case errors.As(err, &we):
		return we.Code, we.Name, we.Msg
	case errors.As(err, &be):
		code, name, msg := be.parts()
		if strings.Contains(msg, "UNIQUE constraint failed") {
			return 11000, "DuplicateKey", "E11000 duplicate key error collection: " + ns
		}
		return code, name, msg
	}
	return 1, "InternalError", err.Error()
}

// errorReply is the {ok: 0} reply for a failed command on ns.
func errorReply(err error, ns string) bson.Raw {
	var be *backendError
	if errors.As(err, &be) && !strings.Contains(be.Error(), "UNIQUE constraint failed") {
		return be.reply
	}
	code, name, msg := classify(err, ns)
	return wire.ErrorReply(&wire.Error{Code: code, Name: name, Msg: msg})
}

func notSupportedOnView(ns string) *wire.Error {
	return &wire.Error{Code: 166, Name: "CommandNotSupportedOnView", Msg: "Namespace " + ns + " is a view, not a collection"}
}

func notImplemented(msg string) *wire.Error {
	return &wire.Error{Code: 238, Name: "NotImplemented", Msg: msg}
}

func boolField(cmd *wire.Command, key string, def bool) bool {
	v := cmd.Lookup(key)
	if v.Type == 0 {
		return def
	}
	return truthy(v)
}

func truthy(v bson.RawValue) bool {
	switch v.Type {
	case bsontype.Boolean:
		return v.Boolean()
	case bsontype.Int32, bsontype.Int64, bsontype.Double:
		f, _ := asFloat(v)
		return f != 0
	case 0, bsontype.Null, bsontype.Undefined:
		return false
	}
	return true
}

// asFloat reads a number of any of the usual BSON numeric types.
func asFloat(v bson.RawValue) (float64, bool) {
	switch v.Type {
	case bsontype.Int32:
		return float64(v.Int32()), true
	case bsontype.Int64:
		return float64(v.Int64()), true
	case bsontype.Double:
		return v.Double(), true
	}
	return 0, false
}

// statements returns the documents of a write command's array field.
func statements(cmd *wire.Command, field string) ([]bson.Raw, error) {
	arr, ok := cmd.Lookup(field).ArrayOK()
	if !ok {
		return nil, wire.FailedToParse(fmt.Sprintf("BSON field '%s.%s' is missing but a required field", cmd.Name, field))
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, wire.FailedToParse(err.Error())
	}
	out := make([]bson.Raw, len(vals))
	for i, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, wire.BadValue(fmt.Sprintf("%s.%s.%d must be a document", cmd.Name, field, i))
		}
		out[i] = d
	}
	return out, nil
}

// writeTarget resolves the collection of a write command and refuses local.oplog.rs.
func writeTarget(cmd *wire.Command) (coll string, err error) {
	coll, ok := collName(cmd)
	if !ok {
		return "", wire.BadValue(fmt.Sprintf("%s needs a collection name", cmd.Name))
	}
	if isOplog(cmd.DB, coll) {
		return "", &wire.Error{Code: 20, Name: "IllegalOperation", Msg: "cannot write to local.oplog.rs: the shard's oplog is written by the shard"}
	}
	return coll, nil
}

// ensureCollection makes sure ns exists before a write that creates it: it creates the
// collection in FerretDB (with the _id lookup index, see ensureIDIndex) and logs the
// create entry MongoDB writes for an implicitly created collection.
func (n *node) ensureCollection(ctx context.Context, ns string) (collInfo, error) {
	if ci, ok := n.cat.get(ns); ok && ci.Exists {
		return ci, nil
	}
	db, coll, _ := strings.Cut(ns, ".")
	if _, err := n.be.run(ctx, db, bson.D{{Key: "create", Value: coll}}); err != nil && !hasCode(err, 48) {
		return collInfo{}, err
	}
	if err := n.be.ensureIDIndex(ctx, db, coll); err != nil {
		return collInfo{}, err
	}
	ci, err := n.cat.update(ns, func(ci *collInfo) { ci.Exists = true })
	if err != nil {
		return ci, err
	}
	return ci, n.oplog.append(n.front.forms.createDraft(db, coll, ci.UUID.Data, nil))
}

// hasCode reports whether err is a FerretDB error with the given code.
func hasCode(err error, code int32) bool {
	var be *backendError
	if !errors.As(err, &be) {
		return false
	}
	c, _, _ := be.parts()
	return c == code
}

// createDraft is the entry of a collection's creation, with its _id index spec (which
// names the collection's ns before 4.4).
func (f forms) createDraft(db, coll string, uuid []byte, options bson.D) draft {
	o := append(bson.D{{Key: "create", Value: coll}}, options...)
	idIndex := bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "_id", Value: int32(1)}}}, {Key: "name", Value: "_id_"}}
	if f.specNS {
		idIndex = append(idIndex, bson.E{Key: "ns", Value: db + "." + coll})
	}
	o = append(o, bson.E{Key: "idIndex", Value: idIndex})
	return draft{op: "c", ns: db + ".$cmd", ui: uuid, o: mustMarshal(o)}
}

func mustMarshal(v any) bson.Raw {
	b, err := bson.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("shard: encode %T: %v", v, err))
	}
	return b
}

// docKey is a document's key as oplog entries carry it: _id, then the shard key fields.
func docKey(ci collInfo, doc bson.Raw) bson.Raw {
	idx, b := bsoncore.AppendDocumentStart(nil)
	b = appendValue(b, "_id", doc.Lookup("_id"))
	if len(ci.Key) > 0 {
		fields, _ := ci.Key.Elements()
		for _, f := range fields {
			if f.Key() == "_id" {
				continue
			}
			v, err := doc.LookupErr(strings.Split(f.Key(), ".")...)
			if err != nil {
				continue
			}
			b = appendValue(b, f.Key(), v)
		}
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

func appendValue(b []byte, key string, v bson.RawValue) []byte {
	return bsoncore.AppendValueElement(b, key, bsoncore.Value{Type: v.Type, Data: v.Value})
}

// withIDFirst returns doc with _id as its first field, generating an ObjectId when it
// has none (as MongoDB stores documents).
func withIDFirst(doc bson.Raw) (bson.Raw, bson.RawValue) {
	elems, _ := doc.Elements()
	if len(elems) > 0 && elems[0].Key() == "_id" {
		return doc, elems[0].Value()
	}
	id, err := doc.LookupErr("_id")
	if err != nil {
		oid := primitive.NewObjectID()
		id = bson.RawValue{Type: bsontype.ObjectID, Value: oid[:]}
	}
	idx, b := bsoncore.AppendDocumentStart(nil)
	b = appendValue(b, "_id", id)
	for _, e := range elems {
		if e.Key() != "_id" {
			b = append(b, e...)
		}
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b, id
}

// ---- insert ----

func (n *node) insert(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, err := writeTarget(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if cmd.DB == "local" {
		return n.passthrough(ctx, cmd)
	}
	docs, err := statements(cmd, "documents")
	if err != nil {
		return wire.ErrorReply(err)
	}
	ordered := boolField(cmd, "ordered", true)
	fromMigrate := boolField(cmd, "fromMigrate", false)
	ns := cmd.DB + "." + coll
	for i := range docs {
		docs[i], _ = withIDFirst(docs[i])
	}

	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	if ci, ok := n.cat.get(ns); ok && ci.isView() {
		return wire.ErrorReply(notSupportedOnView(ns))
	}
	rw, err := n.retryableOf(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	// A retried statement the session already wrote counts as inserted, once.
	var pending []bson.Raw
	var stmts []int
	count := 0
	for i, d := range docs {
		if rw != nil && rw.written(i) {
			count++
			continue
		}
		pending = append(pending, d)
		stmts = append(stmts, i)
	}
	if len(pending) == 0 {
		return writeReply(count, -1, nil, nil)
	}
	ci, err := n.ensureCollection(ctx, ns)
	if err != nil {
		return errorReply(err, ns)
	}
	inserted, werrs := n.insertDocs(ctx, cmd.DB, coll, pending, ordered)
	for i := range werrs {
		werrs[i].index = stmts[werrs[i].index]
	}
	var done []bson.Raw
	var doneStmts []int
	for i, d := range pending {
		if inserted[i] {
			done = append(done, d)
			doneStmts = append(doneStmts, stmts[i])
		}
	}
	ts, err := n.oplog.write(n.insertDrafts(ci, done, doneStmts, fromMigrate, rw)...)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if rw != nil && len(done) > 0 {
		rw.wrote(ts, doneStmts...)
		n.saveSession(rw)
	}
	return writeReply(count+len(done), -1, nil, werrs)
}

// vectoredInsertBatch is how many documents 8.0 groups in one applyOps
// (internalInsertMaxBatchSize).
const vectoredInsertBatch = 64

// insertDrafts are the entries of inserted documents (stmts: their statements): one
// insert each, or from 8.0, for several documents, applyOps entries of up to 64 inserts
// marked multiOpType 1.
func (n *node) insertDrafts(ci collInfo, docs []bson.Raw, stmts []int, fromMigrate bool, rw *retryable) []draft {
	f := n.front.forms
	var drafts []draft
	if !f.vectoredInserts || len(docs) < 2 || fromMigrate {
		for k, d := range docs {
			dr := f.insertDraft(ci, d, fromMigrate)
			if rw != nil {
				dr.session = rw.session(stmts[k], k > 0)
			}
			drafts = append(drafts, dr)
		}
		return drafts
	}
	for start := 0; start < len(docs); start += vectoredInsertBatch {
		end := min(start+vectoredInsertBatch, len(docs))
		ops := make(bson.A, 0, end-start)
		for k := start; k < end; k++ {
			op := bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: ci.NS}, {Key: "ui", Value: ci.UUID},
				{Key: "o", Value: docs[k]}, {Key: "o2", Value: docKey(ci, docs[k])}}
			if rw != nil {
				op = append(op, bson.E{Key: "stmtId", Value: rw.stmtID(stmts[k])})
			}
			ops = append(ops, op)
		}
		dr := draft{op: "c", ns: "admin.$cmd", o: mustMarshal(bson.D{{Key: "applyOps", Value: ops}}), multiOpType: 1}
		if rw != nil {
			dr.session = rw.session(stmts[start], start > 0)
			dr.session.stmtID = noStmtID
		}
		drafts = append(drafts, dr)
	}
	return drafts
}

// insertDocs inserts documents into FerretDB in chunks and reports which were inserted.
func (n *node) insertDocs(ctx context.Context, db, coll string, docs []bson.Raw, ordered bool) ([]bool, []writeError) {
	ns := db + "." + coll
	ok := make([]bool, len(docs))
	var werrs []writeError
	for start := 0; start < len(docs); {
		end, size := start, 0
		for end < len(docs) && end-start < maxInsertChunk && (end == start || size+len(docs[end]) <= 8<<20) {
			size += len(docs[end])
			end++
		}
		chunk := make(bson.A, 0, end-start)
		for _, d := range docs[start:end] {
			chunk = append(chunk, d)
		}
		reply, err := n.be.run(ctx, db, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: chunk}, {Key: "ordered", Value: ordered}})
		if err != nil {
			code, _, msg := classify(err, ns)
			if ordered {
				return ok, append(werrs, writeError{start, code, msg})
			}
			for i := start; i < end; i++ {
				werrs = append(werrs, writeError{i, code, msg})
			}
			start = end
			continue
		}
		failed := map[int]bool{}
		first := end - start
		wes := values(reply.Lookup("writeErrors"))
		for _, v := range wes {
			we := document(v)
			i64, _ := we.Lookup("index").AsInt64OK()
			i := int(i64)
			code, _ := we.Lookup("code").AsInt32OK()
			msg, _ := we.Lookup("errmsg").StringValueOK()
			failed[i] = true
			first = min(first, i)
			werrs = append(werrs, writeError{start + i, code, msg})
		}
		for i := range end - start {
			ok[start+i] = !failed[i] && (!ordered || i < first)
		}
		if ordered && len(failed) > 0 {
			return ok, werrs
		}
		start = end
	}
	return ok, werrs
}

// writeReply is MongoDB's answer to insert/update/delete; nModified < 0 leaves it out.
func writeReply(count, nModified int, upserted bson.A, werrs []writeError) bson.Raw {
	d := bson.D{{Key: "n", Value: int32(count)}}
	if nModified >= 0 {
		d = append(d, bson.E{Key: "nModified", Value: int32(nModified)})
	}
	if len(upserted) > 0 {
		d = append(d, bson.E{Key: "upserted", Value: upserted})
	}
	if len(werrs) > 0 {
		arr := make(bson.A, len(werrs))
		for i, w := range werrs {
			arr[i] = w.doc()
		}
		d = append(d, bson.E{Key: "writeErrors", Value: arr})
	}
	return wire.OK(d...)
}

// ---- targeting ----

// targets finds the documents a filter selects (at most limit when limit > 0). When the
// filter pins _id to a few values ({_id: v}, {_id: v, <shard key>: k}, {_id: {$in: ...}})
// it looks those documents up by _id (keyed.go) and checks the rest of the filter in
// Go; otherwise FerretDB evaluates the filter. The matcher is nil
// when the filter is beyond the Go matcher.
func (n *node) targets(ctx context.Context, db, coll string, filter, sort bson.Raw, limit int64) ([]bson.Raw, *match.Matcher, error) {
	m, err := match.Compile(filter)
	if err != nil {
		m = nil
	} else if ids, ok := m.IDValues(); ok && (len(sort) == 0 || len(ids) == 1 || idSortOrder(sort) != 0) {
		dir := 0
		if len(ids) > 1 {
			dir = idSortOrder(sort)
		}
		var docs []bson.Raw
		seen := map[string]bool{}
	ids:
		for _, id := range ids {
			found, err := n.be.fetchByID(ctx, db, coll, id)
			if err != nil {
				return nil, m, err
			}
			for _, doc := range found {
				// {_id: {$in: [1, 1.0]}} names one document twice.
				got := doc.Lookup("_id")
				if k := string(rune(got.Type)) + string(got.Value); !seen[k] && m.Match(doc) {
					seen[k] = true
					docs = append(docs, doc)
					if dir == 0 && limit > 0 && int64(len(docs)) >= limit {
						break ids
					}
				}
			}
		}
		if dir != 0 {
			// Sorted on _id alone, as a mongod walks its _id index between the
			// values: every document found, in _id order, then the limit.
			slices.SortFunc(docs, func(a, b bson.Raw) int {
				return dir * shardkey.Compare(rawValue(a.Lookup("_id")), rawValue(b.Lookup("_id")))
			})
			if limit > 0 && int64(len(docs)) > limit {
				docs = docs[:limit]
			}
		}
		return docs, m, nil
	}
	docs, err := n.be.find(ctx, db, coll, filter, sort, limit)
	return docs, m, err
}

// idSortOrder is 1 or -1 when sort orders by _id alone, ascending or descending,
// else 0.
func idSortOrder(sort bson.Raw) int {
	elems, err := sort.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "_id" {
		return 0
	}
	switch d, ok := asFloat(elems[0].Value()); {
	case ok && d == 1:
		return 1
	case ok && d == -1:
		return -1
	}
	return 0
}

// rawValue is v as bsoncore's value.
func rawValue(v bson.RawValue) bsoncore.Value { return bsoncore.Value{Type: v.Type, Data: v.Value} }

// ---- update ----

type updateResult struct {
	matched, modified int
	upsertedID        bson.RawValue
}

func (n *node) update(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, err := writeTarget(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if cmd.DB == "local" {
		return n.passthrough(ctx, cmd)
	}
	stmts, err := statements(cmd, "updates")
	if err != nil {
		return wire.ErrorReply(err)
	}
	ordered := boolField(cmd, "ordered", true)
	ns := cmd.DB + "." + coll

	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	rw, err := n.retryableOf(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	var plain []*plainUpsert
	if ci := n.cat.lookup(ns); !ci.isView() {
		plain = plainUpserts(stmts, rw)
	}
	if err := n.dropPresent(ctx, cmd.DB, coll, plain); err != nil {
		return errorReply(err, ns)
	}
	var out updateOutcome
	for i := 0; i < len(stmts); {
		if end := upsertRun(plain, i); end-i >= minUpsertRun {
			next, failed := n.insertUpserts(ctx, cmd.DB, coll, plain, i, end, rw, &out)
			if failed && ordered {
				break
			}
			i = next
			continue
		}
		res, err := n.updateStatement(ctx, cmd.DB, coll, stmts[i], rw, i)
		if out.note(i, res, err, ns) && ordered {
			break
		}
		i++
	}
	n.saveSession(rw)
	return writeReply(out.matched, out.modified, out.upserted, out.werrs)
}

// errMultiRetryable is MongoDB's refusal of a retryable write that may touch several
// documents.
var errMultiRetryable = &wire.Error{Code: 72, Name: "InvalidOptions", Msg: "Cannot use (or request) retryable writes with multi=true"}

// isReplacement reports whether an update is a replacement document (not operators,
// not a pipeline).
func isReplacement(u bson.RawValue) bool {
	d, ok := u.DocumentOK()
	if !ok {
		return false
	}
	first, err := d.IndexErr(0)
	return err != nil || !strings.HasPrefix(first.Key(), "$")
}

// updateStatement runs the i-th statement of an update command (rw: its session when it
// is a retryable write).
func (n *node) updateStatement(ctx context.Context, db, coll string, stmt bson.Raw, rw *retryable, i int) (updateResult, error) {
	var res updateResult
	ns := db + "." + coll
	q, _ := stmt.Lookup("q").DocumentOK()
	u := stmt.Lookup("u")
	if u.Type != bsontype.EmbeddedDocument && u.Type != bsontype.Array {
		return res, wire.FailedToParse("update statement needs 'u' as a document or a pipeline")
	}
	if u.Type == bsontype.Array {
		// FerretDB refuses pipelines when it applies one to a document; a server refuses
		// the form before it matches anything, so this does too.
		return res, notImplemented("pipeline updates are not supported by the sandbox (FerretDB)")
	}
	for _, f := range []string{"collation", "c"} {
		if stmt.Lookup(f).Type != 0 {
			return res, notImplemented(fmt.Sprintf("update option %q is not supported by the sandbox (FerretDB)", f))
		}
	}
	multi := truthy(stmt.Lookup("multi"))
	upsert := truthy(stmt.Lookup("upsert"))
	replacement := isReplacement(u)
	if multi && replacement {
		return res, wire.FailedToParse("multi update is not supported for replacement-style update")
	}
	if rw != nil && multi {
		return res, errMultiRetryable
	}
	if rw != nil && rw.written(i) {
		res.matched, res.modified = 1, 1 // a retry: the update is already in the oplog
		return res, nil
	}
	ci := n.cat.lookup(ns)
	if ci.isView() {
		return res, notSupportedOnView(ns)
	}
	limit := int64(1)
	if multi {
		limit = 0
	}
	docs, m, err := n.targets(ctx, db, coll, q, nil, limit)
	if err != nil {
		return res, err
	}
	arrayFilters := stmt.Lookup("arrayFilters")
	for _, pre := range docs {
		if err := n.txnLocked(ns, pre.Lookup("_id")); err != nil {
			return res, err
		}
		post, err := n.be.modifyByID(ctx, db, coll, pre.Lookup("_id"), u, arrayFilters)
		if err != nil {
			return res, err
		}
		res.matched++
		if bytes.Equal(pre, post) {
			continue
		}
		res.modified++
		d := n.front.forms.updateDraft(ci, pre, post, replacement)
		if rw != nil {
			d.session = rw.session(i, false)
		}
		ts, err := n.oplog.write(d)
		if err != nil {
			return res, err
		}
		if rw != nil {
			rw.wrote(ts, i)
		}
	}
	if len(docs) > 0 || !upsert {
		return res, nil
	}
	var sess *stmtSession
	if rw != nil {
		sess = rw.session(i, false)
	}
	post, ts, err := n.upsert(ctx, db, coll, m, q, u, arrayFilters, sess)
	if err != nil {
		return res, err
	}
	if rw != nil {
		rw.wrote(ts, i)
	}
	res.upsertedID = post.Lookup("_id")
	return res, nil
}

// updateDraft is the entry of an update: the whole new document for a replacement,
// else the version's update form.
func (f forms) updateDraft(ci collInfo, pre, post bson.Raw, replacement bool) draft {
	o := post
	switch {
	case replacement:
	case f.update == diffV2:
		o = updateEntryObject(pre, post)
	default:
		o = modifierEntryObject(pre, post, f.update == modifierV1)
	}
	return draft{op: "u", ns: ci.NS, ui: ci.UUID.Data, o: o, o2: docKey(ci, pre), post: post}
}

// insertDraft is the entry of an insert; from 6.0 it carries the document key in o2.
func (f forms) insertDraft(ci collInfo, doc bson.Raw, fromMigrate bool) draft {
	d := draft{op: "i", ns: ci.NS, ui: ci.UUID.Data, o: doc, fromMigrate: fromMigrate}
	if f.insertKey {
		d.o2 = docKey(ci, doc)
	}
	return d
}

// upsert creates the document an upsert inserts when nothing matched, logging its
// insert (after the collection's creation when the upsert creates it; sess: the session
// fields of a retryable write) and reporting the insert's ts.
func (n *node) upsert(ctx context.Context, db, coll string, m *match.Matcher, q bson.Raw, u, arrayFilters bson.RawValue, sess *stmtSession) (bson.Raw, primitive.Timestamp, error) {
	ns := db + "." + coll
	ci, err := n.ensureCollection(ctx, ns)
	if err != nil {
		return nil, primitive.Timestamp{}, err
	}
	var post bson.Raw
	switch {
	case m == nil:
		post, err = n.upsertByBackend(ctx, db, coll, q, u, arrayFilters)
	case isReplacement(u):
		post, err = n.upsertReplacement(ctx, db, coll, m, u.Document())
	default:
		post, err = n.upsertWithOperators(ctx, db, coll, m, u, arrayFilters)
	}
	if err != nil {
		return nil, primitive.Timestamp{}, err
	}
	d := n.front.forms.insertDraft(ci, post, false)
	d.session = sess
	ts, err := n.oplog.write(d)
	return post, ts, err
}

// upsertByBackend lets FerretDB build the upserted document, for filters the Go matcher
// cannot read (FerretDB then scans the collection).
func (n *node) upsertByBackend(ctx context.Context, db, coll string, q bson.Raw, u, arrayFilters bson.RawValue) (bson.Raw, error) {
	stmt := bson.D{{Key: "q", Value: orEmpty(q)}, {Key: "u", Value: u}, {Key: "upsert", Value: true}}
	if arrayFilters.Type != 0 {
		stmt = append(stmt, bson.E{Key: "arrayFilters", Value: arrayFilters})
	}
	reply, err := n.be.run(ctx, db, bson.D{{Key: "update", Value: coll}, {Key: "updates", Value: bson.A{stmt}}})
	if err != nil {
		return nil, err
	}
	if err := firstWriteError(reply); err != nil {
		return nil, err
	}
	up, err := reply.LookupErr("upserted", "0", "_id")
	if err != nil {
		return nil, fmt.Errorf("FerretDB did not report the upserted document of %s.%s", db, coll)
	}
	docs, err := n.be.fetchByID(ctx, db, coll, up)
	if err == nil && len(docs) == 0 {
		err = fmt.Errorf("FerretDB lost the upserted document of %s.%s", db, coll)
	}
	if err != nil {
		return nil, err
	}
	return docs[0], nil
}

func firstWriteError(reply bson.Raw) error {
	we, err := reply.LookupErr("writeErrors", "0")
	if err != nil {
		return nil
	}
	d := document(we)
	code, _ := d.Lookup("code").AsInt32OK()
	msg, _ := d.Lookup("errmsg").StringValueOK()
	name := "BadValue"
	if code == 11000 {
		name = "DuplicateKey"
	}
	return &wire.Error{Code: code, Name: name, Msg: msg}
}

func (n *node) insertOne(ctx context.Context, db, coll string, doc bson.Raw) error {
	reply, err := n.be.run(ctx, db, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: bson.A{doc}}})
	if err != nil {
		return err
	}
	return firstWriteError(reply)
}

// upsertReplacement inserts the replacement document, with the filter's _id when it
// has none of its own.
func (n *node) upsertReplacement(ctx context.Context, db, coll string, m *match.Matcher, repl bson.Raw) (bson.Raw, error) {
	var doc bson.Raw
	if id, ok := m.IDEquality(); ok {
		doc = replacementWithID(repl, id)
	} else {
		doc, _ = withIDFirst(repl)
	}
	if err := n.insertOne(ctx, db, coll, doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// replacementWithID is the document a replace-upsert whose filter pins _id to id
// inserts: the replacement, with id first when it has no _id of its own.
func replacementWithID(repl bson.Raw, id bson.RawValue) bson.Raw {
	if _, err := repl.LookupErr("_id"); err != nil {
		idx, b := bsoncore.AppendDocumentStart(nil)
		b = appendValue(b, "_id", id)
		elems, _ := repl.Elements()
		for _, e := range elems {
			b = append(b, e...)
		}
		b, _ = bsoncore.AppendDocumentEnd(b, idx)
		repl = b
	}
	doc, _ := withIDFirst(repl)
	return doc
}

// upsertWithOperators inserts the document seeded from the filter's equality fields,
// then applies the update operators to it by _id, $setOnInsert included (as $set).
func (n *node) upsertWithOperators(ctx context.Context, db, coll string, m *match.Matcher, u, arrayFilters bson.RawValue) (bson.Raw, error) {
	seed, err := seedDocument(m.Equalities())
	if err != nil {
		return nil, err
	}
	seed, id := withIDFirst(seed)
	if err := n.insertOne(ctx, db, coll, seed); err != nil {
		return nil, err
	}
	ops, any := setOnInsertAsSet(u)
	if !any {
		return seed, nil
	}
	post, err := n.be.modifyByID(ctx, db, coll, id, ops, arrayFilters)
	if err != nil {
		if _, errDel := n.be.deleteByID(ctx, db, coll, id); errDel != nil {
			return nil, fmt.Errorf("%w (and removing the half-made upsert failed: %v)", err, errDel)
		}
		return nil, err
	}
	return post, nil
}

// setOnInsertAsSet folds $setOnInsert into $set (an upsert that inserts applies both)
// and reports whether any operator is left to apply.
func setOnInsertAsSet(u bson.RawValue) (bson.RawValue, bool) {
	d, ok := u.DocumentOK()
	if !ok {
		return u, true
	}
	soi, hasSOI := d.Lookup("$setOnInsert").DocumentOK()
	elems, _ := d.Elements()
	idx, b := bsoncore.AppendDocumentStart(nil)
	wroteSet, anyField := false, false
	appendSet := func(set bson.Raw) {
		var si int32
		si, b = bsoncore.AppendDocumentElementStart(b, "$set")
		for _, src := range []bson.Raw{set, soi} {
			fs, _ := src.Elements()
			for _, f := range fs {
				b = append(b, f...)
				anyField = true
			}
		}
		b, _ = bsoncore.AppendDocumentEnd(b, si)
		wroteSet = true
	}
	for _, e := range elems {
		switch e.Key() {
		case "$setOnInsert":
		case "$set":
			set, _ := e.Value().DocumentOK()
			appendSet(set)
		default:
			b = append(b, e...)
			if fs, ok := e.Value().DocumentOK(); ok {
				if els, _ := fs.Elements(); len(els) > 0 {
					anyField = true
				}
			}
		}
	}
	if hasSOI && !wroteSet {
		appendSet(nil)
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return bson.RawValue{Type: bsontype.EmbeddedDocument, Value: b}, anyField
}

// seedDocument builds the document an upsert starts from: the filter's equality fields,
// dotted paths expanded into embedded documents.
func seedDocument(eqs []match.Equality) (bson.Raw, error) {
	root := &seedNode{}
	for _, e := range eqs {
		if err := root.set(strings.Split(e.Path, "."), e.Value); err != nil {
			return nil, err
		}
	}
	return root.encode(), nil
}

type seedNode struct {
	keys     []string
	leaves   map[string]bson.RawValue
	children map[string]*seedNode
}

func (s *seedNode) set(path []string, v bson.RawValue) error {
	k := path[0]
	if s.leaves == nil {
		s.leaves, s.children = map[string]bson.RawValue{}, map[string]*seedNode{}
	}
	_, isLeaf := s.leaves[k]
	child, isChild := s.children[k]
	if len(path) == 1 {
		if isLeaf || isChild {
			return &wire.Error{Code: 54, Name: "NotSingleValueField", Msg: fmt.Sprintf("cannot infer query fields to set, path '%s' is matched twice", k)}
		}
		s.leaves[k] = v
		s.keys = append(s.keys, k)
		return nil
	}
	if isLeaf {
		return &wire.Error{Code: 54, Name: "NotSingleValueField", Msg: fmt.Sprintf("cannot infer query fields to set, path '%s' is matched twice", k)}
	}
	if !isChild {
		child = &seedNode{}
		s.children[k] = child
		s.keys = append(s.keys, k)
	}
	return child.set(path[1:], v)
}

func (s *seedNode) encode() bson.Raw {
	idx, b := bsoncore.AppendDocumentStart(nil)
	for _, k := range s.keys {
		if v, ok := s.leaves[k]; ok {
			b = appendValue(b, k, v)
		} else {
			b = bsoncore.AppendDocumentElement(b, k, s.children[k].encode())
		}
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// ---- delete ----

func (n *node) delete(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, err := writeTarget(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if cmd.DB == "local" {
		return n.passthrough(ctx, cmd)
	}
	stmts, err := statements(cmd, "deletes")
	if err != nil {
		return wire.ErrorReply(err)
	}
	ordered := boolField(cmd, "ordered", true)
	fromMigrate := boolField(cmd, "fromMigrate", false)
	ns := cmd.DB + "." + coll

	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	rw, err := n.retryableOf(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	ci := n.cat.lookup(ns)
	deleted := 0
	var werrs []writeError
	for i, s := range stmts {
		k, err := n.deleteStatement(ctx, ci, s, fromMigrate, rw, i)
		deleted += k
		if err != nil {
			code, _, msg := classify(err, ns)
			werrs = append(werrs, writeError{i, code, msg})
			if ordered {
				break
			}
		}
	}
	n.saveSession(rw)
	return writeReply(deleted, -1, nil, werrs)
}

// deleteBatchDocs is how many deletes a batched delete groups in one applyOps
// (batchedDeletesTargetBatchDocs).
const deleteBatchDocs = 100

// deleteStatement runs the i-th statement of a delete command (rw: its session when it
// is a retryable write). From 6.1 a multi-document delete logs its deletes in batches
// (see forms.batchedDeletes).
func (n *node) deleteStatement(ctx context.Context, ci collInfo, stmt bson.Raw, fromMigrate bool, rw *retryable, i int) (int, error) {
	if ci.isView() {
		return 0, notSupportedOnView(ci.NS)
	}
	if stmt.Lookup("collation").Type != 0 {
		return 0, notImplemented("delete option \"collation\" is not supported by the sandbox (FerretDB)")
	}
	db, coll, _ := strings.Cut(ci.NS, ".")
	q, _ := stmt.Lookup("q").DocumentOK()
	limit := int64(0)
	if truthy(stmt.Lookup("limit")) {
		limit = 1
	}
	if rw != nil && limit == 0 {
		return 0, errMultiRetryable
	}
	if rw != nil && rw.written(i) {
		return 1, nil // a retry: the delete is already in the oplog
	}
	docs, _, err := n.targets(ctx, db, coll, q, nil, limit)
	if err != nil {
		return 0, err
	}
	batched := limit == 0 && !fromMigrate && n.front.forms.batchedDeletes
	var batch []draft
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		d := batchDraft(batch)
		batch = batch[:0]
		return n.oplog.append(d)
	}
	deleted := 0
	for _, pre := range docs {
		if err := n.txnLocked(ci.NS, pre.Lookup("_id")); err != nil {
			return deleted, errors.Join(err, flush())
		}
		ok, err := n.be.deleteByID(ctx, db, coll, pre.Lookup("_id"))
		if err != nil {
			return deleted, errors.Join(err, flush())
		}
		if !ok {
			continue
		}
		deleted++
		d := draft{op: "d", ns: ci.NS, ui: ci.UUID.Data, o: docKey(ci, pre), fromMigrate: fromMigrate}
		if batched {
			if batch = append(batch, d); len(batch) == deleteBatchDocs {
				if err := flush(); err != nil {
					return deleted, err
				}
			}
			continue
		}
		if rw != nil {
			d.session = rw.session(i, false)
		}
		ts, err := n.oplog.write(d)
		if err != nil {
			return deleted, err
		}
		if rw != nil {
			rw.wrote(ts, i)
		}
	}
	return deleted, flush()
}

// batchDraft is the entry of a batch of deletes: one applyOps without lsid (a batch of
// one is a plain delete).
func batchDraft(batch []draft) draft {
	if len(batch) == 1 {
		return batch[0]
	}
	ops := make(bson.A, len(batch))
	for i, d := range batch {
		ops[i] = bson.D{{Key: "op", Value: d.op}, {Key: "ns", Value: d.ns},
			{Key: "ui", Value: primitive.Binary{Subtype: 4, Data: d.ui}}, {Key: "o", Value: d.o}}
	}
	return draft{op: "c", ns: "admin.$cmd", o: mustMarshal(bson.D{{Key: "applyOps", Value: ops}})}
}

// ---- findAndModify ----

func (n *node) findAndModify(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, err := writeTarget(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if cmd.DB == "local" {
		return n.passthrough(ctx, cmd)
	}
	ns := cmd.DB + "." + coll
	query, _ := cmd.Lookup("query").DocumentOK()
	sort, _ := cmd.Lookup("sort").DocumentOK()
	remove := boolField(cmd, "remove", false)
	update := cmd.Lookup("update")
	returnNew := boolField(cmd, "new", false)
	upsert := boolField(cmd, "upsert", false)
	arrayFilters := cmd.Lookup("arrayFilters")
	var proj *projection
	if f, ok := cmd.Lookup("fields").DocumentOK(); ok {
		if proj, err = compileProjection(f); err != nil {
			return wire.ErrorReply(err)
		}
	}
	switch {
	case remove && update.Type != 0:
		return wire.ErrorReply(wire.FailedToParse("Cannot specify both an update and remove=true"))
	case !remove && update.Type == 0:
		return wire.ErrorReply(wire.FailedToParse("Either an update or remove=true must be specified"))
	case remove && upsert:
		return wire.ErrorReply(wire.FailedToParse("Cannot specify both upsert=true and remove=true"))
	}
	for _, f := range []string{"collation", "let"} {
		if cmd.Lookup(f).Type != 0 {
			return wire.ErrorReply(notImplemented(fmt.Sprintf("findAndModify option %q is not supported by the sandbox (FerretDB)", f)))
		}
	}

	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	rw, err := n.retryableOf(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if rw != nil && rw.written(0) {
		// A driver retries a findAndModify whose answer it lost: answer it again.
		if rw.rec.reply != nil {
			return rw.rec.reply
		}
		return wire.ErrorReply(&wire.Error{Code: 217, Name: "IncompleteTransactionHistory",
			Msg: "the shard restarted since this findAndModify ran and no longer has its answer"})
	}
	remember := func(reply bson.Raw) bson.Raw {
		if rw != nil {
			rw.rec.reply = reply
		}
		return reply
	}
	ci := n.cat.lookup(ns)
	if ci.isView() {
		return wire.ErrorReply(notSupportedOnView(ns))
	}
	docs, m, err := n.targets(ctx, cmd.DB, coll, query, sort, 1)
	if err != nil {
		return errorReply(err, ns)
	}
	value := func(doc bson.Raw) any {
		if doc == nil {
			return nil
		}
		return proj.apply(doc)
	}
	lastError := bson.D{{Key: "n", Value: int32(0)}}
	if remove {
		if len(docs) == 0 {
			return wire.OK(bson.E{Key: "lastErrorObject", Value: lastError}, bson.E{Key: "value", Value: nil})
		}
		pre := docs[0]
		ok, err := n.be.deleteByID(ctx, cmd.DB, coll, pre.Lookup("_id"))
		if err != nil {
			return errorReply(err, ns)
		}
		if ok {
			if err := n.logWithImage(ctx, draft{op: "d", ns: ns, ui: ci.UUID.Data, o: docKey(ci, pre)}, rw, "preImage", pre); err != nil {
				return relay(nil, err)
			}
			lastError[0].Value = int32(1)
		}
		return remember(wire.OK(bson.E{Key: "lastErrorObject", Value: lastError}, bson.E{Key: "value", Value: value(pre)}))
	}
	if len(docs) > 0 {
		pre := docs[0]
		post, err := n.be.modifyByID(ctx, cmd.DB, coll, pre.Lookup("_id"), update, arrayFilters)
		if err != nil {
			return errorReply(err, ns)
		}
		if !bytes.Equal(pre, post) {
			kind, image := "preImage", pre
			if returnNew {
				kind, image = "postImage", post
			}
			if err := n.logWithImage(ctx, n.front.forms.updateDraft(ci, pre, post, isReplacement(update)), rw, kind, image); err != nil {
				return relay(nil, err)
			}
		}
		lastError = bson.D{{Key: "n", Value: int32(1)}, {Key: "updatedExisting", Value: true}}
		out := pre
		if returnNew {
			out = post
		}
		return remember(wire.OK(bson.E{Key: "lastErrorObject", Value: lastError}, bson.E{Key: "value", Value: value(out)}))
	}
	if !upsert {
		lastError = append(lastError, bson.E{Key: "updatedExisting", Value: false})
		return wire.OK(bson.E{Key: "lastErrorObject", Value: lastError}, bson.E{Key: "value", Value: nil})
	}
	var sess *stmtSession
	if rw != nil {
		sess = rw.session(0, false)
	}
	post, ts, err := n.upsert(ctx, cmd.DB, coll, m, query, update, arrayFilters, sess)
	if err != nil {
		return errorReply(err, ns)
	}
	if rw != nil {
		rw.wrote(ts, 0)
		n.saveSession(rw)
	}
	lastError = bson.D{{Key: "n", Value: int32(1)}, {Key: "updatedExisting", Value: false}, {Key: "upserted", Value: post.Lookup("_id")}}
	var out bson.Raw
	if returnNew {
		out = post
	}
	return remember(wire.OK(bson.E{Key: "lastErrorObject", Value: lastError}, bson.E{Key: "value", Value: value(out)}))
}

// logWithImage logs the update or delete of a findAndModify. A retryable one keeps the
// document it answers with (its pre- or post-image, kind) so that a retry can answer
// again: before 5.1 in a no-op entry just before it, to which it points
// (preImageOpTime / postImageOpTime); from 5.1 in config.image_collection, the entry
// marked needsRetryImage.
func (n *node) logWithImage(ctx context.Context, d draft, rw *retryable, kind string, image bson.Raw) error {
	if rw == nil {
		return n.oplog.append(d)
	}
	f := n.front.forms
	d.session = rw.session(0, false)
	d.session.image = kind
	drafts := []draft{d}
	if !f.imageCollection {
		note := draft{op: "n", ns: d.ns, ui: d.ui, o: image, session: rw.session(0, false)}
		note.session.noPrev = !f.imageNoopLinked
		drafts = []draft{note, d}
	}
	ts, err := n.oplog.write(drafts...)
	if err != nil {
		return err
	}
	rw.wrote(ts, 0)
	n.saveSession(rw)
	if f.imageCollection {
		return n.saveImage(ctx, rw, ts, kind, image)
	}
	return nil
}

// saveImage keeps a retryable findAndModify's image in config.image_collection, as 5.1
// and later do: {_id: lsid, txnNum, ts, imageKind, image, invalidated}.
func (n *node) saveImage(ctx context.Context, rw *retryable, ts primitive.Timestamp, kind string, image bson.Raw) error {
	err := n.upsertByID(ctx, "config", "image_collection", bson.D{
		{Key: "_id", Value: rw.lsid}, {Key: "txnNum", Value: rw.txnNumber}, {Key: "ts", Value: ts},
		{Key: "imageKind", Value: kind}, {Key: "image", Value: image}, {Key: "invalidated", Value: false},
	})
	if err != nil {
		return fmt.Errorf("record the image in config.image_collection: %w", err)
	}
	return nil
}

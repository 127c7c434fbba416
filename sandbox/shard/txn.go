package shard

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/modify"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Transactions, as a 4.2+ shard runs them for mongos. The router forwards a
// transaction's writes (autocommit false, with the client's lsid and txnNumber); the
// shard checks and computes each one against the committed data and keeps it in memory,
// changing nothing. A single-shard transaction then commits with commitTransaction: the
// writes are applied and logged as one applyOps entry (several, chained by prevOpTime,
// when they pass TxnOpsPerEntry). A cross-shard one is first prepared
// (prepareTransaction): its operations are logged in applyOps entries chained by
// prevOpTime, the first with the null optime, the last marked prepare: true (the others
// partialTxn: true), and the transaction waits, its documents unchanged, until
// commitTransaction with the coordinator's commitTimestamp applies them and logs
// {commitTransaction: 1, commitTimestamp}, or abortTransaction logs
// {abortTransaction: 1}. config.transactions records the session's transaction as
// MongoDB's SessionTxnRecord does: state prepared with startOpTime (its first entry)
// while prepared, then committed or aborted (startOpTime gone); every member derives
// the record from the entries it writes or applies (txnRecorder), and a read of
// config.transactions waits for the write in progress, since MongoDB writes the record
// and the entries in one storage transaction. A participant answers prepare, commit and
// abort once its entry is majority-committed; a primary elected by a stepdown, or
// started again, takes over the prepared transactions its oplog holds open
// (takeOverPreparedTxns), so the coordinator's commit reaches them there, and a
// rollback of a commit leaves its transaction prepared again.
//
// What the sandbox leaves out: a transaction not yet prepared dies with its primary's
// term; statements see the committed data, not the transaction's own earlier writes to
// other documents; upserts, findAndModify and array update operators are refused
// inside a transaction; a write outside a transaction to a document one holds fails
// with WriteConflict instead of waiting.

// shardTxn is an open transaction of the primary.
type shardTxn struct {
	key       string
	lsid      bson.Raw
	txnNumber int64
	ops       []txnOp
	prepared  bool
	prepareTS primitive.Timestamp
	// posts are the documents as the transaction leaves them, by lockKey (nil:
	// deleted): a later statement on one starts from there.
	posts map[string]bson.Raw
}

// txnOp is one operation of a transaction: its applyOps element and its effect.
type txnOp struct {
	inner    bson.D
	db, coll string
	id       bson.RawValue
	post     bson.Raw // the document after it; nil for a delete
	// update, for a transaction a new primary took over (recoverPreparedTxns), is an
	// update's o, applied at the commit to the document as it is then.
	update bson.Raw
}

// txnSession reads a transaction command's lsid (with its uid) and txnNumber.
func (n *node) txnSession(cmd *wire.Command) (lsid bson.Raw, txnNumber int64, err error) {
	lsid, ok := cmd.Lookup(routerLSID).DocumentOK()
	if !ok {
		lsid, ok = cmd.Lookup("lsid").DocumentOK()
	}
	txnNumber, hasTxn := cmd.Lookup("txnNumber").AsInt64OK()
	if !ok || !hasTxn {
		return nil, 0, wire.BadValue(fmt.Sprintf("%s in a transaction needs lsid and txnNumber", cmd.Name))
	}
	return n.withUID(lsid), txnNumber, nil
}

func txnKeyOf(lsid bson.Raw, txnNumber int64) string {
	return fmt.Sprintf("%s/%d", lsid, txnNumber)
}

func noSuchTransaction(txnNumber int64) *wire.Error {
	return &wire.Error{Code: 251, Name: "NoSuchTransaction", Msg: fmt.Sprintf("Transaction with txnNumber %d has been aborted or was never started on this shard", txnNumber)}
}

func writeConflict() *wire.Error {
	return &wire.Error{Code: 112, Name: "WriteConflict", Msg: "Write conflict during plan execution and yielding is disabled."}
}

// openTxn returns the transaction of a write command, starting it when the command
// says startTransaction.
func (n *node) openTxn(cmd *wire.Command) (*shardTxn, error) {
	if !n.front.cfg.Identity.Release().CrossShardTransactions() {
		return nil, wire.IllegalOperation("the sandbox runs transactions from release 4.2 (cross-shard transactions)")
	}
	lsid, txnNumber, err := n.txnSession(cmd)
	if err != nil {
		return nil, err
	}
	key := txnKeyOf(lsid, txnNumber)
	if tx := n.txns[key]; tx != nil {
		if tx.prepared {
			return nil, &wire.Error{Code: 256, Name: "PreparedTransactionInProgress", Msg: "Cannot add operations to a prepared transaction"}
		}
		return tx, nil
	}
	if !truthy(cmd.Lookup("startTransaction")) {
		return nil, noSuchTransaction(txnNumber)
	}
	tx := &shardTxn{key: key, lsid: lsid, txnNumber: txnNumber, posts: map[string]bson.Raw{}}
	n.txns[key] = tx
	return tx, nil
}

// lockKey names a document for the transactions' locks.
func lockKey(ns string, id bson.RawValue) string {
	return ns + "\x00" + string(rune(id.Type)) + string(id.Value)
}

// txnLocked refuses a write outside a transaction to a document an open transaction
// holds.
func (n *node) txnLocked(ns string, id bson.RawValue) error {
	if _, held := n.txnLocks[lockKey(ns, id)]; held {
		return writeConflict()
	}
	return nil
}

// hold records that tx writes the document with _id id (stored: its committed
// version, nil when there is none), refusing it when another transaction holds it, and
// returns the document as tx sees it (exists false: there is none, or tx deleted it).
func (n *node) hold(tx *shardTxn, ns string, id bson.RawValue, stored bson.Raw) (doc bson.Raw, exists bool, err error) {
	k := lockKey(ns, id)
	if owner, held := n.txnLocks[k]; held && owner != tx.key {
		return nil, false, writeConflict()
	}
	n.txnLocks[k] = tx.key
	if post, seen := tx.posts[k]; seen {
		return post, post != nil, nil
	}
	return stored, stored != nil, nil
}

func (tx *shardTxn) add(ci collInfo, d draft, id bson.RawValue, post bson.Raw) {
	db, coll, _ := strings.Cut(ci.NS, ".")
	inner := bson.D{{Key: "op", Value: d.op}, {Key: "ns", Value: d.ns}}
	if d.ui != nil {
		inner = append(inner, bson.E{Key: "ui", Value: primitive.Binary{Subtype: 4, Data: d.ui}})
	}
	inner = append(inner, bson.E{Key: "o", Value: d.o})
	if d.o2 != nil {
		inner = append(inner, bson.E{Key: "o2", Value: d.o2})
	}
	tx.ops = append(tx.ops, txnOp{inner: inner, db: db, coll: coll, id: id, post: post})
	tx.posts[lockKey(ci.NS, id)] = post
}

// txnWrite runs an insert, update or delete of a transaction: it checks and computes
// the writes and keeps them in the transaction.
func (n *node) txnWrite(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, err := writeTarget(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	ns := cmd.DB + "." + coll
	field := map[string]string{"insert": "documents", "update": "updates", "delete": "deletes"}[strings.ToLower(cmd.Name)]
	stmts, err := statements(cmd, field)
	if err != nil {
		return wire.ErrorReply(err)
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	tx, err := n.openTxn(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	ci, err := n.ensureCollection(ctx, ns)
	if err != nil {
		return errorReply(err, ns)
	}
	if ci.isView() {
		return wire.ErrorReply(notSupportedOnView(ns))
	}
	count, modified := 0, 0
	for _, s := range stmts {
		var k, m int
		switch field {
		case "documents":
			k, err = n.txnInsert(ctx, tx, ci, s)
		case "updates":
			k, m, err = n.txnUpdate(ctx, tx, ci, s)
		default:
			k, err = n.txnDelete(ctx, tx, ci, s)
		}
		count += k
		modified += m
		if err != nil {
			// A failed statement aborts the transaction, as on a MongoDB shard.
			n.dropTxn(tx)
			return errorReply(err, ns)
		}
	}
	if field == "updates" {
		return writeReply(count, modified, nil, nil)
	}
	return writeReply(count, -1, nil, nil)
}

func (n *node) txnInsert(ctx context.Context, tx *shardTxn, ci collInfo, doc bson.Raw) (int, error) {
	doc, id := withIDFirst(doc)
	db, coll, _ := strings.Cut(ci.NS, ".")
	existing, err := n.be.fetchByID(ctx, db, coll, id)
	if err != nil {
		return 0, err
	}
	var stored bson.Raw
	if len(existing) > 0 {
		stored = existing[0]
	}
	if _, exists, err := n.hold(tx, ci.NS, id, stored); err != nil || exists {
		if err == nil {
			err = &wire.Error{Code: 11000, Name: "DuplicateKey", Msg: "E11000 duplicate key error collection: " + ci.NS}
		}
		return 0, err
	}
	tx.add(ci, n.front.forms.insertDraft(ci, doc, false), id, doc)
	return 1, nil
}

func (n *node) txnUpdate(ctx context.Context, tx *shardTxn, ci collInfo, stmt bson.Raw) (matched, modified int, err error) {
	u, ok := stmt.Lookup("u").DocumentOK()
	if !ok || stmt.Lookup("u").Type == bsontype.Array {
		return 0, 0, notImplemented("the sandbox's transactions take updates as a document of field operators or a replacement")
	}
	if truthy(stmt.Lookup("upsert")) {
		return 0, 0, notImplemented("the sandbox's transactions do not run upserts")
	}
	limit := int64(1)
	if truthy(stmt.Lookup("multi")) {
		limit = 0
	}
	db, coll, _ := strings.Cut(ci.NS, ".")
	q, _ := stmt.Lookup("q").DocumentOK()
	docs, _, err := n.targets(ctx, db, coll, q, nil, limit)
	if err != nil {
		return 0, 0, err
	}
	for _, stored := range docs {
		pre, exists, err := n.hold(tx, ci.NS, stored.Lookup("_id"), stored)
		if err != nil {
			return matched, modified, err
		}
		if !exists {
			continue
		}
		post, err := modify.Apply(pre, u)
		if err != nil {
			return matched, modified, err
		}
		matched++
		if string(pre) == string(post) {
			continue
		}
		modified++
		tx.add(ci, n.front.forms.updateDraft(ci, pre, post, modify.IsReplacement(u)), pre.Lookup("_id"), post)
	}
	return matched, modified, nil
}

func (n *node) txnDelete(ctx context.Context, tx *shardTxn, ci collInfo, stmt bson.Raw) (int, error) {
	limit := int64(0)
	if truthy(stmt.Lookup("limit")) {
		limit = 1
	}
	db, coll, _ := strings.Cut(ci.NS, ".")
	q, _ := stmt.Lookup("q").DocumentOK()
	docs, _, err := n.targets(ctx, db, coll, q, nil, limit)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, stored := range docs {
		pre, exists, err := n.hold(tx, ci.NS, stored.Lookup("_id"), stored)
		if err != nil {
			return deleted, err
		}
		if !exists {
			continue
		}
		tx.add(ci, draft{op: "d", ns: ci.NS, ui: ci.UUID.Data, o: docKey(ci, pre)}, pre.Lookup("_id"), nil)
		deleted++
	}
	return deleted, nil
}

// dropTxn forgets a transaction and releases its documents.
func (n *node) dropTxn(tx *shardTxn) {
	for k, owner := range n.txnLocks {
		if owner == tx.key {
			delete(n.txnLocks, k)
		}
	}
	delete(n.txns, tx.key)
}

// txnCommand runs prepareTransaction, commitTransaction or abortTransaction.
func (n *node) txnCommand(ctx context.Context, cmd *wire.Command) bson.Raw {
	lsid, txnNumber, err := n.txnSession(cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	var ts primitive.Timestamp
	switch strings.ToLower(cmd.Name) {
	case "preparetransaction":
		ts, err = n.endTxn(lsid, txnNumber, func(tx *shardTxn) (primitive.Timestamp, error) {
			if tx.prepared {
				return tx.prepareTS, nil // prepared already: the same vote again
			}
			return n.prepareTxn(tx)
		})
	case "committransaction":
		ts, err = n.endTxn(lsid, txnNumber, func(tx *shardTxn) (primitive.Timestamp, error) { return n.commitTxn(ctx, tx, cmd) })
	default:
		ts, err = n.endTxn(lsid, txnNumber, n.abortTxn)
	}
	if err != nil {
		return errorReply(err, "")
	}
	// A participant answers the coordinator once its prepare, commit or abort is
	// majority-committed: no failover can lose a step the coordinator was told of
	// (one that is rolled back is retried on the new primary, which took the prepared
	// transaction over).
	if err := awaitCondition(ctx, n.peers, func() bool {
		op, _ := majority(n.peers)
		return compareTS(op.TS, ts) >= 0
	}); err != nil {
		return wire.ErrorReply(&wire.Error{Code: 11602, Name: "InterruptedDueToReplStateChange",
			Msg: fmt.Sprintf("waiting for the %s at %v to be majority-committed: %v", cmd.Name, ts, err)})
	}
	if strings.EqualFold(cmd.Name, "prepareTransaction") {
		return wire.OK(bson.E{Key: "prepareTimestamp", Value: ts})
	}
	return wire.OK()
}

// endTxn runs step on the named transaction under the write lock and returns the ts
// of the entry it wrote (or of the shard's last one, when it wrote none).
func (n *node) endTxn(lsid bson.Raw, txnNumber int64, step func(*shardTxn) (primitive.Timestamp, error)) (primitive.Timestamp, error) {
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	tx := n.txns[txnKeyOf(lsid, txnNumber)]
	if tx == nil {
		return primitive.Timestamp{}, noSuchTransaction(txnNumber)
	}
	ts, err := step(tx)
	if ts.IsZero() {
		ts, _ = n.oplog.last()
	}
	return ts, err
}

// maxTxnEntryBytes is about how many bytes of operations one applyOps entry of a
// transaction takes before the next entry starts (MongoDB's BSON limit, less room for
// the envelope).
const maxTxnEntryBytes = 15 << 20

// txnChunks splits the operations into the runs each entry holds.
func (n *node) txnChunks(ops []txnOp) [][]txnOp {
	per := n.front.cfg.TxnOpsPerEntry
	var out [][]txnOp
	start, size := 0, 0
	for i, op := range ops {
		b := len(mustMarshal(op.inner))
		if i > start && ((per > 0 && i-start >= per) || size+b > maxTxnEntryBytes) {
			out = append(out, ops[start:i])
			start, size = i, 0
		}
		size += b
	}
	if start < len(ops) {
		out = append(out, ops[start:])
	}
	return out
}

// logTxn writes a transaction's applyOps entries, chained by prevOpTime; last is the
// final entry's mark (prepare, or for an unprepared transaction of several entries,
// count). It returns the first and last entries' ts.
func (n *node) logTxn(tx *shardTxn, prepare bool, held *hole) (first, last primitive.Timestamp, err error) {
	chunks := n.txnChunks(tx.ops)
	if prepare && len(chunks) == 0 {
		// A participant whose statements changed nothing is prepared all the same:
		// MongoDB logs an empty applyOps marked prepare (op_observer_impl.cpp, "Log an
		// empty 'prepare' oplog entry"), which its record starts at and its commit or
		// abort points to.
		chunks = [][]txnOp{nil}
	}
	for i, chunk := range chunks {
		arr := make(bson.A, len(chunk))
		for k, op := range chunk {
			arr[k] = op.inner
		}
		o := bson.D{{Key: "applyOps", Value: arr}}
		switch {
		case i < len(chunks)-1:
			o = append(o, bson.E{Key: "partialTxn", Value: true})
		case prepare:
			o = append(o, bson.E{Key: "prepare", Value: true})
		case len(chunks) > 1:
			o = append(o, bson.E{Key: "count", Value: int64(len(tx.ops))})
		}
		d := draft{op: "c", ns: "admin.$cmd", o: mustMarshal(o), held: held,
			session: &stmtSession{lsid: tx.lsid, txnNumber: tx.txnNumber, stmtID: noStmtID, prev: link{ts: last}}}
		if last, err = n.oplog.write(d); err != nil {
			return first, last, err
		}
		if i == 0 {
			first = last
		}
	}
	return first, last, nil
}

// testHookPrepareRecord, set by a test, runs before a prepared transaction's record
// is written.
var testHookPrepareRecord func()

// prepareTxn logs the transaction's operations and records it prepared.
//
// On a real shard the prepare's entries and the record commit as one storage
// transaction: whoever reads the oplog past them (a majority commit point, a
// T0) finds the transaction open in config.transactions. Here the record is a
// second write, so the entries stay hidden, and the secondaries (so the majority
// point) stay before them, until the record is written.
func (n *node) prepareTxn(tx *shardTxn) (primitive.Timestamp, error) {
	held := &hole{}
	defer n.oplog.revealHeld(held)
	first, last, err := n.logTxn(tx, true, held)
	if err != nil {
		return last, err
	}
	tx.prepared, tx.prepareTS = true, last
	if testHookPrepareRecord != nil {
		testHookPrepareRecord()
	}
	return last, n.recordTxn(tx.lsid, tx.txnNumber, first, last, txnPrepared)
}

// commitTxn applies the transaction's writes and logs its commit, reporting the ts of
// the entry it wrote (none for an unprepared transaction that wrote nothing).
func (n *node) commitTxn(ctx context.Context, tx *shardTxn, cmd *wire.Command) (primitive.Timestamp, error) {
	var commitTS primitive.Timestamp
	if tx.prepared {
		t, i, ok := cmd.Lookup("commitTimestamp").TimestampOK()
		if !ok {
			return commitTS, wire.BadValue("commitTransaction of a prepared transaction needs commitTimestamp")
		}
		commitTS = primitive.Timestamp{T: t, I: i}
		if commitTS.Before(tx.prepareTS) {
			return primitive.Timestamp{}, wire.BadValue(fmt.Sprintf("commitTimestamp %v is before the prepareTimestamp %v", commitTS, tx.prepareTS))
		}
	}
	for _, op := range tx.ops {
		if err := n.applyTxnOp(ctx, op); ignoreMissing(err) != nil {
			return primitive.Timestamp{}, fmt.Errorf("apply the transaction's writes: %w", err)
		}
	}
	defer n.dropTxn(tx)
	if !tx.prepared {
		if len(tx.ops) == 0 {
			return primitive.Timestamp{}, nil // a transaction that wrote nothing logs nothing
		}
		_, last, err := n.logTxn(tx, false, nil)
		if err != nil {
			return last, err
		}
		return last, n.recordTxn(tx.lsid, tx.txnNumber, primitive.Timestamp{}, last, txnCommitted)
	}
	o := bson.D{{Key: "commitTransaction", Value: int32(1)}, {Key: "commitTimestamp", Value: commitTS}}
	ts, err := n.oplog.write(draft{op: "c", ns: "admin.$cmd", o: mustMarshal(o),
		session: &stmtSession{lsid: tx.lsid, txnNumber: tx.txnNumber, stmtID: noStmtID, prev: link{ts: tx.prepareTS}}})
	if err != nil {
		return ts, err
	}
	return ts, n.recordTxn(tx.lsid, tx.txnNumber, primitive.Timestamp{}, ts, txnCommitted)
}

// applyTxnOp makes the data change of one operation of a committing transaction.
func (n *node) applyTxnOp(ctx context.Context, op txnOp) error {
	post := op.post
	if op.update != nil {
		docs, err := n.be.fetchByID(ctx, op.db, op.coll, op.id)
		if err != nil || len(docs) == 0 {
			return err // the document is gone: nothing to update
		}
		if post, err = applyUpdateEntry(docs[0], op.update); err != nil {
			return err
		}
	}
	if post == nil {
		_, err := n.be.deleteByID(ctx, op.db, op.coll, op.id)
		return err
	}
	return n.replaceDoc(ctx, op.db, op.coll, post)
}

// abortTxn drops the transaction, logging the abort of a prepared one, and reports the
// ts of the entry it wrote (none for an unprepared one).
func (n *node) abortTxn(tx *shardTxn) (primitive.Timestamp, error) {
	defer n.dropTxn(tx)
	if !tx.prepared {
		return primitive.Timestamp{}, nil // nothing of it was logged
	}
	ts, err := n.oplog.write(draft{op: "c", ns: "admin.$cmd", o: mustMarshal(bson.D{{Key: "abortTransaction", Value: int32(1)}}),
		session: &stmtSession{lsid: tx.lsid, txnNumber: tx.txnNumber, stmtID: noStmtID, prev: link{ts: tx.prepareTS}}})
	if err != nil {
		return ts, err
	}
	return ts, n.recordTxn(tx.lsid, tx.txnNumber, primitive.Timestamp{}, ts, txnAborted)
}

// Durable transaction states (SessionTxnRecord's state).
const (
	txnPrepared  = "prepared"
	txnCommitted = "committed"
	txnAborted   = "aborted"
)

// recordTxn writes the session's config.transactions record: start is the
// transaction's first entry while it is open (zero: left out), last its newest.
func (n *node) recordTxn(lsid bson.Raw, txnNumber int64, start, last primitive.Timestamp, state string) error {
	doc := bson.D{{Key: "_id", Value: lsid}, {Key: "txnNum", Value: txnNumber}}
	term := n.oplog.term()
	if !start.IsZero() {
		doc = append(doc, bson.E{Key: "startOpTime", Value: bson.D{{Key: "ts", Value: start}, {Key: "t", Value: term}}})
	}
	doc = append(doc,
		bson.E{Key: "lastWriteOpTime", Value: bson.D{{Key: "ts", Value: last}, {Key: "t", Value: term}}},
		bson.E{Key: "lastWriteDate", Value: time.Now()},
		bson.E{Key: "state", Value: state})
	// A retryable write's record of the session, due later, would hide this one.
	delete(n.dirtySessions, string(lsid))
	if n.deferredTxnRecords != nil {
		n.deferredTxnRecords[string(lsid)] = doc
		return nil
	}
	n.recordsMu.Lock()
	defer n.recordsMu.Unlock()
	return n.upsertByID(n.ctx, "config", "transactions", doc)
}

package shard

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Retryable writes. A write command with lsid and txnNumber (a driver's retryable write,
// forwarded by mongos with each statement's id in stmtIds) is logged as MongoDB logs it:
// every entry carries lsid (with the uid of its user), txnNumber, stmtId and prevOpTime,
// which links the entries of one txnNumber (the null optime starts the chain). A
// statement the session already wrote is not written again when the driver retries it.
// The session table is what config.transactions records ({_id: lsid, txnNum,
// lastWriteOpTime, lastWriteDate}); the shard keeps it there and, as a secondary does,
// rebuilds it from the oplog when it starts.

// sessionRecord is one session's latest retryable write.
type sessionRecord struct {
	txnNumber int64
	last      primitive.Timestamp
	lastTerm  int64 // the term of the entry at last
	wall      time.Time
	written   map[int32]bool // statements of txnNumber already written
	reply     bson.Raw       // the answer of its findAndModify, for a retry (not kept across restarts)
}

// retryable is the session of one write command.
type retryable struct {
	lsid      bson.Raw
	txnNumber int64
	stmtIDs   []int32 // mongos' stmtIds; nil: the statement's index
	rec       *sessionRecord
	log       *oplog // where the command's entries go: their term is its term
}

// routerLSID is the field in which the sandbox's router forwards a client's lsid: its
// driver adds an lsid of its own to every command it sends.
const routerLSID = "_sandboxLsid"

// retryableOf reads the session fields of a write command: nil when it is no retryable
// write (no txnNumber, or a transaction, which the sandbox does not run).
func (n *node) retryableOf(cmd *wire.Command) (*retryable, error) {
	lsid, hasLSID := cmd.Lookup(routerLSID).DocumentOK()
	if !hasLSID {
		lsid, hasLSID = cmd.Lookup("lsid").DocumentOK()
	}
	txn := cmd.Lookup("txnNumber")
	if !hasLSID || txn.Type == 0 || cmd.Lookup("autocommit").Type != 0 {
		return nil, nil
	}
	txnNumber, ok := txn.AsInt64OK()
	if !ok {
		return nil, wire.BadValue("txnNumber must be an integer")
	}
	r := &retryable{lsid: n.withUID(lsid), txnNumber: txnNumber, log: n.oplog}
	if v := cmd.Lookup("stmtIds"); v.Type == bsontype.Array {
		for _, id := range values(v) {
			i, _ := id.AsInt64OK()
			r.stmtIDs = append(r.stmtIDs, int32(i))
		}
	} else if id, ok := cmd.Lookup("stmtId").AsInt64OK(); ok {
		r.stmtIDs = []int32{int32(id)}
	}
	rec := n.sessions[string(r.lsid)]
	switch {
	case rec != nil && rec.txnNumber > txnNumber:
		return nil, &wire.Error{Code: 225, Name: "TransactionTooOld", Msg: fmt.Sprintf(
			"Retryable write with txnNumber %d is prohibited on session %s because a newer retryable write with txnNumber %d has already started on this session.",
			txnNumber, r.lsid, rec.txnNumber)}
	case rec == nil || rec.txnNumber < txnNumber:
		rec = &sessionRecord{txnNumber: txnNumber, written: map[int32]bool{}}
		n.sessions[string(r.lsid)] = rec
	}
	r.rec = rec
	return r, nil
}

// withUID adds to a driver's lsid {id} the uid MongoDB derives from the user: the
// SHA-256 of "user@db", of "" without authentication.
func (n *node) withUID(lsid bson.Raw) bson.Raw {
	if _, err := lsid.LookupErr("uid"); err == nil {
		return lsid
	}
	name := ""
	if c := n.front.cfg.Credentials; c != nil {
		name = c.User + "@admin"
	}
	uid := sha256.Sum256([]byte(name))
	elems, _ := lsid.Elements()
	idx, b := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		b = append(b, e...)
	}
	b = bsoncore.AppendBinaryElement(b, "uid", 0, uid[:])
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// stmtID is the id of the command's i-th statement.
func (r *retryable) stmtID(i int) int32 {
	if i < len(r.stmtIDs) {
		return r.stmtIDs[i]
	}
	return int32(i)
}

// written reports whether the session already wrote the i-th statement (a retry).
func (r *retryable) written(i int) bool { return r.rec.written[r.stmtID(i)] }

// session is the session fields of the entry of statement i; chained links it to the
// entry just before it in the same append, else it follows the session's last write.
func (r *retryable) session(i int, chained bool) *stmtSession {
	s := &stmtSession{lsid: r.lsid, txnNumber: r.txnNumber, stmtID: r.stmtID(i), prev: link{ts: r.rec.last, term: r.rec.lastTerm}}
	if chained {
		s.prev = link{preceding: true}
	}
	return s
}

// wrote records statements written by entries up to ts, just appended (of the
// oplog's term).
func (r *retryable) wrote(ts primitive.Timestamp, stmts ...int) {
	for _, i := range stmts {
		r.rec.written[r.stmtID(i)] = true
	}
	r.rec.last, r.rec.lastTerm, r.rec.wall = ts, r.log.term(), time.Now()
}

// saveSession marks the session's record for config.transactions. The records are
// written there a little later, in one pass (flushSessions): a write per statement would
// halve the shard's write rate.
func (n *node) saveSession(r *retryable) {
	if r != nil && r.rec.last != (primitive.Timestamp{}) {
		n.dirtySessions[string(r.lsid)] = true
	}
}

// sessionFlushInterval is how long config.transactions may lag the session table.
const sessionFlushInterval = 200 * time.Millisecond

// flushSessions writes the marked session records to config.transactions until the node
// stops.
func (n *node) flushSessions() {
	defer close(n.sessionsDone)
	t := time.NewTicker(sessionFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.writeMu.Lock()
		var docs []bson.D
		for key := range n.dirtySessions {
			rec := n.sessions[key]
			docs = append(docs, bson.D{
				{Key: "_id", Value: bson.Raw(key)},
				{Key: "txnNum", Value: rec.txnNumber},
				{Key: "lastWriteOpTime", Value: bson.D{{Key: "ts", Value: rec.last}, {Key: "t", Value: rec.lastTerm}}},
				{Key: "lastWriteDate", Value: rec.wall},
			})
		}
		clear(n.dirtySessions)
		// Taken before the write lock is let go: a transaction's record written
		// after this batch was taken must land after it too (txn.go).
		n.recordsMu.Lock()
		n.writeMu.Unlock()
		for _, doc := range docs {
			if err := n.upsertByID(n.ctx, "config", "transactions", doc); err != nil && n.ctx.Err() == nil {
				n.front.cfg.Logger.Error("record a session in config.transactions", "shard", n.front.cfg.Name, "err", err)
			}
		}
		n.recordsMu.Unlock()
	}
}

// upsertByID writes doc (its first field is _id) into db.coll, replacing the document
// with that _id.
func (n *node) upsertByID(ctx context.Context, db, coll string, doc bson.D) error {
	reply, err := n.be.run(ctx, db, bson.D{{Key: "update", Value: coll}, {Key: "updates", Value: bson.A{
		bson.D{{Key: "q", Value: bson.D{doc[0]}}, {Key: "u", Value: doc}, {Key: "upsert", Value: true}},
	}}})
	if err != nil {
		return err
	}
	return firstWriteError(reply)
}

// rebuildSessions derives the session table from the retryable writes in the oplog.
func (n *node) rebuildSessions() {
	n.sessions = map[string]*sessionRecord{}
	n.dirtySessions = map[string]bool{}
	defer func() {
		for key := range n.sessions {
			n.dirtySessions[key] = true
		}
		n.rebuildTxns()
	}()
	base, _ := n.oplog.bounds()
	n.oplog.visit(base, false, false, func(raw bson.Raw) bool {
		if _, inTxn := txnEntryOf(raw); inTxn {
			return true // rebuildTxns records transactions
		}
		lsid, ok := raw.Lookup("lsid").DocumentOK()
		txn, hasTxn := raw.Lookup("txnNumber").AsInt64OK()
		if !ok || !hasTxn {
			return true
		}
		rec := n.sessions[string(lsid)]
		if rec == nil || rec.txnNumber < txn {
			rec = &sessionRecord{txnNumber: txn, written: map[int32]bool{}}
			n.sessions[string(lsid)] = rec
		}
		t, i, _ := raw.Lookup("ts").TimestampOK()
		wall, _ := raw.Lookup("wall").DateTimeOK()
		rec.last, rec.wall = primitive.Timestamp{T: t, I: i}, time.UnixMilli(wall)
		rec.lastTerm, _ = raw.Lookup("t").AsInt64OK()
		if id, ok := raw.Lookup("stmtId").Int32OK(); ok {
			rec.written[id] = true
		}
		for _, op := range values(raw.Lookup("o", "applyOps")) {
			if id, ok := document(op).Lookup("stmtId").Int32OK(); ok {
				rec.written[id] = true
			}
		}
		return true
	})
}

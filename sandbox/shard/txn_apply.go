package shard

import (
	"context"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	engineoplog "github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/sandbox/modify"
)

// A member that applies its primary's entries follows their transactions as a
// secondary does: the operations of partialTxn and prepare entries wait until the
// commit (commitTransaction, or the unprepared transaction's final applyOps) applies
// them, an abort drops them, and the member's config.transactions records each step
// (txn.go). At startup, after a rollback and on a new primary, every member derives
// its records, and the chains of the transactions still open, from its oplog.

// txnEntryKind is what an entry does in its transaction.
type txnEntryKind int

const (
	txnPartial txnEntryKind = iota // an applyOps with partialTxn: more follow
	txnPrepare                     // the applyOps marked prepare: true
	txnFinal                       // an unprepared transaction's applyOps: commits it
	txnCommit                      // commitTransaction of a prepared transaction
	txnAbort                       // abortTransaction of a prepared transaction
)

// txnEntry is an entry of a transaction.
type txnEntry struct {
	lsid      bson.Raw
	txnNumber int64
	kind      txnEntryKind
	ts        primitive.Timestamp
	prevNull  bool       // prevOpTime is the null optime: the transaction's first entry
	ops       []bson.Raw // an applyOps' operations
}

// txnEntryOf reads an entry of a transaction; ok false for any other entry (a
// retryable write's included, and 8.0's vectored inserts).
func txnEntryOf(raw bson.Raw) (txnEntry, bool) {
	lsid, hasLSID := raw.Lookup("lsid").DocumentOK()
	txnNumber, hasTxn := raw.Lookup("txnNumber").AsInt64OK()
	if !hasLSID || !hasTxn || str(raw.Lookup("op")) != "c" || raw.Lookup("multiOpType").Type != 0 {
		return txnEntry{}, false
	}
	o, _ := raw.Lookup("o").DocumentOK()
	first, err := o.IndexErr(0)
	if err != nil {
		return txnEntry{}, false
	}
	t, i, _ := raw.Lookup("ts").TimestampOK()
	prevTS, _, _ := raw.Lookup("prevOpTime", "ts").TimestampOK()
	e := txnEntry{lsid: lsid, txnNumber: txnNumber, ts: primitive.Timestamp{T: t, I: i}, prevNull: prevTS == 0}
	switch first.Key() {
	case "applyOps":
		for _, v := range values(first.Value()) {
			e.ops = append(e.ops, document(v))
		}
		switch {
		case truthy(o.Lookup("partialTxn")):
			e.kind = txnPartial
		case truthy(o.Lookup("prepare")):
			e.kind = txnPrepare
		default:
			e.kind = txnFinal
		}
	case "commitTransaction":
		e.kind = txnCommit
	case "abortTransaction":
		e.kind = txnAbort
	default:
		return txnEntry{}, false
	}
	return e, true
}

// txnChain is a transaction whose first entries a member holds but not its end.
type txnChain struct {
	first primitive.Timestamp
	ops   []bson.Raw
	// lsid and txnNumber name it; prepared, once its prepare entry (at last) came.
	lsid      bson.Raw
	txnNumber int64
	prepared  bool
	last      primitive.Timestamp
}

// followTxn takes one entry of a transaction: it keeps, applies (with apply; nil
// applies nothing) or drops the transaction's operations and records the step.
func (n *node) followTxn(e txnEntry, apply func(ops []bson.Raw) error) error {
	key := txnKeyOf(e.lsid, e.txnNumber)
	chain := n.txnChains[key]
	if e.prevNull {
		chain = &txnChain{first: e.ts, lsid: e.lsid, txnNumber: e.txnNumber}
	}
	switch e.kind {
	case txnPartial, txnPrepare:
		if chain == nil {
			return nil // its first entries came before this member's oplog
		}
		chain.ops = append(chain.ops, e.ops...)
		chain.last = e.ts
		n.txnChains[key] = chain
		if e.kind == txnPartial {
			return nil
		}
		chain.prepared = true
		return n.recordTxn(e.lsid, e.txnNumber, chain.first, e.ts, txnPrepared)
	case txnAbort:
		delete(n.txnChains, key)
		return n.recordTxn(e.lsid, e.txnNumber, primitive.Timestamp{}, e.ts, txnAborted)
	}
	var ops []bson.Raw
	if chain != nil && !e.prevNull {
		ops = chain.ops
	}
	if e.kind == txnFinal {
		ops = append(ops, e.ops...)
	}
	delete(n.txnChains, key)
	if apply != nil {
		if err := apply(ops); err != nil {
			return err
		}
	}
	return n.recordTxn(e.lsid, e.txnNumber, primitive.Timestamp{}, e.ts, txnCommitted)
}

// applyTxnEntry applies an entry of a transaction from member src.
func (n *node) applyTxnEntry(ctx context.Context, e txnEntry, src *node) error {
	return n.followTxn(e, func(ops []bson.Raw) error {
		for _, d := range ops {
			inner, _ := d.Lookup("o").DocumentOK()
			if err := n.applyOp(ctx, str(d.Lookup("op")), str(d.Lookup("ns")), inner, nil, d, src); err != nil {
				return err
			}
		}
		return nil
	})
}

// rebuildTxns derives the member's transaction records and open chains from its
// oplog.
func (n *node) rebuildTxns() {
	n.txnChains = map[string]*txnChain{}
	base, _ := n.oplog.bounds()
	var entries []txnEntry
	n.oplog.visit(base, false, false, func(raw bson.Raw) bool {
		if e, ok := txnEntryOf(raw); ok {
			entries = append(entries, e)
		}
		return true
	})
	// Only each session's last record is written.
	n.deferredTxnRecords = map[string]bson.D{}
	for _, e := range entries {
		n.followTxn(e, nil)
	}
	records := n.deferredTxnRecords
	n.deferredTxnRecords = nil
	n.recordsMu.Lock()
	defer n.recordsMu.Unlock()
	for _, doc := range records {
		if err := n.upsertByID(n.ctx, "config", "transactions", doc); err != nil && n.ctx.Err() == nil {
			n.front.cfg.Logger.Error("record a transaction in config.transactions", "shard", n.front.cfg.Name, "err", err)
		}
	}
}

// takeOverPreparedTxns makes the prepared transactions a new primary applied, and whose
// end it has not, its own open transactions, as a MongoDB primary reconstructs them
// at step-up: the coordinator's commit or abort then reaches them here. Their updates
// are applied at the commit from their entries' o (the document after one is not in
// the oplog).
func (n *node) takeOverPreparedTxns() {
	for key, chain := range n.txnChains {
		if !chain.prepared {
			continue
		}
		tx := &shardTxn{key: key, lsid: chain.lsid, txnNumber: chain.txnNumber, prepared: true, prepareTS: chain.last, posts: map[string]bson.Raw{}}
		for _, d := range chain.ops {
			ns := str(d.Lookup("ns"))
			db, coll, _ := strings.Cut(ns, ".")
			o, _ := d.Lookup("o").DocumentOK()
			var inner bson.D
			bson.Unmarshal(d, &inner)
			op := txnOp{inner: inner, db: db, coll: coll, id: o.Lookup("_id")}
			switch str(d.Lookup("op")) {
			case "i":
				op.post = o
			case "u":
				o2, _ := d.Lookup("o2").DocumentOK()
				op.id, op.update = o2.Lookup("_id"), o
			}
			tx.ops = append(tx.ops, op)
			n.txnLocks[lockKey(ns, op.id)] = key
		}
		n.txns[key] = tx
	}
}

// stepDownTxns forgets a former primary's open transactions (the new primary took
// the prepared ones over; the others die with the term, as on MongoDB) and follows
// their chains as a secondary again.
func (n *node) stepDownTxns() {
	clear(n.txns)
	clear(n.txnLocks)
	n.rebuildTxns()
}

// applyUpdateEntry is the document an update entry's o makes of pre: a $v:2 diff, a
// modifier object ($v:1 and older) or a whole replacement.
func applyUpdateEntry(pre, o bson.Raw) (bson.Raw, error) {
	if v, _ := o.Lookup("$v").AsInt64OK(); v == 2 {
		diff, _ := o.Lookup("diff").DocumentOK()
		return engineoplog.ApplyDiff(pre, diff)
	}
	elems, _ := o.Elements()
	var u bson.D
	for _, e := range elems {
		if e.Key() != "$v" {
			u = append(u, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	return modify.Apply(pre, mustMarshal(u))
}

package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Transactions (4.2 and later), as mongos runs them: the writes of a client's
// transaction (autocommit false) go to the shards that own their documents with the
// client's lsid and txnNumber, and each such shard joins the transaction as a
// participant. commitTransaction commits a one-participant transaction on its shard
// directly (one applyOps entry there); with several participants it runs the
// two-phase commit MongoDB's coordinator runs: prepareTransaction on every
// participant, the newest prepareTimestamp as the commitTimestamp, then
// commitTransaction with it on every participant (a failed prepare aborts them all).
// abortTransaction aborts on every participant. Unlike MongoDB the coordinator is the
// router itself and keeps no config.transaction_coordinators document. HoldCommits
// keeps the prepared transactions waiting between the two phases, for tests and
// drills that need a transaction prepared across a moment (a migration's T0).

// txnTable is the router's open transactions and its commit hold.
type txnTable struct {
	mu   sync.Mutex
	open map[string]*routerTxn
	hold chan struct{} // closed when the hold ends; nil: no hold
	held int           // commits waiting on the hold
	// abortHeld is the decision for the commits the hold kept: abort them all, as a
	// coordinator does when a participant votes no.
	abortHeld bool
}

// routerTxn is a transaction's participants, in the order they joined.
type routerTxn struct {
	lsid, txnNumber bson.RawValue
	shards          []string
}

// txnFields are what a shard command of a transaction carries.
func txnFields(lsid, txnNumber bson.RawValue) bson.D {
	return bson.D{{Key: "_sandboxLsid", Value: lsid}, {Key: "txnNumber", Value: txnNumber},
		{Key: "autocommit", Value: false}, {Key: "startTransaction", Value: true}}
}

func txnKey(lsid, txnNumber bson.RawValue) string {
	n, _ := asInt64(txnNumber)
	return fmt.Sprintf("%s/%d", lsid.Value, n)
}

// join makes shard a participant of the transaction whose write cmd is (none when cmd
// is no write of a transaction).
func (t *txnTable) join(shard string, cmd bson.D) {
	var lsid, txnNumber bson.RawValue
	inTxn := false
	for _, e := range cmd {
		switch e.Key {
		case "_sandboxLsid":
			lsid, _ = e.Value.(bson.RawValue)
		case "txnNumber":
			txnNumber, _ = e.Value.(bson.RawValue)
		case "autocommit":
			inTxn = true
		}
	}
	if !inTxn {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil {
		t.open = map[string]*routerTxn{}
	}
	key := txnKey(lsid, txnNumber)
	tx := t.open[key]
	if tx == nil {
		tx = &routerTxn{lsid: lsid, txnNumber: txnNumber}
		t.open[key] = tx
	}
	for _, s := range tx.shards {
		if s == shard {
			return
		}
	}
	tx.shards = append(tx.shards, shard)
}

// take removes and returns the transaction a commit or abort names (nil: it wrote
// nothing, or is unknown).
func (t *txnTable) take(cmd *wire.Command) *routerTxn {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := txnKey(cmd.Lookup("lsid"), cmd.Lookup("txnNumber"))
	tx := t.open[key]
	delete(t.open, key)
	return tx
}

// HoldCommits makes cross-shard commits wait, once every participant prepared, until
// ReleaseCommits.
func (r *Router) HoldCommits() {
	r.txns.mu.Lock()
	defer r.txns.mu.Unlock()
	if r.txns.hold == nil {
		r.txns.hold = make(chan struct{})
	}
}

// ReleaseCommits lets the held commits go on, or aborts them all (they are prepared:
// their shards log abortTransaction).
func (r *Router) ReleaseCommits(abort bool) {
	r.txns.mu.Lock()
	defer r.txns.mu.Unlock()
	if r.txns.hold != nil {
		r.txns.abortHeld = abort
		close(r.txns.hold)
		r.txns.hold = nil
	}
}

// HeldCommits is how many prepared transactions wait on the hold.
func (r *Router) HeldCommits() int {
	r.txns.mu.Lock()
	defer r.txns.mu.Unlock()
	return r.txns.held
}

// awaitHold waits while commits are held, and reports whether the release decided
// to abort.
func (r *Router) awaitHold() (abort bool) {
	r.txns.mu.Lock()
	hold := r.txns.hold
	if hold == nil {
		r.txns.mu.Unlock()
		return false
	}
	r.txns.held++
	r.txns.mu.Unlock()
	<-hold
	r.txns.mu.Lock()
	defer r.txns.mu.Unlock()
	r.txns.held--
	return r.txns.abortHeld
}

// txnCommand runs a transaction command on one participant.
func (r *Router) txnCommand(ctx context.Context, tx *routerTxn, shard string, cmd bson.D) (bson.Raw, error) {
	b, err := r.backend(shard)
	if err != nil {
		return nil, err
	}
	return b.run(ctx, "admin", append(cmd, txnFields(tx.lsid, tx.txnNumber)[:3]...))
}

func (r *Router) commitTransaction(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	tx := r.txns.take(cmd)
	if tx == nil {
		return wire.OK(), nil // it wrote nothing
	}
	if len(tx.shards) == 1 {
		if _, err := r.txnCommand(ctx, tx, tx.shards[0], bson.D{{Key: "commitTransaction", Value: int32(1)}}); err != nil {
			return nil, err
		}
		return wire.OK(), nil
	}
	var commitTS primitive.Timestamp
	for _, s := range tx.shards {
		reply, err := r.txnCommand(ctx, tx, s, bson.D{{Key: "prepareTransaction", Value: int32(1)}})
		if err != nil {
			r.abortOn(ctx, tx)
			return nil, fmt.Errorf("prepare the transaction on shard %s: %w", s, err)
		}
		t, i, _ := reply.Lookup("prepareTimestamp").TimestampOK()
		if ts := (primitive.Timestamp{T: t, I: i}); commitTS.Before(ts) {
			commitTS = ts
		}
	}
	abort := r.awaitHold()
	// The decision is made: it goes on even when the client gave up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultOpTimeout)
	defer cancel()
	if abort {
		r.abortOn(ctx, tx)
		return nil, &wire.Error{Code: 251, Name: "NoSuchTransaction", Msg: "the transaction was aborted while prepared (the sandbox's commit hold was released with abort)"}
	}
	for _, s := range tx.shards {
		cmd := bson.D{{Key: "commitTransaction", Value: int32(1)}, {Key: "commitTimestamp", Value: commitTS}}
		if err := r.retryCommit(ctx, tx, s, cmd); err != nil {
			return nil, fmt.Errorf("commit the prepared transaction on shard %s: %w", s, err)
		}
	}
	return wire.OK(), nil
}

// retryCommit sends a participant its commit until it answers, as the coordinator
// does: a prepared transaction must end.
func (r *Router) retryCommit(ctx context.Context, tx *routerTxn, shard string, cmd bson.D) error {
	for {
		_, err := r.txnCommand(ctx, tx, shard, cmd)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if isCode(err, 251) {
			return err // the shard lost the transaction (a restart): nothing to retry
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *Router) abortTransaction(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	if tx := r.txns.take(cmd); tx != nil {
		r.abortOn(ctx, tx)
	}
	return wire.OK(), nil
}

// abortOn aborts the transaction on every participant (one that no longer has it has
// nothing to abort).
func (r *Router) abortOn(ctx context.Context, tx *routerTxn) {
	for _, s := range tx.shards {
		if _, err := r.txnCommand(ctx, tx, s, bson.D{{Key: "abortTransaction", Value: int32(1)}}); err != nil {
			r.log.Debug("abort a transaction", "shard", s, "err", err)
		}
	}
}

// transientTxnErrors are the codes after which a transaction may simply run again
// (MongoDB labels them TransientTransactionError): a write conflict, and a transaction
// its shard no longer has.
var transientTxnErrors = map[int32]bool{112: true, 251: true}

// txnReply is the reply to a command of a transaction as mongos gives it: a write
// error fails the command (the transaction is over), and an error after which the
// transaction may run again is labelled TransientTransactionError, which drivers'
// withTransaction retries.
func txnReply(reply bson.Raw) bson.Raw {
	fail := reply
	if we := writeErrorsOf(reply); len(we) > 0 {
		fail = wire.Reply(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: we[0].Lookup("errmsg")},
			{Key: "code", Value: we[0].Lookup("code")}, {Key: "codeName", Value: we[0].Lookup("codeName")}})
	}
	if ok, _ := asInt64(fail.Lookup("ok")); ok == 1 {
		return reply
	}
	code, _ := asInt64(fail.Lookup("code"))
	if !transientTxnErrors[int32(code)] {
		return fail
	}
	var d bson.D
	if err := bson.Unmarshal(fail, &d); err != nil {
		return fail
	}
	return wire.Reply(append(d, bson.E{Key: "errorLabels", Value: bson.A{"TransientTransactionError"}}))
}

// inTxn reports whether a shard command's session fields are a transaction's.
func inTxn(session bson.D) bool {
	for _, e := range session {
		if e.Key == "autocommit" {
			return true
		}
	}
	return false
}

// notInTxn refuses what the sandbox does not run in a transaction.
func notInTxn(what string) error {
	return wire.IllegalOperation(what + " is not supported in a transaction by the sandbox")
}

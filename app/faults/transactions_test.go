package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// txnRate is the transactions per second of the transaction load, beside the plain
// load; txnOpsPerEntry makes the source shards chain a transaction's entries every 2
// operations, so most are large transactions of several entries. The source's shards
// are 3-member sets: the engine reads config.transactions at read concern majority
// from the member at the majority commit point, a secondary.
const (
	txnRate        = 5
	txnOpsPerEntry = 2
)

// 8. Prepared transactions (issue 14): cross-shard transactions run through the whole
// migration (RunTxns beside the plain load). Commits are held, prepared, while the
// migration takes its T0, and released once every shard copies: those transactions
// began before T0 and commit after it. Then commits are held again and the migration
// killed (-9) once its replay is past the prepares, the commits released while it is
// down; a third time the held transactions are aborted, prepared.
// The migration must finish with the destination equal to the source.
func preparedTransactions(t *testing.T, e *env, row *faults.Row) {
	e.restartSource(sandbox.Options{Shards: 2, Members: 3, TxnOpsPerEntry: txnOpsPerEntry})
	e.startLoad(e.s.size.rate)
	var stats load.TxnStats
	ctx, stopTxns := context.WithCancel(e.ctx)
	txnsDone := make(chan error, 1)
	go func() {
		txnsDone <- load.RunTxns(ctx, e.srcC, txnRate, seed.ObjectIDs, rand.New(rand.NewPCG(e.rnd.Uint64(), e.rnd.Uint64())), &stats)
	}()
	endTxns := func() {
		if stopTxns == nil {
			return
		}
		e.src.ReleaseCommits(false)
		stopTxns()
		if err := <-txnsDone; err != nil {
			t.Errorf("transaction load: %v", err)
		}
		stopTxns = nil
		t.Logf("transactions: %s", &stats)
	}
	t.Cleanup(endTxns)

	// Prepared across T0.
	e.src.HoldCommits()
	e.awaitHeld()
	e.start()
	e.await("every shard past its T0", 5*time.Minute, func(s faults.Status) bool {
		for _, sh := range s.Shards {
			if sh.Phase == "pending" {
				return false
			}
		}
		return len(s.Shards) > 0
	})
	e.src.ReleaseCommits(false)

	// Killed inside a prepared span, twice: committed, then aborted while it is down.
	for _, abort := range []bool{false, true} {
		e.src.HoldCommits()
		e.awaitHeld()
		e.awaitReplayPastHeld()
		e.kill("with cross-shard transactions prepared and not committed")
		e.src.ReleaseCommits(abort)
		e.start()
	}
	if stats.Committed() == 0 {
		t.Error("no transaction committed")
	}
	endTxns()
	e.finish()
	row.Notes = fmt.Sprintf("prepared across T0; %d kills inside prepared spans; %s", e.kills, &stats)
	e.verify(row)
}

// awaitReplayPastHeld inserts marker documents after the held prepares until they sit
// on every source shard, and waits until the destination holds them all: every shard's
// replay then read past the prepares. (Its lag cannot say so: a shard's applied
// position stays before a transaction still open.)
func (e *env) awaitReplayPastHeld() {
	e.t.Helper()
	spec := seed.CollectionsWith(seed.ObjectIDs)[0] // shop.customers, hashed on _id
	coll := e.srcC.Database(spec.DB).Collection(spec.Name)
	var ids bson.A
	onShards := map[string]bool{}
	for len(onShards) < len(e.src.Shards()) {
		if len(ids) > 200 {
			e.t.Fatalf("200 markers in %s all landed on shards %v", spec.Namespace(), onShards)
		}
		key := spec.NewKey(e.rnd, nil)
		if _, err := coll.InsertOne(e.ctx, spec.Document(e.rnd, key)); err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, key[0].Value)
		for _, sh := range e.src.Shards() {
			if n, err := e.shardCount(sh.Addr, spec, key[0].Value); err != nil {
				e.t.Fatal(err)
			} else if n > 0 {
				onShards[sh.Name] = true
			}
		}
	}
	dst := e.dstC.Database(spec.DB).Collection(spec.Name)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, err := dst.CountDocuments(e.ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err == nil && n == int64(len(ids)) {
			return
		}
		if s, err := e.m.API().Status(e.ctx); err == nil {
			for _, sh := range s.Shards {
				if sh.Phase == "failed" {
					e.t.Fatalf("shard %s failed while the transactions were prepared: %s", sh.Name, sh.Error)
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the destination holds %d of the %d markers after 5 minutes (%v)", n, len(ids), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shardCount counts the documents of spec with _id id on the source shard at addr.
func (e *env) shardCount(addr string, spec seed.Collection, id any) (int64, error) {
	c, err := mongo.Connect(e.ctx, options.Client().ApplyURI("mongodb://"+addr+"/?directConnection=true").SetTimeout(30*time.Second))
	if err != nil {
		return 0, err
	}
	defer c.Disconnect(e.ctx)
	return c.Database(spec.DB).Collection(spec.Name).CountDocuments(e.ctx, bson.D{{Key: "_id", Value: id}})
}

// awaitHeld waits until the source's router holds a prepared commit.
func (e *env) awaitHeld() {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for e.src.HeldCommits() == 0 {
		if time.Now().After(deadline) {
			e.t.Fatal("no cross-shard transaction reached its commit in a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package faults_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// txnRate is the transactions per second of the transaction load, beside the plain
// load; txnOpsPerEntry makes the source shards chain a transaction's entries every 2
// operations, so most are large transactions of several entries.
const (
	txnRate        = 5
	txnOpsPerEntry = 2
)

// 8. Prepared transactions (issue 14): cross-shard transactions run through the whole
// migration (RunTxns beside the plain load). Commits are held, prepared, while the
// migration takes its T0, and released once every shard copies: those transactions
// began before T0 and commit after it. During steady sync commits are held again and
// the migration killed (-9) while the replay is past the prepares, the commits
// released while it is down; a third time the held transactions are aborted, prepared.
// The migration must finish with the destination equal to the source.
func preparedTransactions(t *testing.T, e *env, row *faults.Row) {
	if err := e.src.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.src, err = sandbox.Start(e.ctx, "source", sandbox.Options{Shards: 2, Dir: e.srcDir, TxnOpsPerEntry: txnOpsPerEntry}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.src.Close() })
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
		e.await("ready", 5*time.Minute, isState("ready"))
		e.src.HoldCommits()
		e.awaitHeld()
		// A lag of 0 read two seconds after the prepares means the replay applied
		// entries written after them: it is inside their span.
		held := time.Now()
		e.await("caught up past the prepares", 5*time.Minute, func(s faults.Status) bool {
			return time.Since(held) > 2*time.Second && s.CaughtUp()
		})
		e.kill("with cross-shard transactions prepared and not committed")
		e.src.ReleaseCommits(abort)
		e.start()
	}
	if stats.Committed() == 0 {
		t.Error("no transaction committed")
	}
	endTxns()
	e.finish()
	row.Notes = stats.String()
	e.verify(row)
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

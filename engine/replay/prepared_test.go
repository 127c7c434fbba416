package replay

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

// Cross-shard transactions as a 4.2+ participant shard logs them (the sandbox's shards
// write the same): applyOps entries chained by prevOpTime, partialTxn on all but the
// last, prepare on the last, then commitTransaction or abortTransaction pointing to
// the prepare.

// preparedChain is a prepared transaction's entries at tss, one operation each.
func preparedChain(lsid bson.D, txn int64, tss []primitive.Timestamp, ops ...bson.D) []bson.Raw {
	var out []bson.Raw
	prev := primitive.Timestamp{}
	for i, ts := range tss {
		mark := bson.E{Key: "partialTxn", Value: true}
		if i == len(tss)-1 {
			mark = bson.E{Key: "prepare", Value: true}
		}
		out = append(out, commandOp(ts, "admin", bson.D{{Key: "applyOps", Value: bson.A{ops[i]}}, mark},
			bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: txn},
			bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: prev}, {Key: "t", Value: int64(1)}}}))
		prev = ts
	}
	return out
}

func abortTxn(ts, prev primitive.Timestamp, lsid bson.D, txn int64) bson.Raw {
	return commandOp(ts, "admin", bson.D{{Key: "abortTransaction", Value: 1}},
		bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: txn},
		bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: prev}, {Key: "t", Value: int64(1)}}})
}

// Rule "open transactions at T0": a prepared transaction of several entries, all before
// T0, committed after T0, is applied whole, once, at its commit; one aborted after T0
// applies nothing; neither fails the shard.
func TestOpenTransactionsAtT0_PreparedChainsAcrossT0CommitWholeOrAbortToNothing(t *testing.T) {
	a, b := session(1), session(2)
	chainA := preparedChain(a, 4, []primitive.Timestamp{ts(2, 1), ts(2, 3), ts(2, 4)},
		innerInsert(ns, doc(1, 0)), innerInsert(ns, doc(2, 0)), innerInsert(ns, doc(3, 0)))
	chainB := preparedChain(b, 9, []primitive.Timestamp{ts(3, 1), ts(3, 2)},
		innerInsert(ns, doc(7, 0)), innerInsert(ns, doc(8, 0)))
	entries := []bson.Raw{noopOp(at(1))}
	entries = append(entries, chainA[0], insertOp(ts(2, 2), ns, doc(10, 0)), chainA[1], chainA[2])
	entries = append(entries, chainB...)
	entries = append(entries,
		noopOp(at(5)), // T0
		abortTxn(at(6), ts(3, 2), b, 9),
		commitTxn(at(7), ts(2, 4), a, 4),
		insertOp(at(8), ns, doc(11, 0)),
	)
	src := newFakeOplog(entries...)
	src.finite = true
	dest := newFakeDest()
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(5), T0: at(5), TxnStart: ts(2, 1)})
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("the replay failed on transactions prepared before T0: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 2, 3, 11}) {
		t.Fatalf("the destination holds %v, want [1 2 3 11]: the committed chain whole, nothing of the aborted one nor of the copy", got)
	}
	if got := dest.applied.Load(); got != 4 {
		t.Errorf("%d writes applied, want 4: the committed transaction's once", got)
	}
}

// Rule "open transactions at T0": the resume point stays before the first entry of a
// prepared transaction until its commit, so a replay stopped (a kill) while it is
// prepared reads its whole chain again and applies its commit once.
func TestOpenTransactionsAtT0_ResumeInsideAPreparedSpanAppliesTheCommitOnce(t *testing.T) {
	a := session(1)
	chain := preparedChain(a, 3, []primitive.Timestamp{at(2), at(3)}, innerInsert(ns, doc(1, 0)), innerInsert(ns, doc(2, 0)))
	src := newFakeOplog(noopOp(at(1)), chain[0], insertOp(ts(2, 5), ns, doc(5, 0)), chain[1], insertOp(at(4), ns, doc(6, 0)))
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	cfg := Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), CheckpointEvery: time.Millisecond}
	s := testShard(t, cfg)
	wait := start(t, context.Background(), s)
	eventually(t, "the writes inside the prepared span applied", func() bool { return dest.applied.Load() == 2 })
	eventually(t, "a checkpoint", func() bool { return len(cps.all()) > 0 })
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	saved := cps.all()
	resume := saved[len(saved)-1]
	if resume != at(1) {
		t.Fatalf("checkpoint %v saved inside the prepared transaction begun at %v", resume, at(2))
	}

	src.append(commitTxn(at(5), at(3), a, 3))
	src.finite = true
	cfg.Resume = resume
	if err := testShard(t, cfg).Run(context.Background()); err != nil {
		t.Fatalf("the resumed replay failed on the prepared transaction: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 2, 5, 6}) {
		t.Fatalf("the destination holds %v, want [1 2 5 6]", got)
	}
	if got := dest.applied.Load(); got != 6 {
		t.Errorf("%d writes applied, want 6: the two inside the span again (idempotent), the transaction's two once", got)
	}
}

// Rule "open transactions at T0": a replay stopped while a transaction prepared before
// T0 is still open, after it applied entries past T0, resumes before the
// transaction's first entry and applies its commit.
func TestOpenTransactionsAtT0_ResumeBeforeTheCommitOfATransactionPreparedBeforeT0(t *testing.T) {
	a := session(1)
	chain := preparedChain(a, 3, []primitive.Timestamp{at(2), at(3)}, innerInsert(ns, doc(1, 0)), innerInsert(ns, doc(2, 0)))
	src := newFakeOplog(noopOp(at(1)), chain[0], insertOp(ts(2, 5), ns, doc(5, 0)), chain[1], noopOp(at(4)), insertOp(at(5), ns, doc(6, 0)), insertOp(at(6), ns, doc(7, 0)))
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	cfg := Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(4), T0: at(4), TxnStart: at(2), CheckpointEvery: time.Millisecond}
	s := testShard(t, cfg)
	wait := start(t, context.Background(), s)
	eventually(t, "the writes after T0 applied", func() bool { return dest.applied.Load() == 2 })
	time.Sleep(20 * time.Millisecond)
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	saved := cps.all()
	t.Logf("checkpoints %v", saved)
	src.append(commitTxn(at(7), at(3), a, 3))
	src.finite = true
	if len(saved) > 0 {
		cfg.Resume = saved[len(saved)-1]
	}
	if err := testShard(t, cfg).Run(context.Background()); err != nil {
		t.Fatalf("the resumed replay: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 2, 6, 7}) {
		t.Fatalf("the destination holds %v, want [1 2 6 7]", got)
	}
}

// Rule "open transactions at T0": of two transactions prepared before T0, the first
// commits after T0 and the resume point moves up to the second's first entry; a
// replay resumed there reads the first one's commit again, without its prepare: it
// was applied before the resume point was saved, and is skipped (found by fault
// scenario 8: the shard failed with "commits a prepared transaction this sync never
// saw").
func TestOpenTransactionsAtT0_ResumeAfterAnAppliedTransactionSkipsItsCommit(t *testing.T) {
	a, b := session(1), session(2)
	ca := preparedChain(a, 2, []primitive.Timestamp{at(2)}, innerInsert(ns, doc(1, 0)))
	cb := preparedChain(b, 6, []primitive.Timestamp{at(4), at(5)}, innerInsert(ns, doc(2, 0)), innerInsert(ns, doc(3, 0)))
	src := newFakeOplog(noopOp(at(1)), ca[0], insertOp(at(3), ns, doc(5, 0)), cb[0], cb[1], noopOp(at(6)),
		commitTxn(at(7), at(2), a, 2), insertOp(at(8), ns, doc(7, 0)))
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	cfg := Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(6), T0: at(6), TxnStart: at(2), CheckpointEvery: time.Millisecond}
	s := testShard(t, cfg)
	wait := start(t, context.Background(), s)
	eventually(t, "a checkpoint past the first transaction", func() bool {
		saved := cps.all()
		return len(saved) > 0 && saved[len(saved)-1] == at(3)
	})
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	src.append(commitTxn(at(9), at(5), b, 6))
	src.finite = true
	cfg.Resume = at(3)
	if err := testShard(t, cfg).Run(context.Background()); err != nil {
		t.Fatalf("the resumed replay: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 2, 3, 7}) {
		t.Fatalf("the destination holds %v, want [1 2 3 7]", got)
	}
}

// resumeAt runs cfg until its newest checkpoint is want, stops it, appends more to
// src, ends it there and replays again from want: a kill that left the resume point
// at want.
func resumeAt(t *testing.T, src *fakeOplog, cfg Config, want primitive.Timestamp, more ...bson.Raw) error {
	t.Helper()
	cps := &fakeCheckpoints{}
	cfg.Checkpoints, cfg.CheckpointEvery = cps, time.Millisecond
	s := testShard(t, cfg)
	wait := start(t, context.Background(), s)
	eventually(t, "a checkpoint at "+tsString(want), func() bool {
		saved := cps.all()
		return len(saved) > 0 && saved[len(saved)-1] == want
	})
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	src.append(more...)
	src.finite = true
	cfg.Resume = want
	return testShard(t, cfg).Run(context.Background())
}

// Rule "transactions" (buffered by session, applied at their commit): the resume
// point can be the last entry of a transaction applied whole (the prepare), when the
// next entry opens another one still open; a replay resumed there reads the applied
// one's commit, which points to the resume point itself, and skips it (fault scenario
// 8 failed so, now and then, with "commits a prepared transaction this sync never
// saw").
func TestTransactions_ResumeAtAnAppliedPrepareSkipsItsCommit(t *testing.T) {
	a, b := session(1), session(2)
	ca := preparedChain(a, 2, []primitive.Timestamp{at(2)}, innerInsert(ns, doc(1, 0)))
	cb := preparedChain(b, 6, []primitive.Timestamp{at(3), at(4)}, innerInsert(ns, doc(2, 0)), innerInsert(ns, doc(3, 0)))
	src := newFakeOplog(noopOp(at(1)), ca[0], cb[0], cb[1], commitTxn(at(5), at(2), a, 2), insertOp(at(6), ns, doc(7, 0)))
	dest := newFakeDest()
	err := resumeAt(t, src, Config{Source: src, Destination: dest, Resume: at(1)}, at(2), commitTxn(at(7), at(4), b, 6))
	if err != nil {
		t.Fatalf("the replay resumed at the applied prepare: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 2, 3, 7}) {
		t.Fatalf("the destination holds %v, want [1 2 3 7]", got)
	}
}

// Rule "open transactions at T0": two transactions open at T0 interleave (the first
// begins, the second begins, the first prepares); the first commits after T0 and the
// resume point moves to its first entry, held there by the second. A replay resumed
// there reads the first one's prepare again (before T0, where only transactions are
// used) without its first entry: it follows the chain from the resume point and skips
// the commit instead of failing the shard.
func TestOpenTransactionsAtT0_ResumeInsideInterleavedChainsBeforeT0SkipsTheAppliedCommit(t *testing.T) {
	a, b := session(1), session(2)
	ca := preparedChain(a, 2, []primitive.Timestamp{at(2), at(4)}, innerInsert(ns, doc(1, 0)), innerInsert(ns, doc(2, 0)))
	cb := preparedChain(b, 6, []primitive.Timestamp{at(3), at(5)}, innerInsert(ns, doc(3, 0)), innerInsert(ns, doc(4, 0)))
	src := newFakeOplog(noopOp(at(1)), ca[0], cb[0], ca[1], cb[1], noopOp(at(6)), // T0
		commitTxn(at(7), at(4), a, 2), insertOp(at(8), ns, doc(7, 0)))
	dest := newFakeDest()
	cfg := Config{Source: src, Destination: dest, Resume: at(6), T0: at(6), TxnStart: at(2)}
	if err := resumeAt(t, src, cfg, at(2), commitTxn(at(9), at(5), b, 6)); err != nil {
		t.Fatalf("the replay resumed inside the interleaved chains: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 2, 3, 4, 7}) {
		t.Fatalf("the destination holds %v, want [1 2 3 4 7]", got)
	}
}

// Rule "transactions": a participant whose statements changed nothing logs an empty
// prepare ({applyOps: [], prepare: true}, as MongoDB does); its commit applies nothing
// and releases the resume point it held, which then moves on.
func TestTransactions_AnEmptyPrepareCommitsToNothingAndReleasesTheResumePoint(t *testing.T) {
	a := session(1)
	empty := commandOp(at(2), "admin", bson.D{{Key: "applyOps", Value: bson.A{}}, {Key: "prepare", Value: true}},
		bson.E{Key: "lsid", Value: a}, bson.E{Key: "txnNumber", Value: int64(4)},
		bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{}}, {Key: "t", Value: int64(-1)}}})
	src := newFakeOplog(noopOp(at(1)), empty, insertOp(at(3), ns, doc(1, 0)), commitTxn(at(4), at(2), a, 4), insertOp(at(5), ns, doc(2, 0)))
	src.finite = true
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	if err := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1)}).Run(context.Background()); err != nil {
		t.Fatalf("the replay failed on an empty prepared transaction: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 2}) {
		t.Fatalf("the destination holds %v, want [1 2]", got)
	}
	if saved := cps.all(); len(saved) == 0 || saved[len(saved)-1] != at(5) {
		t.Fatalf("checkpoints %v: the last is not past the empty transaction's commit, at %v", saved, at(5))
	}
}

// Rule "open transactions at T0": the start of a transaction's chain is found from
// any link of it that more entries follow, by the links' prevOpTime; an entry that
// ends its chain (the prepare), or is no transaction's, starts none.
func TestOpenTransactionsAtT0_TxnChainStartFollowsTheLinksBack(t *testing.T) {
	chain := preparedChain(session(1), 4, []primitive.Timestamp{ts(2, 1), ts(2, 3), ts(2, 5)},
		innerInsert(ns, doc(1, 0)), innerInsert(ns, doc(2, 0)), innerInsert(ns, doc(3, 0)))
	entries := []bson.Raw{chain[0], insertOp(ts(2, 2), ns, doc(10, 0)), chain[1], insertOp(ts(2, 4), ns, doc(11, 0)), chain[2]}
	entryAt := func(_ context.Context, at primitive.Timestamp) (bson.Raw, error) {
		for _, raw := range entries {
			if got, _ := oplog.Decode(raw); !got.TS.Before(at) {
				return raw, nil
			}
		}
		return nil, nil
	}
	for _, c := range []struct {
		name     string
		at, want primitive.Timestamp
	}{
		{"the second link", ts(2, 3), ts(2, 1)},
		{"the first entry itself", ts(2, 1), ts(2, 1)},
		{"the prepare, which ends the chain", ts(2, 5), primitive.Timestamp{}},
		{"a write between the links", ts(2, 2), primitive.Timestamp{}},
		{"past the end", ts(9, 1), primitive.Timestamp{}},
	} {
		got, err := TxnChainStart(context.Background(), entryAt, c.at)
		if err != nil || got != c.want {
			t.Errorf("%s: chain start %v (%v), want %v", c.name, got, err, c.want)
		}
	}
}

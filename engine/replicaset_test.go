package engine

import (
	"context"
	"reflect"
	"testing"

	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/replay"
)

// The correctness rules of a shard read from a replica set (docs/correctness.md),
// as the lifecycle carries them: where T0 and the replay start, and the term a
// resume checks.

// Rule "open transactions at T0": the replay reads from the oldest open
// transaction's first entry, or from the commit point read before
// config.transactions, whichever is older (a transaction that began after that
// read is not listed), and from T0 when neither is before it.
func TestOpenTransactionsAtT0_StartPointReadsFromTheOldestOpenTransaction(t *testing.T) {
	ts := func(n uint32) primitive.Timestamp { return primitive.Timestamp{T: n, I: 1} }
	for _, c := range []struct {
		name               string
		before, oldest, t0 primitive.Timestamp
		open               bool
		want               StartPoint
	}{
		{"a transaction open before", ts(10), ts(5), ts(12), true, StartPoint{T0: ts(12), TxnStart: ts(5)}},
		{"none open", ts(10), primitive.Timestamp{}, ts(12), false, StartPoint{T0: ts(12), TxnStart: ts(10)}},
		{"the oldest began after the first read", ts(10), ts(11), ts(12), true, StartPoint{T0: ts(12), TxnStart: ts(10)}},
		{"no write between the reads", ts(12), primitive.Timestamp{}, ts(12), false, StartPoint{T0: ts(12)}},
	} {
		if got := startPointOf(c.before, c.oldest, c.open, c.t0); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// Rules "T0 at the majority commit point" and "open transactions at T0": the
// shard's start point is recorded with T0 and handed to every replay of the shard,
// and the copy reads as of T0. Rule "resume check": T0's term goes with it, so
// that a replay that starts at T0, or reads past it, checks the entry there.
func TestOpenTransactionsAtT0_StartPointIsRecordedAndReachesTheReplay(t *testing.T) {
	h := newHarness(t, "s0")
	t0 := h.fc.shards["s0"].newest
	txnStart := primitive.Timestamp{T: t0.T - 5, I: 1}
	h.fc.shards["s0"].txnStart = txnStart
	h.fc.shards["s0"].t0Term = 6
	h.start(StartOptions{})
	h.eventually("s0 replaying", func() bool { return h.fc.replayer("s0") != nil })
	if cp := h.cp.shard("s0"); cp.T0 != t0 || cp.T0Term != 6 || cp.TxnStart != txnStart {
		t.Fatalf("checkpoint T0 %v of term %d, TxnStart %v; want %v of term 6, %v", cp.T0, cp.T0Term, cp.TxnStart, t0, txnStart)
	}
	want := ReplayStart{Resume: replay.OpTime{TS: t0, Term: 6}, T0: t0, T0Term: 6, TxnStart: txnStart, ConsistencyPoint: t0}
	got := h.fc.replayer("s0").from
	if got.FromMigrate == nil {
		t.Fatal("the replay has no fromMigrate cross-check")
	}
	if got.Ordered == nil {
		t.Fatal("the replay has no ordered namespaces")
	}
	if got.FromMigrate, got.Ordered = nil, nil; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay starts %+v, want %+v", got, want)
	}
}

// Rule "resume check": the term saved with the checkpoint reaches the resumed
// replay, which checks it against the source.
func TestResumeCheck_TermOfTheCheckpointReachesTheResumedReplay(t *testing.T) {
	h := newHarness(t, "s0")
	h.start(StartOptions{})
	h.eventually("s0 replaying", func() bool { return h.fc.replayer("s0") != nil })
	r := h.fc.replayer("s0")
	applied := primitive.Timestamp{T: r.resume.T + 7, I: 1}
	if err := r.sink.SaveApplied("s0", replay.OpTime{TS: applied, Term: 4}); err != nil {
		t.Fatal(err)
	}
	if cp := h.cp.shard("s0"); cp.Applied != applied || cp.AppliedTerm != 4 {
		t.Fatalf("checkpoint %v of term %d, want %v of term 4", cp.Applied, cp.AppliedTerm, applied)
	}
	h.restart()
	h.eventually("s0 replaying again", func() bool { return h.fc.replayers("s0") == 2 })
	if got := h.fc.replayer("s0").from.Resume; got != (replay.OpTime{TS: applied, Term: 4}) {
		t.Fatalf("the resumed replay starts after %+v, want %v of term 4", got, applied)
	}
}

// movingOplog is a shard whose newest entry is past its majority commit point,
// which moves each time it is read.
type movingOplog struct {
	replay.Source
	newest    primitive.Timestamp
	committed []replay.OpTime
}

func (o *movingOplog) Newest(context.Context) (primitive.Timestamp, error) { return o.newest, nil }

func (o *movingOplog) Majority(context.Context) (replay.OpTime, error) {
	ts := o.committed[0]
	if len(o.committed) > 1 {
		o.committed = o.committed[1:]
	}
	return ts, nil
}

// Rule "T0 at the majority commit point": T0 is the commit point read after
// config.transactions, never the newest entry, which can sit past an oplog hole
// or be rolled back; config.transactions is read as of the commit point before it.
// T0's term is kept with it, for the resume check.
func TestT0AtTheMajorityPoint_NotTheNewestEntry(t *testing.T) {
	ts := func(n uint32) primitive.Timestamp { return primitive.Timestamp{T: n, I: 1} }
	src := &movingOplog{newest: ts(20), committed: []replay.OpTime{{TS: ts(10), Term: 2}, {TS: ts(12), Term: 3}}}
	var readAfter primitive.Timestamp
	sp, err := startPoint(context.Background(), src, noChain, func(_ context.Context, after primitive.Timestamp) (primitive.Timestamp, bool, error) {
		readAfter = after
		return primitive.Timestamp{}, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (StartPoint{T0: ts(12), T0Term: 3, TxnStart: ts(10)}); sp != want {
		t.Fatalf("start point %+v, want %+v: T0 at the commit point read last, not the newest entry %v", sp, want, src.newest)
	}
	if readAfter != ts(10) {
		t.Fatalf("config.transactions read as of %v, want the first commit point %v", readAfter, ts(10))
	}
}

// noChain: the entry at the commit point is no link of an unfinished transaction.
func noChain(context.Context, primitive.Timestamp) (primitive.Timestamp, error) {
	return primitive.Timestamp{}, nil
}

// Rule "open transactions at T0": a commit point read inside a transaction's chain
// of entries (a secondary had applied part of it) sees no config.transactions
// record of it; the replay reads from the chain's first entry all the same, else
// the transaction's commit after T0 would fail the shard ("commits a prepared
// transaction this sync never saw": fault scenario 8, once).
func TestOpenTransactionsAtT0_ACommitPointInsideATransactionsChainReadsFromItsFirstEntry(t *testing.T) {
	ts := func(n uint32) primitive.Timestamp { return primitive.Timestamp{T: n, I: 1} }
	src := &movingOplog{newest: ts(20), committed: []replay.OpTime{{TS: ts(10), Term: 2}, {TS: ts(12), Term: 2}}}
	chainAt := func(_ context.Context, at primitive.Timestamp) (primitive.Timestamp, error) {
		if at != ts(10) {
			t.Errorf("chain looked for at %v, want the first commit point %v", at, ts(10))
		}
		return ts(7), nil
	}
	sp, err := startPoint(context.Background(), src, chainAt, func(context.Context, primitive.Timestamp) (primitive.Timestamp, bool, error) {
		return primitive.Timestamp{}, false, nil // its record is not in the snapshot yet
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (StartPoint{T0: ts(12), T0Term: 2, TxnStart: ts(7)}); sp != want {
		t.Fatalf("start point %+v, want %+v: the replay must read the transaction's first entry", sp, want)
	}
}

// Rule "follows a failover": reading T0 and the consistency point rides out a
// stepdown of the source shard's primary (the member answers "not primary" until
// the driver finds the new one), as the copy and the replay do, instead of failing
// the shard.
func TestFollowsAFailover_T0AndTheConsistencyPointRetryNotPrimary(t *testing.T) {
	notPrimary := mongo.CommandError{Code: 13435, Name: "NotPrimaryNoSecondaryOk", Message: "not primary and secondaryOk=false"}
	h := newHarness(t, "s0")
	sh := h.fc.shards["s0"]
	failing := func(on bool) int {
		h.fc.mu.Lock()
		defer h.fc.mu.Unlock()
		sh.newestErr = nil
		if on {
			sh.newestErr = notPrimary
		}
		return sh.newestReads
	}
	reads := func() int { h.fc.mu.Lock(); defer h.fc.mu.Unlock(); return sh.newestReads }
	notFailed := func() {
		if p := h.phase("s0"); p == ShardFailed {
			t.Fatalf("s0 failed on a stepdown: %s", h.cp.shard("s0").Error)
		}
	}

	// T0.
	sh.copyGate = make(chan struct{})
	before := failing(true)
	h.start(StartOptions{})
	h.eventually("T0 read again", func() bool { notFailed(); return reads() >= before+3 })
	failing(false)
	h.eventually("s0 copying", func() bool { notFailed(); return h.phase("s0") == Copying })

	// The consistency point, once the copy ends.
	before = failing(true)
	close(sh.copyGate)
	h.eventually("the consistency point read again", func() bool { notFailed(); return reads() >= before+3 })
	failing(false)
	h.eventually("s0 replaying", func() bool { notFailed(); return h.fc.replayer("s0") != nil })
}

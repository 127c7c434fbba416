package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/topology"
)

// The correctness rules of a shard read from a replica set (docs/correctness.md):
// the majority bound, the replay's start for the transactions open at T0, and the
// resume check.

// ofTerm is the entry with its term ("t") set to term.
func ofTerm(raw bson.Raw, term int64) bson.Raw {
	var d bson.D
	if err := bson.Unmarshal(raw, &d); err != nil {
		panic(err)
	}
	for i := range d {
		if d[i].Key == "t" {
			d[i].Value = term
		}
	}
	out, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return out
}

// ids are the _id of the documents the destination holds in ns, sorted.
func ids(d *fakeDest, ns string) []int32 {
	var out []int32
	for _, doc := range d.docs(ns) {
		for _, e := range doc {
			if e.Key == "_id" {
				out = append(out, e.Value.(int32))
			}
		}
	}
	slices.Sort(out)
	return out
}

// insertsUpTo is an oplog of a no-op at 1, then an insert of document i at i for
// each i from 2 to last.
func insertsUpTo(last int) []bson.Raw {
	entries := []bson.Raw{noopOp(at(1))}
	for i := 2; i <= last; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	return entries
}

// stopAndWait stops s and waits for its Run to return; either failing fails the test.
func stopAndWait(t *testing.T, s *Shard, wait func() error) {
	t.Helper()
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// commitAllAndStop moves the majority commit point of src, an oplog of entries up
// to 10, past them all; the shard applies them all and waits no more; then it is
// stopped.
func commitAllAndStop(t *testing.T, src *fakeOplog, s *Shard, wait func() error) {
	t.Helper()
	src.commit(at(10))
	eventually(t, "everything applied once committed", func() bool { return s.Snapshot().Applied == at(10) })
	if got := s.Snapshot().Waiting; got != "" {
		t.Errorf("still waiting once the point passed every entry: %q", got)
	}
	stopAndWait(t, s, wait)
}

// Rule "majority bound": entries past the source's majority commit point wait,
// unapplied, until the point moves past them; meanwhile the tailer reads nothing
// more than the batch it holds.
func TestMajorityBound_ReplayNeverAppliesPastTheMajorityCommitPoint(t *testing.T) {
	entries := insertsUpTo(10)
	src := newFakeOplog(entries...) // batches of 3
	src.commit(at(5))
	dest := newFakeDest()
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1)})
	wait := start(t, context.Background(), s)

	eventually(t, "the committed entries applied", func() bool { return s.Snapshot().Applied == at(5) })
	polls := src.majorityReads.Load()
	eventually(t, "the replay asking the commit point again while it waits", func() bool { return src.majorityReads.Load() >= polls+3 })
	if got := ids(dest, ns); !slices.Equal(got, []int32{2, 3, 4, 5}) {
		t.Fatalf("the destination holds %v, want [2 3 4 5]: nothing past the majority commit point", got)
	}
	if p := s.Snapshot(); p.Applied != at(5) || p.Committed != at(5) || p.CommitWaits == 0 {
		t.Fatalf("progress: applied %v, committed %v, %d waits; want both at %v and waits counted", p.Applied, p.Committed, p.CommitWaits, at(5))
	}
	// Bounded memory: while it waits, the tailer reads nothing past its batch.
	read := src.reads.Load()
	for i := 11; i <= 100; i++ {
		src.append(insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	polls = src.majorityReads.Load()
	eventually(t, "more waiting", func() bool { return src.majorityReads.Load() >= polls+3 })
	if got := src.reads.Load(); got != read || got > 6 {
		t.Fatalf("the tailer read %d entries while waiting (%d before): it must hold one batch", got, read)
	}

	src.commit(at(100))
	eventually(t, "everything applied once committed", func() bool { return s.Snapshot().Applied == at(100) })
	stopAndWait(t, s, wait)
	if got := len(ids(dest, ns)); got != 99 {
		t.Fatalf("%d documents, want 99", got)
	}
}

// Rule "resume check": the checkpoint keeps the term of the entry applied last.
func TestResumeCheck_CheckpointRecordsTheTermOfTheLastEntry(t *testing.T) {
	src := newFakeOplog(ofTerm(noopOp(at(1)), 3), ofTerm(insertOp(at(2), ns, doc(2, 0)), 3), ofTerm(noopOp(at(3)), 4))
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: src, Destination: newFakeDest(), Checkpoints: cps, Resume: at(1), ResumeTerm: 3})
	wait := start(t, context.Background(), s)
	eventually(t, "every entry applied", func() bool { return s.Snapshot().Applied == at(3) })
	stopAndWait(t, s, wait)
	if got, term := cps.last(), cps.lastTerm(); got != at(3) || term != 4 {
		t.Fatalf("checkpoint %v of term %d, want %v of term 4", got, term, at(3))
	}
}

// Rule "resume check": on resume, the entry at the checkpoint must be the one
// applied (same ts and term) on the source, which may be a new primary; else the
// source rolled back past what was applied, and the shard fails saying so. An
// oplog that rolled past the checkpoint is a gap, not a rollback; a checkpoint
// saved without a term resumes on its ts.
func TestResumeCheck_EntryAtTheCheckpointMustBeTheOneApplied(t *testing.T) {
	rolledBack := func(t *testing.T, err error) {
		t.Helper()
		var rb *RollbackError
		if !errors.As(err, &rb) || !errors.Is(err, ErrRolledBack) {
			t.Fatalf("got %v, want a *RollbackError", err)
		}
		for _, want := range []string{"rolled back past what was applied", "restart this shard to copy it again"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not say %q", err, want)
			}
		}
	}
	run := func(t *testing.T, src *fakeOplog, term int64) (*Shard, error) {
		t.Helper()
		s := testShard(t, Config{Source: src, Destination: newFakeDest(), Resume: at(3), ResumeTerm: term})
		wait := start(t, context.Background(), s)
		return s, wait()
	}
	t.Run("another term at its ts", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(1)), 1), ofTerm(noopOp(at(2)), 1), ofTerm(insertOp(at(3), ns, doc(3, 0)), 2))
		_, err := run(t, src, 1)
		rolledBack(t, err)
		if !strings.Contains(err.Error(), "one of term 2, not 1") {
			t.Errorf("message %q does not name both terms", err)
		}
	})
	t.Run("gone, older entries kept", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(1)), 1), ofTerm(noopOp(at(2)), 1), ofTerm(noopOp(at(4)), 2))
		_, err := run(t, src, 1)
		rolledBack(t, err)
	})
	t.Run("rolled off the end: a gap", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(4)), 1), ofTerm(noopOp(at(5)), 1))
		_, err := run(t, src, 1)
		var gap *GapError
		if !errors.As(err, &gap) {
			t.Fatalf("got %v, want a *GapError", err)
		}
	})
	t.Run("same term: resumes", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(3)), 1), ofTerm(insertOp(at(4), ns, doc(4, 0)), 2))
		src.finite = true
		if _, err := run(t, src, 1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("old checkpoint without a term: ts only", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(3)), 7), ofTerm(insertOp(at(4), ns, doc(4, 0)), 7))
		src.finite = true
		s, err := run(t, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Snapshot().Applied; got != at(4) {
			t.Fatalf("applied up to %v, want %v", got, at(4))
		}
	})
}

// preparedTxn is a prepared transaction's prepare entry; commitTxn its commit.
func preparedTxn(ts primitive.Timestamp, lsid bson.D, txn int64, ops ...bson.D) bson.Raw {
	return commandOp(ts, "admin", bson.D{{Key: "applyOps", Value: ops}, {Key: "prepare", Value: true}},
		bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: txn},
		bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{}}, {Key: "t", Value: int64(-1)}}})
}

func commitTxn(ts, prev primitive.Timestamp, lsid bson.D, txn int64) bson.Raw {
	return commandOp(ts, "admin", bson.D{{Key: "commitTransaction", Value: 1}, {Key: "commitTimestamp", Value: ts}},
		bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: txn},
		bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: prev}, {Key: "t", Value: int64(1)}}})
}

func session(b byte) bson.D {
	id := make([]byte, 16)
	id[0] = b
	return bson.D{{Key: "id", Value: primitive.Binary{Subtype: 4, Data: id}}}
}

// Rule "open transactions at T0": a replay that starts at T0 reads from the first
// entry of the oldest transaction open at T0, so that a transaction prepared
// before T0 and committed after it is applied whole; of the entries up to T0 it
// applies nothing (the copy holds them), drops the transactions that ended before
// T0, ignores those that began before what it read, and never fails on them.
func TestOpenTransactionsAtT0_ReplayStartsAtTheOldestOpenTransaction(t *testing.T) {
	a, b, c := session(1), session(2), session(3)
	prepared := primitive.Timestamp{T: 2, I: 2}
	src := newFakeOplog(
		noopOp(at(1)),
		insertOp(at(2), ns, doc(6, 0)), // just before the transaction: in the copy
		preparedTxn(prepared, a, 1, innerInsert(ns, doc(1, 0))), // open at T0: committed at 8
		insertOp(at(3), ns, doc(2, 0)),                          // in the copy
		txnOp(at(4), primitive.Timestamp{}, b, 1, true, innerInsert(ns, doc(3, 0))),
		txnOp(at(5), at(4), b, 1, false, innerInsert(ns, doc(4, 0))), // ended before T0: in the copy
		commitTxn(at(6), at(0), c, 1),                                // began before what is read: ended before T0
		noopOp(at(7)),                                                // T0
		commitTxn(at(8), prepared, a, 1),
		insertOp(at(9), ns, doc(5, 0)),
	)
	src.finite = true
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(7), T0: at(7), TxnStart: prepared, CheckpointEvery: time.Millisecond})
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("the replay failed on a transaction open at T0: %v", err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{1, 5}) {
		t.Fatalf("the destination holds %v, want [1 5]: the transaction open at T0 and the write after T0, nothing the copy holds", got)
	}
	if got := s.Snapshot().Applied; got != at(9) {
		t.Fatalf("applied up to %v, want %v", got, at(9))
	}
	if got := s.Snapshot().Skipped[SkipCopied]; got != 4 {
		t.Errorf("%d entries skipped as in the copy, want 4 (at 3, 5, 6 and T0)", got)
	}
	if tails := src.tailedFrom(); len(tails) != 1 || tails[0] != prepared {
		t.Errorf("tailed from %v, want from the transaction's first entry %v", tails, prepared)
	}
	for _, ts := range cps.all() {
		if ts.Before(prepared) {
			t.Errorf("checkpoint %v saved: there is no entry before the transaction's first one to resume from", ts)
		}
	}
}

// Rule "open transactions at T0": a replay that resumes from a checkpoint reads
// after it, not from TxnStart again (its entries up to the checkpoint are applied).
func TestOpenTransactionsAtT0_ResumedReplayStartsAtItsCheckpoint(t *testing.T) {
	a := session(1)
	src := newFakeOplog(
		preparedTxn(at(2), a, 1, innerInsert(ns, doc(1, 0))),
		noopOp(at(7)),
		commitTxn(at(8), at(2), a, 1),
		insertOp(at(9), ns, doc(5, 0)),
	)
	src.finite = true
	dest := newFakeDest()
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(8), T0: at(7), TxnStart: at(2)})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{5}) {
		t.Fatalf("the destination holds %v, want [5]", got)
	}
}

// The Translator's side of the rule: ProcessCopied never fails on a transaction
// whose start it did not see.
func TestOpenTransactionsAtT0_CommitOfAnUnseenTransactionBeforeT0IsIgnored(t *testing.T) {
	tr := oplog.NewTranslator(oplog.Config{})
	e, err := oplog.Decode(commitTxn(at(6), at(1), session(3), 1))
	if err != nil {
		t.Fatal(err)
	}
	items, err := tr.ProcessCopied(&e, nil)
	if err != nil || len(items) != 1 || items[0].Kind != oplog.ItemPosition {
		t.Fatalf("got %v, %v; want one position item", items, err)
	}
}

// Rule "majority bound": a primary elected a moment ago may report no commit point
// yet; the replay waits for one, saying why, instead of failing the shard.
func TestMajorityBound_NoCommitPointYetWaitsForOne(t *testing.T) {
	src := newFakeOplog(noopOp(at(1)), insertOp(at(2), ns, doc(2, 0)))
	src.noCommitPoint.Store(true)
	dest := newFakeDest()
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1)})
	wait := start(t, context.Background(), s)
	eventually(t, "the wait reported", func() bool { return strings.Contains(s.Snapshot().Retrying, "reports none") })
	if p := s.Snapshot(); p.Applied != at(1) || p.Err != nil {
		t.Fatalf("applied %v, err %v while no commit point is known", p.Applied, p.Err)
	}
	src.noCommitPoint.Store(false)
	eventually(t, "the entry applied once the point is known", func() bool { return s.Snapshot().Applied == at(2) })
	if got := s.Snapshot().Retrying; got != "" {
		t.Errorf("still retrying: %q", got)
	}
	stopAndWait(t, s, wait)
}

// reportingOplog is a fake oplog whose replica set's members are where members says.
type reportingOplog struct {
	*fakeOplog
	members []topology.MemberOpTime
}

func (o reportingOplog) Members(context.Context) ([]topology.MemberOpTime, error) {
	return o.members, nil
}

// Rule "majority bound", as the DBA sees it: while entries wait for the majority, the
// shard's progress says which members hold the entry waited for, how many are
// needed, and how far behind each other member is or that it is unreachable.
func TestMajorityBound_ProgressNamesTheMembersBehind(t *testing.T) {
	entries := insertsUpTo(10)
	src := reportingOplog{fakeOplog: newFakeOplog(entries...), members: []topology.MemberOpTime{
		{Name: "rs0-0:27018", State: "PRIMARY", Reachable: true, TS: at(10)},
		{Name: "rs0-1:27018", State: "SECONDARY", Reachable: true, TS: at(4)},
		{Name: "rs0-2:27018", State: "(not reachable/healthy)", TS: at(3)},
	}}
	src.commit(at(5))
	s := testShard(t, Config{Source: src, Destination: newFakeDest(), Resume: at(1)})
	wait := start(t, context.Background(), s)
	eventually(t, "the members shown", func() bool { return strings.Contains(s.Snapshot().Waiting, "needed") })
	got := s.Snapshot().Waiting
	want := "waiting for a majority of the source shard's members to catch up: 1 of 3 members holds the entry of " +
		time.Unix(6, 0).UTC().Format("15:04:05 UTC") + " (2 needed); rs0-1:27018 is 2s behind, rs0-2:27018 is unreachable; " +
		"entries are applied once a majority holds them, so that a failover cannot take back a write applied here"
	if got != want {
		t.Errorf("waiting\n%q, want\n%q", got, want)
	}
	commitAllAndStop(t, src.fakeOplog, s, wait)
}

// Rule "majority bound", as the DBA sees it: while entries wait for the majority
// commit point for longer than a moment, the shard's progress says so and by how
// much the majority is behind, so that a growing lag explains itself; once the point
// moves past them it no longer does.
func TestMajorityBound_ProgressSaysEntriesWaitForTheMajority(t *testing.T) {
	entries := insertsUpTo(10)
	src := newFakeOplog(entries...)
	src.commit(at(5))
	s := testShard(t, Config{Source: src, Destination: newFakeDest(), Resume: at(1)})
	wait := start(t, context.Background(), s)
	eventually(t, "the committed entries applied", func() bool { return s.Snapshot().Applied == at(5) })
	eventually(t, "the wait for the majority shown", func() bool { return s.Snapshot().Waiting != "" })
	got := s.Snapshot().Waiting
	for _, want := range []string{"waiting for a majority of the source shard's members to catch up", "5s behind its newest entry", "failover"} {
		if !strings.Contains(got, want) {
			t.Errorf("waiting %q, want it to say %q", got, want)
		}
	}
	commitAllAndStop(t, src, s, wait)
}

// Rule "majority bound", for oplog holes: a cursor can pass an entry that is not yet
// visible (a write still committing on the primary) while it returns later ones. The
// majority commit point never passes such a hole, so the entries after the point
// that waited for it are read again, once it has moved, by a cursor opened after the
// last entry handed on: the entry of the hole is applied, not lost.
func TestMajorityBound_AnEntryInAnOplogHoleIsReadOnceTheMajorityPassesIt(t *testing.T) {
	entries := insertsUpTo(6)
	src := newFakeOplog(entries...) // batches of 3: [1 2 3], then [5 6] past the hole at 4
	src.hide(at(4))
	src.commit(at(3))
	dest := newFakeDest()
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1)})
	wait := start(t, context.Background(), s)
	eventually(t, "the entries before the hole applied", func() bool { return s.Snapshot().Applied == at(3) })
	polls := src.majorityReads.Load()
	eventually(t, "the entries after the hole waiting", func() bool { return src.majorityReads.Load() >= polls+3 })
	src.reveal()
	src.commit(at(6))
	eventually(t, "everything applied", func() bool { return s.Snapshot().Applied == at(6) })
	stopAndWait(t, s, wait)
	if got := ids(dest, ns); !slices.Equal(got, []int32{2, 3, 4, 5, 6}) {
		t.Fatalf("the destination holds %v, want [2 3 4 5 6]: the entry of the hole must be applied", got)
	}
	if tails := src.tailedFrom(); len(tails) != 2 || tails[1] != at(3) {
		t.Errorf("tailed from %v, want the resume point, then the last entry handed on (%v)", tails, at(3))
	}
}

// Rule "resume check", at T0: a replay that starts at T0, before it applied anything,
// checks that the entry there is T0's (same term), and so does one that reads from
// before T0 (the oldest open transaction's first entry) when it reaches T0: the copy
// holds the writes up to that entry, and a source that lost it rolled back what the
// destination holds.
func TestResumeCheck_EntryAtT0MustBeOfT0sTerm(t *testing.T) {
	atT0 := func(t *testing.T, err error) {
		t.Helper()
		var rb *RollbackError
		if !errors.As(err, &rb) || !rb.AtT0 {
			t.Fatalf("got %v, want a *RollbackError at T0", err)
		}
		if !strings.Contains(err.Error(), "the shard's T0, up to which the destination holds its copy") {
			t.Errorf("message %q does not say the entry was T0", err)
		}
	}
	run := func(t *testing.T, src *fakeOplog, cfg Config) error {
		t.Helper()
		cfg.Source, cfg.Destination, cfg.T0, cfg.T0Term = src, newFakeDest(), at(3), 1
		s := testShard(t, cfg)
		return start(t, context.Background(), s)()
	}
	t.Run("resumed at T0: another term there", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(2)), 1), ofTerm(noopOp(at(3)), 2), ofTerm(insertOp(at(4), ns, doc(4, 0)), 2))
		err := run(t, src, Config{Resume: at(3), ResumeTerm: 1})
		atT0(t, err)
		if !strings.Contains(err.Error(), "one of term 2, not 1") {
			t.Errorf("message %q does not name both terms", err)
		}
	})
	t.Run("read from an open transaction: another term at T0", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(1)), 1), ofTerm(noopOp(at(2)), 1), ofTerm(noopOp(at(3)), 2), ofTerm(insertOp(at(4), ns, doc(4, 0)), 2))
		atT0(t, run(t, src, Config{Resume: at(3), ResumeTerm: 1, TxnStart: at(2)}))
	})
	t.Run("read from an open transaction: T0 gone", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(1)), 1), ofTerm(noopOp(at(2)), 1), ofTerm(insertOp(at(4), ns, doc(4, 0)), 2))
		atT0(t, run(t, src, Config{Resume: at(3), ResumeTerm: 1, TxnStart: at(2)}))
	})
	t.Run("read from an open transaction: T0 of its term", func(t *testing.T) {
		src := newFakeOplog(ofTerm(noopOp(at(1)), 1), ofTerm(noopOp(at(2)), 1), ofTerm(noopOp(at(3)), 1), ofTerm(insertOp(at(4), ns, doc(4, 0)), 2))
		src.finite = true
		if err := run(t, src, Config{Resume: at(3), ResumeTerm: 1, TxnStart: at(2)}); err != nil {
			t.Fatal(err)
		}
	})
}

// Rule "majority bound": the cursor opened again after a wait must start with the
// entry handed on last; an oplog that rolled past it meanwhile is a gap (the shard
// fails saying so), never a silent jump over the entries it lost.
func TestMajorityBound_AReopenedCursorMustStartAtTheLastEntryHandedOn(t *testing.T) {
	entries := insertsUpTo(6)
	src := newFakeOplog(entries...) // batches of 3: [1 2 3] handed on, [4 5 6] waits
	src.commit(at(3))
	dest := newFakeDest()
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1)})
	wait := start(t, context.Background(), s)
	eventually(t, "the committed entries applied", func() bool { return s.Snapshot().Applied == at(3) })
	polls := src.majorityReads.Load()
	eventually(t, "the next entries waiting", func() bool { return src.majorityReads.Load() >= polls+3 })
	src.rollTo(at(5))
	src.commit(at(6))
	var gap *GapError
	if err := wait(); !errors.As(err, &gap) || gap.Resume != at(3) {
		t.Fatalf("got %v, want a *GapError from %v", err, at(3))
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{2, 3}) {
		t.Fatalf("the destination holds %v, want [2 3]: nothing after the gap", got)
	}
}

// Rule "read preference": when the member the tail reads changes role (or no member
// matches the preference a moment), the replay resumes from its checkpoint on a
// member chosen again, saying why meanwhile; the shard does not fail.
func TestReadPreference_AMemberGoneIsChosenAgainNotAFailure(t *testing.T) {
	for _, gone := range []error{
		fmt.Errorf("read the majority commit point: %w: m1:27017 is the primary now, and the read preference is secondary", topology.ErrMemberChanged),
		fmt.Errorf("choose the member to tail (read preference secondary): %w", topology.ErrNoEligibleMember),
	} {
		var entries []bson.Raw
		for i := 1; i <= 20; i++ {
			entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
		}
		src := newFakeOplog(entries[:10]...)
		s := testShard(t, Config{Source: src, Destination: newFakeDest(), Resume: at(1)})
		wait := start(t, context.Background(), s)
		eventually(t, "the first entries applied", func() bool { return s.Snapshot().Applied == at(10) })
		src.inject(gone)
		eventually(t, "the member change reported", func() bool { return strings.Contains(s.Snapshot().Retrying, "read preference") })
		src.append(entries[10:]...)
		eventually(t, "every entry applied", func() bool { return s.Snapshot().Applied == at(20) })
		if from := src.tailedFrom(); len(from) != 2 || from[1] != at(10) {
			t.Errorf("%v: tailed from %v, want the resume point again", gone, from)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatalf("%v: the shard failed: %v", gone, err)
		}
	}
}

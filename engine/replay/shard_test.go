package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/oplog"
)

const ns = "db.c"

func doc(id, v int) bson.D {
	return bson.D{{Key: "_id", Value: int32(id)}, {Key: "v", Value: int32(v)}}
}

func TestResumeStartsAtTheCheckpointAndSkipsItOnce(t *testing.T) {
	var entries []bson.Raw
	for i := 1; i <= 10; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	src := newFakeOplog(entries...)
	src.finite = true
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(5)})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := src.tailedFrom(); len(got) != 1 || got[0] != at(5) {
		t.Fatalf("tailed from %v, want the checkpoint %v", got, at(5))
	}
	docs := dest.docs(ns)
	for i := 1; i <= 10; i++ {
		_, ok := docs[idKey(bsonValue(int32(i)))]
		if want := i > 5; ok != want {
			t.Errorf("document %d applied: %v, want %v (the entry at the checkpoint and before it are applied already)", i, ok, want)
		}
	}
	if n := len(dest.writes()); n != 5 {
		t.Errorf("%d writes, want 5: each entry after the checkpoint once", n)
	}
	if got := cps.last(); got != at(10) {
		t.Errorf("final checkpoint %v, want %v", got, at(10))
	}
}

func bsonValue(v any) bson.RawValue {
	raw, _ := bson.Marshal(bson.D{{Key: "x", Value: v}})
	return bson.Raw(raw).Lookup("x")
}

func TestOplogGapFailsTheShardWithThePlainMessage(t *testing.T) {
	var entries []bson.Raw
	for i := 1; i <= 10; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	t.Run("checkpoint rolled off before the start", func(t *testing.T) {
		src := newFakeOplog(entries...)
		src.rollTo(at(7))
		dest := newFakeDest()
		cps := &fakeCheckpoints{}
		s := testShard(t, Config{Shard: "rs1", Source: src, Destination: dest, Checkpoints: cps, Resume: at(5)})
		err := s.Run(context.Background())
		checkGap(t, err, "rs1", at(5))
		if n := len(dest.writes()); n != 0 {
			t.Errorf("%d writes applied from beyond a gap", n)
		}
		if got := cps.last(); got.After(at(5)) {
			t.Errorf("checkpoint %v moved past the gap", got)
		}
		if p := s.Snapshot(); !errors.Is(p.Err, ErrOplogGap) {
			t.Errorf("progress error %v, want the gap", p.Err)
		}
	})
	t.Run("position lost while tailing", func(t *testing.T) {
		src := newFakeOplog(entries[:5]...)
		dest := newFakeDest()
		s := testShard(t, Config{Shard: "rs1", Source: src, Destination: dest, Resume: at(1)})
		wait := start(t, context.Background(), s)
		eventually(t, "the first entries applied", func() bool { return s.Snapshot().Applied == at(5) })
		// The source writes faster than the shard reads: the cursor's position rolls off.
		src.appendRolling(at(8), entries[5:]...)
		checkGap(t, wait(), "rs1", at(5))
	})
}

func checkGap(t *testing.T, err error, shard string, resume primitive.Timestamp) {
	t.Helper()
	if !errors.Is(err, ErrOplogGap) {
		t.Fatalf("error %v, want ErrOplogGap", err)
	}
	want := fmt.Sprintf("the oplog of shard %s no longer reaches back to %s (Timestamp(%d, %d)): restart this shard",
		shard, time.Unix(int64(resume.T), 0).UTC().Format("2006-01-02 15:04:05 UTC"), resume.T, resume.I)
	if err.Error() != want {
		t.Fatalf("message\n  %q\nwant\n  %q", err.Error(), want)
	}
}

func TestApplierFailureHoldsTheCheckpoint(t *testing.T) {
	// Document 1's write at ts 2 fails on the destination after every later entry
	// (other documents, other appliers) was applied: the checkpoint must stay at 1.
	entries := []bson.Raw{noopOp(at(1))}
	for i := 2; i <= 40; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i-1, 0)))
	}
	src := newFakeOplog(entries...)
	src.finite = true
	dest := newFakeDest()
	release := make(chan struct{})
	dest.gate = func(ctx context.Context, _ oplog.Namespace, writes []oplog.Write) error {
		if writes[0].Filter.Lookup("_id").Int32() != 1 {
			return nil
		}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
		if w.Filter.Lookup("_id").Int32() == 1 {
			return writeError(2) // BadValue: not transient, not an idempotency error
		}
		return nil
	}
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), Appliers: 4, BatchWrites: 1, CheckpointEvery: time.Millisecond})
	wait := start(t, context.Background(), s)
	// The writes of the other appliers go through (and, pipelined, some of those
	// queued behind document 1's on its applier).
	others := 0
	for id := 2; id <= 39; id++ {
		if partition(id, 4) != partition(1, 4) {
			others++
		}
	}
	eventually(t, "the writes of the other appliers applied", func() bool { return dest.applied.Load() >= int64(others) })
	eventually(t, "a checkpoint taken with them applied", func() bool { return len(cps.all()) > 0 })
	close(release)
	err := wait()
	if err == nil || !strings.Contains(err.Error(), "ts Timestamp(2, 1)") && !strings.Contains(err.Error(), "Timestamp(2, 1)") {
		t.Fatalf("error %v, want the failed write's entry named", err)
	}
	for _, ts := range cps.all() {
		if ts != at(1) {
			t.Fatalf("checkpoint %v passed the unapplied entry at %v (saved: %v)", ts, at(2), cps.all())
		}
	}
	if got := s.Snapshot().Applied; got != at(1) {
		t.Fatalf("resume point %v, want %v", got, at(1))
	}
}

func TestPerDocumentOrderHoldsAcrossAppliers(t *testing.T) {
	// 50 documents, each inserted then updated 40 times and finally deleted or not,
	// interleaved; eight appliers on a destination with random latency.
	const docs, updates = 50, 40
	entries := []bson.Raw{noopOp(at(1))}
	ts := uint32(1)
	next := func() primitive.Timestamp { ts++; return at(ts) }
	for d := range docs {
		entries = append(entries, insertOp(next(), ns, doc(d, 0)))
	}
	for v := 1; v <= updates; v++ {
		for d := range docs {
			entries = append(entries, setOp(next(), ns, int32(d), bson.D{{Key: "v", Value: int32(v)}}))
		}
	}
	for d := 0; d < docs; d += 2 {
		entries = append(entries, deleteOp(next(), ns, int32(d)))
	}
	src := newFakeOplog(entries...)
	src.finite = true
	src.batch = 64
	dest := newFakeDest()
	dest.delay = true
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 8, BatchWrites: 7, Linger: 50 * time.Microsecond})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := map[string]int32{}
	for _, w := range dest.writes() {
		prev, seen := last[w.id]
		switch {
		case !seen && w.kind != oplog.InsertReplace:
			t.Fatalf("document %s: first write is a %v, want its insert", w.id, w.kind)
		case seen && w.v != -1 && w.v != prev+1:
			t.Fatalf("document %s went from v %d to v %d: its writes were reordered", w.id, prev, w.v)
		case seen && prev == -1:
			t.Fatalf("document %s written after its delete", w.id)
		}
		last[w.id] = w.v
	}
	final := dest.docs(ns)
	if len(final) != docs/2 {
		t.Fatalf("%d documents left, want %d", len(final), docs/2)
	}
	for id, d := range final {
		if v := d[1].Value.(int32); v != updates {
			t.Errorf("document %s ends at v %d, want %d", id, v, updates)
		}
	}
	if s.Snapshot().Applied != at(ts) {
		t.Errorf("resume point %v, want %v", s.Snapshot().Applied, at(ts))
	}
}

func TestDDLWaitsForAppliersToDrain(t *testing.T) {
	// Inserts into db.c, a drop of db.c, inserts into db.c again and into db.d. The
	// drop must run after every earlier insert is applied and before any later
	// insert into db.c; db.d is not held by it.
	entries := []bson.Raw{noopOp(at(1))}
	for i := 2; i <= 20; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	entries = append(entries, commandOp(at(21), "db", bson.D{{Key: "drop", Value: "c"}}))
	for i := 22; i <= 30; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)), insertOp(primitive.Timestamp{T: uint32(i), I: 2}, "db.d", doc(i, 0)))
	}
	src := newFakeOplog(entries...)
	src.finite = true
	dest := newFakeDest()
	dest.delay = true
	dest.gate = func(_ context.Context, n oplog.Namespace, writes []oplog.Write) error {
		if n.Coll == "c" && writes[0].Filter.Lookup("_id").Int32() <= 20 {
			time.Sleep(time.Millisecond) // the writes before the drop are the slow ones
		}
		return nil
	}
	exec := &fakeExec{dest: dest}
	s := testShard(t, Config{Source: src, Destination: dest, DDL: startDDL(t, []string{"s0"}, exec), Resume: at(1), Appliers: 4, BatchWrites: 2})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ran := exec.ran()
	if len(ran) != 1 || ran[0].ddl.Kind != oplog.DDLDrop {
		t.Fatalf("DDL run: %+v, want one drop", ran)
	}
	if ran[0].writesApplied < 19 {
		t.Fatalf("the drop ran with %d writes applied, before the 19 inserts that precede it", ran[0].writesApplied)
	}
	left := dest.docs(ns)
	if len(left) != 9 {
		t.Fatalf("db.c holds %d documents, want the 9 inserted after the drop", len(left))
	}
	for id := range left {
		if idInt(id) <= 20 {
			t.Errorf("document %s, inserted before the drop, survived it", id)
		}
	}
	if p := s.Snapshot(); p.DDL != 1 || p.Inserts != 37 {
		t.Errorf("progress %+v, want 1 DDL and 37 inserts (the entry at the resume point is applied already)", p)
	}
}

// ddlBesideASlowWrite is an oplog where a write to db.d (document 1, at ts 2) is
// slow on the destination and a drop of db.c (at 4) follows it: the drop concerns
// db.c alone. Documents c1 of db.c, inserted before the drop, and c2, inserted
// after it, go to other appliers than the slow write; 8 documents of db.e follow.
func ddlBesideASlowWrite(appliers int) (entries []bson.Raw, c1, c2 int) {
	held := partitionIn("db.d", 1, appliers)
	c1 = 1
	for partitionIn(ns, c1, appliers) == held {
		c1++
	}
	c2 = c1 + 1
	for partitionIn(ns, c2, appliers) == held {
		c2++
	}
	entries = []bson.Raw{
		noopOp(at(1)),
		insertOp(at(2), "db.d", doc(1, 0)),
		insertOp(at(3), ns, doc(c1, 0)),
		commandOp(at(4), "db", bson.D{{Key: "drop", Value: "c"}}),
		insertOp(at(5), ns, doc(c2, 0)),
	}
	for i := range 8 {
		entries = append(entries, insertOp(at(uint32(6+i)), "db.e", doc(i, 0)))
	}
	return entries, c1, c2
}

func TestDDLWaitsOnlyForTheWritesToItsNamespaces(t *testing.T) {
	// The drop of db.c runs once db.c's earlier write is applied, while the slow
	// write to db.d before it is still unanswered; db.c's write after the drop
	// follows it, db.e's writes go on. The resume point stays before the slow write.
	const appliers = 4
	entries, _, c2 := ddlBesideASlowWrite(appliers)
	src := newFakeOplog(entries...)
	src.finite = true
	dest := newFakeDest()
	release := make(chan struct{})
	dest.gate = func(ctx context.Context, n oplog.Namespace, _ []oplog.Write) error {
		if n.Coll != "d" {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	exec := &fakeExec{dest: dest}
	s := testShard(t, Config{Source: src, Destination: dest, DDL: startDDL(t, []string{"s0"}, exec), Resume: at(1), Appliers: appliers, BatchWrites: 1})
	wait := start(t, context.Background(), s)
	eventually(t, "the drop of db.c run while the write to db.d before it is held", func() bool { return len(exec.ran()) == 1 })
	eventually(t, "db.c's insert after the drop applied", func() bool { return len(dest.docs(ns)) == 1 })
	if got := ids(dest, ns); !slices.Equal(got, []int32{int32(c2)}) {
		t.Fatalf("db.c holds documents %v, want only %d, inserted after the drop", got, c2)
	}
	others := 0
	for i := range 8 {
		if partitionIn("db.e", i, appliers) != partitionIn("db.d", 1, appliers) {
			others++
		}
	}
	eventually(t, "db.e's writes on the other appliers applied", func() bool { return len(dest.docs("db.e")) >= others })
	if got := s.Snapshot().Applied; got != at(1) {
		t.Fatalf("resume point %v while the write at %v is unanswered, want %v", got, at(2), at(1))
	}
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if len(dest.docs("db.d")) != 1 || len(dest.docs("db.e")) != 8 || len(dest.docs(ns)) != 1 {
		t.Fatalf("db.d %d, db.e %d, db.c %d documents, want 1, 8 and 1", len(dest.docs("db.d")), len(dest.docs("db.e")), len(dest.docs(ns)))
	}
	if got := s.Snapshot().Applied; got != at(13) {
		t.Fatalf("resume point %v, want the last entry %v", got, at(13))
	}
}

func TestAKillWhileADDLWentAheadOfAnEarlierWriteSkipsNothing(t *testing.T) {
	// The drop of db.c (at 4) and the writes after it are applied while the write
	// to db.d at 2 is unanswered; then the process dies and that write never
	// lands. The checkpoints stay before it, and the next process, resuming from
	// them, applies it, does not bring back db.c's document from before the drop
	// (the drop is recorded applied), and ends with every document it should.
	const appliers = 4
	entries, _, c2 := ddlBesideASlowWrite(appliers)
	src := newFakeOplog(entries...)
	dest := newFakeDest()
	killed := make(chan struct{})
	dest.gate = func(_ context.Context, n oplog.Namespace, _ []oplog.Write) error {
		if n.Coll != "d" {
			return nil
		}
		<-killed
		return errors.New("connection closed")
	}
	exec := &fakeExec{dest: dest}
	log := &memDDLLog{}
	cps := &fakeCheckpoints{}
	first := startDDL(t, []string{"s0"}, exec)
	first.Recover("s0", nil, log)
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, DDL: first, Resume: at(1), Appliers: appliers, BatchWrites: 1, CheckpointEvery: time.Millisecond})
	ctx, kill := context.WithCancel(context.Background())
	wait := start(t, ctx, s)
	eventually(t, "the drop run and db.c's insert after it applied", func() bool { return len(exec.ran()) == 1 && len(dest.docs(ns)) == 1 })
	saved := len(cps.all())
	eventually(t, "a checkpoint saved since", func() bool { return len(cps.all()) > saved })
	kill()
	close(killed)
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	for _, ts := range cps.all() {
		if ts.After(at(1)) {
			t.Fatalf("checkpoint %v passed the write at %v that never landed (saved: %v)", ts, at(2), cps.all())
		}
	}

	resume := cps.last()
	dest.gate = nil
	src.finite = true
	second := startDDL(t, []string{"s0"}, exec)
	second.Recover("s0", log.after("s0", resume), log)
	s2 := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, DDL: second, Resume: resume, Appliers: appliers, BatchWrites: 1})
	if err := s2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(dest.docs("db.d")) != 1 {
		t.Fatalf("db.d holds %d documents after the resume, want the 1 whose write was lost in the kill", len(dest.docs("db.d")))
	}
	if got := ids(dest, ns); !slices.Equal(got, []int32{int32(c2)}) {
		t.Fatalf("db.c holds documents %v, want only %d, inserted after the drop", got, c2)
	}
	if len(dest.docs("db.e")) != 8 {
		t.Fatalf("db.e holds %d documents, want 8", len(dest.docs("db.e")))
	}
	if n := len(exec.ran()); n != 1 {
		t.Fatalf("the drop ran %d times, want once", n)
	}
}

func TestDDLSeenOnSeveralShardsIsAppliedOnce(t *testing.T) {
	// Both shards hold documents of db.c and both oplogs show the drop. Shard b is
	// slow: the drop must wait for b's earlier inserts, run once, and the inserts
	// both shards make after it must survive.
	mk := func(base, first uint32) []bson.Raw {
		es := []bson.Raw{noopOp(at(first - 1))}
		for i := uint32(0); i < 10; i++ {
			es = append(es, insertOp(at(first+i), ns, doc(int(base+i), 0)))
		}
		es = append(es, commandOp(at(first+20), "db", bson.D{{Key: "drop", Value: "c"}}))
		for i := uint32(0); i < 5; i++ {
			es = append(es, insertOp(at(first+30+i), ns, doc(int(base+100+i), 0)))
		}
		return es
	}
	dest := newFakeDest()
	exec := &fakeExec{dest: dest}
	ddl := startDDL(t, []string{"a", "b"}, exec)
	srcA := newFakeOplog(mk(0, 100)...)
	srcB := newFakeOplog(mk(1000, 101)...)
	srcA.finite, srcB.finite = true, true
	slowDest := &slowWriter{dest: dest, delay: 2 * time.Millisecond}
	a := testShard(t, Config{Shard: "a", Source: srcA, Destination: dest, DDL: ddl, Resume: at(99)})
	b := testShard(t, Config{Shard: "b", Source: srcB, Destination: slowDest, DDL: ddl, Resume: at(100)})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*Shard{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Run(context.Background()) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	ran := exec.ran()
	if len(ran) != 1 {
		t.Fatalf("the drop ran %d times, want once: %+v", len(ran), ran)
	}
	if ran[0].writesApplied != 20 {
		t.Errorf("the drop ran with %d writes applied, want the 20 inserts both shards made before it", ran[0].writesApplied)
	}
	if left := dest.docs(ns); len(left) != 10 {
		t.Errorf("db.c holds %d documents after the drop, want the 10 inserted after it", len(left))
	}
	if a.Snapshot().DDL != 1 || b.Snapshot().DDL != 1 {
		t.Errorf("each shard waits on the drop once: a %d, b %d", a.Snapshot().DDL, b.Snapshot().DDL)
	}
}

// slowWriter delays every bulk write.
type slowWriter struct {
	dest  Destination
	delay time.Duration
}

func (w *slowWriter) Write(ctx context.Context, n oplog.Namespace, writes []oplog.Write) (int, error) {
	time.Sleep(w.delay)
	return w.dest.Write(ctx, n, writes)
}

func TestQueueIsBoundedByBytes(t *testing.T) {
	// 400 entries of about 10 KiB into a slow destination, with 100 KiB of queue:
	// the tailer must not read more than the queue holds plus the batches in hand.
	const n, size, limit = 400, 10 << 10, 100 << 10
	pad := strings.Repeat("x", size)
	var entries []bson.Raw
	for i := 1; i <= n; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, bson.D{{Key: "_id", Value: int32(i)}, {Key: "pad", Value: pad}}))
	}
	src := newFakeOplog(entries...)
	src.finite = true
	src.batch = 4
	dest := newFakeDest()
	dest.gate = func(context.Context, oplog.Namespace, []oplog.Write) error {
		time.Sleep(200 * time.Microsecond)
		return nil
	}
	var maxAhead atomic.Int64
	src.onRead = func() {
		ahead := src.reads.Load() - dest.applied.Load()
		for {
			m := maxAhead.Load()
			if ahead <= m || maxAhead.CompareAndSwap(m, ahead) {
				break
			}
		}
	}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), QueueBytes: limit, Appliers: 2})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := dest.applied.Load(); got != n-1 {
		t.Fatalf("%d writes applied, want %d", got, n-1)
	}
	if peak := s.Snapshot().PeakQueuedBytes; peak > limit || peak == 0 {
		t.Errorf("queues held %d bytes at their peak, over the %d limit", peak, limit)
	}
	// In hand beyond the queues: the dispatcher's batch, one batch in the channel and
	// the tailer's, 4 entries each, and one write taken by each applier's bulk.
	bound := int64(limit/size + 3*4 + 2)
	if m := maxAhead.Load(); m > bound {
		t.Errorf("the tailer read %d entries ahead of the destination, more than the %d the byte bound allows", m, bound)
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	t.Run("source", func(t *testing.T) {
		var entries []bson.Raw
		for i := 1; i <= 30; i++ {
			entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
		}
		src := newFakeOplog(entries[:10]...)
		dest := newFakeDest()
		s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1)})
		wait := start(t, context.Background(), s)
		eventually(t, "the first entries applied", func() bool { return s.Snapshot().Applied == at(10) })
		src.inject(mongo.CommandError{Code: codeNotPrimaryOrSecondary, Message: "node is recovering"})
		eventually(t, "the fault reported", func() bool { return strings.HasPrefix(s.Snapshot().Retrying, "retrying: ") })
		src.append(entries[10:]...)
		eventually(t, "every entry applied", func() bool { return s.Snapshot().Applied == at(30) })
		if from := src.tailedFrom(); len(from) != 2 || from[1] != at(10) {
			t.Errorf("tailed from %v, want the resume point again after the fault", from)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if got := len(dest.docs(ns)); got != 29 {
			t.Errorf("%d documents, want 29", got)
		}
		if p := s.Snapshot(); p.Retrying != "" {
			t.Errorf("still retrying %q after recovering", p.Retrying)
		}
	})
	t.Run("destination", func(t *testing.T) {
		var entries []bson.Raw
		for i := 1; i <= 10; i++ {
			entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
		}
		src := newFakeOplog(entries...)
		src.finite = true
		dest := newFakeDest()
		var failures atomic.Int32
		dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
			if w.Filter.Lookup("_id").Int32() == 5 && failures.Add(1) <= 3 {
				return mongo.CommandError{Code: codeNotWritablePrimary, Message: "not primary", Labels: []string{"RetryableWriteError"}}
			}
			return nil
		}
		s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1)})
		if err := s.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := len(dest.docs(ns)); got != 9 {
			t.Errorf("%d documents, want 9", got)
		}
		if failures.Load() != 4 {
			t.Errorf("the failing write was tried %d times, want 4", failures.Load())
		}
	})
}

func TestCheckpointStaysBeforeAnOpenTransaction(t *testing.T) {
	lsid := bson.D{{Key: "id", Value: primitive.Binary{Subtype: 4, Data: make([]byte, 16)}}}
	src := newFakeOplog(
		noopOp(at(1)),
		txnOp(at(2), primitive.Timestamp{}, lsid, 7, true, innerInsert(ns, doc(1, 0))),
		insertOp(at(3), ns, doc(2, 0)),
		insertOp(at(4), ns, doc(3, 0)),
	)
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), CheckpointEvery: time.Millisecond})
	wait := start(t, context.Background(), s)
	eventually(t, "the writes after the transaction's first entry applied", func() bool { return dest.applied.Load() == 2 })
	eventually(t, "a checkpoint", func() bool { return len(cps.all()) > 0 })
	if got := s.Snapshot().Applied; got != at(1) {
		t.Fatalf("resume point %v while the transaction begun at %v is open", got, at(2))
	}
	src.append(txnOp(at(5), at(2), lsid, 7, false, innerInsert(ns, doc(4, 0))))
	eventually(t, "the commit applied", func() bool { return s.Snapshot().Applied == at(5) })
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for _, ts := range cps.all() {
		if ts != at(1) && ts != at(5) {
			t.Fatalf("checkpoint %v inside the open transaction (saved %v)", ts, cps.all())
		}
	}
	if got := len(dest.docs(ns)); got != 4 {
		t.Fatalf("%d documents, want 4", got)
	}
	if p := s.Snapshot(); p.Transactions != 1 {
		t.Errorf("%d transactions counted, want 1", p.Transactions)
	}
}

func TestIdempotencyErrorsAreToleratedOnlyBeforeTheConsistencyPoint(t *testing.T) {
	// Updates of documents 4 and 8 fail as when they meet a later state of their
	// document. Up to the consistency point (and to the newest entry when the replay
	// started, which an earlier run may have applied) that is expected; after it, the
	// same error fails the shard.
	entries := []bson.Raw{noopOp(at(1))}
	for i := 2; i <= 10; i++ {
		entries = append(entries, setOp(at(uint32(i)), ns, int32(i), bson.D{{Key: "x", Value: int32(1)}}))
	}
	src := newFakeOplog(entries...)
	dest := newFakeDest()
	dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
		if id := w.Filter.Lookup("_id").Int32(); id == 4 || id == 8 || id == 11 {
			return writeError(codePathNotViable)
		}
		return nil
	}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), ConsistencyPoint: at(5)})
	wait := start(t, context.Background(), s)
	eventually(t, "the backlog applied", func() bool { return s.Snapshot().Applied == at(10) })
	if got := s.Snapshot().Tolerated; got != 2 {
		t.Fatalf("%d errors tolerated, want 2", got)
	}
	src.append(setOp(at(11), ns, int32(11), bson.D{{Key: "x", Value: int32(1)}}))
	err := wait()
	if err == nil || !strings.Contains(err.Error(), "Timestamp(11, 1)") || !mongoerr.HasCode(err, codePathNotViable) {
		t.Fatalf("error %v, want the write of the entry at Timestamp(11, 1) failing the shard", err)
	}
	if got := s.Snapshot().Applied; got != at(10) {
		t.Fatalf("resume point %v, want %v", got, at(10))
	}
}

func TestStopAppliesWhatWasReadAndSavesAFinalCheckpoint(t *testing.T) {
	var entries []bson.Raw
	for i := 1; i <= 50; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	src := newFakeOplog(entries...)
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), CheckpointEvery: time.Hour})
	wait := start(t, context.Background(), s)
	eventually(t, "the backlog applied", func() bool { return s.Snapshot().Applied == at(50) })
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := cps.last(); got != at(50) {
		t.Fatalf("final checkpoint %v, want %v", got, at(50))
	}
}

// Checkpoint saves what is applied at once, not at the next period (I'm done calls
// it once the shard applied the source's newest entry), and no save repeats or goes
// back from it.
func TestCheckpointSavesTheResumePointAtOnce(t *testing.T) {
	var entries []bson.Raw
	for i := 1; i <= 50; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: newFakeOplog(entries...), Destination: newFakeDest(), Checkpoints: cps, Resume: at(1), CheckpointEvery: time.Hour})
	wait := start(t, context.Background(), s)
	eventually(t, "the backlog applied", func() bool { return s.Snapshot().Applied == at(50) })
	for range 2 {
		if err := s.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if got := cps.all(); !slices.Equal(got, []primitive.Timestamp{at(50)}) {
		t.Fatalf("saved %v after Checkpoint twice; want %v once", got, at(50))
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := cps.all(); !slices.Equal(got, []primitive.Timestamp{at(50)}) {
		t.Fatalf("saved %v once stopped; want %v once", got, at(50))
	}
}

func TestFailedCheckpointIsRetriedNotSkipped(t *testing.T) {
	src := newFakeOplog(noopOp(at(1)), insertOp(at(2), ns, doc(1, 0)))
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	cps.fail.Store(3)
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), CheckpointEvery: time.Millisecond})
	start(t, context.Background(), s)
	eventually(t, "the failure reported", func() bool { return strings.Contains(s.Snapshot().Retrying, "disk full") })
	eventually(t, "the checkpoint saved", func() bool { return cps.last() == at(2) })
	eventually(t, "the report cleared", func() bool { return s.Snapshot().Retrying == "" })
}

func TestCancelAbandonsWithoutAFinalCheckpoint(t *testing.T) {
	// Cancelling Run's context is a crash: no final checkpoint, and a new Shard
	// resumes from the last saved one and converges.
	var entries []bson.Raw
	for i := 1; i <= 200; i++ {
		entries = append(entries, setOp(at(uint32(i)), ns, int32(i%7), bson.D{{Key: "v", Value: int32(i)}}))
	}
	seed := func(dest *fakeDest) {
		var ws []oplog.Write
		for id := range 7 {
			raw, _ := bson.Marshal(doc(id, 0))
			key, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(id)}})
			ws = append(ws, oplog.Write{Kind: oplog.InsertReplace, NS: oplog.ParseNamespace(ns), Filter: key, Replacement: raw})
		}
		dest.Write(context.Background(), oplog.ParseNamespace(ns), ws)
	}
	src := newFakeOplog(entries...)
	dest := newFakeDest()
	seed(dest)
	var n atomic.Int32
	cps := &fakeCheckpoints{}
	killed := make(chan struct{})
	dest.gate = func(ctx context.Context, _ oplog.Namespace, _ []oplog.Write) error {
		// Stuck mid-way once a checkpoint was saved: the kill comes now, and the
		// write in flight fails after it. (Stuck after a fixed count instead, a slow
		// machine could block every write before the first checkpoint and never
		// save one.)
		if n.Add(1) > 20 && len(cps.all()) > 0 && cps.last().After(at(1)) {
			<-killed
			return errors.New("connection closed")
		}
		return nil
	}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: at(1), CheckpointEvery: time.Millisecond, BatchWrites: 1})
	ctx, cancel := context.WithCancel(context.Background())
	wait := start(t, ctx, s)
	eventually(t, "some checkpoint", func() bool { return len(cps.all()) > 0 && cps.last().After(at(1)) })
	saves := len(cps.all())
	cancel()
	close(killed)
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if len(cps.all()) > saves+1 {
		t.Fatalf("checkpoints saved after the kill: %v", cps.all()[saves:])
	}
	resume := cps.last()
	dest.gate = nil
	src.finite = true
	s2 := testShard(t, Config{Source: src, Destination: dest, Checkpoints: cps, Resume: resume})
	if err := s2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, d := range dest.docs(ns) {
		want := int32(196 + idInt(id))
		if want > 200 {
			want -= 7
		}
		if got := d[1].Value.(int32); got != want {
			t.Errorf("document %s at v %d, want %d", id, got, want)
		}
	}
}

// idInt reads back an int32 _id from the fake destination's key.
func idInt(key string) int {
	var v struct {
		N string `bson:"$numberInt"`
	}
	if err := bson.UnmarshalExtJSON([]byte(key), true, &v); err != nil {
		panic(err)
	}
	var n int
	fmt.Sscan(v.N, &n)
	return n
}

// partition is the applier a write to document id of db.c goes to.
func partition(id, appliers int) uint64 { return partitionIn(ns, id, appliers) }

// partitionIn is the applier a write to document id of namespace n goes to.
func partitionIn(n string, id, appliers int) uint64 {
	key, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(id)}})
	w := oplog.Write{NS: oplog.ParseNamespace(n), Filter: key}
	return oplog.PartitionKey(&w) % uint64(appliers)
}

func TestDDLHoldsOnlyItsNamespaces(t *testing.T) {
	// Shard a reads a collMod of db.c that shard b's oplog does not hold: it is
	// applied once b has applied past its ts. Meanwhile a's later writes to db.d go
	// through and its writes to db.c wait.
	dest := newFakeDest()
	exec := &fakeExec{dest: dest}
	ddl := startDDL(t, []string{"a", "b"}, exec)
	srcA := newFakeOplog(
		noopOp(at(100)),
		insertOp(at(101), ns, doc(1, 0)),
		commandOp(at(102), "db", bson.D{{Key: "collMod", Value: "c"}, {Key: "validationLevel", Value: "off"}}),
		insertOp(at(103), ns, doc(2, 0)),
		insertOp(at(104), "db.d", doc(3, 0)),
	)
	srcB := newFakeOplog(noopOp(at(100)))
	a, b := startShardsAB(t, srcA, srcB, dest, ddl)
	eventually(t, "the write to db.d after the DDL applied", func() bool { return len(dest.docs("db.d")) == 1 })
	if got := len(dest.docs(ns)); got != 1 {
		t.Fatalf("db.c holds %d documents while its collMod waits for shard b, want 1", got)
	}
	if len(exec.ran()) != 0 {
		t.Fatal("the collMod ran before shard b passed it")
	}
	if got := a.Snapshot().Applied; got != at(101) {
		t.Fatalf("shard a's resume point %v, want %v: before the DDL", got, at(101))
	}
	// The lag that grows meanwhile has its reason in the shard's row.
	eventually(t, "shard a saying what it waits for", func() bool {
		return strings.Contains(a.Snapshot().Waiting, "collMod of db.c")
	})
	if w := b.Snapshot().Waiting; w != "" {
		t.Fatalf("shard b waits for nothing, its progress says %q", w)
	}
	srcB.append(noopOp(at(110)))
	eventually(t, "the write to db.c after the DDL applied", func() bool { return len(dest.docs(ns)) == 2 })
	eventually(t, "shard a no longer waiting", func() bool { return a.Snapshot().Waiting == "" })
	if ran := exec.ran(); len(ran) != 1 || ran[0].ddl.Kind != oplog.DDLCollMod {
		t.Fatalf("DDL run %+v, want the collMod once", ran)
	}
	eventually(t, "shard a's resume point at its last entry", func() bool { return a.Snapshot().Applied == at(104) })
}

// A shard whose DDL waits on the destination holds the other shards' DDL of its
// namespaces only: shard b's create of another collection, after the write shard a
// parked behind its slow create, is applied while a's create still runs. (Before,
// a's position stopped at that parked write: every DDL of b waited for a's, and two
// shards whose DDL alternate applied them one at a time between them, which fault
// scenario 12 showed on a busy destination as a lag of 15 s that never shrank.)
func TestASlowDDLHoldsOtherShardsDDLOfItsNamespacesOnly(t *testing.T) {
	dest := newFakeDest()
	exec := &stallingExec{fakeExec: fakeExec{dest: dest}, ns: nsOf("one.c"), release: make(chan struct{}), started: make(chan struct{})}
	ddl := startDDL(t, []string{"a", "b"}, exec)
	srcA := newFakeOplog(
		noopOp(at(100)),
		commandOp(at(101), "one", bson.D{{Key: "create", Value: "c"}}),
		insertOp(at(102), "one.c", doc(1, 0)),
		insertOp(at(103), "db.d", doc(2, 0)),
		noopOp(at(110)),
	)
	srcB := newFakeOplog(
		noopOp(at(100)),
		commandOp(at(105), "two", bson.D{{Key: "create", Value: "c"}}),
		insertOp(at(106), "two.c", doc(3, 0)),
		commandOp(at(107), "one", bson.D{{Key: "drop", Value: "c"}}),
		noopOp(at(110)),
	)
	_, b := startShardsAB(t, srcA, srcB, dest, ddl)
	<-exec.started
	eventually(t, "shard b's write after its create, while a's create of one.c runs", func() bool { return len(dest.docs("two.c")) == 1 })
	if got := len(dest.docs("one.c")); got != 0 {
		t.Fatalf("one.c holds %d documents before its create was applied", got)
	}
	// b's drop of one.c follows a's write there, which waits for a's create.
	drop := oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("one.c")}
	eventually(t, "shard b saying its drop waits", func() bool {
		return strings.Contains(b.Snapshot().Waiting, "drop of one.c")
	})
	if w := ddl.Waiting("b", at(107), drop); !strings.Contains(w, "create of one.c") {
		t.Errorf("b's drop of one.c says %q, want it to wait for the create of one.c", w)
	}
	close(exec.release)
	eventually(t, "b's drop of one.c applied", func() bool { return len(exec.ran()) == 3 })
	want := []string{"create two.c", "create one.c", "drop one.c"}
	if got := kinds(exec.ran()); !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if ran := exec.ran(); ran[2].writesApplied != 3 {
		t.Fatalf("the drop of one.c ran after %d writes, want 3: after a's write to one.c", ran[2].writesApplied)
	}
}

// LastWrite is the newest entry that writes user data: no-ops, chunk migrations'
// entries and internal namespaces' do not show applications writing.
func TestLastWriteIgnoresNoopsMigrationsAndInternalNamespaces(t *testing.T) {
	src := newFakeOplog(
		insertOp(at(1), ns, doc(1, 0)),
		insertOp(at(2), ns, doc(2, 0)),
		setOp(at(3), ns, int32(2), bson.D{{Key: "v", Value: int32(1)}}),
		noopOp(at(4)),
		entry(at(5), "i", ns, bson.E{Key: "o", Value: doc(9, 0)}, bson.E{Key: "fromMigrate", Value: true}),
		insertOp(at(6), "config.system.sessions", bson.D{{Key: "_id", Value: "s"}}),
		noopOp(at(7)),
	)
	src.finite = true
	s := testShard(t, Config{Source: src, Destination: newFakeDest(), Checkpoints: &fakeCheckpoints{}, Resume: at(1)})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := s.Snapshot()
	if p.Applied != at(7) || p.LastWrite != at(3) {
		t.Fatalf("applied %v, last write %v; want every entry applied and the update at %v as the last write", p.Applied, p.LastWrite, at(3))
	}
}

// A bulk write already sent when the shard is told to stop is waited for, not
// abandoned: its server would run it anyway, possibly after whoever resumes the
// shard has written a later state of the same documents.
func TestAWriteInFlightWhenStoppedIsWaitedFor(t *testing.T) {
	var entries []bson.Raw
	for i := 1; i <= 50; i++ {
		entries = append(entries, setOp(at(uint32(i)), ns, int32(i%7), bson.D{{Key: "v", Value: int32(i)}}))
	}
	src := newFakeOplog(entries...)
	dest := newFakeDest()
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var cancelledWhileSent atomic.Bool
	dest.gate = func(ctx context.Context, _ oplog.Namespace, _ []oplog.Write) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil
		}
		close(inFlight)
		<-release
		cancelledWhileSent.Store(ctx.Err() != nil)
		return nil
	}
	s := testShard(t, Config{Source: src, Destination: dest, Checkpoints: &fakeCheckpoints{}, Resume: at(1), BatchWrites: 1})
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan error, 1)
	go func() { returned <- s.Run(ctx) }()
	select {
	case <-inFlight:
	case err := <-returned:
		t.Fatalf("Run returned %v before its first write", err)
	}
	cancel()
	select {
	case err := <-returned:
		t.Fatalf("Run returned (%v) with a write still in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-returned; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if cancelledWhileSent.Load() {
		t.Fatal("the write in flight was cancelled with the shard: its server would have run it anyway")
	}
}

// The replay hands each fromMigrate insert after T0 to Config.FromMigrate before
// skipping it (the move watcher's cross-check); deletes, client inserts and
// entries up to T0 are not handed on.
func TestFromMigrateInsertsAfterT0AreHandedToTheCrossCheck(t *testing.T) {
	src := newFakeOplog(
		entry(at(1), "i", ns, bson.E{Key: "o", Value: doc(7, 0)}, bson.E{Key: "fromMigrate", Value: true}),
		insertOp(at(2), ns, doc(1, 0)),
		entry(at(3), "i", ns, bson.E{Key: "o", Value: doc(9, 0)}, bson.E{Key: "fromMigrate", Value: true}),
		entry(at(4), "d", ns, bson.E{Key: "o", Value: bson.D{{Key: "_id", Value: int32(8)}}}, bson.E{Key: "fromMigrate", Value: true}),
		noopOp(at(5)),
	)
	src.finite = true
	var seen []string
	s := testShard(t, Config{Source: src, Destination: newFakeDest(), Checkpoints: &fakeCheckpoints{}, Resume: at(1), T0: at(1),
		FromMigrate: func(n oplog.Namespace, d bson.Raw) { seen = append(seen, n.String()+" "+d.Lookup("_id").String()) }})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{ns + ` {"$numberInt":"9"}`}; !slices.Equal(seen, want) {
		t.Fatalf("handed on %q, want %q", seen, want)
	}
	if p := s.Snapshot(); p.Skipped[SkipFromMigrate] != 2 || p.Inserts != 1 {
		t.Fatalf("skipped %v fromMigrate, %d inserts; want both fromMigrate entries skipped and the client's insert applied", p.Skipped[SkipFromMigrate], p.Inserts)
	}
}

// A shard's DDL waits for another shard's earlier entries on its own namespaces
// only: a write of the other shard to another collection still on its way to the
// destination holds nothing, while one to the DDL's collection holds it. (Waiting
// for the other shard's whole pipeline to pass the DDL's second costs every DDL of
// a chain, such as $out's create and rename, the other shard's apply lag.)
func TestADDLWaitsForOtherShardsWritesToItsNamespacesOnly(t *testing.T) {
	dest := newFakeDest()
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	dest.gate = func(ctx context.Context, ns oplog.Namespace, _ []oplog.Write) error {
		if ns != nsOf("db.d") {
			return nil
		}
		once.Do(func() { close(held) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	exec := &fakeExec{dest: dest}
	ddl := startDDL(t, []string{"a", "b"}, exec)
	srcA := newFakeOplog(
		noopOp(at(100)),
		insertOp(at(101), "db.d", doc(1, 0)),
		insertOp(at(102), "db.e", doc(2, 0)),
		noopOp(at(110)),
	)
	srcB := newFakeOplog(
		noopOp(at(100)),
		commandOp(at(105), "two", bson.D{{Key: "create", Value: "c"}}),
		insertOp(at(106), "two.c", doc(3, 0)),
		commandOp(at(107), "db", bson.D{{Key: "drop", Value: "d"}}),
		noopOp(at(110)),
	)
	startShardsAB(t, srcA, srcB, dest, ddl)
	<-held
	eventually(t, "shard b's create of two.c and its write applied while a's write to db.d is unanswered", func() bool {
		return len(dest.docs("two.c")) == 1
	})
	if got := kinds(exec.ran()); !slices.Equal(got, []string{"create two.c"}) {
		t.Fatalf("ran %v while a's write to db.d is unanswered, want only the create of two.c", got)
	}
	drop := oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.d")}
	eventually(t, "b's drop of db.d saying it waits for shard a", func() bool {
		return strings.Contains(ddl.Waiting("b", at(107), drop), "waits for shards a ")
	})
	close(release)
	eventually(t, "b's drop of db.d applied", func() bool { return len(exec.ran()) == 2 })
	if got := len(dest.docs("db.d")); got != 0 {
		t.Fatalf("db.d holds %d documents after its drop, want a's write to it applied before the drop", got)
	}
}

// The writes parked behind a DDL that takes long on the destination never take the
// shard's whole queue: past a bound they are set aside, the writes to every other
// namespace go on, and once the DDL is applied the shard reads again from its
// resume point (still before the DDL) and applies what it set aside, in order.
// (Issue 15: an application writing fast to a collection renamed across databases,
// a copy on the destination, filled the 64 MiB queue with parked writes and stopped
// the shard's every namespace until the rename ended.)
func TestParkedWritesPastTheirBoundAreReadAgainNotHeld(t *testing.T) {
	exec := &stallingExec{fakeExec: fakeExec{}, ns: nsOf("one.c"), release: make(chan struct{}), started: make(chan struct{})}
	dest := newFakeDest()
	exec.dest = dest
	ddl := startDDL(t, []string{"a"}, exec)
	entries := []bson.Raw{noopOp(at(1)), commandOp(at(2), "one", bson.D{{Key: "create", Value: "c"}})}
	const parked = 200
	for i := range parked {
		entries = append(entries, insertOp(at(uint32(3+i)), "one.c", bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: strings.Repeat("x", 400)}}))
	}
	const others = 50
	for i := range others {
		entries = append(entries, insertOp(at(uint32(3+parked+i)), "db.d", doc(i, 0)))
	}
	src := newFakeOplog(entries...)
	const limit = 32 << 10 // 200 parked writes of ~450 bytes are ~90 KiB
	s := testShard(t, Config{Shard: "a", Source: src, Destination: dest, DDL: ddl, Resume: at(1), QueueBytes: limit})
	start(t, context.Background(), s)
	<-exec.started
	eventually(t, "the writes to db.d applied while the create of one.c is held on the destination", func() bool {
		return len(dest.docs("db.d")) == others
	})
	if peak := s.Snapshot().PeakQueuedBytes; peak > limit {
		t.Errorf("queues held %d bytes at their peak, over the %d limit", peak, limit)
	}
	if p := s.Snapshot(); !p.Applied.Before(at(2)) {
		t.Fatalf("resume point at %v, past the create at %v still on its way", p.Applied, at(2))
	}
	if w := s.Snapshot().Waiting; !strings.Contains(w, "set aside until the DDL on them is applied") || !strings.Contains(w, "one.c (") {
		t.Errorf("the shard's row says %q: it must say the writes to one.c are set aside", w)
	}
	close(exec.release)
	eventually(t, "every write to one.c applied after its create, in order", func() bool {
		return len(dest.docs("one.c")) == parked && s.Snapshot().Applied == at(uint32(2+parked+others))
	})
	if got := kinds(exec.ran()); !slices.Equal(got, []string{"create one.c"}) {
		t.Fatalf("ran %v, want the create of one.c once", got)
	}
	if from := src.tailedFrom(); s.Snapshot().SetAside == 0 || len(from) < 2 || !from[1].Before(at(3+parked)) {
		t.Errorf("%d items set aside, the source read from %v; want some set aside and read again from before them", s.Snapshot().SetAside, from)
	}
	if r := s.Snapshot().Retrying; r != "" {
		t.Errorf("the shard says %q: reading again what it set aside is not a fault", r)
	}
	if w := s.Snapshot().Waiting; w != "" {
		t.Errorf("the shard's row still says %q once everything is applied", w)
	}
}

// startShardsAB runs shards a and b, replaying srcA and srcB from at(100) into dest
// through ddl.
func startShardsAB(t *testing.T, srcA, srcB Source, dest Destination, ddl DDLApplier) (a, b *Shard) {
	t.Helper()
	a = testShard(t, Config{Shard: "a", Source: srcA, Destination: dest, DDL: ddl, Resume: at(100)})
	b = testShard(t, Config{Shard: "b", Source: srcB, Destination: dest, DDL: ddl, Resume: at(100)})
	start(t, context.Background(), a)
	start(t, context.Background(), b)
	return a, b
}

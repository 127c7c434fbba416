package replay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/oplogbuf"
)

func inserts(from, to int) []bson.Raw {
	var out []bson.Raw
	for i := from; i <= to; i++ {
		out = append(out, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	return out
}

func openBuffer(t *testing.T, dir string, segBytes int64) *oplogbuf.Store {
	t.Helper()
	s, _, err := oplogbuf.Open(dir, oplogbuf.Options{SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTestFetcher(t *testing.T, cfg FetcherConfig) *Fetcher {
	t.Helper()
	if cfg.Shard == "" {
		cfg.Shard = "s0"
	}
	f, err := NewFetcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// runFetcher runs f until the returned kill is called (or the test ends); wait
// returns Run's result.
func runFetcher(t *testing.T, f *Fetcher) (kill func(), wait func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }()
	var result atomic.Pointer[error]
	wait = func() error {
		if p := result.Load(); p != nil {
			return *p
		}
		err := <-errc
		result.Store(&err)
		return err
	}
	t.Cleanup(func() { cancel(); wait() })
	return func() { cancel(); wait() }, wait
}

// releasing saves checkpoints and releases the buffer up to them, as the engine's
// checkpoint sink does.
type releasing struct {
	*fakeCheckpoints
	f *Fetcher
}

func (r releasing) SaveApplied(shard string, at OpTime) error {
	if err := r.fakeCheckpoints.SaveApplied(shard, at); err != nil {
		return err
	}
	return r.f.Release(at.TS)
}

func fetched(f *Fetcher, ts primitive.Timestamp) func() bool {
	return func() bool { return f.Snapshot().Fetched == ts }
}

func checkDocs(t *testing.T, dest *fakeDest, from, to int) {
	t.Helper()
	docs := dest.docs(ns)
	for i := from; i <= to; i++ {
		if _, ok := docs[idKey(bsonValue(int32(i)))]; !ok {
			t.Errorf("document %d missing", i)
		}
	}
}

// The copy outlasts the oplog window: the source's oplog rolls past T0 before
// the replay starts. Read directly, the replay fails on the gap; read from the
// buffer the fetcher filled meanwhile, it applies every entry.
func TestBufferedReplayOutlastsTheOplogWindow(t *testing.T) {
	t0 := at(1)
	t.Run("without the buffer", func(t *testing.T) {
		src := newFakeOplog(inserts(1, 5)...)
		src.appendRolling(at(15), inserts(6, 20)...) // T0 and the entries after it roll off
		s := testShard(t, Config{Source: src, Destination: newFakeDest(), Resume: t0, T0: t0})
		checkGap(t, s.Run(context.Background()), "s0", t0)
	})
	t.Run("with the buffer", func(t *testing.T) {
		src := newFakeOplog(inserts(1, 5)...)
		f := newTestFetcher(t, FetcherConfig{Source: src, Store: openBuffer(t, t.TempDir(), 512), From: OpTime{TS: t0, Term: 1}})
		runFetcher(t, f)
		// The fetcher keeps up with the source while the copy runs.
		src.append(inserts(6, 20)...)
		eventually(t, "the fetcher at the newest entry", fetched(f, at(20)))
		src.rollTo(at(15))

		dest := newFakeDest()
		cps := &fakeCheckpoints{}
		s := testShard(t, Config{Source: f.Source(), Destination: dest, Checkpoints: releasing{cps, f}, Resume: t0, ResumeTerm: 1, T0: t0})
		wait := start(t, context.Background(), s)
		eventually(t, "every entry applied", func() bool { return s.Snapshot().Applied == at(20) })
		src.append(inserts(21, 25)...)
		eventually(t, "the entries fetched after the replay started applied", func() bool { return s.Snapshot().Applied == at(25) })
		if err := s.Stop(context.Background()); err != nil || wait() != nil {
			t.Fatal(err, wait())
		}
		checkDocs(t, dest, 2, 25)
		if n := len(dest.writes()); n != 24 {
			t.Errorf("%d writes, want 24: each entry after T0 once", n)
		}
		if p := s.Snapshot(); p.Lag != 0 || p.Newest != at(25) {
			t.Errorf("newest %v lag %v: the lag is the source's newest entry against the applied one", p.Newest, p.Lag)
		}
	})
}

// A kill while the buffer is partly applied: the next start reuses the buffer
// from the checkpoint on (fetching from its newest entry, not the checkpoint),
// even though the source's oplog rolled past the checkpoint meanwhile.
func TestKillAndResumeWithAPartlyAppliedBuffer(t *testing.T) {
	dir := t.TempDir()
	src := newFakeOplog(inserts(1, 10)...)
	dest := newFakeDest()
	var blocked atomic.Bool
	dest.gate = func(ctx context.Context, _ oplog.Namespace, _ []oplog.Write) error {
		if blocked.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	cps := &fakeCheckpoints{}

	// The first run: applies up to 10, then the destination stops taking writes
	// while 11 to 20 are fetched; then the process is killed.
	f := newTestFetcher(t, FetcherConfig{Source: src, Store: openBuffer(t, dir, 256), From: OpTime{TS: at(1), Term: 1}})
	killFetcher, _ := runFetcher(t, f)
	s := testShard(t, Config{Source: f.Source(), Destination: dest, Checkpoints: releasing{cps, f}, Resume: at(1), ResumeTerm: 1, T0: at(1)})
	ctx, killReplay := context.WithCancel(context.Background())
	wait := start(t, ctx, s)
	eventually(t, "the checkpoint at 10", func() bool { return cps.last() == at(10) })
	blocked.Store(true)
	src.append(inserts(11, 20)...)
	eventually(t, "the fetcher at 20", fetched(f, at(20)))
	killReplay()
	wait()
	killFetcher()
	if cps.last() != at(10) {
		t.Fatalf("checkpoint %v, want 10: the test needs a partly applied buffer", cps.last())
	}
	// Meanwhile the source's oplog rolls past the checkpoint.
	src.appendRolling(at(15), inserts(21, 22)...)

	blocked.Store(false)
	store := openBuffer(t, dir, 256)
	f2 := newTestFetcher(t, FetcherConfig{Source: src, Store: store, From: OpTime{TS: cps.last(), Term: cps.lastTerm()}})
	if first, _ := store.First(); first.TS.After(at(10)) {
		t.Fatalf("the buffer starts at %v, after the checkpoint", first.TS)
	}
	tailsBefore := len(src.tailedFrom())
	runFetcher(t, f2)
	s2 := testShard(t, Config{Source: f2.Source(), Destination: dest, Checkpoints: releasing{cps, f2}, Resume: cps.last(), ResumeTerm: cps.lastTerm(), T0: at(1)})
	wait2 := start(t, context.Background(), s2)
	eventually(t, "every entry applied", func() bool { return s2.Snapshot().Applied == at(22) })
	if err := s2.Stop(context.Background()); err != nil || wait2() != nil {
		t.Fatal(err, wait2())
	}
	if tails := src.tailedFrom()[tailsBefore:]; len(tails) == 0 || tails[0] != at(20) {
		t.Errorf("the resumed fetcher tailed the source from %v, want from the newest entry buffered (20)", tails)
	}
	checkDocs(t, dest, 2, 22)
	if n := len(dest.writes()); n != 21 {
		t.Errorf("%d writes, want 21: each entry after T0 once", n)
	}
}

func TestBufferNotHoldingTheResumePointIsFetchedAgain(t *testing.T) {
	t.Run("the buffer ends before it", func(t *testing.T) {
		dir := t.TempDir()
		src := newFakeOplog(inserts(1, 5)...)
		f := newTestFetcher(t, FetcherConfig{Source: src, Store: openBuffer(t, dir, 0), From: OpTime{TS: at(1), Term: 1}})
		kill, _ := runFetcher(t, f)
		eventually(t, "the fetcher at 5", fetched(f, at(5)))
		kill()
		src.append(inserts(6, 10)...)
		store := openBuffer(t, dir, 0)
		f2 := newTestFetcher(t, FetcherConfig{Source: src, Store: store, From: OpTime{TS: at(8), Term: 1}})
		if _, ok := store.Last(); ok {
			t.Fatal("a buffer that does not reach the resume point was kept")
		}
		runFetcher(t, f2)
		eventually(t, "the fetcher at 10", fetched(f2, at(10)))
		if first, _ := store.First(); first.TS != at(8) {
			t.Errorf("the buffer starts at %v, want the resume point 8", first.TS)
		}
	})
	t.Run("it holds the resume point of another term", func(t *testing.T) {
		dir := t.TempDir()
		src := newFakeOplog(inserts(1, 5)...)
		f := newTestFetcher(t, FetcherConfig{Source: src, Store: openBuffer(t, dir, 0), From: OpTime{TS: at(1), Term: 1}})
		kill, _ := runFetcher(t, f)
		eventually(t, "the fetcher at 5", fetched(f, at(5)))
		kill()
		store := openBuffer(t, dir, 0)
		newTestFetcher(t, FetcherConfig{Source: src, Store: store, From: OpTime{TS: at(3), Term: 2}})
		if _, ok := store.Last(); ok {
			t.Fatal("a buffer holding the resume point of another term was kept")
		}
	})
}

// The source rolled past the newest entry buffered while the fetcher was not
// running: the gap fails the fetcher, and the replay reading the buffer fails with
// it once it has read all the buffer holds; nothing is skipped.
func TestGapBehindTheBufferFailsTheShard(t *testing.T) {
	dir := t.TempDir()
	src := newFakeOplog(inserts(1, 5)...)
	f := newTestFetcher(t, FetcherConfig{Source: src, Store: openBuffer(t, dir, 0), From: OpTime{TS: at(1), Term: 1}})
	kill, _ := runFetcher(t, f)
	eventually(t, "the fetcher at 5", fetched(f, at(5)))
	kill()
	src.appendRolling(at(8), inserts(6, 10)...)

	f2 := newTestFetcher(t, FetcherConfig{Source: src, Store: openBuffer(t, dir, 0), From: OpTime{TS: at(1), Term: 1}})
	_, wait := runFetcher(t, f2)
	checkGap(t, wait(), "s0", at(5))

	dest := newFakeDest()
	s := testShard(t, Config{Source: f2.Source(), Destination: dest, Resume: at(1), ResumeTerm: 1, T0: at(1)})
	checkGap(t, s.Run(context.Background()), "s0", at(5))
	checkDocs(t, dest, 2, 5)
	if n := len(dest.writes()); n != 4 {
		t.Errorf("%d writes, want the 4 buffered", n)
	}
}

// At its limit the buffer stops growing: the fetcher waits, and says so, until the
// replay's checkpoint frees segments.
func TestFullBufferMakesTheFetcherWait(t *testing.T) {
	src := newFakeOplog(inserts(1, 40)...)
	store := openBuffer(t, t.TempDir(), 300)
	f := newTestFetcher(t, FetcherConfig{Source: src, Store: store, From: OpTime{TS: at(1), Term: 1}, Limit: 900})
	runFetcher(t, f)
	eventually(t, "the buffer full", func() bool { return f.Snapshot().Full })
	p := f.Snapshot()
	if p.Waiting != "oplog buffer full (900 B): fetching waits for the replay" {
		t.Errorf("waiting %q", p.Waiting)
	}
	if p.Fetched == at(40) || p.Bytes < 900 {
		t.Fatalf("fetched %v, %d bytes: the test needs a buffer that filled before the end", p.Fetched, p.Bytes)
	}
	dest := newFakeDest()
	cps := &fakeCheckpoints{}
	s := testShard(t, Config{Source: f.Source(), Destination: dest, Checkpoints: releasing{cps, f}, Resume: at(1), ResumeTerm: 1, T0: at(1)})
	start(t, context.Background(), s)
	eventually(t, "every entry applied", func() bool { return s.Snapshot().Applied == at(40) })
	checkDocs(t, dest, 2, 40)
	if got := f.Snapshot().Bytes; got > 900+300 {
		t.Errorf("the buffer grew to %d bytes, past its limit and one segment", got)
	}
}

func TestFetcherChecksTheTermOfItsStart(t *testing.T) {
	src := newFakeOplog(inserts(1, 5)...)
	f := newTestFetcher(t, FetcherConfig{Source: src, Store: openBuffer(t, t.TempDir(), 0), From: OpTime{TS: at(1), Term: 2}})
	_, wait := runFetcher(t, f)
	err := wait()
	var rb *RollbackError
	if !errors.As(err, &rb) || rb.Found.Term != 1 {
		t.Fatalf("error %v, want a rollback: the entry at the start is of term 1, not 2", err)
	}
}

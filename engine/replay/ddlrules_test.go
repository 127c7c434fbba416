package replay

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// The rules of DDLOnce (see its doc comment), one test each.

var (
	uuidA = []byte("AAAAAAAAAAAAAAAA")
	uuidB = []byte("BBBBBBBBBBBBBBBB")
)

func nsOf(s string) oplog.Namespace { return oplog.ParseNamespace(s) }

// ddlCtx bounds a test's waits; it only keeps a broken test from hanging.
func ddlCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func add(t *testing.T, o *DDLOnce, shard string, ts uint32, d oplog.DDL) func(context.Context) error {
	t.Helper()
	wait, err := o.AddDDL(shard, at(ts), d)
	if err != nil {
		t.Fatal(err)
	}
	return wait
}

func must(t *testing.T, ctx context.Context, wait func(context.Context) error) {
	t.Helper()
	if err := wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func kinds(ran []ranDDL) []string {
	var out []string
	for _, r := range ran {
		out = append(out, r.ddl.Kind.String()+" "+r.ddl.NS.String())
	}
	return out
}

// A DDL only its database's primary shard logs (a create) is applied as soon as
// the other shards have applied up to its ts: not a window later.
func TestUnshardedDDLAppliesOnceTheOthersReachItsTS(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	o.Position("b", at(9))
	wait := add(t, o, "a", 10, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("db.batch_1"), UUID: uuidA})
	o.Position("b", at(10))
	must(t, ddlCtx(t), wait)
}

// A shard still copying (its replay not registered by Recover) holds nobody's DDL:
// what it replays later is routed past the DDL (TestWritesAreRoutedByTheDDLApplied).
func TestDDLDoesNotWaitForAShardStillCopying(t *testing.T) {
	exec := &fakeExec{}
	o := NewDDLOnce([]string{"a", "b"}, exec, nil)
	o.Recover("a", nil, nil)
	runDDL(t, o)
	must(t, ddlCtx(t), add(t, o, "a", 10, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("db.c"), UUID: uuidA}))
}

func runDDL(t *testing.T, o *DDLOnce) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Two shards that each hold a DDL the other does not log wait for nothing but
// each other's positions, which move past their own DDL: both are applied.
func TestTwoShardsHoldingDDLDoNotWaitForEachOther(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	waitA := add(t, o, "a", 10, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("one.c"), UUID: uuidA})
	waitB := add(t, o, "b", 11, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("two.c"), UUID: uuidB})
	// Each shard's position passes its own DDL once it handed it over.
	o.Position("a", at(12))
	o.Position("b", at(11))
	ctx := ddlCtx(t)
	must(t, ctx, waitA)
	must(t, ctx, waitB)
}

// Apply once: a copy the shard reads again after its pipeline started over from
// its resume point joins the group it joined the first time, even when the
// shard's position had passed it (the position leaves aside what the shard
// parked, and runs ahead of the resume point). Forgetting copies and groups on
// the position alone ran the DDL a second time.
func TestDDLReadAgainFromTheResumePointIsAppliedOnce(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	o.Position("b", at(100))
	o.Applied("b", at(100))
	ctx := ddlCtx(t)
	create := oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("db.c"), UUID: uuidA}
	must(t, ctx, add(t, o, "a", 10, create))
	// a's position passed the create; a write it parked at 8 behind another DDL
	// of its own holds its resume point before it.
	o.Position("a", at(12), HeldScope{NS: nsOf("db.other"), TS: at(8)})
	o.Applied("a", at(7))
	must(t, ctx, add(t, o, "a", 10, create))
	if got := kinds(exec.ran()); !slices.Equal(got, []string{"create db.c"}) {
		t.Fatalf("ran %v, want the create once", got)
	}
	// Once the resume point passes it, it is forgotten.
	o.Applied("a", at(12))
	o.mu.Lock()
	copies, groups := len(o.mu.copies), len(o.mu.groups)
	o.mu.Unlock()
	if copies != 0 || groups != 0 {
		t.Fatalf("%d copies and %d groups kept once every shard's resume point passed the create", copies, groups)
	}
}

// Copies of one collection's DDL match by its UUID however far apart their ts
// are; a copy arriving after its group was applied is done at once.
func TestLateCopyOfAnAppliedDDLIsNotAppliedAgain(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	spec := mustRaw(t, bson.D{{Key: "key", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "name", Value: "x_1"}})
	idx := oplog.DDL{Kind: oplog.DDLCreateIndexes, NS: nsOf("db.c"), Indexes: []bson.Raw{spec}, UUID: uuidA}
	ctx := ddlCtx(t)
	log := &memDDLLog{}
	o.Recover("b", nil, log)
	o.Position("b", at(10))
	must(t, ctx, add(t, o, "a", 10, idx))
	must(t, ctx, add(t, o, "b", 10+3600, idx)) // an hour later: beyond any window
	if got := kinds(exec.ran()); len(got) != 1 {
		t.Fatalf("ran %v, want the index build once", got)
	}
	// Its shard's checkpoint records it, so that a restart does not apply it again.
	if got := log.after("b", at(0)); len(got) != 1 || got[0].TS != at(10+3600) {
		t.Fatalf("shard b's checkpoint records %+v, want its late copy", got)
	}
}

// A late copy of a drop (a shard that was copying the collection when the
// other dropped it) drops again what that shard wrote meanwhile, unless the
// namespace was created again since.
func TestLateCopyOfADropDropsAgainUnlessRecreated(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	drop := oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.c"), UUID: uuidA}
	ctx := ddlCtx(t)
	o.Position("b", at(10))
	must(t, ctx, add(t, o, "a", 10, drop))
	o.Position("a", at(30))
	must(t, ctx, add(t, o, "b", 20, drop))
	if got := kinds(exec.ran()); len(got) != 2 {
		t.Fatalf("ran %v, want the drop again for shard b's late copy", got)
	}

	exec2 := &fakeExec{}
	o2 := startDDL(t, []string{"a", "b"}, exec2)
	o2.Position("b", at(10))
	must(t, ctx, add(t, o2, "a", 10, drop))
	o2.Position("b", at(16))
	must(t, ctx, add(t, o2, "a", 15, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("db.c"), UUID: uuidB}))
	o2.Position("a", at(30))
	must(t, ctx, add(t, o2, "b", 20, drop))
	if got := kinds(exec2.ran()); len(got) != 2 || got[1] != "create db.c" {
		t.Fatalf("ran %v, want the drop and the create only: the late drop would lose the new collection", got)
	}
}

// movePrimary: the new primary shard logs a create of the collection under a new
// UUID, then the old primary logs the drop of the old UUID. Neither may change
// the destination; replaying the drop deleted the migrated collection.
func TestMovePrimaryCreateAndDropChangeNothing(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"old", "new"}, exec)
	ctx := ddlCtx(t)
	create := add(t, o, "new", 20, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("db.c"), UUID: uuidB})
	// The old primary is ahead: its drop arrives first, and must still come after
	// the create.
	drop := add(t, o, "old", 21, oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.c"), UUID: uuidA})
	o.Position("old", at(22))
	o.Position("new", at(22))
	must(t, ctx, drop)
	must(t, ctx, create)
	for _, r := range exec.ran() {
		if r.ddl.Kind == oplog.DDLDrop {
			t.Fatalf("ran %v: movePrimary's drop reached the destination", kinds(exec.ran()))
		}
	}
	// The collection is still db.c: writes to it, under either UUID, stay.
	if ns, ok := o.Route(nsOf("db.c"), uuidB, at(30)); !ok || ns != nsOf("db.c") {
		t.Fatalf("a write after movePrimary routed to %v, %v", ns, ok)
	}
}

// Drops and renames of one namespace are applied in ts order whichever shard
// hands its copy over first.
func TestDDLOfOneNamespaceApplyInTSOrder(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	ctx := ddlCtx(t)
	later := add(t, o, "a", 21, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("db.c"), UUID: uuidB})
	o.Position("a", at(30))
	o.Position("b", at(19)) // b has not handed over its drop at 20 yet
	earlier := add(t, o, "b", 20, oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.c"), UUID: uuidA})
	o.Position("b", at(30))
	must(t, ctx, later)
	must(t, ctx, earlier)
	if got := kinds(exec.ran()); len(got) != 2 || got[0] != "drop db.c" {
		t.Fatalf("ran %v, want the drop before the create", got)
	}
}

// Writes a shard replays after the DDL were applied (it was copying, or replays
// again) reach the collection they were made to.
func TestWritesAreRoutedByTheDDLApplied(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a"}, exec)
	ctx := ddlCtx(t)
	must(t, ctx, add(t, o, "a", 10, oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.gone"), UUID: uuidA}))
	must(t, ctx, add(t, o, "a", 20, oplog.DDL{Kind: oplog.DDLRename, NS: nsOf("db.tmp"), To: nsOf("db.report"), DropTarget: true, UUID: uuidB, DropTargetUUID: []byte("CCCCCCCCCCCCCCCC")}))
	cases := []struct {
		name string
		ns   string
		ui   []byte
		ts   uint32
		want string // "" when the write is left out
	}{
		{"before the drop", "db.gone", nil, 5, ""},
		{"to the dropped UUID after the drop", "db.gone", uuidA, 15, ""},
		{"after the drop, another collection", "db.gone", nil, 15, "db.gone"},
		{"before the rename", "db.tmp", nil, 15, "db.report"},
		{"to the replaced target before the rename", "db.report", nil, 15, ""},
		{"to the replaced target's UUID", "db.report", []byte("CCCCCCCCCCCCCCCC"), 25, ""},
		{"to the renamed UUID under its old name", "db.tmp", uuidB, 25, "db.report"},
		{"to the new target after the rename", "db.report", uuidB, 25, "db.report"},
		{"another collection", "db.other", nil, 5, "db.other"},
	}
	for _, c := range cases {
		ns, ok := o.Route(nsOf(c.ns), c.ui, at(c.ts))
		got := ""
		if ok {
			got = ns.String()
		}
		if got != c.want {
			t.Errorf("write %s: routed to %q, want %q", c.name, got, c.want)
		}
	}
}

// blockingExec holds index builds until released, and runs everything else.
type blockingExec struct {
	fakeExec
	release chan struct{}
	started chan struct{}
	once    sync.Once
}

func (e *blockingExec) Exec(ctx context.Context, d oplog.DDL) error {
	if d.Kind == oplog.DDLCreateIndexes {
		e.once.Do(func() { close(e.started) })
		select {
		case <-e.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return e.fakeExec.Exec(ctx, d)
}

// An index build runs beside the other DDL; the DDL of its own collection wait
// for it, and the shard's row says so.
func TestIndexBuildRunsBesideOtherDDL(t *testing.T) {
	exec := &blockingExec{release: make(chan struct{}), started: make(chan struct{})}
	o := startDDL(t, []string{"a"}, exec)
	ctx := ddlCtx(t)
	spec := mustRaw(t, bson.D{{Key: "key", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "name", Value: "x_1"}})
	build := add(t, o, "a", 10, oplog.DDL{Kind: oplog.DDLCreateIndexes, NS: nsOf("db.big"), Indexes: []bson.Raw{spec}, UUID: uuidA})
	<-exec.started
	must(t, ctx, add(t, o, "a", 11, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("db.other"), UUID: uuidB}))
	drop := oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.big"), UUID: uuidA}
	dropped := add(t, o, "a", 12, drop)
	if w := o.Waiting("a", at(12), drop); !strings.Contains(w, "index build") {
		t.Errorf("the drop behind the build says %q", w)
	}
	close(exec.release)
	must(t, ctx, build)
	must(t, ctx, dropped)
	if got := kinds(exec.ran()); len(got) != 3 || got[0] != "create db.other" || got[2] != "drop db.big" {
		t.Fatalf("ran %v, want the create beside the build, and the drop after it", got)
	}
}

// A DDL waiting for another shard says which, and where that shard is.
func TestWaitingNamesTheShardsBehind(t *testing.T) {
	o := startDDL(t, []string{"a", "b", "c"}, &fakeExec{})
	o.Position("b", at(5))
	o.Position("c", at(50))
	d := oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.c"), UUID: uuidA}
	add(t, o, "a", 10, d)
	w := o.Waiting("a", at(10), d)
	if !strings.Contains(w, "shards b (at ") || strings.Contains(w, "c (at") {
		t.Fatalf("waiting says %q, want shard b only", w)
	}
}

func TestDDLFromAnUnknownShardIsRefused(t *testing.T) {
	o := NewDDLOnce([]string{"a"}, &fakeExec{}, nil)
	if _, err := o.AddDDL("z", at(1), oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.c")}); err == nil {
		t.Fatal("a DDL from an unknown shard was accepted")
	}
}

// After a process restart a shard reads again the writes before a drop it had
// applied: the drop's effect, kept with the copy in its checkpoint, routes them
// past it as the first time, so they do not re-create the dropped collection.
func TestWritesReadAgainAfterARestartAreRoutedPastTheAppliedDrop(t *testing.T) {
	log := &memDDLLog{}
	ctx := ddlCtx(t)
	first := startDDL(t, []string{"a"}, &fakeExec{})
	first.Recover("a", nil, log)
	must(t, ctx, add(t, first, "a", 10, oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("db.c"), UUID: uuidA}))
	must(t, ctx, add(t, first, "a", 12, oplog.DDL{Kind: oplog.DDLRename, NS: nsOf("db.x"), To: nsOf("db.y"), UUID: uuidB}))

	second := startDDL(t, []string{"a"}, &fakeExec{})
	second.Recover("a", log.after("a", at(5)), log) // the checkpoint was before both
	if _, ok := second.Route(nsOf("db.c"), uuidA, at(8)); ok {
		t.Error("a write read again from before the drop re-creates the dropped collection")
	}
	if ns, ok := second.Route(nsOf("db.x"), nil, at(11)); !ok || ns != nsOf("db.y") {
		t.Errorf("a write read again from before the rename goes to %v, %v; want db.y", ns, ok)
	}
}

// stallingExec holds every DDL of one namespace until released, as a destination
// busy with that one DDL would, and runs the others.
type stallingExec struct {
	fakeExec
	ns      oplog.Namespace
	release chan struct{}
	started chan struct{}
	once    sync.Once
}

func (e *stallingExec) Exec(ctx context.Context, d oplog.DDL) error {
	if d.NS == e.ns {
		e.once.Do(func() { close(e.started) })
		select {
		case <-e.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return e.fakeExec.Exec(ctx, d)
}

// DDL of other namespaces run beside a slow one, and a later DDL of its namespace
// waits for it. (Issue 15: on a busy destination each DDL took 0.2 s; applied one
// at a time they fell behind an application creating, dropping and replacing
// collections 8 times a second on two shards, and the lag grew to minutes.)
func TestDDLOfOtherNamespacesRunBesideASlowOne(t *testing.T) {
	exec := &stallingExec{ns: nsOf("app0.slow"), release: make(chan struct{}), started: make(chan struct{})}
	o := startDDL(t, []string{"a", "b"}, exec)
	ctx := ddlCtx(t)
	o.Position("a", at(30))
	o.Position("b", at(30))
	slow := add(t, o, "a", 10, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("app0.slow"), UUID: uuidA})
	<-exec.started
	// Shard b's create, and a's own drop of another collection, do not wait for it.
	must(t, ctx, add(t, o, "b", 11, oplog.DDL{Kind: oplog.DDLCreateCollection, NS: nsOf("app1.batch"), UUID: uuidB}))
	must(t, ctx, add(t, o, "a", 12, oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("app0.old"), UUID: []byte("CCCCCCCCCCCCCCCC")}))
	drop := oplog.DDL{Kind: oplog.DDLDrop, NS: nsOf("app0.slow"), UUID: uuidA}
	dropped := add(t, o, "a", 13, drop)
	if w := o.Waiting("a", at(13), drop); !strings.Contains(w, "waits for the create of app0.slow") {
		t.Errorf("the drop behind the slow create says %q", w)
	}
	close(exec.release)
	must(t, ctx, slow)
	must(t, ctx, dropped)
	want := []string{"create app1.batch", "drop app0.old", "create app0.slow", "drop app0.slow"}
	if got := kinds(exec.ran()); !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

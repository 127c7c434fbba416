package replay

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

func TestDDLCopyReadAgainByTheSameShardIsAppliedOnce(t *testing.T) {
	// A pipeline restarted from a resume point before a DDL reads the same copy
	// again: it must join the group it joined the first time, applied already.
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	drop := oplog.DDL{Kind: oplog.DDLDrop, NS: oplog.ParseNamespace("db.c")}
	ctx := context.Background()
	waitA, err := o.AddDDL("a", at(10), drop)
	if err != nil {
		t.Fatal(err)
	}
	waitB, err := o.AddDDL("b", at(10), drop)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitA(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waitB(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := o.AddDDL("a", at(10), drop)
	if err != nil {
		t.Fatal(err)
	}
	if err := again(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(exec.ran()); n != 1 {
		t.Fatalf("the drop ran %d times, want once", n)
	}
}

func TestDDLReadByOneShardIsAppliedOnceTheOthersPassedIt(t *testing.T) {
	// A DDL only shard a read (a create on its primary shard) is applied once shard b
	// has applied past its ts plus the window (1 s in these tests): b cannot hold a
	// copy then. (TestDDLHoldsOnlyItsNamespaces shows it waiting before that.)
	exec := &fakeExec{}
	o := startDDL(t, []string{"a", "b"}, exec)
	create := oplog.DDL{Kind: oplog.DDLCreateCollection, NS: oplog.ParseNamespace("db.c")}
	wait, err := o.AddDDL("a", at(10), create)
	if err != nil {
		t.Fatal(err)
	}
	o.Position("b", at(12))
	if err := wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exec.ran()); n != 1 {
		t.Fatalf("the create ran %d times, want once", n)
	}
}

// memDDLLog is a DDLLog in memory: the shards' checkpoints of a test.
type memDDLLog struct {
	mu     sync.Mutex
	copies map[string][]DDLCopy
}

func (l *memDDLLog) DDLApplied(shard string, c DDLCopy) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.copies == nil {
		l.copies = map[string][]DDLCopy{}
	}
	l.copies[shard] = append(l.copies[shard], c)
	return nil
}

// after returns what a shard's checkpoint at resume still holds: the copies after it.
func (l *memDDLLog) after(shard string, resume primitive.Timestamp) []DDLCopy {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []DDLCopy
	for _, c := range l.copies[shard] {
		if resume.Before(c.TS) {
			out = append(out, c)
		}
	}
	return out
}

// The process stops between two shards' checkpoints passing their copies of one DDL:
// shard a's checkpoint is past its copy, shard b's is not. After the restart b reads
// its copy again. It must not wait for a to pass the copy's window (a resumes after
// its copy and may not move for long: the migration would hang) nor apply the DDL
// again (a rename applied twice moves a collection re-created since).
func TestDDLCopyReadAgainAfterAProcessRestartIsNotAppliedTwice(t *testing.T) {
	exec := &fakeExec{}
	log := &memDDLLog{}
	rename := oplog.DDL{Kind: oplog.DDLRename, NS: oplog.ParseNamespace("db.a"), To: oplog.ParseNamespace("db.b")}
	index := oplog.DDL{Kind: oplog.DDLCreateIndexes, NS: oplog.ParseNamespace("db.b"),
		Indexes: []bson.Raw{mustRaw(t, bson.D{{Key: "key", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "name", Value: "x_1"}})}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // only keeps a broken test from hanging
	defer cancel()

	first := startDDL(t, []string{"a", "b"}, exec)
	first.Recover("a", nil, log)
	first.Recover("b", nil, log)
	for _, shard := range []string{"a", "b"} {
		// One applyOps entry carries both DDL: they share its ts.
		for _, d := range []oplog.DDL{rename, index} {
			wait, err := first.AddDDL(shard, at(10), d)
			if err != nil {
				t.Fatal(err)
			}
			if shard == "b" {
				if err := wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if n := len(exec.ran()); n != 2 {
		t.Fatalf("before the restart %d DDL ran, want the rename and the index once each", n)
	}

	// The restart: a resumes after its copy (at 11), b before it (at 9).
	second := startDDL(t, []string{"a", "b"}, exec)
	second.Recover("a", log.after("a", at(11)), log)
	second.Recover("b", log.after("b", at(9)), log)
	second.Position("a", at(11))
	for _, d := range []oplog.DDL{rename, index} {
		wait, err := second.AddDDL("b", at(10), d)
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(ctx); err != nil {
			t.Fatalf("shard b's copy of %s read again after the restart: %v", d.Kind, err)
		}
	}
	if n := len(exec.ran()); n != 2 {
		t.Fatalf("after the restart %d DDL had run, want 2: a copy already applied was applied again", n)
	}
	// A new DDL after the restart is still applied, once.
	drop := oplog.DDL{Kind: oplog.DDLDrop, NS: oplog.ParseNamespace("db.b")}
	wait, err := second.AddDDL("b", at(20), drop)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.AddDDL("a", at(20), drop); err != nil {
		t.Fatal(err)
	}
	if err := wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(exec.ran()); n != 3 {
		t.Fatalf("%d DDL ran, want 3", n)
	}
}

// Two different DDL of one applyOps entry share its ts: each is applied, neither is
// taken for a copy of the other.
func TestDDLOfOneEntryAreAppliedEach(t *testing.T) {
	exec := &fakeExec{}
	o := startDDL(t, []string{"a"}, exec)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // only keeps a broken test from hanging
	defer cancel()
	for _, coll := range []string{"db.x", "db.y"} {
		wait, err := o.AddDDL("a", at(10), oplog.DDL{Kind: oplog.DDLCreateCollection, NS: oplog.ParseNamespace(coll)})
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(exec.ran()); n != 2 {
		t.Fatalf("%d creates ran, want 2", n)
	}
}

func mustRaw(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package replay

import (
	"context"
	"testing"

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

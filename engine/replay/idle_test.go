package replay

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// A DDL one shard read waits until the other shard has read past it; a shard
// without writes reads nothing past its last entry (on a real server its primary
// writes a no-op only every 10 s), so its primary is asked for an entry past the
// DDL, and the DDL goes on once the shard reads it. (Issue 15: with the load
// stopped, a create in one database waited 2 to 3 s, up to 10, for the other shard.)
func TestAnIdleShardIsAskedForAnEntryPastADDLThatWaitsForIt(t *testing.T) {
	dest := newFakeDest()
	exec := &fakeExec{dest: dest}
	ddl := startDDL(t, []string{"a", "b"}, exec)
	srcA := newFakeOplog(
		noopOp(at(100)),
		commandOp(at(105), "two", bson.D{{Key: "create", Value: "c"}}),
		insertOp(at(106), "two.c", doc(1, 0)),
	)
	srcB := newFakeOplog(noopOp(at(100)))
	type ask struct {
		shard, from string
		ts          primitive.Timestamp
	}
	var mu sync.Mutex
	var asks []ask
	ddl.AdvanceIdleShards(func(_ context.Context, shard, from string, ts primitive.Timestamp) error {
		mu.Lock()
		asks = append(asks, ask{shard, from, ts})
		mu.Unlock()
		if shard == "b" {
			srcB.append(noopOp(primitive.Timestamp{T: ts.T, I: ts.I + 1}))
		}
		return nil
	})
	startShardsAB(t, srcA, srcB, dest, ddl)
	eventually(t, "a's create of two.c and its insert applied, idle shard b asked past it", func() bool {
		return len(dest.docs("two.c")) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(asks, ask{"b", "a", at(105)}) {
		t.Fatalf("asks %v: want shard b asked past a's create at %v with a's cluster time", asks, at(105))
	}
	for _, a := range asks {
		if a.shard != "b" {
			t.Fatalf("asked shard %s, which read the DDL itself: %v", a.shard, asks)
		}
	}
}

package engine

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// swapTokens swaps the unique tokens of pairs of analytics.sessions documents (an
// unsharded collection, unique index token_1) through a free value, as an
// application renaming keys would: A -> free, B -> A's, A -> B's. The source never
// holds a duplicate; applied by document, the writes of B can overtake A's. It
// runs until ctx ends and returns how many swaps it made.
func swapTokens(ctx context.Context, t *testing.T, c *mongo.Client) (swaps *atomic.Int64, done chan error) {
	t.Helper()
	coll := c.Database("analytics").Collection("sessions")
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetLimit(40).SetProjection(bson.D{{Key: "token", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID    any    `bson:"_id"`
		Token string `bson:"token"`
	}
	if err := cur.All(ctx, &docs); err != nil || len(docs) < 2 {
		t.Fatalf("read sessions to swap: %d, %v", len(docs), err)
	}
	swaps, done = &atomic.Int64{}, make(chan error, 1)
	set := func(id any, token string) error {
		_, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "token", Value: token}}}})
		return err
	}
	go func() {
		for n := 0; ; n++ {
			a, b := &docs[(2*n)%len(docs)], &docs[(2*n+1)%len(docs)]
			free := fmt.Sprintf("swap-%d", n)
			for _, step := range []struct {
				id    any
				token string
			}{{a.ID, free}, {b.ID, a.Token}, {a.ID, b.Token}} {
				if err := set(step.id, step.token); err != nil {
					if ctx.Err() != nil {
						err = nil
					}
					done <- err
					return
				}
			}
			a.Token, b.Token = b.Token, a.Token
			swaps.Add(1)
		}
	}()
	return swaps, done
}

// The relaxed unique indexes are made unique on the destination once every shard
// is in sync, under writes that swap unique values between documents, and the
// finalize builds none of them.
func TestSandboxUniqueIndexesAreRestoredWhileSyncingAndNotAtTheFinalize(t *testing.T) {
	e := startE2E(t, 1000)
	m := e.migration(newMemCheckpoints("e2e"))
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "ready", isState(Ready))

	ctx, stopSwaps := context.WithCancel(context.Background())
	defer stopSwaps()
	swaps, swapped := swapTokens(ctx, t, e.srcC)
	s := await(t, m, 3*time.Minute, "every unique index restored while syncing", func(s Snapshot) bool {
		return strings.Contains(s.UniqueIndexes, "unique indexes restored on the destination while syncing")
	})
	t.Logf("%s (%d swaps so far)", s.UniqueIndexes, swaps.Load())
	var total int
	if _, err := fmt.Sscanf(s.UniqueIndexes, "%d of %d", new(int), &total); err != nil || !strings.HasPrefix(s.UniqueIndexes, fmt.Sprintf("%d of %d", total, total)) {
		t.Fatalf("not every unique index was restored: %q (%v); history %v", s.UniqueIndexes, err, s.History)
	}
	if !e.uniqueOnDestination("analytics", "sessions", "token_1") {
		t.Fatal("analytics.sessions token_1 is not unique on the destination before I'm done")
	}
	// The swaps go on against the restored index: the replay applies them in order
	// (a shard may fall behind on a loaded machine; none fails).
	for at := swaps.Load(); swaps.Load() < at+50; {
		if s := m.Snapshot(); anyShard(s, func(p ShardProgress) bool { return p.Phase == ShardFailed }) {
			t.Fatalf("a shard failed under the swaps: %s %s", s.Reason, phases(s))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopSwaps()
	if err := <-swapped; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d swaps", swaps.Load())

	s = e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if v := s.Verification; s.State != Done || !v.OK() {
		t.Fatalf("state %s verification %+v", s.State, v)
	}
	var restored string
	for _, ev := range s.History {
		if strings.HasPrefix(ev.Reason, "restored ") && strings.Contains(ev.Reason, "relaxed for the sync") {
			restored = ev.Reason
		}
	}
	want := fmt.Sprintf("0 unique indexes made unique now, %d already restored while syncing", total)
	if !strings.Contains(restored, want) {
		t.Fatalf("the finalize's restore says %q, want %q", restored, want)
	}
	e.sameIndexes()
}

// uniqueOnDestination reports whether the destination's index name of db.coll is
// unique.
func (e *e2e) uniqueOnDestination(db, coll, name string) bool {
	for _, spec := range e.indexes(context.Background(), e.dstC, db, coll) {
		if n, _ := spec.Lookup("name").StringValueOK(); n == name {
			return boolByte(spec.Lookup("unique")) == 1
		}
	}
	return false
}

package initialsync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/initialsync"
)

// TestLargeCollectionCopiedInEightPartitionsEqualAndResumed copies a collection
// whose _ids mix numbers, strings, ObjectIds and dates in 8 partitions (bounds
// from $sample on the shard, scans bounded by find's min and max), stopped after
// a few inserts and resumed from the checkpoint: the destination must equal the
// source document for document.
func TestLargeCollectionCopiedInEightPartitionsEqualAndResumed(t *testing.T) {
	e := startEnv(t, 1)
	ctx := context.Background()
	db := e.testDB(t, "parts")
	const n = 3000
	var docs []any
	for i := range n {
		var id any
		switch i % 4 {
		case 0:
			id = int64(i)
		case 1:
			id = fmt.Sprintf("k%05d", i)
		case 2:
			id = primitive.ObjectID{0x65, byte(i >> 8), byte(i)}
		case 3:
			id = primitive.DateTime(int64(i))
		}
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}, {Key: "pad", Value: strings.Repeat("x", 100)}})
	}
	if _, err := e.srcC.Database(db).Collection("big").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	p := e.plan(t)
	sp := &p.Shards[0]
	for i := range p.Shards {
		if len(p.Shards[i].Namespaces) > 0 {
			sp = &p.Shards[i]
		}
	}
	src := e.shardClient(t, sp.Source)
	t0, err := initialsync.RecordT0(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	mem := newMemory()
	copyOnce := func(ctx context.Context, dst initialsync.Destination) error {
		c, err := initialsync.New(initialsync.Config{
			Shard: sp, Source: initialsync.MongoSource(src, t0), Destination: dst,
			Saved: mem.saved(sp.Source), Checkpoints: mem, Indexes: mem,
			Partitions: 8, PartitionDocs: 1, BatchDocs: 50,
		})
		if err != nil {
			return err
		}
		return c.Copy(ctx)
	}
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	if err := copyOnce(stopCtx, &cancelAfter{Destination: initialsync.MongoDestination(e.dstC), n: 20, cancel: stop}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted copy returned %v, want cancelled", err)
	}
	saved := mem.saved(sp.Source)
	parts := 0
	for key := range saved {
		if strings.HasPrefix(key, db+".big$") {
			parts++
		}
	}
	if parts != 8 {
		t.Fatalf("the interrupted copy saved %v: want 8 partitions of %s.big", saved, db)
	}
	if err := copyOnce(ctx, initialsync.MongoDestination(e.dstC)); err != nil {
		t.Fatal(err)
	}
	for key, prog := range mem.saved(sp.Source) {
		if strings.HasPrefix(key, db+".big$") && !prog.Done {
			t.Fatalf("partition %s is not done after the copy: %+v", key, prog)
		}
	}
	e.assertEqual(t, p)
}

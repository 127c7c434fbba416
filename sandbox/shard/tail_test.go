package shard

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// TestOplogEntriesAreVisibleOnlyInTsOrder: with 8 concurrent writers, a tailer on a
// tailable awaitData cursor sees every entry exactly once and in strictly increasing
// ts order (FerretDB's own oplog lost entries in this very test).
func TestOplogEntriesAreVisibleOnlyInTsOrder(t *testing.T) {
	const writers, perWriter = 8, 1250
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	coll := c.Database("ord").Collection("c")
	if err := c.Database("ord").CreateCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	start := lastTS(t, c)

	cur, err := oplogColl(c).Find(ctx,
		bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: start}}}, {Key: "ns", Value: "ord.c"}},
		options.Find().SetCursorType(options.TailableAwait).SetBatchSize(7).SetMaxAwaitTime(200*time.Millisecond))
	if err != nil {
		t.Fatalf("open tailable cursor: %v", err)
	}
	defer cur.Close(context.Background())

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perWriter {
				var err error
				switch k % 3 {
				case 0:
					_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("%d-%d", w, k)}, {Key: "k", Value: k}})
				case 1:
					_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("%d-%d", w, k-1)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "u", Value: k}}}})
				case 2:
					_, err = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("%d-%d", w, k-2)}})
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d op %d: %w", w, k, err)
					return
				}
			}
		}()
	}

	seen := map[string]bool{}
	var prev primitive.Timestamp
	for len(seen) < writers*perWriter && cur.Next(ctx) {
		var e struct {
			TS primitive.Timestamp `bson:"ts"`
			Op string              `bson:"op"`
			O  bson.Raw            `bson:"o"`
			O2 bson.Raw            `bson:"o2"`
		}
		if err := cur.Decode(&e); err != nil {
			t.Fatal(err)
		}
		if compareTS(e.TS, prev) <= 0 {
			t.Fatalf("entry %v came after %v: ts not strictly increasing", e.TS, prev)
		}
		prev = e.TS
		id := e.O.Lookup("_id")
		if e.Op == "u" {
			id = e.O2.Lookup("_id")
		}
		key := e.Op + ":" + id.StringValue()
		if seen[key] {
			t.Fatalf("entry %s seen twice", key)
		}
		seen[key] = true
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("tailing: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("tailer saw %d entries, want %d", len(seen), writers*perWriter)
	}
	for w := range writers {
		for k := range perWriter {
			ops := [3]string{"i", "u", "d"}
			key := fmt.Sprintf("%s:%d-%d", ops[k%3], w, k-k%3)
			if !seen[key] {
				t.Fatalf("entry %s never seen", key)
			}
		}
	}
}

func TestIdleShardWritesPeriodicNoops(t *testing.T) {
	f := startFront(t, Config{NoopInterval: 30 * time.Millisecond})
	c := connect(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := lastTS(t, c)
	cur, err := oplogColl(c).Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: start}}}},
		options.Find().SetCursorType(options.TailableAwait).SetBatchSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(context.Background())
	for i := 0; i < 3; i++ {
		if !cur.Next(ctx) {
			t.Fatalf("no no-op entry arrived: %v", cur.Err())
		}
		if op := cur.Current.Lookup("op").StringValue(); op != "n" {
			t.Fatalf("idle shard wrote a %q entry", op)
		}
		if msg := cur.Current.Lookup("o", "msg").StringValue(); msg != "periodic noop" {
			t.Fatalf("no-op message %q", msg)
		}
	}
}

func TestSmallOplogRollsOffAndLostCursorGetsCappedPositionLost(t *testing.T) {
	f := startFront(t, Config{OplogSize: 4096})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("roll").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	// A cursor that read one entry and then fell behind.
	cur, err := oplogColl(c).Find(ctx, bson.D{}, options.Find().SetCursorType(options.TailableAwait).SetBatchSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	if !cur.Next(ctx) {
		t.Fatalf("first entry: %v", cur.Err())
	}
	first := cur.Current.Lookup("ts")

	for i := 1; i <= 200; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: "0123456789012345678901234567890123456789"}}); err != nil {
			t.Fatal(err)
		}
	}
	var stats bson.M
	if err := c.Database("local").RunCommand(ctx, bson.D{{Key: "collStats", Value: "oplog.rs"}}).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats["size"].(int64) > 4096 || stats["maxSize"].(int64) != 4096 || stats["capped"] != true {
		t.Fatalf("collStats after 200 inserts into a 4 KiB oplog: %v", stats)
	}
	oldest, err := oplogColl(c).FindOne(ctx, bson.D{}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if oldest.Lookup("ts").Equal(first) {
		t.Fatal("the oldest entry did not roll off")
	}

	// The cursor that fell behind: it must fail, not skip entries silently.
	for cur.Next(ctx) {
	}
	if commandCode(cur.Err()) != 136 {
		t.Fatalf("cursor behind the oplog's start: want CappedPositionLost (136), got %v", cur.Err())
	}

	// Shrinking the oplog rolls entries off at once.
	f.SetOplogSize(1024)
	if err := c.Database("local").RunCommand(ctx, bson.D{{Key: "collStats", Value: "oplog.rs"}}).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if stats["size"].(int64) > 1024 {
		t.Fatalf("oplog still holds %v bytes after shrinking to 1024", stats["size"])
	}
	// A find from an old position starts at the oldest entry left, as MongoDB does; the
	// caller sees the gap by comparing ts.
	from, err := oplogColl(c).FindOne(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: first}}}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	t1, i1 := first.Timestamp()
	t2, i2 := from.Lookup("ts").Timestamp()
	if compareTS(primitive.Timestamp{T: t2, I: i2}, primitive.Timestamp{T: t1, I: i1}) <= 0 {
		t.Fatal("a rolled-off entry is still served")
	}
}

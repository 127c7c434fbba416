package shard

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// TestStatisticsAreComputedAgainOnlyAfterAWrite: collStats, dbStats and listDatabases
// cost FerretDB a read of the data; the front answers them again while nothing was
// written, and every kind of write (FerretDB's own, the front's keyed SQL for numeric
// _ids, DDL) makes the next answer a new one.
func TestStatisticsAreComputedAgainOnlyAfterAWrite(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	db := c.Database("app")
	docs := []any{}
	for i := range 20 {
		docs = append(docs, bson.D{{Key: "_id", Value: int32(i)}, {Key: "v", Value: i}})
	}
	if _, err := db.Collection("c").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("other").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}}); err != nil {
		t.Fatal(err)
	}

	computed := func() uint64 {
		n.be.gens.mu.Lock()
		defer n.be.gens.mu.Unlock()
		return n.be.gens.computed
	}
	count := func(coll string) int64 {
		t.Helper()
		var r bson.Raw
		if err := db.RunCommand(ctx, bson.D{{Key: "collStats", Value: coll}}).Decode(&r); err != nil {
			t.Fatal(err)
		}
		v, _ := r.Lookup("count").AsInt64OK()
		return v
	}
	objects := func() int64 {
		t.Helper()
		var r bson.Raw
		if err := db.RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Decode(&r); err != nil {
			t.Fatal(err)
		}
		v, _ := r.Lookup("objects").AsInt64OK()
		return v
	}
	names := func() []string {
		t.Helper()
		got, err := c.ListDatabaseNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	expect := func(what string, gotCount, wantCount, gotObjects, wantObjects int64) {
		t.Helper()
		if gotCount != wantCount || gotObjects != wantObjects {
			t.Fatalf("%s: collStats count %d, dbStats objects %d; want %d and %d", what, gotCount, gotObjects, wantCount, wantObjects)
		}
	}

	expect("after the inserts", count("c"), 20, objects(), 21)
	// The inserts were retryable writes: their sessions' records reach
	// config.transactions up to sessionFlushInterval later, a write of its own.
	flushedSessions(n)
	names()
	before := computed()
	for range 3 {
		expect("asked again", count("c"), 20, objects(), 21)
		names()
	}
	if again := computed() - before; again != 0 {
		t.Fatalf("nothing was written, yet %d statistics were computed again", again)
	}

	// A write to another collection leaves c's answer, not the database's.
	if _, err := db.Collection("other").InsertOne(ctx, bson.D{{Key: "_id", Value: "y"}}); err != nil {
		t.Fatal(err)
	}
	before = computed()
	expect("after a write to another collection", count("c"), 20, objects(), 22)
	if again := computed() - before; again != 2 { // dbStats, and other's collStats within it
		t.Fatalf("after a write to app.other: %d statistics computed again, want 2 (dbStats and app.other's collStats)", again)
	}

	// The front's keyed writes (numeric _ids: its own SQL on FerretDB's files).
	if _, err := db.Collection("c").UpdateOne(ctx, bson.D{{Key: "_id", Value: int32(3)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "pad", Value: string(make([]byte, 4000))}}}}); err != nil {
		t.Fatal(err)
	}
	before = computed()
	count("c")
	if computed() == before {
		t.Fatal("an update by numeric _id left collStats answered from before it")
	}
	if _, err := db.Collection("c").DeleteOne(ctx, bson.D{{Key: "_id", Value: int32(4)}}); err != nil {
		t.Fatal(err)
	}
	expect("after a delete by numeric _id", count("c"), 19, objects(), 21)

	// DDL: a new database is listed, a dropped collection no longer counted.
	if err := c.Database("fresh").CreateCollection(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Contains(got, "fresh") {
		t.Fatalf("listDatabases after creating fresh.f: %v", got)
	}
	if err := db.Collection("other").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	expect("after dropping app.other", count("c"), 19, objects(), 19)
	if err := c.Database("fresh").Drop(ctx); err != nil && !mongo.IsNetworkError(err) {
		t.Fatal(err)
	}
	if got := names(); slices.Contains(got, "fresh") {
		t.Fatalf("listDatabases after dropping fresh: %v", got)
	}
}

// flushedSessions returns once the node's session records marked so far are written
// to config.transactions: none is left marked, and no flush is under way (a flush
// holds recordsMu from the moment it takes the marked records until they are written).
func flushedSessions(n *node) {
	for {
		n.writeMu.Lock()
		marked := len(n.dirtySessions)
		n.recordsMu.Lock()
		n.recordsMu.Unlock()
		n.writeMu.Unlock()
		if marked == 0 {
			return
		}
		time.Sleep(sessionFlushInterval / 4)
	}
}

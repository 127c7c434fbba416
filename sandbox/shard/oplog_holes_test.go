package shard

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// An entry in a hole is invisible while the entries after it are served: the newest
// visible entry (what a reader takes as "now") is past it, a tailer passes it, and the
// secondaries stop before it; once the hole closes it is there.
func TestOplogHoleHidesAnEntryButNotTheNext(t *testing.T) {
	f := startFront(t, Config{Members: 2})
	p := connectMember(t, f, 0)
	s := connectMember(t, f, 1)
	ctx := context.Background()
	coll := p.Database("app").Collection("c")
	if err := p.Database("app").CreateCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	before := lastTS(t, p)
	waitFor(t, "the secondary to apply the create", func() bool { return lastTS(t, s) == before })
	if err := f.HideNextEntries(1); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "hidden"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "visible"}}); err != nil {
		t.Fatal(err)
	}
	idsAfter := func(after primitive.Timestamp) []string {
		var ids []string
		for _, e := range entriesAfter(t, p, after) {
			ids = append(ids, e.Lookup("o", "_id").StringValue())
		}
		return ids
	}
	if got := idsAfter(before); len(got) != 1 || got[0] != "visible" {
		t.Errorf("entries after the create while the hole is open: %v, want only the later insert", got)
	}
	var newest struct {
		O bson.M `bson:"o"`
	}
	if err := oplogColl(p).FindOne(ctx, bson.D{{Key: "op", Value: "i"}}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Decode(&newest); err != nil || newest.O["_id"] != "visible" {
		t.Errorf("the newest insert entry: %v (%v), want the later insert", newest.O, err)
	}
	// The secondary waits at the hole: it has neither insert.
	if n, _ := s.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); n != 0 || lastTS(t, s) != before {
		t.Errorf("the secondary applied past the hole: %d documents", n)
	}
	// A hole at the end: the newest visible entry is the one before it.
	if err := f.HideNextEntries(1); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "newest"}}); err != nil {
		t.Fatal(err)
	}
	if err := oplogColl(p).FindOne(ctx, bson.D{{Key: "op", Value: "i"}}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Decode(&newest); err != nil || newest.O["_id"] != "visible" {
		t.Errorf("the newest visible insert entry with a hole at the end: %v (%v), want the one before it", newest.O, err)
	}
	if err := f.RevealEntries(); err != nil {
		t.Fatal(err)
	}
	if got := idsAfter(before); len(got) != 3 || got[0] != "hidden" || got[2] != "newest" {
		t.Errorf("entries after the holes closed: %v, want the three inserts in order", got)
	}
	end := lastTS(t, p)
	waitFor(t, "the secondary to apply through the closed hole", func() bool { return lastTS(t, s) == end })
}

// With OplogHoles set, every other write's entry hides (for that long).
func TestOplogHolesOptionHidesEveryOtherEntry(t *testing.T) {
	f := startFront(t, Config{OplogHoles: time.Hour})
	p := connectMember(t, f, 0)
	ctx := context.Background()
	if err := p.Database("app").CreateCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := p.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	// create, 0, 1, 2, 3: the first, third and fifth writes are in holes.
	got := entriesAfter(t, p, primitive.Timestamp{})
	var ids []int32
	for _, e := range got {
		if v, ok := e.Lookup("o", "_id").Int32OK(); ok {
			ids = append(ids, v)
		}
	}
	if len(ids) != 2 || ids[0] != 0 || ids[1] != 2 {
		t.Errorf("visible inserts %v, want [0 2]", ids)
	}
}

// A member replicates up to the first open hole, never across it.
func TestReplicationStopsAtTheFirstHole(t *testing.T) {
	l, err := openOplog(filepath.Join(t.TempDir(), "oplog.bson"), 1<<20, formsOf(wire.Identity{Version: "7.0.42", FCV: "7.0"}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	start, _ := l.last()
	insert := func(id string) {
		o, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}})
		if err := l.append(draft{op: "i", ns: "app.c", o: o}); err != nil {
			t.Fatal(err)
		}
	}
	insert("before")
	l.hideNext(1)
	insert("hidden")
	insert("after")
	es, held := l.since(start, 100)
	if !held || len(es) != 1 || es[0].raw.Lookup("o", "_id").StringValue() != "before" {
		t.Errorf("entries to replicate with a hole open: %d (held %v), want only the one before it", len(es), held)
	}
	l.revealAll()
	if es, _ := l.since(start, 100); len(es) != 3 {
		t.Errorf("entries to replicate once the hole closed: %d, want 3", len(es))
	}
}

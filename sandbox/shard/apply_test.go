package shard

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// $out's last step renames tmp.agg_out.<uuid> over its target, with dropTarget a
// boolean up to 4.2 and the target's UUID from 4.4: secondaries apply it as the
// primary ran it. (Found migrating as a user: every secondary of the set stopped
// replicating at such a rename, and the majority commit point with them.)
func TestSecondariesApplyTheRenameOfAnOut(t *testing.T) {
	for _, version := range []string{"4.2", "7.0"} {
		t.Run(version, func(t *testing.T) {
			f := startFront(t, Config{Members: 3, Identity: wire.Identity{Version: version}})
			p := connectMember(t, f, 0)
			ctx := context.Background()
			db := p.Database("app")
			if _, err := db.Collection("report").InsertOne(ctx, bson.D{{Key: "_id", Value: "old"}}); err != nil {
				t.Fatal(err)
			}
			tmp := "tmp.agg_out.0123456789abcdef"
			if _, err := db.Collection(tmp).InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}}); err != nil {
				t.Fatal(err)
			}
			rename := bson.D{{Key: "renameCollection", Value: "app." + tmp}, {Key: "to", Value: "app.report"}, {Key: "dropTarget", Value: true}}
			if err := p.Database("admin").RunCommand(ctx, rename).Err(); err != nil {
				t.Fatal(err)
			}
			want := docsOf(t, p, "app", "report", nil)
			if len(want) != 2 {
				t.Fatalf("the primary's report holds %v", want)
			}
			last := lastTS(t, p)
			for i := 1; i < 3; i++ {
				s := connectMember(t, f, i)
				waitFor(t, fmt.Sprintf("member %d to apply %v", i, last), func() bool { return lastTS(t, s) == last })
				if got := docsOf(t, s, "app", "report", nil); !slices.Equal(got, want) {
					t.Errorf("member %d's report holds %v, the primary's %v", i, got, want)
				}
				names, err := s.Database("app").ListCollectionNames(ctx, bson.D{})
				if err != nil || slices.Contains(names, tmp) {
					t.Errorf("member %d lists %v (%v): %s should be gone", i, names, err, tmp)
				}
			}
		})
	}
}

// A secondary applies every entry its primary wrote without waiting for a later one:
// it was woken only by appends after its last read, so an entry appended between its
// read and its wait sat there until the next write (a no-op, 10 s later), and the
// set's majority commit point with it. Updates one at a time open that gap often.
func TestSecondariesCatchUpWithoutALaterWrite(t *testing.T) {
	f := startFront(t, Config{Members: 3, NoopInterval: time.Hour})
	p := connectMember(t, f, 0)
	ctx := context.Background()
	coll := p.Database("app").Collection("items")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	secondaries := []*mongo.Client{connectMember(t, f, 1), connectMember(t, f, 2)}
	for round := range 20 {
		for i := range 10 {
			if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 0}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: round*10 + i}}}}); err != nil {
				t.Fatal(err)
			}
		}
		last := lastTS(t, p)
		for i, s := range secondaries {
			waitFor(t, fmt.Sprintf("member %d to apply %v with no write after it (round %d)", i+1, last, round), func() bool { return lastTS(t, s) == last })
		}
	}
}

// A prepared transaction's entries and its config.transactions record commit as one on
// a real shard: nobody reads the prepare in the oplog (and no majority point passes
// it) before the record is there, so a T0 taken past the prepare finds the
// transaction open. The sandbox writes the record second and hides the entries until
// then. (Fault scenario 8 and a user's migration at --txn-rate 3 failed on "commits a
// prepared transaction this sync never saw": T0 passed a prepare whose record was
// not written yet, so the replay started after it.)
func TestAPreparedTransactionsEntriesShowNoEarlierThanItsRecord(t *testing.T) {
	f := startFront(t, Config{Members: 3})
	p := connectMember(t, f, 0)
	ctx := context.Background()
	recording, release := make(chan struct{}), make(chan struct{})
	testHookPrepareRecord = func() { close(recording); <-release }
	defer func() { testHookPrepareRecord = nil }()
	lsid := bson.D{{Key: "id", Value: primitive.Binary{Subtype: 4, Data: make([]byte, 16)}}}
	insert := bson.D{{Key: "insert", Value: "c"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: 1}}}},
		{Key: routerLSID, Value: lsid}, {Key: "txnNumber", Value: int64(1)}, {Key: "autocommit", Value: false}, {Key: "startTransaction", Value: true}}
	if err := p.Database("app").RunCommand(ctx, insert).Err(); err != nil {
		t.Fatal(err)
	}
	before := lastTS(t, p)
	prepared := make(chan error, 1)
	go func() {
		prepared <- p.Database("admin").RunCommand(ctx, bson.D{{Key: "prepareTransaction", Value: 1},
			{Key: routerLSID, Value: lsid}, {Key: "txnNumber", Value: int64(1)}, {Key: "autocommit", Value: false}}).Err()
	}()
	<-recording
	if es := entriesAfter(t, p, before); len(es) > 0 {
		close(release)
		t.Fatalf("the prepare's entries are read before its config.transactions record is written: %v", es)
	}
	close(release)
	if err := <-prepared; err != nil {
		t.Fatal(err)
	}
	if es := entriesAfter(t, p, before); len(es) == 0 {
		t.Fatal("the prepare's entries stay hidden after its record is written")
	}
}

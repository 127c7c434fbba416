package shard

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// emptyUserUID is the uid MongoDB gives the sessions of an unauthenticated client: the
// SHA-256 of "".
const emptyUserUID = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

// inSession runs commands in one explicit session, so that they share its lsid.
func inSession(t *testing.T, c *mongo.Client, fn func(ctx context.Context)) {
	t.Helper()
	s, err := c.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.EndSession(context.Background())
	mongo.WithSession(context.Background(), s, func(sc mongo.SessionContext) error {
		fn(sc)
		return nil
	})
}

// sessionOf returns an entry's lsid, txnNumber, stmtId and prevOpTime ts.
func sessionOf(t *testing.T, e bson.Raw) (lsid bson.Raw, txn int64, stmt int32, prev primitive.Timestamp, prevTerm int64) {
	t.Helper()
	lsid, _ = e.Lookup("lsid").DocumentOK()
	txn, _ = e.Lookup("txnNumber").Int64OK()
	stmt, _ = e.Lookup("stmtId").Int32OK()
	pt, pi, _ := e.Lookup("prevOpTime", "ts").TimestampOK()
	prevTerm, _ = e.Lookup("prevOpTime", "t").Int64OK()
	return lsid, txn, stmt, primitive.Timestamp{T: pt, I: pi}, prevTerm
}

// A retryable insert's entries carry lsid (with the uid of an unauthenticated user),
// txnNumber, each statement's stmtId and prevOpTime chaining them from the null optime;
// the driver's retry of the same statements writes nothing again; an older txnNumber is
// refused; the session's record reaches config.transactions.
func TestRetryableWritesCarryTheirSession(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f, options.Client().SetRetryWrites(false))
	db := c.Database("app")
	if err := db.CreateCollection(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	insert := bson.D{{Key: "insert", Value: "r"}, {Key: "documents", Value: bson.A{
		bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}, bson.D{{Key: "_id", Value: 3}},
	}}, {Key: "txnNumber", Value: int64(7)}}
	var lsidSent bson.Raw
	inSession(t, c, func(ctx context.Context) {
		lsidSent = mongo.SessionFromContext(ctx).ID()
		before := lastTS(t, c)
		var reply bson.Raw
		var err error
		if reply, err = db.RunCommand(ctx, insert).Raw(); err != nil {
			t.Fatal(err)
		}
		got := entriesAfter(t, c, before)
		if len(got) != 3 {
			t.Fatalf("got %d entries, want 3: %v", len(got), got)
		}
		var prevTS primitive.Timestamp
		for i, e := range got {
			lsid, txn, stmt, prev, term := sessionOf(t, e)
			if id := lsid.Lookup("id"); !bytes.Equal(id.Value, lsidSent.Lookup("id").Value) {
				t.Errorf("entry %d: lsid %s, want the session's id %s", i, lsid, lsidSent)
			}
			if _, uid, _ := lsid.Lookup("uid").BinaryOK(); base64.StdEncoding.EncodeToString(uid) != emptyUserUID {
				t.Errorf("entry %d: lsid.uid %x, want the SHA-256 of the empty user name", i, uid)
			}
			if txn != 7 || stmt != int32(i) {
				t.Errorf("entry %d: txnNumber %d stmtId %d, want 7 and %d", i, txn, stmt, i)
			}
			if wantTerm := map[bool]int64{true: -1, false: 1}[i == 0]; prev != prevTS || term != wantTerm {
				t.Errorf("entry %d: prevOpTime {%v, %d}, want {%v, %d}", i, prev, term, prevTS, wantTerm)
			}
			ts, tsI, _ := e.Lookup("ts").TimestampOK()
			prevTS = primitive.Timestamp{T: ts, I: tsI}
		}
		if n, _ := reply.Lookup("n").AsInt64OK(); n != 3 {
			t.Fatalf("insert: %s", reply)
		}

		// The driver retries after losing the answer: same lsid, txnNumber, statements.
		before = lastTS(t, c)
		if reply, err = db.RunCommand(ctx, insert).Raw(); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if n, _ := reply.Lookup("n").AsInt64OK(); n != 3 || reply.Lookup("writeErrors").Type != 0 {
			t.Errorf("retry answered %s, want n: 3 and no write error", reply)
		}
		if got := entriesAfter(t, c, before); len(got) != 0 {
			t.Errorf("the retry wrote %d entries, want none", len(got))
		}

		err = db.RunCommand(ctx, bson.D{{Key: "insert", Value: "r"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: 9}}}}, {Key: "txnNumber", Value: int64(6)}}).Err()
		if commandCode(err) != 225 {
			t.Errorf("an older txnNumber: %v, want TransactionTooOld (225)", err)
		}
	})

	// config.transactions catches up with the session's last write.
	last := lastTS(t, c)
	waitFor(t, "the session's record in config.transactions", func() bool {
		var rec struct {
			TxnNum  int64 `bson:"txnNum"`
			LastOpT struct {
				TS primitive.Timestamp `bson:"ts"`
			} `bson:"lastWriteOpTime"`
		}
		err := c.Database("config").Collection("transactions").FindOne(context.Background(), bson.D{}).Decode(&rec)
		return err == nil && rec.TxnNum == 7 && rec.LastOpT.TS == last
	})
}

// waitFor polls cond until it holds (failing after 10 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A shard that restarts rebuilds its sessions from the oplog: a retry after the restart
// is still recognised.
func TestRetryAfterRestartIsNotWrittenTwice(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f, options.Client().SetRetryWrites(false))
	db := c.Database("app")
	update := bson.D{{Key: "update", Value: "r"}, {Key: "updates", Value: bson.A{
		bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "u", Value: bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}}},
	}}, {Key: "txnNumber", Value: int64(1)}}
	if _, err := db.Collection("r").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	inSession(t, c, func(ctx context.Context) {
		if err := db.RunCommand(ctx, update).Err(); err != nil {
			t.Fatal(err)
		}
		if err := f.Restart(); err != nil {
			t.Fatal(err)
		}
		// The first command on a connection of before the restart meets a closed socket.
		err := db.RunCommand(ctx, update).Err()
		for attempt := 0; mongo.IsNetworkError(err) && attempt < 3; attempt++ {
			err = db.RunCommand(ctx, update).Err()
		}
		if err != nil {
			t.Fatalf("retry after restart: %v", err)
		}
	})
	var doc struct{ N int32 }
	if err := db.Collection("r").FindOne(context.Background(), bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.N != 1 {
		t.Errorf("n = %d (%v), want 1: the retry must not increment again", doc.N, err)
	}
}

// A retryable findAndModify keeps the document it answers with as each version does: a
// no-op entry the write points to (3.6 to 5.0; linked into the session from 4.4), or
// config.image_collection and needsRetryImage (5.1+).
func TestRetryableFindAndModifyKeepsItsImage(t *testing.T) {
	for _, c := range []struct {
		version   string
		noop      bool
		noopPrev  bool
		sideImage bool
	}{
		{"4.2.25", true, false, false},
		{"5.0.31", true, true, false},
		{"7.0.14", false, false, true},
	} {
		t.Run(c.version, func(t *testing.T) {
			f := startFront(t, Config{Identity: wire.Identity{Version: c.version, FCV: c.version[:3]}})
			cl := connect(t, f) // the driver makes findOneAndUpdate a retryable write
			coll := cl.Database("app").Collection("fam")
			ctx := context.Background()
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 0}}); err != nil {
				t.Fatal(err)
			}
			before := lastTS(t, cl)
			res := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}},
				options.FindOneAndUpdate().SetReturnDocument(options.After))
			post, err := res.Raw()
			if err != nil {
				t.Fatal(err)
			}
			got := entriesAfterWithNoops(t, cl, before)
			want := 1
			if c.noop {
				want = 2
			}
			if len(got) != want {
				t.Fatalf("got %d entries, want %d: %v", len(got), want, got)
			}
			u := got[len(got)-1]
			_, _, _, uPrev, _ := sessionOf(t, u)
			if c.noop {
				n := got[0]
				if op := n.Lookup("op").StringValue(); op != "n" || !bytes.Equal(n.Lookup("o").Document(), post) {
					t.Errorf("image entry %s, want a no-op holding the post-image %s", n, post)
				}
				if _, _, stmt, _, _ := sessionOf(t, n); n.Lookup("lsid").Type == 0 || stmt != 0 {
					t.Errorf("image entry %s lacks the session fields", n)
				}
				_, hasPrev := n.Lookup("prevOpTime").DocumentOK()
				if hasPrev != c.noopPrev {
					t.Errorf("image entry has prevOpTime: %v, want %v", hasPrev, c.noopPrev)
				}
				nt, ni, _ := n.Lookup("ts").TimestampOK()
				pt, pi, _ := u.Lookup("postImageOpTime", "ts").TimestampOK()
				if nt != pt || ni != pi {
					t.Errorf("postImageOpTime %v, want the no-op's ts", u.Lookup("postImageOpTime"))
				}
				if uPrev != (primitive.Timestamp{}) {
					t.Errorf("the update's prevOpTime %v, want the null optime (the no-op is no link of the chain)", uPrev)
				}
			}
			if c.sideImage {
				if k := u.Lookup("needsRetryImage").StringValue(); k != "postImage" {
					t.Errorf("needsRetryImage %q, want postImage", k)
				}
				var img struct {
					ImageKind string   `bson:"imageKind"`
					Image     bson.Raw `bson:"image"`
				}
				if err := cl.Database("config").Collection("image_collection").FindOne(ctx, bson.D{}).Decode(&img); err != nil || img.ImageKind != "postImage" || !bytes.Equal(img.Image, post) {
					t.Errorf("config.image_collection holds %+v (%v), want the post-image %s", img, err, post)
				}
			}
		})
	}
}

// A driver retrying a findAndModify whose answer it lost gets the same answer, and the
// document is modified once.
func TestRetriedFindAndModifyAnswersAgainWithoutModifyingTwice(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f, options.Client().SetRetryWrites(false))
	db := c.Database("app")
	if _, err := db.Collection("fam").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	fam := bson.D{{Key: "findAndModify", Value: "fam"}, {Key: "query", Value: bson.D{{Key: "_id", Value: 1}}},
		{Key: "update", Value: bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}}, {Key: "new", Value: true}, {Key: "txnNumber", Value: int64(3)}}
	inSession(t, c, func(ctx context.Context) {
		first, err := db.RunCommand(ctx, fam).Raw()
		if err != nil {
			t.Fatal(err)
		}
		again, err := db.RunCommand(ctx, fam).Raw()
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !bytes.Equal(first.Lookup("value").Value, again.Lookup("value").Value) {
			t.Errorf("the retry answered %s, want the first answer %s", again.Lookup("value"), first.Lookup("value"))
		}
	})
	var doc struct{ N int32 }
	if err := db.Collection("fam").FindOne(context.Background(), bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.N != 1 {
		t.Errorf("n = %d (%v), want 1", doc.N, err)
	}
}

package shard

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
)

// A primary asked for a no-op past a cluster time (appendOplogNote with
// maxClusterTime, what a read's afterClusterTime makes it run) writes one only when
// its oplog ends before that time, and writes it after every time a client told it
// of: the entry passes the time even when the member's own clock was behind it.
func TestAppendOplogNoteWithMaxClusterTimeWritesPastTheGossipedTime(t *testing.T) {
	f := startFront(t, Config{NoopInterval: time.Hour})
	c := connect(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := c.Database("admin")
	note := func(ctx context.Context, max primitive.Timestamp) error {
		return admin.RunCommand(ctx, bson.D{{Key: "appendOplogNote", Value: 1}, {Key: "maxClusterTime", Value: max},
			{Key: "data", Value: bson.D{{Key: "msg", Value: "past"}}}}).Err()
	}

	last := lastTS(t, c)
	var ce mongo.CommandError
	if err := note(ctx, last); !errors.As(err, &ce) || ce.Code != 209 || ce.Name != "StaleClusterTime" {
		t.Fatalf("appendOplogNote at the last entry's time: %v, want StaleClusterTime (209)", err)
	}
	if got := lastTS(t, c); got != last {
		t.Fatalf("a stale maxClusterTime wrote an entry at %v", got)
	}

	// A time another shard is at, later than this member's clock: a client that saw
	// it gossips it (its $clusterTime), and the note comes after it.
	sess, err := c.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	sctx := mongo.NewSessionContext(ctx, sess)
	if err := admin.RunCommand(sctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatal(err)
	}
	seen := sess.ClusterTime()
	if seen.Lookup("$clusterTime", "clusterTime").Type != bson.TypeTimestamp {
		t.Fatalf("the member's reply gossiped no $clusterTime: the session holds %v", seen)
	}
	elsewhere := primitive.Timestamp{T: uint32(time.Now().Add(30 * time.Second).Unix()), I: 7}
	gossip, err := bson.Marshal(bson.D{{Key: "$clusterTime", Value: bson.D{{Key: "clusterTime", Value: elsewhere},
		{Key: "signature", Value: bson.D{{Key: "hash", Value: primitive.Binary{Data: make([]byte, 20)}}, {Key: "keyId", Value: int64(0)}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.AdvanceClusterTime(gossip); err != nil {
		t.Fatal(err)
	}
	if err := note(sctx, elsewhere); err != nil {
		t.Fatalf("appendOplogNote past a later cluster time: %v", err)
	}
	if got := lastTS(t, c); !elsewhere.Before(got) {
		t.Fatalf("the note's entry is at %v, not after the gossiped %v", got, elsewhere)
	}
	if err := note(ctx, elsewhere); !errors.As(err, &ce) || ce.Code != 209 {
		t.Fatalf("appendOplogNote once the oplog passed the time: %v, want StaleClusterTime", err)
	}
}

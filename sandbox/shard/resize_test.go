package shard

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// replSetResizeOplog resizes the oplog of the member it runs on, checks its size as a
// real server does, and the new size lasts across a restart: the fix validation
// gives for a short oplog window works on the sandbox as on a real cluster.
func TestReplSetResizeOplogResizesOneMemberForGood(t *testing.T) {
	f := startFront(t, Config{Members: 2, OplogSize: 1 << 20})
	ctx := context.Background()
	maxSize := func(member int) int64 {
		t.Helper()
		st, err := connectMember(t, f, member).Database("local").RunCommand(ctx, bson.D{{Key: "collStats", Value: "oplog.rs"}}).Raw()
		if err != nil {
			t.Fatalf("member %d: collStats of the oplog: %v", member, err)
		}
		v, _ := st.Lookup("maxSize").AsInt64OK()
		return v
	}
	s := connectMember(t, f, 1)
	for _, c := range []struct {
		db   string
		cmd  bson.D
		code int32
	}{
		{"admin", bson.D{{Key: "replSetResizeOplog", Value: 1}, {Key: "size", Value: 500}}, 72},
		{"admin", bson.D{{Key: "replSetResizeOplog", Value: 1}, {Key: "size", Value: "big"}}, 72},
		{"app", bson.D{{Key: "replSetResizeOplog", Value: 1}, {Key: "size", Value: 990}}, 13},
	} {
		err := s.Database(c.db).RunCommand(ctx, c.cmd).Err()
		if got := commandCode(err); got != c.code {
			t.Errorf("%v on %s: error %v (code %d), want code %d", c.cmd, c.db, err, got, c.code)
		}
	}
	if got := maxSize(1); got != 1<<20 {
		t.Fatalf("refused resizes changed the oplog: maxSize %d", got)
	}
	if err := s.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetResizeOplog", Value: 1}, {Key: "size", Value: 990.5}}).Err(); err != nil {
		t.Fatalf("resize member 1: %v", err)
	}
	want := int64(990.5 * (1 << 20))
	if got := maxSize(1); got != want {
		t.Fatalf("member 1's oplog maxSize %d, want %d", got, want)
	}
	if got := maxSize(0); got != 1<<20 {
		t.Fatalf("member 0's oplog changed too: maxSize %d", got)
	}
	if err := f.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := maxSize(1); got != want {
		t.Fatalf("after a restart member 1's oplog maxSize is %d, want %d", got, want)
	}
}

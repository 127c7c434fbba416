package initialsync_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/sandbox"
)

// Rule "T0 at the majority commit point, copy at read concern majority": every
// scan of the copy asks for what the shard's majority committed, as of T0 or later
// (readConcern {level: majority, afterClusterTime: T0}), so that it copies no write
// a failover can roll back and misses none made up to T0.
func TestT0AtTheMajorityPoint_CopyReadsWhatTheMajorityCommittedAsOfT0(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sandbox cluster")
	}
	ctx := context.Background()
	shard, sent := sandboxtest.ShardWithFinds(t, sandbox.Options{})
	t0, err := initialsync.RecordT0(ctx, shard)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := initialsync.MongoSource(shard, t0).Find(ctx, "db", "c", bson.D{}, initialsync.ByID, false)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for cur.Next(ctx) {
		n++
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	if err := cur.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("the scan read %d documents, want 3", n)
	}
	finds := sent()
	var scan bson.Raw
	for _, f := range finds {
		if f.Lookup("find").StringValue() == "c" {
			scan = f
		}
	}
	if scan == nil {
		t.Fatalf("no find on db.c among %v", finds)
	}
	level, _ := scan.Lookup("readConcern", "level").StringValueOK()
	tt, ti, _ := scan.Lookup("readConcern", "afterClusterTime").TimestampOK()
	if level != "majority" || (primitive.Timestamp{T: tt, I: ti}) != t0 {
		t.Fatalf("the scan read with %s, want readConcern {level: majority, afterClusterTime: %v}", scan.Lookup("readConcern"), t0)
	}
}

package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// readOplog reads the oldest and newest entries of local.oplog.rs (natural order
// both ways, one entry each) and the oplog's size, on a direct connection to a shard
// primary.
func readOplog(ctx context.Context, client *mongo.Client, timeout time.Duration) Oplog {
	var o Oplog
	coll := client.Database("local").Collection("oplog.rs")
	for _, end := range []struct {
		natural int
		ts      *primitive.Timestamp
	}{{1, &o.First}, {-1, &o.Last}} {
		docs, err := readAll(ctx, coll, timeout, bson.D{},
			options.Find().SetSort(bson.D{{Key: "$natural", Value: end.natural}}).SetLimit(1).SetProjection(bson.D{{Key: "ts", Value: 1}}))
		if err != nil {
			o.Err = err
			return o
		}
		if len(docs) == 0 {
			o.Err = errors.New("local.oplog.rs is empty or missing (is this server a replica set member?)")
			return o
		}
		t, i, ok := docs[0].Lookup("ts").TimestampOK()
		if !ok {
			o.Err = fmt.Errorf("an oplog entry has no timestamp ts: %s", docs[0])
			return o
		}
		*end.ts = primitive.Timestamp{T: t, I: i}
	}
	stats, err := runCommand(ctx, client, timeout, "local", bson.D{{Key: "collStats", Value: "oplog.rs"}})
	if err == nil {
		o.UsedBytes, _ = asInt64(stats.Lookup("size"))
		o.MaxBytes, _ = asInt64(stats.Lookup("maxSize"))
	}
	return o
}

package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// AwaitQuiet waits until the source takes no more writes: the newest entry of every
// shard's oplog, no-ops aside, stays the same for quiet. When Run returns, a write
// whose request it cancelled may still be running in the router; the applications
// have "stopped writing" only once it has landed. shards are clients connected
// directly to each shard's primary. It gives up after timeout.
func AwaitQuiet(ctx context.Context, shards []*mongo.Client, quiet, timeout time.Duration) error {
	newest := func() (string, error) {
		var all strings.Builder
		for _, c := range shards {
			raw, err := c.Database("local").Collection("oplog.rs").FindOne(ctx,
				bson.D{{Key: "op", Value: bson.D{{Key: "$ne", Value: "n"}}}},
				options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Raw()
			if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
				return "", fmt.Errorf("read the newest oplog entry: %w", err)
			}
			all.WriteString(raw.Lookup("ts").String())
			all.WriteByte(',')
		}
		return all.String(), nil
	}
	last, err := newest()
	if err != nil {
		return err
	}
	since, deadline := time.Now(), time.Now().Add(timeout)
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			return fmt.Errorf("the source kept taking writes for %v after the load stopped", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		now, err := newest()
		if err != nil {
			return err
		}
		if now != last {
			last, since = now, time.Now()
		}
	}
	return nil
}

package router

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// TestCommandsWithoutMaxTimeMSHaveNoDeadline: as a mongos, the router bounds a
// command by its maxTimeMS only. Figure 9's full verification at 200,000 documents
// failed on the router's own 2-minute bound (NetworkInterfaceExceededTimeLimit)
// while a shard sorted its part of a collection for the first batch; a mongos
// would have waited.
func TestCommandsWithoutMaxTimeMSHaveNoDeadline(t *testing.T) {
	command := func(d bson.D) *wire.Command {
		body, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return &wire.Command{Name: "find", DB: "app", Body: body}
	}
	ctx, cancel := opContext(context.Background(), command(bson.D{{Key: "find", Value: "c"}, {Key: "$db", Value: "app"}}))
	defer cancel()
	if d, ok := ctx.Deadline(); ok {
		t.Errorf("a find without maxTimeMS has a deadline %v from now, want none", time.Until(d).Round(time.Second))
	}
	before := time.Now()
	ctx, cancel = opContext(context.Background(), command(bson.D{{Key: "find", Value: "c"}, {Key: "maxTimeMS", Value: int64(90_000)}, {Key: "$db", Value: "app"}}))
	defer cancel()
	d, ok := ctx.Deadline()
	if !ok || d.Before(before.Add(90*time.Second)) || d.After(time.Now().Add(90*time.Second)) {
		t.Errorf("a find with maxTimeMS 90000 has the deadline %v (set: %v), want 90 s from the call", d, ok)
	}
}

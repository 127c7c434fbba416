package bench

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// slowWrites is a mongos that answers each insert, update and delete after a
// delay and notes when it applied it.
type slowWrites struct {
	delay   time.Duration
	mu      sync.Mutex
	applied []time.Time
}

func (s *slowWrites) handle(_ context.Context, sess *wire.Session, cmd *wire.Command) bson.Raw {
	switch name := strings.ToLower(cmd.Name); name {
	case "hello", "ismaster":
		return wire.OK(append(wire.HelloBase(cmd, "7.0.14"), bson.E{Key: "msg", Value: "isdbgrid"})...)
	case "insert", "update", "delete":
		time.Sleep(s.delay)
		s.mu.Lock()
		s.applied = append(s.applied, time.Now())
		s.mu.Unlock()
		if name == "update" {
			return wire.OK(bson.E{Key: "n", Value: int32(1)}, bson.E{Key: "nModified", Value: int32(1)})
		}
		return wire.OK(bson.E{Key: "n", Value: int32(1)})
	}
	id := wire.Identity{Version: "7.0.14", FCV: "7.0"}
	if reply, ok := id.AnswerCommon(sess, cmd); ok {
		return reply
	}
	return wire.ErrorReply(wire.CommandNotFound(cmd.Name))
}

// The lag figure's load ends with its writes: one under way at the end is let
// finish before runLoad returns, so that no write lands on the source after the
// figure found the replay caught up (cancelled in flight, a delete was applied by
// the source later, and the tiny run found one document more on the destination).
func TestTheLoadEndsWithEveryWriteItSentApplied(t *testing.T) {
	srv := &slowWrites{delay: 300 * time.Millisecond}
	ws, err := wire.Listen(wire.Config{Addr: "127.0.0.1:0", Handler: wire.HandlerFunc(srv.handle)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	client, err := mongo.Connect(context.Background(), options.Client().ApplyURI("mongodb://"+ws.Addr()+"/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var writes atomic.Int64
	runLoad(ctx, client, 100, 200, &writes)
	returned := time.Now()
	time.Sleep(2 * srv.delay) // anything still under way lands meanwhile

	srv.mu.Lock()
	defer srv.mu.Unlock()
	late := 0
	for _, at := range srv.applied {
		if at.After(returned) {
			late++
		}
	}
	if late > 0 || int64(len(srv.applied)) != writes.Load() || writes.Load() == 0 {
		t.Fatalf("the server applied %d writes, %d of them after the load returned; the load counted %d", len(srv.applied), late, writes.Load())
	}
}

package bench

import (
	"context"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// ackServer is a MongoDB-speaking server that acknowledges every write at once and
// stores nothing, each reply latency late: a destination whose only cost is the
// round trip, so that figure 12 measures how the replay's writes wait on round
// trips, apart from any server's work (the sandbox's servers are CPU-bound on this
// machine, and serialise a shard's writes).
func ackServer(latency time.Duration) (*wire.Server, error) {
	return wire.Listen(wire.Config{Addr: "127.0.0.1:0", Latency: latency, Handler: wire.HandlerFunc(ack)})
}

func ack(_ context.Context, _ *wire.Session, cmd *wire.Command) bson.Raw {
	switch strings.ToLower(cmd.Name) {
	case "hello", "ismaster":
		return wire.OK(wire.HelloBase(cmd, "7.0.0")...)
	case "insert", "update", "delete":
		field := map[string]string{"insert": "documents", "update": "updates", "delete": "deletes"}[strings.ToLower(cmd.Name)]
		n := int32(0)
		if arr, ok := cmd.Lookup(field).ArrayOK(); ok {
			vals, _ := arr.Values()
			n = int32(len(vals))
		}
		if cmd.Name == "update" {
			return wire.OK(bson.E{Key: "n", Value: n}, bson.E{Key: "nModified", Value: n})
		}
		return wire.OK(bson.E{Key: "n", Value: n})
	}
	return wire.OK()
}

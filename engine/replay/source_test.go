package replay_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/wire"
)

func TestTailSaysOplogReplayToServersOlderThan44(t *testing.T) {
	// MongoDB 3.6 to 4.2 reach a {ts: {$gte: T}} bound of an oplog find by scanning
	// the oplog from its oldest entry unless the find says oplogReplay: a resume on a
	// large oplog would take hours. 4.4 and later seek by themselves.
	for _, c := range []struct {
		version string
		want    bool
	}{{"3.6.23", true}, {"4.2.24", true}, {"4.4.29", false}, {"7.0.42", false}} {
		t.Run(c.version, func(t *testing.T) {
			shard, sent := sandboxtest.ShardWithFinds(t, sandbox.Options{Identity: wire.Identity{Version: c.version, FCV: c.version[:3]}})

			source := replay.NewMongoSource(shard, replay.MongoSourceOptions{})
			from := tail(t, source, primitive.Timestamp{})[1]
			if got := tail(t, source, from); len(got) < 2 || got[0] != from {
				t.Fatalf("tail from %v read %v", from, got)
			}
			finds := sent()
			if len(finds) != 2 {
				t.Fatalf("%d finds, want 2", len(finds))
			}
			if finds[0].Lookup("oplogReplay").Type != 0 {
				t.Errorf("a tail without a ts bound said oplogReplay: %s", finds[0])
			}
			said, _ := finds[1].Lookup("oplogReplay").BooleanOK()
			if said != c.want {
				t.Errorf("MongoDB %s: the resumed tail said oplogReplay %v, want %v: %s", c.version, said, c.want, finds[1])
			}
		})
	}
}

// tail opens a cursor from ts and returns the ts of the entries of its first batch.
func tail(t *testing.T, s replay.Source, from primitive.Timestamp) []primitive.Timestamp {
	t.Helper()
	ctx := context.Background()
	cur, err := s.Tail(ctx, from)
	if err != nil {
		t.Fatalf("tail from %v: %v", from, err)
	}
	defer cur.Close(ctx)
	batch, err := cur.Next(ctx)
	if err != nil {
		t.Fatalf("read the tail from %v: %v", from, err)
	}
	out := make([]primitive.Timestamp, len(batch))
	for i, raw := range batch {
		tt, ii, _ := raw.Lookup("ts").TimestampOK()
		out[i] = primitive.Timestamp{T: tt, I: ii}
	}
	return out
}

// After (finalize's look for writes after the sync stopped) reads the entries
// strictly after a ts, in oplog order, says whether more follow than it read, and
// seeks like a tail does on 3.6 to 4.2 (oplogReplay).
func TestAfterReadsTheEntriesPastATimestamp(t *testing.T) {
	for _, c := range []struct {
		version string
		replay  bool
	}{{"3.6.23", true}, {"8.0.4", false}} {
		t.Run(c.version, func(t *testing.T) {
			shard, sent := sandboxtest.ShardWithFinds(t, sandbox.Options{Identity: wire.Identity{Version: c.version, FCV: c.version[:3]}})
			source := replay.NewMongoSource(shard, replay.MongoSourceOptions{})
			ctx := context.Background()
			all := tail(t, source, primitive.Timestamp{})
			if len(all) < 3 {
				t.Fatalf("the oplog holds %d entries", len(all))
			}
			from := all[len(all)-3]
			raws, more, err := source.After(ctx, from, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []primitive.Timestamp
			for _, raw := range raws {
				tt, ii, _ := raw.Lookup("ts").TimestampOK()
				got = append(got, primitive.Timestamp{T: tt, I: ii})
			}
			if more || len(got) != 2 || got[0] != all[len(all)-2] || got[1] != all[len(all)-1] {
				t.Fatalf("after %v: %v (more %v), want %v", from, got, more, all[len(all)-2:])
			}
			if raws, more, err := source.After(ctx, from, 1); err != nil || len(raws) != 1 || !more {
				t.Fatalf("after %v, at most 1: %d entries, more %v, %v", from, len(raws), more, err)
			}
			finds := sent()
			said, _ := finds[len(finds)-1].Lookup("oplogReplay").BooleanOK()
			if said != c.replay {
				t.Errorf("MongoDB %s: After said oplogReplay %v, want %v", c.version, said, c.replay)
			}
		})
	}
}

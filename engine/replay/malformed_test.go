package replay

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

// An entry Shardlift cannot read as MongoDB writes it (an unknown op, an unknown
// command, alone or inside a transaction) stops the shard with an error naming the
// entry and the field: it is neither skipped nor retried, nothing after it is
// applied, and the checkpoint stays before it.
func TestUnreadableEntryStopsTheShardWithTheEntryNamed(t *testing.T) {
	txn := func(inner bson.D) bson.Raw {
		return commandOp(at(3), "admin", bson.D{{Key: "applyOps", Value: bson.A{inner}}},
			bson.E{Key: "lsid", Value: bson.D{{Key: "id", Value: "session"}}},
			bson.E{Key: "txnNumber", Value: int64(1)},
			bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{}}, {Key: "t", Value: int64(-1)}}})
	}
	for _, tc := range []struct {
		name  string
		bad   bson.Raw
		field string
		want  string
	}{
		{"unknown op", entry(at(3), "x", ns, bson.E{Key: "o", Value: doc(9, 0)}), "op", `unknown op "x"`},
		{"unknown command", commandOp(at(3), "db", bson.D{{Key: "frobnicate", Value: "c"}}), "o", `unknown command "frobnicate"`},
		{"unknown command in a transaction", txn(bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "db.$cmd"}, {Key: "o", Value: bson.D{{Key: "frobnicate", Value: "c"}}}}), "o.applyOps.0.o", `unknown command "frobnicate"`},
		{"unknown op in a transaction", txn(bson.D{{Key: "op", Value: "x"}, {Key: "ns", Value: ns}, {Key: "o", Value: doc(9, 0)}}), "o.applyOps.0.op", `unknown op "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeOplog(insertOp(at(1), ns, doc(1, 0)), insertOp(at(2), ns, doc(2, 0)), tc.bad, insertOp(at(4), ns, doc(4, 0)))
			dest := newFakeDest()
			cps := &fakeCheckpoints{}
			s := testShard(t, Config{Shard: "rs1", Source: src, Destination: dest, Checkpoints: cps})
			err := s.Run(context.Background())
			var ee *oplog.EntryError
			if !errors.As(err, &ee) || !errors.Is(err, oplog.ErrMalformed) {
				t.Fatalf("Run = %v, want an *oplog.EntryError wrapping ErrMalformed", err)
			}
			if ee.TS != at(3) || ee.Field != tc.field || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "shard rs1") {
				t.Fatalf("error %q (field %q, ts %v): want shard rs1, the entry at %v, field %q, %s", err, ee.Field, ee.TS, at(3), tc.field, tc.want)
			}
			if len(src.tailedFrom()) != 1 {
				t.Errorf("the source was tailed %d times: a malformed entry is not a fault to retry", len(src.tailedFrom()))
			}
			if docs := dest.docs(ns); len(docs) != 2 {
				t.Errorf("the destination holds %d documents, want the 2 before the entry", len(docs))
			}
			if got := cps.last(); !got.Before(at(3)) {
				t.Errorf("checkpoint %v passed the unreadable entry", got)
			}
			if p := s.Snapshot(); p.Err == nil {
				t.Error("the progress does not show the failure")
			}
		})
	}
}

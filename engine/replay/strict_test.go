package replay

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/oplog"
)

// Up to the consistency point the replay tolerates the write errors of documents
// already in a later state; a write the destination refuses is another matter,
// even there: it stops the shard and is never counted as applied.

func TestAnUpdateFormTheDestinationRefusesStopsTheShardEvenBeforeTheConsistencyPoint(t *testing.T) {
	// MongoDB 4.0 answers a pipeline update with TypeMismatch ('u' is the wrong
	// type), whatever the document: the code an update into a field of a later type
	// gets too. Counting it as applied would lose the update silently.
	arr := bson.A{int32(1), int32(2), int32(3)}
	src := newFakeOplog(
		noopOp(at(1)),
		insertOp(at(2), ns, bson.D{{Key: "_id", Value: "A"}, {Key: "a", Value: arr}}),
		popOp(at(3), ns, "A", 2),
	)
	src.finite = true
	dest := newFakeDest()
	dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
		if w.Pipeline != nil {
			return writeError(codeTypeMismatch)
		}
		return nil
	}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), ConsistencyPoint: at(10), Appliers: 1})
	err := s.Run(context.Background())
	if err == nil || !mongoerr.HasCode(err, codeTypeMismatch) || !strings.Contains(err.Error(), "Timestamp(3, 1)") ||
		!strings.Contains(err.Error(), "refuses this form of update whatever the document") {
		t.Fatalf("error %v, want the shard stopped at the refused update of Timestamp(3, 1)", err)
	}
	p := s.Snapshot()
	if p.Tolerated != 0 || p.Updates != 0 || p.Applied != at(2) {
		t.Errorf("tolerated %d, updates %d, resume point %v; want 0, 0 and %v: the refused update is not applied", p.Tolerated, p.Updates, p.Applied, at(2))
	}
}

func TestADuplicateKeyOnAnotherUniqueIndexIsNotAnIdempotencyError(t *testing.T) {
	// A duplicate _id (the document under another shard key value, which a later
	// entry moves) is expected before the consistency point; a duplicate on a unique
	// index of other fields means the destination holds data the source does not.
	src := newFakeOplog(
		noopOp(at(1)),
		insertOp(at(2), ns, doc(1, 0)),
		insertOp(at(3), ns, doc(2, 0)),
	)
	src.finite = true
	dest := newFakeDest()
	dest.fail = func(_ oplog.Namespace, w *oplog.Write) error {
		if w.Filter.Lookup("_id").Int32() == 2 {
			return writeError(codeDuplicateKey) // on {email: 1}: no document has _id 2
		}
		return nil
	}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), ConsistencyPoint: at(10), Appliers: 1})
	err := s.Run(context.Background())
	if err == nil || !mongoerr.HasCode(err, codeDuplicateKey) || !strings.Contains(err.Error(), "Timestamp(3, 1)") || !strings.Contains(err.Error(), "unique index of other fields") {
		t.Fatalf("error %v, want the shard stopped at the insert of Timestamp(3, 1)", err)
	}
	if p := s.Snapshot(); p.Tolerated != 0 || p.Applied != at(2) {
		t.Errorf("tolerated %d, resume point %v; want 0 and %v", p.Tolerated, p.Applied, at(2))
	}
}

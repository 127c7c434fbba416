package initialsync

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

func TestTrackerCheckpointIsTheDurablePrefix(t *testing.T) {
	tr := newTracker(PartitionProgress{LastID: i32(0), Docs: 1, Bytes: 10})
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, tr.issue(i32(int32(10*(i+1))), 10, 100))
	}
	check := func(wantID, wantDocs int) {
		t.Helper()
		p, _ := tr.progress()
		if intID(p.LastID) != wantID || p.Docs != int64(wantDocs) {
			t.Fatalf("durable prefix ends at _id %d with %d docs, want %d and %d", intID(p.LastID), p.Docs, wantID, wantDocs)
		}
	}
	tr.complete(seqs[1])
	tr.complete(seqs[3])
	check(0, 1) // the first batch holds everything behind it
	tr.complete(seqs[0])
	check(20, 21)
	tr.complete(seqs[0]) // twice is harmless
	check(20, 21)
	tr.end()
	if p, _ := tr.progress(); p.Done {
		t.Fatal("the partition is done with batches pending")
	}
	tr.complete(seqs[2])
	check(40, 41)
	tr.complete(seqs[4])
	check(50, 51)
	if p, _ := tr.progress(); !p.Done {
		t.Fatal("the partition is not done once its scan ended and every batch is durable")
	}
}

func TestBudgetLetsAnOversizedRequestThroughAlone(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.acquire(ctx, 500) }() // more than the whole budget
	waitFor(t, "the oversized request to wait", func() bool { _, w := b.state(); return w == 1 })
	b.release(60)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if used, _ := b.state(); used != 100 {
		t.Fatalf("an oversized request took %d bytes, want the whole budget (100)", used)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.acquire(cctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire on a full budget with a cancelled context = %v", err)
	}
	b.release(500)
	if used, _ := b.state(); used != 0 {
		t.Fatalf("%d bytes still in use after every release", used)
	}
}

func writeErr(index, code int, msg string) mongo.BulkWriteError {
	return mongo.BulkWriteError{WriteError: mongo.WriteError{Index: index, Code: code, Message: msg}}
}

func TestOutcomeIgnoresIDDuplicatesAndRetriesOnlyTransientDocuments(t *testing.T) {
	docs := []bson.Raw{doc(t, bson.D{{Key: "_id", Value: 0}}), doc(t, bson.D{{Key: "_id", Value: 1}}), doc(t, bson.D{{Key: "_id", Value: 2}})}
	dup := "E11000 duplicate key error collection: a.b index: _id_ dup key: { _id: 0 }"

	res := outcome(docs, false, mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{
		writeErr(0, 11000, dup), writeErr(2, 10107, "not primary"),
	}})
	if res.err == nil || !res.retry || len(res.rest) != 1 || intID(res.rest[0].Lookup("_id")) != 2 {
		t.Fatalf("unordered: %+v; want only document 2 retried", res)
	}

	res = outcome(docs, false, mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{writeErr(0, 11000, dup), writeErr(1, 11000, dup)}})
	if res.err != nil || len(res.rest) != 0 || len(res.unnamed) != 0 {
		t.Fatalf("unordered duplicates: %+v; want done", res)
	}

	res = outcome(docs, true, mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{writeErr(1, 11000, dup)}})
	if res.err != nil || len(res.rest) != 1 || intID(res.rest[0].Lookup("_id")) != 2 {
		t.Fatalf("ordered duplicate: %+v; want the documents after it sent next", res)
	}

	res = outcome(docs, false, mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{writeErr(1, 11000, "E11000 duplicate key error collection: a.b")}})
	if res.err != nil || len(res.unnamed) != 1 || res.unnamed[0].Index != 1 {
		t.Fatalf("duplicate naming no index: %+v; want it left to check on the destination", res)
	}

	res = outcome(docs, false, mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64, Message: "waiting for replication timed out"}})
	if res.err == nil || !res.retry || len(res.rest) != 3 {
		t.Fatalf("write concern error: %+v; want the batch retried", res)
	}

	res = outcome(docs, false, mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{writeErr(1, 121, "Document failed validation")}})
	if res.err == nil || res.retry {
		t.Fatalf("validation failure: %+v; want a permanent failure", res)
	}

	other := mongo.WriteError{Code: 11000, Message: "E11000 duplicate key error collection: a.b index: _id_ dup key", Raw: doc(t, bson.D{{Key: "keyPattern", Value: bson.D{{Key: "email", Value: 1}}}})}
	if duplicateOn(other) != dupOther {
		t.Fatal("a duplicate on another unique index was taken for an _id duplicate")
	}
}

// poolCleared is the driver's error for an operation waiting on a connection pool
// that another operation's network error cleared (driver.RetryablePoolError).
type poolCleared struct{}

func (poolCleared) Error() string {
	return "connection pool for h:1 was cleared because another operation failed with: EOF"
}
func (poolCleared) Retryable() bool { return true }

func TestTransientClassification(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{mongo.CommandError{Code: 189, Name: "PrimarySteppedDown"}, true},
		{mongo.CommandError{Code: 43, Name: "CursorNotFound"}, true},
		{mongo.CommandError{Code: 2, Name: "BadValue"}, false},
		{mongo.CommandError{Code: 1, Labels: []string{"RetryableWriteError"}}, true},
		{context.Canceled, false},
		{errors.New("boom"), false},
		{fmt.Errorf("read: %w", poolCleared{}), true}, // the driver's RetryablePoolError
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

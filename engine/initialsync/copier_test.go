package initialsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/oplog"
)

func intID(v bson.RawValue) int {
	switch v.Type {
	case bson.TypeInt32:
		return int(v.Int32())
	case bson.TypeInt64:
		return int(v.Int64())
	}
	return -1
}

func TestCopyWritesEveryOwnedDocumentAndSkipsOrphans(t *testing.T) {
	src := newFakeSource()
	regions := []string{"ap", "eu", "fr", "us", "zz"}
	var owned []bson.Raw
	for i := range 50 {
		d := doc(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "region", Value: regions[i%len(regions)]}, {Key: "n", Value: i}})
		src.add("app.users", d)
		if r := regions[i%len(regions)]; r >= "eu" && r < "us" {
			owned = append(owned, d)
		}
	}
	var logs []bson.Raw
	for i := range 35 {
		d := doc(t, bson.D{{Key: "_id", Value: primitive.NewObjectID()}, {Key: "line", Value: i}})
		src.add("app.logs", d)
		logs = append(logs, d)
	}
	users := sharded(t, "app", "users", bson.D{{Key: "region", Value: 1}}, [2]bson.D{{{Key: "region", Value: "eu"}}, {{Key: "region", Value: "us"}}})
	users.Docs = int64(len(owned))
	sp := plan(users, unsharded("app", "logs"), unsharded("app", "empty"))
	dst := newFakeDestination()
	s := &sinks{}
	c := newCopier(t, sp, src, dst, s, nil, nil)

	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string][]bson.Raw{"app.users": owned, "app.logs": logs} {
		got := dst.docs(ns)
		if len(got) != len(want) {
			t.Fatalf("%s: %d documents on the destination, want %d", ns, len(got), len(want))
		}
		byID := map[string]bson.Raw{}
		for _, g := range got {
			byID[idKey(g)] = g
		}
		for _, w := range want {
			if !bytes.Equal(byID[idKey(w)], w) {
				t.Fatalf("%s: document %s missing or different on the destination", ns, w.Lookup("_id"))
			}
		}
	}
	snap := c.Snapshot()
	if snap.Orphans != int64(50-len(owned)) || snap.Docs != int64(len(owned)+len(logs)) || snap.NamespacesDone != 3 {
		t.Fatalf("snapshot %+v: want %d orphans, %d docs, 3 namespaces done", snap, 50-len(owned), len(owned)+len(logs))
	}
	final := s.last()
	for _, ns := range []string{"app.users", "app.logs", "app.empty"} {
		if !final[ns].Done {
			t.Fatalf("final checkpoint of %s is not done: %+v", ns, final[ns])
		}
	}
	if id := intID(final["app.users"].LastID); id != 49 {
		t.Fatalf("final checkpoint of app.users ends at _id %d, want 49 (the last document scanned, an orphan)", id)
	}
	if final["app.users"].Docs != int64(len(owned)) {
		t.Fatalf("final checkpoint of app.users counts %d documents, want %d (orphans excluded)", final["app.users"].Docs, len(owned))
	}
}

func TestCheckpointNeverPassesAFailedBatch(t *testing.T) {
	for _, cut := range []struct {
		name string
		tune func(*Config)
	}{
		{"batches cut by count", func(cfg *Config) { cfg.BatchDocs = 10 }},
		{"batches cut by bytes", func(cfg *Config) { cfg.BatchDocs, cfg.BatchBytes = 1000, 10*100 }},
	} {
		t.Run(cut.name, func(t *testing.T) { checkpointNeverPassesAFailedBatch(t, cut.tune) })
	}
}

// checkpointNeverPassesAFailedBatch copies 100 documents of 100 bytes in batches
// of 10 and fails the third.
func checkpointNeverPassesAFailedBatch(t *testing.T, tune func(*Config)) {
	src := newFakeSource()
	for i := range 100 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "pad", Value: strings.Repeat("p", 100-24)}}))
	}
	if n := len(src.colls["app.c"][0]); n != 100 {
		t.Fatalf("test documents are %d bytes, want 100", n)
	}
	dst := newFakeDestination()
	// The third batch (_id 20..29) fails, but only after the two before it and the
	// three behind it are written: completions arrive out of order, and the
	// checkpoint must stay at 19.
	dst.hook = func(ns string, docs []bson.Raw, _ bool) error {
		if intID(docs[0].Lookup("_id")) != 20 {
			return nil
		}
		waitFor(t, "batches 1, 2 and 4 to 6 to be written", func() bool {
			// Each batch's last document: a batch of the three behind may still be
			// in flight when the next one has landed (a flaky 20 duplicates of 30).
			return dst.has("app.c", i32(9)) && dst.has("app.c", i32(19)) && dst.has("app.c", i32(39)) && dst.has("app.c", i32(49)) && dst.has("app.c", i32(59))
		})
		return mongo.CommandError{Code: 2, Name: "BadValue", Message: "refused"}
	}
	s := &sinks{}
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, s, nil, tune)
	err := c.Copy(context.Background())
	if err == nil || !strings.Contains(err.Error(), "app.c") || !strings.Contains(err.Error(), "src0") {
		t.Fatalf("Copy = %v, want a failure naming the shard and the namespace", err)
	}
	for i, save := range s.all() {
		if p := save["app.c"]; p.LastID.Type != 0 && intID(p.LastID) >= 20 {
			t.Fatalf("checkpoint %d moved to _id %d, past the batch that failed", i, intID(p.LastID))
		}
	}
	final := s.last()["app.c"]
	if intID(final.LastID) != 19 || final.Docs != 20 || final.Bytes != 2000 || final.Done {
		t.Fatalf("final checkpoint %+v, want last _id 19, 20 documents of 2000 bytes, not done", final)
	}

	// Resume against a healthy destination: everything arrives, exactly once.
	dst.hook = nil
	again := newCopier(t, plan(unsharded("app", "c")), src, dst, s, s.last(), tune)
	if err := again.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.docs("app.c")); got != 100 {
		t.Fatalf("%d documents after resume, want 100", got)
	}
	if dst.duplicates.Load() < 30 {
		t.Fatalf("%d duplicates on resume, want at least the 30 documents written past the checkpoint", dst.duplicates.Load())
	}
	if p := s.last()["app.c"]; !p.Done || p.Docs != 100 {
		t.Fatalf("checkpoint after resume %+v, want done with 100 documents", p)
	}
}

// mixedIDs are _id values of every type class an _id can hold, in MongoDB's order.
func mixedIDs(t *testing.T) []any {
	t.Helper()
	oid := func(s string) primitive.ObjectID {
		id, err := primitive.ObjectIDFromHex(s)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	return []any{
		nil,
		int32(-7), 2.5, int64(3), int32(10),
		"a", "b", "c", "d", "e",
		bson.D{{Key: "k", Value: 1}}, bson.D{{Key: "k", Value: 2}},
		primitive.Binary{Subtype: 0, Data: []byte{1}},
		oid("000000000000000000000001"), oid("650000000000000000000000"),
		false, true,
		primitive.NewDateTimeFromTime(time.Unix(0, 0)), primitive.NewDateTimeFromTime(time.Unix(1e9, 0)),
		primitive.Timestamp{T: 5, I: 1},
	}
}

func TestResumeAfterLastIDKeepsLaterTypeClasses(t *testing.T) {
	ids := mixedIDs(t)
	src := newFakeSource()
	var all []bson.Raw
	for i := len(ids) - 1; i >= 0; i-- { // natural order unlike _id order
		d := doc(t, bson.D{{Key: "_id", Value: ids[i]}, {Key: "i", Value: i}})
		src.add("app.mixed", d)
		all = append(all, d)
	}
	// The rule this protects: {_id: {$gt: "c"}} only matches strings.
	cur, err := src.Find(context.Background(), "app", "mixed", bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: "c"}}}}, ByID, false)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for cur.Next(context.Background()) {
		n++
	}
	if n != 2 {
		t.Fatalf("the fake source does not bracket by type as MongoDB does: $gt \"c\" matched %d documents", n)
	}

	// Progress as an earlier run left it: everything up to "c" is copied.
	dst := newFakeDestination()
	lastID := doc(t, bson.D{{Key: "_id", Value: "c"}}).Lookup("_id")
	var upTo []bson.Raw
	for _, d := range all {
		if compareIDs(d.Lookup("_id"), lastID) <= 0 {
			upTo = append(upTo, d)
		}
	}
	if err := dst.Insert(context.Background(), "app", "mixed", upTo, false); err != nil {
		t.Fatal(err)
	}
	saved := map[string]PartitionProgress{"app.mixed": {LastID: lastID, Docs: int64(len(upTo))}}
	s := &sinks{}
	c := newCopier(t, plan(unsharded("app", "mixed")), src, dst, s, saved, func(cfg *Config) { cfg.BatchDocs = 3 })
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.docs("app.mixed")); got != len(ids) {
		t.Fatalf("%d documents after resume, want %d: documents of later type classes were lost", got, len(ids))
	}
	if dst.duplicates.Load() != 0 {
		t.Fatalf("%d documents written again: the earlier type classes must be skipped, not rewritten", dst.duplicates.Load())
	}
	if p := s.last()["app.mixed"]; !p.Done || p.Docs != int64(len(ids)) {
		t.Fatalf("checkpoint %+v, want done with %d documents", p, len(ids))
	}
}

func TestTransientReadErrorReopensTheScanWithoutLoss(t *testing.T) {
	ids := mixedIDs(t)
	src := newFakeSource()
	for i, id := range ids {
		src.add("app.mixed", doc(t, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}}))
	}
	src.failAt["app.mixed"] = 8 // inside the strings
	src.failErr = mongo.CommandError{Code: 43, Name: "CursorNotFound", Message: "cursor id 7 not found"}
	dst := newFakeDestination()
	c := newCopier(t, plan(unsharded("app", "mixed")), src, dst, &sinks{}, nil, nil)
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.docs("app.mixed")); got != len(ids) || dst.duplicates.Load() != 0 {
		t.Fatalf("%d documents, %d duplicates; want %d and none", got, dst.duplicates.Load(), len(ids))
	}
	if len(src.filters) != 2 {
		t.Fatalf("%d scans, want the first and one reopened after the failure", len(src.filters))
	}
}

func TestCollectionWithADefaultCollationIsCopiedAndResumedInBytewiseOrder(t *testing.T) {
	// Under a case-insensitive default collation the shard orders "a" < "B" < "c",
	// and {_id: {$not: {$lte: "B"}}} skips "a"; the copier compares bytes ("B" <
	// "a"). Its scans must ask for the simple collation, or it refuses the order (or,
	// resuming, loses what sorts differently).
	src := newFakeSource()
	src.caseless = map[string]bool{"app.people": true}
	var ids []string
	for _, first := range "aBcDeFgH" {
		for _, second := range "xYz" {
			ids = append(ids, string(first)+string(second))
		}
	}
	for i, id := range ids {
		src.add("app.people", doc(t, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}}))
	}
	src.failAt["app.people"] = 10
	src.failErr = mongo.CommandError{Code: 43, Name: "CursorNotFound", Message: "cursor id 7 not found"}
	part := unsharded("app", "people")
	part.Options = doc(t, bson.D{{Key: "collation", Value: bson.D{{Key: "locale", Value: "en"}, {Key: "strength", Value: int32(2)}}}})
	dst := newFakeDestination()
	c := newCopier(t, plan(part), src, dst, &sinks{}, nil, func(cfg *Config) { cfg.BatchDocs = 4 })
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.docs("app.people")); got != len(ids) || dst.duplicates.Load() != 0 {
		t.Fatalf("%d documents, %d duplicates; want %d and none", got, dst.duplicates.Load(), len(ids))
	}
	if len(src.simple) != 2 || !src.simple[0] || !src.simple[1] {
		t.Errorf("scans asked for the simple collation: %v, want the first and the reopened one to", src.simple)
	}
	// A collection without a default collation keeps its index order: no collation asked.
	src.simple = nil
	src.add("app.plain", doc(t, bson.D{{Key: "_id", Value: "a"}}))
	c = newCopier(t, plan(unsharded("app", "plain")), src, newFakeDestination(), &sinks{}, nil, nil)
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(src.simple) != 1 || src.simple[0] {
		t.Errorf("scans of a collection without a default collation asked for the simple one: %v", src.simple)
	}
}

func TestQueueHoldsAtMostQueueBytes(t *testing.T) {
	const (
		docs       = 200
		docSize    = 10 << 10
		batchBytes = 32 << 10
		queueBytes = 64 << 10
	)
	src := newFakeSource()
	pad := strings.Repeat("x", docSize-40)
	for i := range docs {
		src.add("app.big", doc(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "pad", Value: pad}}))
	}
	release := make(chan struct{})
	dst := newFakeDestination()
	dst.hook = func(string, []bson.Raw, bool) error { <-release; return nil }
	c := newCopier(t, plan(unsharded("app", "big")), src, dst, &sinks{}, nil, func(cfg *Config) {
		cfg.BatchDocs, cfg.BatchBytes, cfg.QueueBytes, cfg.Writers = 1000, batchBytes, queueBytes, 2
	})
	done := make(chan error, 1)
	go func() { done <- c.Copy(context.Background()) }()

	// With every writer stuck, the scanner must stop on the budget; a scanner that
	// does not would read all the documents.
	waitFor(t, "the scanner to wait for the budget or to read everything", func() bool {
		_, waiters := c.mem.state()
		return waiters > 0 || src.yielded.Load() == docs
	})
	used, _ := c.mem.state()
	read := src.yielded.Load()
	bound := int64((queueBytes+batchBytes)/docSize + 2) // the budget, the batch being cut, the document in hand
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if used > queueBytes || read > bound {
		t.Fatalf("with writers blocked the copier held %d bytes and read %d documents; want at most %d bytes and %d documents", used, read, queueBytes, bound)
	}
	if got := len(dst.docs("app.big")); got != docs {
		t.Fatalf("%d documents copied, want %d", got, docs)
	}
}

func TestSixteenMiBDocumentPasses(t *testing.T) {
	const maxBSON = 16 << 20
	src := newFakeSource()
	src.add("app.blobs", doc(t, bson.D{{Key: "_id", Value: int32(1)}}))
	big := doc(t, bson.D{{Key: "_id", Value: int32(2)}, {Key: "blob", Value: primitive.Binary{Data: make([]byte, maxBSON-64)}}})
	if len(big) > maxBSON || len(big) < maxBSON-128 {
		t.Fatalf("test document is %d bytes, want just under 16 MiB", len(big))
	}
	src.add("app.blobs", big, doc(t, bson.D{{Key: "_id", Value: int32(3)}}))
	dst := newFakeDestination()
	var sizes []int
	dst.hook = func(_ string, docs []bson.Raw, _ bool) error {
		for _, d := range docs {
			if len(d) == len(big) && len(docs) != 1 {
				sizes = append(sizes, len(docs))
			}
		}
		return nil
	}
	c := newCopier(t, plan(unsharded("app", "blobs")), src, dst, &sinks{}, nil, func(cfg *Config) {
		cfg.BatchDocs, cfg.BatchBytes, cfg.QueueBytes = 1000, 8<<20, 4<<20 // the budget is smaller than the document
	})
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := dst.docs("app.blobs")
	if len(got) != 3 || !bytes.Equal(got[1], big) {
		t.Fatalf("%d documents copied, want 3 with the 16 MiB one intact", len(got))
	}
	if len(sizes) > 0 {
		t.Fatalf("the 16 MiB document shared a batch of %d documents; it must go alone", sizes[0])
	}
}

func TestTransientWriteErrorsAreRetried(t *testing.T) {
	src := newFakeSource()
	for i := range 30 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	dst := newFakeDestination()
	var failures atomic.Int32
	dst.hook = func(string, []bson.Raw, bool) error {
		if failures.Add(1) <= 2 {
			return mongo.CommandError{Code: 91, Name: "ShutdownInProgress", Message: "shutting down"}
		}
		return nil
	}
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, &sinks{}, nil, func(cfg *Config) { cfg.Writers = 1 })
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.docs("app.c")); got != 30 {
		t.Fatalf("%d documents, want 30", got)
	}
}

func TestPermanentWriteErrorFailsTheShardNamingTheNamespace(t *testing.T) {
	src := newFakeSource()
	src.add("app.c", doc(t, bson.D{{Key: "_id", Value: "k1"}}), doc(t, bson.D{{Key: "_id", Value: "k2"}}))
	dst := newFakeDestination()
	dst.hook = func(_ string, docs []bson.Raw, _ bool) error {
		return mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{
			Index: 1, Code: 11000, Message: "E11000 duplicate key error collection: app.c index: email_1 dup key: { email: null }",
			Raw: doc(t, bson.D{{Key: "keyPattern", Value: bson.D{{Key: "email", Value: 1}}}}),
		}}}}
	}
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, &sinks{}, nil, nil)
	err := c.Copy(context.Background())
	if err == nil || !strings.Contains(err.Error(), "app.c") || !strings.Contains(err.Error(), `"k2"`) || !strings.Contains(err.Error(), "unique index other than _id") {
		t.Fatalf("Copy = %v, want the namespace, the document and the unique index named", err)
	}
}

func TestCancelledCopySavesItsProgressAndResumes(t *testing.T) {
	src := newFakeSource()
	for i := range 200 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	dst := newFakeDestination()
	ctx, cancel := context.WithCancel(context.Background())
	dst.hook = func(_ string, docs []bson.Raw, _ bool) error {
		if intID(docs[0].Lookup("_id")) >= 100 {
			cancel()
			return context.Canceled
		}
		return nil
	}
	s := &sinks{}
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, s, nil, nil)
	if err := c.Copy(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy = %v, want cancelled", err)
	}
	saved := s.last()
	if p := saved["app.c"]; p.Done || intID(p.LastID) >= 100 {
		t.Fatalf("checkpoint after cancel %+v: it must not pass the unwritten batches", p)
	}
	dst.hook = nil
	again := newCopier(t, plan(unsharded("app", "c")), src, dst, s, saved, nil)
	if err := again.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.docs("app.c")); got != 200 {
		t.Fatalf("%d documents after resume, want 200", got)
	}
}

func TestCappedCopiedInNaturalOrderByOneOrderedWriter(t *testing.T) {
	src := newFakeSource()
	var natural []bson.Raw
	for _, id := range []int32{5, 3, 9, 1, 7, 2, 8, 4, 6, 0, 11, 10} {
		d := doc(t, bson.D{{Key: "_id", Value: id}})
		src.add("app.capped", d)
		natural = append(natural, d)
	}
	capped := unsharded("app", "capped")
	capped.Capped = true
	dst := newFakeDestination()
	// A previous run left part of it behind.
	if err := dst.Insert(context.Background(), "app", "capped", natural[:4], true); err != nil {
		t.Fatal(err)
	}
	var inFlight, peak atomic.Int32
	dst.hook = func(_ string, _ []bson.Raw, ordered bool) error {
		if !ordered {
			t.Error("a capped collection was written unordered")
		}
		n := inFlight.Add(1)
		if n > peak.Load() {
			peak.Store(n)
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		return nil
	}
	saved := map[string]PartitionProgress{"app.capped": {LastID: natural[3].Lookup("_id"), Docs: 4}}
	s := &sinks{}
	c := newCopier(t, plan(capped), src, dst, s, saved, func(cfg *Config) { cfg.BatchDocs = 3; cfg.Writers = 4 })
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := dst.docs("app.capped")
	if len(got) != len(natural) {
		t.Fatalf("%d documents, want %d", len(got), len(natural))
	}
	for i := range natural {
		if !bytes.Equal(got[i], natural[i]) {
			t.Fatalf("document %d is %s, want %s: natural order not kept", i, got[i], natural[i])
		}
	}
	if peak.Load() != 1 || len(dst.empties) != 1 {
		t.Fatalf("%d writers at once and %d empties; want one writer and the collection emptied once", peak.Load(), len(dst.empties))
	}
	if p := s.last()["app.capped"]; !p.Done || p.Docs != int64(len(natural)) {
		t.Fatalf("checkpoint %+v, want done with %d documents", p, len(natural))
	}
	if snap := c.Snapshot(); snap.Docs != int64(len(natural)) {
		t.Fatalf("snapshot counts %d documents, want %d", snap.Docs, len(natural))
	}
}

func TestResumeSkipsDonePartitionsAndKeepsOtherProgress(t *testing.T) {
	src := newFakeSource()
	src.add("app.a", doc(t, bson.D{{Key: "_id", Value: 1}}))
	src.add("app.b", doc(t, bson.D{{Key: "_id", Value: 1}}))
	saved := map[string]PartitionProgress{
		"app.a":    {Done: true, Docs: 5, Bytes: 50},
		"old.gone": {Done: true, Docs: 7},
	}
	s := &sinks{}
	dst := newFakeDestination()
	c := newCopier(t, plan(unsharded("app", "a"), unsharded("app", "b")), src, dst, s, saved, nil)
	if snap := c.Snapshot(); snap.Docs != 5 || snap.NamespacesDone != 1 {
		t.Fatalf("snapshot before copy %+v, want the saved 5 documents and 1 namespace done", snap)
	}
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(dst.docs("app.a")) != 0 || len(dst.docs("app.b")) != 1 {
		t.Fatal("a partition saved as done was copied again, or the other was not copied")
	}
	last := s.last()
	if !last["old.gone"].Done || last["old.gone"].Docs != 7 || !last["app.a"].Done || !last["app.b"].Done {
		t.Fatalf("final checkpoint %+v lost saved progress", last)
	}
}

func TestBuildIndexesRelaxesUniqueAndTTLAndKeepsTheOriginals(t *testing.T) {
	src := newFakeSource()
	specs := []bson.Raw{
		doc(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "name", Value: "_id_"}}),
		doc(t, bson.D{{Key: "v", Value: 1}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}, {Key: "ns", Value: "app.c"}, {Key: "background", Value: true}}),
		doc(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "at", Value: 1}}}, {Key: "name", Value: "at_1"}, {Key: "expireAfterSeconds", Value: int32(3600)}}),
		doc(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}, {Key: "name", Value: "_id_hashed"}}),
		doc(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: -1}}}, {Key: "name", Value: "a_1_b_-1"},
			{Key: "partialFilterExpression", Value: bson.D{{Key: "a", Value: bson.D{{Key: "$gt", Value: 5}}}}},
			{Key: "collation", Value: bson.D{{Key: "locale", Value: "fr"}}}}),
	}
	src.indexes["app.c"] = specs
	dst := newFakeDestination()
	s := &sinks{}
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, s, nil, nil)
	if err := c.BuildIndexes(context.Background()); err != nil {
		t.Fatal(err)
	}
	built := dst.indexes["app.c"]
	if len(built) != 4 {
		t.Fatalf("%d indexes built, want 4 (all but _id_)", len(built))
	}
	names := map[string]bson.Raw{}
	for _, b := range built {
		names[indexName(b)] = b
	}
	if u := names["email_1"]; u == nil || u.Lookup("unique").Type != 0 || u.Lookup("ns").Type != 0 || u.Lookup("v").Type != 0 || u.Lookup("background").Type != 0 {
		t.Fatalf("email_1 built as %s, want it without unique and without the source's v, ns and background", u)
	}
	if ttl, _ := names["at_1"].Lookup("expireAfterSeconds").AsInt64OK(); ttl < 1<<30 {
		t.Fatalf("at_1 built with expireAfterSeconds %d, want a huge one", ttl)
	}
	if !bytes.Equal(names["_id_hashed"], oplog.DestinationIndexSpec(specs[3])) || !bytes.Equal(names["a_1_b_-1"], oplog.DestinationIndexSpec(specs[4])) {
		t.Fatal("hashed or partial/collation index specifications were changed beyond their index version")
	}
	orig := s.relaxed["app.c"]
	if len(orig) != 2 || orig[0].Lookup("unique").Type == 0 || orig[1].Lookup("expireAfterSeconds").Type == 0 || orig[0].Lookup("ns").Type != 0 {
		t.Fatalf("relaxed originals %v, want the unique and the TTL index as the source has them, as the destination takes them", orig)
	}
}

// conflictingDestination refuses the shard key index as shardCollection made it.
type conflictingDestination struct {
	*fakeDestination
	key bson.Raw
}

func (d conflictingDestination) CreateIndexes(ctx context.Context, db, coll string, specs []bson.Raw) error {
	for _, s := range specs {
		if sameKey(s, d.key) {
			return mongo.CommandError{Code: 85, Name: "IndexOptionsConflict", Message: "Index already exists with different options"}
		}
	}
	return d.fakeDestination.CreateIndexes(ctx, db, coll, specs)
}

func TestBuildIndexesKeepsTheShardKeyIndexShardCollectionMade(t *testing.T) {
	src := newFakeSource()
	ns := sharded(t, "app", "c", bson.D{{Key: "sku", Value: 1}}, [2]bson.D{{{Key: "sku", Value: primitive.MinKey{}}}, {{Key: "sku", Value: primitive.MaxKey{}}}})
	src.indexes["app.c"] = []bson.Raw{
		doc(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "sku", Value: 1}}}, {Key: "name", Value: "sku_1"}, {Key: "unique", Value: true}}),
		doc(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "qty", Value: 1}}}, {Key: "name", Value: "qty_1"}}),
	}
	dst := conflictingDestination{newFakeDestination(), ns.Key}
	c := newCopier(t, plan(ns), src, dst, &sinks{}, nil, nil)
	if err := c.BuildIndexes(context.Background()); err != nil {
		t.Fatal(err)
	}
	if built := dst.indexes["app.c"]; len(built) != 1 || indexName(built[0]) != "qty_1" {
		t.Fatalf("built %v, want qty_1 only (sku_1 exists already)", built)
	}
}

func TestIndexesAreBuiltOncePerNamespaceAcrossShards(t *testing.T) {
	spec := func(name string) bson.Raw {
		return doc(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: name, Value: 1}}}, {Key: "name", Value: name + "_1"}, {Key: "unique", Value: true}})
	}
	a, b := newFakeSource(), newFakeSource()
	a.indexes["app.c"] = []bson.Raw{spec("x"), spec("y")}
	b.indexes["app.c"] = []bson.Raw{spec("y"), spec("z")} // shards may disagree
	dst := newFakeDestination()
	s := &sinks{}
	builds := NewIndexBuilds()
	for _, src := range []*fakeSource{a, b} {
		c := newCopier(t, plan(unsharded("app", "c")), src, dst, s, nil, func(cfg *Config) { cfg.IndexBuilds = builds })
		if err := c.BuildIndexes(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, ix := range dst.indexes["app.c"] {
		names = append(names, indexName(ix))
	}
	if strings.Join(names, ",") != "x_1,y_1,z_1" {
		t.Fatalf("built %v, want x_1, y_1 and z_1 once each", names)
	}
	if len(s.relaxed["app.c"]) != 3 {
		t.Fatalf("%d originals recorded, want one per index built", len(s.relaxed["app.c"]))
	}
}

func TestDuplicatesNamingNoIndexAreCheckedOnTheDestination(t *testing.T) {
	src := newFakeSource()
	for i := range 30 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	dst := newFakeDestination()
	dst.unnamed = true
	if err := dst.Insert(context.Background(), "app", "c", src.colls["app.c"][10:20], false); err != nil {
		t.Fatal(err)
	}
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, &sinks{}, nil, nil)
	if err := c.Copy(context.Background()); err != nil {
		t.Fatalf("duplicates of documents already there: %v", err)
	}
	if got := len(dst.docs("app.c")); got != 30 {
		t.Fatalf("%d documents, want 30", got)
	}

	// A duplicate naming no index for a document whose _id is not there collides
	// with another unique index: the copy fails.
	dst = newFakeDestination()
	dst.hook = func(_ string, docs []bson.Raw, _ bool) error {
		return mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Index: 0, Code: 11000, Message: "E11000 duplicate key error collection: app.c"}}}}
	}
	c = newCopier(t, plan(unsharded("app", "c")), src, dst, &sinks{}, nil, nil)
	if err := c.Copy(context.Background()); err == nil || !strings.Contains(err.Error(), "unique index other than _id") {
		t.Fatalf("Copy = %v, want a unique index conflict", err)
	}
}

// A shard whose destination (or source) went away must say so in its row while the
// copy retries, and stop saying so once it goes on (issue 9, scenario 2).
func TestRetriedFailureShowsInTheProgressUntilItIsOver(t *testing.T) {
	src := newFakeSource()
	for i := range 30 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	dst := newFakeDestination()
	var c *Copier
	var failures atomic.Int32
	var shown atomic.Value
	dst.hook = func(string, []bson.Raw, bool) error {
		switch failures.Add(1) {
		case 1:
			return mongo.CommandError{Code: 91, Name: "ShutdownInProgress", Message: "shutting down"}
		case 2:
			shown.Store(c.Snapshot().Retrying)
		}
		return nil
	}
	c = newCopier(t, plan(unsharded("app", "c")), src, dst, &sinks{}, nil, func(cfg *Config) { cfg.Writers = 1 })
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := shown.Load().(string); !strings.Contains(got, "retrying") || !strings.Contains(got, "shutting down") {
		t.Fatalf("while retrying, the progress said %q", got)
	}
	if got := c.Snapshot().Retrying; got != "" {
		t.Fatalf("after the retry succeeded, the progress still says %q", got)
	}
}

// Each namespace's total is its estimate until it is copied, then what it copied:
// an estimate too high shrinks to the real size (never below it), one too low grows
// with the copy, and the totals are exact once every namespace is copied.
func TestTotalsAreEstimatesUntilEachNamespaceIsCopied(t *testing.T) {
	src := newFakeSource()
	var bigBytes, smallBytes int64
	for i := range 10 {
		d := doc(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "pad", Value: strings.Repeat("b", 100)}})
		src.add("app.big", d)
		bigBytes += int64(len(d))
	}
	for i := range 20 {
		d := doc(t, bson.D{{Key: "_id", Value: int32(i)}})
		src.add("app.small", d)
		smallBytes += int64(len(d))
	}
	big, small := unsharded("app", "big"), unsharded("app", "small")
	big.Docs, big.Bytes = 100, 100_000 // too high
	small.Docs, small.Bytes = 1, 10    // too low
	dst := newFakeDestination()
	var c *Copier
	var looks atomic.Int32
	dst.hook = func(ns string, docs []bson.Raw, _ bool) error {
		if ns != "app.small" {
			return nil
		}
		looks.Add(1)
		p := c.Snapshot()
		// app.big is copied (one namespace at a time, the larger estimate first).
		if !p.Estimated || p.DocsTotal != 10+max(1, p.Docs-10) || p.BytesTotal != bigBytes+max(10, p.Bytes-bigBytes) {
			t.Errorf("while copying app.small: %+v, want app.big's real 10 docs / %d bytes plus app.small's larger of estimate and copied", p, bigBytes)
		}
		return nil
	}
	c = newCopier(t, plan(big, small), src, dst, &sinks{}, nil, func(cfg *Config) { cfg.BatchDocs = 4; cfg.Namespaces = 1 })
	if p := c.Snapshot(); !p.Estimated || p.DocsTotal != 101 || p.BytesTotal != 100_010 {
		t.Fatalf("before the copy: %+v, want the estimates 101 docs, 100010 bytes", p)
	}
	if err := c.Copy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if looks.Load() < 3 {
		t.Fatalf("looked at the progress %d times while copying app.small", looks.Load())
	}
	if p := c.Snapshot(); p.Estimated || p.DocsTotal != 30 || p.Docs != 30 || p.BytesTotal != bigBytes+smallBytes || p.Bytes != p.BytesTotal {
		t.Fatalf("after the copy: %+v, want exact totals of 30 docs, %d bytes", p, bigBytes+smallBytes)
	}
}

// inFlightDestination holds every insert until released (sent is closed once the
// first is), and records whether an insert's context was cancelled meanwhile.
// Holding them all, not only the first, keeps the other writers from finishing the
// copy before the test stops it.
type inFlightDestination struct {
	*fakeDestination
	once      sync.Once
	sent      chan struct{}
	release   chan struct{}
	cancelled atomic.Bool
}

func (d *inFlightDestination) Insert(ctx context.Context, db, coll string, docs []bson.Raw, ordered bool) error {
	d.once.Do(func() { close(d.sent) })
	<-d.release
	if ctx.Err() != nil {
		d.cancelled.Store(true)
	}
	return d.fakeDestination.Insert(ctx, db, coll, docs, ordered)
}

// An insert already sent when the copy is stopped is waited for, not abandoned:
// its server would run it anyway, possibly after whoever resumes the shard has
// replayed a delete of one of its documents.
func TestAnInsertInFlightWhenStoppedIsWaitedFor(t *testing.T) {
	src := newFakeSource()
	for i := range 2000 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	dst := &inFlightDestination{fakeDestination: newFakeDestination(), sent: make(chan struct{}), release: make(chan struct{})}
	// Many small batches: the copy has work left when it is stopped.
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, &sinks{}, nil, func(cfg *Config) { cfg.BatchDocs = 10 })
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan error, 1)
	go func() { returned <- c.Copy(ctx) }()
	select {
	case <-dst.sent:
	case err := <-returned:
		t.Fatalf("Copy returned %v before its first insert", err)
	}
	cancel()
	select {
	case err := <-returned:
		t.Fatalf("Copy returned (%v) with an insert still in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(dst.release)
	if err := <-returned; !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy = %v, want cancelled", err)
	}
	if dst.cancelled.Load() {
		t.Fatal("the insert in flight was cancelled with the copy: its server would have run it anyway")
	}
}

// A source read that blocks without an error (a stopped shard the driver waits to
// select, a link that drops packets) shows on the row once it has waited StallAfter,
// and the row clears once the source answers again.
func TestASourceReadThatHangsShowsOnTheRow(t *testing.T) {
	src := newFakeSource()
	for i := range 30 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	blocked, release := make(chan struct{}), make(chan struct{})
	hanging := &hangingSource{fakeSource: src, after: 10, blocked: blocked, release: release}
	c := newCopier(t, plan(unsharded("app", "c")), hanging, newFakeDestination(), &sinks{}, nil, nil)
	var mu sync.Mutex
	now := time.Date(2026, 12, 6, 19, 6, 31, 0, time.UTC)
	c.watch.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	done := make(chan error, 1)
	go func() { done <- c.Copy(context.Background()) }()
	<-blocked
	if got := c.Snapshot().Retrying; got != "" {
		t.Fatalf("a read just started shows %q", got)
	}
	mu.Lock()
	now = now.Add(StallAfter)
	mu.Unlock()
	want := "waiting: a read has had no answer from the source shard since 19:06:31 (read app.c)"
	if got := c.Snapshot().Retrying; got != want {
		t.Fatalf("a read unanswered for %v shows %q, want %q", StallAfter, got, want)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := c.Snapshot().Retrying; got != "" {
		t.Fatalf("after the source answered, the row still shows %q", got)
	}
}

// hangingSource's cursors block after `after` documents until release is closed.
type hangingSource struct {
	*fakeSource
	after   int
	blocked chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *hangingSource) Find(ctx context.Context, db, coll string, filter bson.D, order Order, simple bool) (Cursor, error) {
	cur, err := s.fakeSource.Find(ctx, db, coll, filter, order, simple)
	if err != nil {
		return nil, err
	}
	return &hangingCursor{Cursor: cur, s: s}, nil
}

type hangingCursor struct {
	Cursor
	s *hangingSource
	n int
}

func (c *hangingCursor) Next(ctx context.Context) bool {
	if c.n == c.s.after {
		c.s.once.Do(func() { close(c.s.blocked) })
		<-c.s.release
	}
	c.n++
	return c.Cursor.Next(ctx)
}

// An insert the destination takes long to run is waited for, never sent again while
// its first copy may still run there: a copy its client abandoned still runs on the
// server, and landing after the shard's replay deleted one of its documents, it
// would bring that document back.
func TestASlowInsertIsNotSentAgainWhileTheDestinationMayStillRunIt(t *testing.T) {
	src := newFakeSource()
	for i := range 30 {
		src.add("app.c", doc(t, bson.D{{Key: "_id", Value: int32(i)}}))
	}
	dst := &slowInsertDestination{fakeDestination: newFakeDestination()}
	c := newCopier(t, plan(unsharded("app", "c")), src, dst, &sinks{}, nil, func(cfg *Config) { cfg.Writers = 1 })
	if err := c.Copy(context.Background()); err != nil {
		t.Fatalf("the copy failed on a slow insert: %v", err)
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if dst.resent {
		t.Errorf("an insert was sent again while the destination still ran its first copy")
	}
	if got := len(dst.docs("app.c")); got != 30 {
		t.Errorf("the destination holds %d documents, want 30", got)
	}
}

// slowInsertDestination runs its first insert past its client's deadline if the
// client set one (a server under a long lock outlasts any), or else for a moment, and
// runs it to the end whatever its client does. It notes an insert of the same
// documents arriving while the first copy still runs.
type slowInsertDestination struct {
	*fakeDestination
	mu      sync.Mutex
	first   []bson.Raw // the first insert's documents, while it runs
	started bool
	resent  bool
}

func (d *slowInsertDestination) Insert(ctx context.Context, db, coll string, docs []bson.Raw, ordered bool) error {
	d.mu.Lock()
	if d.first != nil && len(docs) > 0 && idKey(docs[0]) == idKey(d.first[0]) {
		d.resent = true
	}
	first := !d.started
	if first {
		d.started, d.first = true, docs
	}
	d.mu.Unlock()
	if !first {
		return d.fakeDestination.Insert(ctx, db, coll, docs, ordered)
	}
	runs := 100 * time.Millisecond
	if deadline, ok := ctx.Deadline(); ok {
		runs = time.Until(deadline) + time.Second
	}
	done := time.After(runs)
	var err error
	select {
	case <-done:
	case <-ctx.Done(): // the client gave up on it; the server runs on
		err = fmt.Errorf("connection(127.0.0.1:1) incomplete read of message header: %w", ctx.Err())
		go func() {
			<-done
			d.finish(db, coll, docs, ordered)
		}()
		return err
	}
	return d.finish(db, coll, docs, ordered)
}

// finish ends the first insert on the server.
func (d *slowInsertDestination) finish(db, coll string, docs []bson.Raw, ordered bool) error {
	err := d.fakeDestination.Insert(context.Background(), db, coll, docs, ordered)
	d.mu.Lock()
	d.first = nil
	d.mu.Unlock()
	return err
}

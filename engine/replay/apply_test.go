package replay

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

// noPipelineDest is a fakeDest that refuses pipeline updates as FerretDB does and
// reads documents for the applier (ImageReader), counting the reads.
type noPipelineDest struct {
	*fakeDest
	reads atomic.Int64
}

func (d *noPipelineDest) Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	for i := range writes {
		if writes[i].Pipeline != nil {
			n, err := d.fakeDest.Write(ctx, ns, writes[:i])
			if err != nil {
				return n, err
			}
			return i, writeError(codeNotImplemented)
		}
	}
	return d.fakeDest.Write(ctx, ns, writes)
}

func (d *noPipelineDest) Image(_ context.Context, ns oplog.Namespace, filter bson.Raw) (bson.Raw, error) {
	d.reads.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, ok := d.mu.docs[ns][idKey(filter.Lookup("_id"))]
	if !ok || !filterMatches(filter, cur) {
		return nil, nil
	}
	return bson.Marshal(cur)
}

// popOp is a $v: 2 update that shrinks the array a of the document with _id id to n
// elements: no plain operator expresses it, the translator makes it a pipeline.
func popOp(ts primitive.Timestamp, ns string, id any, n int32) bson.Raw {
	return entry(ts, "u", ns,
		bson.E{Key: "o", Value: bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{
			{Key: "sa", Value: bson.D{{Key: "a", Value: true}, {Key: "l", Value: n}}}}}}},
		bson.E{Key: "o2", Value: bson.D{{Key: "_id", Value: id}}})
}

func TestDiffUpdatesWithoutPipelinesReadEachDocumentOnceUnlessAnotherWriteChangedIt(t *testing.T) {
	// One applier, one batch: A's two pops chain on one read; the $set on A makes
	// its image unknown, so A's third pop waits for the bulk before it and reads A
	// again; B is read once; C does not exist, so its pop writes nothing.
	arr := bson.A{int32(1), int32(2), int32(3), int32(4), int32(5)}
	entries := []bson.Raw{
		noopOp(at(1)),
		insertOp(at(2), ns, bson.D{{Key: "_id", Value: "A"}, {Key: "v", Value: int32(0)}, {Key: "a", Value: arr}}),
		insertOp(at(3), ns, bson.D{{Key: "_id", Value: "B"}, {Key: "v", Value: int32(0)}, {Key: "a", Value: arr}}),
		popOp(at(4), ns, "A", 4),
		popOp(at(5), ns, "A", 3),
		setOp(at(6), ns, "A", bson.D{{Key: "v", Value: int32(1)}}),
		popOp(at(7), ns, "A", 2),
		popOp(at(8), ns, "B", 1),
		popOp(at(9), ns, "C", 1),
	}
	src := newFakeOplog(entries...)
	src.finite = true
	inner := newFakeDest()
	dest := &noPipelineDest{fakeDest: inner}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 1,
		DDL: startDDL(t, []string{"s0"}, &fakeExec{dest: inner})})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]bson.D{
		`"A"`: {{Key: "_id", Value: "A"}, {Key: "v", Value: int32(1)}, {Key: "a", Value: bson.A{int32(1), int32(2)}}},
		`"B"`: {{Key: "_id", Value: "B"}, {Key: "v", Value: int32(0)}, {Key: "a", Value: bson.A{int32(1)}}},
	}
	got := inner.docs(ns)
	if len(got) != len(want) {
		t.Fatalf("destination holds %d documents, want %d: %v", len(got), len(want), got)
	}
	for id, w := range want {
		g, _ := bson.Marshal(got[id])
		e, _ := bson.Marshal(w)
		if !bytes.Equal(g, e) {
			t.Errorf("document %s is %v, want %v", id, bson.Raw(g), bson.Raw(e))
		}
	}
	if n := dest.reads.Load(); n != 4 {
		t.Errorf("%d document reads, want 4 (A, A again after the $set, B, C)", n)
	}
	if p := s.Snapshot(); p.Applied != at(9) {
		t.Errorf("resume point %v, want %v", p.Applied, at(9))
	}
}

func TestDiffUpdateOfAMovedDocumentTargetsItsFullDocumentKey(t *testing.T) {
	// The image read for a diff must be the document with the whole document key: the
	// same _id under another shard key value is another document.
	cases := []struct {
		name   string
		filter bson.D
		doc    bson.D
		want   bool
	}{
		{"same key", bson.D{{Key: "_id", Value: 1}, {Key: "k.x", Value: int32(7)}},
			bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: bson.D{{Key: "x", Value: int32(7)}}}}, true},
		{"other key", bson.D{{Key: "_id", Value: 1}, {Key: "k.x", Value: int32(7)}},
			bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: bson.D{{Key: "x", Value: int32(8)}}}}, false},
		{"number types", bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: int64(7)}},
			bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: 7.0}}, true},
		{"large int64s", bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: int64(1<<62 + 1)}},
			bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: int64(1 << 62)}}, false},
		{"null is missing", bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: nil}},
			bson.D{{Key: "_id", Value: 1}}, true},
		{"missing is not a value", bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: "a"}},
			bson.D{{Key: "_id", Value: 1}}, false},
		{"string is not a number", bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: "7"}},
			bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: int32(7)}}, false},
	}
	for _, c := range cases {
		f, _ := bson.Marshal(c.filter)
		d, _ := bson.Marshal(c.doc)
		if got := keyMatches(f, d); got != c.want {
			t.Errorf("%s: keyMatches(%v, %v) = %v, want %v", c.name, bson.Raw(f), bson.Raw(d), got, c.want)
		}
	}
}

func TestBulkIsUnorderedOnlyWhenNoDocumentIsWrittenTwice(t *testing.T) {
	key := func(fields ...any) oplog.Write {
		var d bson.D
		for i := 0; i < len(fields); i += 2 {
			d = append(d, bson.E{Key: fields[i].(string), Value: fields[i+1]})
		}
		raw, _ := bson.Marshal(d)
		return oplog.Write{Kind: oplog.Delete, Filter: raw}
	}
	cases := []struct {
		name   string
		writes []oplog.Write
		want   bool
	}{
		{"distinct", []oplog.Write{key("_id", 1), key("_id", 2), key("_id", "1")}, false},
		{"twice", []oplog.Write{key("_id", 1), key("_id", 2), key("_id", 1)}, true},
		// A shard key change: one _id under two keys is one document moving.
		{"moved", []oplog.Write{key("_id", 1, "k", 1), key("_id", 1, "k", 2)}, true},
	}
	for _, c := range cases {
		if got := sharesDocument(c.writes); got != c.want {
			t.Errorf("%s: sharesDocument = %v, want %v", c.name, got, c.want)
		}
	}
}

// unorderedDest applies a bulk as an unordered bulk write does: a failed write does
// not stop the others. The first bulk holding the write for which failOnce says so
// fails there, transiently, once.
type unorderedDest struct {
	*fakeDest
	failOnce func(w *oplog.Write) bool
	failed   atomic.Bool
}

func (d *unorderedDest) Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	first := -1
	for i := range writes {
		if first < 0 && !d.failed.Load() && d.failOnce(&writes[i]) {
			first = i
			d.failed.Store(true)
			continue
		}
		if _, err := d.fakeDest.Write(ctx, ns, writes[i:i+1]); err != nil {
			return i, err
		}
	}
	if first >= 0 {
		return first, writeError(codePrimarySteppedDown)
	}
	return len(writes), nil
}

func TestWritesAfterAnUnorderedFailureAreAppliedAgainInDocumentOrder(t *testing.T) {
	// Ten documents, each inserted and set to v 1..5; a bulk fails at one write while
	// the writes after it in that bulk are applied anyway. The applier re-sends from
	// the failed write on: each document must end at v 5, no document's v may ever go
	// back, and the resume point must reach the last entry.
	const docs, updates = 10, 5
	entries := []bson.Raw{noopOp(at(1))}
	ts := uint32(1)
	next := func() primitive.Timestamp { ts++; return at(ts) }
	for d := range docs {
		entries = append(entries, insertOp(next(), ns, doc(d, 0)))
	}
	for v := 1; v <= updates; v++ {
		for d := range docs {
			entries = append(entries, setOp(next(), ns, int32(d), bson.D{{Key: "v", Value: int32(v)}}))
		}
	}
	src := newFakeOplog(entries...)
	src.finite = true
	inner := newFakeDest()
	dest := &unorderedDest{fakeDest: inner, failOnce: func(w *oplog.Write) bool {
		v, ok := w.Update.Lookup("$set", "v").Int32OK()
		return ok && v == 2 && idInt(w.Filter.Lookup("_id").String()) == 3
	}}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 1, BatchWrites: 15,
		DDL: startDDL(t, []string{"s0"}, &fakeExec{dest: inner})})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !dest.failed.Load() {
		t.Fatal("no write failed: the test did not exercise a partial failure")
	}
	last := map[string]int32{}
	for _, w := range inner.writes() {
		if prev, seen := last[w.id]; seen && w.v < prev {
			t.Fatalf("document %s went back from v %d to v %d", w.id, prev, w.v)
		}
		last[w.id] = w.v
	}
	for id, d := range inner.docs(ns) {
		if v := d[1].Value.(int32); v != updates {
			t.Errorf("document %s ends at v %d, want %d", id, v, updates)
		}
	}
	if p := s.Snapshot(); p.Applied != at(ts) {
		t.Errorf("resume point %v, want %v", p.Applied, at(ts))
	}
}

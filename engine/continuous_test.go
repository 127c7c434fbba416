package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/verify"
)

// contSide is one cluster in memory for the continuous verification: documents
// by namespace and _id (int), and what was read.
type contSide struct {
	mu    sync.Mutex
	docs  map[string]map[int]bson.Raw
	scans map[string]int // whole-namespace scans
	found int            // documents read by _id
	// rangeScans count the scans of each range, by namespace and the range's
	// min _id (the fake's shard keys are {_id: 1}).
	rangeScans map[string]map[string]int
	// noKeyIndex makes range scans fail as a server without the index does.
	noKeyIndex bool
}

func newContSide() *contSide {
	return &contSide{docs: map[string]map[int]bson.Raw{}, scans: map[string]int{}, rangeScans: map[string]map[string]int{}}
}

func (s *contSide) ScanRange(_ context.Context, db, coll string, keyPattern bson.Raw, min, max []byte, _ bool) (verify.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := db + "." + coll
	if s.noKeyIndex {
		return nil, mongo.CommandError{Code: 2, Name: "BadValue", Message: "hint provided does not correspond to an existing index"}
	}
	p, err := shardkey.ParsePattern(keyPattern)
	if err != nil {
		return nil, err
	}
	if s.rangeScans[ns] == nil {
		s.rangeScans[ns] = map[string]int{}
	}
	s.rangeScans[ns][bson.Raw(min).Lookup("_id").String()]++
	docs := s.sorted(ns, func(id int) bool {
		key, err := p.Extract(s.docs[ns][id])
		return err == nil && shardkey.CompareKeys(key, min) >= 0 && shardkey.CompareKeys(key, max) < 0
	})
	return &contCursor{docs: docs, i: -1}, nil
}

// scansOf are the scans of ns's ranges by min _id, and its whole scans.
func (s *contSide) scansOf(ns string) (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.rangeScans[ns]), s.scans[ns]
}

func (s *contSide) put(ns string, id int, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.docs[ns] == nil {
		s.docs[ns] = map[int]bson.Raw{}
	}
	s.docs[ns][id], _ = bson.Marshal(bson.D{{Key: "_id", Value: int32(id)}, {Key: "v", Value: v}})
}

func (s *contSide) sorted(ns string, keep func(id int) bool) []bson.Raw {
	var ids []int
	for id := range s.docs[ns] {
		if keep(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []bson.Raw
	for _, id := range ids {
		out = append(out, s.docs[ns][id])
	}
	return out
}

func (s *contSide) Scan(_ context.Context, db, coll string, idOnly, _ bool) (verify.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := db + "." + coll
	if !idOnly {
		s.scans[ns]++
	}
	docs := s.sorted(ns, func(int) bool { return true })
	if idOnly {
		for i, d := range docs {
			docs[i], _ = bson.Marshal(bson.D{{Key: "_id", Value: d.Lookup("_id")}})
		}
	}
	return &contCursor{docs: docs, i: -1}, nil
}

func (s *contSide) Find(_ context.Context, db, coll string, ids []bson.RawValue, _ bool) (verify.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[int]bool{}
	for _, id := range ids {
		want[int(id.Int32())] = true
	}
	docs := s.sorted(db+"."+coll, func(id int) bool { return want[id] })
	s.found += len(docs)
	return &contCursor{docs: docs, i: -1}, nil
}

type contCursor struct {
	docs []bson.Raw
	i    int
}

func (c *contCursor) Next(context.Context) bool   { c.i++; return c.i < len(c.docs) }
func (c *contCursor) Current() bson.Raw           { return c.docs[c.i] }
func (c *contCursor) Err() error                  { return nil }
func (c *contCursor) Close(context.Context) error { return nil }

// contClusters is the continuous verification's fake: one source shard "s0",
// its oplog, and both sides in memory.
type contClusters struct {
	src, dst *contSide
	plan     []verify.Namespace
	mu       sync.Mutex
	// oplog and newest are the source shard's; dstOplog and dstNewest the one
	// destination shard's.
	oplog, dstOplog   []bson.Raw
	newest, dstNewest primitive.Timestamp
	plans             int // VerifyPlan calls: discoveries of both clusters
}

func newContClusters(nss ...string) *contClusters {
	c := &contClusters{src: newContSide(), dst: newContSide()}
	for _, ns := range nss {
		db, coll, _ := cutNS(ns)
		c.plan = append(c.plan, verify.Namespace{DB: db, Coll: coll})
		for id := range 10 {
			c.src.put(ns, id, "v0")
			c.dst.put(ns, id, "v0")
		}
	}
	return c
}

func cutNS(ns string) (string, string, bool) {
	for i := range ns {
		if ns[i] == '.' {
			return ns[:i], ns[i+1:], true
		}
	}
	return ns, "", false
}

func (c *contClusters) VerifyPlan(context.Context) ([]verify.Namespace, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plans++
	return slices.Clone(c.plan), nil
}
func (c *contClusters) VerifySides() (verify.Side, verify.Side) { return c.src, c.dst }
func (c *contClusters) Newest(context.Context, string) (primitive.Timestamp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newest, nil
}

func (c *contClusters) OplogAfter(_ context.Context, _ string, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return after(c.oplog, ts, limit)
}

func (c *contClusters) DestinationShards(context.Context) ([]string, error) {
	return []string{"d0"}, nil
}
func (c *contClusters) DestinationNewest(context.Context, string) (primitive.Timestamp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dstNewest, nil
}
func (c *contClusters) DestinationOplogAfter(_ context.Context, _ string, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return after(c.dstOplog, ts, limit)
}

func after(oplog []bson.Raw, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error) {
	var out []bson.Raw
	for _, raw := range oplog {
		t, i := raw.Lookup("ts").Timestamp()
		if ts.Before(primitive.Timestamp{T: t, I: i}) {
			out = append(out, raw)
		}
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// write is a source write at ts: the source changes now, the destination when
// the test says the replay applied it.
func (c *contClusters) write(t uint32, ns string, id int, v string) {
	c.src.put(ns, id, v)
	c.log(bson.D{{Key: "op", Value: "u"}, {Key: "ns", Value: ns}, {Key: "o", Value: bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: v}}}}}}},
		{Key: "o2", Value: bson.D{{Key: "_id", Value: int32(id)}}}}, t)
}

func (c *contClusters) log(e bson.D, t uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	appendEntry(&c.oplog, &c.newest, e, t)
}

// tamper changes a destination document behind Shardlift's back, at ts t of the
// destination shard's oplog.
func (c *contClusters) tamper(t uint32, ns string, id int) {
	c.dst.put(ns, id, "tampered")
	c.mu.Lock()
	defer c.mu.Unlock()
	appendEntry(&c.dstOplog, &c.dstNewest, bson.D{{Key: "op", Value: "u"}, {Key: "ns", Value: ns},
		{Key: "o", Value: bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: "tampered"}}}}}}},
		{Key: "o2", Value: bson.D{{Key: "_id", Value: int32(id)}}}}, t)
}

func appendEntry(oplog *[]bson.Raw, newest *primitive.Timestamp, e bson.D, t uint32) {
	ts := primitive.Timestamp{T: t, I: 1}
	e = append(bson.D{{Key: "ts", Value: ts}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}, {Key: "wall", Value: primitive.DateTime(int64(t) * 1000)}}, e...)
	raw, err := bson.Marshal(e)
	if err != nil {
		panic(err)
	}
	*oplog = append(*oplog, raw)
	if newest.Before(ts) {
		*newest = ts
	}
}

// contRun is a continuous verifier over the fake, its replay at applied.
type contRun struct {
	t       *testing.T
	c       *contClusters
	v       *continuousVerifier
	applied primitive.Timestamp
	t0      primitive.Timestamp // the shard's T0: a new one when it copies again
	saved   *ContinuousState
}

func newContRun(t *testing.T, c *contClusters, saved *ContinuousState) *contRun {
	r := &contRun{t: t, c: c, applied: primitive.Timestamp{T: 10, I: 1}, t0: primitive.Timestamp{T: 1, I: 1}, saved: saved}
	if saved != nil {
		r.applied = saved.Shards[0].Cursor
	}
	r.v = newContinuousVerifier(c, cloneContinuous(saved), r.positions, func(st *ContinuousState) error { r.saved = st; return nil })
	return r
}

func (r *contRun) positions() ([]shardPosition, bool) {
	return []shardPosition{{Shard: "s0", T0: r.t0, Applied: r.applied}}, true
}

func (r *contRun) step() bool {
	r.t.Helper()
	did, err := r.v.step(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return did
}

func (r *contRun) final() *Verification {
	r.t.Helper()
	pos, _ := r.positions()
	v, ok, err := r.v.final(context.Background(), pos)
	if err != nil || !ok {
		r.t.Fatalf("final: ok %v, %v", ok, err)
	}
	return v
}

// A document the source writes after its namespace was compared is rechecked (and
// only it): a destination that lacks the write is reported at the finalize, where
// the namespace is not read whole again.
func TestContinuousVerificationRechecksWhatChangedAfterTheComparison(t *testing.T) {
	c := newContClusters("shop.orders")
	r := newContRun(t, c, nil)
	if !r.step() || c.src.scans["shop.orders"] != 1 {
		t.Fatalf("the first step did not compare shop.orders (scans %v)", c.src.scans)
	}
	c.write(11, "shop.orders", 7, "v1") // the replay applies it...
	r.applied = primitive.Timestamp{T: 11, I: 1}
	// ...but the destination lacks it (a lost write).
	c.dst.put("shop.orders", 3, "altered on the destination, no write on the source") // never written: not rechecked
	if r.step() {
		t.Fatal("a second step compared again")
	}
	p := r.v.progress()
	if p.Rechecked != 1 || p.Pending != 1 || p.NamespacesCompared != 1 || p.Namespaces != 1 {
		t.Fatalf("progress %+v: want _id 7 rechecked and pending", p)
	}
	v := r.final()
	if v.OK() || len(v.Mismatches) != 1 || !slices.Equal(v.Mismatches[0].SampleIDs, []string{`{"$numberInt":"7"}`}) {
		t.Fatalf("verification %+v", v)
	}
	if v.Continuous == nil || v.Continuous.Reused != 1 || v.Continuous.Compared != 0 || c.src.scans["shop.orders"] != 1 {
		t.Fatalf("finalize read the namespace again: reuse %+v, scans %v", v.Continuous, c.src.scans)
	}
}

// A difference seen while the replay is behind is transient: once the replay
// applied past the source's newest entry of that moment it is rechecked, and
// reported only if it persists.
func TestContinuousVerificationReportsOnlyMismatchesThatPersist(t *testing.T) {
	c := newContClusters("shop.orders")
	c.write(12, "shop.orders", 2, "v1")        // not applied yet (applied is 10)
	c.dst.put("shop.orders", 5, "lost update") // differs with no write to come: persists
	r := newContRun(t, c, nil)
	r.step()
	if p := r.v.progress(); p.Pending != 2 || p.Persisting != 0 {
		t.Fatalf("progress %+v: both differences are pending", p)
	}
	// The replay applies the write: _id 2 matches, _id 5 still differs.
	c.dst.put("shop.orders", 2, "v1")
	r.applied = primitive.Timestamp{T: 12, I: 1}
	r.step()
	if p := r.v.progress(); p.Pending != 0 || p.Persisting != 1 {
		t.Fatalf("progress %+v: want _id 2 resolved and _id 5 persisting", p)
	}
	v := r.final()
	if len(v.Mismatches) != 1 || !slices.Equal(v.Mismatches[0].SampleIDs, []string{`{"$numberInt":"5"}`}) {
		t.Fatalf("verification %+v: only _id 5 persists", v)
	}
	if v.Ranges != 1 || v.Matched != 0 || v.Documents != 10 {
		t.Fatalf("verification %+v", v)
	}
}

// A Run resumed after a kill goes on from the saved state: the namespaces
// compared before are not compared again, and the writes since the saved cursor
// are still rechecked.
func TestContinuousVerificationResumesWithoutComparingAgain(t *testing.T) {
	c := newContClusters("shop.a", "shop.b", "shop.c")
	first := newContRun(t, c, nil)
	first.step()
	first.step()
	if c.src.scans["shop.a"] != 1 || c.src.scans["shop.b"] != 1 || c.src.scans["shop.c"] != 0 {
		t.Fatalf("scans %v", c.src.scans)
	}
	saved := first.saved // the process is killed here
	c.write(13, "shop.a", 4, "v1")
	resumed := newContRun(t, c, saved)
	resumed.applied = primitive.Timestamp{T: 13, I: 1}
	resumed.step()
	if c.src.scans["shop.a"] != 1 || c.src.scans["shop.b"] != 1 || c.src.scans["shop.c"] != 1 {
		t.Fatalf("scans after the resume %v: only shop.c is compared", c.src.scans)
	}
	v := resumed.final()
	if v.Continuous.Reused != 3 || len(v.Mismatches) != 1 || v.Mismatches[0].Namespace != "shop.a" {
		t.Fatalf("verification %+v, reuse %+v: the write to shop.a before the kill's cursor... is rechecked", v, v.Continuous)
	}
}

// A DDL entry voids what was compared of the namespaces it changes, and only them:
// finalize compares those whole and reuses the rest.
func TestContinuousVerificationComparesAgainWhatADDLChanged(t *testing.T) {
	c := newContClusters("shop.a", "shop.b", "crm.c", "crm.d")
	r := newContRun(t, c, nil)
	for range 4 {
		r.step()
	}
	cmd := func(db string, o bson.D, t uint32) {
		c.log(bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: db + ".$cmd"}, {Key: "o", Value: o}}, t)
	}
	cmd("shop", bson.D{{Key: "drop", Value: "x"}}, 11) // never migrated: changes nothing compared
	cmd("shop", bson.D{{Key: "drop", Value: "a"}}, 12)
	cmd("crm", bson.D{{Key: "renameCollection", Value: "crm.c"}, {Key: "to", Value: "crm.c2"}, {Key: "dropTarget", Value: false}}, 13)
	c.plan = []verify.Namespace{{DB: "shop", Coll: "b"}, {DB: "crm", Coll: "c2"}, {DB: "crm", Coll: "d"}}
	for id := range 10 {
		c.src.put("crm.c2", id, "v0")
		c.dst.put("crm.c2", id, "v0")
	}
	r.applied = primitive.Timestamp{T: 13, I: 1}
	v := r.final()
	if !v.OK() || v.Continuous.Reused != 2 || v.Continuous.Compared != 1 || c.src.scans["crm.c2"] != 1 || c.src.scans["shop.b"] != 1 || c.src.scans["crm.d"] != 1 {
		t.Fatalf("verification %+v, reuse %+v, scans %v: want crm.c2 compared, shop.b and crm.d reused", v, v.Continuous, c.src.scans)
	}

	c = newContClusters("shop.a", "crm.b")
	r = newContRun(t, c, nil)
	r.step()
	r.step()
	c.log(bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "shop.$cmd"}, {Key: "o", Value: bson.D{{Key: "dropDatabase", Value: 1}}}}, 11)
	r.applied = primitive.Timestamp{T: 11, I: 1}
	v = r.final()
	if v.Continuous.Reused != 1 || v.Continuous.Compared != 1 || c.src.scans["shop.a"] != 2 || c.src.scans["crm.b"] != 1 {
		t.Fatalf("reuse %+v, scans %v: a dropped database is compared again, crm is not", v.Continuous, c.src.scans)
	}
}

// An application that creates and drops a collection every few seconds (issue 15)
// must not starve the comparisons: before, every step found a new namespace,
// discovered the clusters again and compared nothing (a user's sandbox stayed at
// "verified 0 of 0 ranges" for the whole sync, its finalize comparing everything).
func TestContinuousVerificationComparesUnderDDLEveryStep(t *testing.T) {
	c := newContClusters("shop.a", "shop.b", "crm.c", "crm.d")
	r := newContRun(t, c, nil)
	for i := range uint32(4) {
		ts := 11 + 2*i
		c.log(bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "shop.$cmd"}, {Key: "o", Value: bson.D{{Key: "create", Value: fmt.Sprintf("batch_%d", i)}}}}, ts)
		c.log(bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "shop.$cmd"}, {Key: "o", Value: bson.D{{Key: "drop", Value: fmt.Sprintf("batch_%d", i)}}}}, ts+1)
		r.applied = primitive.Timestamp{T: ts + 1, I: 1}
		r.step()
	}
	if p := r.v.progress(); p.NamespacesCompared != 4 || p.Namespaces != 4 {
		t.Fatalf("after 4 steps under DDL: %s; want every namespace compared", p.Text())
	}
}

// The writes of a transaction take effect at its commit: its first entry holds
// the cursor until the commit is read, and its documents are rechecked then.
func TestContinuousVerificationWaitsForATransactionsCommit(t *testing.T) {
	c := newContClusters("shop.a")
	r := newContRun(t, c, nil)
	r.step()
	lsid := bson.D{{Key: "id", Value: primitive.Binary{Subtype: 4, Data: make([]byte, 16)}}}
	op := func(id int) bson.D {
		return bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "shop.a"}, {Key: "o", Value: bson.D{{Key: "_id", Value: int32(id)}}}}
	}
	c.log(bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(1)},
		{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{}}, {Key: "t", Value: int64(-1)}}},
		{Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{op(20)}}, {Key: "partialTxn", Value: true}}}}, 11)
	r.applied = primitive.Timestamp{T: 11, I: 1}
	r.step()
	if cur := r.saved.Shards[0].Cursor; !cur.Before(primitive.Timestamp{T: 11, I: 1}) {
		t.Fatalf("cursor %v: it passed the open transaction's first entry", cur)
	}
	// The commit; the destination lacks the first part's document.
	c.src.put("shop.a", 20, "v0")
	c.src.put("shop.a", 21, "v0")
	c.dst.put("shop.a", 21, "v0")
	c.log(bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(1)},
		{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{T: 11, I: 1}}, {Key: "t", Value: int64(1)}}},
		{Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{op(21)}}}}}, 12)
	r.applied = primitive.Timestamp{T: 12, I: 1}
	v := r.final()
	if v.Continuous.Reused != 1 || len(v.Mismatches) != 1 || !slices.Equal(v.Mismatches[0].SampleIDs, []string{`{"$numberInt":"20"}`}) {
		t.Fatalf("verification %+v, reuse %+v", v, v.Continuous)
	}
}

// A destination document changed behind Shardlift's back after its namespace was
// compared (no write on the source) is found in the destination's oplog and
// rechecked: the finalize reports it.
func TestContinuousVerificationRechecksWritesOnTheDestination(t *testing.T) {
	c := newContClusters("shop.orders")
	r := newContRun(t, c, nil)
	r.step()
	c.tamper(50, "shop.orders", 6)
	v := r.final()
	if v.OK() || len(v.Mismatches) != 1 || !slices.Equal(v.Mismatches[0].SampleIDs, []string{`{"$numberInt":"6"}`}) {
		t.Fatalf("verification %+v", v)
	}
	if v.Continuous.Reused != 1 || c.src.scans["shop.orders"] != 1 {
		t.Fatalf("reuse %+v, scans %v", v.Continuous, c.src.scans)
	}
}

// blockingSide is a cluster whose scans hang until their context ends.
type blockingSide struct {
	once    sync.Once
	entered chan struct{}
}

func (b *blockingSide) Scan(ctx context.Context, _, _ string, _, _ bool) (verify.Cursor, error) {
	b.once.Do(func() { close(b.entered) })
	<-ctx.Done()
	return nil, ctx.Err()
}

func (b *blockingSide) ScanRange(ctx context.Context, _, _ string, _ bson.Raw, _, _ []byte, _ bool) (verify.Cursor, error) {
	b.once.Do(func() { close(b.entered) })
	<-ctx.Done()
	return nil, ctx.Err()
}

func (b *blockingSide) Find(ctx context.Context, _, _ string, _ []bson.RawValue, _ bool) (verify.Cursor, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// I'm done does not wait for a comparison of the continuous verification under
// way: the finalize abandons it (it would otherwise wait a whole namespace's
// scan) and verifies on its own.
func TestFinalizeAbandonsTheContinuousComparisonUnderWay(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.verifyRes = &Verification{Namespaces: 1, Ranges: 1, Matched: 1}
	side := &blockingSide{entered: make(chan struct{})}
	h.fc.contPlan = []verify.Namespace{{DB: "shop", Coll: "orders"}}
	h.fc.contSides = [2]verify.Side{side, side}
	rs := h.cuttingOver()
	if err := rs["s0"].sink.SaveApplied("s0", replay.OpTime{TS: rs["s0"].Snapshot().Applied}); err != nil {
		t.Fatal(err)
	}
	h.eventually("a comparison under way", func() bool {
		h.clk.Advance(DefaultContinuousPause)
		select {
		case <-side.entered:
			return true
		default:
			return false
		}
	})
	done := make(chan error, 1)
	go func() { done <- h.m.Done(context.Background(), false) }()
	h.eventually("I'm done returned", func() bool {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return true
		default:
			return false
		}
	})
	if s := h.m.Snapshot(); s.State != Done || h.fc.called("Verify") != 1 {
		t.Fatalf("state %s, Verify called %d times", s.State, h.fc.called("Verify"))
	}
}

// The finalize discovers the clusters again only when the writes since touched a
// namespace the plan lacks: then the new namespace is compared whole.
func TestContinuousVerificationDiscoversAgainOnlyForANewNamespace(t *testing.T) {
	c := newContClusters("shop.a")
	r := newContRun(t, c, nil)
	r.step()
	c.write(11, "shop.a", 1, "v1")
	c.dst.put("shop.a", 1, "v1")
	r.applied = primitive.Timestamp{T: 11, I: 1}
	v := r.final()
	if c.plans != 1 || !v.OK() || v.Continuous.Rechecked != 1 {
		t.Fatalf("%d discoveries, verification %+v, reuse %+v: want the first one only", c.plans, v, v.Continuous)
	}

	c = newContClusters("shop.a")
	r = newContRun(t, c, nil)
	r.step()
	// An application creates shop.new by inserting into it; the replay lost it.
	c.plan = append(c.plan, verify.Namespace{DB: "shop", Coll: "new"})
	c.src.put("shop.new", 1, "v0")
	c.log(bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "shop.new"}, {Key: "o", Value: bson.D{{Key: "_id", Value: int32(1)}}}}, 11)
	r.applied = primitive.Timestamp{T: 11, I: 1}
	v = r.final()
	if c.plans != 2 || v.Continuous.Compared != 1 || len(v.Mismatches) != 1 || v.Mismatches[0].Namespace != "shop.new" {
		t.Fatalf("%d discoveries, verification %+v, reuse %+v: want shop.new compared whole", c.plans, v, v.Continuous)
	}
}

// A shard that copies again starts the comparisons over from what it applied: a
// namespace created before that new cursor is in no oplog the verification will
// read, so the plan must be discovered again, not kept. (A user's sandbox run
// created shop.orders_report with $out while a shard copied again after a DBA's
// moveChunk: the finalize said "verified: 6 namespaces, every range matches" and
// never compared the seventh.)
func TestContinuousVerificationDiscoversAgainWhenAShardCopiesAgain(t *testing.T) {
	c := newContClusters("shop.a")
	r := newContRun(t, c, nil)
	r.step()
	// shop.new is created (its entry at 11) and the shard copies again, its new T0
	// and cursor at 12; its copy lost shop.new's document.
	c.plan = append(c.plan, verify.Namespace{DB: "shop", Coll: "new"})
	c.src.put("shop.new", 1, "v0")
	c.log(bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "shop.new"}, {Key: "o", Value: bson.D{{Key: "_id", Value: int32(1)}}}}, 11)
	r.t0 = primitive.Timestamp{T: 12, I: 1}
	r.applied = primitive.Timestamp{T: 12, I: 1}
	v := r.final()
	if v.Namespaces != 2 || len(v.Mismatches) != 1 || v.Mismatches[0].Namespace != "shop.new" {
		t.Fatalf("verification %+v (%d discoveries): want both namespaces compared and shop.new's loss found", v, c.plans)
	}
}

// A namespace where more documents differ than the verification keeps is not
// taken as compared (its list of differences would be incomplete): a later step
// compares it again.
func TestContinuousVerificationComparesAgainWhenTooManyDiffer(t *testing.T) {
	c := newContClusters("shop.a")
	for id := range continuousMaxIDs + 1 {
		c.src.put("shop.big", id, "v0") // not copied yet
	}
	// Sharded on _id in one chunk: one range holds every difference.
	byID, err := shardkey.NewPattern(bson.D{{Key: "_id", Value: 1}})
	if err != nil {
		t.Fatal(err)
	}
	c.plan = append(c.plan, verify.Namespace{DB: "shop", Coll: "big", Pattern: byID,
		Chunks: []shardkey.Chunk{{Min: byID.GlobalMin(), Max: byID.GlobalMax(), Shard: "s0"}}})
	r := newContRun(t, c, nil)
	r.step()
	r.step()
	if p := r.v.progress(); p.NamespacesCompared != 1 || p.Pending != 0 {
		t.Fatalf("progress %+v: shop.big must not count as compared", p)
	}
	for id := range continuousMaxIDs + 1 {
		c.dst.put("shop.big", id, "v0")
	}
	r.step()
	if p := r.v.progress(); p.NamespacesCompared != 2 || p.Pending != 0 {
		t.Fatalf("progress %+v: shop.big compared again, matching", p)
	}
}

// While a shard catches up the continuous verification compares nothing (its
// scans would take the clusters from the replay); once every shard is in sync
// again it goes on.
func TestContinuousVerificationYieldsToAShardCatchingUp(t *testing.T) {
	h := newHarness(t, "s0")
	c := newContClusters("shop.a")
	h.fc.contPlan = c.plan
	h.fc.contSides = [2]verify.Side{c.src, c.dst}
	rs := h.ready()
	rs["s0"].behind(time.Minute)
	h.eventually("s0 catching up", func() bool { return h.phase("s0") == CatchingUp })
	if err := rs["s0"].sink.SaveApplied("s0", replay.OpTime{TS: rs["s0"].Snapshot().Applied}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.m.replayPositions(); ok {
		t.Fatal("the continuous verification may step while s0 catches up")
	}
	c.src.mu.Lock()
	scans := c.src.scans["shop.a"]
	c.src.mu.Unlock()
	if scans != 0 {
		t.Fatalf("%d scans while s0 caught up", scans)
	}
	rs["s0"].behind(0)
	h.waitState(Ready)
	h.eventually("shop.a compared", func() bool {
		h.clk.Advance(DefaultContinuousPause)
		c.src.mu.Lock()
		defer c.src.mu.Unlock()
		return c.src.scans["shop.a"] > 0
	})
}

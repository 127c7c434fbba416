package initialsync

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/match"
)

// fakeSource is a shard holding documents in memory. Find evaluates filters with
// the sandbox's matcher (MongoDB's type bracketing included) and sorts by _id in
// MongoDB's order, so the copier's resume queries meet the semantics they would
// on a server.
type fakeSource struct {
	mu      sync.Mutex
	colls   map[string][]bson.Raw // natural order
	indexes map[string][]bson.Raw
	filters []bson.D
	// failAt makes the cursor of a namespace fail (once) with err after that many documents.
	failAt  map[string]int
	failErr error
	yielded atomic.Int64
	// caseless are the namespaces with a case-insensitive default collation: unless
	// a find asks for the simple collation, string _ids compare without case in
	// its filter and its order, as a server's would.
	caseless map[string]bool
	simple   []bool // each find's simpleCollation
	// ranges are the bounds of each FindRange; sampleErr fails SampleIDs.
	ranges    [][2]bson.RawValue
	sampleErr error
}

func newFakeSource() *fakeSource {
	return &fakeSource{colls: map[string][]bson.Raw{}, indexes: map[string][]bson.Raw{}, failAt: map[string]int{}}
}

func (s *fakeSource) add(ns string, docs ...bson.Raw) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.colls[ns] = append(s.colls[ns], docs...)
}

func (s *fakeSource) Find(ctx context.Context, db, coll string, filter bson.D, order Order, simple bool) (Cursor, error) {
	raw, err := bson.Marshal(filter)
	if err != nil {
		return nil, err
	}
	m, err := match.Compile(raw)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := db + "." + coll
	s.filters = append(s.filters, filter)
	s.simple = append(s.simple, simple)
	matches, compare := m.Match, compareIDs
	if s.caseless[ns] && !simple {
		compare = compareCaseless
		if last := bson.Raw(raw).Lookup("_id", "$not", "$lte"); last.Type != 0 {
			// The copier's resume filter, {_id: {$not: {$lte: last}}}, under the collation.
			matches = func(d bson.Raw) bool { return compare(d.Lookup("_id"), last) > 0 }
		}
	}
	docs := slices.Clone(s.colls[ns])
	if order == ByID {
		slices.SortStableFunc(docs, func(a, b bson.Raw) int { return compare(a.Lookup("_id"), b.Lookup("_id")) })
	}
	var out []bson.Raw
	for _, d := range docs {
		if matches(d) {
			out = append(out, d)
		}
	}
	cur := &fakeCursor{src: s, docs: out, failAt: -1}
	if n, ok := s.failAt[ns]; ok {
		cur.failAt, cur.failErr = n, s.failErr
		delete(s.failAt, ns)
	}
	return cur, nil
}

// FindRange scans [min, max) of the _id order, as find's min and max on the _id
// index do: across type classes.
func (s *fakeSource) FindRange(ctx context.Context, db, coll string, min, max bson.RawValue) (Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := db + "." + coll
	s.ranges = append(s.ranges, [2]bson.RawValue{min, max})
	docs := slices.Clone(s.colls[ns])
	slices.SortStableFunc(docs, func(a, b bson.Raw) int { return compareIDs(a.Lookup("_id"), b.Lookup("_id")) })
	var out []bson.Raw
	for _, d := range docs {
		id := d.Lookup("_id")
		if (min.Type == 0 || compareIDs(id, min) >= 0) && (max.Type == 0 || compareIDs(id, max) < 0) {
			out = append(out, d)
		}
	}
	cur := &fakeCursor{src: s, docs: out, failAt: -1}
	if n, ok := s.failAt[ns]; ok {
		cur.failAt, cur.failErr = n, s.failErr
		delete(s.failAt, ns)
	}
	return cur, nil
}

// SampleIDs draws n _ids with replacement, as $sample's random cursor may
// repeat a document, from a fixed seed.
func (s *fakeSource) SampleIDs(_ context.Context, db, coll string, n int) ([]bson.RawValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sampleErr != nil {
		return nil, s.sampleErr
	}
	docs := s.colls[db+"."+coll]
	if len(docs) == 0 {
		return nil, nil
	}
	rnd := rand.New(rand.NewPCG(1, uint64(len(docs))))
	ids := make([]bson.RawValue, n)
	for i := range ids {
		ids[i] = docs[rnd.IntN(len(docs))].Lookup("_id")
	}
	return ids, nil
}

// compareCaseless orders _ids as a case-insensitive collation does: strings by
// their lower case, anything else as compareIDs.
func compareCaseless(a, b bson.RawValue) int {
	as, aok := a.StringValueOK()
	bs, bok := b.StringValueOK()
	if aok && bok {
		return strings.Compare(strings.ToLower(as), strings.ToLower(bs))
	}
	return compareIDs(a, b)
}

func (s *fakeSource) ListIndexes(_ context.Context, db, coll string) ([]bson.Raw, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.indexes[db+"."+coll]), nil
}

type fakeCursor struct {
	src     *fakeSource
	docs    []bson.Raw
	i       int
	cur     bson.Raw
	failAt  int
	failErr error
	err     error
}

func (c *fakeCursor) Next(ctx context.Context) bool {
	if c.err != nil || c.i >= len(c.docs) {
		return false
	}
	if err := ctx.Err(); err != nil {
		c.err = err
		return false
	}
	if c.i == c.failAt {
		c.err = c.failErr
		return false
	}
	// A fresh buffer each time, overwritten after use, as a driver reuses its own.
	if c.cur != nil {
		clear(c.cur)
	}
	c.cur = slices.Clone(c.docs[c.i])
	c.i++
	c.src.yielded.Add(1)
	return true
}

func (c *fakeCursor) Current() bson.Raw           { return c.cur }
func (c *fakeCursor) Err() error                  { return c.err }
func (c *fakeCursor) Close(context.Context) error { return nil }

// fakeDestination is a destination keeping documents by _id, per namespace, and
// answering duplicates and failures the way a server does, with the driver's error
// types.
type fakeDestination struct {
	mu      sync.Mutex
	colls   map[string]*destColl
	indexes map[string][]bson.Raw
	empties []string
	// hook runs before each insert is applied; an error fails the insert.
	hook func(ns string, docs []bson.Raw, ordered bool) error
	// unnamed makes duplicate key errors name no index, as FerretDB's do.
	unnamed bool
	// duplicates counts documents refused because their _id was there.
	duplicates atomic.Int64
	inserts    atomic.Int64
}

type destColl struct {
	order []string
	docs  map[string]bson.Raw
}

func newFakeDestination() *fakeDestination {
	return &fakeDestination{colls: map[string]*destColl{}, indexes: map[string][]bson.Raw{}}
}

func idKey(doc bson.Raw) string {
	v := doc.Lookup("_id")
	return string(rune(v.Type)) + string(v.Value)
}

func (d *fakeDestination) Insert(ctx context.Context, db, coll string, docs []bson.Raw, ordered bool) error {
	ns := db + "." + coll
	if err := ctx.Err(); err != nil {
		return err
	}
	d.inserts.Add(1)
	if d.hook != nil {
		if err := d.hook(ns, docs, ordered); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.colls[ns]
	if c == nil {
		c = &destColl{docs: map[string]bson.Raw{}}
		d.colls[ns] = c
	}
	var bwe mongo.BulkWriteException
	for i, doc := range docs {
		k := idKey(doc)
		if _, dup := c.docs[k]; dup {
			d.duplicates.Add(1)
			msg := fmt.Sprintf("E11000 duplicate key error collection: %s index: _id_ dup key: { _id: %s }", ns, doc.Lookup("_id"))
			if d.unnamed {
				msg = "E11000 duplicate key error collection: " + ns
			}
			bwe.WriteErrors = append(bwe.WriteErrors, mongo.BulkWriteError{WriteError: mongo.WriteError{Index: i, Code: 11000, Message: msg}})
			if ordered {
				break
			}
			continue
		}
		c.docs[k] = slices.Clone(doc)
		c.order = append(c.order, k)
	}
	if len(bwe.WriteErrors) > 0 {
		return bwe
	}
	return nil
}

func (d *fakeDestination) CreateIndexes(_ context.Context, db, coll string, specs []bson.Raw) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.indexes[db+"."+coll] = append(d.indexes[db+"."+coll], specs...)
	return nil
}

func (d *fakeDestination) Empty(_ context.Context, c *prepare.Collection) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.empties = append(d.empties, c.NS())
	delete(d.colls, c.NS())
	return nil
}

func (d *fakeDestination) ExistingIDs(_ context.Context, db, coll string, ids []bson.RawValue) ([]bool, error) {
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = d.has(db+"."+coll, id)
	}
	return out, nil
}

// docs returns a namespace's documents in insertion order.
func (d *fakeDestination) docs(ns string) []bson.Raw {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.colls[ns]
	if c == nil {
		return nil
	}
	out := make([]bson.Raw, 0, len(c.order))
	for _, k := range c.order {
		out = append(out, c.docs[k])
	}
	return out
}

func (d *fakeDestination) has(ns string, id bson.RawValue) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.colls[ns]
	if c == nil {
		return false
	}
	_, ok := c.docs[string(rune(id.Type))+string(id.Value)]
	return ok
}

// sinks records checkpoints and relaxed indexes.
type sinks struct {
	mu      sync.Mutex
	saves   []map[string]PartitionProgress
	relaxed map[string][]bson.Raw
}

func (s *sinks) SaveCopyProgress(_ string, p map[string]PartitionProgress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves = append(s.saves, maps.Clone(p))
	return nil
}

func (s *sinks) RelaxedIndex(ns string, original bson.Raw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.relaxed == nil {
		s.relaxed = map[string][]bson.Raw{}
	}
	s.relaxed[ns] = append(s.relaxed[ns], original)
	return nil
}

func (s *sinks) last() map[string]PartitionProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.saves) == 0 {
		return nil
	}
	return s.saves[len(s.saves)-1]
}

func (s *sinks) all() []map[string]PartitionProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.saves)
}

// i32 is an int32 _id value.
func i32(v int32) bson.RawValue {
	return bson.RawValue{Type: bson.TypeInt32, Value: bsoncore.AppendInt32(nil, v)}
}

// doc marshals a document or fails the test.
func doc(t testing.TB, d bson.D) bson.Raw {
	t.Helper()
	raw, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// unsharded is a plan part for an unsharded collection.
func unsharded(db, coll string) prepare.ShardNamespace {
	return prepare.ShardNamespace{Collection: &prepare.Collection{DB: db, Name: coll, Type: "collection"}}
}

// sharded is a plan part for a collection sharded on key owning [min, max) ranges.
func sharded(t testing.TB, db, coll string, key bson.D, ranges ...[2]bson.D) prepare.ShardNamespace {
	t.Helper()
	p, err := shardkey.NewPattern(key)
	if err != nil {
		t.Fatal(err)
	}
	var rs []shardkey.Range
	for _, r := range ranges {
		rs = append(rs, shardkey.Range{Min: shardkey.Key(doc(t, r[0])), Max: shardkey.Key(doc(t, r[1]))})
	}
	owned, err := shardkey.NewRanges(rs)
	if err != nil {
		t.Fatal(err)
	}
	return prepare.ShardNamespace{
		Collection: &prepare.Collection{DB: db, Name: coll, Type: "collection", Sharded: true, Key: p.Raw(), Pattern: p},
		Ranges:     owned,
	}
}

func plan(parts ...prepare.ShardNamespace) *prepare.ShardPlan {
	sp := &prepare.ShardPlan{Source: "src0", Destination: "dst0", Namespaces: parts}
	for _, n := range parts {
		sp.Docs += n.Docs
		sp.Bytes += n.Bytes
	}
	return sp
}

// newCopier builds a copier with small batches and fast retries for tests.
func newCopier(t testing.TB, sp *prepare.ShardPlan, src Source, dst Destination, s *sinks, saved map[string]PartitionProgress, tune func(*Config)) *Copier {
	t.Helper()
	cfg := Config{
		Shard: sp, Source: src, Destination: dst, Saved: saved, Checkpoints: s, Indexes: s,
		BatchDocs: 10, CheckpointEvery: time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.retry = retryPolicy{attempts: 3, base: time.Millisecond, max: time.Millisecond}
	return c
}

// waitFor polls a condition that the code under test must reach; the test's own
// deadline bounds it.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// state reports the bytes in use and how many acquirers wait (tests only).
func (b *budget) state() (used int64, waiters int) {
	return b.used.Load(), int(b.waiting.Load())
}

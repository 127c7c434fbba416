package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// memSide is a cluster in memory: every scan returns the documents sorted by _id,
// as a mongos does.
type memSide struct {
	colls      map[string][]bson.Raw
	scans      atomic.Int64
	finds      atomic.Int64
	rangeScans atomic.Int64
	// ignoreBounds makes ScanRange return every document.
	ignoreBounds bool
	// caseless are the namespaces with a case-insensitive default collation: a scan
	// without the simple collation orders their string _ids without case.
	caseless map[string]bool
}

func newMemSide() *memSide { return &memSide{colls: map[string][]bson.Raw{}} }

func (s *memSide) put(ns string, doc bson.D) {
	raw, err := bson.Marshal(doc)
	if err != nil {
		panic(err)
	}
	docs := slices.DeleteFunc(s.colls[ns], func(d bson.Raw) bool {
		return compareIDs(d.Lookup("_id"), bson.Raw(raw).Lookup("_id")) == 0
	})
	s.colls[ns] = append(docs, raw)
}

func (s *memSide) remove(ns string, id any) {
	_, v, _ := bson.MarshalValue(id)
	s.colls[ns] = slices.DeleteFunc(s.colls[ns], func(d bson.Raw) bool {
		id := d.Lookup("_id")
		return shardkey.Compare(bsoncore.Value{Type: id.Type, Data: id.Value}, bsoncore.Value{Type: bson.TypeInt32, Data: v}) == 0
	})
}

func (s *memSide) Scan(_ context.Context, db, coll string, idOnly, simple bool) (Cursor, error) {
	s.scans.Add(1)
	docs := slices.Clone(s.colls[db+"."+coll])
	compare := compareIDs
	if s.caseless[db+"."+coll] && !simple {
		compare = func(a, b bson.RawValue) int {
			as, aok := a.StringValueOK()
			bs, bok := b.StringValueOK()
			if aok && bok {
				return strings.Compare(strings.ToLower(as), strings.ToLower(bs))
			}
			return compareIDs(a, b)
		}
	}
	slices.SortFunc(docs, func(a, b bson.Raw) int { return compare(a.Lookup("_id"), b.Lookup("_id")) })
	if idOnly {
		for i, d := range docs {
			docs[i], _ = bson.Marshal(bson.D{{Key: "_id", Value: d.Lookup("_id")}})
		}
	}
	return &memCursor{docs: docs, i: -1}, nil
}

func (s *memSide) Find(ctx context.Context, db, coll string, ids []bson.RawValue, simple bool) (Cursor, error) {
	s.finds.Add(1)
	all, _ := s.Scan(ctx, db, coll, false, simple)
	s.scans.Add(-1) // a Find reads only the documents asked for
	var docs []bson.Raw
	for _, d := range all.(*memCursor).docs {
		if slices.ContainsFunc(ids, func(id bson.RawValue) bool { return compareIDs(id, d.Lookup("_id")) == 0 }) {
			docs = append(docs, d)
		}
	}
	return &memCursor{docs: docs, i: -1}, nil
}

// ScanRange returns the documents whose key lies in [min, max), in reverse _id
// order: an index gives no _id order. ignoreBounds returns them all, as a server
// that ignored find's min and max would.
func (s *memSide) ScanRange(_ context.Context, db, coll string, keyPattern bson.Raw, min, max []byte, _ bool) (Cursor, error) {
	s.rangeScans.Add(1)
	p, err := shardkey.ParsePattern(keyPattern)
	if err != nil {
		return nil, err
	}
	var docs []bson.Raw
	for _, d := range slices.Backward(s.colls[db+"."+coll]) {
		key, err := p.Extract(d)
		if s.ignoreBounds || err == nil && shardkey.CompareKeys(key, min) >= 0 && shardkey.CompareKeys(key, max) < 0 {
			docs = append(docs, d)
		}
	}
	return &memCursor{docs: docs, i: -1}, nil
}

type memCursor struct {
	docs []bson.Raw
	i    int
}

func (c *memCursor) Next(context.Context) bool   { c.i++; return c.i < len(c.docs) }
func (c *memCursor) Current() bson.Raw           { return c.docs[c.i] }
func (c *memCursor) Err() error                  { return nil }
func (c *memCursor) Close(context.Context) error { return nil }

// twoSides holds the same three collections on both sides: a ranged sharded one, a
// hashed sharded one and an unsharded one with _ids of mixed types.
func twoSides(t *testing.T) (*memSide, *memSide, []Namespace) {
	t.Helper()
	src, dst := newMemSide(), newMemSide()
	for _, s := range []*memSide{src, dst} {
		for i := range 300 {
			s.put("shop.orders", bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}, {Key: "v", Value: fmt.Sprint("order ", i)}})
			s.put("shop.carts", bson.D{{Key: "_id", Value: int32(i)}, {Key: "user", Value: fmt.Sprint("u", i)}})
			var id any = int32(i)
			switch i % 3 {
			case 1:
				id = fmt.Sprintf("id-%03d", i)
			case 2:
				id = primitive.ObjectID{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}
			}
			s.put("shop.plain", bson.D{{Key: "_id", Value: id}, {Key: "n", Value: i}})
		}
	}
	ranged, err := shardkey.NewPattern(bson.D{{Key: "k", Value: 1}})
	if err != nil {
		t.Fatal(err)
	}
	hashed, err := shardkey.NewPattern(bson.D{{Key: "user", Value: "hashed"}})
	if err != nil {
		t.Fatal(err)
	}
	key := func(k string, v any) shardkey.Key {
		b, _ := bson.Marshal(bson.D{{Key: k, Value: v}})
		return shardkey.Key(b)
	}
	nss := []Namespace{
		{DB: "shop", Coll: "orders", Pattern: ranged, Chunks: []shardkey.Chunk{
			{Min: ranged.GlobalMin(), Max: key("k", 100), Shard: "a"},
			{Min: key("k", 100), Max: key("k", 200), Shard: "b"},
			{Min: key("k", 200), Max: ranged.GlobalMax(), Shard: "a"},
		}},
		{DB: "shop", Coll: "carts", Pattern: hashed, Chunks: []shardkey.Chunk{
			{Min: hashed.GlobalMin(), Max: key("user", int64(0)), Shard: "a"},
			{Min: key("user", int64(0)), Max: hashed.GlobalMax(), Shard: "b"},
		}},
		{DB: "shop", Coll: "plain"},
	}
	return src, dst, nss
}

func TestEqualClustersMatchInEveryRange(t *testing.T) {
	src, dst, nss := twoSides(t)
	var calls int
	res, err := Run(context.Background(), src, dst, nss, Options{BucketDocs: 70}, func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	// 3 chunks + 2 hashed chunks + ceil(300/70) = 5 _id ranges.
	if res.Ranges != 10 || res.Matched != 10 || len(res.Mismatches) != 0 || res.Documents != 900 || res.Namespaces != 3 {
		t.Fatalf("result %+v", res)
	}
	if calls != 3 {
		t.Fatalf("progress called %d times", calls)
	}
}

func TestAlteredDocumentIsFoundInItsRangeWithItsID(t *testing.T) {
	src, dst, nss := twoSides(t)
	dst.put("shop.orders", bson.D{{Key: "_id", Value: 150}, {Key: "k", Value: 150}, {Key: "v", Value: "altered behind Shardlift's back"}})
	res, err := Run(context.Background(), src, dst, nss, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mismatches) != 1 || res.Matched != res.Ranges-1 {
		t.Fatalf("mismatches %+v", res.Mismatches)
	}
	m := res.Mismatches[0]
	if m.Namespace != "shop.orders" || !strings.Contains(m.Range, `"k": {"$numberInt":"100"}`) || m.SourceCount != 100 || m.DestCount != 100 {
		t.Fatalf("mismatch %+v", m)
	}
	if len(m.SampleIDs) != 1 || !strings.Contains(m.SampleIDs[0], "150") {
		t.Fatalf("samples %v", m.SampleIDs)
	}
}

func TestFieldOrderIsPartOfTheComparison(t *testing.T) {
	src, dst, nss := twoSides(t)
	dst.put("shop.carts", bson.D{{Key: "user", Value: "u7"}, {Key: "_id", Value: int32(7)}})
	res, err := Run(context.Background(), src, dst, nss, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mismatches) != 1 || res.Mismatches[0].Namespace != "shop.carts" || res.Mismatches[0].SampleIDs[0] != `{"$numberInt":"7"}` {
		t.Fatalf("mismatches %+v", res.Mismatches)
	}
}

func TestMissingAndExtraDocumentsAreCountedAndSampled(t *testing.T) {
	src, dst, nss := twoSides(t)
	dst.remove("shop.plain", int32(0))
	dst.put("shop.plain", bson.D{{Key: "_id", Value: "zz-extra"}, {Key: "n", Value: -1}})
	res, err := Run(context.Background(), src, dst, nss, Options{BucketDocs: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mismatches) != 2 {
		t.Fatalf("mismatches %+v", res.Mismatches)
	}
	for _, m := range res.Mismatches {
		if m.Namespace != "shop.plain" || len(m.SampleIDs) != 1 {
			t.Fatalf("mismatch %+v", m)
		}
	}
	if got := res.Mismatches[0]; got.SourceCount != got.DestCount+1 || !strings.Contains(got.Range, "MinKey") {
		t.Fatalf("first range %+v: the missing _id 0 is in the first _id range", got)
	}
}

func TestCollectionOnlyOnOneSideDiffers(t *testing.T) {
	src, dst, _ := twoSides(t)
	dst.put("shop.stray", bson.D{{Key: "_id", Value: 1}})
	res, err := Run(context.Background(), src, dst, []Namespace{{DB: "shop", Coll: "stray"}}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mismatches) != 1 || res.Mismatches[0].SourceCount != 0 || res.Mismatches[0].DestCount != 1 {
		t.Fatalf("result %+v", res)
	}
}

// Memory stays bounded: a namespace is read once per side to hash it (plus one
// _id scan of the source for unsharded ranges); documents are never collected.
func TestEachSideIsScannedOnceWhenEverythingMatches(t *testing.T) {
	src, dst, nss := twoSides(t)
	if _, err := Run(context.Background(), src, dst, nss, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	if src.scans.Load() != 4 || dst.scans.Load() != 3 {
		t.Fatalf("scans: source %d, destination %d", src.scans.Load(), dst.scans.Load())
	}
}

func TestCollatedCollectionsAreMergedInBytewiseOrder(t *testing.T) {
	// Under a case-insensitive default collation a mongos orders "a" < "B" < "c";
	// merged by bytes ("B" < "a"), such scans pair the wrong documents and name ones
	// that do not differ.
	src, dst := newMemSide(), newMemSide()
	for _, s := range []*memSide{src, dst} {
		s.caseless = map[string]bool{"crm.people": true}
		for _, id := range []string{"B", "c", "D", "e"} {
			s.put("crm.people", bson.D{{Key: "_id", Value: id}})
		}
	}
	src.put("crm.people", bson.D{{Key: "_id", Value: "a"}}) // missing on the destination
	res, err := Run(context.Background(), src, dst, []Namespace{{DB: "crm", Coll: "people", Collated: true}}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mismatches) != 1 || !slices.Equal(res.Mismatches[0].SampleIDs, []string{`"a"`}) {
		t.Fatalf("mismatches %+v, want one naming \"a\" alone", res.Mismatches)
	}
}

func TestRecheckReadsOnlyTheDocumentsAskedForAndNamesThoseThatDiffer(t *testing.T) {
	src, dst, nss := twoSides(t)
	orders := nss[0]
	dst.put("shop.orders", bson.D{{Key: "_id", Value: 5}, {Key: "k", Value: 5}, {Key: "v", Value: "stale"}})
	dst.remove("shop.orders", int32(6))
	src.put("shop.orders", bson.D{{Key: "_id", Value: 999}, {Key: "k", Value: 999}}) // not asked for
	ids := []bson.RawValue{}
	for _, id := range []int{4, 5, 6, 7} {
		_, v, _ := bson.MarshalValue(id)
		ids = append(ids, bson.RawValue{Type: bson.TypeInt32, Value: v})
	}
	differ, err := Recheck(context.Background(), src, dst, orders, ids)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, id := range differ {
		got = append(got, id.String())
	}
	if want := []string{`{"$numberInt":"5"}`, `{"$numberInt":"6"}`}; !slices.Equal(got, want) {
		t.Fatalf("differ %v, want %v", got, want)
	}
	if src.scans.Load() != 0 || dst.scans.Load() != 0 || src.finds.Load() != 1 {
		t.Fatalf("scans %d/%d, finds %d: a recheck reads the _ids asked for only", src.scans.Load(), dst.scans.Load(), src.finds.Load())
	}
}

func TestMismatchListsEveryDifferingIDUpToSamples(t *testing.T) {
	src, dst, nss := twoSides(t)
	for _, id := range []int{150, 151, 152} {
		dst.put("shop.orders", bson.D{{Key: "_id", Value: id}, {Key: "k", Value: id}, {Key: "v", Value: "stale"}})
	}
	res, err := Run(context.Background(), src, dst, nss[:1], Options{Samples: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Mismatches) != 1 || len(res.Mismatches[0].IDs) != 3 || res.Mismatches[0].IDs[2].String() != `{"$numberInt":"152"}` {
		t.Fatalf("mismatches %+v", res.Mismatches)
	}
}

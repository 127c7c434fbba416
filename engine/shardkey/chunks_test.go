package shardkey

import (
	"errors"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

var (
	minKey = primitive.MinKey{}
	maxKey = primitive.MaxKey{}
)

func x(v any) bson.D { return bson.D{{Key: "x", Value: v}} }

func chunk(t testing.TB, lo, hi bson.D, shard string) Chunk {
	t.Helper()
	return Chunk{Min: key(t, lo), Max: key(t, hi), Shard: shard}
}

func mustChunkMap(t testing.TB, chunks []Chunk) *ChunkMap {
	t.Helper()
	m, err := NewChunkMap(chunks)
	if err != nil {
		t.Fatalf("NewChunkMap: %v", err)
	}
	return m
}

func threeChunks(t testing.TB) []Chunk {
	return []Chunk{
		chunk(t, x(minKey), x(0), "s0"),
		chunk(t, x(0), x(100), "s1"),
		chunk(t, x(100), x(maxKey), "s2"),
	}
}

// TestOwnerTreatsMinInclusiveAndMaxExclusive: a chunk owns [min, max).
func TestOwnerTreatsMinInclusiveAndMaxExclusive(t *testing.T) {
	m := mustChunkMap(t, threeChunks(t))
	cases := []struct {
		v    any
		want string
	}{
		{minKey, "s0"},
		{nil, "s0"}, // null sorts below numbers
		{-1, "s0"},
		{0, "s1"},   // min inclusive
		{0.0, "s1"}, // numbers compare by value across types
		{99.5, "s1"},
		{int64(100), "s2"}, // max exclusive
		{"a string", "s2"}, // strings sort above numbers
		{bson.D{}, "s2"},
	}
	for _, c := range cases {
		got, ok := m.Owner(key(t, x(c.v)))
		if !ok || got != c.want {
			t.Errorf("Owner(x: %v) = %q, %v; want %q", c.v, got, ok, c.want)
		}
	}
	if got, ok := m.Owner(key(t, x(maxKey))); ok {
		t.Errorf("Owner(x: MaxKey) = %q; MaxKey is the exclusive end of the last chunk", got)
	}
	if got, ok := m.Owner(key(t, bson.D{{Key: "x", Value: 1}, {Key: "y", Value: 1}})); ok {
		t.Errorf("Owner of a two-field key in a one-field map = %q, want not found", got)
	}
	if m.Len() != 3 || !slices.Equal(m.Shards(), []string{"s0", "s1", "s2"}) {
		t.Errorf("Len, Shards = %d, %v", m.Len(), m.Shards())
	}
}

func TestNewChunkMapAcceptsChunksInAnyOrder(t *testing.T) {
	c := threeChunks(t)
	m := mustChunkMap(t, []Chunk{c[2], c[0], c[1]})
	if got, _ := m.Owner(key(t, x(50))); got != "s1" {
		t.Errorf("Owner(50) = %q, want s1", got)
	}
}

func TestNewChunkMapRejectsInconsistentChunks(t *testing.T) {
	cases := map[string][]Chunk{
		"none": nil,
		"gap": {
			chunk(t, x(minKey), x(0), "s0"),
			chunk(t, x(1), x(maxKey), "s1"),
		},
		"overlap": {
			chunk(t, x(minKey), x(5), "s0"),
			chunk(t, x(0), x(maxKey), "s1"),
		},
		"does not start at MinKey": {
			chunk(t, x(0), x(maxKey), "s0"),
		},
		"does not end at MaxKey": {
			chunk(t, x(minKey), x(0), "s0"),
		},
		"empty chunk": {
			chunk(t, x(minKey), x(0), "s0"),
			chunk(t, x(0), x(0), "s1"),
			chunk(t, x(0), x(maxKey), "s1"),
		},
		"different shapes": {
			chunk(t, x(minKey), x(0), "s0"),
			chunk(t, x(0), bson.D{{Key: "x", Value: maxKey}, {Key: "y", Value: maxKey}}, "s1"),
		},
	}
	for name, chunks := range cases {
		if _, err := NewChunkMap(chunks); !errors.Is(err, ErrInconsistentChunks) {
			t.Errorf("%s: NewChunkMap error = %v, want ErrInconsistentChunks", name, err)
		}
	}
	bad := []Chunk{{Min: Key{1, 2, 3}, Max: key(t, x(maxKey)), Shard: "s0"}}
	if _, err := NewChunkMap(bad); !errors.Is(err, ErrMalformedBSON) {
		t.Errorf("malformed bound: error = %v, want ErrMalformedBSON", err)
	}
}

// TestCompoundBoundsCompareFieldByField: a compound key is ordered by its first
// field, then its second, MinKey/MaxKey included.
func TestCompoundBoundsCompareFieldByField(t *testing.T) {
	ab := func(a, b any) bson.D { return bson.D{{Key: "a", Value: a}, {Key: "b", Value: b}} }
	m := mustChunkMap(t, []Chunk{
		chunk(t, ab(minKey, minKey), ab(5, minKey), "s0"),
		chunk(t, ab(5, minKey), ab(5, 10), "s1"),
		chunk(t, ab(5, 10), ab(maxKey, maxKey), "s2"),
	})
	cases := []struct {
		a, b any
		want string
	}{
		{4, 1000, "s0"},
		{5, nil, "s1"}, // null is above MinKey
		{5, 9, "s1"},
		{5, 10, "s2"},
		{6, minKey, "s2"},
	}
	for _, c := range cases {
		if got, ok := m.Owner(key(t, ab(c.a, c.b))); !ok || got != c.want {
			t.Errorf("Owner(a: %v, b: %v) = %q, %v; want %q", c.a, c.b, got, ok, c.want)
		}
	}
}

// TestRangesTellOwnedDocumentsFromOrphans: the sync engine keeps a shard's
// documents inside its chunks and skips the rest.
func TestRangesTellOwnedDocumentsFromOrphans(t *testing.T) {
	m := mustChunkMap(t, []Chunk{
		chunk(t, x(minKey), x(0), "s0"),
		chunk(t, x(0), x(10), "s0"),
		chunk(t, x(10), x(20), "s1"),
		chunk(t, x(20), x(30), "s0"),
		chunk(t, x(30), x(maxKey), "s1"),
	})
	s0 := m.Ranges("s0")
	if s0.Len() != 2 {
		t.Errorf("s0 ranges after merging = %d, want 2", s0.Len())
	}
	for v, want := range map[any]bool{-5: true, 0: true, 9.99: true, 10: false, 19: false, 20: true, 29: true, 30: false, "s": false} {
		if got := s0.Contains(key(t, x(v))); got != want {
			t.Errorf("s0 Contains(%v) = %v, want %v", v, got, want)
		}
	}
	if m.Ranges("s9").Contains(key(t, x(1))) || m.Ranges("s9").Len() != 0 {
		t.Error("a shard without chunks owns something")
	}
	s1 := m.Ranges("s1")
	if !s1.Contains(key(t, x("zzz"))) || s1.Contains(key(t, x(maxKey))) {
		t.Errorf("s1 owns [30, MaxKey): contains \"zzz\": %v, MaxKey: %v",
			s1.Contains(key(t, x("zzz"))), s1.Contains(key(t, x(maxKey))))
	}
}

func TestNewRangesMergesAndRejectsOverlaps(t *testing.T) {
	r, err := NewRanges([]Range{
		{Min: key(t, x(20)), Max: key(t, x(30))},
		{Min: key(t, x(0)), Max: key(t, x(10))},
		{Min: key(t, x(10)), Max: key(t, x(20))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 1 || !r.Contains(key(t, x(15))) || r.Contains(key(t, x(30))) || !r.Contains(key(t, x(0))) {
		t.Errorf("merged ranges: Len %d, contains 15: %v, 30: %v, 0: %v", r.Len(),
			r.Contains(key(t, x(15))), r.Contains(key(t, x(30))), r.Contains(key(t, x(0))))
	}
	_, err = NewRanges([]Range{
		{Min: key(t, x(0)), Max: key(t, x(10))},
		{Min: key(t, x(5)), Max: key(t, x(20))},
	})
	if !errors.Is(err, ErrInconsistentChunks) {
		t.Errorf("overlapping ranges: error = %v, want ErrInconsistentChunks", err)
	}
	empty, err := NewRanges(nil)
	if err != nil || empty.Contains(key(t, x(1))) || empty.Len() != 0 {
		t.Errorf("empty ranges: %v, %v", err, empty.Len())
	}
}

// TestHashedKeyRoutesByHashNotByValue builds the two chunks shardCollection
// makes for {x: "hashed"} (split at NumberLong(0)) and places documents by the
// sign of the hash MongoDB's tests pin for their values.
func TestHashedKeyRoutesByHashNotByValue(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "x", Value: "hashed"}})
	m := mustChunkMap(t, []Chunk{
		{Min: p.GlobalMin(), Max: key(t, x(int64(0))), Shard: "neg"},
		{Min: key(t, x(int64(0))), Max: p.GlobalMax(), Shard: "pos"},
	})
	cases := []struct {
		v    any
		want string
	}{
		{42, "neg"},               // -944302157085130861
		{1, "pos"},                // 5902408780260971510
		{-1, "pos"},               // 1140205862565771219
		{"string to hash", "pos"}, // 763543691661428748
		{nil, "pos"},              // 2338878944348059895
	}
	for _, c := range cases {
		k, err := p.Extract(mustMarshal(t, bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: c.v}}))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := m.Owner(k); got != c.want {
			t.Errorf("x: %v (key %s) is on %q, want %q", c.v, k, got, c.want)
		}
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	m := mustChunkMap(t, threeChunks(t))
	r := m.Ranges("s1")
	k := key(t, x(50))
	if n := testing.AllocsPerRun(100, func() { m.Owner(k); r.Contains(k) }); n != 0 {
		t.Errorf("Owner + Contains allocate %v times", n)
	}
}

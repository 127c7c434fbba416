package shardkey

import (
	"errors"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

func mustPattern(t testing.TB, d bson.D) *Pattern {
	t.Helper()
	p, err := NewPattern(d)
	if err != nil {
		t.Fatalf("NewPattern(%v): %v", d, err)
	}
	return p
}

func key(t testing.TB, d bson.D) Key { t.Helper(); return Key(mustMarshal(t, d)) }

func TestParsePatternAcceptsWhatMongoDBAccepts(t *testing.T) {
	cases := []struct {
		key    bson.D
		fields []string
		hashed string
	}{
		{bson.D{{Key: "a", Value: 1}}, []string{"a"}, ""},
		{bson.D{{Key: "a", Value: 1.0}}, []string{"a"}, ""},
		{bson.D{{Key: "a", Value: int64(1)}}, []string{"a"}, ""},
		{bson.D{{Key: "a", Value: 1.5}}, []string{"a"}, ""}, // safeNumberInt(1.5) == 1
		{bson.D{{Key: "x", Value: "hashed"}}, []string{"x"}, "x"},
		{bson.D{{Key: "a", Value: 1}, {Key: "b.c", Value: 1}}, []string{"a", "b.c"}, ""},
		{bson.D{{Key: "a", Value: 1}, {Key: "b", Value: "hashed"}, {Key: "c", Value: 1}}, []string{"a", "b", "c"}, "b"},
	}
	for _, c := range cases {
		p, err := NewPattern(c.key)
		if err != nil {
			t.Errorf("NewPattern(%v): %v", c.key, err)
			continue
		}
		if !slices.Equal(p.Fields(), c.fields) || p.HashedField() != c.hashed || p.IsHashed() != (c.hashed != "") {
			t.Errorf("NewPattern(%v) = fields %v hashed %q, want %v %q", c.key, p.Fields(), p.HashedField(), c.fields, c.hashed)
		}
		if want := mustMarshal(t, c.key); !slices.Equal(p.Raw(), want) {
			t.Errorf("NewPattern(%v).Raw() = %s, want %s", c.key, p.Raw(), bson.Raw(want))
		}
	}
}

func TestParsePatternRejectsWhatMongoDBRejects(t *testing.T) {
	cases := []bson.D{
		{},
		{{Key: "", Value: 1}},
		{{Key: "a..b", Value: 1}},
		{{Key: ".a", Value: 1}},
		{{Key: "a.", Value: 1}},
		{{Key: "a", Value: -1}},
		{{Key: "a", Value: 2}},
		{{Key: "a", Value: 0.5}},
		{{Key: "a", Value: "text"}},
		{{Key: "a", Value: true}},
		{{Key: "a", Value: "hashed"}, {Key: "b", Value: "hashed"}},
	}
	for _, c := range cases {
		if _, err := NewPattern(c); !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("NewPattern(%v) error = %v, want ErrInvalidPattern", c, err)
		}
	}
	if _, err := ParsePattern(bson.Raw{5, 0, 0}); !errors.Is(err, ErrMalformedBSON) {
		t.Errorf("ParsePattern(truncated) error = %v, want ErrMalformedBSON", err)
	}
}

func TestExtractFollowsDottedPaths(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a", Value: 1}, {Key: "b.c", Value: 1}})
	doc := mustMarshal(t, bson.D{
		{Key: "_id", Value: 7},
		{Key: "b", Value: bson.D{{Key: "z", Value: 0}, {Key: "c", Value: "deep"}}},
		{Key: "a", Value: 5.5},
	})
	got, err := p.Extract(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := key(t, bson.D{{Key: "a", Value: 5.5}, {Key: "b.c", Value: "deep"}})
	if !slices.Equal(got, want) {
		t.Errorf("Extract = %s, want %s", got, want)
	}
}

// TestMissingShardKeyFieldIsNull pins MongoDB 4.4+ extraction: a missing field,
// or a path that runs into a scalar, is null.
func TestMissingShardKeyFieldIsNull(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a", Value: 1}, {Key: "b.c", Value: 1}})
	for _, doc := range []bson.D{
		{{Key: "x", Value: 1}},
		{{Key: "b", Value: 5}},
		{{Key: "b", Value: bson.D{}}},
		{{Key: "b", Value: "c"}},
	} {
		got, err := p.Extract(mustMarshal(t, doc))
		if err != nil {
			t.Fatalf("Extract(%v): %v", doc, err)
		}
		want := key(t, bson.D{{Key: "a", Value: nil}, {Key: "b.c", Value: nil}})
		if !slices.Equal(got, want) {
			t.Errorf("Extract(%v) = %s, want %s", doc, got, want)
		}
	}
}

// TestArrayOnShardKeyPathIsRejected pins ShardKeyNotFound: "Shard key cannot
// contain array values or array descendants".
func TestArrayOnShardKeyPathIsRejected(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a", Value: 1}, {Key: "b.c", Value: 1}})
	for _, doc := range []bson.D{
		{{Key: "a", Value: bson.A{1}}},
		{{Key: "a", Value: 1}, {Key: "b", Value: bson.A{bson.D{{Key: "c", Value: 1}}}}},
		{{Key: "a", Value: 1}, {Key: "b", Value: bson.D{{Key: "c", Value: bson.A{}}}}},
	} {
		if _, err := p.Extract(mustMarshal(t, doc)); !errors.Is(err, ErrArrayInShardKey) {
			t.Errorf("Extract(%v) error = %v, want ErrArrayInShardKey", doc, err)
		}
	}
	hashed := mustPattern(t, bson.D{{Key: "h", Value: "hashed"}})
	if _, err := hashed.Extract(mustMarshal(t, bson.D{{Key: "h", Value: bson.A{1}}})); !errors.Is(err, ErrArrayInShardKey) {
		t.Errorf("hashed Extract of an array: error = %v, want ErrArrayInShardKey", err)
	}
	// Arrays off the key paths, or inside an object-valued key, are fine.
	ok := mustMarshal(t, bson.D{{Key: "a", Value: bson.D{{Key: "list", Value: bson.A{1, 2}}}}, {Key: "tags", Value: bson.A{"x"}}})
	if _, err := p.Extract(ok); err != nil {
		t.Errorf("Extract with arrays off the key path: %v", err)
	}
}

func TestExtractTakesFirstOfRepeatedFields(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a", Value: 1}})
	got, err := p.Extract(mustMarshal(t, bson.D{{Key: "a", Value: 1}, {Key: "a", Value: 2}}))
	if err != nil {
		t.Fatal(err)
	}
	if want := key(t, bson.D{{Key: "a", Value: 1}}); !slices.Equal(got, want) {
		t.Errorf("Extract = %s, want %s", got, want)
	}
}

func TestExtractDoesNotMatchLiteralDottedNames(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "b.c", Value: 1}})
	got, err := p.Extract(mustMarshal(t, bson.D{{Key: "b.c", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	if want := key(t, bson.D{{Key: "b.c", Value: nil}}); !slices.Equal(got, want) {
		t.Errorf("Extract = %s, want %s", got, want)
	}
}

// TestHashedFieldIsReplacedByItsNumberLongHash: chunk bounds of a hashed key
// hold NumberLong hashes, so the extracted key must too.
func TestHashedFieldIsReplacedByItsNumberLongHash(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "region", Value: 1}, {Key: "user.id", Value: "hashed"}})
	doc := mustMarshal(t, bson.D{{Key: "user", Value: bson.D{{Key: "id", Value: 42.9}}}, {Key: "region", Value: "eu"}})
	got, err := p.Extract(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := key(t, bson.D{{Key: "region", Value: "eu"}, {Key: "user.id", Value: int64(-944302157085130861)}})
	if !slices.Equal(got, want) {
		t.Errorf("Extract = %s, want %s", got, want)
	}
	// A missing hashed field hashes null; an object value is hashed whole.
	h := mustPattern(t, bson.D{{Key: "x", Value: "hashed"}})
	got, _ = h.Extract(mustMarshal(t, bson.D{{Key: "y", Value: 1}}))
	if want := key(t, bson.D{{Key: "x", Value: int64(2338878944348059895)}}); !slices.Equal(got, want) {
		t.Errorf("missing hashed field: Extract = %s, want %s", got, want)
	}
	obj := bson.D{{Key: "a", Value: "abc"}, {Key: "b", Value: int64(123)}}
	got, _ = h.Extract(mustMarshal(t, bson.D{{Key: "x", Value: obj}}))
	if want := key(t, bson.D{{Key: "x", Value: int64(4771603801758380216)}}); !slices.Equal(got, want) {
		t.Errorf("object hashed field: Extract = %s, want %s", got, want)
	}
}

func TestExtractDocumentKeyReadsLiteralDottedNames(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a", Value: 1}, {Key: "b.c", Value: "hashed"}})
	dk := mustMarshal(t, bson.D{{Key: "_id", Value: 1}, {Key: "b.c", Value: 42}, {Key: "a", Value: "x"}})
	got, err := p.ExtractDocumentKey(dk)
	if err != nil {
		t.Fatal(err)
	}
	want := key(t, bson.D{{Key: "a", Value: "x"}, {Key: "b.c", Value: int64(-944302157085130861)}})
	if !slices.Equal(got, want) {
		t.Errorf("ExtractDocumentKey = %s, want %s", got, want)
	}
	missing, err := p.ExtractDocumentKey(mustMarshal(t, bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	want = key(t, bson.D{{Key: "a", Value: nil}, {Key: "b.c", Value: int64(2338878944348059895)}})
	if !slices.Equal(missing, want) {
		t.Errorf("ExtractDocumentKey without key fields = %s, want %s", missing, want)
	}
	if _, err := p.ExtractDocumentKey(mustMarshal(t, bson.D{{Key: "a", Value: bson.A{}}})); !errors.Is(err, ErrArrayInShardKey) {
		t.Errorf("array in document key: error = %v, want ErrArrayInShardKey", err)
	}
}

func TestExtractRejectsMalformedDocuments(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a.b", Value: 1}})
	good := mustMarshal(t, bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: "v"}}}})
	for n := range len(good) - 1 {
		bad := append([]byte(nil), good...)
		bad[n] ^= 0xff
		if _, err := p.Extract(bad); err != nil && !errors.Is(err, ErrMalformedBSON) {
			t.Errorf("corrupt byte %d: error %v does not wrap ErrMalformedBSON", n, err)
		}
	}
	if _, err := p.Extract(good[:len(good)-3]); !errors.Is(err, ErrMalformedBSON) {
		t.Errorf("truncated document: error = %v, want ErrMalformedBSON", err)
	}
}

func TestGlobalMinAndMaxBoundTheKeySpace(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a", Value: 1}, {Key: "b", Value: 1}})
	wantMin := key(t, bson.D{{Key: "a", Value: primitive.MinKey{}}, {Key: "b", Value: primitive.MinKey{}}})
	wantMax := key(t, bson.D{{Key: "a", Value: primitive.MaxKey{}}, {Key: "b", Value: primitive.MaxKey{}}})
	if !slices.Equal(p.GlobalMin(), wantMin) || !slices.Equal(p.GlobalMax(), wantMax) {
		t.Errorf("GlobalMin, GlobalMax = %s, %s; want %s, %s", p.GlobalMin(), p.GlobalMax(), wantMin, wantMax)
	}
}

func TestAppendKeyDoesNotAllocate(t *testing.T) {
	p := mustPattern(t, bson.D{{Key: "a", Value: 1}, {Key: "b.c", Value: "hashed"}})
	doc := mustMarshal(t, bson.D{{Key: "a", Value: "x"}, {Key: "b", Value: bson.D{{Key: "c", Value: 9}}}})
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := p.AppendKey(buf[:0], doc); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendKey allocates %v times", n)
	}
}

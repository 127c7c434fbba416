package shard

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/sandbox/sjson"
)

// sjsonCorpus are documents of every type FerretDB v1.24.2 stores, with the edge
// cases of each, nested documents and arrays, and the _id types applications use.
func sjsonCorpus() []bson.D {
	negZero := math.Copysign(0, -1)
	oid, _ := primitive.ObjectIDFromHex("65a1b2c3d4e5f60718293a4b")
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	uuid := []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x0f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21}
	date := func(y int, m time.Month, d int) primitive.DateTime {
		return primitive.NewDateTimeFromTime(time.Date(y, m, d, 12, 34, 56, 789e6, time.UTC))
	}
	var ascii strings.Builder
	for c := 1; c < 128; c++ {
		ascii.WriteByte(byte(c))
	}
	docs := []bson.D{
		{{Key: "_id", Value: int32(1)}, {Key: "what", Value: "doubles"},
			{Key: "zero", Value: 0.0}, {Key: "negZero", Value: negZero}, {Key: "big", Value: 1e300}, {Key: "negBig", Value: -1e300},
			{Key: "tiny", Value: 5e-324}, {Key: "negTiny", Value: -5e-324}, {Key: "tenth", Value: 0.1}, {Key: "one", Value: 1.0},
			{Key: "three", Value: 3.0}, {Key: "negTwo", Value: -2.0}, {Key: "twoTo53", Value: 9007199254740992.0},
			{Key: "twoTo63", Value: 9223372036854775808.0}, {Key: "max", Value: math.MaxFloat64}, {Key: "minNormal", Value: 2.2250738585072014e-308},
			{Key: "e21", Value: 1e21}, {Key: "e20", Value: 1e20}, {Key: "eMinus7", Value: 1e-7}, {Key: "eMinus6", Value: 1e-6},
			{Key: "pi", Value: math.Pi}, {Key: "third", Value: 1.0 / 3}, {Key: "frac", Value: -123456.789}},
		{{Key: "_id", Value: int32(2)}, {Key: "what", Value: "ints and longs"},
			{Key: "i0", Value: int32(0)}, {Key: "i1", Value: int32(1)}, {Key: "iNeg1", Value: int32(-1)},
			{Key: "iMax", Value: int32(math.MaxInt32)}, {Key: "iMin", Value: int32(math.MinInt32)},
			{Key: "iMaxLess", Value: int32(math.MaxInt32 - 1)}, {Key: "iMinMore", Value: int32(math.MinInt32 + 1)},
			{Key: "l0", Value: int64(0)}, {Key: "lNeg1", Value: int64(-1)}, {Key: "lMax", Value: int64(math.MaxInt64)},
			{Key: "lMin", Value: int64(math.MinInt64)}, {Key: "lMaxLess", Value: int64(math.MaxInt64 - 1)},
			{Key: "lMinMore", Value: int64(math.MinInt64 + 1)}, {Key: "l2to53plus1", Value: int64(1<<53 + 1)},
			{Key: "lNeg2to53plus1", Value: -int64(1<<53 + 1)}, {Key: "l2to62", Value: int64(1) << 62},
			{Key: "lPastInt32", Value: int64(math.MaxInt32) + 1}, {Key: "lSmall", Value: int64(7)}},
		{{Key: "_id", Value: int32(3)}, {Key: "what", Value: "strings"},
			{Key: "empty", Value: ""}, {Key: "plain", Value: "hello, world"},
			{Key: "quotes", Value: `she said "hi" and \ left / and \\ two \"`},
			{Key: "controls", Value: "\x00\x01\x02\x07\b\t\n\v\f\r\x1b\x1f\x7f end"},
			{Key: "html", Value: "<script>alert('x') && 1 > 0</script>"},
			{Key: "separators", Value: "line\u2028para\u2029end"},
			{Key: "emoji", Value: "😀🎉👩‍👩‍👧 flags 🇫🇷 and 𝄞"},
			{Key: "accents", Value: "éàü ñ 中文 日本語 한국어 العربية עברית"},
			{Key: "replacement", Value: "\ufffd"},
			{Key: "invalidUTF8", Value: "a\xffb\xc3(c\xed\xa0\x80d"},
			{Key: "nul", Value: "a\x00b\x00"},
			{Key: "ascii", Value: ascii.String()},
			{Key: "long", Value: strings.Repeat("0123456789abcdef\"\\é😀", 200)}},
		{{Key: "_id", Value: int32(4)}, {Key: "what", Value: "binaries"},
			{Key: "generic", Value: primitive.Binary{Subtype: 0, Data: []byte("hello")}},
			{Key: "empty", Value: primitive.Binary{Subtype: 0, Data: []byte{}}},
			{Key: "emptyUUID", Value: primitive.Binary{Subtype: 4}},
			{Key: "function", Value: primitive.Binary{Subtype: 1, Data: []byte{1, 2, 3}}},
			{Key: "old", Value: primitive.Binary{Subtype: 2, Data: []byte("old binary")}},
			{Key: "uuidOld", Value: primitive.Binary{Subtype: 3, Data: uuid}},
			{Key: "uuid", Value: primitive.Binary{Subtype: 4, Data: uuid}},
			{Key: "md5", Value: primitive.Binary{Subtype: 5, Data: uuid}},
			{Key: "encrypted", Value: primitive.Binary{Subtype: 6, Data: []byte{0}}},
			{Key: "column", Value: primitive.Binary{Subtype: 7, Data: []byte{0xff}}},
			{Key: "user", Value: primitive.Binary{Subtype: 0x80, Data: allBytes}},
			{Key: "user255", Value: primitive.Binary{Subtype: 0xff, Data: []byte{0xfb, 0xff, 0xbf}}},
			{Key: "pad1", Value: primitive.Binary{Data: []byte{1}}},
			{Key: "pad2", Value: primitive.Binary{Data: []byte{1, 2}}}},
		{{Key: "_id", Value: int32(5)}, {Key: "what", Value: "the other scalars"},
			{Key: "oid", Value: oid}, {Key: "oidZero", Value: primitive.NilObjectID},
			{Key: "oidOnes", Value: primitive.ObjectID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
			{Key: "yes", Value: true}, {Key: "no", Value: false}, {Key: "null", Value: nil},
			{Key: "epoch", Value: primitive.DateTime(0)}, {Key: "msBefore", Value: primitive.DateTime(-1)},
			{Key: "y1969", Value: date(1969, 12, 31)}, {Key: "y1900", Value: date(1900, 1, 1)},
			{Key: "y0001", Value: date(1, 1, 1)}, {Key: "y2024", Value: date(2024, 2, 29)}, {Key: "y9999", Value: date(9999, 12, 31)},
			{Key: "dateMin", Value: primitive.DateTime(math.MinInt64)}, {Key: "dateMax", Value: primitive.DateTime(math.MaxInt64)},
			{Key: "ts", Value: primitive.Timestamp{T: 1700000000, I: 7}}, {Key: "tsZero", Value: primitive.Timestamp{}},
			{Key: "tsMax", Value: primitive.Timestamp{T: math.MaxUint32, I: math.MaxUint32}},
			{Key: "tsHigh", Value: primitive.Timestamp{T: 1 << 31, I: 1}},
			{Key: "re", Value: primitive.Regex{Pattern: "^a.*b$", Options: "i"}},
			{Key: "reAll", Value: primitive.Regex{Pattern: `\d+"x"\\/`, Options: "smxil"}},
			{Key: "reEmpty", Value: primitive.Regex{Pattern: "", Options: ""}},
			{Key: "reUnicode", Value: primitive.Regex{Pattern: "é+😀<&>", Options: "u"}}},
		{{Key: "_id", Value: int32(6)}, {Key: "what", Value: "nesting"},
			{Key: "emptyDoc", Value: bson.D{}}, {Key: "emptyArr", Value: bson.A{}},
			{Key: "deep", Value: bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: bson.D{{Key: "c", Value: bson.D{{Key: "d", Value: int64(-5)}, {Key: "e", Value: bson.D{}}}}}}}}}},
			{Key: "mixed", Value: bson.A{int32(1), "two", 3.5, nil, true, int64(-4), oid, date(1950, 6, 1),
				primitive.Binary{Subtype: 4, Data: uuid}, primitive.Regex{Pattern: "x", Options: "m"},
				primitive.Timestamp{T: 1, I: 2}, bson.D{{Key: "k", Value: "v"}}, bson.D{}, negZero, primitive.Binary{}}},
			{Key: "docs", Value: bson.A{bson.D{{Key: "a", Value: int32(1)}}, bson.D{{Key: "b", Value: bson.A{int32(1), "x", bson.D{{Key: "c", Value: nil}}}}},
				bson.D{}, bson.D{{Key: "a", Value: "again"}, {Key: "z", Value: bson.A{}}}}},
			{Key: "docOfArrays", Value: bson.D{{Key: "x", Value: bson.A{bson.D{{Key: "y", Value: bson.A{bson.D{{Key: "z", Value: bson.A{int32(1)}}}}}}}}, {Key: "n", Value: negZero}}},
			{Key: "keys", Value: bson.D{{Key: "", Value: int32(1)}, {Key: `q"uote`, Value: int32(2)}, {Key: `back\slash`, Value: int32(3)},
				{Key: "nl\nkey", Value: int32(4)}, {Key: "<&>", Value: int32(5)}, {Key: "é😀", Value: int32(6)}, {Key: "sp ace", Value: int32(7)}, {Key: "\u2028", Value: int32(8)}}},
			{Key: "long array", Value: func() bson.A {
				a := bson.A{}
				for i := range 40 {
					a = append(a, int32(i))
				}
				return a
			}()}},
		{{Key: "first", Value: "the _id comes second here"}, {Key: "_id", Value: int32(7)}},
		{{Key: "_id", Value: int32(8)}, {Key: "<&>", Value: "top-level names FerretDB writes unescaped"}, {Key: "é😀", Value: int32(1)}, {Key: "", Value: "empty name"}, {Key: "sp ace", Value: nil}},
		{{Key: "_id", Value: int32(9)}},
		{{Key: "_id", Value: int32(10)}, {Key: "what", Value: "same shape as 11 (one schema, parsed once)"}, {Key: "n", Value: int64(10)}},
		{{Key: "_id", Value: int32(11)}, {Key: "what", Value: "same shape as 10 (one schema, parsed once)"}, {Key: "n", Value: int64(11)}},
		sjsonRepresentative(12),
		sjsonRepresentative(13),
		{{Key: "_id", Value: int64(1) << 60}, {Key: "what", Value: "long _id"}},
		{{Key: "_id", Value: 2.5}, {Key: "what", Value: "double _id"}},
		{{Key: "_id", Value: "id-<1>&é\"\\"}, {Key: "what", Value: "string _id"}},
		{{Key: "_id", Value: oid}, {Key: "what", Value: "objectId _id"}},
		{{Key: "_id", Value: date(1960, 1, 1)}, {Key: "what", Value: "date _id"}},
		{{Key: "_id", Value: primitive.Binary{Subtype: 4, Data: uuid}}, {Key: "what", Value: "uuid _id"}},
		{{Key: "_id", Value: bson.D{{Key: "tenant", Value: "t1"}, {Key: "seq", Value: int64(42)}, {Key: "at", Value: 2.25}}}, {Key: "what", Value: "compound _id"}},
		{{Key: "_id", Value: true}, {Key: "what", Value: "bool _id"}},
		{{Key: "_id", Value: primitive.Timestamp{T: 5, I: 6}}, {Key: "what", Value: "timestamp _id"}},
	}
	return docs
}

// sjsonRepresentative is a document of about 1 KiB of the kinds of fields
// applications store (the benchmark in sandbox/sjson decodes its stored text).
func sjsonRepresentative(id int32) bson.D {
	oid, _ := primitive.ObjectIDFromHex("65a1b2c3d4e5f60718293a4b")
	return bson.D{
		{Key: "_id", Value: id},
		{Key: "owner", Value: oid},
		{Key: "name", Value: "Ada Lovelace"},
		{Key: "email", Value: "ada@example.com"},
		{Key: "active", Value: true},
		{Key: "score", Value: 1234.5},
		{Key: "visits", Value: int32(42)},
		{Key: "bytes", Value: int64(9876543210123)},
		{Key: "created", Value: primitive.DateTime(1700000000123)},
		{Key: "updated", Value: primitive.Timestamp{T: 1700000001, I: 3}},
		{Key: "session", Value: primitive.Binary{Subtype: 4, Data: []byte("0123456789abcdef")}},
		{Key: "tags", Value: bson.A{"alpha", "beta", "gamma", "delta"}},
		{Key: "address", Value: bson.D{{Key: "street", Value: "12 Analytical Engine Row"}, {Key: "city", Value: "London"}, {Key: "zip", Value: "NW1 6XE"}, {Key: "geo", Value: bson.A{51.5237, -0.1585}}}},
		{Key: "orders", Value: bson.A{
			bson.D{{Key: "sku", Value: "A-100"}, {Key: "qty", Value: int32(2)}, {Key: "price", Value: 19.99}, {Key: "at", Value: primitive.DateTime(1700000100000)}},
			bson.D{{Key: "sku", Value: "B-200"}, {Key: "qty", Value: int32(1)}, {Key: "price", Value: 5.25}, {Key: "at", Value: primitive.DateTime(1700000200000)}},
			bson.D{{Key: "sku", Value: "C-300"}, {Key: "qty", Value: int32(7)}, {Key: "price", Value: 0.5}, {Key: "at", Value: primitive.DateTime(1700000300000)}},
		}},
		{Key: "notes", Value: "Notes on the \"Analytical Engine\": it weaves algebraic patterns\njust as the Jacquard loom weaves flowers and leaves. é😀"},
		{Key: "prefs", Value: bson.D{{Key: "theme", Value: "dark"}, {Key: "lang", Value: "en-GB"}, {Key: "notify", Value: false}, {Key: "pattern", Value: primitive.Regex{Pattern: "^ada", Options: "i"}}}},
		{Key: "deleted", Value: nil},
		{Key: "version", Value: int64(3)},
	}
}

// idKey is a document's _id as a map key: its type and bytes.
func idKey(t *testing.T, doc bson.Raw) string {
	t.Helper()
	v, err := doc.LookupErr("_id")
	if err != nil {
		t.Fatalf("document without _id: %v (%x)", err, []byte(doc))
	}
	return fmt.Sprintf("%d:%x", v.Type, v.Value)
}

// storedRows returns the stored text of every row of db.coll, straight from SQLite.
func storedRows(t *testing.T, dir, db, coll string) []string {
	t.Helper()
	conn, table := shardSQL(t, dir, db, coll)
	rows, err := conn.Query(fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q`, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var texts []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return texts
}

// ferretFind returns every document of db.coll as FerretDB itself answers a find
// (straight from the shard's FerretDB, not through the front).
func ferretFind(t *testing.T, f *Front, db, coll string) ([]bson.Raw, error) {
	t.Helper()
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cur, err := n.be.client.Database(db).Collection(coll).Find(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	var docs []bson.Raw
	for cur.Next(ctx) {
		docs = append(docs, bytes.Clone(cur.Current))
	}
	return docs, cur.Err()
}

// TestSJSONDecodeMatchesFerretDB stores the corpus through the front, reads each
// row's text straight from SQLite and checks that sjson.Decode gives, byte for byte,
// the document FerretDB answers for it.
func TestSJSONDecodeMatchesFerretDB(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	ctx := context.Background()
	corpus := sjsonCorpus()
	batch := make([]any, len(corpus))
	for i, d := range corpus {
		batch[i] = d
	}
	if _, err := c.Database("app").Collection("sjson").InsertMany(ctx, batch); err != nil {
		t.Fatal(err)
	}

	oracle, err := ferretFind(t, f, "app", "sjson")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bson.Raw{}
	for _, d := range oracle {
		want[idKey(t, d)] = d
	}
	texts := storedRows(t, dir, "app", "sjson")
	if len(texts) != len(corpus) || len(oracle) != len(corpus) {
		t.Fatalf("%d documents inserted, %d rows, FerretDB finds %d", len(corpus), len(texts), len(oracle))
	}

	check := func(pass string, order []int) {
		var buf []byte
		for _, i := range order {
			text := texts[i]
			got, err := sjson.Decode(buf[:0], []byte(text))
			if err != nil {
				t.Errorf("%s: decode %s: %v", pass, text, err)
				continue
			}
			buf = got
			w, ok := want[idKey(t, got)]
			if !ok {
				t.Errorf("%s: decoded %s: FerretDB has no document with that _id\ntext %s", pass, bson.Raw(got), text)
				continue
			}
			if !bytes.Equal(got, w) {
				t.Errorf("%s: decoded differently from FerretDB\ntext     %s\ndecoded  %s\n         %x\nFerretDB %s\n         %x", pass, text, bson.Raw(got), got, w, []byte(w))
			}
		}
	}
	// In row order, then backwards (the decoder keeps the last few schemas: both
	// orders meet them hit and evicted), then each row on its own after a
	// different one.
	var forward, backward, alternate []int
	for i := range texts {
		forward = append(forward, i)
		backward = append(backward, len(texts)-1-i)
		alternate = append(alternate, i, (i+len(texts)/2)%len(texts))
	}
	check("forward", forward)
	check("backward", backward)
	check("alternate", alternate)
	t.Logf("%d rows decoded as FerretDB answers them, %d bytes of text", len(texts), func() (n int) {
		for _, s := range texts {
			n += len(s)
		}
		return n
	}())
	if t.Failed() {
		return
	}

	// The decoded documents are what a client reading the collection gets.
	cur, err := c.Database("app").Collection("sjson").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var viaFront []bson.Raw
	if err := cur.All(ctx, &viaFront); err != nil {
		t.Fatal(err)
	}
	for _, d := range viaFront {
		if w := want[idKey(t, d)]; !bytes.Equal(d, w) {
			t.Errorf("the front answers %s, FerretDB %s", d, w)
		}
	}
}

// TestSJSONDecodeFailsWhereFerretDBFails: FerretDB v1.24.2 writes a top-level field
// name into the text without escaping it (only $k and nested names are escaped). A
// name with a control character is stored but makes the text invalid JSON, and one
// with a backslash escape (`a\u0041`) is stored but reads back as another name: FerretDB
// then fails every read of the collection, and Decode refuses the row too.
func TestSJSONDecodeFailsWhereFerretDBFails(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	ctx := context.Background()
	for i, name := range []string{"nl\nname", `a\u0041`, `tab\tname`} {
		coll := fmt.Sprintf("bad%d", i)
		if _, err := c.Database("app").Collection(coll).InsertOne(ctx, bson.D{{Key: "_id", Value: int32(i)}, {Key: name, Value: int32(1)}}); err != nil {
			t.Fatalf("insert %q: %v", name, err)
		}
		if docs, err := ferretFind(t, f, "app", coll); err == nil {
			t.Fatalf("FerretDB reads the document with field %q: %v", name, docs)
		}
		for _, text := range storedRows(t, dir, "app", coll) {
			if got, err := sjson.Decode(nil, []byte(text)); err == nil {
				t.Errorf("Decode(%s) = %s, want an error as FerretDB's", text, bson.Raw(got))
			}
		}
	}
}

// TestSJSONFerretDBStoresNoNaNOrInfinity: the text has no form for NaN or ±Inf
// (encoding/json cannot write them); FerretDB refuses them before they reach it, so a
// decoder never meets them.
func TestSJSONFerretDBStoresNoNaNOrInfinity(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("special")
	for i, v := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
		_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: int32(i)}, {Key: "v", Value: v}})
		if err == nil {
			t.Errorf("FerretDB stored %v", v)
		}
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil && !mongo.IsNetworkError(err) {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d documents stored", n)
	}
}

// TestSJSONEncodeMatchesFerretDB stores the corpus through the front and checks that
// sjson.Encode writes, byte for byte, the text FerretDB wrote for each document, or
// refuses exactly the documents FerretDB stores as other documents (-0.0, strings
// that are not UTF-8, an _id not first); then stores the documents FerretDB reads
// back, which Encode must all write as FerretDB does. Documents FerretDB refuses or
// alters are refused by Encode too.
func TestSJSONEncodeMatchesFerretDB(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	ctx := context.Background()

	// store inserts docs into coll and returns FerretDB's texts by _id (decoded, as
	// the corpus has no two _ids of one text) and the documents FerretDB reads back.
	store := func(coll string, docs []any) (map[string]string, map[string]bson.Raw) {
		if _, err := c.Database("app").Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
		back, err := ferretFind(t, f, "app", coll)
		if err != nil {
			t.Fatal(err)
		}
		readBack := map[string]bson.Raw{}
		for _, d := range back {
			readBack[idKey(t, d)] = d
		}
		texts := map[string]string{}
		for _, text := range storedRows(t, dir, "app", coll) {
			d, err := sjson.Decode(nil, []byte(text))
			if err != nil {
				t.Fatalf("decode %s: %v", text, err)
			}
			texts[idKey(t, d)] = text
		}
		if len(texts) != len(docs) || len(readBack) != len(docs) {
			t.Fatalf("%d documents inserted, %d rows, FerretDB reads %d", len(docs), len(texts), len(readBack))
		}
		return texts, readBack
	}

	corpus := sjsonCorpus()
	batch := make([]any, len(corpus))
	for i, d := range corpus {
		batch[i] = d
	}
	texts, readBack := store("sjson", batch)
	refused := 0
	var again []any
	for _, d := range corpus {
		doc, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		k := idKey(t, doc)
		got, err := sjson.Encode(nil, doc)
		switch {
		case err != nil && bytes.Equal(readBack[k], doc):
			t.Errorf("Encode refuses %s (%v), which FerretDB stores as is", bson.Raw(doc), err)
		case err != nil:
			refused++
		case string(got) != texts[k]:
			t.Errorf("Encode\n got %s\nFerretDB %s", got, texts[k])
		case !bytes.Equal(readBack[k], doc):
			t.Errorf("Encode writes %s for %s, which FerretDB reads back as %s", got, bson.Raw(doc), readBack[k])
		}
		again = append(again, readBack[k])
	}
	// -0.0 (documents 1 and 6), invalid UTF-8 (3), an _id second (7).
	if refused != 4 {
		t.Errorf("Encode refused %d documents of the corpus, want 4", refused)
	}
	texts2, readBack2 := store("sjson2", again)
	for _, d := range again {
		doc := d.(bson.Raw)
		k := idKey(t, doc)
		got, err := sjson.Encode(nil, doc)
		if err != nil || string(got) != texts2[k] || !bytes.Equal(readBack2[k], doc) {
			t.Errorf("document FerretDB read back %s: Encode = %s, %v\nFerretDB wrote %s and reads %s", doc, got, err, texts2[k], readBack2[k])
		}
	}

	// What Encode refuses beyond the corpus: FerretDB refuses it or reads back
	// another document.
	negZero := math.Copysign(0, -1)
	for i, d := range []bson.D{
		{{Key: "v", Value: bson.A{bson.A{int32(1)}}}},
		{{Key: "v", Value: primitive.NewDecimal128(0, 1)}},
		{{Key: "v", Value: primitive.MinKey{}}},
		{{Key: "v", Value: bson.D{{Key: "$w", Value: int32(1)}}}},
		{{Key: "v", Value: bson.A{bson.D{{Key: "a.b", Value: int32(1)}}}}},
		{{Key: "v", Value: bson.D{{Key: "w", Value: int32(1)}, {Key: "_id", Value: int32(2)}}}},
		{{Key: "v", Value: bson.A{negZero, bson.D{{Key: "z", Value: negZero}}}}},
		{{Key: "v", Value: primitive.Regex{Pattern: "a\xffb"}}},
	} {
		d = append(bson.D{{Key: "_id", Value: int32(100 + i)}}, d...)
		doc, _ := bson.Marshal(d)
		if got, err := sjson.Encode(nil, doc); err == nil {
			t.Errorf("Encode(%s) = %s", bson.Raw(doc), got)
		}
		coll := fmt.Sprintf("refused%d", i)
		if _, err := c.Database("app").Collection(coll).InsertOne(ctx, d); err != nil {
			continue
		}
		back, err := ferretFind(t, f, "app", coll)
		if err == nil && len(back) == 1 && bytes.Equal(back[0], doc) {
			t.Errorf("FerretDB stores %s as is; Encode refuses it", bson.Raw(doc))
		}
	}
}

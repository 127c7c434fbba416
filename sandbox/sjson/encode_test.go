package sjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// TestEncodeFerretDBTexts: Encode of the document each stored text decodes to is that
// text, byte for byte (the texts are FerretDB's; sandbox/shard's
// TestSJSONEncodeMatchesFerretDB checks the same against a live FerretDB).
func TestEncodeFerretDBTexts(t *testing.T) {
	texts := ferretTexts(t)
	if len(texts) == 0 {
		t.Fatal("no texts")
	}
	for _, text := range texts {
		doc, err := Decode(nil, text)
		if err != nil {
			t.Fatalf("decode %s: %v", text, err)
		}
		got, err := Encode(nil, doc)
		if err != nil {
			t.Errorf("encode %s: %v", bson.Raw(doc), err)
			continue
		}
		// A text with \ufffd escapes was a string of invalid UTF-8, which FerretDB
		// wrote with escapes and reads back as U+FFFD: the document read back is
		// another document, whose own text has U+FFFD as is.
		if !bytes.Equal(got, text) && !(bytes.Contains(text, []byte(`\ufffd`)) &&
			bytes.Equal(bytes.ReplaceAll(text, []byte(`\ufffd`), []byte("\ufffd")), got)) {
			t.Errorf("encoded\n got %s\nwant %s", got, text)
		}
	}
}

// TestEncodeStringsAndNumbersAsEncodingJSON: FerretDB writes strings, names and
// doubles with encoding/json; Encode's writers must give the same bytes.
func TestEncodeStringsAndNumbersAsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "é", "😀", "\u2028", "\u2029", "<", ">", "&", `"`, `\`, "/", "\x00", "\x1f", "\x7f", "\b", "\f", "\n", "\r", "\t", "\ufffd", "中"}
	for range 20000 {
		var b strings.Builder
		for range r.IntN(12) {
			if r.IntN(4) == 0 {
				b.WriteByte(byte(r.IntN(128)))
			} else {
				b.WriteString(alphabet[r.IntN(len(alphabet))])
			}
		}
		s := b.String()
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("string %q: got %s, encoding/json %s", s, got, want)
		}
	}
	floats := []float64{0, 1, -1, 0.1, 1e-6, 1e-7, 9.99999e-7, 1e20, 1e21, 123456789e13, 1e300, -1e-300, 5e-324,
		math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, 1<<53 + 2, 1 << 63, 2.5e-8, 1.5e-10, 1e100, 1e-100}
	for range 20000 {
		f := math.Float64frombits(r.Uint64())
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			floats = append(floats, f)
		}
		floats = append(floats, float64(r.Int64N(1<<60))/float64(int64(1)<<r.IntN(62)))
	}
	for _, f := range floats {
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f); !bytes.Equal(got, want) {
			t.Fatalf("double %v: got %s, encoding/json %s", f, got, want)
		}
	}
}

// TestEncodeRefuses: every document FerretDB refuses, or stores as another document,
// is an *EncodeError naming the field, and dst is left as it was.
func TestEncodeRefuses(t *testing.T) {
	cases := map[string]bson.D{
		"NaN":                {{Key: "_id", Value: 1}, {Key: "v", Value: math.NaN()}},
		"+Inf":               {{Key: "_id", Value: 1}, {Key: "v", Value: math.Inf(1)}},
		"-Inf in an array":   {{Key: "_id", Value: 1}, {Key: "v", Value: bson.A{1, math.Inf(-1)}}},
		"-0.0":               {{Key: "_id", Value: 1}, {Key: "v", Value: math.Copysign(0, -1)}},
		"-0.0 nested":        {{Key: "_id", Value: 1}, {Key: "v", Value: bson.D{{Key: "w", Value: bson.A{math.Copysign(0, -1)}}}}},
		"array in array":     {{Key: "_id", Value: 1}, {Key: "v", Value: bson.A{bson.A{}}}},
		"decimal128":         {{Key: "_id", Value: 1}, {Key: "v", Value: primitive.NewDecimal128(0, 1)}},
		"minKey":             {{Key: "_id", Value: 1}, {Key: "v", Value: primitive.MinKey{}}},
		"maxKey":             {{Key: "_id", Value: 1}, {Key: "v", Value: primitive.MaxKey{}}},
		"undefined":          {{Key: "_id", Value: 1}, {Key: "v", Value: primitive.Undefined{}}},
		"javascript":         {{Key: "_id", Value: 1}, {Key: "v", Value: primitive.JavaScript("x")}},
		"symbol":             {{Key: "_id", Value: 1}, {Key: "v", Value: primitive.Symbol("x")}},
		"dollar name":        {{Key: "_id", Value: 1}, {Key: "$v", Value: 1}},
		"nested dollar name": {{Key: "_id", Value: 1}, {Key: "v", Value: bson.D{{Key: "$w", Value: 1}}}},
		"dotted name":        {{Key: "_id", Value: 1}, {Key: "v", Value: bson.A{bson.D{{Key: "a.b", Value: 1}}}}},
		"duplicate":          {{Key: "_id", Value: 1}, {Key: "v", Value: bson.D{{Key: "w", Value: 1}, {Key: "w", Value: 2}}}},
		"bad UTF-8 name":     {{Key: "_id", Value: 1}, {Key: "v\xff", Value: 1}},
		"bad UTF-8 string":   {{Key: "_id", Value: 1}, {Key: "v", Value: "a\xffb"}},
		"bad UTF-8 regex":    {{Key: "_id", Value: 1}, {Key: "v", Value: primitive.Regex{Pattern: "\xff"}}},
		"no _id":             {{Key: "v", Value: 1}},
		"_id second":         {{Key: "v", Value: 1}, {Key: "_id", Value: 1}},
		"nested _id second":  {{Key: "_id", Value: 1}, {Key: "v", Value: bson.D{{Key: "w", Value: 1}, {Key: "_id", Value: 2}}}},
		"array _id":          {{Key: "_id", Value: bson.A{1}}},
		"regex _id":          {{Key: "_id", Value: primitive.Regex{Pattern: "x"}}},
		"quote in top name":  {{Key: "_id", Value: 1}, {Key: `a"b`, Value: 1}},
		"newline top name":   {{Key: "_id", Value: 1}, {Key: "a\nb", Value: 1}},
		"backslash top name": {{Key: "_id", Value: 1}, {Key: `a\u0041`, Value: 1}},
	}
	for name, d := range cases {
		doc, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		dst := []byte("keep")
		got, err := Encode(dst, doc)
		var e *EncodeError
		if !errors.As(err, &e) || string(got) != "keep" {
			t.Errorf("%s: Encode = %q, %v; want an *EncodeError and dst as it was", name, got, err)
		}
	}
	// Nested names are escaped, so there they are fine; '<', '&' and U+2028 are fine
	// at the top level too (written raw, read back as is).
	ok, _ := bson.Marshal(bson.D{{Key: "_id", Value: 1}, {Key: "<&>\u2028", Value: bson.D{{Key: "a\"\n\\", Value: 1}}}})
	text, err := Encode(nil, ok)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := Decode(nil, text); err != nil || !bytes.Equal(back, ok) {
		t.Errorf("Decode(Encode(%s)) = %s, %v", bson.Raw(ok), bson.Raw(back), err)
	}
}

// TestEncodeDecodeRoundTrip: random documents of every type FerretDB stores encode
// to texts encoding/json reads (valid JSON) and Decode gives back byte for byte.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		d := bson.D{{Key: "_id", Value: randValue(r, 0, false, true)}}
		for j := range r.IntN(8) {
			d = append(d, bson.E{Key: randName(r, j, true), Value: randValue(r, 0, false, false)})
		}
		doc, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		text, err := Encode([]byte("prefix"), doc)
		if err != nil {
			t.Fatalf("document %d %s: %v", i, bson.Raw(doc), err)
		}
		text = text[len("prefix"):]
		if !json.Valid(text) {
			t.Fatalf("document %d: invalid JSON %s", i, text)
		}
		back, err := Decode(nil, text)
		if err != nil || !bytes.Equal(back, doc) {
			t.Fatalf("document %d: Decode(Encode(%s)) = %s, %v\ntext %s", i, bson.Raw(doc), bson.Raw(back), err, text)
		}
	}
}

func randName(r *rand.Rand, j int, top bool) string {
	names := []string{"a", "b", "é😀", "<&>", "sp ace", "", "x\u2028"}
	if !top {
		names = append(names, `q"uote`, `back\slash`, "nl\nname")
	}
	return names[r.IntN(len(names))] + strconv.Itoa(j)
}

func randValue(r *rand.Rand, depth int, inArray, id bool) any {
	n := 14
	if depth > 3 {
		n = 12 // no more nesting
	}
	switch k := r.IntN(n); k {
	case 0:
		return r.Int32() - r.Int32()
	case 1:
		return int64(r.Uint64())
	case 2:
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) || f == 0 {
			return 0.5
		}
		return f
	case 3:
		return []string{"", "x", "é😀\u2028<&>\"\\\n\x00", strings.Repeat("ab", 50)}[r.IntN(4)]
	case 4:
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return primitive.Binary{Subtype: []byte{0, 1, 3, 4, 5, 0x80}[r.IntN(6)], Data: b}
	case 5:
		var oid primitive.ObjectID
		for i := range oid {
			oid[i] = byte(r.Uint32())
		}
		return oid
	case 6:
		return r.IntN(2) == 0
	case 7:
		return primitive.DateTime(r.Int64N(1<<50) - 1<<49)
	case 8:
		return nil
	case 9:
		if id {
			return "regex"
		}
		return primitive.Regex{Pattern: "^a\"/\\d+é", Options: "im"}
	case 10:
		return primitive.Timestamp{T: r.Uint32(), I: r.Uint32()}
	case 11:
		return float64(r.Int32())
	case 12:
		d := bson.D{}
		for j := range r.IntN(4) {
			d = append(d, bson.E{Key: randName(r, j, false), Value: randValue(r, depth+1, false, false)})
		}
		return d
	default:
		if inArray || id {
			return bson.D{}
		}
		a := bson.A{}
		for range r.IntN(5) {
			a = append(a, randValue(r, depth+1, true, false))
		}
		return a
	}
}

// BenchmarkEncode encodes the representative document.
func BenchmarkEncode(b *testing.B) {
	doc, err := Decode(nil, representative(b))
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for range b.N {
		if buf, err = Encode(buf[:0], doc); err != nil {
			b.Fatal(err)
		}
	}
}

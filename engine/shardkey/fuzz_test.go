package shardkey

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// entropy is what the value generator draws from: math/rand for the
// deterministic test, the fuzzer's bytes for the fuzz target.
type entropy interface {
	IntN(n int) int
	Uint64() uint64
}

// byteEntropy reads choices from fuzz input; once exhausted it yields zeros, so
// every input generates finite values.
type byteEntropy struct{ b []byte }

func (e *byteEntropy) next() byte {
	if len(e.b) == 0 {
		return 0
	}
	c := e.b[0]
	e.b = e.b[1:]
	return c
}

func (e *byteEntropy) IntN(n int) int { return int(e.next()) % n }

func (e *byteEntropy) Uint64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = e.next()
	}
	return binary.LittleEndian.Uint64(b[:])
}

var genDecimals = func() []bsoncore.Value {
	var out []bsoncore.Value
	for _, s := range []string{"0", "-0", "1", "1.0", "1.5", "0.1", "NaN", "-NaN", "Infinity", "-Infinity",
		"1E+2", "100", "-2.5", "9223372036854775808", "1E-400", "1E+400", "0.1000000000000000055511151231257827"} {
		d, err := primitive.ParseDecimal128(s)
		if err != nil {
			panic(err)
		}
		out = append(out, vDecimalBits(d.GetBytes()))
	}
	return out
}()

// genValue builds a random, well-formed BSON value of any type from small
// alphabets, so that equal and nearly equal values are common.
func genValue(e entropy, depth int) bsoncore.Value {
	oid := func() []byte {
		b := make([]byte, 12)
		b[11] = byte(e.IntN(3))
		b[0] = byte(e.IntN(2)) * 0xff
		return b
	}
	str := func() string { return []string{"", "a", "b", "ab", "a\x00", "\xff"}[e.IntN(6)] }
	kind := e.IntN(22)
	if depth > 2 && (kind == 10 || kind == 11 || kind == 20) {
		kind = 4
	}
	switch kind {
	case 0:
		return vEmpty(bsontype.MinKey)
	case 1:
		return vEmpty(bsontype.MaxKey)
	case 2:
		return vEmpty(bsontype.Null)
	case 3:
		return vEmpty(bsontype.Undefined)
	case 4:
		return vInt32([]int32{-1, 0, 1, 2, math.MinInt32, math.MaxInt32}[e.IntN(6)])
	case 5:
		return vInt64([]int64{0, 1, -1, 1 << 53, 1<<53 + 1, math.MinInt64, math.MaxInt64, int64(e.Uint64())}[e.IntN(8)])
	case 6:
		f := []float64{0, math.Copysign(0, -1), 1, 1.5, -1, math.NaN(), math.Inf(1), math.Inf(-1), 1 << 53,
			0x1p63, 0.1, math.MaxFloat64, 5e-324, math.Float64frombits(e.Uint64())}
		return vDouble(f[e.IntN(len(f))])
	case 7:
		return genDecimals[e.IntN(len(genDecimals))]
	case 8:
		return vString(str())
	case 9:
		return vSymbol(str())
	case 10, 11, 20:
		n := e.IntN(4)
		doc, idx := []byte{0, 0, 0, 0}, 0
		for i := range n {
			v := genValue(e, depth+1)
			name := []string{"a", "b", ""}[e.IntN(3)]
			if kind == 11 {
				name = string(rune('0' + i))
			}
			doc = append(doc, byte(v.Type))
			doc = append(doc, name...)
			doc = append(doc, 0)
			doc = append(doc, v.Data...)
		}
		doc = append(doc, 0)
		binary.LittleEndian.PutUint32(doc[idx:], uint32(len(doc)))
		switch kind {
		case 10:
			return bsoncore.Value{Type: bsontype.EmbeddedDocument, Data: doc}
		case 11:
			return bsoncore.Value{Type: bsontype.Array, Data: doc}
		}
		return vCodeWithScope([]string{"a", "b"}[e.IntN(2)], doc)
	case 12:
		b := make([]byte, e.IntN(3))
		for i := range b {
			b[i] = byte(e.IntN(2)) * 0xff
		}
		return vBinary([]byte{0, 1, 128}[e.IntN(3)], b)
	case 13:
		return bsoncore.Value{Type: bsontype.ObjectID, Data: oid()}
	case 14:
		return vBool(e.IntN(2) == 1)
	case 15:
		return vDate([]int64{math.MinInt64, -1, 0, 1, math.MaxInt64}[e.IntN(5)])
	case 16:
		ts := [][2]uint32{{0, 0}, {1, 0}, {0, 1}, {0x80000000, 0}, {math.MaxUint32, math.MaxUint32}}[e.IntN(5)]
		return vTimestamp(ts[0], ts[1])
	case 17:
		return vRegex([]string{"", "a", "b"}[e.IntN(3)], []string{"", "i"}[e.IntN(2)])
	case 18:
		var o primitive.ObjectID
		copy(o[:], oid())
		return bsoncore.Value{Type: bsontype.DBPointer, Data: bsoncore.AppendDBPointer(nil, []string{"a", "b", "aa"}[e.IntN(3)], o)}
	case 19:
		return vCode(str())
	default:
		return vDecimalBits(e.Uint64(), e.Uint64())
	}
}

// checkTotalOrder reports a violation of reflexivity, antisymmetry or
// transitivity among three values.
func checkTotalOrder(t *testing.T, vs [3]bsoncore.Value) {
	t.Helper()
	var c [3][3]int
	for i := range vs {
		for j := range vs {
			c[i][j] = Compare(vs[i], vs[j])
		}
	}
	for i := range vs {
		if c[i][i] != 0 {
			t.Fatalf("Compare(%v, itself) = %d", vs[i], c[i][i])
		}
		for j := range vs {
			if c[i][j] != -c[j][i] {
				t.Fatalf("not antisymmetric: Compare(%v, %v) = %d but reversed = %d", vs[i], vs[j], c[i][j], c[j][i])
			}
			for k := range vs {
				if c[i][j] <= 0 && c[j][k] <= 0 {
					want := 0
					if c[i][j] < 0 || c[j][k] < 0 {
						want = -1
					}
					if c[i][k] != want {
						t.Fatalf("not transitive: %v <= %v <= %v (%d, %d) but Compare(first, last) = %d",
							vs[i], vs[j], vs[k], c[i][j], c[j][k], c[i][k])
					}
				}
			}
		}
	}
}

// TestCompareIsATotalOrder runs the fuzz property over a fixed stream of random
// values, so plain `go test` exercises it.
func TestCompareIsATotalOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 30000 {
		checkTotalOrder(t, [3]bsoncore.Value{genValue(r, 0), genValue(r, 0), genValue(r, 0)})
	}
}

// FuzzCompare checks that Compare is a total order on generated values, and
// that comparison, hashing and extraction survive arbitrary bytes.
//
//	go test -run '^$' -fuzz FuzzCompare -fuzztime 60s ./engine/shardkey
func FuzzCompare(f *testing.F) {
	f.Add([]byte{10, 3, 1, 6, 4, 11, 2, 5, 5, 6}, byte(3), []byte{5, 0, 0, 0, 0})
	f.Add([]byte{7, 1, 7, 9, 6, 5, 6, 13}, byte(19), []byte{1, 2, 3})
	f.Add([]byte{20, 3, 8, 1, 7, 2}, byte(15), []byte{12, 0, 0, 0, 2, 0, 0, 0, 'a', 0, 5, 0, 0, 0, 0})
	p, err := NewPattern(bson.D{{Key: "a.b", Value: 1}, {Key: "h", Value: "hashed"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, choices []byte, typ byte, raw []byte) {
		e := &byteEntropy{choices}
		checkTotalOrder(t, [3]bsoncore.Value{genValue(e, 0), genValue(e, 0), genValue(e, 0)})

		a := bsoncore.Value{Type: bsontype.Type(typ), Data: raw}
		for _, b := range []bsoncore.Value{genValue(e, 0), {Type: bsontype.Type(typ), Data: raw[len(raw)/2:]}} {
			if Compare(a, b) != -Compare(b, a) {
				t.Fatalf("not antisymmetric on raw bytes: %v %x vs %v %x", a.Type, a.Data, b.Type, b.Data)
			}
		}
		Hash64(a)
		_, _ = p.Extract(raw)
		_, _ = p.ExtractDocumentKey(raw)
		CompareKeys(Key(raw), Key(choices))
	})
}

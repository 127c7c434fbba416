package shardkey

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// exact is a number as an oracle sees it: NaN, ±Inf, or an exact rational.
type exact struct {
	nan bool
	inf int
	r   *big.Rat
}

func exactOf(t *testing.T, v bsoncore.Value) exact {
	t.Helper()
	switch v.Type {
	case bsontype.Int32:
		return exact{r: new(big.Rat).SetInt64(int64(v.Int32()))}
	case bsontype.Int64:
		return exact{r: new(big.Rat).SetInt64(v.Int64())}
	case bsontype.Double:
		f := v.Double()
		switch {
		case math.IsNaN(f):
			return exact{nan: true}
		case math.IsInf(f, 0):
			return exact{inf: int(math.Copysign(1, f))}
		}
		return exact{r: new(big.Rat).SetFloat64(f)}
	}
	d := v.Decimal128()
	switch {
	case d.IsNaN():
		return exact{nan: true}
	case d.IsInf() != 0:
		return exact{inf: d.IsInf()}
	}
	coef, exp, err := d.BigInt()
	if err != nil {
		t.Fatalf("decimal %v: %v", d, err)
	}
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil)
	r := new(big.Rat).SetInt(coef)
	if exp >= 0 {
		return exact{r: r.Mul(r, new(big.Rat).SetInt(p))}
	}
	return exact{r: r.Quo(r, new(big.Rat).SetInt(p))}
}

func (a exact) cmp(b exact) int {
	rank := func(x exact) int {
		switch {
		case x.nan:
			return -3
		case x.inf != 0:
			return 2 * x.inf
		}
		return 0
	}
	if ra, rb := rank(a), rank(b); ra != 0 || rb != 0 {
		return cmp3(ra, rb)
	}
	return a.r.Cmp(b.r)
}

// randomNumber draws from all four numeric types, favouring the edges where
// conversions go wrong and values close to each other across types.
func randomNumber(t *testing.T, r *rand.Rand) bsoncore.Value {
	specials := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1.5, 0.1, 1 << 53, 1<<53 + 2, 0x1p63, -0x1p63,
		math.MaxFloat64, -math.MaxFloat64, 5e-324, math.Inf(1), math.Inf(-1), nan, 2.5, -2.5}
	switch r.IntN(8) {
	case 0:
		return vInt32(int32(r.Uint32()))
	case 1:
		ints := []int64{0, 1, -1, 1 << 53, 1<<53 + 1, -(1<<53 + 1), math.MaxInt64, math.MinInt64, int64(r.Uint64())}
		return vInt64(ints[r.IntN(len(ints))])
	case 2:
		return vDouble(specials[r.IntN(len(specials))])
	case 3:
		return vDouble(math.Float64frombits(r.Uint64()))
	case 4:
		// A double's value rounded to 1-34 significant digits, as a decimal:
		// the closest decimal/double pairs there are.
		f := specials[r.IntN(len(specials))]
		if r.IntN(2) == 0 {
			f = math.Float64frombits(r.Uint64())
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = r.NormFloat64()
		}
		return vDecimal(t, strconv.FormatFloat(f, 'e', r.IntN(34), 64))
	case 5:
		// A random coefficient and a modest exponent.
		digits := make([]byte, 1+r.IntN(34))
		for i := range digits {
			digits[i] = byte('0' + r.IntN(10))
		}
		c, _ := new(big.Int).SetString(string(digits), 10)
		if r.IntN(2) == 0 {
			c.Neg(c)
		}
		d, ok := primitive.ParseDecimal128FromBigInt(c, r.IntN(80)-40)
		if !ok {
			return vInt32(0)
		}
		return vDecimalBits(d.GetBytes())
	case 6:
		decs := []string{"0", "-0", "1", "1.0", "0.1", "NaN", "-NaN", "Infinity", "-Infinity", "1E+2",
			"9223372036854775807", "9223372036854775808", "-9223372036854775808", "1E-400", "1E+400",
			"9007199254740993", "0.1000000000000000055511151231257827", "1E-6176", "9.999999999999999999999999999999999E+6144"}
		return vDecimal(t, decs[r.IntN(len(decs))])
	default:
		// Any bit pattern, canonical or not (non-canonical ones are zero).
		return vDecimalBits(r.Uint64(), r.Uint64())
	}
}

// TestCompareNumbersMatchesExactArithmetic compares random numbers of all four
// types against math/big: the order must be the exact numeric order, with NaN
// lowest and equal to NaN.
func TestCompareNumbersMatchesExactArithmetic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 40000
	for range n {
		a, b := randomNumber(t, r), randomNumber(t, r)
		if a.Type == bsontype.Decimal128 && decimalIsNonCanonical(a) || b.Type == bsontype.Decimal128 && decimalIsNonCanonical(b) {
			continue // primitive.Decimal128 does not read them as zero
		}
		want := exactOf(t, a).cmp(exactOf(t, b))
		if got := Compare(a, b); got != want {
			t.Fatalf("Compare(%v %v, %v %v) = %d, want %d", a.Type, a, b.Type, b, got, want)
		}
	}
}

func decimalIsNonCanonical(v bsoncore.Value) bool {
	d := readDecimal(v.Data)
	hi := le64(v.Data[8:])
	return d.form == decFinite && d.coef.isZero() && (hi>>61)&3 == 3 ||
		d.form == decFinite && d.coef.isZero() && (u128{hi & (1<<49 - 1), le64(v.Data)}).cmp(maxCoefficient) > 0
}

// TestDecimalSquashRoundsHalfToEven checks hashNumber against math/big for
// decimals inside the int64 range: Decimal128::toLong rounds half to even.
func TestDecimalSquashRoundsHalfToEven(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		v := randomNumber(t, r)
		if v.Type != bsontype.Decimal128 || decimalIsNonCanonical(v) {
			continue
		}
		e := exactOf(t, v)
		if e.nan || e.inf != 0 {
			continue
		}
		lo, hi := new(big.Rat).SetInt64(math.MinInt64), new(big.Rat).SetInt64(math.MaxInt64)
		var want int64
		switch {
		case e.r.Cmp(hi) > 0:
			want = math.MaxInt64
		case e.r.Cmp(lo) < 0:
			want = math.MinInt64
		default:
			want = roundHalfEvenBig(e.r)
		}
		if got := hashNumber(readNumber(v.Type, v.Data)); got != want {
			t.Fatalf("squash %v = %d, want %d", v, got, want)
		}
	}
}

func roundHalfEvenBig(x *big.Rat) int64 {
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int)) // truncates toward zero
	twice := new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2))
	switch c := twice.Cmp(x.Denom()); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		if x.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q.Int64()
}

func TestReadDecimalDecodesBID(t *testing.T) {
	cases := []struct {
		in   string
		coef uint64
		exp  int
		neg  bool
	}{
		{"1", 1, 0, false},
		{"-1.5", 15, -1, true},
		{"1.000", 1000, -3, false},
		{"1E+6111", 1, 6111, false},
		{"1E-6176", 1, -6176, false},
	}
	for _, c := range cases {
		d := readDecimal(vDecimal(t, c.in).Data)
		if d.form != decFinite || d.coef != (u128{0, c.coef}) || d.exp != c.exp || d.neg != c.neg {
			t.Errorf("readDecimal(%s) = %+v, want coef %d exp %d neg %v", c.in, d, c.coef, c.exp, c.neg)
		}
	}
	if d := readDecimal(vDecimal(t, "9999999999999999999999999999999999").Data); d.coef != maxCoefficient {
		t.Errorf("largest coefficient decodes as %+v, want %+v", d.coef, maxCoefficient)
	}
	if want, _ := pow10u128[34].mul64(1); (u128{want.hi, want.lo - 1}) != maxCoefficient {
		t.Errorf("maxCoefficient %+v is not 10^34-1 (%+v)", maxCoefficient, want)
	}
}

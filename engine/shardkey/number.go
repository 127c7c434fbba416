package shardkey

import (
	"math"
	"math/big"
	"math/bits"

	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// Numbers of the four BSON numeric types compare by exact numeric value, as
// mongo/base/compare_numbers.h does: NaN (double or decimal, any sign or
// payload) is equal to NaN and below every other number, -0 equals 0, infinities
// of both types are equal. Decimal128 against double is exact for every pair of
// values: close values whose exact forms do not fit in 128 bits are settled with
// math/big (and allocate), everything else with 128-bit integer arithmetic.

type numKind uint8

const (
	numInt numKind = iota
	numDouble
	numDecimal
)

// number is a decoded Int32, Int64, Double or Decimal128.
type number struct {
	kind numKind
	i    int64
	f    float64
	d    decimal
}

func isNumber(t bsontype.Type) bool {
	switch t {
	case bsontype.Int32, bsontype.Int64, bsontype.Double, bsontype.Decimal128:
		return true
	}
	return false
}

func readNumber(t bsontype.Type, v []byte) number {
	switch t {
	case bsontype.Int32:
		return number{kind: numInt, i: int64(int32(le32(v)))}
	case bsontype.Int64:
		return number{kind: numInt, i: int64(le64(v))}
	case bsontype.Double:
		return number{kind: numDouble, f: math.Float64frombits(le64(v))}
	default:
		return number{kind: numDecimal, d: readDecimal(v)}
	}
}

func compareNumbers(a, b number) int {
	switch {
	case a.kind == numInt && b.kind == numInt:
		return cmp3(a.i, b.i)
	case a.kind == numInt && b.kind == numDouble:
		return compareLongToDouble(a.i, b.f)
	case a.kind == numDouble && b.kind == numInt:
		return -compareLongToDouble(b.i, a.f)
	case a.kind == numDouble && b.kind == numDouble:
		return compareDoubles(a.f, b.f)
	case a.kind == numDecimal && b.kind == numDecimal:
		return compareDecimals(a.d, b.d)
	case a.kind == numDecimal && b.kind == numInt:
		return compareDecimals(a.d, decimalFromInt64(b.i))
	case a.kind == numInt && b.kind == numDecimal:
		return compareDecimals(decimalFromInt64(a.i), b.d)
	case a.kind == numDecimal:
		return compareDecimalToDouble(a.d, b.f)
	default:
		return -compareDecimalToDouble(b.d, a.f)
	}
}

func cmp3[T int | int64 | uint64 | int8](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareDoubles: NaN equals NaN and sorts below everything; -0 == 0.
func compareDoubles(a, b float64) int {
	switch {
	case a == b:
		return 0
	case a < b:
		return -1
	case a > b:
		return 1
	}
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	}
	return 1
}

// compareLongToDouble follows compare_numbers.h: integers within ±2^53 convert
// exactly; beyond that, doubles are integral, so truncation is exact.
func compareLongToDouble(i int64, f float64) int {
	if math.IsNaN(f) {
		return 1
	}
	const precise = 1 << 53
	if i <= precise && i >= -precise {
		return compareDoubles(float64(i), f)
	}
	if f >= 0x1p63 {
		return -1
	}
	if f < -0x1p63 {
		return 1
	}
	return cmp3(i, int64(f))
}

// hashNumber is BSONElement::safeNumberLongForHash: the 64-bit integer a number
// is squashed to before hashing. Doubles truncate toward zero, NaN is 0,
// out-of-range values clamp, except that the double 2^63 becomes -2^63 (what the
// old undefined cast did on x86, kept for on-disk compatibility). Decimals round
// half to even (Decimal128::toLong's default) after the same clamping.
func hashNumber(n number) int64 {
	switch n.kind {
	case numInt:
		return n.i
	case numDouble:
		f := n.f
		switch {
		case math.IsNaN(f):
			return 0
		case f == 0x1p63:
			return math.MinInt64
		case !(f < 0x1p63):
			return math.MaxInt64
		case f < -0x1p63:
			return math.MinInt64
		}
		return int64(f)
	default:
		d := n.d
		switch {
		case d.form == decNaN:
			return 0
		case compareDecimals(d, decimalFromInt64(math.MaxInt64)) > 0:
			return math.MaxInt64
		case compareDecimals(d, decimalFromInt64(math.MinInt64)) < 0:
			return math.MinInt64
		}
		return d.roundHalfEven()
	}
}

// u128 is an unsigned 128-bit integer: a Decimal128 coefficient, or an exact
// product in a decimal/double comparison.
type u128 struct{ hi, lo uint64 }

func (a u128) isZero() bool { return a.hi == 0 && a.lo == 0 }

func (a u128) cmp(b u128) int {
	if a.hi != b.hi {
		return cmp3(a.hi, b.hi)
	}
	return cmp3(a.lo, b.lo)
}

func (a u128) bitLen() int {
	if a.hi != 0 {
		return 64 + bits.Len64(a.hi)
	}
	return bits.Len64(a.lo)
}

// mul64 returns a*m and whether it fit in 128 bits.
func (a u128) mul64(m uint64) (u128, bool) {
	h1, lo := bits.Mul64(a.lo, m)
	h2, l2 := bits.Mul64(a.hi, m)
	hi, carry := bits.Add64(h1, l2, 0)
	return u128{hi, lo}, h2 == 0 && carry == 0
}

// mulPow10 returns a*10^n and whether it fit in 128 bits.
func (a u128) mulPow10(n int) (u128, bool) {
	ok := true
	for n > 0 && ok {
		k := min(n, 19)
		a, ok = a.mul64(pow10u64[k])
		n -= k
	}
	return a, ok
}

// lsh returns a<<n and whether no bit was lost.
func (a u128) lsh(n int) (u128, bool) {
	switch {
	case n == 0 || a.isZero():
		return a, true
	case a.bitLen()+n > 128:
		return u128{}, false
	case n >= 64:
		return u128{a.lo << (n - 64), 0}, true
	}
	return u128{a.hi<<n | a.lo>>(64-n), a.lo << n}, true
}

// divmod10 returns a/10 and a%10.
func (a u128) divmod10() (u128, uint64) {
	qhi, r := a.hi/10, a.hi%10
	qlo, r := bits.Div64(r, a.lo, 10)
	return u128{qhi, qlo}, r
}

func (a u128) big() *big.Int {
	b := new(big.Int).SetUint64(a.hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(a.lo))
}

var (
	pow10u64  [20]uint64
	pow10u128 [39]u128
)

func init() {
	p := uint64(1)
	for i := range pow10u64 {
		pow10u64[i] = p
		p *= 10
	}
	q := u128{0, 1}
	for i := range pow10u128 {
		pow10u128[i] = q
		q, _ = q.mul64(10)
	}
}

// decDigits is the number of decimal digits of c (0 for 0).
func decDigits(c u128) int {
	n := 0
	for n < len(pow10u128) && c.cmp(pow10u128[n]) >= 0 {
		n++
	}
	return n
}

const (
	decFinite uint8 = iota
	decInf
	decNaN
)

// decimal is a decoded IEEE 754-2008 decimal128 (BID encoding, as BSON stores
// it): (-1)^neg × coef × 10^exp, or an infinity, or NaN.
type decimal struct {
	form uint8
	neg  bool
	coef u128
	exp  int
}

// maxCoefficient is 10^34-1, the largest canonical decimal128 coefficient.
var maxCoefficient = u128{0x0001ed09bead87c0, 0x378d8e63ffffffff}

// readDecimal decodes the 16 little-endian bytes of a BSON Decimal128.
// Non-canonical encodings (a coefficient above 10^34-1, including every value of
// the "11" combination form) are zero, as the IEEE standard and MongoDB's Intel
// library treat them.
func readDecimal(v []byte) decimal {
	lo := le64(v)
	var hi uint64
	if len(v) >= 16 {
		hi = le64(v[8:])
	}
	d := decimal{neg: hi>>63 == 1}
	switch comb := (hi >> 58) & 0x1f; {
	case comb == 0x1f:
		d.form = decNaN
		return d
	case comb == 0x1e:
		d.form = decInf
		return d
	case (hi>>61)&3 == 3:
		d.exp = int((hi>>47)&0x3fff) - 6176
		return d
	}
	d.exp = int((hi>>49)&0x3fff) - 6176
	d.coef = u128{hi & (1<<49 - 1), lo}
	if d.coef.cmp(maxCoefficient) > 0 {
		d.coef = u128{}
	}
	return d
}

func decimalFromInt64(i int64) decimal {
	if i < 0 {
		return decimal{neg: true, coef: u128{0, uint64(-(i + 1)) + 1}}
	}
	return decimal{coef: u128{0, uint64(i)}}
}

// class orders the non-NaN values: -2 -Inf, -1 negative, 0 zero, 1 positive, 2 +Inf.
func (d decimal) class() int {
	s := 1
	if d.neg {
		s = -1
	}
	switch {
	case d.form == decInf:
		return 2 * s
	case d.coef.isZero():
		return 0
	}
	return s
}

func floatClass(f float64) int {
	switch {
	case math.IsInf(f, 1):
		return 2
	case math.IsInf(f, -1):
		return -2
	case f > 0:
		return 1
	case f < 0:
		return -1
	}
	return 0
}

// compareDecimals is compare_numbers.h compareDecimals: numeric order, NaN equal
// to NaN and below everything.
func compareDecimals(a, b decimal) int {
	if a.form == decNaN || b.form == decNaN {
		return cmp3(b2i(a.form != decNaN), b2i(b.form != decNaN))
	}
	ca, cb := a.class(), b.class()
	if ca != cb {
		return cmp3(ca, cb)
	}
	if ca != 1 && ca != -1 {
		return 0
	}
	return ca * compareMagnitudes(a.coef, a.exp, b.coef, b.exp)
}

// compareMagnitudes compares c1×10^e1 with c2×10^e2 for non-zero canonical
// coefficients. Equal adjusted exponents leave at most 33 digits of scaling, so
// the scaled coefficient still fits in 128 bits.
func compareMagnitudes(c1 u128, e1 int, c2 u128, e2 int) int {
	a1, a2 := decDigits(c1)+e1, decDigits(c2)+e2
	if a1 != a2 {
		return cmp3(a1, a2)
	}
	switch {
	case e1 > e2:
		c1, _ = c1.mulPow10(e1 - e2)
	case e2 > e1:
		c2, _ = c2.mulPow10(e2 - e1)
	}
	return c1.cmp(c2)
}

// compareDecimalToDouble gives the exact numeric order, which is what MongoDB's
// round-toward-negative-then-check-inexact conversion computes.
func compareDecimalToDouble(d decimal, f float64) int {
	if d.form == decNaN || math.IsNaN(f) {
		return cmp3(b2i(d.form != decNaN), b2i(!math.IsNaN(f)))
	}
	cd, cf := d.class(), floatClass(f)
	if cd != cf {
		return cmp3(cd, cf)
	}
	if cd != 1 && cd != -1 {
		return 0
	}
	return cd * compareDecimalToFloatMagnitude(d.coef, d.exp, math.Abs(f))
}

const log2Of10 = 3.321928094887362

// compareDecimalToFloatMagnitude compares c×10^e with x, both positive and finite.
func compareDecimalToFloatMagnitude(c u128, e int, x float64) int {
	m, k := floatParts(x)
	// Bracket both in powers of two; the 1e-6 margin dwarfs the rounding error of
	// e×log2(10) for any decimal128 exponent.
	cl := float64(c.bitLen())
	decLo, decHi := cl-1+float64(e)*log2Of10, cl+float64(e)*log2Of10
	ml := float64(bits.Len64(m))
	fLo, fHi := ml-1+float64(k), ml+float64(k)
	if decHi+1e-6 <= fLo {
		return -1
	}
	if fHi+1e-6 <= decLo {
		return 1
	}
	// Exact: c×10^max(e,0)×2^max(-k,0) against m×10^max(-e,0)×2^max(k,0).
	l, r := c, u128{0, m}
	okE, okK := true, true
	if e >= 0 {
		l, okE = l.mulPow10(e)
	} else {
		r, okE = r.mulPow10(-e)
	}
	if k >= 0 {
		r, okK = r.lsh(k)
	} else {
		l, okK = l.lsh(-k)
	}
	if okE && okK {
		return l.cmp(r)
	}
	bl, br := c.big(), new(big.Int).SetUint64(m)
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(e))), nil)
	if e >= 0 {
		bl.Mul(bl, p)
	} else {
		br.Mul(br, p)
	}
	if k >= 0 {
		br.Lsh(br, uint(k))
	} else {
		bl.Lsh(bl, uint(-k))
	}
	return bl.Cmp(br)
}

// floatParts returns odd m and k with x = m×2^k, for positive finite x.
func floatParts(x float64) (m uint64, k int) {
	b := math.Float64bits(x)
	exp := int(b>>52) & 0x7ff
	m = b & (1<<52 - 1)
	if exp == 0 {
		k = -1074
	} else {
		m |= 1 << 52
		k = exp - 1075
	}
	tz := bits.TrailingZeros64(m)
	return m >> tz, k + tz
}

// roundHalfEven converts a finite decimal known to lie within the int64 range
// (after rounding) to an integer, rounding half to even.
func (d decimal) roundHalfEven() int64 {
	c := d.coef
	if c.isZero() {
		return 0
	}
	var mag uint64
	if d.exp >= 0 {
		c, _ = c.mulPow10(d.exp)
		mag = c.lo
	} else {
		p := -d.exp
		if p > 40 {
			return 0 // |value| < 10^34 × 10^-41: rounds to zero
		}
		var digit uint64
		sticky := false
		for range p {
			sticky = sticky || digit != 0
			c, digit = c.divmod10()
		}
		mag = c.lo
		if digit > 5 || (digit == 5 && (sticky || mag&1 == 1)) {
			mag++
		}
	}
	if d.neg {
		return -int64(mag)
	}
	return int64(mag)
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

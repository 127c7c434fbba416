package shardkey

import (
	"math"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// checkOrder asserts Compare(a, b) == want and Compare(b, a) == -want.
func checkOrder(t *testing.T, name string, a, b bsoncore.Value, want int) {
	t.Helper()
	if got := Compare(a, b); got != want {
		t.Errorf("%s: Compare(%v, %v) = %d, want %d", name, a, b, got, want)
	}
	if got := Compare(b, a); got != -want {
		t.Errorf("%s: Compare(%v, %v) = %d, want %d", name, b, a, got, -want)
	}
}

// TestCompareFollowsMongoDBCanonicalTypeOrder checks canonicalizeBSONType: the
// type rank decides before any value does. Each row holds the largest value of
// its rank, the next row the smallest value of the next rank.
func TestCompareFollowsMongoDBCanonicalTypeOrder(t *testing.T) {
	ranks := [][]bsoncore.Value{
		{vEmpty(bsontype.MinKey)},
		{vEmpty(bsontype.Undefined)},
		{vEmpty(bsontype.Null)},
		{vDouble(nan), vDecimal(t, "-Infinity"), vInt64(math.MinInt64), vDouble(math.Inf(1))},
		{vString(""), vSymbol("a"), vString("\xff\xff")},
		{vDoc(t, bson.D{}), vDoc(t, bson.D{{Key: "a", Value: primitive.MaxKey{}}})},
		{vArray(), vArray(vEmpty(bsontype.MaxKey))},
		{vBinary(0, nil), vBinary(255, []byte{0xff, 0xff})},
		{vOID(t, "000000000000000000000000"), vOID(t, "ffffffffffffffffffffffff")},
		{vBool(false), vBool(true)},
		{vDate(math.MinInt64), vDate(math.MaxInt64)},
		{vTimestamp(0, 0), vTimestamp(math.MaxUint32, math.MaxUint32)},
		{vRegex("", ""), vRegex("\xff", "z")},
		{vDBPointer(t, "a", "000000000000000000000000"), vDBPointer(t, "zzzz", "ffffffffffffffffffffffff")},
		{vCode(""), vCode("\xff")},
		{vCodeWithScope("", mustMarshal(t, bson.D{})), vCodeWithScope("\xff", mustMarshal(t, bson.D{{Key: "z", Value: 1}}))},
		{vEmpty(bsontype.MaxKey)},
	}
	var all []bsoncore.Value
	var rankOf []int
	for r, vs := range ranks {
		for _, v := range vs {
			all = append(all, v)
			rankOf = append(rankOf, r)
		}
	}
	for i := range all {
		for j := range all {
			if rankOf[i] == rankOf[j] {
				continue
			}
			want := cmp3(rankOf[i], rankOf[j])
			if got := Compare(all[i], all[j]); got != want {
				t.Errorf("Compare(%v (%s), %v (%s)) = %d, want %d",
					all[i], all[i].Type, all[j], all[j].Type, got, want)
			}
		}
	}
}

// TestUndefinedSortsBeforeNull pins canonicalizeBSONType: undefined is 0, null
// is 5, so they are not equal (only a missing shard key field becomes null).
func TestUndefinedSortsBeforeNull(t *testing.T) {
	checkOrder(t, "undefined < null", vEmpty(bsontype.Undefined), vEmpty(bsontype.Null), -1)
	checkOrder(t, "null == null", vEmpty(bsontype.Null), vEmpty(bsontype.Null), 0)
	checkOrder(t, "MinKey == MinKey", vEmpty(bsontype.MinKey), vEmpty(bsontype.MinKey), 0)
}

func TestCompareNumbersByValueAcrossTypes(t *testing.T) {
	one := []bsoncore.Value{vInt32(1), vInt64(1), vDouble(1), vDecimal(t, "1"), vDecimal(t, "1.000"), vDecimal(t, "0.01E+2")}
	for _, a := range one {
		for _, b := range one {
			checkOrder(t, "one", a, b, 0)
		}
	}
	negZero := math.Copysign(0, -1)
	cases := []struct {
		name string
		a, b bsoncore.Value
		want int
	}{
		{"-0.0 == 0", vDouble(negZero), vInt32(0), 0},
		{"-0.0 == decimal -0", vDouble(negZero), vDecimal(t, "-0E+10"), 0},
		{"NaN == NaN", vDouble(nan), vDouble(-nan), 0},
		{"double NaN == decimal NaN", vDouble(nan), vDecimal(t, "NaN"), 0},
		{"NaN < -Inf", vDouble(nan), vDouble(math.Inf(-1)), -1},
		{"NaN < int64 min", vDouble(nan), vInt64(math.MinInt64), -1},
		{"decimal NaN < decimal -Inf", vDecimal(t, "NaN"), vDecimal(t, "-Infinity"), -1},
		{"decimal NaN < double -Inf", vDecimal(t, "NaN"), vDouble(math.Inf(-1)), -1},
		{"Inf == decimal Inf", vDouble(math.Inf(1)), vDecimal(t, "Infinity"), 0},
		{"2^53 < 2^53+1", vDouble(1 << 53), vInt64(1<<53 + 1), -1},
		{"int64 max < 2^63", vInt64(math.MaxInt64), vDouble(0x1p63), -1},
		{"int64 min == -2^63", vInt64(math.MinInt64), vDouble(-0x1p63), 0},
		{"int64 min > -Inf", vInt64(math.MinInt64), vDouble(math.Inf(-1)), 1},
		{"int 2 > 1.5", vInt32(2), vDouble(1.5), 1},
		{"decimal 1.5 == double 1.5", vDecimal(t, "1.5"), vDouble(1.5), 0},
		{"decimal 0.1 < double 0.1", vDecimal(t, "0.1"), vDouble(0.1), -1},
		{"34-digit truncation of double 0.1 is below it",
			vDecimal(t, "0.1000000000000000055511151231257827"), vDouble(0.1), -1},
		{"34-digit round-up of double 0.1 is above it",
			vDecimal(t, "0.1000000000000000055511151231257828"), vDouble(0.1), 1},
		{"decimal 2^53+1 > double 2^53", vDecimal(t, "9007199254740993"), vDouble(1 << 53), 1},
		{"decimal 1E+400 > double max", vDecimal(t, "1E+400"), vDouble(math.MaxFloat64), 1},
		{"decimal 1E+400 < Inf", vDecimal(t, "1E+400"), vDouble(math.Inf(1)), -1},
		{"decimal -1E+400 < -double max", vDecimal(t, "-1E+400"), vDouble(-math.MaxFloat64), -1},
		{"decimal 1E-400 < smallest double", vDecimal(t, "1E-400"), vDouble(5e-324), -1},
		{"decimal 1E-400 > 0", vDecimal(t, "1E-400"), vDouble(0), 1},
		{"decimal -1E-400 < -0.0", vDecimal(t, "-1E-400"), vDouble(negZero), -1},
		{"decimal 1E+2 == 100", vDecimal(t, "1E+2"), vInt32(100), 0},
		{"decimal 1E+2 == decimal 100.0", vDecimal(t, "1E+2"), vDecimal(t, "100.0"), 0},
		{"decimal 99.99 < decimal 1E+2", vDecimal(t, "99.99"), vDecimal(t, "1E+2"), -1},
		{"decimal int64 max", vDecimal(t, "9223372036854775807"), vInt64(math.MaxInt64), 0},
		{"decimal above int64 max", vDecimal(t, "9223372036854775808"), vInt64(math.MaxInt64), 1},
		{"decimal int64 min", vDecimal(t, "-9223372036854775808"), vInt64(math.MinInt64), 0},
		{"decimal -Inf < int64 min", vDecimal(t, "-Infinity"), vInt64(math.MinInt64), -1},
		{"decimal -2 < -1.5", vDecimal(t, "-2"), vDecimal(t, "-1.5"), -1},
		{"decimal max coefficient", vDecimal(t, "9999999999999999999999999999999999E+6111"), vDouble(math.Inf(1)), -1},
		// A coefficient above 10^34-1 is non-canonical: the value is zero.
		{"non-canonical decimal is zero", vDecimalBits(0x3041ffffffffffff, 0xffffffffffffffff), vInt32(0), 0},
		{"large-form decimal is zero", vDecimalBits(0x6c10000000000000, 0x1), vDouble(negZero), 0},
	}
	for _, c := range cases {
		checkOrder(t, c.name, c.a, c.b, c.want)
	}
}

func TestCompareRulesWithinEachType(t *testing.T) {
	d := func(doc bson.D) bsoncore.Value { return vDoc(t, doc) }
	e := func(k string, v any) bson.E { return bson.E{Key: k, Value: v} }
	oid0, oid1 := "000000000000000000000000", "000000000000000000000001"
	cases := []struct {
		name string
		a, b bsoncore.Value
		want int
	}{
		{"strings bytewise", vString("B"), vString("a"), -1},
		{"prefix is smaller", vString("a"), vString("ab"), -1},
		{"empty is smallest", vString(""), vString("\x00"), -1},
		{"embedded NUL counts", vString("a"), vString("a\x00"), -1},
		{"bytes unsigned", vString("\x7f"), vString("é"), -1},
		{"symbol equals string", vSymbol("abc"), vString("abc"), 0},
		{"symbol orders with strings", vSymbol("abd"), vString("abc"), 1},

		{"object values", d(bson.D{e("a", 1)}), d(bson.D{e("a", 2)}), -1},
		{"object field name before value", d(bson.D{e("a", 2)}), d(bson.D{e("b", 1)}), -1},
		{"object type rank before field name", d(bson.D{e("a", "x")}), d(bson.D{e("b", 1)}), 1},
		{"object prefix is smaller", d(bson.D{e("a", 1)}), d(bson.D{e("a", 1), e("b", primitive.MinKey{})}), -1},
		{"empty object smallest", d(bson.D{}), d(bson.D{e("a", primitive.MinKey{})}), -1},
		{"object numbers by value", d(bson.D{e("a", 1)}), d(bson.D{e("a", 1.0)}), 0},
		{"object field order matters", d(bson.D{e("a", 1), e("b", 1)}), d(bson.D{e("b", 1), e("a", 1)}), -1},
		{"nested objects", d(bson.D{e("a", bson.D{e("b", 1)})}), d(bson.D{e("a", bson.D{e("b", 2)})}), -1},

		{"arrays element-wise", vArray(vInt32(1), vInt32(2)), vArray(vInt32(1), vInt32(3)), -1},
		{"array prefix smaller", vArray(vInt32(1)), vArray(vInt32(1), vInt32(0)), -1},
		{"array first element decides", vArray(vInt32(2)), vArray(vInt32(1), vInt32(100)), 1},
		{"empty array smallest array", vArray(), vArray(vEmpty(bsontype.MinKey)), -1},
		{"array above any object", vArray(), d(bson.D{e("z", primitive.MaxKey{})}), 1},

		{"binData length first", vBinary(0x80, []byte{1}), vBinary(0, []byte{0, 0}), -1},
		{"binData subtype before bytes", vBinary(0, []byte{0xff}), vBinary(1, []byte{0}), -1},
		{"binData bytes", vBinary(4, []byte{1, 2}), vBinary(4, []byte{1, 3}), -1},

		{"ObjectId bytewise", vOID(t, oid0), vOID(t, oid1), -1},
		{"false < true", vBool(false), vBool(true), -1},
		{"dates signed", vDate(-1), vDate(1), -1},
		{"timestamps unsigned", vTimestamp(1, 0), vTimestamp(0x80000000, 0), -1},
		{"timestamp time before increment", vTimestamp(1, 5), vTimestamp(2, 0), -1},
		{"regex pattern first", vRegex("a", "z"), vRegex("b", ""), -1},
		{"regex then options", vRegex("a", "i"), vRegex("a", "m"), -1},
		{"DBPointer namespace length first", vDBPointer(t, "b", oid1), vDBPointer(t, "aa", oid0), -1},
		{"DBPointer namespace then id", vDBPointer(t, "a", oid1), vDBPointer(t, "b", oid0), -1},
		{"DBPointer id", vDBPointer(t, "a", oid0), vDBPointer(t, "a", oid1), -1},
		{"code bytewise", vCode("a"), vCode("b"), -1},
		{"code below code with scope", vCode("z"), vCodeWithScope("a", mustMarshal(t, bson.D{})), -1},
		{"code with scope: code first",
			vCodeWithScope("a", mustMarshal(t, bson.D{e("x", 2)})), vCodeWithScope("b", mustMarshal(t, bson.D{e("x", 1)})), -1},
		{"code with scope: then scope",
			vCodeWithScope("a", mustMarshal(t, bson.D{e("x", 1)})), vCodeWithScope("a", mustMarshal(t, bson.D{e("x", 2)})), -1},
	}
	for _, c := range cases {
		checkOrder(t, c.name, c.a, c.b, c.want)
	}
}

func TestCompareKeysIgnoresFieldNames(t *testing.T) {
	a := Key(mustMarshal(t, bson.D{{Key: "x", Value: 1}, {Key: "y", Value: "b"}}))
	b := Key(mustMarshal(t, bson.D{{Key: "other", Value: 1.0}, {Key: "names", Value: "b"}}))
	if c := CompareKeys(a, b); c != 0 {
		t.Errorf("CompareKeys(%s, %s) = %d, want 0", a, b, c)
	}
	c := Key(mustMarshal(t, bson.D{{Key: "x", Value: 1}}))
	if got := CompareKeys(c, a); got != -1 {
		t.Errorf("CompareKeys(%s, %s) = %d, want -1 (shorter key first)", c, a, got)
	}
}

func TestCompareDoesNotAllocate(t *testing.T) {
	a := vDoc(t, bson.D{{Key: "a", Value: 1}, {Key: "b", Value: bson.D{{Key: "c", Value: "x"}}}})
	b := vDoc(t, bson.D{{Key: "a", Value: 1.0}, {Key: "b", Value: bson.D{{Key: "c", Value: "y"}}}})
	dec, dbl := vDecimal(t, "1.5"), vDouble(1.25)
	if n := testing.AllocsPerRun(100, func() { Compare(a, b); Compare(dec, dbl) }); n != 0 {
		t.Errorf("Compare allocates %v times", n)
	}
}

package shardkey

import (
	"math"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

type hashCase struct {
	name string
	v    bsoncore.Value
	want int64
}

// TestHashMatchesMongoDBHasherTest checks Hash64 against the values MongoDB's own
// unit tests pin "to ensure the hash function is consistent across platforms and
// server versions" (src/mongo/db/hasher_test.cpp, BSONElementHasher tests).
func TestHashMatchesMongoDBHasherTest(t *testing.T) {
	uuid := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	bin := []byte{0, 1, 2, 3, 4, 6}
	cases := []hashCase{
		{"int 42", vInt32(42), -944302157085130861},
		{"double 42.123", vDouble(42.123), -944302157085130861},
		{"long 42", vInt64(42), -944302157085130861},
		{"int 0", vInt32(0), 4854801880128277513},
		{"double 0.456", vDouble(0.456), 4854801880128277513},
		{"long 0", vInt64(0), 4854801880128277513},
		{"NaN is zero", vDouble(nan), 4854801880128277513},
		{"int 1", vInt32(1), 5902408780260971510},
		{"double 1.987", vDouble(1.987), 5902408780260971510},
		{"long 1", vInt64(1), 5902408780260971510},
		{"int -1", vInt32(-1), 1140205862565771219},
		{"double -1.789", vDouble(-1.789), 1140205862565771219},
		{"long -1", vInt64(-1), 1140205862565771219},
		{"int min", vInt32(math.MinInt32), 6165898260261354870},
		{"double int min", vDouble(math.MinInt32), 6165898260261354870},
		{"long int min", vInt64(math.MinInt32), 6165898260261354870},
		{"int max", vInt32(math.MaxInt32), 1143184177162245883},
		{"double int max", vDouble(math.MaxInt32), 1143184177162245883},
		{"long int max", vInt64(math.MaxInt32), 1143184177162245883},
		{"double max", vDouble(math.MaxFloat64), 921523596458303250},
		{"long max", vInt64(math.MaxInt64), 921523596458303250},
		{"double lowest", vDouble(-math.MaxFloat64), 4532067210535695462},
		{"long min", vInt64(math.MinInt64), 4532067210535695462},
		{"MinKey", vEmpty(bsontype.MinKey), 7961148599568647290},
		{"MaxKey", vEmpty(bsontype.MaxKey), 5504842513779440750},
		{"undefined", vEmpty(bsontype.Undefined), 40158834000849533},
		{"null", vEmpty(bsontype.Null), 2338878944348059895},
		{"string abc", vString("abc"), 8478485326885698097},
		{"symbol abc", vSymbol("abc"), 8478485326885698097},
		{"empty string", vString(""), 2049396243249673340},
		{"empty symbol", vSymbol(""), 2049396243249673340},
		{"object", vDoc(t, bson.D{{Key: "a", Value: "abc"}, {Key: "b", Value: int64(123)}}), 4771603801758380216},
		{"empty object", vDoc(t, bson.D{}), 7980500913326740417},
		{"array", vArray(vString("bar"), vString("baz"), vString("qux")), -2938911267422831539},
		{"empty array", vArray(), 8849948234993459283},
		{"binData general", vBinary(0, bin), 7252465090394235301},
		{"binData custom", vBinary(128, bin), 5736670452907618262},
		{"binData UUID", vBinary(4, uuid), 6084661258071355978},
		{"ObjectId", vOID(t, "010203040506070809101112"), -5588663249627035708},
		{"zero ObjectId", vOID(t, "000000000000000000000000"), -4293118519463489418},
		{"true", vBool(true), 6405873908747105701},
		{"false", vBool(false), 6289544573401934092},
		{"date", vDate(0x5566778811223344), 4476222765095560467},
		{"date 0", vDate(0), -1178696894582842035},
		{"regex", vRegex("mongodb", ""), -7275792090268217043},
		{"regex with options", vRegex(".*", "i"), 7095855029187981886},
		{"DBRef c", vDBPointer(t, "c", "010203040506070809101112"), 940175826736461384},
		{"DBRef db.c", vDBPointer(t, "db.c", "010203040506070809101112"), 2426768198104018194},
		{"code", vCode("func f() { return 1; }"), 6861638109178014270},
		{"code with scope", vCodeWithScope("func f() { return 1; }",
			mustMarshal(t, bson.D{{Key: "c", Value: true}})), 501342939894575968},
	}
	checkHashes(t, cases)
}

// TestHashMatchesMongoDBToHashedIndexKey checks the values pinned by MongoDB's
// $toHashedIndexKey tests (expression_to_hashed_index_key_test.cpp) and the
// example in the $toHashedIndexKey manual page. In every version Shardlift
// supports, timestamps have canonical type 47 (dates 45), so they do not hash
// like dates, as the oldest copy of hasher_test.cpp still claims.
func TestHashMatchesMongoDBToHashedIndexKey(t *testing.T) {
	cases := []hashCase{
		{"string", vString("hashThisStringLiteral"), -5776344739422278694},
		{"int", vInt32(123), -6548868637522515075},
		{"timestamp 0", vTimestamp(0, 0), -7867208682377458672},
		{"ObjectId", vOID(t, "47cc67093475061e3d95369d"), 1576265281381834298},
		{"date 0", vDate(0), -1178696894582842035},
		{"null", vEmpty(bsontype.Null), 2338878944348059895},
		{"$pow: [2, 4]", vInt32(16), 2598032665634823220},
		{"undefined", vEmpty(bsontype.Undefined), 40158834000849533},
		{"manual example", vString("string to hash"), 763543691661428748},
	}
	checkHashes(t, cases)
}

// TestHashSquashesNumbersLikeSafeNumberLongForHash pins the edge cases of
// BSONElement::safeNumberLongForHash (bsonelement_test.cpp SafeNumberLong*Bound)
// and of Decimal128::toLong's default round-half-to-even.
func TestHashSquashesNumbersLikeSafeNumberLongForHash(t *testing.T) {
	same := func(name string, got, want bsoncore.Value) {
		t.Helper()
		if Hash64(got) != Hash64(want) {
			t.Errorf("%s: hash %d, want the hash of %v (%d)", name, Hash64(got), want, Hash64(want))
		}
	}
	same("2^63 wraps to -2^63", vDouble(0x1p63), vInt64(math.MinInt64))
	same("above 2^63 clamps", vDouble(math.Nextafter(0x1p63, math.Inf(1))), vInt64(math.MaxInt64))
	same("below 2^63 is exact", vDouble(math.Nextafter(0x1p63, 0)), vInt64(0x7ffffffffffffc00))
	same("+Inf clamps", vDouble(math.Inf(1)), vInt64(math.MaxInt64))
	same("-2^63 is exact", vDouble(-0x1p63), vInt64(math.MinInt64))
	same("-Inf clamps", vDouble(math.Inf(-1)), vInt64(math.MinInt64))
	same("-0.9 truncates to 0", vDouble(-0.9), vInt64(0))
	same("-0 is 0", vDouble(math.Copysign(0, -1)), vInt64(0))
	same("decimal 42", vDecimal(t, "42"), vInt64(42))
	same("decimal 4.2E+1", vDecimal(t, "4.2E+1"), vInt64(42))
	same("decimal 42.5 to even", vDecimal(t, "42.5"), vInt64(42))
	same("decimal 43.5 to even", vDecimal(t, "43.5"), vInt64(44))
	same("decimal 2.7 rounds", vDecimal(t, "2.7"), vInt64(3))
	same("decimal 2.5000001 rounds up", vDecimal(t, "2.5000001"), vInt64(3))
	same("decimal -2.5 to even", vDecimal(t, "-2.5"), vInt64(-2))
	same("decimal -3.5 to even", vDecimal(t, "-3.5"), vInt64(-4))
	same("decimal 0.5 to even", vDecimal(t, "0.5"), vInt64(0))
	same("decimal tiny", vDecimal(t, "1E-6176"), vInt64(0))
	same("decimal NaN", vDecimal(t, "NaN"), vInt64(0))
	same("decimal +Inf", vDecimal(t, "Infinity"), vInt64(math.MaxInt64))
	same("decimal -Inf", vDecimal(t, "-Infinity"), vInt64(math.MinInt64))
	same("decimal above int64", vDecimal(t, "9223372036854775807.5"), vInt64(math.MaxInt64))
	same("decimal huge", vDecimal(t, "1E+6000"), vInt64(math.MaxInt64))
	same("decimal int64 max", vDecimal(t, "9223372036854775807"), vInt64(math.MaxInt64))
	same("decimal int64 min", vDecimal(t, "-9223372036854775808"), vInt64(math.MinInt64))
	same("decimal below int64", vDecimal(t, "-9223372036854775808.4"), vInt64(math.MinInt64))
	same("decimal near max to even", vDecimal(t, "9223372036854775806.5"), vInt64(9223372036854775806))
	same("decimal -0", vDecimal(t, "-0E+3"), vInt64(0))
	// Squashing applies inside objects and arrays and code-with-scope too
	// (RecursiveSquashingIntsAndDoubles, CodeWithScopeSquashesScopeIntsAndDoubles).
	same("recursive squashing",
		vDoc(t, bson.D{{Key: "a", Value: 3}, {Key: "b", Value: bson.A{3.1, bson.D{{Key: "c", Value: 3}}}}}),
		vDoc(t, bson.D{{Key: "a", Value: 3.1}, {Key: "b", Value: bson.A{3, bson.D{{Key: "c", Value: 3.0}}}}}))
	same("scope squashing",
		vCodeWithScope("print('x')", mustMarshal(t, bson.D{{Key: "a", Value: 3}})),
		vCodeWithScope("print('x')", mustMarshal(t, bson.D{{Key: "a", Value: 3.1}})))
}

// TestHashDistinguishesWhatMongoDBDistinguishes mirrors the inequality checks of
// hasher_test.cpp.
func TestHashDistinguishesWhatMongoDBDistinguishes(t *testing.T) {
	differ := func(name string, a, b bsoncore.Value) {
		t.Helper()
		if Hash64(a) == Hash64(b) {
			t.Errorf("%s: %v and %v hash alike", name, a, b)
		}
	}
	differ("3 and 4", vInt32(3), vInt32(4))
	differ("int and string", vInt32(3), vString("3"))
	differ("regex and string", vString("3"), vRegex("3", ""))
	differ("array and object", vArray(vInt32(0), vInt32(1)),
		vDoc(t, bson.D{{Key: "0", Value: 0}, {Key: "1", Value: 1}}))
	differ("sub-document grouping",
		vDoc(t, bson.D{{Key: "a", Value: bson.D{}}, {Key: "b", Value: 1}}),
		vDoc(t, bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: 1}}}}))
	differ("MinKey and MaxKey", vEmpty(bsontype.MinKey), vEmpty(bsontype.MaxKey))
	differ("undefined and null", vEmpty(bsontype.Undefined), vEmpty(bsontype.Null))
	differ("code changes", vCodeWithScope("a", mustMarshal(t, bson.D{})), vCodeWithScope("b", mustMarshal(t, bson.D{})))
	differ("large and half-large", vInt64(math.MaxInt64), vDouble(float64(math.MaxInt64/2)))
}

func checkHashes(t *testing.T, cases []hashCase) {
	t.Helper()
	for _, c := range cases {
		if got := Hash64(c.v); got != c.want {
			t.Errorf("%s: Hash64 = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestHashDoesNotAllocateForSmallValues(t *testing.T) {
	v := vDoc(t, bson.D{{Key: "a", Value: "abc"}, {Key: "b", Value: int64(123)}})
	if n := testing.AllocsPerRun(100, func() { Hash64(v) }); n != 0 {
		t.Errorf("Hash64 of a small object allocates %v times", n)
	}
}

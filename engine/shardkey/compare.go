package shardkey

import (
	"bytes"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// CanonicalType is canonicalizeBSONType (bsontypes.h): the rank of a type in
// the sort order. Types with the same rank compare by value. Note that
// undefined (0) sorts before null (5): they are not equal, but a missing shard
// key field is extracted as null, so "missing" and null are the same key.
func CanonicalType(t bsontype.Type) int {
	switch t {
	case bsontype.MinKey:
		return -1
	case bsontype.Undefined:
		return 0
	case bsontype.Null:
		return 5
	case bsontype.Double, bsontype.Int32, bsontype.Int64, bsontype.Decimal128:
		return 10
	case bsontype.String, bsontype.Symbol:
		return 15
	case bsontype.EmbeddedDocument:
		return 20
	case bsontype.Array:
		return 25
	case bsontype.Binary:
		return 30
	case bsontype.ObjectID:
		return 35
	case bsontype.Boolean:
		return 40
	case bsontype.DateTime:
		return 45
	case bsontype.Timestamp:
		return 47
	case bsontype.Regex:
		return 50
	case bsontype.DBPointer:
		return 55
	case bsontype.JavaScript:
		return 60
	case bsontype.CodeWithScope:
		return 65
	case bsontype.MaxKey:
		return 127
	}
	// Not a BSON type MongoDB stores: after MaxKey, ordered by type byte.
	return 128 + int(byte(t))
}

// Compare orders two BSON values as MongoDB does without a collation
// (BSONElement::woCompare with field names ignored): it returns -1, 0 or +1.
//
// Types compare by canonical rank first:
//
//	MinKey < undefined < null < numbers < string, symbol < object < array <
//	binData < ObjectId < bool < date < timestamp < regex < DBPointer <
//	JavaScript < JavaScript with scope < MaxKey
//
// Within a rank: numbers by exact numeric value across int32, int64, double and
// decimal128 (NaN equals NaN and sorts below all other numbers; -0 == 0);
// strings and symbols bytewise; objects element by element (canonical rank of the
// element's type, then field name bytewise, then value; a shorter object that is
// a prefix of a longer one is smaller); arrays as objects keyed "0", "1", ...;
// binData by length, then subtype, then bytes; ObjectIds bytewise; false < true;
// dates signed; timestamps unsigned; regexes by pattern then options; DBPointers
// by namespace length, then namespace, then ObjectId; JavaScript bytewise;
// JavaScript with scope by code, then scope object.
//
// Compare never panics: malformed values compare by whatever bytes they hold.
func Compare(a, b bsoncore.Value) int {
	return compareTyped(a.Type, a.Data, b.Type, b.Data)
}

func compareTyped(ta bsontype.Type, va []byte, tb bsontype.Type, vb []byte) int {
	if ta != tb {
		if c := cmp3(CanonicalType(ta), CanonicalType(tb)); c != 0 {
			return c
		}
	}
	return compareValues(ta, va, tb, vb)
}

// compareValues is compareElements (bsonelement.cpp): a and b have the same
// canonical rank.
func compareValues(ta bsontype.Type, va []byte, tb bsontype.Type, vb []byte) int {
	switch ta {
	case bsontype.MinKey, bsontype.MaxKey, bsontype.Null, bsontype.Undefined:
		return 0
	case bsontype.Int64:
		if tb == bsontype.Int64 {
			return cmp3(int64(le64(va)), int64(le64(vb)))
		}
		return compareNumbers(readNumber(ta, va), readNumber(tb, vb))
	case bsontype.Int32, bsontype.Double, bsontype.Decimal128:
		return compareNumbers(readNumber(ta, va), readNumber(tb, vb))
	case bsontype.String, bsontype.Symbol, bsontype.JavaScript:
		return bytes.Compare(stringContent(va), stringContent(vb))
	case bsontype.EmbeddedDocument, bsontype.Array:
		return compareDocuments(va, vb)
	case bsontype.Binary:
		la, _ := readLength(va)
		lb, _ := readLength(vb)
		if la != lb {
			return cmp3(la, lb)
		}
		return bytes.Compare(tail(va, 4), tail(vb, 4)) // subtype, then bytes
	case bsontype.ObjectID:
		return bytes.Compare(va, vb)
	case bsontype.Boolean:
		return cmp3(int8(byteAt(va)), int8(byteAt(vb)))
	case bsontype.DateTime:
		return cmp3(int64(le64(va)), int64(le64(vb)))
	case bsontype.Timestamp:
		return cmp3(le64(va), le64(vb))
	case bsontype.Regex:
		pa, oa := regexParts(va)
		pb, ob := regexParts(vb)
		if c := bytes.Compare(pa, pb); c != 0 {
			return c
		}
		return bytes.Compare(oa, ob)
	case bsontype.DBPointer:
		if len(va) != len(vb) {
			return cmp3(len(va), len(vb))
		}
		return bytes.Compare(va, vb)
	case bsontype.CodeWithScope:
		ca, sa := codeWithScopeParts(va)
		cb, sb := codeWithScopeParts(vb)
		if c := bytes.Compare(trimNUL(ca), trimNUL(cb)); c != 0 {
			return c
		}
		return compareDocuments(sa, sb)
	}
	return bytes.Compare(va, vb)
}

// compareDocuments is BSONObj::woCompare with field names considered.
func compareDocuments(a, b []byte) int {
	ba, _ := docBody(a)
	bb, _ := docBody(b)
	for {
		ta, na, va, ra, oka := readElement(ba)
		tb, nb, vb, rb, okb := readElement(bb)
		if !oka || !okb {
			return cmp3(b2i(oka), b2i(okb))
		}
		if ta != tb {
			if c := cmp3(CanonicalType(ta), CanonicalType(tb)); c != 0 {
				return c
			}
		}
		if c := bytes.Compare(na, nb); c != 0 {
			return c
		}
		if c := compareValues(ta, va, tb, vb); c != 0 {
			return c
		}
		ba, bb = ra, rb
	}
}

func tail(v []byte, n int) []byte {
	if len(v) < n {
		return nil
	}
	return v[n:]
}

func byteAt(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

func trimNUL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == 0 {
		return b[:n-1]
	}
	return b
}

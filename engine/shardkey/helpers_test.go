package shardkey

import (
	"encoding/hex"
	"math"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// Value constructors for tests.

func vInt32(i int32) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Int32, Data: bsoncore.AppendInt32(nil, i)}
}

func vInt64(i int64) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Int64, Data: bsoncore.AppendInt64(nil, i)}
}

func vDouble(f float64) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Double, Data: bsoncore.AppendDouble(nil, f)}
}

func vDecimal(t testing.TB, s string) bsoncore.Value {
	t.Helper()
	d, err := primitive.ParseDecimal128(s)
	if err != nil {
		t.Fatalf("parse decimal %q: %v", s, err)
	}
	return vDecimalBits(d.GetBytes())
}

func vDecimalBits(hi, lo uint64) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Decimal128, Data: bsoncore.AppendDecimal128(nil, primitive.NewDecimal128(hi, lo))}
}

func vString(s string) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.String, Data: bsoncore.AppendString(nil, s)}
}

func vSymbol(s string) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Symbol, Data: bsoncore.AppendSymbol(nil, s)}
}

func vCode(s string) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.JavaScript, Data: bsoncore.AppendJavaScript(nil, s)}
}

func vCodeWithScope(code string, scope bsoncore.Document) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.CodeWithScope, Data: bsoncore.AppendCodeWithScope(nil, code, scope)}
}

func vBinary(subtype byte, b []byte) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Binary, Data: bsoncore.AppendBinary(nil, subtype, b)}
}

func vOID(t testing.TB, h string) bsoncore.Value {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 12 {
		t.Fatalf("bad ObjectId hex %q", h)
	}
	var oid primitive.ObjectID
	copy(oid[:], b)
	return bsoncore.Value{Type: bsontype.ObjectID, Data: oid[:]}
}

func vBool(b bool) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Boolean, Data: bsoncore.AppendBoolean(nil, b)}
}

func vDate(ms int64) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.DateTime, Data: bsoncore.AppendDateTime(nil, ms)}
}

func vTimestamp(t, i uint32) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Timestamp, Data: bsoncore.AppendTimestamp(nil, t, i)}
}

func vRegex(pattern, options string) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Regex, Data: bsoncore.AppendRegex(nil, pattern, options)}
}

func vDBPointer(t testing.TB, ns, oidHex string) bsoncore.Value {
	t.Helper()
	oid := vOID(t, oidHex)
	var o primitive.ObjectID
	copy(o[:], oid.Data)
	return bsoncore.Value{Type: bsontype.DBPointer, Data: bsoncore.AppendDBPointer(nil, ns, o)}
}

func vEmpty(t bsontype.Type) bsoncore.Value { return bsoncore.Value{Type: t} }

// vDoc marshals a bson.D into an embedded-document value.
func vDoc(t testing.TB, d bson.D) bsoncore.Value {
	t.Helper()
	return bsoncore.Value{Type: bsontype.EmbeddedDocument, Data: mustMarshal(t, d)}
}

// vArray builds an array value from values.
func vArray(vals ...bsoncore.Value) bsoncore.Value {
	return bsoncore.Value{Type: bsontype.Array, Data: bsoncore.BuildArray(nil, vals...)}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := bson.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return b
}

// rawValue turns a Go value into a bsoncore.Value the way the driver encodes it.
func rawValue(t testing.TB, v any) bsoncore.Value {
	t.Helper()
	typ, data, err := bson.MarshalValue(v)
	if err != nil {
		t.Fatalf("marshal value %v: %v", v, err)
	}
	return bsoncore.Value{Type: typ, Data: data}
}

var nan = math.NaN()

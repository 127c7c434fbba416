package topology

import (
	"math"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// str is a string field of doc, or "" when absent or of another type.
func str(doc bson.Raw, key string) string {
	s, _ := doc.Lookup(key).StringValueOK()
	return s
}

// asInt64 reads a number MongoDB may send as int32, int64 or double.
func asInt64(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bsontype.Int32:
		return int64(v.Int32()), true
	case bsontype.Int64:
		return v.Int64(), true
	case bsontype.Double:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

// cloneRaw copies a document out of a buffer the driver may reuse.
func cloneRaw(doc bson.Raw) bson.Raw { return append(bson.Raw(nil), doc...) }

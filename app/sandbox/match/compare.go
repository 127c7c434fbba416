package match

import (
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// typeClass is MongoDB's canonical type order: values of different classes compare by
// class, and query comparisons ($gt, $lt, ...) only match values of the operand's class
// ("type bracketing").
func typeClass(t bsontype.Type) int {
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
	return 200
}

// compareValues orders two BSON values as MongoDB does (engine/shardkey.Compare, the
// one comparison the engine and the sandbox share).
func compareValues(a, b bson.RawValue) int {
	return shardkey.Compare(bsoncore.Value{Type: a.Type, Data: a.Value}, bsoncore.Value{Type: b.Type, Data: b.Value})
}

package match

import (
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// typeClass is MongoDB's canonical type rank: values of different classes compare by
// class, and query comparisons ($gt, $lt, ...) only match values of the operand's class
// ("type bracketing").
func typeClass(t bsontype.Type) int { return shardkey.CanonicalType(t) }

// compareValues orders two BSON values as MongoDB does (engine/shardkey.Compare, the
// one comparison the engine and the sandbox share).
func compareValues(a, b bson.RawValue) int {
	return shardkey.Compare(bsoncore.Value{Type: a.Type, Data: a.Value}, bsoncore.Value{Type: b.Type, Data: b.Value})
}

package shardkey

import (
	"crypto/md5"
	"encoding/binary"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// Hash64 is MongoDB's BSONElementHasher::hash64(value, seed 0): the value a
// hashed index stores, a hashed shard key's chunk bounds are made of, and
// convertShardKeyToHashed() and $toHashedIndexKey return.
//
// It is the first 8 bytes, read little-endian, of the MD5 of:
//
//	seed (int32 0) | canonical type (int32) | value
//
// where the value is: for numbers, the int64 they squash to (doubles truncate
// toward zero, NaN is 0, out-of-range clamps to the int64 limits except that the
// double 2^63 gives -2^63, decimals round half to even), so 3, 3.7 and
// NumberLong(3) hash alike; for objects and arrays, each element as canonical
// type | field name with its NUL | value, then an end marker (int32 0); for
// JavaScript with scope, the code with its NUL and then the scope as an object;
// for every other type, the BSON value bytes as stored (strings keep their length
// prefix and NUL). All integers are little-endian. Symbol hashes like String,
// since both have canonical type 15.
func Hash64(v bsoncore.Value) int64 {
	return hash64(v.Type, v.Data)
}

func hash64(t bsontype.Type, v []byte) int64 {
	// recursiveHash, made iterative so that the input buffer and the stack of
	// open documents stay on this goroutine's stack: escape analysis moves a
	// buffer to the heap once recursive calls append to it.
	var bufArray [256]byte
	var openArray [8][]byte
	buf := append(bufArray[:0], 0, 0, 0, 0) // seed 0
	open := openArray[:0]                   // bodies of the documents being hashed
	buf = appendCanonicalType(buf, t)
	for {
		switch t {
		case bsontype.Int32, bsontype.Int64, bsontype.Double, bsontype.Decimal128:
			buf = binary.LittleEndian.AppendUint64(buf, uint64(hashNumber(readNumber(t, v))))
		case bsontype.EmbeddedDocument, bsontype.Array:
			body, _ := docBody(v)
			open = append(open, body)
		case bsontype.CodeWithScope:
			code, scope := codeWithScopeParts(v)
			buf = append(buf, code...)
			body, _ := docBody(scope)
			open = append(open, body)
		default:
			buf = append(buf, v...)
		}
		// Next element of the innermost open document, closing finished ones with
		// the EOO element: canonical type 0, an empty name (a default-constructed
		// BSONElement has a field name size of 0) and no value.
		var name []byte
		ok := false
		for !ok && len(open) > 0 {
			top := len(open) - 1
			var rest []byte
			t, name, v, rest, ok = readElement(open[top])
			if ok {
				open[top] = rest
			} else {
				buf = append(buf, 0, 0, 0, 0)
				open = open[:top]
			}
		}
		if !ok {
			break
		}
		buf = appendCanonicalType(buf, t)
		buf = append(buf, name...)
		buf = append(buf, 0)
	}
	sum := md5.Sum(buf)
	return int64(binary.LittleEndian.Uint64(sum[:8]))
}

func appendCanonicalType(buf []byte, t bsontype.Type) []byte {
	return binary.LittleEndian.AppendUint32(buf, uint32(int32(CanonicalType(t))))
}

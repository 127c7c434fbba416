package shardkey

import (
	"bytes"
	"encoding/binary"

	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// This file is a small BSON reader that never panics and never allocates.
// bsoncore's own readers trust declared lengths (a negative length makes
// Element.Value slice out of range), and comparison and hashing must survive any
// bytes a fuzzer or a damaged document hands them.

// docBody returns the elements of a BSON document: the bytes between the length
// prefix and the terminating NUL.
func docBody(doc []byte) ([]byte, bool) {
	if len(doc) < 5 {
		return nil, false
	}
	n := int(int32(binary.LittleEndian.Uint32(doc)))
	if n < 5 || n > len(doc) {
		return nil, false
	}
	return doc[4 : n-1], true
}

// readElement splits the first element off a document body: its type, its name
// (without the NUL), its value bytes and what follows. ok is false at the end of
// the body and on malformed input.
func readElement(b []byte) (t bsontype.Type, name, value, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, nil, false
	}
	t = bsontype.Type(b[0])
	i := bytes.IndexByte(b[1:], 0)
	if i < 0 {
		return 0, nil, nil, nil, false
	}
	name = b[1 : 1+i]
	v := b[2+i:]
	n, ok := valueSize(t, v)
	if !ok {
		return 0, nil, nil, nil, false
	}
	return t, name, v[:n], v[n:], true
}

// valueSize is the size of the value of type t at the start of v.
func valueSize(t bsontype.Type, v []byte) (int, bool) {
	var n int
	switch t {
	case bsontype.Double, bsontype.DateTime, bsontype.Int64, bsontype.Timestamp:
		n = 8
	case bsontype.Int32:
		n = 4
	case bsontype.Decimal128:
		n = 16
	case bsontype.ObjectID:
		n = 12
	case bsontype.Boolean:
		n = 1
	case bsontype.Null, bsontype.Undefined, bsontype.MinKey, bsontype.MaxKey:
		n = 0
	case bsontype.String, bsontype.JavaScript, bsontype.Symbol:
		l, ok := readLength(v)
		if !ok || l < 1 {
			return 0, false
		}
		n = 4 + l
	case bsontype.EmbeddedDocument, bsontype.Array:
		l, ok := readLength(v)
		if !ok || l < 5 {
			return 0, false
		}
		n = l
	case bsontype.CodeWithScope:
		l, ok := readLength(v)
		if !ok || l < 14 {
			return 0, false
		}
		n = l
	case bsontype.Binary:
		l, ok := readLength(v)
		if !ok || l < 0 {
			return 0, false
		}
		n = 4 + 1 + l
	case bsontype.DBPointer:
		l, ok := readLength(v)
		if !ok || l < 1 {
			return 0, false
		}
		n = 4 + l + 12
	case bsontype.Regex:
		p := bytes.IndexByte(v, 0)
		if p < 0 {
			return 0, false
		}
		o := bytes.IndexByte(v[p+1:], 0)
		if o < 0 {
			return 0, false
		}
		n = p + 1 + o + 1
	default:
		return 0, false
	}
	if n > len(v) {
		return 0, false
	}
	return n, true
}

func readLength(v []byte) (int, bool) {
	if len(v) < 4 {
		return 0, false
	}
	return int(int32(binary.LittleEndian.Uint32(v))), true
}

// stringContent is the bytes of a String, Symbol or JavaScript value without its
// length prefix and NUL terminator. Malformed values yield what is there, so that
// every input still maps to one well-defined comparable value.
func stringContent(v []byte) []byte {
	l, ok := readLength(v)
	if !ok {
		return nil
	}
	if l < 1 || 4+l > len(v) {
		return v[4:]
	}
	return v[4 : 4+l-1]
}

// regexParts splits a Regex value into its pattern and options.
func regexParts(v []byte) (pattern, options []byte) {
	p := bytes.IndexByte(v, 0)
	if p < 0 {
		return v, nil
	}
	rest := v[p+1:]
	o := bytes.IndexByte(rest, 0)
	if o < 0 {
		return v[:p], rest
	}
	return v[:p], rest[:o]
}

// codeWithScopeParts splits a CodeWithScope value (int32 total, int32 code
// length, code, NUL, scope document) into the code with its NUL and the scope.
func codeWithScopeParts(v []byte) (codeWithNUL, scope []byte) {
	if len(v) < 8 {
		return nil, nil
	}
	l := int(int32(binary.LittleEndian.Uint32(v[4:])))
	if l < 0 || 8+l > len(v) {
		return v[8:], nil
	}
	return v[8 : 8+l], v[8+l:]
}

func le32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func le64(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}

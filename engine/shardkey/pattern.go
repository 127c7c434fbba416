package shardkey

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// Pattern is a parsed shard key pattern such as {a: 1, "b.c": 1} or
// {x: "hashed"} (config.collections' key field). It is immutable and safe for
// concurrent use.
type Pattern struct {
	raw    bson.Raw
	fields []patternField
	hashed int // index of the hashed field, -1 if none
}

type patternField struct {
	path   string   // dotted path as written in the pattern
	name   []byte   // path, as bytes
	parts  [][]byte // path split on "."
	hashed bool
}

// ParsePattern parses a shard key pattern document. It accepts what MongoDB's
// ShardKeyPattern accepts: one or more non-empty dotted paths without empty
// parts, each set to a number that truncates to 1 or to "hashed", at most one
// of them hashed (a hashed field anywhere, as compound hashed keys allow since
// 4.4). Errors wrap ErrInvalidPattern or ErrMalformedBSON.
func ParsePattern(key bson.Raw) (*Pattern, error) {
	body, ok := docBody(key)
	if !ok {
		return nil, fmt.Errorf("shard key pattern: %w", ErrMalformedBSON)
	}
	p := &Pattern{raw: bytes.Clone(key[:len(body)+5]), hashed: -1}
	for len(body) > 0 {
		t, name, v, rest, ok := readElement(body)
		if !ok {
			return nil, fmt.Errorf("shard key pattern: %w", ErrMalformedBSON)
		}
		body = rest
		path := string(name)
		f := patternField{path: path, name: bytes.Clone(name)}
		if path == "" {
			return nil, fmt.Errorf("%w: empty field name in %s", ErrInvalidPattern, key)
		}
		for part := range strings.SplitSeq(path, ".") {
			if part == "" {
				return nil, fmt.Errorf("%w: field %q has an empty path part", ErrInvalidPattern, path)
			}
			f.parts = append(f.parts, []byte(part))
		}
		switch {
		case t == bsontype.String && string(stringContent(v)) == "hashed":
			if p.hashed >= 0 {
				return nil, fmt.Errorf("%w: %s has more than one hashed field", ErrInvalidPattern, key)
			}
			f.hashed = true
			p.hashed = len(p.fields)
		case isNumber(t) && clampInt32(hashNumber(readNumber(t, v))) == 1:
			// safeNumberInt() == 1: 1, 1.0, NumberLong(1), even 1.5.
		default:
			return nil, fmt.Errorf("%w: field %q must be 1 or \"hashed\" in %s", ErrInvalidPattern, path, key)
		}
		p.fields = append(p.fields, f)
	}
	if len(p.fields) == 0 {
		return nil, fmt.Errorf("%w: the pattern is empty", ErrInvalidPattern)
	}
	return p, nil
}

// NewPattern parses a shard key pattern given as a bson.D, as a caller building
// one in code would write it: shardkey.NewPattern(bson.D{{"x", "hashed"}}).
func NewPattern(key bson.D) (*Pattern, error) {
	raw, err := bson.Marshal(key)
	if err != nil {
		return nil, fmt.Errorf("shard key pattern %v: %w", key, err)
	}
	return ParsePattern(raw)
}

func clampInt32(i int64) int64 {
	return min(max(i, -1<<31), 1<<31-1)
}

// Raw returns the pattern document.
func (p *Pattern) Raw() bson.Raw { return p.raw }

// String returns the pattern as extended JSON.
func (p *Pattern) String() string { return p.raw.String() }

// Fields returns the dotted paths of the pattern, in order.
func (p *Pattern) Fields() []string {
	out := make([]string, len(p.fields))
	for i, f := range p.fields {
		out[i] = f.path
	}
	return out
}

// IsHashed reports whether one of the fields is "hashed".
func (p *Pattern) IsHashed() bool { return p.hashed >= 0 }

// HashedField returns the hashed field's path, or "" if there is none.
func (p *Pattern) HashedField() string {
	if p.hashed < 0 {
		return ""
	}
	return p.fields[p.hashed].path
}

// Extract returns the shard key of a document, as ShardKeyPattern::
// extractShardKeyFromDoc does (MongoDB 4.4 and later):
//
//   - each field is looked up along its dotted path through embedded documents,
//     taking the first field of a name when a document repeats it;
//   - a missing field, or a path that runs into a non-document, gives null;
//   - an array at the path or on the way to it is an error wrapping
//     ErrArrayInShardKey (MongoDB's ShardKeyNotFound);
//   - a hashed field is replaced by NumberLong(Hash64(value)), which is what the
//     chunk bounds of a hashed key hold.
//
// The Key's field names are the pattern's paths, in pattern order, so it is
// comparable with config.chunks bounds. Errors also wrap ErrMalformedBSON.
func (p *Pattern) Extract(doc bson.Raw) (Key, error) {
	return p.AppendKey(nil, doc)
}

// AppendKey is Extract appending the key to dst, so that a caller reusing a
// buffer (dst[:0]) extracts without allocating. The returned Key aliases the
// appended bytes.
func (p *Pattern) AppendKey(dst []byte, doc bson.Raw) (Key, error) {
	body, ok := docBody(doc)
	if !ok {
		return nil, fmt.Errorf("extract shard key %s: document: %w", p, ErrMalformedBSON)
	}
	return p.appendKey(dst, func(f *patternField) (bsontype.Type, []byte, error) {
		return lookupPath(body, f.parts)
	})
}

// ExtractDocumentKey returns the shard key from a document key, the
// {_id, <shard key fields>} document that oplog entries carry in o2 (updates)
// and o (deletes). Unlike a document, a document key names dotted fields
// literally ({"b.c": 5}, not {b: {c: 5}}), which is what ShardKeyPattern::
// extractShardKeyFromDocumentKey reads. Missing fields are null, arrays are an
// error, hashed fields are hashed, as in Extract.
func (p *Pattern) ExtractDocumentKey(documentKey bson.Raw) (Key, error) {
	body, ok := docBody(documentKey)
	if !ok {
		return nil, fmt.Errorf("extract shard key %s: document key: %w", p, ErrMalformedBSON)
	}
	return p.appendKey(nil, func(f *patternField) (bsontype.Type, []byte, error) {
		t, v, found, err := findField(body, f.name)
		if err != nil || !found {
			return bsontype.Null, nil, err
		}
		if t == bsontype.Array {
			return 0, nil, ErrArrayInShardKey
		}
		return t, v, nil
	})
}

func (p *Pattern) appendKey(dst []byte, lookup func(*patternField) (bsontype.Type, []byte, error)) (Key, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for i := range p.fields {
		f := &p.fields[i]
		t, v, err := lookup(f)
		if err != nil {
			return nil, fmt.Errorf("extract shard key %s: field %q: %w", p, f.path, err)
		}
		if f.hashed {
			dst = append(dst, byte(bsontype.Int64))
			dst = append(dst, f.name...)
			dst = append(dst, 0)
			dst = binary.LittleEndian.AppendUint64(dst, uint64(hash64(t, v)))
			continue
		}
		dst = append(dst, byte(t))
		dst = append(dst, f.name...)
		dst = append(dst, 0)
		dst = append(dst, v...)
	}
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return Key(dst[start:]), nil
}

// lookupPath is getFieldDottedOrArray as extractShardKeyFromDoc uses it.
func lookupPath(body []byte, parts [][]byte) (bsontype.Type, []byte, error) {
	for i, part := range parts {
		t, v, found, err := findField(body, part)
		switch {
		case err != nil:
			return 0, nil, err
		case !found:
			return bsontype.Null, nil, nil
		case t == bsontype.Array:
			return 0, nil, ErrArrayInShardKey
		case i == len(parts)-1:
			return t, v, nil
		case t != bsontype.EmbeddedDocument:
			return bsontype.Null, nil, nil
		}
		var ok bool
		if body, ok = docBody(v); !ok {
			return 0, nil, ErrMalformedBSON
		}
	}
	return bsontype.Null, nil, nil
}

// findField returns the first element of a document body with the given name.
func findField(body, name []byte) (bsontype.Type, []byte, bool, error) {
	for len(body) > 0 {
		t, n, v, rest, ok := readElement(body)
		if !ok {
			return 0, nil, false, ErrMalformedBSON
		}
		if bytes.Equal(n, name) {
			return t, v, true, nil
		}
		body = rest
	}
	return 0, nil, false, nil
}

// GlobalMin returns the smallest key of the pattern, {f1: MinKey, f2: MinKey,
// ...}: the min of the first chunk of every sharded collection.
func (p *Pattern) GlobalMin() Key { return p.allSame(bsontype.MinKey) }

// GlobalMax returns the largest key of the pattern, {f1: MaxKey, ...}: the max
// of the last chunk.
func (p *Pattern) GlobalMax() Key { return p.allSame(bsontype.MaxKey) }

func (p *Pattern) allSame(t bsontype.Type) Key {
	dst := []byte{0, 0, 0, 0}
	for _, f := range p.fields {
		dst = append(dst, byte(t))
		dst = append(dst, f.path...)
		dst = append(dst, 0)
	}
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst, uint32(len(dst)))
	return Key(dst)
}

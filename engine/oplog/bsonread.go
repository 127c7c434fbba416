package oplog

import (
	"bytes"
	"encoding/binary"
	"math"

	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// A small BSON reader that never panics and does not allocate. Oplog entries come
// from a server, a file (shardlift replay) or a fuzzer; bsoncore's readers trust
// declared lengths, so every length here is checked against the bytes at hand.

// element is one element of a document: its type, name, value bytes and the
// whole element (type byte, name, NUL and value) for copying it verbatim.
type element struct {
	t    bsontype.Type
	name []byte
	val  []byte
	raw  []byte
}

// docBody returns the bytes between a document's length prefix and its
// terminating NUL.
func docBody(doc []byte) ([]byte, bool) {
	if len(doc) < 5 {
		return nil, false
	}
	n := int(int32(binary.LittleEndian.Uint32(doc)))
	if n < 5 || n > len(doc) || doc[n-1] != 0 {
		return nil, false
	}
	return doc[4 : n-1], true
}

// iter walks the elements of a document body.
type iter struct {
	rest []byte
	bad  bool
}

func newIter(doc []byte) (iter, bool) {
	body, ok := docBody(doc)
	return iter{rest: body}, ok
}

// next returns the next element; ok is false at the end or on malformed input
// (then it.bad is set).
func (it *iter) next() (element, bool) {
	if len(it.rest) == 0 {
		return element{}, false
	}
	b := it.rest
	t := bsontype.Type(b[0])
	// Names are short: a plain loop beats a call to bytes.IndexByte.
	i := 1
	for i < len(b) && b[i] != 0 {
		i++
	}
	if i == len(b) {
		it.bad, it.rest = true, nil
		return element{}, false
	}
	v := b[i+1:]
	n, ok := valueSize(t, v)
	if !ok {
		it.bad, it.rest = true, nil
		return element{}, false
	}
	end := i + 1 + n
	it.rest = b[end:]
	return element{t: t, name: b[1:i], val: v[:n], raw: b[:end]}, true
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
		l, ok := readLen(v)
		if !ok || l < 1 || 4+l > len(v) || v[4+l-1] != 0 {
			return 0, false
		}
		n = 4 + l
	case bsontype.EmbeddedDocument, bsontype.Array:
		l, ok := readLen(v)
		if !ok || l < 5 || l > len(v) || v[l-1] != 0 {
			return 0, false
		}
		n = l
	case bsontype.Binary:
		l, ok := readLen(v)
		if !ok || l < 0 {
			return 0, false
		}
		n = 5 + l
	case bsontype.Regex:
		i := bytes.IndexByte(v, 0)
		if i < 0 {
			return 0, false
		}
		j := bytes.IndexByte(v[i+1:], 0)
		if j < 0 {
			return 0, false
		}
		n = i + 1 + j + 1
	case bsontype.DBPointer:
		l, ok := readLen(v)
		if !ok || l < 1 {
			return 0, false
		}
		n = 4 + l + 12
	case bsontype.CodeWithScope:
		l, ok := readLen(v)
		if !ok || l < 14 {
			return 0, false
		}
		n = l
	default:
		return 0, false
	}
	if n > len(v) {
		return 0, false
	}
	return n, true
}

func readLen(v []byte) (int, bool) {
	if len(v) < 4 {
		return 0, false
	}
	l := int(int32(binary.LittleEndian.Uint32(v)))
	if l < 0 {
		return 0, false
	}
	return l, true
}

// str returns the content of a string value (without length and NUL).
func str(v []byte) []byte { return v[4 : len(v)-1] }

func (e element) is(name string) bool { return string(e.name) == name }

// number returns a numeric value as int64 and float64 (truncating doubles the
// way MongoDB's safeNumberLong does for in-range values).
func (e element) number() (int64, float64, bool) {
	switch e.t {
	case bsontype.Int32:
		i := int32(binary.LittleEndian.Uint32(e.val))
		return int64(i), float64(i), true
	case bsontype.Int64:
		i := int64(binary.LittleEndian.Uint64(e.val))
		return i, float64(i), true
	case bsontype.Double:
		f := math.Float64frombits(binary.LittleEndian.Uint64(e.val))
		if math.IsNaN(f) {
			return 0, f, true
		}
		if f >= math.MaxInt64 {
			return math.MaxInt64, f, true
		}
		if f <= math.MinInt64 {
			return math.MinInt64, f, true
		}
		return int64(f), f, true
	}
	return 0, 0, false
}

func (e element) boolean() bool { return e.val[0] != 0 }

func (e element) int32() int32 { return int32(binary.LittleEndian.Uint32(e.val)) }

// truthy is MongoDB's trueValue(): non-zero numbers and true are true; other
// types are true unless they are null, undefined or EOO.
func (e element) truthy() bool {
	switch e.t {
	case bsontype.Boolean:
		return e.boolean()
	case bsontype.Int32, bsontype.Int64, bsontype.Double:
		_, f, _ := e.number()
		return f != 0
	case bsontype.Decimal128:
		lo := binary.LittleEndian.Uint64(e.val)
		hi := binary.LittleEndian.Uint64(e.val[8:])
		if (hi>>61)&3 == 3 {
			// Infinity and NaN are true; the other encodings of this form are
			// non-canonical coefficients, which IEEE 754 reads as zero.
			return (hi>>59)&3 == 3
		}
		return lo != 0 || hi&(1<<49-1) != 0
	case bsontype.Null, bsontype.Undefined:
		return false
	}
	return true
}

// lookup returns the first element named name of a document.
func lookup(doc []byte, name string) (element, bool) {
	it, ok := newIter(doc)
	if !ok {
		return element{}, false
	}
	for {
		e, ok := it.next()
		if !ok {
			return element{}, false
		}
		if e.is(name) {
			return e, true
		}
	}
}

// firstElement returns the first element of a document.
func firstElement(doc []byte) (element, bool) {
	it, ok := newIter(doc)
	if !ok {
		return element{}, false
	}
	return it.next()
}

// topLevelOK reports whether every top-level element of doc is well formed
// (nested documents are checked only for their length and terminator).
func topLevelOK(doc []byte) bool {
	it, ok := newIter(doc)
	if !ok {
		return false
	}
	for {
		if _, ok := it.next(); !ok {
			return !it.bad
		}
	}
}

// validDoc reports whether doc is a well-formed document down to every nested
// document and array, with at most depth levels of nesting.
func validDoc(doc []byte, depth int) bool {
	if depth < 0 {
		return false
	}
	it, ok := newIter(doc)
	if !ok {
		return false
	}
	for {
		e, ok := it.next()
		if !ok {
			return !it.bad
		}
		switch e.t {
		case bsontype.EmbeddedDocument, bsontype.Array:
			if !validDoc(e.val, depth-1) {
				return false
			}
		case bsontype.CodeWithScope:
			if len(e.val) < 14 {
				return false
			}
			l, ok := readLen(e.val[4:])
			if !ok || 4+4+l > len(e.val) {
				return false
			}
			if !validDoc(e.val[8+l:], depth-1) {
				return false
			}
		}
	}
}

// appendElem appends an element named name with the value of e.
func appendElem(dst []byte, name string, t bsontype.Type, val []byte) []byte {
	dst = append(dst, byte(t))
	dst = append(dst, name...)
	dst = append(dst, 0)
	return append(dst, val...)
}

// startDoc appends a document length placeholder and returns its offset.
func startDoc(dst []byte) (int, []byte) {
	return len(dst), append(dst, 0, 0, 0, 0)
}

// endDoc terminates the document started at off.
func endDoc(dst []byte, off int) []byte {
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst[off:], uint32(len(dst)-off))
	return dst
}

// appendHeader appends an element's type and name; its value follows.
func appendHeader(dst []byte, t bsontype.Type, name []byte) []byte {
	dst = append(dst, byte(t))
	dst = append(dst, name...)
	return append(dst, 0)
}

// startSub appends the header of an embedded document or array element and its
// length placeholder.
func startSub(dst []byte, t bsontype.Type, name string) (int, []byte) {
	dst = append(dst, byte(t))
	dst = append(dst, name...)
	dst = append(dst, 0)
	return startDoc(dst)
}

func appendStr(dst []byte, name, s string) []byte {
	dst = append(dst, byte(bsontype.String))
	dst = append(dst, name...)
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)+1))
	dst = append(dst, s...)
	return append(dst, 0)
}

func appendInt32(dst []byte, name string, i int32) []byte {
	dst = append(dst, byte(bsontype.Int32))
	dst = append(dst, name...)
	dst = append(dst, 0)
	return binary.LittleEndian.AppendUint32(dst, uint32(i))
}

func appendBool(dst []byte, name string, b bool) []byte {
	dst = append(dst, byte(bsontype.Boolean))
	dst = append(dst, name...)
	dst = append(dst, 0)
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func appendNull(dst []byte, name string) []byte {
	dst = append(dst, byte(bsontype.Null))
	dst = append(dst, name...)
	return append(dst, 0)
}

// arrayKey returns the decimal name of array index i without allocating for
// small indexes.
func arrayKey(i int) string {
	if i < len(smallKeys) {
		return smallKeys[i]
	}
	return itoa(i)
}

var smallKeys = func() []string {
	k := make([]string, 256)
	for i := range k {
		k[i] = itoa(i)
	}
	return k
}()

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	p := len(b)
	neg := i < 0
	u := uint64(i)
	if neg {
		u = uint64(-i)
	}
	for u > 0 {
		p--
		b[p] = byte('0' + u%10)
		u /= 10
	}
	if neg {
		p--
		b[p] = '-'
	}
	return string(b[p:])
}

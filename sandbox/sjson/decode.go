package sjson

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math"
	"slices"
	"strconv"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// schemaName is the name of a document's schema member.
var schemaName = []byte("$s")

// member is a member of an object met out of its schema's order: its raw name (with
// scanString's flags) and the position of its value.
type member struct {
	name  []byte
	flags uint8
	used  bool
	value int
}

// members appends the BSON elements of the JSON object whose '{' is at open, by the
// fields of schema node obj, reading its members from p on (just after the '{', or at
// the top level just after the "$s" member's value), and returns the position after
// the closing '}'. Members are expected in the order of the schema's $k, as FerretDB
// writes them; any other order goes to slowMembers.
func (d *decoder) members(dst []byte, t *tree, obj int32, open, p int, top bool, depth int) ([]byte, int, error) {
	text := d.text
	start := len(dst)
	c := t.nodes[obj].first
	p = skipWS(text, p)
	if p >= len(text) {
		return nil, 0, errAt(p, "unterminated object")
	}
	switch {
	case text[p] == '}':
		return d.closeObject(dst, t, c, p)
	case top && text[p] == ',':
		p = skipWS(text, p+1)
	case top:
		return nil, 0, errAt(p, "expected ',' or '}' in an object")
	}
	for {
		if p >= len(text) || text[p] != '"' {
			return nil, 0, errAt(p, "expected a member name")
		}
		end, flags, err := scanString(text, p)
		if err != nil {
			return nil, 0, err
		}
		name := text[p+1 : end-1]
		if c < 0 || top && d.nameIs(name, flags, schemaName) || !d.nameIs(name, flags, t.bytes(t.nodes[c].key)) {
			return d.slowMembers(dst[:start], t, obj, open, top, depth)
		}
		q, err := d.colon(skipWS(text, end))
		if err != nil {
			return nil, 0, err
		}
		if dst, q, err = d.value(dst, t, c, t.bytes(t.nodes[c].key), q, depth); err != nil {
			return nil, 0, err
		}
		c = t.nodes[c].next
		p = skipWS(text, q)
		if p >= len(text) {
			return nil, 0, errAt(p, "unterminated object")
		}
		switch text[p] {
		case '}':
			return d.closeObject(dst, t, c, p)
		case ',':
			p = skipWS(text, p+1)
		default:
			return nil, 0, errAt(p, "expected ',' or '}' in an object")
		}
	}
}

// closeObject ends an object at its '}' (p) with c the first of its schema's fields
// left without a value (-1: none left).
func (d *decoder) closeObject(dst []byte, t *tree, c int32, p int) ([]byte, int, error) {
	if c >= 0 {
		return nil, 0, errAt(p, "no value for field %q of the schema", t.bytes(t.nodes[c].key))
	}
	return dst, p + 1, nil
}

// nameIs says whether the raw member name (with scanString's flags) decodes to want.
func (d *decoder) nameIs(raw []byte, flags uint8, want []byte) bool {
	if !needsUnquote(raw, flags) {
		return bytes.Equal(raw, want)
	}
	d.tmp = appendUnquoted(d.tmp[:0], raw)
	return bytes.Equal(d.tmp, want)
}

// slowMembers is members for an object whose members are not in $k's order (or, at
// the top level, whose schema is not its first member): it finds each field's value
// by name.
func (d *decoder) slowMembers(dst []byte, t *tree, obj int32, open int, top bool, depth int) ([]byte, int, error) {
	text := d.text
	base := len(d.pending)
	defer func() {
		clear(d.pending[base:]) // holds no text once the decoder is back in the pool
		d.pending = d.pending[:base]
	}()
	schemas := 0
	end, err := walkMembers(text, open, func(name []byte, flags uint8, value int) (int, error) {
		if top && d.nameIs(name, flags, schemaName) {
			if schemas++; schemas > 1 {
				return 0, errAt(value, `duplicate "$s"`)
			}
		} else {
			d.pending = append(d.pending, member{name: name, flags: flags, value: value})
		}
		return skipValue(text, value, depth)
	})
	if err != nil {
		return nil, 0, err
	}
	n := len(d.pending) - base
	if n != int(t.nodes[obj].n) {
		return nil, 0, errAt(open, "the object has %d members but its schema %d fields", n, t.nodes[obj].n)
	}
	for c := t.nodes[obj].first; c >= 0; c = t.nodes[c].next {
		key := t.bytes(t.nodes[c].key)
		ms := d.pending[base : base+n]
		i := slices.IndexFunc(ms, func(m member) bool { return !m.used && d.nameIs(m.name, m.flags, key) })
		if i < 0 {
			return nil, 0, errAt(open, "no value for field %q of the schema", key)
		}
		ms[i].used = true
		if dst, _, err = d.value(dst, t, c, key, ms[i].value, depth); err != nil {
			return nil, 0, err
		}
	}
	return dst, end, nil
}

// header appends an element's type and name.
func header(dst []byte, typ bsontype.Type, key []byte) []byte {
	dst = append(dst, byte(typ))
	dst = append(dst, key...)
	return append(dst, 0)
}

// value appends the element named key holding the JSON value at p, of schema node c,
// and returns the position after the value.
func (d *decoder) value(dst []byte, t *tree, c int32, key []byte, p int, depth int) ([]byte, int, error) {
	text := d.text
	if p >= len(text) {
		return nil, 0, errAt(p, "expected a value")
	}
	n := &t.nodes[c]
	// null is a BSON null whatever the schema says (FerretDB writes an empty
	// binary as null and reads it back as one).
	if text[p] == 'n' {
		end, ok := literal(text, p, "null")
		if !ok {
			return nil, 0, errAt(p, "expected a value")
		}
		return header(dst, bsontype.Null, key), end, nil
	}
	switch n.kind {
	case kindObject:
		if text[p] != '{' {
			return nil, 0, errAt(p, "expected an object")
		}
		dst = header(dst, bsontype.EmbeddedDocument, key)
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		dst, end, err := d.members(dst, t, c, p, p+1, false, depth+1)
		if err != nil {
			return nil, 0, err
		}
		dst, err = closeLength(append(dst, 0), at, p)
		return dst, end, err

	case kindArray:
		if text[p] != '[' {
			return nil, 0, errAt(p, "expected an array")
		}
		dst = header(dst, bsontype.Array, key)
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		dst, end, err := d.items(dst, t, c, p, depth+1)
		if err != nil {
			return nil, 0, err
		}
		dst, err = closeLength(append(dst, 0), at, p)
		return dst, end, err

	case kindString:
		raw, flags, end, err := stringAt(text, p)
		if err != nil {
			return nil, 0, err
		}
		dst = header(dst, bsontype.String, key)
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		if needsUnquote(raw, flags) {
			dst = appendUnquoted(dst, raw)
		} else {
			dst = append(dst, raw...)
		}
		dst = append(dst, 0)
		// A string's length counts its bytes and the NUL after them, not itself.
		l := len(dst) - at - 4
		if l > math.MaxInt32 {
			return nil, 0, errAt(p, "string too large for BSON")
		}
		return bsoncore.UpdateLength(dst, int32(at), int32(l)), end, nil

	case kindDouble, kindInt, kindLong, kindDate, kindTimestamp:
		if !(text[p] == '-' || isDigit(text[p])) {
			return nil, 0, errAt(p, "expected a number for a %s", kindName(n.kind))
		}
		end, integer, err := scanNumber(text, p)
		if err != nil {
			return nil, 0, err
		}
		num := text[p:end]
		if n.kind == kindDouble {
			f, err := strconv.ParseFloat(string(num), 64)
			if err != nil {
				return nil, 0, errAt(p, "double %s out of range", num)
			}
			return bsoncore.AppendDouble(header(dst, bsontype.Double, key), f), end, nil
		}
		if !integer {
			return nil, 0, errAt(p, "%s is not an integer, as a %s must be", num, kindName(n.kind))
		}
		switch n.kind {
		case kindInt:
			v, ok := signed(num, 32)
			if !ok {
				return nil, 0, errAt(p, "%s is out of range for an int", num)
			}
			return bsoncore.AppendInt32(header(dst, bsontype.Int32, key), int32(v)), end, nil
		case kindLong:
			v, ok := signed(num, 64)
			if !ok {
				return nil, 0, errAt(p, "%s is out of range for a long", num)
			}
			return bsoncore.AppendInt64(header(dst, bsontype.Int64, key), v), end, nil
		case kindDate:
			v, ok := signed(num, 64)
			if !ok {
				return nil, 0, errAt(p, "%s is out of range for a date", num)
			}
			return bsoncore.AppendDateTime(header(dst, bsontype.DateTime, key), v), end, nil
		default: // kindTimestamp
			v, ok := unsigned(num)
			if !ok {
				return nil, 0, errAt(p, "%s is out of range for a timestamp", num)
			}
			return bsoncore.AppendTimestamp(header(dst, bsontype.Timestamp, key), uint32(v>>32), uint32(v)), end, nil
		}

	case kindBool:
		if end, ok := literal(text, p, "true"); ok {
			return bsoncore.AppendBoolean(header(dst, bsontype.Boolean, key), true), end, nil
		}
		if end, ok := literal(text, p, "false"); ok {
			return bsoncore.AppendBoolean(header(dst, bsontype.Boolean, key), false), end, nil
		}
		return nil, 0, errAt(p, "expected true or false for a bool")

	case kindObjectID:
		s, end, err := d.decodedString(text, p)
		if err != nil {
			return nil, 0, err
		}
		if len(s) != 24 {
			return nil, 0, errAt(p, "an objectId must be 24 hex digits")
		}
		dst = header(dst, bsontype.ObjectID, key)
		at := len(dst)
		dst = append(dst, make([]byte, 12)...)
		if _, err := hex.Decode(dst[at:], s); err != nil {
			return nil, 0, errAt(p, "an objectId must be 24 hex digits")
		}
		return dst, end, nil

	case kindBinData:
		s, end, err := d.decodedString(text, p)
		if err != nil {
			return nil, 0, err
		}
		dst = header(dst, bsontype.Binary, key)
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0, n.sub)
		// FerretDB writes the bytes as they are for every subtype (for the old
		// binary subtype 2, its inner length is part of them), and so does this.
		m := base64.StdEncoding.DecodedLen(len(s))
		dst = slices.Grow(dst, m)[:len(dst)+m]
		w, err := base64.StdEncoding.Decode(dst[at+5:], s)
		if err != nil {
			return nil, 0, errAt(p, "bad base64 in a binData: %v", err)
		}
		dst = dst[:at+5+w]
		return bsoncore.UpdateLength(dst, int32(at), int32(w)), end, nil

	case kindRegex:
		pattern, end, err := d.decodedString(text, p)
		if err != nil {
			return nil, 0, err
		}
		if bytes.IndexByte(pattern, 0) >= 0 {
			return nil, 0, errAt(p, "a regex pattern contains a NUL byte, which BSON cannot hold")
		}
		dst = header(dst, bsontype.Regex, key)
		dst = append(append(dst, pattern...), 0)
		dst = append(append(dst, t.bytes(n.opts)...), 0)
		return dst, end, nil

	case kindNull:
		return nil, 0, errAt(p, "expected null")
	}
	return nil, 0, errAt(p, "schema node of no type") // not reached: parseElem checks
}

// items appends the elements of the JSON array whose '[' is at open, by the items of
// schema node arr, and returns the position after the closing ']'.
func (d *decoder) items(dst []byte, t *tree, arr int32, open int, depth int) ([]byte, int, error) {
	text := d.text
	c := t.nodes[arr].first
	var keyBuf [20]byte
	p := skipWS(text, open+1)
	if p < len(text) && text[p] == ']' {
		if c >= 0 {
			return nil, 0, errAt(p, "the array has fewer items than its schema")
		}
		return dst, p + 1, nil
	}
	for i := 0; ; i++ {
		if c < 0 {
			return nil, 0, errAt(p, "the array has more items than its schema")
		}
		var err error
		if dst, p, err = d.value(dst, t, c, strconv.AppendInt(keyBuf[:0], int64(i), 10), p, depth); err != nil {
			return nil, 0, err
		}
		c = t.nodes[c].next
		p = skipWS(text, p)
		if p >= len(text) {
			return nil, 0, errAt(p, "unterminated array")
		}
		switch text[p] {
		case ']':
			if c >= 0 {
				return nil, 0, errAt(p, "the array has fewer items than its schema")
			}
			return dst, p + 1, nil
		case ',':
			p = skipWS(text, p+1)
		default:
			return nil, 0, errAt(p, "expected ',' or ']' in an array")
		}
	}
}

// closeLength writes the length of the document or array whose length field is at at,
// ending at the end of dst; p is its position in the text, for errors.
func closeLength(dst []byte, at, p int) ([]byte, error) {
	l := len(dst) - at
	if l > math.MaxInt32 {
		return nil, errAt(p, "value too large for BSON")
	}
	return bsoncore.UpdateLength(dst, int32(at), int32(l)), nil
}

// stringAt checks the JSON string at p and returns its raw body, flags and end.
func stringAt(text []byte, p int) ([]byte, uint8, int, error) {
	if text[p] != '"' {
		return nil, 0, 0, errAt(p, "expected a string")
	}
	end, flags, err := scanString(text, p)
	if err != nil {
		return nil, 0, 0, err
	}
	return text[p+1 : end-1], flags, end, nil
}

// decodedString returns the decoded bytes of the JSON string at p (the text's own, or
// d.tmp's) and the position after it.
func (d *decoder) decodedString(text []byte, p int) ([]byte, int, error) {
	raw, flags, end, err := stringAt(text, p)
	if err != nil {
		return nil, 0, err
	}
	if !needsUnquote(raw, flags) {
		return raw, end, nil
	}
	d.tmp = appendUnquoted(d.tmp[:0], raw)
	return d.tmp, end, nil
}

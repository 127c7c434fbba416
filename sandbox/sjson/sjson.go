// Package sjson turns the text FerretDB v1.24.2 stores for a document (its "sjson",
// one SQLite row per document, column _ferretdb_sjson) into the BSON document FerretDB
// itself would return for that row (Decode), and a BSON document into the text
// FerretDB would store for it (Encode, which the shard's in-process updates write).
//
// Why: a shard front that scans a whole collection (in _id order, resuming after the
// last _id it read) reads the rows straight from SQLite. Until now the front never
// interpreted a row: it copied row texts onto a private FerretDB and asked it for the
// documents (sandbox/shard/keyed.go, "the workbench"), two FerretDB round trips and
// SQLite writes per batch, far too slow for hundreds of thousands of documents. Decode
// does that conversion in process, in one pass over the text, without building Go
// values for the document.
//
// The format (FerretDB's internal/handler/sjson): a row is a JSON object
//
//	{"$s": {"p": {<field>: <elem>, ...}, "$k": [<field>, ...]}, <field>: <value>, ...}
//
// where $k gives the fields' order and each elem gives its field's BSON type:
//
//	{"t": "object", "$s": <schema as above, {} for an empty document>}   JSON object
//	{"t": "array", "i": [<elem per item>, ...]}                          JSON array
//	{"t": "double"}                                                      JSON number
//	{"t": "string"}                                                      JSON string
//	{"t": "binData", "s": <subtype>}                                     base64 string
//	{"t": "objectId"}                                                    24 hex digits
//	{"t": "bool"}                                                        true, false
//	{"t": "date"}                                                        ms since the epoch
//	{"t": "null"}                                                        null
//	{"t": "regex", "o": <options>}                                       the pattern
//	{"t": "int"}, {"t": "timestamp"}, {"t": "long"}                      JSON integers
//
// A JSON null is a BSON null whatever its elem says, as FerretDB reads it. Nested
// documents carry no $s of their own (their schema is their elem's). What FerretDB
// never stores: NaN and ±Inf (refused on insert, and JSON has no form for them), -0.0
// (stored as 0), arrays directly inside arrays, and the BSON types outside the list
// above (decimal128, minKey, undefined, ...), which it refuses. It writes a top-level
// field name into the text unescaped (nested names and $k are escaped): SQLite
// refuses the row of a name with a quote or a bad escape (malformed JSON), and a name
// with a control character or a valid escape makes a row FerretDB cannot read back,
// which Decode refuses too.
//
// FerretDB's own decoding (a find through FerretDB) is the oracle: the tests in
// sandbox/shard store documents of every type through FerretDB and check Decode's
// bytes against FerretDB's for each row. Where FerretDB would return a document,
// Decode returns the same bytes; it is stricter on texts FerretDB never writes
// (duplicate names, schema members that are not FerretDB's, a schema field no value
// has, text after the document), which are errors here. It never panics on bad
// input.
//
// Speed: the text is read by a small scanner over the bytes (no encoding/json, no
// maps, no Go values per field), strings and numbers are written straight into the
// BSON, and the parsed schema of the last few distinct schema texts is kept, so that
// a collection of documents of one shape parses its schema once. Decoders are pooled:
// a decode allocates nothing but dst's growth.
package sjson

import (
	"fmt"
	"math"
	"sync"

	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// Decode appends to dst the BSON document FerretDB v1.24.2 returns for the stored
// document text (a row's _ferretdb_sjson) and returns the extended slice. On error it
// returns dst as it was and an error saying what in the text is wrong and where.
func Decode(dst, text []byte) ([]byte, error) {
	d := pool.Get().(*decoder)
	out, err := d.decode(dst, text)
	d.text = nil
	pool.Put(d)
	if err != nil {
		return dst, err
	}
	return out, nil
}

var pool = sync.Pool{New: func() any { return new(decoder) }}

// Error is a text Decode cannot decode.
type Error struct {
	Offset int    // byte offset in the text where the problem was found
	Msg    string // what is wrong
}

func (e *Error) Error() string { return fmt.Sprintf("sjson: at byte %d: %s", e.Offset, e.Msg) }

func errAt(p int, format string, args ...any) error {
	return &Error{Offset: p, Msg: fmt.Sprintf(format, args...)}
}

// maxDepth bounds the nesting of schemas and values (MongoDB's documents nest 100
// levels at most; the bound only keeps hostile texts from recursing deeply).
const maxDepth = 1000

// decoder holds what a decode reuses: the cached schemas and scratch space.
type decoder struct {
	text []byte
	// schemas are the parsed schemas of the last distinct schema texts met, next the
	// slot the next new one takes.
	schemas [schemaCache]*tree
	next    int
	// pending is the scratch of members' positions for objects whose members are
	// not in their schema's order (see slowMembers), a stack across nesting.
	pending []member
	// tmp holds a string's decoded bytes when they are not the text's own.
	tmp []byte
}

// schemaCache is how many distinct schema texts a decoder keeps parsed.
const schemaCache = 4

func (d *decoder) decode(dst, text []byte) ([]byte, error) {
	d.text = text
	start := len(dst)
	p := skipWS(text, 0)
	if p >= len(text) || text[p] != '{' {
		return nil, errAt(p, "a document must be a JSON object")
	}
	open := p

	// The schema: normally the first member (FerretDB writes it first); otherwise
	// look for it.
	p = skipWS(text, p+1)
	firstIsSchema, schemaEnd := false, 0
	if p < len(text) && text[p] == '"' {
		end, flags, err := scanString(text, p)
		if err != nil {
			return nil, err
		}
		firstIsSchema = d.nameIs(text[p+1:end-1], flags, schemaName)
		schemaEnd = end
	}
	var schemaAt int
	if firstIsSchema {
		q, err := d.colon(skipWS(text, schemaEnd))
		if err != nil {
			return nil, err
		}
		schemaAt = q
	} else {
		var err error
		if schemaAt, err = d.findSchema(open); err != nil {
			return nil, err
		}
	}
	t, after, err := d.schema(schemaAt)
	if err != nil {
		return nil, err
	}

	dst = append(dst, 0, 0, 0, 0)
	if firstIsSchema {
		dst, p, err = d.members(dst, t, rootNode, open, after, true, 0)
	} else {
		dst, p, err = d.slowMembers(dst, t, rootNode, open, true, 0)
	}
	if err != nil {
		return nil, err
	}
	if p != len(text) {
		return nil, errAt(p, "text after the document")
	}
	dst = append(dst, 0)
	if len(dst)-start > math.MaxInt32 {
		return nil, errAt(0, "document too large for BSON")
	}
	return bsoncore.UpdateLength(dst, int32(start), int32(len(dst)-start)), nil
}

// colon expects a ':' at p (after a member's name) and returns the position of the
// value that follows.
func (d *decoder) colon(p int) (int, error) {
	if p >= len(d.text) || d.text[p] != ':' {
		return 0, errAt(p, "expected ':' after a member name")
	}
	return skipWS(d.text, p+1), nil
}

// findSchema returns the position of the value of the document's "$s" member, for a
// text where it is not the first member.
func (d *decoder) findSchema(open int) (int, error) {
	text := d.text
	at := -1
	err := eachMember(text, open, func(name []byte, nameFlags uint8, value int) (int, error) {
		if d.nameIs(name, nameFlags, schemaName) {
			if at >= 0 {
				return 0, errAt(value, `duplicate "$s"`)
			}
			at = value
		}
		return skipValue(text, value, 0)
	})
	if err != nil {
		return 0, err
	}
	if at < 0 {
		return 0, errAt(open, `no schema ("$s") in the document`)
	}
	return at, nil
}

// eachMember walks the members of the JSON object whose '{' is at open, calling fn
// with each member's raw name (between the quotes, with scanString's flags) and the
// position of its value; fn returns the position after the value. It returns the
// position after the closing '}'.
func eachMember(text []byte, open int, fn func(name []byte, nameFlags uint8, value int) (int, error)) error {
	_, err := walkMembers(text, open, fn)
	return err
}

func walkMembers(text []byte, open int, fn func(name []byte, nameFlags uint8, value int) (int, error)) (int, error) {
	p := skipWS(text, open+1)
	if p < len(text) && text[p] == '}' {
		return p + 1, nil
	}
	for {
		if p >= len(text) || text[p] != '"' {
			return 0, errAt(p, "expected a member name")
		}
		end, flags, err := scanString(text, p)
		if err != nil {
			return 0, err
		}
		q := skipWS(text, end)
		if q >= len(text) || text[q] != ':' {
			return 0, errAt(q, "expected ':' after a member name")
		}
		q, err = fn(text[p+1:end-1], flags, skipWS(text, q+1))
		if err != nil {
			return 0, err
		}
		p = skipWS(text, q)
		if p >= len(text) {
			return 0, errAt(p, "unterminated object")
		}
		switch text[p] {
		case '}':
			return p + 1, nil
		case ',':
			p = skipWS(text, p+1)
		default:
			return 0, errAt(p, "expected ',' or '}' in an object")
		}
	}
}

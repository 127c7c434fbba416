package sjson

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// EncodeError is a document Encode refuses: one FerretDB v1.24.2 refuses to store, or
// stores as another document (its text would not decode to this one).
type EncodeError struct {
	Path string // the dotted path of the field at fault ("" for the document)
	Msg  string
}

func (e *EncodeError) Error() string {
	if e.Path == "" {
		return "sjson: cannot encode the document: " + e.Msg
	}
	return fmt.Sprintf("sjson: cannot encode field %q: %s", e.Path, e.Msg)
}

// Encode appends to dst the text FerretDB v1.24.2 writes into _ferretdb_sjson for the
// BSON document doc, byte for byte, and returns the extended slice; Decode of that
// text gives doc back. It refuses (an *EncodeError, dst as it was) every document
// whose text would not be exactly that:
//
//   - what FerretDB refuses to store: NaN and ±Inf, arrays directly inside arrays,
//     the BSON types sjson has no form for (decimal128, minKey, maxKey, undefined,
//     JavaScript, symbol, DBPointer), names that start with '$' or contain '.',
//     duplicate names, names that are not UTF-8, a top-level _id that is missing, an
//     array or a regular expression;
//   - what FerretDB stores as another document: -0.0 (stored as 0), strings and
//     regular expressions that are not UTF-8 (stored with U+FFFD), an _id that is not
//     its document's first field (FerretDB moves it first, in nested documents too), a
//     top-level name with a quote, a backslash or a control character (FerretDB writes
//     top-level names unescaped: the row is malformed or reads back as another name).
//
// A caller that meets the error leaves the document to FerretDB.
func Encode(dst, doc []byte) ([]byte, error) {
	start := len(dst)
	d := bsoncore.Document(doc)
	if err := d.Validate(); err != nil {
		return dst, &EncodeError{Msg: "not a BSON document: " + err.Error()}
	}
	first, err := d.IndexErr(0)
	if err != nil || first.Key() != "_id" {
		return dst, &EncodeError{Path: "_id", Msg: "the _id must be the document's first field"}
	}
	if t := first.Value().Type; t == bsontype.Array || t == bsontype.Regex {
		return dst, &EncodeError{Path: "_id", Msg: "FerretDB refuses an _id of type " + t.String()}
	}
	dst = append(dst, `{"$s":`...)
	if dst, err = appendSchema(dst, d, "", 0); err != nil {
		return dst[:start], err
	}
	elems, _ := d.Elements()
	for _, el := range elems {
		key := el.Key()
		if strings.ContainsFunc(key, unsafeRaw) {
			return dst[:start], &EncodeError{Path: key, Msg: "FerretDB writes a top-level name unescaped: this one would not read back"}
		}
		dst = append(dst, ',', '"')
		dst = append(dst, key...)
		dst = append(dst, '"', ':')
		if dst, err = appendValue(dst, el.Value(), key); err != nil {
			return dst[:start], err
		}
	}
	return append(dst, '}'), nil
}

// unsafeRaw reports whether r, written unescaped inside a JSON string, would not read
// back as itself ('<', '&', U+2028... are escaped by encoding/json but read back as is).
func unsafeRaw(r rune) bool { return r < 0x20 || r == '"' || r == '\\' }

// maxEncodeDepth bounds the nesting Encode follows, as Decode's maxDepth does.
const maxEncodeDepth = maxDepth

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// appendSchema appends the schema of document d: {} when empty, else {"p":{...},"$k":[...]}.
func appendSchema(dst []byte, d bsoncore.Document, path string, depth int) ([]byte, error) {
	if depth > maxEncodeDepth {
		return dst, &EncodeError{Path: path, Msg: "nested too deeply"}
	}
	elems, _ := d.Elements()
	if len(elems) == 0 {
		return append(dst, '{', '}'), nil
	}
	seen := make(map[string]struct{}, len(elems))
	dst = append(dst, `{"p":{`...)
	var err error
	for i, el := range elems {
		key := el.Key()
		p := join(path, key)
		switch {
		case !utf8.ValidString(key):
			return dst, &EncodeError{Path: p, Msg: "the name is not valid UTF-8"}
		case strings.HasPrefix(key, "$"):
			return dst, &EncodeError{Path: p, Msg: "FerretDB refuses names that start with '$'"}
		case strings.Contains(key, "."):
			return dst, &EncodeError{Path: p, Msg: "FerretDB refuses names that contain '.'"}
		case key == "_id" && i > 0:
			return dst, &EncodeError{Path: p, Msg: "FerretDB moves an _id first"}
		}
		if _, dup := seen[key]; dup {
			return dst, &EncodeError{Path: p, Msg: "duplicate name"}
		}
		seen[key] = struct{}{}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, key)
		dst = append(dst, ':')
		if dst, err = appendElem(dst, el.Value(), p, false, depth); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `},"$k":[`...)
	for i, el := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, el.Key())
	}
	return append(dst, ']', '}'), nil
}

// appendElem appends the schema element of value v (inArray: v is an array's item).
func appendElem(dst []byte, v bsoncore.Value, path string, inArray bool, depth int) ([]byte, error) {
	var err error
	switch v.Type {
	case bsontype.EmbeddedDocument:
		dst = append(dst, `{"t":"object","$s":`...)
		if dst, err = appendSchema(dst, v.Document(), path, depth+1); err != nil {
			return dst, err
		}
		return append(dst, '}'), nil
	case bsontype.Array:
		if inArray {
			return dst, &EncodeError{Path: path, Msg: "FerretDB refuses arrays directly inside arrays"}
		}
		dst = append(dst, `{"t":"array","i":[`...)
		items, _ := v.Array().Values()
		for i, item := range items {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendElem(dst, item, path+"."+strconv.Itoa(i), true, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']', '}'), nil
	case bsontype.Double:
		return append(dst, `{"t":"double"}`...), nil
	case bsontype.String:
		return append(dst, `{"t":"string"}`...), nil
	case bsontype.Binary:
		sub, _ := v.Binary()
		dst = append(dst, `{"t":"binData","s":`...)
		dst = strconv.AppendUint(dst, uint64(sub), 10)
		return append(dst, '}'), nil
	case bsontype.ObjectID:
		return append(dst, `{"t":"objectId"}`...), nil
	case bsontype.Boolean:
		return append(dst, `{"t":"bool"}`...), nil
	case bsontype.DateTime:
		return append(dst, `{"t":"date"}`...), nil
	case bsontype.Null:
		return append(dst, `{"t":"null"}`...), nil
	case bsontype.Regex:
		_, opts := v.Regex()
		if !utf8.ValidString(opts) {
			return dst, &EncodeError{Path: path, Msg: "regular expression options are not valid UTF-8"}
		}
		dst = append(dst, `{"t":"regex","o":`...)
		dst = appendString(dst, opts)
		return append(dst, '}'), nil
	case bsontype.Int32:
		return append(dst, `{"t":"int"}`...), nil
	case bsontype.Timestamp:
		return append(dst, `{"t":"timestamp"}`...), nil
	case bsontype.Int64:
		return append(dst, `{"t":"long"}`...), nil
	}
	return dst, &EncodeError{Path: path, Msg: "FerretDB cannot store BSON type " + v.Type.String()}
}

// appendValue appends the JSON of value v (its schema already written).
func appendValue(dst []byte, v bsoncore.Value, path string) ([]byte, error) {
	var err error
	switch v.Type {
	case bsontype.EmbeddedDocument:
		elems, _ := v.Document().Elements()
		dst = append(dst, '{')
		for i, el := range elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, el.Key())
			dst = append(dst, ':')
			if dst, err = appendValue(dst, el.Value(), join(path, el.Key())); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case bsontype.Array:
		items, _ := v.Array().Values()
		dst = append(dst, '[')
		for i, item := range items {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendValue(dst, item, path+"."+strconv.Itoa(i)); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case bsontype.Double:
		f := v.Double()
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			return dst, &EncodeError{Path: path, Msg: "FerretDB refuses NaN and infinities"}
		case f == 0 && math.Signbit(f):
			return dst, &EncodeError{Path: path, Msg: "FerretDB stores -0.0 as 0"}
		}
		return appendFloat(dst, f), nil
	case bsontype.String:
		s := v.StringValue()
		if !utf8.ValidString(s) {
			return dst, &EncodeError{Path: path, Msg: "FerretDB stores invalid UTF-8 as U+FFFD"}
		}
		return appendString(dst, s), nil
	case bsontype.Binary:
		// The bytes after the subtype, as FerretDB keeps them: for the old binary
		// subtype 2 they include its inner length, which bsoncore's reader strips.
		data := v.Data[5:]
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, data)
		return append(dst, '"'), nil
	case bsontype.ObjectID:
		oid := v.ObjectID()
		dst = append(dst, '"')
		dst = hex.AppendEncode(dst, oid[:])
		return append(dst, '"'), nil
	case bsontype.Boolean:
		return strconv.AppendBool(dst, v.Boolean()), nil
	case bsontype.DateTime:
		return strconv.AppendInt(dst, v.DateTime(), 10), nil
	case bsontype.Null:
		return append(dst, "null"...), nil
	case bsontype.Regex:
		pattern, _ := v.Regex()
		if !utf8.ValidString(pattern) {
			return dst, &EncodeError{Path: path, Msg: "FerretDB stores invalid UTF-8 as U+FFFD"}
		}
		return appendString(dst, pattern), nil
	case bsontype.Int32:
		return strconv.AppendInt(dst, int64(v.Int32()), 10), nil
	case bsontype.Timestamp:
		t, i := v.Timestamp()
		return strconv.AppendUint(dst, uint64(t)<<32|uint64(i), 10), nil
	case bsontype.Int64:
		return strconv.AppendInt(dst, v.Int64(), 10), nil
	}
	return dst, &EncodeError{Path: path, Msg: "FerretDB cannot store BSON type " + v.Type.String()}
}

// appendFloat writes a double as encoding/json does (FerretDB's writer): the shortest
// text that reads back as f, in exponent form below 1e-6 and from 1e21 on, with a
// two-digit-at-least exponent trimmed to its digits (1e-07 becomes 1e-7).
func appendFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString writes a valid UTF-8 string as encoding/json does, HTML-safe: '"' and
// '\\' and \b \f \n \r \t as short escapes, other control characters, '<', '>', '&',
// U+2028 and U+2029 as \u00XX / \u20XX escapes, the rest as is.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

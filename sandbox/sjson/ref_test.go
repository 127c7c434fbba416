package sjson

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// refDecode is the obvious, slow decoder the tests compare Decode with: the text read
// by encoding/json (which is what FerretDB reads it with, so its escapes, UTF-8
// repair, number syntax and integer ranges are FerretDB's) into raw messages and a
// schema struct, then the BSON built field by field in $k order. It is as lenient as
// encoding/json is (duplicate names: the last wins; schema names in any case), so
// wherever Decode succeeds, refDecode must succeed with the same bytes.
func refDecode(text []byte) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(text, &members); err != nil {
		return nil, err
	}
	raw, ok := members["$s"]
	if !ok {
		return nil, errors.New("no schema")
	}
	delete(members, "$s")
	var s refSchema
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return refFields(nil, members, &s)
}

type refSchema struct {
	P map[string]*refElem `json:"p"`
	K []string            `json:"$k"`
}

type refElem struct {
	T   string     `json:"t"`
	S   *refSchema `json:"$s"`
	O   *string    `json:"o"`
	I   []*refElem `json:"i"`
	Sub *uint8     `json:"s"`
}

func refFields(dst []byte, members map[string]json.RawMessage, s *refSchema) ([]byte, error) {
	if len(s.K) != len(members) {
		return nil, fmt.Errorf("%d names in $k, %d members", len(s.K), len(members))
	}
	idx, dst := bsoncore.ReserveLength(dst)
	for _, k := range s.K {
		v, ok := members[k]
		if !ok {
			return nil, fmt.Errorf("no member %q", k)
		}
		var err error
		if dst, err = refValue(dst, k, v, s.P[k]); err != nil {
			return nil, err
		}
	}
	dst = append(dst, 0)
	return bsoncore.UpdateLength(dst, idx, int32(len(dst))-idx), nil
}

func refValue(dst []byte, key string, v json.RawMessage, e *refElem) ([]byte, error) {
	if bytes.IndexByte([]byte(key), 0) >= 0 {
		return nil, errors.New("NUL in a name")
	}
	if string(v) == "null" {
		return bsoncore.AppendHeader(dst, bsontype.Null, key), nil
	}
	if e == nil {
		return nil, fmt.Errorf("no schema for %q", key)
	}
	switch e.T {
	case "object":
		if e.S == nil {
			return nil, errors.New("object without $s")
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(v, &members); err != nil {
			return nil, err
		}
		if len(members) == 0 {
			return bsoncore.AppendDocumentElement(dst, key, bsoncore.NewDocumentBuilder().Build()), nil
		}
		doc, err := refFields(nil, members, e.S)
		if err != nil {
			return nil, err
		}
		return bsoncore.AppendDocumentElement(dst, key, doc), nil
	case "array":
		if e.I == nil {
			return nil, errors.New("array without i")
		}
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, err
		}
		if len(items) != len(e.I) {
			return nil, fmt.Errorf("%d items, %d in the schema", len(items), len(e.I))
		}
		idx, arr := bsoncore.ReserveLength(nil)
		for i, item := range items {
			var err error
			if arr, err = refValue(arr, strconv.Itoa(i), item, e.I[i]); err != nil {
				return nil, err
			}
		}
		arr = append(arr, 0)
		arr = bsoncore.UpdateLength(arr, idx, int32(len(arr)))
		return bsoncore.AppendArrayElement(dst, key, arr), nil
	case "double":
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return nil, err
		}
		return bsoncore.AppendDoubleElement(dst, key, f), nil
	case "string":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		return bsoncore.AppendStringElement(dst, key, s), nil
	case "binData":
		var b []byte
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, err
		}
		if e.Sub == nil {
			return nil, errors.New("binData without s")
		}
		dst = bsoncore.AppendHeader(dst, bsontype.Binary, key)
		dst = bsoncore.AppendInt32(dst, int32(len(b)))
		return append(append(dst, *e.Sub), b...), nil // as is, even subtype 2
	case "objectId":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 12 {
			return nil, fmt.Errorf("bad objectId %q", s)
		}
		return append(bsoncore.AppendHeader(dst, bsontype.ObjectID, key), b...), nil
	case "bool":
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, err
		}
		return bsoncore.AppendBooleanElement(dst, key, b), nil
	case "date":
		var ms int64
		if err := json.Unmarshal(v, &ms); err != nil {
			return nil, err
		}
		return bsoncore.AppendDateTimeElement(dst, key, ms), nil
	case "regex":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		if e.O == nil {
			return nil, errors.New("regex without o")
		}
		if bytes.IndexByte([]byte(s+*e.O), 0) >= 0 {
			return nil, errors.New("NUL in a regex")
		}
		return bsoncore.AppendRegexElement(dst, key, s, *e.O), nil
	case "int":
		var i int32
		if err := json.Unmarshal(v, &i); err != nil {
			return nil, err
		}
		return bsoncore.AppendInt32Element(dst, key, i), nil
	case "timestamp":
		var ts uint64
		if err := json.Unmarshal(v, &ts); err != nil {
			return nil, err
		}
		return bsoncore.AppendTimestampElement(dst, key, uint32(ts>>32), uint32(ts)), nil
	case "long":
		var i int64
		if err := json.Unmarshal(v, &i); err != nil {
			return nil, err
		}
		return bsoncore.AppendInt64Element(dst, key, i), nil
	}
	return nil, fmt.Errorf("type %q", e.T)
}

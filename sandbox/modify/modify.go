// Package modify computes the document an update produces, for the sandbox's router
// (an update that may move a document to another shard) and shards (a transaction's
// update, applied at its commit, and keyed updates of one stored row, which the shard
// takes in process when modify computes them as MongoDB does): replacements and the
// field operators ($set, $unset, $inc, $mul, $min, $max, $rename, $currentDate); array
// operators are refused with a clear error.
package modify

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// IsReplacement reports whether an update document replaces the whole document.
func IsReplacement(u bson.Raw) bool {
	elems, _ := u.Elements()
	return len(elems) == 0 || !strings.HasPrefix(elems[0].Key(), "$")
}

func compareValues(a, b bson.RawValue) int {
	return shardkey.Compare(bsoncore.Value{Type: a.Type, Data: a.Value}, bsoncore.Value{Type: b.Type, Data: b.Value})
}

func rawDoc(d any) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		panic("modify: cannot marshal its own document: " + err.Error())
	}
	return b
}

func rawValue(v any) bson.RawValue {
	t, data, err := bson.MarshalValue(v)
	if err != nil {
		panic("modify: cannot marshal its own value: " + err.Error())
	}
	return bson.RawValue{Type: t, Value: data}
}

// Apply returns the document an update produces from pre.
func Apply(pre bson.Raw, u bson.Raw) (bson.Raw, error) {
	if IsReplacement(u) {
		id := pre.Lookup("_id")
		if newID, err := u.LookupErr("_id"); err == nil && compareValues(newID, id) != 0 {
			return nil, &wire.Error{Code: 66, Name: "ImmutableField", Msg: "the (immutable) field '_id' was found to have been altered"}
		}
		return withIDFirst(u, id), nil
	}
	var doc bson.D
	if err := bson.Unmarshal(pre, &doc); err != nil {
		return nil, fmt.Errorf("read document: %w", err)
	}
	type mod struct {
		op, path string
		arg      bson.RawValue
	}
	var mods []mod
	ops, _ := u.Elements()
	for _, op := range ops {
		fields, ok := op.Value().DocumentOK()
		if !ok {
			return nil, &wire.Error{Code: 9, Name: "FailedToParse", Msg: fmt.Sprintf("Modifiers operate on fields but we found type %s instead", op.Value().Type)}
		}
		elems, _ := fields.Elements()
		for _, f := range elems {
			mods = append(mods, mod{op.Key(), f.Key(), f.Value()})
		}
	}
	// MongoDB applies modifications in field-path order, which is also the order new
	// fields are appended in.
	slices.SortStableFunc(mods, func(a, b mod) int { return comparePaths(a.path, b.path) })
	var out any = doc
	var err error
	for _, m := range mods {
		parts := strings.Split(m.path, ".")
		switch m.op {
		case "$set":
			v := decodeValue(m.arg)
			out, err = modify(out, parts, true, func(any, bool) (any, bool, error) { return v, true, nil })
		case "$unset":
			out, err = modify(out, parts, false, func(any, bool) (any, bool, error) { return nil, false, nil })
		case "$inc", "$mul":
			out, err = modify(out, parts, true, func(old any, exists bool) (any, bool, error) {
				return arith(m.op, old, exists, decodeValue(m.arg))
			})
		case "$min", "$max":
			out, err = modify(out, parts, true, func(old any, exists bool) (any, bool, error) {
				if !exists {
					return decodeValue(m.arg), true, nil
				}
				c := compareValues(rawValue(old), m.arg)
				if (m.op == "$min" && c > 0) || (m.op == "$max" && c < 0) {
					return decodeValue(m.arg), true, nil
				}
				return old, true, nil
			})
		case "$currentDate":
			v := any(primitive.NewDateTimeFromTime(time.Now()))
			if spec, ok := m.arg.DocumentOK(); ok && spec.Lookup("$type").StringValue() == "timestamp" {
				v = primitive.Timestamp{T: uint32(time.Now().Unix()), I: 1}
			}
			out, err = modify(out, parts, true, func(any, bool) (any, bool, error) { return v, true, nil })
		case "$rename":
			to, ok := m.arg.StringValueOK()
			if !ok {
				return nil, wire.BadValue("$rename target must be a string")
			}
			var moved any
			var found bool
			out, err = modify(out, parts, false, func(old any, exists bool) (any, bool, error) {
				moved, found = old, exists
				return nil, false, nil
			})
			if err == nil && found {
				out, err = modify(out, strings.Split(to, "."), true, func(any, bool) (any, bool, error) { return moved, true, nil })
			}
		case "$setOnInsert":
		default:
			return nil, &wire.Error{Code: 2, Name: "BadValue", Msg: fmt.Sprintf(
				"the sandbox cannot apply %s to an update that may move a document to another shard or that runs in a transaction; use the field operators ($set, $unset, $inc, ...) or a replacement", m.op)}
		}
		if err != nil {
			return nil, err
		}
	}
	return bson.Marshal(out)
}

// comparePaths orders dotted paths as MongoDB (5.0 on) orders the fields an update
// touches, which is also the order it appends new fields in: part by part, so that a
// document's fields come before a sibling whose name merely starts with its name
// ("a.x" before "a-b": "a" < "a-b", where the whole strings compare the other way),
// and names that start with a digit other than a leading zero (array indexes) shorter
// first ("9" before "10").
func comparePaths(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if c := compareNames(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return len(pa) - len(pb)
}

// compareNames is MongoDB's order of the field names at one level of an update
// (pathsupport's cmpPathsAndArrayIndexes).
func compareNames(a, b string) int {
	if numberLike(a) && numberLike(b) && len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// numberLike: starts with a digit, and is "0" or has no leading zero.
func numberLike(s string) bool {
	return s != "" && '0' <= s[0] && s[0] <= '9' && (s[0] != '0' || len(s) == 1)
}

func withIDFirst(doc bson.Raw, id bson.RawValue) bson.Raw {
	out := bson.D{{Key: "_id", Value: id}}
	elems, _ := doc.Elements()
	for _, e := range elems {
		if e.Key() != "_id" {
			out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	return rawDoc(out)
}

// decodeValue turns a RawValue into the Go value bson.D documents hold.
func decodeValue(v bson.RawValue) any {
	var out bson.D
	doc := rawDoc(bson.D{{Key: "v", Value: v}})
	if err := bson.Unmarshal(doc, &out); err != nil || len(out) == 0 {
		return v
	}
	return out[0].Value
}

// modify applies fn to the value at parts under v (a bson.D or bson.A) and returns
// the new container. fn returns keep=false to remove the field. Missing
// intermediate documents are created when create is set.
func modify(v any, parts []string, create bool, fn func(old any, exists bool) (any, bool, error)) (any, error) {
	switch c := v.(type) {
	case bson.D:
		for i := range c {
			if c[i].Key != parts[0] {
				continue
			}
			if len(parts) == 1 {
				nv, keep, err := fn(c[i].Value, true)
				if err != nil {
					return nil, err
				}
				if !keep {
					return append(c[:i:i], c[i+1:]...), nil
				}
				c[i].Value = nv
				return c, nil
			}
			child, err := modify(c[i].Value, parts[1:], create, fn)
			if err != nil {
				return nil, err
			}
			c[i].Value = child
			return c, nil
		}
		if len(parts) == 1 {
			nv, keep, err := fn(nil, false)
			if err != nil {
				return nil, err
			}
			if keep {
				c = append(c, bson.E{Key: parts[0], Value: nv})
			}
			return c, nil
		}
		if !create {
			return c, nil
		}
		child, err := modify(bson.D{}, parts[1:], create, fn)
		if err != nil {
			return nil, err
		}
		return append(c, bson.E{Key: parts[0], Value: child}), nil
	case bson.A:
		i, err := strconv.Atoi(parts[0])
		if err != nil || i < 0 {
			return nil, &wire.Error{Code: 28, Name: "PathNotViable", Msg: fmt.Sprintf("Cannot apply array updates to non-array element with the field name %q", parts[0])}
		}
		if i >= len(c) {
			if !create {
				return c, nil
			}
			for len(c) <= i {
				c = append(c, nil)
			}
			if len(parts) > 1 {
				c[i] = bson.D{}
			}
		}
		if len(parts) == 1 {
			nv, keep, err := fn(c[i], true)
			if err != nil {
				return nil, err
			}
			if !keep {
				nv = nil // $unset of an array element leaves null, as in MongoDB
			}
			c[i] = nv
			return c, nil
		}
		child, err := modify(c[i], parts[1:], create, fn)
		if err != nil {
			return nil, err
		}
		c[i] = child
		return c, nil
	}
	if !create {
		return v, nil
	}
	return nil, &wire.Error{Code: 28, Name: "PathNotViable", Msg: fmt.Sprintf("Cannot create field '%s' in element %v", parts[0], v)}
}

// arith is $inc and $mul with MongoDB's numeric type promotion.
func arith(op string, old any, exists bool, arg any) (any, bool, error) {
	if !isNumber(arg) {
		return nil, false, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: fmt.Sprintf("Cannot %s with non-numeric argument", op[1:])}
	}
	if !exists {
		if op == "$mul" {
			switch arg.(type) {
			case float64:
				return 0.0, true, nil
			case int64:
				return int64(0), true, nil
			}
			return int32(0), true, nil
		}
		return arg, true, nil
	}
	if !isNumber(old) {
		return nil, false, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: fmt.Sprintf("Cannot apply %s to a value of non-numeric type", op)}
	}
	_, oldF := old.(float64)
	_, argF := arg.(float64)
	if oldF || argF {
		a, b := toFloat(old), toFloat(arg)
		if op == "$inc" {
			return a + b, true, nil
		}
		return a * b, true, nil
	}
	a, b := toInt(old), toInt(arg)
	var res int64
	var overflow bool
	if op == "$inc" {
		res = a + b
		overflow = (b > 0 && res < a) || (b < 0 && res > a)
	} else {
		res = a * b
		overflow = a != 0 && (res/a != b || (a == -1 && b == math.MinInt64))
	}
	if overflow {
		return nil, false, &wire.Error{Code: 2, Name: "BadValue", Msg: fmt.Sprintf("Failed to apply %s operations to current value due to overflow", op)}
	}
	_, old64 := old.(int64)
	_, arg64 := arg.(int64)
	if old64 || arg64 || res > math.MaxInt32 || res < math.MinInt32 {
		return res, true, nil
	}
	return int32(res), true, nil
}

func isNumber(v any) bool {
	switch v.(type) {
	case int32, int64, float64:
		return true
	}
	return false
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case float64:
		return n
	}
	return 0
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int32:
		return int64(n)
	case int64:
		return n
	}
	return 0
}

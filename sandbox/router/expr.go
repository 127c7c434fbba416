package router

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// The aggregation expressions the router evaluates ($group keys and accumulators,
// $project's computed fields): "$path", a constant, a document or array of
// expressions, and the operators of exprOperators.

// exprOperators are the expression operators the router knows, each with its
// argument count (min, max; max -1: any).
var exprOperators = map[string][2]int{
	"$literal": {1, 1},
	"$ifNull":  {2, -1},
}

// checkExpr refuses, before anything runs, an expression the router cannot evaluate.
func checkExpr(e bson.RawValue) error {
	switch e.Type {
	case bsontype.Array:
		vals, _ := e.Array().Values()
		for _, v := range vals {
			if err := checkExpr(v); err != nil {
				return err
			}
		}
	case bsontype.EmbeddedDocument:
		elems, _ := e.Document().Elements()
		if op, ok := operatorOf(elems); ok {
			arity, known := exprOperators[op]
			if !known {
				return &wire.Error{Code: 168, Name: "InvalidPipelineOperator", Msg: fmt.Sprintf(
					"Unrecognized expression '%s' (the sandbox router evaluates %s)", op, operatorList())}
			}
			if op == "$literal" {
				return nil
			}
			args := exprArgs(elems[0].Value())
			if len(args) < arity[0] || (arity[1] >= 0 && len(args) > arity[1]) {
				return wire.BadValue(fmt.Sprintf("Expression %s takes at least %d arguments, and %d were passed in", op, arity[0], len(args)))
			}
			for _, a := range args {
				if err := checkExpr(a); err != nil {
					return err
				}
			}
			return nil
		}
		for _, el := range elems {
			if strings.HasPrefix(el.Key(), "$") {
				return wire.BadValue(fmt.Sprintf("an expression specification must contain exactly one field, the name of the expression; found %q among others", el.Key()))
			}
			if err := checkExpr(el.Value()); err != nil {
				return err
			}
		}
	}
	return nil
}

// operatorOf reports the operator of {$op: args}.
func operatorOf(elems []bson.RawElement) (string, bool) {
	if len(elems) == 1 && strings.HasPrefix(elems[0].Key(), "$") {
		return elems[0].Key(), true
	}
	return "", false
}

// exprArgs is an operator's arguments: an array's elements, or the one value.
func exprArgs(v bson.RawValue) []bson.RawValue {
	if v.Type == bsontype.Array {
		vals, _ := v.Array().Values()
		return vals
	}
	return []bson.RawValue{v}
}

func operatorList() string {
	return strings.Join(slices.Sorted(maps.Keys(exprOperators)), ", ")
}

// evalExpr evaluates an expression checkExpr accepted against doc; ok is false when
// it names a missing field (such a field is left out of a document of expressions).
func evalExpr(doc bson.Raw, e bson.RawValue) (bson.RawValue, bool) {
	switch e.Type {
	case bsontype.String:
		s := e.StringValue()
		if strings.HasPrefix(s, "$") {
			return lookupPath(doc, s[1:])
		}
	case bsontype.Array:
		vals, _ := e.Array().Values()
		idx, out := bsoncore.AppendArrayStart(nil)
		for i, v := range vals {
			r, ok := evalExpr(doc, v)
			if !ok {
				r = nullValue // a missing field is null inside an array
			}
			out = bsoncore.AppendValueElement(out, fmt.Sprint(i), core(r))
		}
		out, _ = bsoncore.AppendArrayEnd(out, idx)
		return bson.RawValue{Type: bsontype.Array, Value: out}, true
	case bsontype.EmbeddedDocument:
		elems, _ := e.Document().Elements()
		if op, ok := operatorOf(elems); ok {
			return evalOperator(doc, op, elems[0].Value())
		}
		idx, out := bsoncore.AppendDocumentStart(nil)
		for _, el := range elems {
			if v, ok := evalExpr(doc, el.Value()); ok {
				out = bsoncore.AppendValueElement(out, el.Key(), core(v))
			}
		}
		out, _ = bsoncore.AppendDocumentEnd(out, idx)
		return bson.RawValue{Type: bsontype.EmbeddedDocument, Value: out}, true
	}
	return e, true
}

func evalOperator(doc bson.Raw, op string, arg bson.RawValue) (bson.RawValue, bool) {
	switch op {
	case "$literal":
		return arg, true
	case "$ifNull":
		// The first argument neither null nor missing, else the last one.
		args := exprArgs(arg)
		for _, a := range args[:len(args)-1] {
			if v, ok := evalExpr(doc, a); ok && v.Type != bsontype.Null && v.Type != bsontype.Undefined {
				return v, true
			}
		}
		return evalExpr(doc, args[len(args)-1])
	}
	return nullValue, true // unreachable: checkExpr refused it
}

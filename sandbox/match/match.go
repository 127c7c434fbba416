// Package match evaluates MongoDB query filters on BSON documents, in Go.
//
//	filter (bson.Raw) ─► Compile ─► Matcher ─┬─► Match(doc) bool
//	                                          ├─► IDEquality() : the _id the filter pins, if any
//	                                          ├─► IDValues()   : the few _ids it allows ($in), if any
//	                                          └─► Equalities() : the fields an upsert seeds
//
// The sandbox needs it because FerretDB only pushes a filter that is exactly {_id: v}
// down to SQLite: a shard front fetches a document by its lone _id and checks the rest
// of the filter here, and serves local.oplog.rs queries itself. It covers the operators
// those callers meet (equality with dotted paths and array membership, $ne, $gt/$gte/
// $lt/$lte with type bracketing, $in, $nin, $exists, $not, regular expressions, $and,
// $or, $nor); anything
// else is reported as ErrUnsupported so that callers can fall back to the backend.
package match

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// ErrUnsupported is wrapped by Compile's error when a filter uses an operator or form
// this package does not evaluate; the message names it.
var ErrUnsupported = errors.New("unsupported by the sandbox's query matcher")

// Matcher is a compiled filter. It is immutable and safe for concurrent use.
type Matcher struct {
	root node
	eqs  []Equality
	ids  [][]bson.RawValue // sets of values _id is confined to ($in lists), each a must
}

// Equality is one field the filter pins to a value with implicit equality or $eq,
// outside of any $or/$nor/$not.
type Equality struct {
	// Path is the field path as written in the filter, possibly dotted ("a.b").
	Path  string
	Value bson.RawValue
}

// Compile parses a filter. An empty or nil filter matches every document.
func Compile(filter bson.Raw) (*Matcher, error) {
	m := &Matcher{}
	root, err := compileDoc(filter, &pins{eqs: &m.eqs, ids: &m.ids}, true)
	if err != nil {
		return nil, err
	}
	m.root = root
	return m, nil
}

// Match reports whether doc satisfies the filter.
func (m *Matcher) Match(doc bson.Raw) bool { return m.root.match(doc) }

// IDEquality reports the value the filter pins _id to ({_id: v}, {_id: {$eq: v}},
// {_id: {$in: [v]}}, possibly inside a top-level $and), so that a caller can fetch the one
// candidate document by a lone {_id: v} and check the rest with Match.
func (m *Matcher) IDEquality() (bson.RawValue, bool) {
	for _, e := range m.eqs {
		if e.Path == "_id" {
			return e.Value, true
		}
	}
	return bson.RawValue{}, false
}

// IDValues reports a short list of values that _id must be one of, when the filter
// pins _id by equality or by $in outside of any $or/$nor/$not (the smallest such list),
// so that a caller can fetch each candidate by a lone {_id: v}.
func (m *Matcher) IDValues() ([]bson.RawValue, bool) {
	if v, ok := m.IDEquality(); ok {
		return []bson.RawValue{v}, true
	}
	var best []bson.RawValue
	for _, set := range m.ids {
		if best == nil || len(set) < len(best) {
			best = set
		}
	}
	return append([]bson.RawValue(nil), best...), best != nil
}

// Equalities lists the fields the filter pins, in filter order: what MongoDB copies into
// the document an upsert creates.
func (m *Matcher) Equalities() []Equality { return append([]Equality(nil), m.eqs...) }

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrUnsupported)
}

// node is one compiled predicate over a whole document.
type node interface{ match(doc bson.Raw) bool }

type andNode []node

func (n andNode) match(doc bson.Raw) bool {
	for _, c := range n {
		if !c.match(doc) {
			return false
		}
	}
	return true
}

type orNode []node

func (n orNode) match(doc bson.Raw) bool {
	for _, c := range n {
		if c.match(doc) {
			return true
		}
	}
	return false
}

type notNode struct{ inner node }

func (n notNode) match(doc bson.Raw) bool { return !n.inner.match(doc) }

// fieldNode applies a value predicate to what a path resolves to.
type fieldNode struct {
	path []string
	pred pred
}

func (n fieldNode) match(doc bson.Raw) bool { return n.pred(resolve(doc, n.path)) }

// pins collects what a filter pins while it compiles: equalities, and $in lists on _id.
type pins struct {
	eqs *[]Equality
	ids *[][]bson.RawValue
}

// compileDoc compiles a filter document; p collects pinned fields when the document is
// in an "and" position (top level or inside a top-level $and), which collect says.
func compileDoc(filter bson.Raw, p *pins, collect bool) (node, error) {
	if len(filter) == 0 {
		return andNode(nil), nil
	}
	elems, err := filter.Elements()
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	var out andNode
	for _, e := range elems {
		key, val := e.Key(), e.Value()
		switch key {
		case "$and", "$or", "$nor":
			subs, err := compileClauses(key, val, p, collect && key == "$and")
			if err != nil {
				return nil, err
			}
			switch key {
			case "$and":
				out = append(out, andNode(subs))
			case "$or":
				out = append(out, orNode(subs))
			default:
				out = append(out, notNode{orNode(subs)})
			}
			continue
		case "$comment":
			continue
		}
		if strings.HasPrefix(key, "$") {
			return nil, unsupported("top-level operator %s", key)
		}
		pr, err := compileValue(key, val, p, collect)
		if err != nil {
			return nil, err
		}
		out = append(out, fieldNode{path: strings.Split(key, "."), pred: pr})
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

func compileClauses(op string, val bson.RawValue, p *pins, collect bool) ([]node, error) {
	arr, ok := val.ArrayOK()
	if !ok {
		return nil, fmt.Errorf("%s must be an array of filter documents", op)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("%s must be a nonempty array", op)
	}
	out := make([]node, 0, len(vals))
	for _, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, fmt.Errorf("%s entries must be documents", op)
		}
		n, err := compileDoc(d, p, collect)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// isOperatorDoc reports whether a field's value is an operator expression
// ({$gt: 1, ...}) rather than a literal document to compare with.
func isOperatorDoc(v bson.RawValue) (bson.Raw, bool) {
	d, ok := v.DocumentOK()
	if !ok {
		return nil, false
	}
	first, err := d.IndexErr(0)
	if err != nil {
		return nil, false
	}
	return d, strings.HasPrefix(first.Key(), "$")
}

// compileValue compiles the condition on one field.
func compileValue(path string, val bson.RawValue, pins *pins, collect bool) (pred, error) {
	if val.Type == bsontype.Regex {
		pattern, options := val.Regex()
		return regexPred(path, pattern, options)
	}
	ops, isOps := isOperatorDoc(val)
	if !isOps {
		if collect {
			*pins.eqs = append(*pins.eqs, Equality{Path: path, Value: val})
		}
		return eqPred(val), nil
	}
	elems, err := ops.Elements()
	if err != nil {
		return nil, fmt.Errorf("filter on %q: %w", path, err)
	}
	var preds []pred
	for _, e := range elems {
		op, arg := e.Key(), e.Value()
		var p pred
		switch op {
		case "$eq":
			if arg.Type == bsontype.Regex {
				p = eqPred(arg)
				break
			}
			if collect {
				*pins.eqs = append(*pins.eqs, Equality{Path: path, Value: arg})
			}
			p = eqPred(arg)
		case "$ne":
			p = notPred(eqPred(arg))
		case "$gt", "$gte", "$lt", "$lte":
			p = cmpPred(op, arg)
		case "$in", "$nin":
			list, err := inList(path, op, arg)
			if err != nil {
				return nil, err
			}
			if op == "$in" && collect && len(list) == 1 {
				*pins.eqs = append(*pins.eqs, Equality{Path: path, Value: list[0]})
			}
			if op == "$in" && collect && path == "_id" {
				*pins.ids = append(*pins.ids, list)
			}
			p = inPred(list)
			if op == "$nin" {
				p = notPred(p)
			}
		case "$exists":
			p = existsPred(truthy(arg))
		case "$regex":
			var err error
			if p, err = compileRegexOp(path, arg, ops.Lookup("$options")); err != nil {
				return nil, err
			}
		case "$options":
			if _, err := ops.LookupErr("$regex"); err != nil {
				return nil, fmt.Errorf("$options on %q needs a $regex", path)
			}
			continue
		case "$not":
			inner, err := compileNot(path, arg)
			if err != nil {
				return nil, err
			}
			p = notPred(inner)
		default:
			if !strings.HasPrefix(op, "$") {
				return nil, fmt.Errorf("filter on %q mixes operators and fields (%q)", path, op)
			}
			return nil, unsupported("operator %s on %q", op, path)
		}
		preds = append(preds, p)
	}
	if len(preds) == 1 {
		return preds[0], nil
	}
	return allPred(preds), nil
}

func compileNot(path string, arg bson.RawValue) (pred, error) {
	if arg.Type == bsontype.Regex {
		pattern, options := arg.Regex()
		return regexPred(path, pattern, options)
	}
	if _, ok := isOperatorDoc(arg); !ok {
		return nil, fmt.Errorf("$not on %q needs an operator document", path)
	}
	var eqs []Equality
	var ids [][]bson.RawValue
	return compileValue(path, arg, &pins{&eqs, &ids}, false)
}

func inList(path, op string, arg bson.RawValue) ([]bson.RawValue, error) {
	arr, ok := arg.ArrayOK()
	if !ok {
		return nil, fmt.Errorf("%s on %q needs an array", op, path)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, fmt.Errorf("%s on %q: %w", op, path, err)
	}
	for _, v := range vals {
		if v.Type == bsontype.Regex {
			// Checked here, so that inPred can compile it without failing.
			pattern, options := v.Regex()
			if _, err := regexPred(path, pattern, options); err != nil {
				return nil, err
			}
		}
	}
	return vals, nil
}

func truthy(v bson.RawValue) bool {
	switch v.Type {
	case bsontype.Boolean:
		return v.Boolean()
	case bsontype.Null, bsontype.Undefined:
		return false
	case bsontype.Int32, bsontype.Int64, bsontype.Double, bsontype.Decimal128:
		return compareValues(v, bson.RawValue{Type: bsontype.Int32, Value: []byte{0, 0, 0, 0}}) != 0
	}
	return true
}

// resolved is what a path yields in one document: the values found, and whether some
// branch of the path was missing (which matters for null equality).
type resolved struct {
	values  []bson.RawValue
	missing bool
}

// resolve follows a dotted path the way MongoDB does: through embedded documents, into
// arrays by numeric index, and across the documents inside arrays.
func resolve(doc bson.Raw, path []string) resolved {
	var r resolved
	walkDoc(doc, path, &r)
	return r
}

func walkDoc(doc bson.Raw, path []string, r *resolved) {
	v, err := doc.LookupErr(path[0])
	if err != nil {
		r.missing = true
		return
	}
	walkValue(v, path[1:], r)
}

func walkValue(v bson.RawValue, rest []string, r *resolved) {
	if len(rest) == 0 {
		r.values = append(r.values, v)
		return
	}
	switch v.Type {
	case bsontype.EmbeddedDocument:
		walkDoc(v.Document(), rest, r)
	case bsontype.Array:
		arr := v.Array()
		before := len(r.values)
		found := false
		if idx, err := strconv.Atoi(rest[0]); err == nil && idx >= 0 {
			if elem, err := arr.IndexErr(uint(idx)); err == nil {
				walkValue(elem.Value(), rest[1:], r)
				found = true
			}
		}
		vals, _ := arr.Values()
		for _, elem := range vals {
			if elem.Type == bsontype.EmbeddedDocument {
				walkDoc(elem.Document(), rest, r)
				found = true
			}
		}
		if !found && len(r.values) == before {
			r.missing = true
		}
	default:
		r.missing = true
	}
}

// pred tests what a path resolved to.
type pred func(r resolved) bool

func notPred(p pred) pred { return func(r resolved) bool { return !p(r) } }

func allPred(ps []pred) pred {
	return func(r resolved) bool {
		for _, p := range ps {
			if !p(r) {
				return false
			}
		}
		return true
	}
}

// candidates calls fn with each value a leaf comparison considers: the value itself and,
// for an array, each of its elements. It stops when fn returns true.
func candidates(r resolved, fn func(v bson.RawValue) bool) bool {
	for _, v := range r.values {
		if fn(v) {
			return true
		}
		if v.Type == bsontype.Array {
			elems, _ := v.Array().Values()
			for _, e := range elems {
				if fn(e) {
					return true
				}
			}
		}
	}
	return false
}

func isNullish(v bson.RawValue) bool { return v.Type == bsontype.Null || v.Type == bsontype.Undefined }

func eqPred(operand bson.RawValue) pred {
	if operand.Type == bsontype.Null {
		return func(r resolved) bool {
			return r.missing || candidates(r, isNullish)
		}
	}
	return func(r resolved) bool {
		return candidates(r, func(v bson.RawValue) bool {
			return typeClass(v.Type) == typeClass(operand.Type) && compareValues(v, operand) == 0
		})
	}
}

func inPred(list []bson.RawValue) pred {
	preds := make([]pred, len(list))
	for i, v := range list {
		preds[i] = eqPred(v)
		if v.Type == bsontype.Regex {
			pattern, options := v.Regex()
			preds[i], _ = regexPred("", pattern, options) // inList checked it
		}
	}
	return func(r resolved) bool {
		for _, p := range preds {
			if p(r) {
				return true
			}
		}
		return false
	}
}

func cmpPred(op string, operand bson.RawValue) pred {
	if operand.Type == bsontype.Null {
		if op == "$gte" || op == "$lte" {
			return eqPred(operand)
		}
		return func(resolved) bool { return false }
	}
	class := typeClass(operand.Type)
	return func(r resolved) bool {
		return candidates(r, func(v bson.RawValue) bool {
			if typeClass(v.Type) != class {
				return false
			}
			c := compareValues(v, operand)
			switch op {
			case "$gt":
				return c > 0
			case "$gte":
				return c >= 0
			case "$lt":
				return c < 0
			}
			return c <= 0
		})
	}
}

func existsPred(want bool) pred {
	return func(r resolved) bool { return (len(r.values) > 0) == want }
}

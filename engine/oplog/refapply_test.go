package oplog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// The reference applier: an in-memory database applying Writes with MongoDB's
// semantics, for tests only. It implements exactly what this package emits:
// replace-upsert, delete and update by a document-key filter; $set and $unset
// with dotted paths (UpdateObjectNode: children in cmpPathsAndArrayIndexes
// order, existing fields changed in place, missing ones appended, arrays padded
// with null, $unset of an array element sets null); and update pipelines made of
// $replaceWith with the expression operators update.go writes.

// refDB is a set of collections by namespace.
type refDB map[Namespace]*refColl

func (db refDB) coll(ns Namespace) *refColl {
	c := db[ns]
	if c == nil {
		c = &refColl{}
		db[ns] = c
	}
	return c
}

// apply applies a write.
func (db refDB) apply(w Write) error { return db.coll(w.NS).apply(w) }

// refColl holds documents in natural (insertion) order.
type refColl struct{ docs []bson.Raw }

func (c *refColl) find(filter bson.Raw) int {
	for i, d := range c.docs {
		if matches(d, filter) {
			return i
		}
	}
	return -1
}

func (c *refColl) apply(w Write) error {
	i := c.find(w.Filter)
	switch w.Kind {
	case InsertReplace:
		doc := w.Replacement
		if _, ok := lookup(doc, "_id"); !ok {
			id, _ := lookup(w.Filter, "_id")
			off, b := startDoc(nil)
			b = append(b, id.raw...)
			body, _ := docBody(doc)
			b = append(b, body...)
			doc = bson.Raw(endDoc(b, off))
		}
		doc = append(bson.Raw(nil), doc...)
		if i < 0 {
			if !w.Upsert {
				return nil
			}
			c.docs = append(c.docs, doc)
			return nil
		}
		c.docs[i] = doc
	case Delete:
		if i >= 0 {
			c.docs = slices.Delete(c.docs, i, i+1)
		}
	case Update:
		if i < 0 {
			return nil
		}
		var out bson.Raw
		var err error
		if w.Pipeline != nil {
			out, err = applyPipeline(c.docs[i], w.Pipeline)
		} else {
			out, err = applyOperators(c.docs[i], w.Update)
		}
		if err != nil {
			return err
		}
		c.docs[i] = out
	default:
		return fmt.Errorf("unknown write kind %v", w.Kind)
	}
	return nil
}

// matches reports whether every field of filter (dotted paths) equals the
// document's value; null matches a missing field.
func matches(doc, filter bson.Raw) bool {
	it, _ := newIter(filter)
	for {
		f, ok := it.next()
		if !ok {
			return true
		}
		t, v, err := lookupPath(doc, string(f.name))
		if err != nil {
			return false
		}
		if !valuesEqual(&mval{t: t, raw: v}, &mval{t: f.t, raw: f.val}) {
			return false
		}
	}
}

// mval is a mutable BSON value: a scalar (raw bytes), an object or an array.
type mval struct {
	t    bsontype.Type
	raw  []byte   // scalar value bytes
	keys []string // object field names
	vals []*mval  // object field values, or array elements
}

func parseValue(t bsontype.Type, v []byte) *mval {
	if t != bsontype.EmbeddedDocument && t != bsontype.Array {
		return &mval{t: t, raw: v}
	}
	m := &mval{t: t}
	it, _ := newIter(v)
	for {
		el, ok := it.next()
		if !ok {
			return m
		}
		if t == bsontype.EmbeddedDocument {
			m.keys = append(m.keys, string(el.name))
		}
		m.vals = append(m.vals, parseValue(el.t, el.val))
	}
}

func (m *mval) appendValue(dst []byte) []byte {
	if m.t != bsontype.EmbeddedDocument && m.t != bsontype.Array {
		return append(dst, m.raw...)
	}
	off, dst := startDoc(dst)
	for i, v := range m.vals {
		name := arrayKey(i)
		if m.t == bsontype.EmbeddedDocument {
			name = m.keys[i]
		}
		dst = v.appendValue(appendHeader(dst, v.t, []byte(name)))
	}
	return endDoc(dst, off)
}

func (m *mval) doc() bson.Raw { return bson.Raw(m.appendValue(nil)) }

func (m *mval) field(name string) int { return slices.Index(m.keys, name) }

var nullVal = &mval{t: bsontype.Null}

// --- $set / $unset ---

type opNode struct {
	set      *mval // leaf $set value
	unset    bool  // leaf $unset
	children map[string]*opNode
}

func (n *opNode) hasSet() bool {
	if n.set != nil {
		return true
	}
	for _, c := range n.children {
		if c.hasSet() {
			return true
		}
	}
	return false
}

func applyOperators(doc, update bson.Raw) (bson.Raw, error) {
	root := &opNode{children: map[string]*opNode{}}
	it, _ := newIter(update)
	for {
		op, ok := it.next()
		if !ok {
			break
		}
		if !op.is("$set") && !op.is("$unset") {
			return nil, fmt.Errorf("reference applier: unsupported operator %s", op.name)
		}
		fit, _ := newIter(op.val)
		for {
			f, ok := fit.next()
			if !ok {
				break
			}
			n := root
			for part := range strings.SplitSeq(string(f.name), ".") {
				if n.set != nil || n.unset {
					return nil, fmt.Errorf("conflicting paths at %s", f.name)
				}
				c := n.children[part]
				if c == nil {
					c = &opNode{children: map[string]*opNode{}}
					n.children[part] = c
				}
				n = c
			}
			if n.set != nil || n.unset || len(n.children) > 0 {
				return nil, fmt.Errorf("conflicting paths at %s", f.name)
			}
			if op.is("$set") {
				n.set = parseValue(f.t, f.val)
			} else {
				n.unset = true
			}
		}
	}
	m := parseValue(bsontype.EmbeddedDocument, doc)
	if err := applyNode(m, root); err != nil {
		return nil, err
	}
	return m.doc(), nil
}

// applyNode applies the children of n to the object or array m.
func applyNode(m *mval, n *opNode) error {
	names := make([]string, 0, len(n.children))
	for k := range n.children {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case lessPathsAndIndexes([]byte(a), []byte(b)):
			return -1
		}
		return 1
	})
	for _, name := range names {
		c := n.children[name]
		idx := -1
		if m.t == bsontype.Array {
			i, err := strconv.Atoi(name)
			if err != nil || i < 0 {
				if c.hasSet() {
					return fmt.Errorf("cannot create field %q in an array", name)
				}
				continue
			}
			if i < len(m.vals) {
				idx = i
			}
		} else {
			idx = m.field(name)
		}
		setAt := func(v *mval) {
			switch {
			case idx >= 0:
				m.vals[idx] = v
			case m.t == bsontype.Array:
				i, _ := strconv.Atoi(name)
				for len(m.vals) < i {
					m.vals = append(m.vals, nullVal)
				}
				m.vals = append(m.vals, v)
			default:
				m.keys = append(m.keys, name)
				m.vals = append(m.vals, v)
			}
		}
		switch {
		case c.set != nil:
			setAt(c.set)
		case c.unset:
			switch {
			case idx < 0:
			case m.t == bsontype.Array:
				m.vals[idx] = nullVal
			default:
				m.keys = slices.Delete(m.keys, idx, idx+1)
				m.vals = slices.Delete(m.vals, idx, idx+1)
			}
		default:
			if idx >= 0 {
				v := m.vals[idx]
				if v.t == bsontype.EmbeddedDocument || v.t == bsontype.Array {
					if err := applyNode(v, c); err != nil {
						return err
					}
					continue
				}
				if c.hasSet() {
					return fmt.Errorf("cannot create field in %q: it is %v", name, v.t)
				}
				continue
			}
			if !c.hasSet() {
				continue
			}
			v := &mval{t: bsontype.EmbeddedDocument}
			setAt(v)
			if err := applyNode(v, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// --- pipelines ---

func applyPipeline(doc bson.Raw, stages []bson.Raw) (bson.Raw, error) {
	cur := parseValue(bsontype.EmbeddedDocument, doc)
	for _, st := range stages {
		op, ok := firstElement(st)
		if !ok || !op.is("$replaceWith") {
			return nil, fmt.Errorf("reference applier: unsupported stage %s", st)
		}
		v, err := eval(parseValue(op.t, op.val), map[string]*mval{"ROOT": cur, "CURRENT": cur})
		if err != nil {
			return nil, err
		}
		if v == nil || v.t != bsontype.EmbeddedDocument {
			return nil, errors.New("$replaceWith: the expression is not an object")
		}
		if _, ok := lookup(v.doc(), "_id"); !ok {
			return nil, errors.New("$replaceWith removed _id")
		}
		cur = v
	}
	return cur.doc(), nil
}

func (m *mval) str() (string, bool) {
	if m == nil || m.t != bsontype.String {
		return "", false
	}
	return string(str(m.raw)), true
}

func strVal(s string) *mval {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(s)+1))
	b = append(append(b, s...), 0)
	return &mval{t: bsontype.String, raw: b}
}

func boolVal(b bool) *mval {
	if b {
		return &mval{t: bsontype.Boolean, raw: []byte{1}}
	}
	return &mval{t: bsontype.Boolean, raw: []byte{0}}
}

func intVal(i int) *mval {
	return &mval{t: bsontype.Int32, raw: binary.LittleEndian.AppendUint32(nil, uint32(int32(i)))}
}

func (m *mval) num() (float64, bool) {
	if m == nil {
		return 0, false
	}
	_, f, ok := element{t: m.t, val: m.raw}.number()
	return f, ok
}

func valuesEqual(a, b *mval) bool {
	if a == nil || b == nil {
		return a == b
	}
	if fa, ok := a.num(); ok {
		fb, ok := b.num()
		return ok && fa == fb
	}
	return a.t == b.t && bytes.Equal(a.appendValue(nil), b.appendValue(nil))
}

// eval evaluates an aggregation expression; nil is "missing".
func eval(e *mval, vars map[string]*mval) (*mval, error) {
	switch e.t {
	case bsontype.String:
		s, _ := e.str()
		if !strings.HasPrefix(s, "$") {
			return e, nil
		}
		if !strings.HasPrefix(s, "$$") {
			s = "$$CURRENT." + s[1:]
		}
		parts := strings.Split(s[2:], ".")
		v, ok := vars[parts[0]]
		if !ok {
			return nil, fmt.Errorf("undefined variable %s", parts[0])
		}
		for _, p := range parts[1:] {
			if v == nil || v.t != bsontype.EmbeddedDocument {
				return nil, nil
			}
			i := v.field(p)
			if i < 0 {
				return nil, nil
			}
			v = v.vals[i]
		}
		return v, nil
	case bsontype.Array:
		out := &mval{t: bsontype.Array}
		for _, x := range e.vals {
			v, err := eval(x, vars)
			if err != nil {
				return nil, err
			}
			if v == nil {
				v = nullVal
			}
			out.vals = append(out.vals, v)
		}
		return out, nil
	case bsontype.EmbeddedDocument:
		if len(e.keys) == 1 && strings.HasPrefix(e.keys[0], "$") {
			return evalOp(e.keys[0], e.vals[0], vars)
		}
		out := &mval{t: bsontype.EmbeddedDocument}
		for i, k := range e.keys {
			v, err := eval(e.vals[i], vars)
			if err != nil {
				return nil, err
			}
			if v != nil {
				out.keys = append(out.keys, k)
				out.vals = append(out.vals, v)
			}
		}
		return out, nil
	}
	return e, nil
}

// args evaluates an operator's arguments (an array, or a single expression).
func args(arg *mval, vars map[string]*mval, n int) ([]*mval, error) {
	list := []*mval{arg}
	if arg.t == bsontype.Array {
		list = arg.vals
	}
	if n >= 0 && len(list) != n {
		return nil, fmt.Errorf("want %d arguments, got %d", n, len(list))
	}
	out := make([]*mval, len(list))
	for i, a := range list {
		v, err := eval(a, vars)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// spec returns the named fields of an operator's document argument.
func spec(arg *mval, names ...string) (map[string]*mval, error) {
	if arg.t != bsontype.EmbeddedDocument {
		return nil, errors.New("operator argument is not a document")
	}
	out := map[string]*mval{}
	for i, k := range arg.keys {
		if !slices.Contains(names, k) {
			return nil, fmt.Errorf("unknown argument %s", k)
		}
		out[k] = arg.vals[i]
	}
	return out, nil
}

func withVar(vars map[string]*mval, name string, v *mval) map[string]*mval {
	nv := make(map[string]*mval, len(vars)+1)
	for k, x := range vars {
		nv[k] = x
	}
	nv[name] = v
	return nv
}

func evalOp(op string, arg *mval, vars map[string]*mval) (*mval, error) {
	switch op {
	case "$literal":
		return arg, nil
	case "$let":
		s, err := spec(arg, "vars", "in")
		if err != nil {
			return nil, err
		}
		nv := vars
		for i, k := range s["vars"].keys {
			v, err := eval(s["vars"].vals[i], vars)
			if err != nil {
				return nil, err
			}
			nv = withVar(nv, k, v)
		}
		return eval(s["in"], nv)
	case "$map", "$filter":
		field := "in"
		if op == "$filter" {
			field = "cond"
		}
		s, err := spec(arg, "input", "as", field)
		if err != nil {
			return nil, err
		}
		in, err := eval(s["input"], vars)
		if err != nil {
			return nil, err
		}
		if in == nil || in.t != bsontype.Array {
			return nil, fmt.Errorf("%s input is not an array", op)
		}
		as, _ := s["as"].str()
		out := &mval{t: bsontype.Array}
		for _, x := range in.vals {
			v, err := eval(s[field], withVar(vars, as, x))
			if err != nil {
				return nil, err
			}
			switch {
			case op == "$map" && v == nil:
				out.vals = append(out.vals, nullVal)
			case op == "$map":
				out.vals = append(out.vals, v)
			case truthy(v):
				out.vals = append(out.vals, x)
			}
		}
		return out, nil
	case "$switch":
		s, err := spec(arg, "branches", "default")
		if err != nil {
			return nil, err
		}
		for _, b := range s["branches"].vals {
			bs, err := spec(b, "case", "then")
			if err != nil {
				return nil, err
			}
			c, err := eval(bs["case"], vars)
			if err != nil {
				return nil, err
			}
			if truthy(c) {
				return eval(bs["then"], vars)
			}
		}
		if s["default"] == nil {
			return nil, errors.New("$switch matched no branch and has no default")
		}
		return eval(s["default"], vars)
	}
	if op == "$cond" {
		// Lazy, as ExpressionCond: only the chosen branch is evaluated.
		if arg.t != bsontype.Array || len(arg.vals) != 3 {
			return nil, errors.New("$cond: want [if, then, else]")
		}
		c, err := eval(arg.vals[0], vars)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return eval(arg.vals[1], vars)
		}
		return eval(arg.vals[2], vars)
	}
	n := map[string]int{
		"$arrayToObject": 1, "$objectToArray": 1, "$not": 1, "$type": 1, "$size": 1,
		"$in": 2, "$eq": 2, "$lt": 2, "$arrayElemAt": 2, "$range": 2, "$max": -1,
		"$concatArrays": -1,
	}
	want, ok := n[op]
	if !ok {
		return nil, fmt.Errorf("reference applier: unsupported operator %s", op)
	}
	a, err := args(arg, vars, want)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	switch op {
	case "$not":
		return boolVal(!truthy(a[0])), nil
	case "$eq":
		return boolVal(valuesEqual(orNull(a[0]), orNull(a[1]))), nil
	case "$lt":
		x, ok1 := a[0].num()
		y, ok2 := a[1].num()
		if !ok1 || !ok2 {
			return nil, errors.New("$lt: reference applier compares numbers only")
		}
		return boolVal(x < y), nil
	case "$in":
		if a[1] == nil || a[1].t != bsontype.Array {
			return nil, errors.New("$in needs an array")
		}
		for _, x := range a[1].vals {
			if valuesEqual(orNull(a[0]), x) {
				return boolVal(true), nil
			}
		}
		return boolVal(false), nil
	case "$type":
		if a[0] == nil {
			return strVal("missing"), nil
		}
		switch a[0].t {
		case bsontype.EmbeddedDocument:
			return strVal("object"), nil
		case bsontype.Array:
			return strVal("array"), nil
		}
		return strVal(a[0].t.String()), nil
	case "$size":
		if a[0] == nil || a[0].t != bsontype.Array {
			return nil, errors.New("$size needs an array")
		}
		return intVal(len(a[0].vals)), nil
	case "$max":
		var best *mval
		for _, x := range a {
			f, ok := x.num()
			if !ok {
				return nil, errors.New("$max: reference applier compares numbers only")
			}
			if b, _ := best.num(); best == nil || f > b {
				best = x
			}
		}
		return best, nil
	case "$range":
		lo, _ := a[0].num()
		hi, _ := a[1].num()
		out := &mval{t: bsontype.Array}
		for i := int(lo); i < int(hi); i++ {
			out.vals = append(out.vals, intVal(i))
		}
		return out, nil
	case "$arrayElemAt":
		f, _ := a[1].num()
		if a[0] == nil || a[0].t != bsontype.Array || f != math.Trunc(f) {
			return nil, errors.New("$arrayElemAt needs an array and an integer")
		}
		if i := int(f); i >= 0 && i < len(a[0].vals) {
			return a[0].vals[i], nil
		}
		return nil, nil
	case "$concatArrays":
		out := &mval{t: bsontype.Array}
		for _, x := range a {
			if x == nil || x.t != bsontype.Array {
				return nil, errors.New("$concatArrays needs arrays")
			}
			out.vals = append(out.vals, x.vals...)
		}
		return out, nil
	case "$objectToArray":
		if a[0] == nil || a[0].t != bsontype.EmbeddedDocument {
			return nil, errors.New("$objectToArray needs an object")
		}
		out := &mval{t: bsontype.Array}
		for i, k := range a[0].keys {
			out.vals = append(out.vals, &mval{t: bsontype.EmbeddedDocument, keys: []string{"k", "v"}, vals: []*mval{strVal(k), a[0].vals[i]}})
		}
		return out, nil
	case "$arrayToObject":
		if a[0] == nil || a[0].t != bsontype.Array {
			return nil, errors.New("$arrayToObject needs an array")
		}
		out := &mval{t: bsontype.EmbeddedDocument}
		for _, p := range a[0].vals {
			if p.t != bsontype.EmbeddedDocument || len(p.keys) != 2 || p.keys[0] != "k" || p.keys[1] != "v" {
				return nil, errors.New("$arrayToObject needs {k, v} pairs")
			}
			k, ok := p.vals[0].str()
			if !ok {
				return nil, errors.New("$arrayToObject: k is not a string")
			}
			if i := out.field(k); i >= 0 {
				out.vals[i] = p.vals[1]
				continue
			}
			out.keys = append(out.keys, k)
			out.vals = append(out.vals, p.vals[1])
		}
		return out, nil
	}
	return nil, fmt.Errorf("reference applier: unsupported operator %s", op)
}

func orNull(v *mval) *mval {
	if v == nil {
		return nullVal
	}
	return v
}

func truthy(v *mval) bool {
	if v == nil {
		return false
	}
	return element{t: v.t, val: v.raw}.truthy()
}

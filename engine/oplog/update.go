package oplog

import (
	"bytes"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// Translating a $v: 2 diff into a destination update.
//
// The destination must end up with the document MongoDB's diff applier produces
// (ApplyDiff), field order included. Plain operators reproduce it when three
// things hold, and this package uses them whenever they do because they are
// cheap and what every destination supports (the sandbox's FerretDB runs no
// pipeline updates):
//
//  1. New fields land in diff order. MongoDB applies the fields of one $set in
//     lexicographic order (UpdateObjectNode's children) and appends each
//     missing one at the end of its object. Older servers sort the children
//     bytewise (std::map); newer ones with pathsupport::cmpPathsAndArrayIndexes
//     (names of digits only, without a leading zero, by numeric value; the
//     rest bytewise). So the inserted fields (section i) of each object must be
//     in an order both rules agree with. Diffs built from modifier updates
//     are; diffs that MongoDB computes by comparing documents (pipeline
//     updates) list them in post-image order, which may be anything.
//  2. No array shrinks. Section l (new length) has no plain-operator
//     equivalent that composes with index updates on the same array in one
//     statement ($push {$each: [], $slice} conflicts with $set "arr.3").
//  3. Every field name is addressable by a dotted path: non-empty, without "."
//     and not starting with "$".
//
// An inserted field may already exist in the pre-image: MongoDB's diff
// calculator encodes "field moved to the end" as an insert, and the applier
// removes the old one before appending. A $set would update it in place
// instead. So the plain form is two statements: first {$unset: <every inserted
// path>}, which does nothing when the fields are new, then the update proper
// ({$set: updates, inserts and array elements, $unset: deletes}). Inserted
// shard key fields are left out of the first statement: unsetting one would
// move the document to another chunk. The two statements come from one entry;
// an entry counts as applied only when both are.
//
// Otherwise the translation is one pipeline update,
// [{$replaceWith: <expression>}], whose expression rebuilds the document the
// way the applier does: $objectToArray the old object, drop deleted and
// inserted fields ($filter), replace updated ones and rebuild sub-diffed ones
// ($map/$switch, null on a type mismatch), append the missing updated fields
// and the inserted ones ($concatArrays of {k, v} pairs with $literal values),
// and $arrayToObject the result. Arrays are rebuilt with $map over
// $range(0, new length) taking the old element, the diff's value, the
// rebuilt sub-diff or null. Field names go through $literal, so names with "."
// or "$" are fine. It needs MongoDB 4.2 or later on the destination, which any
// source writing $v: 2 diffs implies.

// updatePlan collects the plain-operator form of a diff.
type updatePlan struct {
	set     []planField // $set paths and values, in diff order
	unset   []string    // $unset paths (deletes)
	moved   []string    // inserted paths, unset first
	pathBuf []byte
}

type planField struct {
	path string
	elem element
}

func (p *updatePlan) reset() {
	p.set, p.unset, p.moved = p.set[:0], p.unset[:0], p.moved[:0]
}

// plainName reports whether a field name can be part of a dotted update path.
func plainName(name []byte) bool {
	return len(name) > 0 && name[0] != '$' && bytes.IndexByte(name, '.') < 0
}

// path returns prefix.name, reusing the plan's buffer.
func (p *updatePlan) path(prefix string, name []byte) string {
	p.pathBuf = p.pathBuf[:0]
	if prefix != "" {
		p.pathBuf = append(p.pathBuf, prefix...)
		p.pathBuf = append(p.pathBuf, '.')
	}
	p.pathBuf = append(p.pathBuf, name...)
	return string(p.pathBuf)
}

// planDoc fills the plan from a document diff; ok is false when plain
// operators cannot reproduce it.
func (p *updatePlan) planDoc(prefix string, d *docDiff) bool {
	var prevIns []byte
	for i := range d.mods {
		m := &d.mods[i]
		if !plainName(m.name) {
			return false
		}
		path := p.path(prefix, m.name)
		switch m.kind {
		case modDelete:
			p.unset = append(p.unset, path)
		case modUpdate:
			p.set = append(p.set, planField{path: path, elem: m.elem})
		case modInsert:
			if prevIns != nil && !NewFieldsInOrder(prevIns, m.name) {
				return false
			}
			prevIns = m.name
			p.set = append(p.set, planField{path: path, elem: m.elem})
			p.moved = append(p.moved, path)
		case modSubDoc:
			if !p.planDoc(path, m.doc) {
				return false
			}
		case modSubArr:
			if !p.planArr(path, m.arr) {
				return false
			}
		}
	}
	return true
}

func (p *updatePlan) planArr(prefix string, a *arrDiff) bool {
	if a.hasSize {
		return false
	}
	for i := range a.mods {
		m := &a.mods[i]
		path := p.path(prefix, []byte(arrayKey(m.idx)))
		switch {
		case m.doc != nil:
			if !p.planDoc(path, m.doc) {
				return false
			}
		case m.arr != nil:
			if !p.planArr(path, m.arr) {
				return false
			}
		default:
			p.set = append(p.set, planField{path: path, elem: m.elem})
		}
	}
	return true
}

func lessBytewise(a, b []byte) bool { return bytes.Compare(a, b) < 0 }

// NewFieldsInOrder reports whether MongoDB appends new field a before new field b
// when one modifier update adds both to an object, whichever order the server applies
// fields in (see rule 1 above): both orders must agree that a comes first.
func NewFieldsInOrder(a, b []byte) bool {
	return lessBytewise(a, b) && lessPathsAndIndexes(a, b)
}

// lessPathsAndIndexes is MongoDB's pathsupport::cmpPathsAndArrayIndexes, the
// order in which newer servers' UpdateObjectNode applies its children.
func lessPathsAndIndexes(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 || !isDigit(a[0]) || !isDigit(b[0]) ||
		(a[0] == '0' && len(a) > 1) || (b[0] == '0' && len(b) > 1) {
		return bytes.Compare(a, b) < 0
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	for i := range a {
		if !isDigit(a[i]) || !isDigit(b[i]) {
			break
		}
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return bytes.Compare(a, b) < 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendOperatorUpdate builds {$set: {...}, $unset: {...}} from the plan.
func (p *updatePlan) appendOperatorUpdate(dst []byte) []byte {
	off, dst := startDoc(dst)
	if len(p.set) > 0 {
		var s int
		s, dst = startSub(dst, bsontype.EmbeddedDocument, "$set")
		for _, f := range p.set {
			dst = appendElem(dst, f.path, f.elem.t, f.elem.val)
		}
		dst = endDoc(dst, s)
	}
	if len(p.unset) > 0 {
		dst = appendUnset(dst, p.unset)
	}
	return endDoc(dst, off)
}

// appendUnset appends a $unset element for paths.
func appendUnset(dst []byte, paths []string) []byte {
	s, dst := startSub(dst, bsontype.EmbeddedDocument, "$unset")
	for _, path := range paths {
		dst = appendBool(dst, path, true)
	}
	return endDoc(dst, s)
}

// pipelineStage builds {$replaceWith: <expression rebuilding the document>}.
func pipelineStage(d *docDiff) bson.Raw {
	off, dst := startDoc(nil)
	dst = appendHeader(dst, bsontype.EmbeddedDocument, []byte("$replaceWith"))
	dst = appendDocExpr(dst, "$$ROOT", d, 0)
	return bson.Raw(endDoc(dst, off))
}

// The expression builders append the value (a document) of an expression; the
// caller has written the element header. Variables carry the nesting level so
// an inner $map never shadows a variable an outer one still uses.

func varName(prefix byte, level int) string { return string(prefix) + itoa(level) }

// appendDocExpr appends an expression evaluating to the post-image of the
// object src under d.
func appendDocExpr(dst []byte, src string, d *docDiff, level int) []byte {
	o := varName('o', level)
	f := varName('f', level)
	p := varName('p', level)
	ref := "$$" + o
	fk, fv := "$$"+f+".k", "$$"+f+".v"

	// {$let: {vars: {oN: src}, in: {$arrayToObject: {$concatArrays: [...]}}}}
	off, dst := startDoc(dst)
	var let, vars, in, ato, cat int
	let, dst = startSub(dst, bsontype.EmbeddedDocument, "$let")
	vars, dst = startSub(dst, bsontype.EmbeddedDocument, "vars")
	dst = appendStr(dst, o, src)
	dst = endDoc(dst, vars)
	in, dst = startSub(dst, bsontype.EmbeddedDocument, "in")
	ato, dst = startSub(dst, bsontype.EmbeddedDocument, "$arrayToObject")
	cat, dst = startSub(dst, bsontype.Array, "$concatArrays")
	n := 0

	// 1. The old fields, minus deleted and inserted ones, with updated and
	// sub-diffed ones rebuilt.
	kept := d.nDel > 0 || d.nIns > 0
	rebuilt := d.nUpd > 0 || d.nSubs > 0
	key := arrayKey(n)
	n++
	var mp, mpIn int
	if rebuilt {
		mp, dst = startSub(dst, bsontype.EmbeddedDocument, key)
		mpIn, dst = startSub(dst, bsontype.EmbeddedDocument, "$map")
		key = "input"
	}
	if kept {
		// {$filter: {input: {$objectToArray: oN}, as: fN, cond: {$not: [{$in: [fN.k, {$literal: [names]}]}]}}}
		var flt, fltIn, cond, not, in2, in2Args, lit, names int
		flt, dst = startSub(dst, bsontype.EmbeddedDocument, key)
		fltIn, dst = startSub(dst, bsontype.EmbeddedDocument, "$filter")
		dst = appendObjectToArray(dst, "input", ref)
		dst = appendStr(dst, "as", f)
		cond, dst = startSub(dst, bsontype.EmbeddedDocument, "cond")
		not, dst = startSub(dst, bsontype.Array, "$not")
		in2, dst = startSub(dst, bsontype.EmbeddedDocument, "0")
		in2Args, dst = startSub(dst, bsontype.Array, "$in")
		dst = appendStr(dst, "0", fk)
		lit, dst = startSub(dst, bsontype.EmbeddedDocument, "1")
		names, dst = startSub(dst, bsontype.Array, "$literal")
		j := 0
		for i := range d.mods {
			if m := &d.mods[i]; m.kind == modDelete || m.kind == modInsert {
				dst = appendStr(dst, arrayKey(j), string(m.name))
				j++
			}
		}
		dst = endDoc(dst, names)
		dst = endDoc(dst, lit)
		dst = endDoc(dst, in2Args)
		dst = endDoc(dst, in2)
		dst = endDoc(dst, not)
		dst = endDoc(dst, cond)
		dst = endDoc(dst, fltIn)
		dst = endDoc(dst, flt)
	} else {
		dst = appendObjectToArray(dst, key, ref)
	}
	if rebuilt {
		dst = appendStr(dst, "as", f)
		var in3, sw, br int
		in3, dst = startSub(dst, bsontype.EmbeddedDocument, "in")
		sw, dst = startSub(dst, bsontype.EmbeddedDocument, "$switch")
		br, dst = startSub(dst, bsontype.Array, "branches")
		j := 0
		for i := range d.mods {
			m := &d.mods[i]
			if m.kind != modUpdate && m.kind != modSubDoc && m.kind != modSubArr {
				continue
			}
			var b, then int
			b, dst = startSub(dst, bsontype.EmbeddedDocument, arrayKey(j))
			j++
			dst = appendEqLiteral(dst, "case", fk, m.name)
			then, dst = startSub(dst, bsontype.EmbeddedDocument, "then")
			dst = appendStr(dst, "k", fk)
			switch m.kind {
			case modUpdate:
				dst = appendLiteral(dst, "v", m.elem)
			case modSubDoc:
				dst = appendHeader(dst, bsontype.EmbeddedDocument, []byte("v"))
				dst = appendTypedRebuild(dst, fv, "object", func(dst []byte) []byte {
					return appendDocExpr(dst, fv, m.doc, level+1)
				})
			case modSubArr:
				dst = appendHeader(dst, bsontype.EmbeddedDocument, []byte("v"))
				dst = appendTypedRebuild(dst, fv, "array", func(dst []byte) []byte {
					return appendArrExpr(dst, fv, m.arr, level+1)
				})
			}
			dst = endDoc(dst, then)
			dst = endDoc(dst, b)
		}
		dst = endDoc(dst, br)
		dst = appendStr(dst, "default", "$$"+f)
		dst = endDoc(dst, sw)
		dst = endDoc(dst, in3)
		dst = endDoc(dst, mpIn)
		dst = endDoc(dst, mp)
	}

	// 2. Updated fields the old object lacks, in diff order.
	if d.nUpd > 0 {
		var flt, fltIn, arr, cond, not, in2, in2Args, keys, keysMap int
		flt, dst = startSub(dst, bsontype.EmbeddedDocument, arrayKey(n))
		n++
		fltIn, dst = startSub(dst, bsontype.EmbeddedDocument, "$filter")
		arr, dst = startSub(dst, bsontype.Array, "input")
		j := 0
		for i := range d.mods {
			if m := &d.mods[i]; m.kind == modUpdate {
				dst = appendPair(dst, arrayKey(j), m)
				j++
			}
		}
		dst = endDoc(dst, arr)
		dst = appendStr(dst, "as", p)
		cond, dst = startSub(dst, bsontype.EmbeddedDocument, "cond")
		not, dst = startSub(dst, bsontype.Array, "$not")
		in2, dst = startSub(dst, bsontype.EmbeddedDocument, "0")
		in2Args, dst = startSub(dst, bsontype.Array, "$in")
		dst = appendStr(dst, "0", "$$"+p+".k")
		keys, dst = startSub(dst, bsontype.EmbeddedDocument, "1")
		keysMap, dst = startSub(dst, bsontype.EmbeddedDocument, "$map")
		dst = appendObjectToArray(dst, "input", ref)
		dst = appendStr(dst, "as", f)
		dst = appendStr(dst, "in", fk)
		dst = endDoc(dst, keysMap)
		dst = endDoc(dst, keys)
		dst = endDoc(dst, in2Args)
		dst = endDoc(dst, in2)
		dst = endDoc(dst, not)
		dst = endDoc(dst, cond)
		dst = endDoc(dst, fltIn)
		dst = endDoc(dst, flt)
	}

	// 3. Inserted fields, in diff order.
	if d.nIns > 0 {
		var arr int
		arr, dst = startSub(dst, bsontype.Array, arrayKey(n))
		j := 0
		for i := range d.mods {
			if m := &d.mods[i]; m.kind == modInsert {
				dst = appendPair(dst, arrayKey(j), m)
				j++
			}
		}
		dst = endDoc(dst, arr)
	}

	dst = endDoc(dst, cat)
	dst = endDoc(dst, ato)
	dst = endDoc(dst, in)
	dst = endDoc(dst, let)
	return endDoc(dst, off)
}

// appendArrExpr appends an expression evaluating to the post-image of the array
// src under a.
func appendArrExpr(dst []byte, src string, a *arrDiff, level int) []byte {
	av := varName('a', level)
	iv := varName('i', level)
	ev := varName('e', level)
	ref, idx := "$$"+av, "$$"+iv

	// {$let: {vars: {aN: src}, in: {$map: {input: {$range: [0, LEN]}, as: iN, in: ...}}}}
	off, dst := startDoc(dst)
	var let, vars, in, mp, rng, rngArgs int
	let, dst = startSub(dst, bsontype.EmbeddedDocument, "$let")
	vars, dst = startSub(dst, bsontype.EmbeddedDocument, "vars")
	dst = appendStr(dst, av, src)
	dst = endDoc(dst, vars)
	in, dst = startSub(dst, bsontype.EmbeddedDocument, "in")
	mp, dst = startSub(dst, bsontype.EmbeddedDocument, "$map")
	rng, dst = startSub(dst, bsontype.EmbeddedDocument, "input")
	rngArgs, dst = startSub(dst, bsontype.Array, "$range")
	dst = appendInt32(dst, "0", 0)
	switch {
	case a.hasSize:
		dst = appendInt32(dst, "1", int32(a.size))
	case len(a.mods) > 0:
		var mx, mxArgs int
		mx, dst = startSub(dst, bsontype.EmbeddedDocument, "1")
		mxArgs, dst = startSub(dst, bsontype.Array, "$max")
		dst = appendSize(dst, "0", ref)
		dst = appendInt32(dst, "1", int32(a.mods[len(a.mods)-1].idx+1))
		dst = endDoc(dst, mxArgs)
		dst = endDoc(dst, mx)
	default:
		dst = appendSize(dst, "1", ref)
	}
	dst = endDoc(dst, rngArgs)
	dst = endDoc(dst, rng)
	dst = appendStr(dst, "as", iv)

	// The element when the diff does not touch the index: the old one, or null
	// past the old end.
	appendDefault := func(dst []byte, name string) []byte {
		var c, cArgs, lt, ltArgs, at, atArgs int
		c, dst = startSub(dst, bsontype.EmbeddedDocument, name)
		cArgs, dst = startSub(dst, bsontype.Array, "$cond")
		lt, dst = startSub(dst, bsontype.EmbeddedDocument, "0")
		ltArgs, dst = startSub(dst, bsontype.Array, "$lt")
		dst = appendStr(dst, "0", idx)
		dst = appendSize(dst, "1", ref)
		dst = endDoc(dst, ltArgs)
		dst = endDoc(dst, lt)
		at, dst = startSub(dst, bsontype.EmbeddedDocument, "1")
		atArgs, dst = startSub(dst, bsontype.Array, "$arrayElemAt")
		dst = appendStr(dst, "0", ref)
		dst = appendStr(dst, "1", idx)
		dst = endDoc(dst, atArgs)
		dst = endDoc(dst, at)
		dst = appendNull(dst, "2")
		dst = endDoc(dst, cArgs)
		return endDoc(dst, c)
	}
	if len(a.mods) == 0 {
		dst = appendDefault(dst, "in")
	} else {
		var in2, sw, br int
		in2, dst = startSub(dst, bsontype.EmbeddedDocument, "in")
		sw, dst = startSub(dst, bsontype.EmbeddedDocument, "$switch")
		br, dst = startSub(dst, bsontype.Array, "branches")
		for j := range a.mods {
			m := &a.mods[j]
			var b, cs, csArgs int
			b, dst = startSub(dst, bsontype.EmbeddedDocument, arrayKey(j))
			cs, dst = startSub(dst, bsontype.EmbeddedDocument, "case")
			csArgs, dst = startSub(dst, bsontype.Array, "$eq")
			dst = appendStr(dst, "0", idx)
			dst = appendInt32(dst, "1", int32(m.idx))
			dst = endDoc(dst, csArgs)
			dst = endDoc(dst, cs)
			switch {
			case m.doc == nil && m.arr == nil:
				dst = appendLiteral(dst, "then", m.elem)
			default:
				// {$let: {vars: {eN: {$arrayElemAt: [ref, idx]}}, in: <rebuild if the type matches, else null>}}
				var then, l, lv, at, atArgs int
				then, dst = startSub(dst, bsontype.EmbeddedDocument, "then")
				l, dst = startSub(dst, bsontype.EmbeddedDocument, "$let")
				lv, dst = startSub(dst, bsontype.EmbeddedDocument, "vars")
				at, dst = startSub(dst, bsontype.EmbeddedDocument, ev)
				atArgs, dst = startSub(dst, bsontype.Array, "$arrayElemAt")
				dst = appendStr(dst, "0", ref)
				dst = appendInt32(dst, "1", int32(m.idx))
				dst = endDoc(dst, atArgs)
				dst = endDoc(dst, at)
				dst = endDoc(dst, lv)
				dst = appendHeader(dst, bsontype.EmbeddedDocument, []byte("in"))
				elemRef := "$$" + ev
				if m.doc != nil {
					dst = appendTypedRebuild(dst, elemRef, "object", func(dst []byte) []byte {
						return appendDocExpr(dst, elemRef, m.doc, level+1)
					})
				} else {
					dst = appendTypedRebuild(dst, elemRef, "array", func(dst []byte) []byte {
						return appendArrExpr(dst, elemRef, m.arr, level+1)
					})
				}
				dst = endDoc(dst, l)
				dst = endDoc(dst, then)
			}
			dst = endDoc(dst, b)
		}
		dst = endDoc(dst, br)
		dst = appendDefault(dst, "default")
		dst = endDoc(dst, sw)
		dst = endDoc(dst, in2)
	}
	dst = endDoc(dst, mp)
	dst = endDoc(dst, in)
	dst = endDoc(dst, let)
	return endDoc(dst, off)
}

// appendTypedRebuild appends {$cond: [{$eq: [{$type: ref}, typ]}, <rebuild>, null]}
// (the value of an element whose header the caller wrote).
func appendTypedRebuild(dst []byte, ref, typ string, rebuild func([]byte) []byte) []byte {
	off, dst := startDoc(dst)
	var c, eq, eqArgs, ty int
	c, dst = startSub(dst, bsontype.Array, "$cond")
	eq, dst = startSub(dst, bsontype.EmbeddedDocument, "0")
	eqArgs, dst = startSub(dst, bsontype.Array, "$eq")
	ty, dst = startSub(dst, bsontype.EmbeddedDocument, "0")
	dst = appendStr(dst, "$type", ref)
	dst = endDoc(dst, ty)
	dst = appendStr(dst, "1", typ)
	dst = endDoc(dst, eqArgs)
	dst = endDoc(dst, eq)
	dst = rebuild(appendHeader(dst, bsontype.EmbeddedDocument, []byte("1")))
	dst = appendNull(dst, "2")
	dst = endDoc(dst, c)
	return endDoc(dst, off)
}

// appendObjectToArray appends name: {$objectToArray: ref}.
func appendObjectToArray(dst []byte, name, ref string) []byte {
	s, dst := startSub(dst, bsontype.EmbeddedDocument, name)
	dst = appendStr(dst, "$objectToArray", ref)
	return endDoc(dst, s)
}

// appendSize appends name: {$size: ref}.
func appendSize(dst []byte, name, ref string) []byte {
	s, dst := startSub(dst, bsontype.EmbeddedDocument, name)
	dst = appendStr(dst, "$size", ref)
	return endDoc(dst, s)
}

// appendEqLiteral appends name: {$eq: [ref, {$literal: value}]}.
func appendEqLiteral(dst []byte, name, ref string, value []byte) []byte {
	s, dst := startSub(dst, bsontype.EmbeddedDocument, name)
	a, dst := startSub(dst, bsontype.Array, "$eq")
	dst = appendStr(dst, "0", ref)
	l, dst := startSub(dst, bsontype.EmbeddedDocument, "1")
	dst = appendStr(dst, "$literal", string(value))
	dst = endDoc(dst, l)
	dst = endDoc(dst, a)
	return endDoc(dst, s)
}

// appendLiteral appends name: {$literal: <value of e>}.
func appendLiteral(dst []byte, name string, e element) []byte {
	s, dst := startSub(dst, bsontype.EmbeddedDocument, name)
	dst = appendElem(dst, "$literal", e.t, e.val)
	return endDoc(dst, s)
}

// appendPair appends name: {k: {$literal: field}, v: {$literal: value}}.
func appendPair(dst []byte, name string, m *fieldMod) []byte {
	s, dst := startSub(dst, bsontype.EmbeddedDocument, name)
	k, dst := startSub(dst, bsontype.EmbeddedDocument, "k")
	dst = appendStr(dst, "$literal", string(m.name))
	dst = endDoc(dst, k)
	dst = appendLiteral(dst, "v", m.elem)
	return endDoc(dst, s)
}

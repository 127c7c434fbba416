package oplog

import (
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// $v: 2 update diffs (MongoDB 5.0 and later), as src/mongo/db/update/
// document_diff_serialization.{h,cpp} write and read them and
// document_diff_applier.cpp applies them.
//
// A document diff has sections, in this order, each at most once, named by their
// first character: d (deletes: {field: false}), u (updates: {field: value}),
// i (inserts: {field: value}), b (binary diffs of BinData, written only for
// time-series buckets) and then any number of s<field> sub-diffs. A sub-diff is
// a document diff, or an array diff when its first field is a: true. An array
// diff has a: true, an optional l: <int32 new length>, then u<index>: value and
// s<index>: sub-diff in increasing index order.
//
// The applier walks the pre-image once, in its field order:
//   - a field with no modification is copied;
//   - a deleted field is dropped;
//   - an updated field is replaced in place;
//   - an inserted field is dropped from its place (it is appended below);
//   - a field with a sub-diff is rebuilt by applying the sub-diff when the types
//     match (object and document diff, array and array diff), and set to null
//     when they do not (a later entry rewrites it).
//
// Then it appends, in diff order, the updated fields the pre-image did not have,
// followed by every inserted field. A sub-diff for a field the pre-image lacks
// does nothing.
//
// For an array it copies or modifies elements up to the new length l (all of
// them without l), then keeps going while l or a modification asks for more
// elements, padding with null. A sub-diff at an index the pre-image lacks, or
// whose element has the wrong type, gives null. Elements are renamed 0, 1, ...

// maxDiffDepth bounds sub-diff nesting; MongoDB's documents nest at most 180
// levels, so a deeper diff is not one a server wrote.
const maxDiffDepth = 200

// maxArrayIndex bounds array indexes and lengths in a diff: an array in a
// 16 MiB document cannot have more elements, and padding to a larger index would
// only exhaust memory.
const maxArrayIndex = 16 << 20

// modKind is what a document diff does to one field.
type modKind uint8

const (
	modDelete modKind = iota + 1
	modUpdate
	modInsert
	modSubDoc
	modSubArr
)

// fieldMod is one field's modification in a document diff.
type fieldMod struct {
	kind modKind
	name []byte
	elem element  // modUpdate, modInsert: the new value (named after the field)
	doc  *docDiff // modSubDoc
	arr  *arrDiff // modSubArr
}

// docDiff is a parsed document diff. mods holds deletes, then updates, then
// inserts, then sub-diffs, each in diff order.
type docDiff struct {
	mods                    []fieldMod
	nDel, nUpd, nIns, nSubs int
	index                   map[string]int // name -> mods index, for large diffs
}

// arrMod is one modification of an array diff.
type arrMod struct {
	idx  int
	elem element // update (when doc and arr are nil)
	doc  *docDiff
	arr  *arrDiff
}

// arrDiff is a parsed array diff.
type arrDiff struct {
	hasSize bool
	size    int
	mods    []arrMod
}

// diffParser parses diffs, reusing the structures of earlier parses: a
// Translator parses one diff per update entry. The zero value is ready.
type diffParser struct {
	docs   []*docDiff
	arrs   []*arrDiff
	nd, na int
}

// reset makes every structure reusable; diffs parsed before become invalid.
func (p *diffParser) reset() { p.nd, p.na = 0, 0 }

func (p *diffParser) newDoc() *docDiff {
	if p.nd == len(p.docs) {
		p.docs = append(p.docs, &docDiff{})
	}
	d := p.docs[p.nd]
	p.nd++
	clear(d.mods)
	*d = docDiff{mods: d.mods[:0]}
	return d
}

func (p *diffParser) newArr() *arrDiff {
	if p.na == len(p.arrs) {
		p.arrs = append(p.arrs, &arrDiff{})
	}
	a := p.arrs[p.na]
	p.na++
	clear(a.mods)
	*a = arrDiff{mods: a.mods[:0]}
	return a
}

// diffError reports a diff MongoDB's reader or applier would reject.
type diffError struct {
	path string
	msg  string
	err  error
}

func (e *diffError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

func (e *diffError) Unwrap() error { return e.err }

func badDiff(path, format string, args ...any) error {
	return &diffError{path: path, msg: fmt.Sprintf(format, args...), err: ErrMalformed}
}

func join(path string, name []byte) string {
	if path == "" {
		return string(name)
	}
	return path + "." + string(name)
}

// parseDocDiff parses a document diff. path names it in errors ("diff",
// "diff.sa", ...).
func (p *diffParser) parseDocDiff(b []byte, path string, depth int) (*docDiff, error) {
	if depth > maxDiffDepth {
		return nil, badDiff(path, "sub-diffs nest deeper than %d levels", maxDiffDepth)
	}
	it, ok := newIter(b)
	if !ok {
		return nil, badDiff(path, "not a BSON document")
	}
	d := p.newDoc()
	var prev byte // section order reached: d=1 u=2 i=3 b=4 s=5
	empty := true
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		empty = false
		if len(el.name) == 0 {
			return nil, badDiff(path, "a section has an empty name")
		}
		var order byte
		switch el.name[0] {
		case 'd':
			order = 1
		case 'u':
			order = 2
		case 'i':
			order = 3
		case 'b':
			order = 4
		case 's':
			order = 5
		default:
			return nil, badDiff(path, "unexpected section %q", el.name)
		}
		if order <= prev && order != 5 {
			return nil, badDiff(path, "unexpected section %q (sections go d, u, i, b, s<field>, each once)", el.name)
		}
		if prev == 5 && order != 5 {
			return nil, badDiff(path, "section %q after the sub-diffs", el.name)
		}
		prev = order
		if el.t != bsontype.EmbeddedDocument {
			return nil, badDiff(join(path, el.name), "is %s, want a document", typeName(el.t))
		}
		switch order {
		case 1, 2, 3:
			kind := [...]modKind{1: modDelete, 2: modUpdate, 3: modInsert}[order]
			sit, ok := newIter(el.val)
			if !ok {
				return nil, badDiff(join(path, el.name), "not a BSON document")
			}
			for {
				f, ok := sit.next()
				if !ok {
					break
				}
				if err := d.add(fieldMod{kind: kind, name: f.name, elem: f}, path); err != nil {
					return nil, err
				}
			}
			if sit.bad {
				return nil, badDiff(join(path, el.name), "corrupt BSON")
			}
		case 4:
			return nil, &diffError{path: join(path, el.name), msg: "binary diffs are written only for time-series buckets, which Shardlift does not migrate", err: ErrUnsupported}
		case 5:
			name := el.name[1:]
			sub := join(path, el.name)
			doc, arr, err := p.parseSubDiff(el.val, sub, depth+1)
			if err != nil {
				return nil, err
			}
			m := fieldMod{kind: modSubDoc, name: name, doc: doc}
			if arr != nil {
				m = fieldMod{kind: modSubArr, name: name, arr: arr}
			}
			if err := d.add(m, path); err != nil {
				return nil, err
			}
		}
	}
	if it.bad {
		return nil, badDiff(path, "corrupt BSON")
	}
	if empty {
		return nil, badDiff(path, "a diff must not be empty")
	}
	return d, nil
}

// add records a modification, refusing a second one for the same field as
// MongoDB's DocumentDiffTables::safeInsert does.
func (d *docDiff) add(m fieldMod, path string) error {
	if d.find(m.name) >= 0 {
		return badDiff(path, "duplicate field %q in the diff", m.name)
	}
	d.mods = append(d.mods, m)
	switch m.kind {
	case modDelete:
		d.nDel++
	case modUpdate:
		d.nUpd++
	case modInsert:
		d.nIns++
	default:
		d.nSubs++
	}
	if d.index != nil {
		d.index[string(m.name)] = len(d.mods) - 1
	} else if len(d.mods) > 16 {
		d.index = make(map[string]int, 2*len(d.mods))
		for i, x := range d.mods {
			d.index[string(x.name)] = i
		}
	}
	return nil
}

// find returns the index in d.mods of the modification of field name, or -1.
func (d *docDiff) find(name []byte) int {
	if d.index != nil {
		if i, ok := d.index[string(name)]; ok {
			return i
		}
		return -1
	}
	for i := range d.mods {
		if string(d.mods[i].name) == string(name) {
			return i
		}
	}
	return -1
}

// parseSubDiff parses the value of an s<field> or s<index>: an array diff when
// its first field is "a", else a document diff.
func (p *diffParser) parseSubDiff(b []byte, path string, depth int) (*docDiff, *arrDiff, error) {
	first, ok := firstElement(b)
	if !ok {
		if _, ok := docBody(b); ok {
			return nil, nil, badDiff(path, "a diff must not be empty")
		}
		return nil, nil, badDiff(path, "not a BSON document")
	}
	if first.is("a") {
		a, err := p.parseArrDiff(b, path, depth)
		return nil, a, err
	}
	d, err := p.parseDocDiff(b, path, depth)
	return d, nil, err
}

func (p *diffParser) parseArrDiff(b []byte, path string, depth int) (*arrDiff, error) {
	if depth > maxDiffDepth {
		return nil, badDiff(path, "sub-diffs nest deeper than %d levels", maxDiffDepth)
	}
	it, _ := newIter(b)
	head, _ := it.next()
	if head.t != bsontype.Boolean || !head.boolean() {
		return nil, badDiff(path, "the array header a must be true")
	}
	a := p.newArr()
	last := -1
	for first := true; ; first = false {
		el, ok := it.next()
		if !ok {
			break
		}
		if first && el.is("l") {
			if el.t != bsontype.Int32 {
				return nil, badDiff(join(path, el.name), "is %s, want an int32", typeName(el.t))
			}
			n := int(el.int32())
			if n < 0 || n > maxArrayIndex {
				return nil, badDiff(join(path, el.name), "array length %d out of range", n)
			}
			a.hasSize, a.size = true, n
			continue
		}
		if len(el.name) < 2 {
			return nil, badDiff(join(path, el.name), "expected u<index> or s<index>")
		}
		idx, ok := parseIndex(el.name[1:])
		if !ok {
			return nil, badDiff(join(path, el.name), "expected u<index> or s<index>")
		}
		if idx <= last {
			return nil, badDiff(join(path, el.name), "array modifications must be in increasing index order")
		}
		if a.hasSize && idx >= a.size {
			return nil, badDiff(join(path, el.name), "index %d is past the new length %d", idx, a.size)
		}
		last = idx
		switch el.name[0] {
		case 'u':
			a.mods = append(a.mods, arrMod{idx: idx, elem: el})
		case 's':
			if el.t != bsontype.EmbeddedDocument {
				return nil, badDiff(join(path, el.name), "is %s, want a document", typeName(el.t))
			}
			doc, arr, err := p.parseSubDiff(el.val, join(path, el.name), depth+1)
			if err != nil {
				return nil, err
			}
			a.mods = append(a.mods, arrMod{idx: idx, doc: doc, arr: arr})
		default:
			return nil, badDiff(join(path, el.name), "expected u<index> or s<index>")
		}
	}
	if it.bad {
		return nil, badDiff(path, "corrupt BSON")
	}
	return a, nil
}

// parseIndex parses a non-negative decimal array index.
func parseIndex(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= maxArrayIndex
}

// ApplyDiff applies a $v: 2 diff (the "diff" document of an update's o) to a
// pre-image and returns the post-image MongoDB produces, byte for byte: same
// fields, same field order, same array element names. A diff MongoDB would
// reject is an error wrapping ErrMalformed.
func ApplyDiff(pre bson.Raw, diff bson.Raw) (bson.Raw, error) {
	var p diffParser
	d, err := p.parseDocDiff(diff, "", 0)
	if err != nil {
		return nil, err
	}
	if !validDoc(pre, maxDocDepth) {
		return nil, fmt.Errorf("apply diff: pre-image: %w: corrupt BSON", ErrMalformed)
	}
	if !validDoc(diff, maxDocDepth+maxDiffDepth) {
		return nil, fmt.Errorf("apply diff: diff: %w: corrupt BSON", ErrMalformed)
	}
	out := make([]byte, 0, len(pre)+len(diff))
	return bson.Raw(applyDocDiff(out, pre, d)), nil
}

// applyDocDiff appends the post-image of document pre under d.
func applyDocDiff(dst []byte, pre []byte, d *docDiff) []byte {
	off, dst := startDoc(dst)
	it, _ := newIter(pre)
	// inPlace marks updates applied where the pre-image had the field.
	var inPlaceSmall [8]bool
	inPlace := inPlaceSmall[:0]
	if d.nUpd > 0 {
		if d.nUpd <= len(inPlaceSmall) {
			inPlace = inPlaceSmall[:d.nUpd]
		} else {
			inPlace = make([]bool, d.nUpd)
		}
	}
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		i := d.find(el.name)
		if i < 0 {
			dst = append(dst, el.raw...)
			continue
		}
		m := &d.mods[i]
		switch m.kind {
		case modDelete, modInsert:
		case modUpdate:
			dst = append(dst, m.elem.raw...)
			inPlace[i-d.nDel] = true
		case modSubDoc:
			if el.t == bsontype.EmbeddedDocument {
				dst = applyDocDiff(appendHeader(dst, bsontype.EmbeddedDocument, el.name), el.val, m.doc)
			} else {
				dst = appendNullBytes(dst, el.name)
			}
		case modSubArr:
			if el.t == bsontype.Array {
				dst = applyArrDiff(appendHeader(dst, bsontype.Array, el.name), el.val, m.arr)
			} else {
				dst = appendNullBytes(dst, el.name)
			}
		}
	}
	for i := d.nDel; i < d.nDel+d.nUpd+d.nIns; i++ {
		m := &d.mods[i]
		if m.kind == modUpdate && inPlace[i-d.nDel] {
			continue
		}
		dst = append(dst, m.elem.raw...)
	}
	return endDoc(dst, off)
}

// applyArrDiff appends the post-image of array pre under a.
func applyArrDiff(dst []byte, pre []byte, a *arrDiff) []byte {
	off, dst := startDoc(dst)
	it, _ := newIter(pre)
	mods := a.mods
	idx := 0
	for ; !a.hasSize || idx < a.size; idx++ {
		el, ok := it.next()
		if !ok {
			break
		}
		if len(mods) > 0 && mods[0].idx == idx {
			dst = appendArrMod(dst, idx, &el, &mods[0])
			mods = mods[1:]
			continue
		}
		dst = appendElem(dst, arrayKey(idx), el.t, el.val)
	}
	for ; (a.hasSize && idx < a.size) || len(mods) > 0; idx++ {
		if len(mods) > 0 && mods[0].idx == idx {
			dst = appendArrMod(dst, idx, nil, &mods[0])
			mods = mods[1:]
			continue
		}
		dst = appendNull(dst, arrayKey(idx))
	}
	return endDoc(dst, off)
}

// appendArrMod appends element idx of a modified array; pre is nil when the
// pre-image array is too short.
func appendArrMod(dst []byte, idx int, pre *element, m *arrMod) []byte {
	key := arrayKey(idx)
	switch {
	case m.doc == nil && m.arr == nil:
		return appendElem(dst, key, m.elem.t, m.elem.val)
	case pre == nil:
		return appendNull(dst, key)
	case m.doc != nil && pre.t == bsontype.EmbeddedDocument:
		return applyDocDiff(appendHeader(dst, bsontype.EmbeddedDocument, []byte(key)), pre.val, m.doc)
	case m.arr != nil && pre.t == bsontype.Array:
		return applyArrDiff(appendHeader(dst, bsontype.Array, []byte(key)), pre.val, m.arr)
	}
	return appendNull(dst, key)
}

func appendNullBytes(dst []byte, name []byte) []byte {
	return appendHeader(dst, bsontype.Null, name)
}

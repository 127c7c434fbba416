package sjson

import (
	"bytes"

	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// kind is a BSON type as the schema names it ("t").
type kind uint8

const (
	kindObject kind = iota + 1
	kindArray
	kindDouble
	kindString
	kindBinData
	kindObjectID
	kindBool
	kindDate
	kindNull
	kindRegex
	kindInt
	kindTimestamp
	kindLong
)

func kindOf(name []byte) kind {
	switch string(name) {
	case "object":
		return kindObject
	case "array":
		return kindArray
	case "double":
		return kindDouble
	case "string":
		return kindString
	case "binData":
		return kindBinData
	case "objectId":
		return kindObjectID
	case "bool":
		return kindBool
	case "date":
		return kindDate
	case "null":
		return kindNull
	case "regex":
		return kindRegex
	case "int":
		return kindInt
	case "timestamp":
		return kindTimestamp
	case "long":
		return kindLong
	}
	return 0
}

// bsonType is the BSON type of a value of kind k.
var bsonType = [...]bsontype.Type{
	kindObject:    bsontype.EmbeddedDocument,
	kindArray:     bsontype.Array,
	kindDouble:    bsontype.Double,
	kindString:    bsontype.String,
	kindBinData:   bsontype.Binary,
	kindObjectID:  bsontype.ObjectID,
	kindBool:      bsontype.Boolean,
	kindDate:      bsontype.DateTime,
	kindNull:      bsontype.Null,
	kindRegex:     bsontype.Regex,
	kindInt:       bsontype.Int32,
	kindTimestamp: bsontype.Timestamp,
	kindLong:      bsontype.Int64,
}

// A tree is a parsed schema: node rootNode is the document, an object whose fields
// are its children. Names and regex options are spans of arena, so that the tree
// holds nothing of the text it was parsed from and can serve later texts with the
// same schema (src).
type tree struct {
	src   []byte // the schema's text
	nodes []node
	arena []byte

	// Scratch while parsing: stacks of the "p" members' nodes and of the "$k" names
	// of the objects being parsed, and the table of hasDuplicate.
	fields []int32
	keys   []span
	table  []int32
	tmp    []byte
}

const rootNode = 0

// node is one schema element: a field of an object (key set) or an item of an array.
type node struct {
	kind kind
	sub  byte // binData's subtype
	used bool // scratch: matched to a name of $k
	key  span // the field's name
	opts span // regex's options
	// first is the first field (an object's, in $k order) or item (an array's), -1 if
	// none; next is the node's next sibling, -1 if none; n counts the children.
	first, next, n int32
}

type span struct{ off, len int32 }

func (t *tree) bytes(s span) []byte { return t.arena[s.off : s.off+s.len] }

func (t *tree) reset() {
	t.src = t.src[:0]
	t.nodes = t.nodes[:0]
	t.arena = t.arena[:0]
	t.fields = t.fields[:0]
	t.keys = t.keys[:0]
}

// schema returns the parsed schema whose text starts at p, and the position after it.
func (d *decoder) schema(p int) (*tree, int, error) {
	rest := d.text[p:]
	for _, t := range d.schemas {
		if t != nil && len(t.src) > 0 && bytes.HasPrefix(rest, t.src) {
			return t, p + len(t.src), nil
		}
	}
	t := d.schemas[d.next]
	if t == nil {
		t = new(tree)
		d.schemas[d.next] = t
	}
	d.next = (d.next + 1) % schemaCache
	t.reset()
	t.nodes = append(t.nodes, node{kind: kindObject, first: -1, next: -1})
	end, err := t.parseSchema(d.text, p, rootNode, 0)
	if err != nil {
		t.reset()
		return nil, 0, err
	}
	t.src = append(t.src, d.text[p:end]...)
	return t, end, nil
}

// str decodes the JSON string at p into the arena and returns its span and the
// position after it.
func (t *tree) str(text []byte, p int, what string) (span, int, error) {
	if p >= len(text) || text[p] != '"' {
		return span{}, 0, errAt(p, "expected a string for %s", what)
	}
	end, flags, err := scanString(text, p)
	if err != nil {
		return span{}, 0, err
	}
	s, err := t.addName(text[p+1:end-1], flags, p, what)
	return s, end, err
}

// addName decodes the string body raw (with scanString's flags) into the arena and
// returns its span; at is its position in the text, for errors.
func (t *tree) addName(raw []byte, flags uint8, at int, what string) (span, error) {
	off := len(t.arena)
	if needsUnquote(raw, flags) {
		t.arena = appendUnquoted(t.arena, raw)
	} else {
		t.arena = append(t.arena, raw...)
	}
	s := span{int32(off), int32(len(t.arena) - off)}
	if bytes.IndexByte(t.bytes(s), 0) >= 0 {
		return span{}, errAt(at, "%s contains a NUL byte, which BSON cannot hold", what)
	}
	return s, nil
}

// name returns the decoded bytes of a member name of the schema.
func (t *tree) name(raw []byte, flags uint8) []byte {
	if !needsUnquote(raw, flags) {
		return raw
	}
	t.tmp = appendUnquoted(t.tmp[:0], raw)
	return t.tmp
}

// parseSchema parses the object schema at p ({"p": {...}, "$k": [...]}, or {} for an
// empty document) into the fields of node obj, and returns the position after it.
func (t *tree) parseSchema(text []byte, p int, obj int32, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errAt(p, "nested too deeply")
	}
	if p >= len(text) || text[p] != '{' {
		return 0, errAt(p, "a schema ($s) must be an object")
	}
	fieldsBase, keysBase := len(t.fields), len(t.keys)
	var seenP, seenK bool
	end, err := walkMembers(text, p, func(name []byte, flags uint8, value int) (int, error) {
		switch string(t.name(name, flags)) {
		case "p":
			if seenP {
				return 0, errAt(value, `duplicate "p" in a schema`)
			}
			seenP = true
			if value >= len(text) || text[value] != '{' {
				return 0, errAt(value, `a schema's "p" must be an object`)
			}
			return walkMembers(text, value, func(name []byte, flags uint8, elem int) (int, error) {
				k, err := t.addName(name, flags, elem, "a field name")
				if err != nil {
					return 0, err
				}
				c, end, err := t.parseElem(text, elem, depth+1)
				if err != nil {
					return 0, err
				}
				t.nodes[c].key = k
				t.fields = append(t.fields, c)
				return end, nil
			})
		case "$k":
			if seenK {
				return 0, errAt(value, `duplicate "$k" in a schema`)
			}
			seenK = true
			if value >= len(text) || text[value] != '[' {
				return 0, errAt(value, `a schema's "$k" must be an array`)
			}
			return walkItems(text, value, func(item int) (int, error) {
				k, end, err := t.str(text, item, "a field name in $k")
				t.keys = append(t.keys, k)
				return end, err
			})
		}
		return 0, errAt(value, "unknown member %q in a schema", name)
	})
	if err != nil {
		return 0, err
	}
	if seenP != seenK {
		return 0, errAt(p, `a schema needs both "p" and "$k", or neither`)
	}

	// Order the fields as $k says.
	fields, keys := t.fields[fieldsBase:], t.keys[keysBase:]
	if len(fields) != len(keys) {
		return 0, errAt(p, "the schema describes %d fields but $k names %d", len(fields), len(keys))
	}
	if t.hasDuplicate(keys) {
		return 0, errAt(p, "$k names a field twice")
	}
	last := int32(-1)
	for i, k := range keys {
		want := t.bytes(k)
		c := fields[i]
		if t.nodes[c].used || !bytes.Equal(t.bytes(t.nodes[c].key), want) {
			c = -1
			for _, f := range fields {
				if !t.nodes[f].used && bytes.Equal(t.bytes(t.nodes[f].key), want) {
					c = f
					break
				}
			}
			if c < 0 {
				return 0, errAt(p, "$k names %q, which the schema's \"p\" does not describe", want)
			}
		}
		t.nodes[c].used = true
		if last < 0 {
			t.nodes[obj].first = c
		} else {
			t.nodes[last].next = c
		}
		last = c
	}
	t.nodes[obj].n = int32(len(keys))
	t.fields, t.keys = t.fields[:fieldsBase], t.keys[:keysBase]
	return end, nil
}

// parseElem parses the schema element at p into a new node and returns the node and
// the position after the element.
func (t *tree) parseElem(text []byte, p, depth int) (int32, int, error) {
	if depth > maxDepth {
		return 0, 0, errAt(p, "nested too deeply")
	}
	if p >= len(text) || text[p] != '{' {
		return 0, 0, errAt(p, "a schema element must be an object")
	}
	n := int32(len(t.nodes))
	t.nodes = append(t.nodes, node{first: -1, next: -1})
	const (
		seenT = 1 << iota
		seenS
		seenO
		seenI
		seenSub
	)
	var seen int
	once := func(bit int, value int, name string) error {
		if seen&bit != 0 {
			return errAt(value, "duplicate %q in a schema element", name)
		}
		seen |= bit
		return nil
	}
	end, err := walkMembers(text, p, func(name []byte, flags uint8, value int) (int, error) {
		switch string(t.name(name, flags)) {
		case "t":
			if err := once(seenT, value, "t"); err != nil {
				return 0, err
			}
			if value >= len(text) || text[value] != '"' {
				return 0, errAt(value, "a schema element's type must be a string")
			}
			end, flags, err := scanString(text, value)
			if err != nil {
				return 0, err
			}
			k := kindOf(t.name(text[value+1:end-1], flags))
			if k == 0 {
				return 0, errAt(value, "unknown type %s", text[value:end])
			}
			t.nodes[n].kind = k
			return end, nil
		case "$s":
			if err := once(seenS, value, "$s"); err != nil {
				return 0, err
			}
			return t.parseSchema(text, value, n, depth+1)
		case "o":
			if err := once(seenO, value, "o"); err != nil {
				return 0, err
			}
			o, end, err := t.str(text, value, "regex options")
			t.nodes[n].opts = o
			return end, err
		case "i":
			if err := once(seenI, value, "i"); err != nil {
				return 0, err
			}
			if value >= len(text) || text[value] != '[' {
				return 0, errAt(value, `an array's items ("i") must be an array`)
			}
			last := int32(-1)
			return walkItems(text, value, func(item int) (int, error) {
				c, end, err := t.parseElem(text, item, depth+1)
				if err != nil {
					return 0, err
				}
				if last < 0 {
					t.nodes[n].first = c
				} else {
					t.nodes[last].next = c
				}
				last = c
				t.nodes[n].n++
				return end, nil
			})
		case "s":
			if err := once(seenSub, value, "s"); err != nil {
				return 0, err
			}
			if value >= len(text) || !(text[value] == '-' || isDigit(text[value])) {
				return 0, errAt(value, "a binary subtype must be a number")
			}
			end, integer, err := scanNumber(text, value)
			if err != nil {
				return 0, err
			}
			v, ok := unsigned(text[value:end])
			if !integer || !ok || v > 255 {
				return 0, errAt(value, "binary subtype %s is not a byte", text[value:end])
			}
			t.nodes[n].sub = byte(v)
			return end, nil
		}
		return 0, errAt(value, "unknown member %q in a schema element", name)
	})
	if err != nil {
		return 0, 0, err
	}
	// What each type needs, and nothing else.
	var need int
	switch t.nodes[n].kind {
	case 0:
		return 0, 0, errAt(p, `a schema element has no type ("t")`)
	case kindObject:
		need = seenS
	case kindArray:
		need = seenI
	case kindBinData:
		need = seenSub
	case kindRegex:
		need = seenO
	}
	if seen != seenT|need {
		elemMembers := map[int]string{0: `"t"`, seenS: `"t" and "$s"`, seenO: `"t" and "o"`, seenI: `"t" and "i"`, seenSub: `"t" and "s"`}
		return 0, 0, errAt(p, "schema element of type %q must have exactly %s", kindName(t.nodes[n].kind), elemMembers[need])
	}
	return n, end, nil
}

var kindNames = [...]string{
	kindObject: "object", kindArray: "array", kindDouble: "double", kindString: "string",
	kindBinData: "binData", kindObjectID: "objectId", kindBool: "bool", kindDate: "date",
	kindNull: "null", kindRegex: "regex", kindInt: "int", kindTimestamp: "timestamp", kindLong: "long",
}

func kindName(k kind) string { return kindNames[k] }

// hasDuplicate says whether two of the names are equal.
func (t *tree) hasDuplicate(names []span) bool {
	if len(names) <= 16 {
		for i := range names {
			for j := i + 1; j < len(names); j++ {
				if names[i].len == names[j].len && bytes.Equal(t.bytes(names[i]), t.bytes(names[j])) {
					return true
				}
			}
		}
		return false
	}
	size := 32
	for size < 2*len(names) {
		size *= 2
	}
	if cap(t.table) < size {
		t.table = make([]int32, size)
	}
	table := t.table[:size]
	clear(table)
	mask := uint32(size - 1)
	for i, s := range names {
		b := t.bytes(s)
		h := uint32(2166136261) // FNV-1a
		for _, c := range b {
			h = (h ^ uint32(c)) * 16777619
		}
		for j := h & mask; ; j = (j + 1) & mask {
			if table[j] == 0 {
				table[j] = int32(i) + 1
				break
			}
			if bytes.Equal(t.bytes(names[table[j]-1]), b) {
				return true
			}
		}
	}
	return false
}

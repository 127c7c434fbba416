package shard

import (
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	engineoplog "github.com/shardlift/shardlift/engine/oplog"
)

// The $v:1 update form MongoDB 3.6 to 4.4 write to the oplog: {$v: 1, $set: {<dotted
// path>: <new value>}, $unset: {<dotted path>: true}} (3.6 at FCV 3.4 leaves $v out).
// The update system applies a modifier update's fields in name order (array elements in
// index order) and logs each change in that order, a section appearing where its first
// change does; a new field lands at the end of its object.

// modifierEntryObject returns the o of an update entry in the $v:1 form (with $v only
// when withV), or the whole post-image when that form cannot rebuild post from pre byte
// for byte: a field that moved, new fields in an order MongoDB would not append them in,
// or a name no dotted path can address.
func modifierEntryObject(pre, post bson.Raw, withV bool) bson.Raw {
	d := diffDoc(pre, post)
	if d == nil {
		return post
	}
	var m modifierLog
	if !m.doc("", pre, post, bson.Raw(d)) {
		return post
	}
	idx, b := bsoncore.AppendDocumentStart(nil)
	if withV {
		b = bsoncore.AppendInt32Element(b, "$v", 1)
	}
	for _, section := range m.order {
		var si int32
		si, b = bsoncore.AppendDocumentElementStart(b, section)
		for _, c := range m.changes {
			switch {
			case section == "$set" && c.unset, section == "$unset" && !c.unset:
			case c.unset:
				b = bsoncore.AppendBooleanElement(b, c.path, true)
			default:
				b = appendValue(b, c.path, c.value)
			}
		}
		b, _ = bsoncore.AppendDocumentEnd(b, si)
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// modifierLog collects the changes of a $v:1 entry in the order MongoDB applies them.
type modifierLog struct {
	changes []modifierChange
	order   []string // "$set" and "$unset", in the order of their first change
}

type modifierChange struct {
	path  string
	value bson.RawValue
	unset bool
}

func (m *modifierLog) add(c modifierChange) {
	section := "$set"
	if c.unset {
		section = "$unset"
	}
	if !slices.Contains(m.order, section) {
		m.order = append(m.order, section)
	}
	m.changes = append(m.changes, c)
}

// docChange is one field a document diff changes.
type docChange struct {
	name  string
	kind  byte // 'd' delete, 'u' update in place, 'i' new field, 's' sub-diff
	value bson.RawValue
	sub   bson.Raw
}

// doc adds the changes of a document diff (diffDoc's format) of pre into post.
func (m *modifierLog) doc(prefix string, pre, post, diff bson.Raw) bool {
	var changes []docChange
	var inserted []string
	sections, _ := diff.Elements()
	for _, s := range sections {
		key := s.Key()
		if strings.HasPrefix(key, "s") && len(key) > 1 {
			changes = append(changes, docChange{name: key[1:], kind: 's', sub: s.Value().Document()})
			continue
		}
		fields, _ := s.Value().Document().Elements()
		for _, f := range fields {
			c := docChange{name: f.Key(), kind: key[0], value: f.Value()}
			if c.kind == 'i' {
				if _, err := pre.LookupErr(c.name); err == nil {
					return false // a field moved to the end: no $set does that
				}
				inserted = append(inserted, c.name)
			}
			changes = append(changes, c)
		}
	}
	for i := range inserted {
		if !pathName(inserted[i]) || i > 0 && !engineoplog.NewFieldsInOrder([]byte(inserted[i-1]), []byte(inserted[i])) {
			return false
		}
	}
	slices.SortStableFunc(changes, func(a, b docChange) int { return strings.Compare(a.name, b.name) })
	for _, c := range changes {
		if !pathName(c.name) {
			return false
		}
		path := joinPath(prefix, c.name)
		switch c.kind {
		case 'd':
			m.add(modifierChange{path: path, unset: true})
		case 'u', 'i':
			m.add(modifierChange{path: path, value: c.value})
		case 's':
			if !m.sub(path, pre.Lookup(c.name), post.Lookup(c.name), c.sub) {
				return false
			}
		}
	}
	return true
}

// sub adds the changes of a sub-diff of a document or an array.
func (m *modifierLog) sub(path string, pre, post bson.RawValue, diff bson.Raw) bool {
	if pre.Type == bsontype.EmbeddedDocument {
		return m.doc(path, pre.Document(), post.Document(), diff)
	}
	if _, err := diff.LookupErr("l"); err == nil {
		// MongoDB logs a shrunk array ($pop, $pull) as the whole new array.
		m.add(modifierChange{path: path, value: post})
		return true
	}
	preVals, _ := pre.Array().Values()
	postVals, _ := post.Array().Values()
	type elemChange struct {
		idx  int
		key  string
		diff bson.Raw
	}
	var changes []elemChange
	elems, _ := diff.Elements()
	for _, e := range elems {
		key := e.Key()
		if key == "a" {
			continue
		}
		i, err := strconv.Atoi(key[1:])
		if err != nil || i >= len(postVals) {
			return false
		}
		c := elemChange{idx: i, key: key}
		if key[0] == 's' {
			c.diff = e.Value().Document()
		}
		changes = append(changes, c)
	}
	slices.SortFunc(changes, func(a, b elemChange) int { return a.idx - b.idx })
	for _, c := range changes {
		elemPath := joinPath(path, strconv.Itoa(c.idx))
		if c.diff == nil {
			m.add(modifierChange{path: elemPath, value: postVals[c.idx]})
			continue
		}
		if c.idx >= len(preVals) || !m.sub(elemPath, preVals[c.idx], postVals[c.idx], c.diff) {
			return false
		}
	}
	return true
}

// pathName reports whether a field name can be a part of a dotted update path.
func pathName(name string) bool {
	return name != "" && name[0] != '$' && !strings.Contains(name, ".")
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

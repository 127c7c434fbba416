package replay

import (
	"math"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/engine/oplog"
)

// uniqueIndex is a restored unique index as the replay orders writes by it.
type uniqueIndex struct {
	paths    []string // the key pattern's fields; none when the spec has no key
	collated bool     // a collation other than simple: strings compare loosely
}

func parseUniqueIndex(spec bson.Raw) uniqueIndex {
	var u uniqueIndex
	key, _ := spec.Lookup("key").DocumentOK()
	elems, _ := key.Elements()
	for _, e := range elems {
		u.paths = append(u.paths, e.Key())
	}
	if c, ok := spec.Lookup("collation").DocumentOK(); ok {
		locale, _ := c.Lookup("locale").StringValueOK()
		u.collated = locale != "simple"
	}
	return u
}

// takenKeys are the keys of the restored unique indexes ix (the i-th index's keys
// start with "i:") a write gives its document: those of the whole document an
// insert or replacement writes; for an update that changes a field of an index, the
// key it sets when it sets every field of the index to a value, else "i:*", any key
// of that index (the key the update leaves depends on fields the update does not
// carry). A delete takes none. A key stands for every key the
// index holds equal to it (numbers of any type by value, strings under a
// collation all alike, embedded documents all alike), so two writes whose keys
// could be equal always share one; keys that merely could be share one too,
// which only makes a write wait.
func takenKeys(ix []uniqueIndex, w *oplog.Write) []string {
	var keys []string
	switch w.Kind {
	case oplog.InsertReplace:
		for i, u := range ix {
			keys = append(keys, u.keyOf(i, w.Replacement))
		}
	case oplog.Update:
		touched, known := touchedFields(w)
		for i, u := range ix {
			if known && len(u.paths) > 0 && !u.touchedBy(touched) {
				continue
			}
			keys = append(keys, u.keySetBy(i, w))
		}
	}
	return keys
}

func anyKey(i int) string { return strconv.Itoa(i) + ":*" }

// indexPrefix is the prefix ("i:") of key's index, and whether key stands for any
// key of that index.
func indexPrefix(key string) (prefix string, any bool) {
	n := strings.IndexByte(key, ':')
	return key[:n+1], key[n+1:] == "*"
}

func (u uniqueIndex) touchedBy(touched map[string]bool) bool {
	for _, p := range u.paths {
		top, _, _ := strings.Cut(p, ".")
		if touched[top] {
			return true
		}
	}
	return false
}

// keySetBy is the key update w leaves index u (the i-th) with, when w sets each
// of its fields to a value it carries; any key otherwise.
func (u uniqueIndex) keySetBy(i int, w *oplog.Write) string {
	return u.key(i, func(p string) (bson.RawValue, bool) { return valueSetBy(w, p) })
}

// key is the key index u (the i-th) holds for the values value finds at its
// paths, or any key where one is not found.
func (u uniqueIndex) key(i int, value func(path string) (bson.RawValue, bool)) string {
	if len(u.paths) == 0 {
		return anyKey(i)
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(i))
	b.WriteByte(':')
	for _, p := range u.paths {
		v, ok := value(p)
		if !ok {
			return anyKey(i)
		}
		b.WriteString(u.valueKey(v))
		b.WriteByte(0)
	}
	return b.String()
}

// valueSetBy is the value update w leaves at path (a zero RawValue when it
// removes it); ok is false when w does not set it, or not to a value it carries
// (a pipeline without its diff, an array on the way, a change below the path).
func valueSetBy(w *oplog.Write, path string) (bson.RawValue, bool) {
	if w.Diff != nil {
		return diffSets(w.Diff, strings.Split(path, "."))
	}
	if w.Pipeline != nil || w.Update == nil {
		return bson.RawValue{}, false
	}
	ops, err := w.Update.Elements()
	if err != nil {
		return bson.RawValue{}, false
	}
	var v bson.RawValue
	set := false
	for _, op := range ops {
		fields, ok := op.Value().DocumentOK()
		if !ok {
			return bson.RawValue{}, false
		}
		fe, _ := fields.Elements()
		for _, f := range fe {
			k := f.Key()
			switch {
			case k == path || strings.HasPrefix(path, k+"."):
				if op.Key() != "$set" {
					v, set = bson.RawValue{}, true // $unset: missing
					continue
				}
				if k == path {
					v, set = f.Value(), true
					continue
				}
				doc, isDoc := f.Value().DocumentOK()
				if !isDoc {
					v, set = bson.RawValue{}, true // a scalar on the way: missing
					continue
				}
				var found bool
				if v, found = lookupPath(doc, strings.TrimPrefix(path, k+".")); !found {
					return bson.RawValue{}, false
				}
				set = true
			case strings.HasPrefix(k, path+"."):
				return bson.RawValue{}, false // a change below the path
			}
		}
	}
	if !set || v.Type == bsontype.Array {
		return bson.RawValue{}, false
	}
	return v, true
}

// diffSets is valueSetBy for a $v: 2 diff, the path cut into its fields.
func diffSets(diff bson.Raw, path []string) (bson.RawValue, bool) {
	if _, isArray := diff.Lookup("a").BooleanOK(); isArray {
		return bson.RawValue{}, false
	}
	field := path[0]
	for _, section := range []string{"u", "i"} {
		if v, err := diff.LookupErr(section, field); err == nil {
			if len(path) == 1 {
				return v, v.Type != bsontype.Array
			}
			doc, isDoc := v.DocumentOK()
			if !isDoc {
				return bson.RawValue{}, true // a scalar on the way: missing
			}
			return lookupPath(doc, strings.Join(path[1:], "."))
		}
	}
	if _, err := diff.LookupErr("d", field); err == nil {
		return bson.RawValue{}, true
	}
	if sub, ok := diff.Lookup("s" + field).DocumentOK(); ok && len(path) > 1 {
		return diffSets(sub, path[1:])
	}
	return bson.RawValue{}, false // not set here, or changed below the path
}

// keyOf is the key doc gives index u (the i-th), or any key where a path meets
// an array (a multikey index holds a key per element) or the key pattern is
// unknown.
func (u uniqueIndex) keyOf(i int, doc bson.Raw) string {
	return u.key(i, func(p string) (bson.RawValue, bool) { return lookupPath(doc, p) })
}

// lookupPath is the value at a dotted path (a zero RawValue when missing); ok is
// false where the path meets an array.
func lookupPath(doc bson.Raw, path string) (bson.RawValue, bool) {
	cur := bson.RawValue{Type: bsontype.EmbeddedDocument, Value: doc}
	for _, part := range strings.Split(path, ".") {
		switch cur.Type {
		case bsontype.Array:
			return bson.RawValue{}, false
		case bsontype.EmbeddedDocument:
			v, err := cur.Document().LookupErr(part)
			if err != nil {
				return bson.RawValue{}, true
			}
			cur = v
		default:
			return bson.RawValue{}, true // a scalar on the way: the path is missing
		}
	}
	if cur.Type == bsontype.Array {
		return bson.RawValue{}, false
	}
	return cur, true
}

// valueKey names a key value so that values an index holds equal name alike.
func (u uniqueIndex) valueKey(v bson.RawValue) string {
	switch v.Type {
	case 0, bsontype.Null, bsontype.Undefined:
		return "z" // missing and null index alike
	case bsontype.Int32, bsontype.Int64, bsontype.Double, bsontype.Decimal128:
		return "n" + numberKey(v)
	case bsontype.String, bsontype.Symbol:
		if u.collated {
			return "s"
		}
		s, ok := v.StringValueOK()
		if !ok {
			s = v.Symbol()
		}
		return "s" + s
	case bsontype.EmbeddedDocument:
		return "d" // compared field by field, numbers by value: all alike here
	}
	return string(rune(v.Type)) + string(v.Value)
}

func numberKey(v bson.RawValue) string {
	var f float64
	switch v.Type {
	case bsontype.Int32:
		f = float64(v.Int32())
	case bsontype.Int64:
		f = float64(v.Int64())
	case bsontype.Double:
		f = v.Double()
	case bsontype.Decimal128:
		var err error
		if f, err = strconv.ParseFloat(v.Decimal128().String(), 64); err != nil {
			return "NaN"
		}
	}
	switch {
	case math.IsNaN(f):
		return "NaN"
	case f == 0:
		return "0" // -0 too
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// touchedFields are the top-level fields an update changes, from its $v: 2 diff
// or its operators; known is false when it cannot be told (a pipeline without
// its diff).
func touchedFields(w *oplog.Write) (touched map[string]bool, known bool) {
	touched = map[string]bool{}
	if w.Diff != nil {
		elems, err := w.Diff.Elements()
		if err != nil {
			return nil, false
		}
		for _, e := range elems {
			switch k := e.Key(); {
			case k == "u" || k == "i" || k == "d":
				fields, ok := e.Value().DocumentOK()
				if !ok {
					return nil, false
				}
				fe, _ := fields.Elements()
				for _, f := range fe {
					touched[f.Key()] = true
				}
			case strings.HasPrefix(k, "s"):
				touched[k[1:]] = true
			default:
				return nil, false
			}
		}
		return touched, true
	}
	if w.Pipeline != nil || w.Update == nil {
		return nil, false
	}
	ops, err := w.Update.Elements()
	if err != nil {
		return nil, false
	}
	for _, op := range ops {
		fields, ok := op.Value().DocumentOK()
		if !ok {
			return nil, false
		}
		fe, _ := fields.Elements()
		for _, f := range fe {
			top, _, _ := strings.Cut(f.Key(), ".")
			touched[top] = true
		}
	}
	return touched, true
}

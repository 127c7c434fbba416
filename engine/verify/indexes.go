package verify

import (
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// IndexDifference is an index the destination does not hold as the source does,
// or, with no Index, a collection the destination holds and the source does not.
type IndexDifference struct {
	Namespace string
	Index     string // the index's name; "" for the collection itself
	What      string // in words: "unique on the source, not on the destination"
	// Relaxed says the destination holds the index as the sync builds it
	// (oplog.RelaxIndexForSync): the source's unique flag or TTL missing, nothing
	// else different. Source, the source's specification, restores it.
	Relaxed bool
	Source  bson.Raw
	// Missing says the destination lacks the index altogether (Source builds it).
	Missing bool
}

func (d IndexDifference) String() string {
	if d.Index == "" {
		return fmt.Sprintf("%s: %s", d.Namespace, d.What)
	}
	return fmt.Sprintf("%s index %s: %s", d.Namespace, d.Index, d.What)
}

// DestinationOnly is the difference of a collection the destination holds and
// the source does not: even empty, an application would find it there.
func DestinationOnly(ns string) IndexDifference {
	return IndexDifference{Namespace: ns, What: "the collection is on the destination, not on the source"}
}

// indexBehaviour are the fields of an index specification that change what the
// index does: which documents it holds, what it refuses, what it deletes, how it
// compares. The rest (v, ns, background, the text and 2dsphere index versions a
// newer server builds by default) may differ between releases and change nothing
// an application sees.
var indexBehaviour = []string{
	"key", "unique", "sparse", "partialFilterExpression", "expireAfterSeconds", "collation", "hidden",
	"weights", "default_language", "language_override", "wildcardProjection", "bits", "min", "max",
}

// flagFields are the boolean options, false when absent.
var flagFields = []string{"unique", "sparse", "hidden"}

// CompareIndexes compares one collection's index specifications on both sides
// (listIndexes' answers), by name: an index missing on either side, or whose
// behaviour differs. nil when they are the same.
func CompareIndexes(ns string, src, dst []bson.Raw) []IndexDifference {
	byName := func(specs []bson.Raw) map[string]bson.Raw {
		out := map[string]bson.Raw{}
		for _, s := range specs {
			if name, ok := s.Lookup("name").StringValueOK(); ok {
				out[name] = s
			}
		}
		return out
	}
	srcBy, dstBy := byName(src), byName(dst)
	var out []IndexDifference
	for _, name := range sortedNames(srcBy) {
		d, ok := dstBy[name]
		if !ok {
			out = append(out, IndexDifference{Namespace: ns, Index: name, What: "missing on the destination", Source: srcBy[name], Missing: true})
			continue
		}
		var diffs []IndexDifference
		relaxed := true
		for _, f := range indexBehaviour {
			sv, dv := srcBy[name].Lookup(f), d.Lookup(f)
			if what := fieldDiffers(f, sv, dv); what != "" {
				diffs = append(diffs, IndexDifference{Namespace: ns, Index: name, What: what, Source: srcBy[name]})
				relaxed = relaxed && relaxedField(f, sv, dv)
			}
		}
		for i := range diffs {
			diffs[i].Relaxed = relaxed
		}
		out = append(out, diffs...)
	}
	for _, name := range sortedNames(dstBy) {
		if _, ok := srcBy[name]; !ok {
			if what := extraIndexEffect(dstBy[name]); what != "" {
				out = append(out, IndexDifference{Namespace: ns, Index: name, What: "only on the destination, " + what})
			}
		}
	}
	return out
}

// extraIndexEffect is what an index only the destination holds changes for an
// application: a unique index refuses writes the source takes, a TTL index deletes
// documents the source keeps. "" for any other: it serves queries, and changes no
// document nor any write's outcome. That is the shard key index the destination
// builds when Shardlift shards a collection whose source serves the same key with a
// longer compound index (a real cluster's shardCollection accepts either); it must
// not keep the DBA from "I'm done".
func extraIndexEffect(spec bson.Raw) string {
	switch {
	case truthy(spec.Lookup("unique")):
		return "unique: it refuses writes the source takes"
	case spec.Lookup("expireAfterSeconds").Type != 0:
		return "TTL: it deletes documents the source keeps"
	}
	return ""
}

func sortedNames(m map[string]bson.Raw) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// fieldDiffers says how field f of an index differs between source (s) and
// destination (d), "" when it does not: flags by truth; other values as MongoDB
// compares them (numbers by value, documents field by field in order: a key
// {a: 1, b: 1} is not {b: 1, a: 1}); a collation without its ICU version (each
// release has its own).
func fieldDiffers(f string, s, d bson.RawValue) string {
	if slices.Contains(flagFields, f) {
		st, dt := truthy(s), truthy(d)
		switch {
		case st == dt:
			return ""
		case st:
			return f + " on the source, not on the destination"
		default:
			return f + " on the destination, not on the source"
		}
	}
	if f == "collation" {
		s, d = withoutField(s, "version"), withoutField(d, "version")
	}
	switch {
	case s.Type == 0 && d.Type == 0:
		return ""
	case d.Type == 0:
		return fmt.Sprintf("%s %s on the source, none on the destination", f, shown(s))
	case s.Type == 0:
		return fmt.Sprintf("%s %s on the destination, none on the source", f, shown(d))
	case shardkey.Compare(bsoncore.Value{Type: s.Type, Data: s.Value}, bsoncore.Value{Type: d.Type, Data: d.Value}) != 0:
		return fmt.Sprintf("%s %s on the source, %s on the destination", f, shown(s), shown(d))
	}
	return ""
}

// shown is a value as the shell would print it (relaxed extended JSON).
func shown(v bson.RawValue) string {
	out, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, false, false)
	if err != nil {
		return v.String()
	}
	return strings.TrimSuffix(strings.TrimPrefix(string(out), `{"v":`), "}")
}

// relaxedField reports whether field f differs as the sync relaxes it: unique on
// the source and not on the destination, or a TTL the destination lacks.
func relaxedField(f string, s, d bson.RawValue) bool {
	switch f {
	case "unique":
		return truthy(s) && !truthy(d)
	case "expireAfterSeconds":
		return s.Type != 0 && d.Type == 0
	}
	return false
}

func truthy(v bson.RawValue) bool {
	switch v.Type {
	case 0, bson.TypeNull:
		return false
	case bson.TypeBoolean:
		return v.Boolean()
	}
	n, ok := v.AsInt64OK()
	return !ok || n != 0
}

// withoutField is a document value without one of its fields.
func withoutField(v bson.RawValue, field string) bson.RawValue {
	doc, ok := v.DocumentOK()
	if !ok {
		return v
	}
	elems, _ := doc.Elements()
	idx, out := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		if e.Key() != field {
			out = append(out, e...)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: out}
}

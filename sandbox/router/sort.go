package router

import (
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// sortSpec is a parsed sort document: the order the router merges shard results in.
type sortSpec []sortKey

type sortKey struct {
	path string
	desc bool
}

func parseSort(spec bson.Raw) (sortSpec, error) {
	elems, err := spec.Elements()
	if err != nil {
		return nil, err
	}
	var s sortSpec
	for _, e := range elems {
		n, ok := asInt64(e.Value())
		if !ok || (n != 1 && n != -1) {
			return nil, wire.BadValue(fmt.Sprintf("the sandbox router sorts only by 1 or -1; %q is %s", e.Key(), e.Value()))
		}
		if e.Key() == "$natural" {
			continue
		}
		s = append(s, sortKey{path: e.Key(), desc: n < 0})
	}
	return s, nil
}

// naturalDirection is 1 or -1 for a sort by {$natural: 1|-1}, the order documents were
// inserted in (a capped collection's such as config.changelog, read newest first with
// -1), and 0 for any other sort. As on a mongod, $natural cannot be combined with
// other sort fields.
func naturalDirection(spec bson.Raw) (int, error) {
	elems, err := spec.Elements()
	if err != nil || len(elems) == 0 {
		return 0, err
	}
	for _, e := range elems {
		if e.Key() != "$natural" {
			continue
		}
		n, ok := asInt64(e.Value())
		if len(elems) > 1 || !ok || (n != 1 && n != -1) {
			return 0, wire.BadValue(fmt.Sprintf("bad sort %s: $natural takes 1 or -1 and cannot be combined with other sort fields", spec))
		}
		return int(n), nil
	}
	return 0, nil
}

// compare orders two documents by the spec, as MongoDB's sort does: a missing field
// sorts as null, an array by its smallest element ascending and its largest
// descending (an empty array before null).
func (s sortSpec) compare(a, b bson.Raw) int {
	for _, k := range s {
		c := compareValues(sortKeyOf(a, k), sortKeyOf(b, k))
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// emptyArrayKey stands for an empty array, which MongoDB sorts before null.
var emptyArrayKey = bson.RawValue{Type: bsontype.Undefined}

func sortKeyOf(doc bson.Raw, k sortKey) bson.RawValue {
	vals := pathValues(doc, k.path)
	if len(vals) == 0 {
		return nullValue
	}
	sawArray := false
	for _, v := range vals {
		if v.Type == bsontype.Array {
			sawArray = true
		}
	}
	flat := flatten(vals)
	if len(flat) == 0 {
		if sawArray {
			return emptyArrayKey
		}
		return nullValue
	}
	best := flat[0]
	for _, v := range flat[1:] {
		c := compareValues(v, best)
		if (k.desc && c > 0) || (!k.desc && c < 0) {
			best = v
		}
	}
	return best
}

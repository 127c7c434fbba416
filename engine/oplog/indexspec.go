package oplog

import (
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
)

// indexLeftovers are the fields of a source's index specification (as listIndexes
// and the oplog's createIndexes, startIndexBuild and commitIndexBuild carry it)
// that a destination's createIndexes must not be given:
//
//   - v: the index version the source built it with (v: 1 on indexes from before
//     3.4); the destination builds its own default version;
//   - ns: written into specs before 4.4, refused by createIndexes from 4.4 on;
//   - background: ignored since 4.2 (every build is a hybrid build);
//   - dropDups: ignored since 3.0.
//
// What a newer server refuses outright (geoHaystack and its bucketSize, removed in
// 5.0) is not dropped here: validation names it, with the fix, before anything
// is copied.
var indexLeftovers = []string{"v", "ns", "background", "dropDups"}

// DestinationIndexSpec is the spec to give the destination's createIndexes for an
// index the source has: the source's spec without its leftovers (indexLeftovers),
// every other field kept in its order. The copy's index builds and the replay of
// index DDL both go through it, so that an index is asked for the same way
// whichever path meets it. A corrupt spec comes back unchanged, for
// RelaxIndexForSync to report.
func DestinationIndexSpec(spec bson.Raw) bson.Raw {
	if !validDoc(spec, maxDocDepth) {
		return spec
	}
	return without(spec, indexLeftovers...)
}

// IndexLeftovers names the leftovers spec carries that DestinationIndexSpec leaves
// out, but for an index version that is the default of every server since 3.4
// (v: 2): "ns", "background", "dropDups", "v: 1".
func IndexLeftovers(spec bson.Raw) []string {
	var out []string
	for _, f := range indexLeftovers {
		v := spec.Lookup(f)
		switch {
		case v.Type == 0:
		case f == "v":
			if n, ok := v.AsInt64OK(); ok && n < 2 {
				out = append(out, fmt.Sprintf("v: %d", n))
			}
		default:
			out = append(out, f)
		}
	}
	return out
}

package validate

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/topology"
)

const crossingTitle = "Everything on the source can be created on the destination's MongoDB version"

// refusal is something a source can hold that a destination from version since on
// refuses to create (or, for a TTL index, treats otherwise), from MongoDB's
// compatibility notes. before, when set, limits it to sources older than that
// version (newer ones no longer have it, or treat it the same way).
type refusal struct {
	since, before string
	// index matches an index specification, collection a collection's options;
	// one of them is set.
	index      func(spec bson.Raw) bool
	collection func(options bson.Raw) bool
	what, fix  string
}

var refusals = []refusal{{
	since: "4.0",
	collection: func(o bson.Raw) bool {
		b, ok := o.Lookup("autoIndexId").BooleanOK()
		return ok && !b
	},
	what: "no _id index (autoIndexId: false), which MongoDB 4.0 and later refuse to create",
	fix:  "Copy the documents of each such collection into a new collection on the source (it gets an _id index; their _ids must be unique) and drop the old one, or drop it if it is not needed.",
}, {
	since: "5.0",
	index: func(spec bson.Raw) bool {
		key, _ := spec.Lookup("key").DocumentOK()
		elems, _ := key.Elements()
		for _, e := range elems {
			if s, ok := e.Value().StringValueOK(); ok && s == "geoHaystack" {
				return true
			}
		}
		return false
	},
	what: "a geoHaystack index, which MongoDB 5.0 removed",
	fix:  "Replace each geoHaystack index on the source with a 2d index (db.<collection>.dropIndex(<name>), then db.<collection>.createIndex({<field>: \"2d\"})) and query it with $geoNear or $geoWithin instead of geoSearch.",
}, {
	since: "5.0", before: "5.0",
	index: func(spec bson.Raw) bool {
		f, ok := spec.Lookup("expireAfterSeconds").DoubleOK()
		return ok && math.IsNaN(f)
	},
	what: "a TTL index with expireAfterSeconds NaN: MongoDB 4.4 never expires its documents, 5.0 and later expire them all at once",
	fix:  "Give each such index a real expiry on the source, db.runCommand({collMod: <collection>, index: {name: <name>, expireAfterSeconds: <seconds>}}), or drop it and create it again without one.",
}, {
	since:      "6.2",
	collection: func(o bson.Raw) bool { return o.Lookup("recordPreImages").Type != 0 },
	what:       "the recordPreImages option, which MongoDB 6.2 removed (changeStreamPreAndPostImages replaces it)",
	fix:        "Turn it off on the source, db.runCommand({collMod: <collection>, recordPreImages: false}); after the cutover, turn on changeStreamPreAndPostImages on the destination if your change streams read pre-images.",
}, {
	since: "7.0", before: "7.0",
	collection: func(o bson.Raw) bool { return o.Lookup("encryptedFields").Type != 0 },
	what:       "Queryable Encryption of the MongoDB 6.x public preview (encryptedFields), which 7.0's is incompatible with",
	fix:        "Query each such collection with your 6.x driver to decrypt its data and drop it from the source; after the cutover create it again with 7.0 drivers (MongoDB's 7.0 compatibility notes describe the move).",
}}

// applies reports whether the refusal concerns a source of version src migrating
// into a destination of version dst.
func (r refusal) applies(src, dst string) bool {
	return !topology.OlderThan(dst, r.since) && (r.before == "" || topology.OlderThan(src, r.before))
}

// crossing names what the source holds that the destination's version refuses to
// create (index types, index and collection options), each with its fix, so that
// an upgrade is refused for what cannot cross and not for the pair of versions. It
// also says which leftovers of older servers the copy leaves out of index specs.
func (c *checker) crossing() {
	const id, title = IDVersionCrossing, crossingTitle
	if c.blocked(id, title, IDVersion, IDSourceSharded) {
		return
	}
	src, dst := only(majors(c.in.Source)), only(majors(c.in.Destination))
	var found, fixes []string
	leftovers := map[string]int{}
	indexes := 0
	for _, ns := range c.in.Source.Namespaces {
		for _, r := range refusals {
			if r.collection != nil && r.applies(src, dst) && r.collection(ns.Options) {
				found = append(found, fmt.Sprintf("%s: %s", ns.Name(), r.what))
				fixes = append(fixes, r.fix)
			}
		}
		for _, spec := range ns.Indexes {
			indexes++
			for _, l := range oplog.IndexLeftovers(spec) {
				leftovers[l]++
			}
			for _, r := range refusals {
				if r.index != nil && r.applies(src, dst) && r.index(spec) {
					name, _ := spec.Lookup("name").StringValueOK()
					found = append(found, fmt.Sprintf("%s index %s: %s", ns.Name(), name, r.what))
					fixes = append(fixes, r.fix)
				}
			}
		}
	}
	unlisted := c.in.Source.ProblemsWith(topology.PartIndexes)
	switch {
	case len(found) > 0:
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("MongoDB %s refuses: %s", dst, list(found)),
			Fix:    joinFixes(fixes) + " Then validate again."})
	case len(unlisted) > 0:
		c.add(Finding{ID: id, Status: Warning, Title: title,
			Detail: "not fully checked, the indexes of some collections could not be listed: " + problemList(unlisted),
			Fix:    "Check that the user may run listIndexes on every collection (readAnyDatabase), or compare the indexes with MongoDB " + dst + "'s compatibility notes by hand."})
	default:
		detail := fmt.Sprintf("nothing of the source's %s and %s is refused by MongoDB %s",
			plural(len(c.in.Source.Namespaces), "collection or view", "collections and views"), plural(indexes, "index", "indexes"), dst)
		if len(leftovers) > 0 {
			detail += "; the copy leaves out of the index specifications what older servers left in them (" + countList(leftovers) + ")"
		}
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: detail})
	}
}

// countList shows counts by name: "background on 3, ns on 12".
func countList(counts map[string]int) string {
	var out []string
	for name, n := range counts {
		out = append(out, fmt.Sprintf("%s on %d", name, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

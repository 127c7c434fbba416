package validate

import (
	"fmt"

	"github.com/shardlift/shardlift/engine/topology"
)

// IDCollations warns of the collections with a default collation.
const IDCollations = "source.collations"

// collations warns of the collections with a default collation: the copy reads them
// in bytewise _id order (the simple collation), which their _id index, built with
// the default collation, cannot give; each shard sorts them instead, on disk from
// 4.4 on, in memory before, where a sort over 32 MiB fails. Their destination
// collections get the same default collation.
func (c *checker) collations() {
	const id, title = IDCollations, "Collections with a default collation can be copied in _id order"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	src := c.in.Source
	byNS := map[string]bool{}
	for _, coll := range src.Collections {
		if coll.DefaultCollation != nil {
			byNS[coll.Namespace] = true
		}
	}
	var names []string
	for _, ns := range src.Namespaces {
		if _, ok := ns.Options.Lookup("collation").DocumentOK(); (ok && ns.Type == "collection") || byNS[ns.Name()] {
			names = append(names, ns.Name())
		}
	}
	if len(names) == 0 {
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "no collection has a default collation"})
		return
	}
	version := only(majors(src))
	if topology.OlderThan(version, "4.4") {
		c.add(Finding{ID: id, Status: Warning, Title: title,
			Detail: fmt.Sprintf("%s: the copy reads them sorted by _id in bytewise order, which their _id index cannot give, and MongoDB %s sorts at most 32 MiB in memory: a shard's part of a larger one fails its copy",
				list(names), version),
			Fix: "On each shard primary raise the limit for the copy, db.adminCommand({setParameter: 1, internalQueryExecMaxBlockingSortBytes: <bytes of the largest collection's part on that shard>}), and set it back afterwards."})
		return
	}
	c.add(Finding{ID: id, Status: Warning, Title: title,
		Detail: fmt.Sprintf("%s: the copy reads them sorted by _id in bytewise order, which their _id index cannot give, so each shard sorts them on disk: they copy slower than other collections; their destination collections get the same default collation",
			list(names)),
		Fix: "Nothing to do; leave disk room on the source shards for the sort of the largest of them."})
}

package prepare

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
)

// Ownership is what one source shard owns, as the source's chunk map said when
// the shard's copy started (its T0). It is saved with the shard's checkpoint: a
// resumed copy takes exactly this, never the chunk map of the resume, and the move
// watcher compares it with the chunk map of now (Changes). The bson tags are part
// of the state file.
type Ownership struct {
	// Primaries are every user database's primary shard, the shard that holds the
	// database's untracked unsharded collections.
	Primaries map[string]string `bson:"primaries"`
	// Collections are every tracked collection (sharded, or 8.0's tracked
	// unsharded ones), each with the ranges this shard owns of it (none: nothing).
	Collections []OwnedCollection `bson:"collections,omitempty"`
}

// OwnedCollection is one tracked collection and what a shard owns of it.
type OwnedCollection struct {
	NS   string   `bson:"ns"`
	UUID []byte   `bson:"uuid,omitempty"`
	Key  bson.Raw `bson:"key"`
	// Ranges are the shard's chunks, sorted, adjacent ones merged.
	Ranges []OwnedRange `bson:"ranges,omitempty"`
}

// OwnedRange is the half-open shard key range [Min, Max).
type OwnedRange struct {
	Min bson.Raw `bson:"min"`
	Max bson.Raw `bson:"max"`
}

// OwnershipOf is what shard owns in the source's metadata: its databases'
// primaries and every tracked collection with the shard's chunks.
func OwnershipOf(dbs []topology.Database, colls []topology.Collection, shard string) (Ownership, error) {
	o := Ownership{Primaries: map[string]string{}}
	for _, d := range dbs {
		if namespaces.UserDatabase(d.Name) {
			o.Primaries[d.Name] = d.Primary
		}
	}
	for _, c := range colls {
		if !namespaces.MigratedNS(c.Namespace) {
			continue
		}
		key, err := bson.Marshal(c.Key)
		if err != nil {
			return Ownership{}, fmt.Errorf("shard key of %s: %w", c.Namespace, err)
		}
		oc := OwnedCollection{NS: c.Namespace, UUID: slices.Clone(c.UUID.Data), Key: key}
		for _, ch := range c.ChunksOn(shard) {
			oc.Ranges = append(oc.Ranges, OwnedRange{Min: ch.Min, Max: ch.Max})
		}
		oc.Ranges = mergeRanges(oc.Ranges)
		o.Collections = append(o.Collections, oc)
	}
	slices.SortFunc(o.Collections, func(a, b OwnedCollection) int { return strings.Compare(a.NS, b.NS) })
	return o, nil
}

// mergeRanges sorts ranges by their min and merges adjacent ones: the same
// ownership gives the same ranges whatever splits cut it into chunks.
func mergeRanges(rs []OwnedRange) []OwnedRange {
	slices.SortFunc(rs, func(a, b OwnedRange) int { return shardkey.CompareKeys(shardkey.Key(a.Min), shardkey.Key(b.Min)) })
	var out []OwnedRange
	for _, r := range rs {
		if n := len(out); n > 0 && shardkey.CompareKeys(shardkey.Key(out[n-1].Max), shardkey.Key(r.Min)) == 0 {
			out[n-1].Max = r.Max
			continue
		}
		out = append(out, r)
	}
	return out
}

// collection returns the tracked collection ns.
func (o Ownership) collection(ns string) (OwnedCollection, bool) {
	i := slices.IndexFunc(o.Collections, func(c OwnedCollection) bool { return c.NS == ns })
	if i < 0 {
		return OwnedCollection{}, false
	}
	return o.Collections[i], true
}

// whole reports whether the ranges are the whole key space: the shard owns every
// chunk of the collection.
func whole(rs []OwnedRange) bool {
	allOf := func(doc bson.Raw, t bsontype.Type) bool {
		elems, err := doc.Elements()
		if err != nil || len(elems) == 0 {
			return false
		}
		for _, e := range elems {
			if e.Value().Type != t {
				return false
			}
		}
		return true
	}
	return len(rs) == 1 && allOf(rs[0].Min, bsontype.MinKey) && allOf(rs[0].Max, bsontype.MaxKey)
}

func sameRanges(a, b []OwnedRange) bool {
	return slices.EqualFunc(a, b, func(x, y OwnedRange) bool { return bytes.Equal(x.Min, y.Min) && bytes.Equal(x.Max, y.Max) })
}

// Change is one difference between what a shard owned at its T0 and what it owns
// now.
type Change struct {
	// NS is the collection ("db.coll"), or the database for a primary's move.
	NS string
	// Shards are the shards whose data the change moved: every one of them must
	// copy again.
	Shards []string
	// Resharded says the collection was resharded (a new UUID and shard key, or a
	// resharding in the changelog): copying again cannot help, the destination
	// has the old shard key.
	Resharded bool
	// What says it in words ("the chunks of shop.orders moved (shards rs0, rs1)").
	What string
}

// Changes compares what shard owned at its T0 (was) with the source's metadata of
// now (now, from OwnershipOf for the same shard: Primaries and Collections are the
// whole cluster's). resharded names the collections the changelog shows resharded
// since (moveCollection and unshardCollection reshard too). A collection created,
// dropped or sharded meanwhile is the replay's DDL, not a change, unless it took
// data from or to another shard.
func Changes(shard string, was, now Ownership, resharded map[string]bool) []Change {
	var out []Change
	for db, from := range was.Primaries {
		to, ok := now.Primaries[db]
		if ok && to != from && (from == shard || to == shard) {
			out = append(out, Change{NS: db, Shards: []string{from, to},
				What: fmt.Sprintf("the primary shard of database %s moved from %s to %s (movePrimary): its unsharded collections moved", db, from, to)})
		}
	}
	for _, c := range now.Collections {
		old, tracked := was.collection(c.NS)
		switch {
		case tracked && !bytes.Equal(old.UUID, c.UUID):
			if resharded[c.NS] || !bytes.Equal(old.Key, c.Key) {
				out = append(out, Change{NS: c.NS, Resharded: true,
					What: fmt.Sprintf("%s was resharded (reshardCollection, moveCollection or unshardCollection: now shard key %s)", c.NS, c.Key)})
			}
			// Otherwise dropped and created again: the replay's DDL.
		case tracked && !bytes.Equal(old.Key, c.Key):
			// Refined (refineCollectionShardKey): the metadata watcher's.
		case tracked:
			if !sameRanges(old.Ranges, c.Ranges) {
				out = append(out, Change{NS: c.NS, Shards: []string{shard},
					What: fmt.Sprintf("chunks of %s moved to or from shard %s (moveChunk or moveRange)", c.NS, shard)})
			}
		default:
			// Tracked since the shard's T0 (sharded, or moved by 8.0's
			// moveCollection): it was untracked on its database's primary.
			db, _, _ := strings.Cut(c.NS, ".")
			home, known := was.Primaries[db]
			if resharded[c.NS] {
				out = append(out, Change{NS: c.NS, Resharded: true,
					What: fmt.Sprintf("%s was resharded or moved (reshardCollection, moveCollection or unshardCollection)", c.NS)})
				continue
			}
			ownedThen := known && home == shard
			ownsAll := whole(c.Ranges)
			if known && ownedThen != ownsAll && (ownedThen || len(c.Ranges) > 0) {
				out = append(out, Change{NS: c.NS, Shards: []string{shard, home},
					What: fmt.Sprintf("chunks of %s, sharded during the migration, moved between shard %s and %s (moveChunk or moveRange)", c.NS, home, shard)})
			}
		}
	}
	for i := range out {
		slices.Sort(out[i].Shards)
		out[i].Shards = slices.Compact(out[i].Shards)
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.NS, b.NS) })
	return out
}

// ShardAt is the plan of one source shard restricted to what it owned at its T0
// (own): the copy of a resumed shard takes exactly the ranges of its T0, whatever
// moved since (the move watcher restarts a shard whose ownership changed). A
// collection whose shard key changed since cannot be filtered by the saved ranges:
// the shard must copy again.
func (p *Plan) ShardAt(source string, own Ownership) (*ShardPlan, error) {
	sp, ok := p.Shard(source)
	if !ok {
		return nil, fmt.Errorf("source shard %s is not in the plan", source)
	}
	estimates := map[string]ShardNamespace{}
	for _, n := range sp.Namespaces {
		estimates[n.NS()] = n
	}
	out := *sp
	out.Namespaces, out.Docs, out.Bytes = nil, 0, 0
	for _, c := range p.Collections {
		if c.Type != "collection" {
			continue
		}
		n := ShardNamespace{Collection: c}
		if oc, tracked := own.collection(c.NS()); tracked {
			if len(oc.Ranges) == 0 {
				continue
			}
			if c.Sharded && !whole(oc.Ranges) {
				if !bytes.Equal(oc.Key, c.Key) {
					return nil, fmt.Errorf("the shard key of %s changed since shard %s started copying (from %s to %s): restart this shard", c.NS(), source, bson.Raw(oc.Key), c.Key)
				}
				ranges := make([]shardkey.Range, len(oc.Ranges))
				for i, r := range oc.Ranges {
					ranges[i] = shardkey.Range{Min: shardkey.Key(r.Min), Max: shardkey.Key(r.Max)}
				}
				rs, err := shardkey.NewRanges(ranges)
				if err != nil {
					return nil, fmt.Errorf("the saved ranges of %s on shard %s: %w", c.NS(), source, err)
				}
				n.Ranges = rs
			}
		} else if own.Primaries[c.DB] != source {
			continue
		}
		if e, ok := estimates[c.NS()]; ok {
			n.Docs, n.Bytes = e.Docs, e.Bytes
		}
		out.Namespaces = append(out.Namespaces, n)
		out.Docs += n.Docs
		out.Bytes += n.Bytes
	}
	slices.SortStableFunc(out.Namespaces, func(a, b ShardNamespace) int {
		if a.Bytes != b.Bytes {
			return -cmpInt64(a.Bytes, b.Bytes)
		}
		return -cmpInt64(a.Docs, b.Docs)
	})
	return &out, nil
}

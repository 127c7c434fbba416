package prepare

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
)

// Plan is what a migration copies and where it puts it: built once from the
// source's topology (with the balancer stopped, so chunks stay where they are) and
// the destination's shard list. It is immutable once built and safe to share.
type Plan struct {
	// Shards pairs every source shard with its destination twin, in the source's
	// listShards order.
	Shards []ShardPlan
	// Databases are the source's user databases with their primary shards.
	Databases []Database
	// Collections are every collection and view of the source's user databases,
	// sorted by namespace, including kinds Prepare refuses (see Collection.Type).
	Collections []*Collection
	// Zones are the source's zone key ranges, which Prepare gives the
	// destination (each source shard's zones go to its twin: ShardPlan.Zones).
	Zones []topology.ZoneRange
	// DestinationVersion is the destination's MongoDB version (its mongos'),
	// which decides the commands Prepare uses where they changed.
	DestinationVersion string
	// owned is what each source shard owns (Ownership).
	owned map[string]Ownership
}

// Ownership is what a source shard owns in the chunk map the plan was built from.
func (p *Plan) Ownership(source string) (Ownership, bool) {
	o, ok := p.owned[source]
	return o, ok
}

// Database is one user database and where its primary is on both sides.
type Database struct {
	Name string
	// SourcePrimary is the source shard holding the database's unsharded
	// collections; Primary is its destination twin.
	SourcePrimary, Primary string
}

// Collection is one namespace of the source as the whole migration sees it.
type Collection struct {
	DB, Name string
	// Type is listCollections' type: "collection", "view", "timeseries", ...
	Type string
	// Options are listCollections' options (capped, size, max, collation,
	// validator, viewOn, pipeline, clusteredIndex, ...), nil when unknown.
	Options bson.Raw
	Capped  bool
	// Sharded collections have a shard key Pattern (Key is its document), the
	// unique flag, the balancer flag, and the source's chunks. Unsharded ones
	// live on SourcePrimary.
	Sharded bool
	Key     bson.Raw
	Pattern *shardkey.Pattern
	Unique  bool
	// NoBalance is set when the source's balancer leaves the collection alone
	// (sh.disableBalancing); the destination's does too.
	NoBalance bool
	// Chunks are sorted by Min.
	Chunks   []shardkey.Chunk
	chunkMap *shardkey.ChunkMap
	// SourcePrimary is the source shard holding the collection when it is not
	// sharded: its database's primary shard, or for an 8.0 tracked unsharded
	// collection (unsplittable) the shard of its one chunk.
	SourcePrimary string
	// configCollation is config.collections' defaultCollation (see DefaultCollation).
	configCollation bson.Raw
	// Count and Size (bytes) are the source's estimates for the whole collection.
	Count, Size int64
}

// NS is "db.collection".
func (c *Collection) NS() string { return c.DB + "." + c.Name }

// DefaultCollation is the collection's default collation: listCollections'
// options.collation, else config.collections' defaultCollation; nil for the simple
// collation. String comparisons of queries on the collection use it unless they
// name another; the destination collection is created with it.
func (c *Collection) DefaultCollation() bson.Raw {
	if coll, ok := c.Options.Lookup("collation").DocumentOK(); ok && len(coll) > 5 {
		return coll
	}
	return c.configCollation
}

// Migrated reports whether the engine copies this kind of namespace: plain
// collections and views. Anything else is refused by validation and by Prepare.
func (c *Collection) Migrated() bool { return c.Type == "collection" || c.Type == "view" }

// ShardPlan is one source shard's part of the migration.
type ShardPlan struct {
	// Source is the source shard's name, Destination its twin's.
	Source, Destination string
	// Namespaces are the collections this shard owns documents of, largest
	// first: the order the copy takes them in.
	Namespaces []ShardNamespace
	// Docs and Bytes are the estimated totals of Namespaces.
	Docs, Bytes int64
	// Zones are the source shard's zones, which its twin joins.
	Zones []string
}

// ShardNamespace is one collection's part on one shard.
type ShardNamespace struct {
	*Collection
	// Ranges are the shard key ranges this shard owns (its chunks, adjacent ones
	// merged); a document outside them is an orphan. Nil for an unsharded
	// collection, whose every document on its primary shard is owned.
	Ranges *shardkey.Ranges
	// Docs and Bytes are this shard's estimated share.
	Docs, Bytes int64
}

// Owns reports whether the document belongs to this shard's part. An error means
// the document cannot be placed at all (an array in its shard key). buf is
// scratch space for the shard key; the grown buffer is returned for reuse.
func (n *ShardNamespace) Owns(doc bson.Raw, buf []byte) (bool, []byte, error) {
	if n.Ranges == nil {
		return true, buf, nil
	}
	key, err := n.Pattern.AppendKey(buf[:0], doc)
	if err != nil {
		return false, buf, err
	}
	return n.Ranges.Contains(key), []byte(key), nil
}

// Shard returns the plan of the named source shard.
func (p *Plan) Shard(source string) (*ShardPlan, bool) {
	for i := range p.Shards {
		if p.Shards[i].Source == source {
			return &p.Shards[i], true
		}
	}
	return nil, false
}

// Twin names the destination shard of a source shard ("" when unknown).
func (p *Plan) Twin(source string) string {
	if s, ok := p.Shard(source); ok {
		return s.Destination
	}
	return ""
}

// Collection returns the named namespace ("db.coll").
func (p *Plan) Collection(ns string) (*Collection, bool) {
	for _, c := range p.Collections {
		if c.NS() == ns {
			return c, true
		}
	}
	return nil, false
}

// NewPlan builds the plan from the source's and the destination's discovery. It
// refuses a source whose sharding metadata, zones or inventory could not be read
// (the plan would silently miss data), shard counts that differ, chunks that do
// not tile their collection's key space, and namespaces whose database has no
// primary shard. MongoDB's own namespaces (engine/namespaces) are never in it,
// whatever discovery lists.
func NewPlan(src, dst *topology.Cluster) (*Plan, error) {
	if src.Kind != topology.KindMongos || dst.Kind != topology.KindMongos {
		return nil, fmt.Errorf("plan: source (%s) and destination (%s) must both be sharded clusters reached through mongos", src.Kind, dst.Kind)
	}
	for _, part := range []string{topology.PartShards, topology.PartDatabases, topology.PartCollections, topology.PartChunks, topology.PartZones, topology.PartInventory} {
		if probs := src.ProblemsWith(part); len(probs) > 0 {
			return nil, fmt.Errorf("plan: the source's %s could not be read, so the migration cannot know all of its data: %w", part, probs[0])
		}
	}
	if len(dst.ProblemsWith(topology.PartShards)) > 0 {
		return nil, fmt.Errorf("plan: the destination's shards could not be listed: %w", dst.ProblemsWith(topology.PartShards)[0])
	}
	if len(src.Shards) == 0 {
		return nil, errors.New("plan: the source lists no shards")
	}
	twin, err := topology.Twins(src.Shards, dst.Shards)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}

	p := &Plan{DestinationVersion: dst.Router.Version, owned: map[string]Ownership{}}
	for _, s := range src.Shards {
		p.Shards = append(p.Shards, ShardPlan{Source: s.Name, Destination: twin[s.Name], Zones: s.Zones})
		if p.owned[s.Name], err = OwnershipOf(src.Databases, src.Collections, s.Name); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
	}
	for _, z := range src.Zones {
		if namespaces.MigratedNS(z.Namespace) {
			p.Zones = append(p.Zones, z)
		}
	}

	primaries := map[string]string{}
	for _, d := range src.Databases {
		if !namespaces.UserDatabase(d.Name) {
			continue
		}
		if _, ok := twin[d.Primary]; !ok {
			return nil, fmt.Errorf("plan: database %s has primary shard %q, which listShards does not report", d.Name, d.Primary)
		}
		primaries[d.Name] = d.Primary
		p.Databases = append(p.Databases, Database{Name: d.Name, SourcePrimary: d.Primary, Primary: twin[d.Primary]})
	}
	slices.SortFunc(p.Databases, func(a, b Database) int { return strings.Compare(a.Name, b.Name) })

	byNS := map[string]*Collection{}
	for _, n := range src.Namespaces {
		if !namespaces.Migrated(n.DB, n.Collection) {
			continue // stored JavaScript: listed for validation to report
		}
		c := &Collection{DB: n.DB, Name: n.Collection, Type: n.Type, Options: n.Options, Capped: n.Capped, Count: n.Count, Size: n.Size}
		byNS[c.NS()] = c
	}
	shardSizes := map[string]map[string]int64{}
	for _, n := range src.Namespaces {
		shardSizes[n.Name()] = n.ShardSizes
	}
	homes := map[string]string{}
	for _, sc := range src.Collections {
		if !namespaces.MigratedNS(sc.Namespace) {
			continue
		}
		if !sc.Sharded() {
			// 8.0 tracks some unsharded collections: one chunk, on the shard that
			// holds the whole collection. It is migrated unsharded.
			if len(sc.Chunks) != 1 {
				return nil, fmt.Errorf("plan: the tracked unsharded collection %s has %d chunks, not one", sc.Namespace, len(sc.Chunks))
			}
			if _, ok := twin[sc.Chunks[0].Shard]; !ok {
				return nil, fmt.Errorf("plan: %s is on shard %q, which listShards does not report", sc.Namespace, sc.Chunks[0].Shard)
			}
			homes[sc.Namespace] = sc.Chunks[0].Shard
			continue
		}
		c, ok := byNS[sc.Namespace]
		if !ok {
			// Sharded but not listed by the inventory (created meanwhile): still copied.
			db, name, _ := strings.Cut(sc.Namespace, ".")
			c = &Collection{DB: db, Name: name, Type: "collection"}
			byNS[sc.Namespace] = c
		}
		if err := c.setSharding(sc, twin); err != nil {
			return nil, err
		}
	}
	for _, c := range byNS {
		primary, ok := primaries[c.DB]
		if !ok {
			return nil, fmt.Errorf("plan: %s is in database %s, which config.databases does not list: its primary shard is unknown", c.NS(), c.DB)
		}
		c.SourcePrimary = primary
		if home, ok := homes[c.NS()]; ok {
			c.SourcePrimary = home
		}
		p.Collections = append(p.Collections, c)
	}
	slices.SortFunc(p.Collections, func(a, b *Collection) int { return strings.Compare(a.NS(), b.NS()) })

	for i := range p.Shards {
		sp := &p.Shards[i]
		for _, c := range p.Collections {
			if c.Type != "collection" {
				continue
			}
			n, ok := c.partOn(sp.Source, shardSizes[c.NS()])
			if !ok {
				continue
			}
			sp.Namespaces = append(sp.Namespaces, n)
			sp.Docs += n.Docs
			sp.Bytes += n.Bytes
		}
		slices.SortStableFunc(sp.Namespaces, func(a, b ShardNamespace) int {
			if a.Bytes != b.Bytes {
				return -cmpInt64(a.Bytes, b.Bytes)
			}
			return -cmpInt64(a.Docs, b.Docs)
		})
	}
	return p, nil
}

// setSharding records a sharded collection's key and chunks, checking that the
// chunks tile the key space and name known shards.
func (c *Collection) setSharding(sc topology.Collection, twin map[string]string) error {
	key, err := bson.Marshal(sc.Key)
	if err != nil {
		return fmt.Errorf("plan: shard key of %s: %w", sc.Namespace, err)
	}
	pattern, err := shardkey.ParsePattern(key)
	if err != nil {
		return fmt.Errorf("plan: %s: %w", sc.Namespace, err)
	}
	chunks := make([]shardkey.Chunk, 0, len(sc.Chunks))
	for _, ch := range sc.Chunks {
		if _, ok := twin[ch.Shard]; !ok {
			return fmt.Errorf("plan: a chunk of %s is on shard %q, which listShards does not report", sc.Namespace, ch.Shard)
		}
		chunks = append(chunks, shardkey.Chunk{Min: shardkey.Key(ch.Min), Max: shardkey.Key(ch.Max), Shard: ch.Shard})
	}
	cm, err := shardkey.NewChunkMap(chunks)
	if err != nil {
		return fmt.Errorf("plan: chunks of %s: %w", sc.Namespace, err)
	}
	slices.SortFunc(chunks, func(a, b shardkey.Chunk) int { return shardkey.CompareKeys(a.Min, b.Min) })
	c.Sharded, c.Key, c.Pattern, c.Unique, c.NoBalance, c.Chunks, c.chunkMap = true, key, pattern, sc.Unique, sc.NoBalance, chunks, cm
	c.configCollation = sc.DefaultCollation
	return nil
}

// partOn is the collection's part on one source shard, false when the shard owns
// none of it.
func (c *Collection) partOn(shard string, sizes map[string]int64) (ShardNamespace, bool) {
	n := ShardNamespace{Collection: c}
	if !c.Sharded {
		if c.SourcePrimary != shard {
			return n, false
		}
		n.Docs, n.Bytes = c.Count, c.Size
		return n, true
	}
	n.Ranges = c.chunkMap.Ranges(shard)
	if n.Ranges.Len() == 0 {
		return n, false
	}
	if size, ok := sizes[shard]; ok {
		n.Bytes = size
		if c.Size > 0 {
			n.Docs = int64(float64(c.Count) * float64(size) / float64(c.Size))
		}
		return n, true
	}
	owned := 0
	for _, ch := range c.Chunks {
		if ch.Shard == shard {
			owned++
		}
	}
	n.Docs = c.Count * int64(owned) / int64(len(c.Chunks))
	n.Bytes = c.Size * int64(owned) / int64(len(c.Chunks))
	return n, true
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Added is the part of p that old lacks: the databases and collections (with their
// zone ranges) created since old was discovered, for Prepare to build on the
// destination before a copy that uses p. It shares Shards and the ownership with p.
func (p *Plan) Added(old *Plan) *Plan {
	had := map[string]bool{}
	for _, d := range old.Databases {
		had["db "+d.Name] = true
	}
	for _, c := range old.Collections {
		had[c.NS()] = true
	}
	added := &Plan{Shards: p.Shards, DestinationVersion: p.DestinationVersion, owned: p.owned}
	for _, d := range p.Databases {
		if !had["db "+d.Name] {
			added.Databases = append(added.Databases, d)
		}
	}
	for _, c := range p.Collections {
		if !had[c.NS()] {
			added.Collections = append(added.Collections, c)
		}
	}
	for _, z := range p.Zones {
		if slices.ContainsFunc(added.Collections, func(c *Collection) bool { return c.NS() == z.Namespace }) {
			added.Zones = append(added.Zones, z)
		}
	}
	return added
}

// Removed lists the collections (and views) of old that p lacks: dropped, or
// renamed away, on the source since old was discovered.
func (p *Plan) Removed(old *Plan) []*Collection {
	has := map[string]bool{}
	for _, c := range p.Collections {
		has[c.NS()] = true
	}
	var out []*Collection
	for _, c := range old.Collections {
		if !has[c.NS()] {
			out = append(out, c)
		}
	}
	return out
}

// Empty reports whether the plan holds no database and no collection.
func (p *Plan) Empty() bool { return len(p.Databases) == 0 && len(p.Collections) == 0 }

package topology

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// PlacementWatch is Placement for a reader that asks again every few seconds (the
// move watcher): it keeps the chunk map between reads and reads only what changed.
// Each Read takes config.databases and config.collections whole (one small
// document per database and per tracked collection), and of config.chunks only
// the chunks whose lastmod is above the highest its collection had at the last
// Read, in one query on the {uuid, lastmod} index ({ns, lastmod} before 5.0).
// Every split, merge and move gives the chunks it writes a higher lastmod, so the
// new chunks replace the kept ones they overlap, as a router's incremental
// refresh does. A collection new since the last Read, or whose UUID, epoch or
// timestamp changed (dropped and created again, resharded), has its chunks read
// whole. On a cluster that did not change a Read costs the two small collections
// and one query that returns nothing, where Placement reads every chunk.
type PlacementWatch struct {
	dbs   []Database
	colls map[string]*watchedCollection // by namespace
}

type watchedCollection struct {
	coll     Collection // its chunks sorted by min
	identity []byte     // uuid, epoch and timestamp as config.collections has them
	version  primitive.Timestamp
	byUUID   bool // its chunks name their collection by uuid (5.0+), not ns
}

// Read returns the placement now, as Placement does, and whether it differs from
// the last Read's (the first one always does). A Read that fails, or meets a chunk
// map in the middle of a change, leaves the watch to read the collections
// involved whole the next time.
func (w *PlacementWatch) Read(ctx context.Context, client *mongo.Client, timeout time.Duration) ([]Database, []Collection, bool, error) {
	config := client.Database("config")
	docs, err := readAll(ctx, config.Collection("databases"), timeout, bson.D{})
	if err != nil {
		return nil, nil, false, fmt.Errorf("read config.databases: %w", err)
	}
	dbs := parseDatabases(docs)
	changed := w.colls == nil || !slices.Equal(dbs, w.dbs)
	if docs, err = readAll(ctx, config.Collection("collections"), timeout, bson.D{}); err != nil {
		return nil, nil, false, fmt.Errorf("read config.collections: %w", err)
	}
	colls, err := parseCollections(docs)
	if err != nil {
		return nil, nil, false, err
	}
	identities := map[string][]byte{}
	for _, d := range docs {
		var id []byte
		for _, f := range []string{"uuid", "lastmodEpoch", "epoch", "timestamp", "key"} {
			id = append(id, d.Lookup(f).Value...)
		}
		identities[str(d, "_id")] = id
	}
	if w.colls == nil {
		w.colls = map[string]*watchedCollection{}
	}
	var since, whole bson.A // $or branches: chunks above a version, every chunk
	kept := map[string]*watchedCollection{}
	for _, c := range colls {
		k, ok := w.colls[c.Namespace]
		if ok && bytes.Equal(k.identity, identities[c.Namespace]) {
			field, value := "ns", any(c.Namespace)
			if k.byUUID {
				field, value = "uuid", c.UUID
			}
			since = append(since, bson.D{{Key: field, Value: value}, {Key: "lastmod", Value: bson.D{{Key: "$gt", Value: k.version}}}})
			kept[c.Namespace] = k
			continue
		}
		changed = true
		whole = append(whole, bson.D{{Key: "ns", Value: c.Namespace}})
		if len(c.UUID.Data) > 0 {
			whole = append(whole, bson.D{{Key: "uuid", Value: c.UUID}})
		}
	}
	if len(kept) != len(w.colls) {
		changed = true // a collection dropped or unsharded
	}
	fresh := map[string]*watchedCollection{}
	for _, c := range colls {
		if _, ok := kept[c.Namespace]; !ok {
			fresh[c.Namespace] = &watchedCollection{coll: c, identity: identities[c.Namespace]}
		}
	}
	w.colls = nil // a Read that fails below starts again from nothing
	var updates map[string][]watchedChunk
	if len(since) > 0 {
		if updates, err = readChunks(ctx, config, timeout, since, colls); err != nil {
			return nil, nil, false, err
		}
	}
	if len(whole) > 0 {
		all, err := readChunks(ctx, config, timeout, whole, colls)
		if err != nil {
			return nil, nil, false, err
		}
		for ns, f := range fresh {
			for _, ch := range all[ns] {
				f.coll.Chunks = append(f.coll.Chunks, ch.Chunk)
				f.version = maxTS(f.version, ch.lastmod)
				f.byUUID = ch.byUUID
			}
			slices.SortFunc(f.coll.Chunks, byMin)
		}
	}
	next := fresh
	for ns, k := range kept {
		if len(updates[ns]) > 0 {
			changed = true
			k = k.merged(updates[ns])
		}
		next[ns] = k
	}
	out := make([]Collection, 0, len(colls))
	for _, c := range colls {
		k := next[c.Namespace]
		if err := k.check(); err != nil {
			return nil, nil, false, err // in the middle of a split or a move: the next Read reads it whole
		}
		c.Chunks = slices.Clone(k.coll.Chunks)
		out = append(out, c)
	}
	w.dbs, w.colls = dbs, next
	return dbs, out, changed, nil
}

// watchedChunk is a chunk with what PlacementWatch keeps of its document.
type watchedChunk struct {
	Chunk
	lastmod primitive.Timestamp
	byUUID  bool
}

// readChunks reads the chunks matching any of the $or branches, by collection.
func readChunks(ctx context.Context, config *mongo.Database, timeout time.Duration, or bson.A, colls []Collection) (map[string][]watchedChunk, error) {
	docs, err := readAll(ctx, config.Collection("chunks"), timeout, bson.D{{Key: "$or", Value: or}},
		options.Find().SetProjection(bson.D{{Key: "ns", Value: 1}, {Key: "uuid", Value: 1}, {Key: "min", Value: 1}, {Key: "max", Value: 1}, {Key: "shard", Value: 1}, {Key: "lastmod", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read config.chunks: %w", err)
	}
	byNS, byUUID := map[string]*Collection{}, map[string]*Collection{}
	for i := range colls {
		byNS[colls[i].Namespace] = &colls[i]
		if len(colls[i].UUID.Data) > 0 {
			byUUID[string(colls[i].UUID.Data)] = &colls[i]
		}
	}
	out := map[string][]watchedChunk{}
	for _, doc := range docs {
		var c *Collection
		uuid := false
		if ns, ok := doc.Lookup("ns").StringValueOK(); ok {
			c = byNS[ns]
		} else if _, data, ok := doc.Lookup("uuid").BinaryOK(); ok {
			c, uuid = byUUID[string(data)], true
		}
		if c == nil {
			continue
		}
		ch, err := parseChunk(doc, len(c.Key))
		if err != nil {
			return nil, &MetadataError{Where: fmt.Sprintf("config.chunks %s of %s", chunkID(doc), c.Namespace), Reason: err.Error()}
		}
		t, i, _ := doc.Lookup("lastmod").TimestampOK()
		out[c.Namespace] = append(out[c.Namespace], watchedChunk{Chunk: ch, lastmod: primitive.Timestamp{T: t, I: i}, byUUID: uuid})
	}
	return out, nil
}

// merged is k with the chunks written since its version in place of the kept
// chunks they overlap.
func (k *watchedCollection) merged(updates []watchedChunk) *watchedCollection {
	out := *k
	out.coll.Chunks = slices.DeleteFunc(slices.Clone(k.coll.Chunks), func(old Chunk) bool {
		return slices.ContainsFunc(updates, func(u watchedChunk) bool { return overlap(old, u.Chunk) })
	})
	for _, u := range updates {
		out.coll.Chunks = append(out.coll.Chunks, u.Chunk)
		out.version = maxTS(out.version, u.lastmod)
	}
	slices.SortFunc(out.coll.Chunks, byMin)
	return &out
}

// check reports a chunk map that does not tile the key space: a gap or an overlap
// between neighbours, read in the middle of a change.
func (k *watchedCollection) check() error {
	chunks := k.coll.Chunks
	if len(chunks) == 0 {
		return &MetadataError{Where: "config.chunks of " + k.coll.Namespace, Reason: "the sharded collection has no chunks"}
	}
	for i := 1; i < len(chunks); i++ {
		if shardkey.CompareKeys(shardkey.Key(chunks[i-1].Max), shardkey.Key(chunks[i].Min)) != 0 {
			return &MetadataError{Where: "config.chunks of " + k.coll.Namespace,
				Reason: fmt.Sprintf("chunk [%s, %s) is not followed by one starting at its max (next: %s): read in the middle of a change", chunks[i-1].Min, chunks[i-1].Max, chunks[i].Min)}
		}
	}
	return nil
}

func overlap(a, b Chunk) bool {
	return shardkey.CompareKeys(shardkey.Key(a.Min), shardkey.Key(b.Max)) < 0 && shardkey.CompareKeys(shardkey.Key(b.Min), shardkey.Key(a.Max)) < 0
}

func byMin(a, b Chunk) int { return shardkey.CompareKeys(shardkey.Key(a.Min), shardkey.Key(b.Min)) }

func maxTS(a, b primitive.Timestamp) primitive.Timestamp {
	if a.Before(b) {
		return b
	}
	return a
}

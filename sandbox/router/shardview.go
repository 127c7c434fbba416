package router

import (
	"slices"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/release"
	"github.com/shardlift/shardlift/sandbox/sysdb"
)

// What a shard holds in its config database because of the cluster's metadata, as
// it learns it from the config server: its routing cache (config.cache.databases,
// config.cache.collections, config.cache.chunks.<ns>; src/mongo/db/s/type_shard_database.idl,
// type_shard_collection.idl, ChunkType::toShardBSON) and, if it owns part of
// config.system.sessions, that collection with the records in its ranges. Every shard
// has refreshed every database and sharded collection, as they do once a DDL or a
// versioned request has reached them.

// ShardCollections are those collections for one shard; only those load accepts get
// their documents (nil loads none).
func (c *Catalog) ShardCollections(shard string, load func(db, name string) bool) []sysdb.Collection {
	c.mu.RLock()
	defer c.mu.RUnlock()
	rel := c.rel
	var out []sysdb.Collection
	want := func(name string) bool { return load != nil && load("config", name) }
	if rel.DatabaseVersion() {
		var dbs []bson.Raw
		for _, name := range sortedKeys(c.mu.databases) {
			if want("cache.databases") {
				dbs = append(dbs, sysdb.Raw(renderDatabase(rel, c.mu.databases[name])))
			}
		}
		out = append(out, sysdb.Collection{DB: "config", Name: "cache.databases", UUID: c.internalUUIDLocked(shard + " cache.databases"), Docs: dbs})
	}
	var colls []bson.Raw
	for _, ns := range sortedKeys(c.mu.routing) {
		r := c.mu.routing[ns]
		if want("cache.collections") {
			colls = append(colls, sysdb.Raw(renderCachedCollection(rel, r)))
		}
		var chunks []bson.Raw
		for _, ch := range r.Chunks {
			if want("cache.chunks." + ns) {
				chunks = append(chunks, sysdb.Raw(renderCachedChunk(rel, ch)))
			}
		}
		out = append(out, sysdb.Collection{DB: "config", Name: "cache.chunks." + ns, UUID: c.internalUUIDLocked(shard + " cache.chunks." + ns),
			Indexes: []bson.D{sysdb.Index(bson.D{{Key: "lastmod", Value: int32(1)}}, "lastmod_1")}, Docs: chunks})
	}
	out = append(out, sysdb.Collection{DB: "config", Name: "cache.collections", UUID: c.internalUUIDLocked(shard + " cache.collections"), Docs: colls})
	if sessions := c.mu.routing[SessionsNS]; slices.Contains(sessions.ChunkShards(), shard) {
		coll := sysdb.Collection{DB: "config", Name: "system.sessions", UUID: sessions.Coll.UUID,
			Indexes: []bson.D{sysdb.Index(bson.D{{Key: "lastUse", Value: int32(1)}}, "lsidTTLIndex", bson.E{Key: "expireAfterSeconds", Value: int32(1800)})}}
		if want("system.sessions") {
			coll.Docs = c.sessionDocsLocked(shard)
		}
		out = append(out, coll)
	}
	return out
}

// renderCachedCollection is a config.cache.collections entry.
func renderCachedCollection(rel release.Release, r *Routing) bson.D {
	coll := r.Coll
	d := bson.D{{Key: "_id", Value: coll.ID}}
	if rel.CollectionTimestamp() {
		d = append(d, bson.E{Key: "epoch", Value: coll.LastmodEpoch}, bson.E{Key: "timestamp", Value: coll.Timestamp},
			bson.E{Key: "uuid", Value: coll.UUID})
	} else {
		d = append(d, bson.E{Key: "uuid", Value: coll.UUID}, bson.E{Key: "epoch", Value: coll.LastmodEpoch})
	}
	return append(d, bson.E{Key: "key", Value: coll.Key}, bson.E{Key: "unique", Value: coll.Unique},
		bson.E{Key: "refreshing", Value: false}, bson.E{Key: "lastRefreshedCollectionVersion", Value: collectionVersion(r.Chunks)})
}

// renderCachedChunk is a config.cache.chunks.<ns> entry: {_id: min, max, shard, lastmod, ...}.
func renderCachedChunk(rel release.Release, ch ChunkDoc) bson.D {
	d := bson.D{{Key: "_id", Value: ch.Min}, {Key: "max", Value: ch.Max}, {Key: "shard", Value: ch.Shard}, {Key: "lastmod", Value: ch.Lastmod}}
	if rel.OnCurrentShardSince() {
		d = append(d, bson.E{Key: "onCurrentShardSince", Value: ch.OnCurrentShardSince})
	}
	if rel.ChunkHistory() {
		d = append(d, bson.E{Key: "history", Value: renderHistory(ch.History)})
	}
	return d
}

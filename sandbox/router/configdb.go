package router

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/sysdb"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// The config and admin databases as the config server holds them (and a mongos reads
// them from it), rendered in the cluster's release's formats.

// ConfigServerCollections is the config server's config and admin databases. Only
// the collections load accepts get their documents (rendering every chunk for a look
// at config.settings would be waste); nil loads none.
func (c *Catalog) ConfigServerCollections(load func(db, name string) bool) sysdb.Set {
	c.mu.RLock()
	defer c.mu.RUnlock()
	rel := c.rel
	idx := sysdb.Index
	one, minusOne := int32(1), int32(-1)
	unique := bson.E{Key: "unique", Value: true}
	key := func(fields ...string) bson.D {
		d := bson.D{}
		for _, f := range fields {
			d = append(d, bson.E{Key: f, Value: one})
		}
		return d
	}
	chunkKey := "ns"
	if rel.ChunksByUUID() {
		chunkKey = "uuid"
	}
	chunkIndexes := []bson.D{
		idx(key(chunkKey, "min"), chunkKey+"_1_min_1", unique),
		idx(key(chunkKey, "shard", "min"), chunkKey+"_1_shard_1_min_1", unique),
		idx(key(chunkKey, "lastmod"), chunkKey+"_1_lastmod_1", unique),
	}
	if rel.OnCurrentShardSince() {
		chunkIndexes = append(chunkIndexes, idx(key("uuid", "shard", "onCurrentShardSince"), "uuid_1_shard_1_onCurrentShardSince_1"))
	}
	type spec struct {
		coll sysdb.Collection
		docs func() []bson.Raw
	}
	none := func() []bson.Raw { return nil }
	specs := []spec{
		{sysdb.Collection{DB: "config", Name: "actionlog", Options: capped(20 << 20)}, none},
		{sysdb.Collection{DB: "config", Name: "changelog", Options: capped(200 << 20)}, func() []bson.Raw { return sysdb.Raws(c.mu.changelog) }},
		{sysdb.Collection{DB: "config", Name: "chunks", Indexes: chunkIndexes}, c.chunkDocsLocked},
		{sysdb.Collection{DB: "config", Name: "collections"}, c.collectionDocsLocked},
		{sysdb.Collection{DB: "config", Name: "databases"}, c.databaseDocsLocked},
		{sysdb.Collection{DB: "config", Name: "migrations", Indexes: []bson.D{idx(key("ns", "min"), "ns_1_min_1", unique)}}, none},
		{sysdb.Collection{DB: "config", Name: "mongos"}, c.mongosDocsLocked},
		{sysdb.Collection{DB: "config", Name: "settings"}, func() []bson.Raw { return []bson.Raw{sysdb.Raw(c.mu.balancer)} }},
		{sysdb.Collection{DB: "config", Name: "shards", Indexes: []bson.D{idx(key("host"), "host_1", unique)}}, c.shardDocsLocked},
		{sysdb.Collection{DB: "config", Name: "tags", Indexes: []bson.D{idx(key("ns", "min"), "ns_1_min_1", unique), idx(key("ns", "tag"), "ns_1_tag_1")}}, c.tagDocsLocked},
		{sysdb.Collection{DB: "config", Name: "transactions"}, none},
		{sysdb.Collection{DB: "config", Name: "version"}, func() []bson.Raw { return []bson.Raw{sysdb.Raw(renderVersion(rel, c.mu.version))} }},
		{sysdb.Collection{DB: "admin", Name: "system.version"}, c.adminVersionDocsLocked},
		{sysdb.Collection{DB: "admin", Name: "system.keys"}, c.keyDocsLocked},
	}
	if rel.DistLocks() {
		specs = append(specs,
			spec{sysdb.Collection{DB: "config", Name: "lockpings", Indexes: []bson.D{idx(key("ping"), "ping_1")}}, c.lockPingDocsLocked},
			spec{sysdb.Collection{DB: "config", Name: "locks", Indexes: []bson.D{idx(key("ts"), "ts_1"), idx(key("state", "process"), "state_1_process_1")}}, c.lockDocsLocked})
	}
	if rel.PlacementHistory() {
		specs = append(specs, spec{sysdb.Collection{DB: "config", Name: "placementHistory",
			Indexes: []bson.D{idx(bson.D{{Key: "nss", Value: one}, {Key: "timestamp", Value: minusOne}}, "nss_1_timestamp_-1", unique)}},
			func() []bson.Raw { return sysdb.Raws(mapSlice(c.mu.placement, renderPlacement)) }})
	}
	if rel.IndexBuilds() {
		specs = append(specs, spec{sysdb.Collection{DB: "config", Name: "system.indexBuilds"}, none})
	}
	if rel.ImageCollection() {
		specs = append(specs, spec{sysdb.Collection{DB: "config", Name: "image_collection"}, none})
	}
	if c.auth != nil {
		specs = append(specs, spec{sysdb.Collection{DB: "admin", Name: "system.users",
			Indexes: []bson.D{idx(key("user", "db"), "user_1_db_1", unique)}}, func() []bson.Raw { return []bson.Raw{c.userDocLocked()} }})
	}
	set := make(sysdb.Set, len(specs))
	for i, sp := range specs {
		set[i] = sp.coll
		set[i].UUID = c.internalUUIDLocked(sp.coll.NS())
		if load != nil && load(sp.coll.DB, sp.coll.Name) {
			set[i].Docs = sp.docs()
		}
	}
	return set
}

// internalUUIDLocked is the uuid of one of the config server's own collections,
// derived from the cluster's identity so that it does not change across restarts.
func (c *Catalog) internalUUIDLocked(ns string) primitive.Binary {
	return sysdb.UUIDFrom(randomBytes(c.derived("uuid "+ns), 16))
}

func capped(size int64) bson.D {
	return bson.D{{Key: "capped", Value: true}, {Key: "size", Value: size}}
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func (c *Catalog) shardDocsLocked() []bson.Raw {
	return sysdb.Raws(mapSlice(c.mu.shards, func(s ShardDoc) bson.D { return renderShard(c.rel, s) }))
}

func (c *Catalog) databaseDocsLocked() []bson.Raw {
	var out []bson.Raw
	for _, name := range sortedKeys(c.mu.databases) {
		out = append(out, sysdb.Raw(renderDatabase(c.rel, c.mu.databases[name])))
	}
	return out
}

func (c *Catalog) collectionDocsLocked() []bson.Raw {
	var out []bson.Raw
	for _, ns := range sortedKeys(c.mu.routing) {
		out = append(out, sysdb.Raw(renderCollection(c.rel, c.mu.routing[ns].Coll)))
	}
	return out
}

func (c *Catalog) chunkDocsLocked() []bson.Raw {
	var out []bson.Raw
	for _, ns := range sortedKeys(c.mu.routing) {
		out = append(out, c.renderChunksLocked(c.mu.routing[ns], lastmodAbove{})...)
	}
	return out
}

// renderChunksLocked renders r's chunks whose lastmod is within bound.
func (c *Catalog) renderChunksLocked(r *Routing, bound lastmodAbove) []bson.Raw {
	var out []bson.Raw
	for _, ch := range r.Chunks {
		if bound.holds(ch.Lastmod) {
			out = append(out, sysdb.Raw(renderChunk(c.rel, r.Coll, ch)))
		}
	}
	return out
}

// chunkDocsForLocked are the config.chunks documents a query with filter examines
// on a real config server, which answers it from its indexes on {uuid, min} and
// {uuid, lastmod} ({ns, ...} before 5.0): a filter naming one collection (at its
// top level, or in each branch of a top-level $or) examines that collection's
// chunks only, and with a lastmod bound ($gt, $gte) beside it only the chunks
// above the bound. Any other filter examines every chunk. The caller still applies
// the whole filter to what this returns.
func (c *Catalog) chunkDocsForLocked(filter bson.Raw) []bson.Raw {
	branches := []bson.Raw{filter}
	if or, ok := filter.Lookup("$or").ArrayOK(); ok && len(mustElements(filter)) == 1 {
		vals, _ := or.Values()
		branches = branches[:0]
		for _, v := range vals {
			d, ok := v.DocumentOK()
			if !ok {
				return c.chunkDocsLocked()
			}
			branches = append(branches, d)
		}
	}
	type lookup struct {
		r     *Routing
		bound lastmodAbove
	}
	var lookups []lookup
	for _, b := range branches {
		r, found := c.chunkCollectionLocked(b)
		if !found {
			return c.chunkDocsLocked()
		}
		if r == nil {
			continue // names no sharded collection: nothing in the index
		}
		lookups = append(lookups, lookup{r, lastmodBound(b)})
	}
	var out []bson.Raw
	seen := map[*Routing]bool{}
	for _, l := range lookups {
		if seen[l.r] {
			return c.chunkDocsLocked() // two branches on one collection: rare, scan
		}
		seen[l.r] = true
		out = append(out, c.renderChunksLocked(l.r, l.bound)...)
	}
	return out
}

// chunkCollectionLocked is the sharded collection a filter's uuid (ns before 5.0)
// equality names: found false when the filter names none, r nil when it names one
// that does not exist.
func (c *Catalog) chunkCollectionLocked(filter bson.Raw) (r *Routing, found bool) {
	field := "ns"
	if c.rel.ChunksByUUID() {
		field = "uuid"
	}
	v, err := filter.LookupErr(field)
	if err != nil {
		return nil, false
	}
	if d, ok := v.DocumentOK(); ok {
		eq, err := d.LookupErr("$eq")
		if err != nil || len(mustElements(d)) != 1 {
			return nil, false
		}
		v = eq
	}
	for _, rt := range c.mu.routing {
		if rt.Coll == nil {
			continue
		}
		if field == "ns" {
			if ns, ok := v.StringValueOK(); ok && ns == rt.Coll.ID {
				return rt, true
			}
			continue
		}
		if sub, data, ok := v.BinaryOK(); ok && sub == rt.Coll.UUID.Subtype && bytes.Equal(data, rt.Coll.UUID.Data) {
			return rt, true
		}
	}
	_, isString := v.StringValueOK()
	_, _, isBinary := v.BinaryOK()
	return nil, isString || isBinary // another type: leave it to the scan
}

// lastmodAbove is a lower bound on lastmod, as the {uuid, lastmod} index serves
// it; the zero value holds for every chunk.
type lastmodAbove struct {
	ts        primitive.Timestamp
	inclusive bool // $gte, else $gt
	bounded   bool
}

func (b lastmodAbove) holds(lastmod primitive.Timestamp) bool {
	return !b.bounded || b.ts.Before(lastmod) || b.inclusive && b.ts == lastmod
}

// lastmodBound is a filter's lower bound on lastmod ({$gt: ts} or {$gte: ts}).
func lastmodBound(filter bson.Raw) lastmodAbove {
	d, ok := filter.Lookup("lastmod").DocumentOK()
	if !ok {
		return lastmodAbove{}
	}
	if t, i, ok := d.Lookup("$gt").TimestampOK(); ok {
		return lastmodAbove{ts: primitive.Timestamp{T: t, I: i}, bounded: true}
	}
	if t, i, ok := d.Lookup("$gte").TimestampOK(); ok {
		return lastmodAbove{ts: primitive.Timestamp{T: t, I: i}, inclusive: true, bounded: true}
	}
	return lastmodAbove{}
}

func mustElements(d bson.Raw) []bson.RawElement {
	elems, _ := d.Elements()
	return elems
}

// ConfigServerDocs are the documents of one of the config server's config or admin
// collections that a query with filter examines (none for a collection the server
// does not have): for config.chunks those its indexes lead to, see chunkDocsForLocked.
func (c *Catalog) ConfigServerDocs(db, coll string, filter bson.Raw) []bson.Raw {
	if db == "config" && coll == "chunks" {
		c.mu.RLock()
		docs := c.chunkDocsForLocked(filter)
		c.mu.RUnlock()
		c.scanned.Add(int64(len(docs)))
		return docs
	}
	found, _ := c.ConfigServerCollections(func(d, n string) bool { return d == db && n == coll }).Find(db, coll)
	return found.Docs
}

// Scanned is how many config.chunks documents the config server's queries
// examined: its serverStatus' metrics.queryExecutor.scannedObjects.
func (c *Catalog) Scanned() int64 { return c.scanned.Load() }

func (c *Catalog) tagDocsLocked() []bson.Raw {
	return sysdb.Raws(mapSlice(c.mu.tags, func(t TagDoc) bson.D { return renderTag(c.rel, t) }))
}

func (c *Catalog) mongosDocsLocked() []bson.Raw {
	var out []bson.Raw
	now := time.Now()
	for _, addr := range sortedKeys(c.mu.mongos) {
		m := c.mu.mongos[addr]
		out = append(out, sysdb.Raw(bson.D{
			{Key: "_id", Value: addr}, {Key: "advisoryHostFQDNs", Value: bson.A{}},
			{Key: "mongoVersion", Value: c.rel.Version()},
			{Key: "ping", Value: primitive.NewDateTimeFromTime(now)},
			{Key: "up", Value: int64(now.Sub(m.started).Seconds())},
			{Key: "waiting", Value: true},
		}))
	}
	return out
}

// lockDocsLocked are config.locks until 4.4: one released lock (state 0) per database
// and sharded collection, left by the DDL that took it.
func (c *Catalog) lockDocsLocked() []bson.Raw {
	created := c.mu.version.ClusterID.Timestamp()
	lock := func(name, why string) bson.Raw {
		return sysdb.Raw(bson.D{{Key: "_id", Value: name}, {Key: "state", Value: int32(0)},
			{Key: "process", Value: "ConfigServer"}, {Key: "ts", Value: primitive.NewObjectIDFromTimestamp(created)},
			{Key: "when", Value: primitive.NewDateTimeFromTime(created)}, {Key: "who", Value: "ConfigServer:conn1"},
			{Key: "why", Value: why}})
	}
	var out []bson.Raw
	for _, name := range sortedKeys(c.mu.databases) {
		out = append(out, lock(name, "enableSharding"))
	}
	for _, ns := range sortedKeys(c.mu.routing) {
		out = append(out, lock(ns, "shardCollection"))
	}
	return out
}

func (c *Catalog) lockPingDocsLocked() []bson.Raw {
	return []bson.Raw{sysdb.Raw(bson.D{{Key: "_id", Value: "ConfigServer"}, {Key: "ping", Value: primitive.NewDateTimeFromTime(time.Now())}})}
}

// adminVersionDocsLocked is the config server's admin.system.version: the FCV document
// and, once a user exists, the auth schema version (5: SCRAM credentials only).
func (c *Catalog) adminVersionDocsLocked() []bson.Raw {
	out := []bson.Raw{sysdb.Raw(sysdb.FCVDocument(c.fcvLocked()))}
	if c.auth != nil {
		out = append(out, sysdb.Raw(bson.D{{Key: "_id", Value: "authSchema"}, {Key: "currentVersion", Value: int32(5)}}))
	}
	return out
}

func (c *Catalog) fcvLocked() string { return c.id.FCV }

// keyDocsLocked is admin.system.keys: the two HMAC keys that sign cluster times,
// valid for 90 days each ({_id: NumberLong, purpose: "HMAC", key: BinData, expiresAt}).
func (c *Catalog) keyDocsLocked() []bson.Raw {
	r := c.derived("keys")
	created := uint32(c.mu.version.ClusterID.Timestamp().Unix())
	var out []bson.Raw
	for i := range uint32(2) {
		var id [8]byte
		binary.BigEndian.PutUint32(id[:4], created)
		binary.BigEndian.PutUint32(id[4:], i+1)
		out = append(out, sysdb.Raw(bson.D{
			{Key: "_id", Value: int64(binary.BigEndian.Uint64(id[:]))}, {Key: "purpose", Value: "HMAC"},
			{Key: "key", Value: primitive.Binary{Data: randomBytes(r, 20)}},
			{Key: "expiresAt", Value: primitive.Timestamp{T: created + (i+1)*90*24*3600}},
		}))
	}
	return out
}

// userDocLocked is the cluster user's admin.system.users document. Its credentials
// are made up: the sandbox checks passwords with its own keys, and a document read
// from the sandbox reveals nothing about the password.
func (c *Catalog) userDocLocked() bson.Raw {
	r := c.derived("user")
	mech := c.id.Mechanism()
	iters := int32(15000)
	if mech == wire.SCRAMSHA1 {
		iters = 10000
	}
	creds := bson.D{{Key: "iterationCount", Value: iters},
		{Key: "salt", Value: b64(randomBytes(r, 28))}, {Key: "storedKey", Value: b64(randomBytes(r, 32))},
		{Key: "serverKey", Value: b64(randomBytes(r, 32))}}
	roles := bson.A{}
	for _, role := range c.id.UserRoles() {
		roles = append(roles, bson.D{{Key: "role", Value: role}, {Key: "db", Value: "admin"}})
	}
	return sysdb.Raw(bson.D{
		{Key: "_id", Value: "admin." + c.auth.User}, {Key: "userId", Value: sysdb.UUIDFrom(randomBytes(r, 16))},
		{Key: "user", Value: c.auth.User}, {Key: "db", Value: "admin"},
		{Key: "credentials", Value: bson.D{{Key: mech, Value: creds}}}, {Key: "roles", Value: roles},
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

package router

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/release"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// The catalog keeps the config database in one model, close to MongoDB 7.0's documents;
// formats.go renders it as the cluster's release writes it.

// ShardDoc is a config.shards document.
type ShardDoc struct {
	ID           string              `bson:"_id"`
	Host         string              `bson:"host"`
	State        int32               `bson:"state"`
	TopologyTime primitive.Timestamp `bson:"topologyTime"`
	// Tags are the zones the shard belongs to.
	Tags []string `bson:"tags,omitempty"`
}

// DatabaseDoc is a config.databases document.
type DatabaseDoc struct {
	ID          string          `bson:"_id"`
	Primary     string          `bson:"primary"`
	Partitioned bool            `bson:"partitioned"`
	Version     DatabaseVersion `bson:"version"`
}

// DatabaseVersion is a database's routing version.
type DatabaseVersion struct {
	UUID      primitive.Binary    `bson:"uuid"`
	Timestamp primitive.Timestamp `bson:"timestamp"`
	LastMod   int32               `bson:"lastMod"`
}

// CollectionDoc is a config.collections document (sharded collections only).
type CollectionDoc struct {
	ID           string              `bson:"_id"`
	LastmodEpoch primitive.ObjectID  `bson:"lastmodEpoch"`
	Lastmod      primitive.DateTime  `bson:"lastmod"`
	Timestamp    primitive.Timestamp `bson:"timestamp"`
	UUID         primitive.Binary    `bson:"uuid"`
	Key          bson.Raw            `bson:"key"`
	Unique       bool                `bson:"unique"`
	NoBalance    bool                `bson:"noBalance"`
}

// ChunkDoc is a config.chunks document in the 5.0+ form (keyed by collection uuid).
type ChunkDoc struct {
	ID                  primitive.ObjectID  `bson:"_id"`
	UUID                primitive.Binary    `bson:"uuid"`
	Min                 bson.Raw            `bson:"min"`
	Max                 bson.Raw            `bson:"max"`
	Shard               string              `bson:"shard"`
	Lastmod             primitive.Timestamp `bson:"lastmod"`
	OnCurrentShardSince primitive.Timestamp `bson:"onCurrentShardSince"`
	History             []ChunkHistory      `bson:"history"`
}

// ChunkHistory is one entry of a chunk's placement history.
type ChunkHistory struct {
	ValidAfter primitive.Timestamp `bson:"validAfter"`
	Shard      string              `bson:"shard"`
}

// BalancerDoc is config.settings {_id: "balancer"}.
type BalancerDoc struct {
	ID      string `bson:"_id"`
	Stopped bool   `bson:"stopped"`
	Mode    string `bson:"mode"`
}

// VersionDoc is the config.version document.
type VersionDoc struct {
	ID        int32              `bson:"_id"`
	ClusterID primitive.ObjectID `bson:"clusterId"`
}

// TagDoc is a config.tags document: a shard key range assigned to a zone.
type TagDoc struct {
	ID  primitive.ObjectID `bson:"_id"`
	NS  string             `bson:"ns"`
	Min bson.Raw           `bson:"min"`
	Max bson.Raw           `bson:"max"`
	Tag string             `bson:"tag"`
}

// ChangeDoc is a config.changelog document: one change to the cluster's metadata.
type ChangeDoc struct {
	ID         string             `bson:"_id"`
	Server     string             `bson:"server"`
	ClientAddr string             `bson:"clientAddr"`
	Time       primitive.DateTime `bson:"time"`
	What       string             `bson:"what"`
	NS         string             `bson:"ns"`
	Details    bson.Raw           `bson:"details"`
}

// PlacementDoc is a config.placementHistory document (7.0+): which shards held a
// database or collection from a cluster time on.
type PlacementDoc struct {
	ID        primitive.ObjectID  `bson:"_id"`
	NSS       string              `bson:"nss"`
	UUID      *primitive.Binary   `bson:"uuid,omitempty"`
	Timestamp primitive.Timestamp `bson:"timestamp"`
	Shards    []string            `bson:"shards"`
}

// catalogFile is the persisted form of the catalog. The sessions collection is not
// in it: its routing follows from the cluster's identity and shards (sessions.go).
type catalogFile struct {
	Version     VersionDoc          `bson:"version"`
	Databases   []DatabaseDoc       `bson:"databases"`
	Collections []CollectionDoc     `bson:"collections"`
	Chunks      chunkList           `bson:"chunks"`
	Balancer    BalancerDoc         `bson:"balancer"`
	NextPrimary int32               `bson:"nextPrimary"`
	ShardTags   map[string][]string `bson:"shardTags,omitempty"`
	Tags        []TagDoc            `bson:"tags,omitempty"`
	Changelog   []ChangeDoc         `bson:"changelog,omitempty"`
	Placement   []PlacementDoc      `bson:"placement,omitempty"`
}

// chunkList is the catalog file's chunks, encoded by hand: a sandbox seeded with
// 100,000 chunks rewrites them at every split and move, and the driver's
// reflection took seconds for each. It decodes as any []ChunkDoc.
type chunkList []ChunkDoc

func (l chunkList) MarshalBSONValue() (bsontype.Type, []byte, error) {
	idx, arr := bsoncore.AppendArrayStart(nil)
	for i, ch := range l {
		arr = bsoncore.AppendHeader(arr, bsontype.EmbeddedDocument, strconv.Itoa(i))
		arr = appendChunkDoc(arr, ch)
	}
	arr, err := bsoncore.AppendArrayEnd(arr, idx)
	return bsontype.Array, arr, err
}

func (l *chunkList) UnmarshalBSONValue(t bsontype.Type, data []byte) error {
	var chunks []ChunkDoc
	if err := bson.UnmarshalValue(t, data, &chunks); err != nil {
		return err
	}
	*l = chunks
	return nil
}

// appendChunkDoc appends ch as bson.Marshal does (the fields in ChunkDoc's order).
func appendChunkDoc(dst []byte, ch ChunkDoc) []byte {
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendObjectIDElement(dst, "_id", ch.ID)
	dst = bsoncore.AppendBinaryElement(dst, "uuid", ch.UUID.Subtype, ch.UUID.Data)
	dst = bsoncore.AppendDocumentElement(dst, "min", ch.Min)
	dst = bsoncore.AppendDocumentElement(dst, "max", ch.Max)
	dst = bsoncore.AppendStringElement(dst, "shard", ch.Shard)
	dst = bsoncore.AppendTimestampElement(dst, "lastmod", ch.Lastmod.T, ch.Lastmod.I)
	dst = bsoncore.AppendTimestampElement(dst, "onCurrentShardSince", ch.OnCurrentShardSince.T, ch.OnCurrentShardSince.I)
	if ch.History == nil {
		dst = bsoncore.AppendNullElement(dst, "history")
	} else {
		var hidx int32
		hidx, dst = bsoncore.AppendArrayElementStart(dst, "history")
		for i, h := range ch.History {
			var eidx int32
			eidx, dst = bsoncore.AppendDocumentElementStart(dst, strconv.Itoa(i))
			dst = bsoncore.AppendTimestampElement(dst, "validAfter", h.ValidAfter.T, h.ValidAfter.I)
			dst = bsoncore.AppendStringElement(dst, "shard", h.Shard)
			dst, _ = bsoncore.AppendDocumentEnd(dst, eidx)
		}
		dst, _ = bsoncore.AppendArrayEnd(dst, hidx)
	}
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

// changelogCap bounds config.changelog, a capped collection on a real config server
// (200 MB there); the sandbox keeps the latest entries only, since the whole catalog is
// rewritten after every change.
const changelogCap = 200

// Routing is an immutable snapshot of how one namespace is placed: its database's
// primary shard and, for a sharded collection, its key pattern and chunks.
type Routing struct {
	NS      string
	DB      DatabaseDoc
	Coll    *CollectionDoc // nil: unsharded, lives on DB.Primary
	Pattern *shardkey.Pattern
	Chunks  []ChunkDoc // sorted by min
	Map     *shardkey.ChunkMap
}

// Sharded reports whether the namespace is a sharded collection.
func (r *Routing) Sharded() bool { return r.Coll != nil }

// ChunkShards lists the shards owning at least one chunk (the primary for an
// unsharded collection).
func (r *Routing) ChunkShards() []string {
	if r.Coll == nil {
		return []string{r.DB.Primary}
	}
	return r.Map.Shards()
}

// ChunkFor returns the index of the chunk containing key.
func (r *Routing) ChunkFor(key shardkey.Key) int {
	i := sort.Search(len(r.Chunks), func(i int) bool {
		return shardkey.CompareKeys(shardkey.Key(r.Chunks[i].Min), key) > 0
	})
	return i - 1
}

// Catalog is the sandbox's config database: kept in Go (FerretDB rejects the
// MinKey/MaxKey chunk bounds), persisted to one BSON file after every change,
// shared by the router, the config server endpoint and (as what they learn from the
// config server) the shards.
type Catalog struct {
	path string
	id   wire.Identity
	rel  release.Release
	auth *wire.Credentials
	// scanned counts the config.chunks documents queries examined (Scanned).
	scanned atomic.Int64

	mu struct {
		sync.RWMutex
		shards      []ShardDoc
		version     VersionDoc
		databases   map[string]DatabaseDoc
		routing     map[string]*Routing // sharded collections by namespace, config.system.sessions included
		balancer    BalancerDoc
		nextPrimary int32
		lastTS      primitive.Timestamp
		tags        []TagDoc
		changelog   []ChangeDoc
		placement   []PlacementDoc
		mongos      map[string]mongosEntry
		configConn  string
		sessions    []sessionRecord
	}
}

// OpenCatalog loads the catalog from path, or starts an empty one there, for a cluster
// whose nodes report id (its release decides the formats). shards is the cluster's
// shard list (names and hosts), which replaces the stored one; auth is the cluster's
// user (nil without authentication), whose sessions config.system.sessions records.
func OpenCatalog(path string, shards []Shard, id wire.Identity, auth *wire.Credentials) (*Catalog, error) {
	rel := id.Release()
	c := &Catalog{path: path, id: id, rel: rel, auth: auth}
	c.mu.databases = map[string]DatabaseDoc{}
	c.mu.routing = map[string]*Routing{}
	c.mu.mongos = map[string]mongosEntry{}
	c.mu.balancer = BalancerDoc{ID: "balancer", Mode: "full"}
	now := c.nextTimestampLocked()
	for _, s := range shards {
		c.mu.shards = append(c.mu.shards, ShardDoc{ID: s.Name, Host: s.Host(), State: 1, TopologyTime: now})
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.mu.version = VersionDoc{ID: 1, ClusterID: primitive.NewObjectID()}
		for _, s := range c.mu.shards {
			c.logChangeLocked("addShard", "", bson.D{{Key: "name", Value: s.ID}, {Key: "host", Value: s.Host}})
		}
		if rel.PlacementHistory() {
			c.initPlacementLocked()
		}
		if err := c.addSessionsLocked(); err != nil {
			return nil, err
		}
		return c, c.saveLocked()
	case err != nil:
		return nil, fmt.Errorf("read the sandbox catalog: %w", err)
	}
	var f catalogFile
	if err := bson.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("the sandbox catalog %s is damaged (%w): remove the data folder to start afresh", path, err)
	}
	c.mu.version, c.mu.balancer, c.mu.nextPrimary = f.Version, f.Balancer, f.NextPrimary
	c.mu.tags, c.mu.changelog, c.mu.placement = f.Tags, f.Changelog, f.Placement
	for i := range c.mu.shards {
		c.mu.shards[i].Tags = f.ShardTags[c.mu.shards[i].ID]
	}
	for _, d := range f.Databases {
		if !c.hasShardLocked(d.Primary) {
			return nil, fmt.Errorf("the sandbox catalog %s names shard %q, which this cluster does not have: start it with the same shard count", path, d.Primary)
		}
		c.mu.databases[d.ID] = d
	}
	chunksByUUID := map[string][]ChunkDoc{}
	for _, ch := range f.Chunks {
		chunksByUUID[string(ch.UUID.Data)] = append(chunksByUUID[string(ch.UUID.Data)], ch)
	}
	for _, coll := range f.Collections {
		r, err := c.newRoutingLocked(coll, chunksByUUID[string(coll.UUID.Data)])
		if err != nil {
			return nil, fmt.Errorf("the sandbox catalog %s: %w", path, err)
		}
		c.mu.routing[coll.ID] = r
	}
	if err := c.addSessionsLocked(); err != nil {
		return nil, err
	}
	return c, nil
}

// Release is the release whose formats the catalog presents.
func (c *Catalog) Release() release.Release { return c.rel }

// ClusterID is config.version's clusterId.
func (c *Catalog) ClusterID() primitive.ObjectID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.version.ClusterID
}

// SetConfigServers records the config server connection string (shards keep it in
// their shardIdentity document).
func (c *Catalog) SetConfigServers(conn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.configConn = conn
}

// ConfigServers is the config server connection string.
func (c *Catalog) ConfigServers() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.configConn
}

// ShardCount is how many shards the cluster has.
func (c *Catalog) ShardCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.mu.shards)
}

func (c *Catalog) hasShardLocked(name string) bool {
	for _, s := range c.mu.shards {
		if s.ID == name {
			return true
		}
	}
	return false
}

func (c *Catalog) newRoutingLocked(coll CollectionDoc, chunks []ChunkDoc) (*Routing, error) {
	pattern, err := shardkey.ParsePattern(coll.Key)
	if err != nil {
		return nil, fmt.Errorf("collection %s: %w", coll.ID, err)
	}
	chunks = slices.Clone(chunks)
	slices.SortFunc(chunks, func(a, b ChunkDoc) int {
		return shardkey.CompareKeys(shardkey.Key(a.Min), shardkey.Key(b.Min))
	})
	mapped := make([]shardkey.Chunk, len(chunks))
	for i, ch := range chunks {
		mapped[i] = shardkey.Chunk{Min: shardkey.Key(ch.Min), Max: shardkey.Key(ch.Max), Shard: ch.Shard}
	}
	m, err := shardkey.NewChunkMap(mapped)
	if err != nil {
		return nil, fmt.Errorf("collection %s: %w", coll.ID, err)
	}
	db, _, _ := splitNS(coll.ID)
	cp := coll
	return &Routing{NS: coll.ID, DB: c.mu.databases[db], Coll: &cp, Pattern: pattern, Chunks: chunks, Map: m}, nil
}

// saveLocked writes the catalog atomically (temp file, fsync, rename).
func (c *Catalog) saveLocked() error {
	f := catalogFile{Version: c.mu.version, Balancer: c.mu.balancer, NextPrimary: c.mu.nextPrimary,
		Tags: c.mu.tags, Changelog: c.mu.changelog, Placement: c.mu.placement, ShardTags: map[string][]string{}}
	for _, s := range c.mu.shards {
		if len(s.Tags) > 0 {
			f.ShardTags[s.ID] = s.Tags
		}
	}
	for _, name := range sortedKeys(c.mu.databases) {
		f.Databases = append(f.Databases, c.mu.databases[name])
	}
	for _, ns := range sortedKeys(c.mu.routing) {
		if ns == SessionsNS {
			continue
		}
		r := c.mu.routing[ns]
		f.Collections = append(f.Collections, *r.Coll)
		f.Chunks = append(f.Chunks, r.Chunks...)
	}
	data, err := bson.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode the sandbox catalog: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return fmt.Errorf("save the sandbox catalog: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".catalog-*")
	if err != nil {
		return fmt.Errorf("save the sandbox catalog: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save the sandbox catalog: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save the sandbox catalog: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save the sandbox catalog: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("save the sandbox catalog: %w", err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// nextTimestampLocked is a strictly increasing cluster-time-like timestamp.
func (c *Catalog) nextTimestampLocked() primitive.Timestamp {
	now := uint32(time.Now().Unix())
	ts := primitive.Timestamp{T: now, I: 1}
	if now <= c.mu.lastTS.T {
		ts = primitive.Timestamp{T: c.mu.lastTS.T, I: c.mu.lastTS.I + 1}
	}
	c.mu.lastTS = ts
	return ts
}

// Shards returns config.shards.
func (c *Catalog) Shards() []ShardDoc {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := slices.Clone(c.mu.shards)
	for i := range out {
		out[i].Tags = slices.Clone(out[i].Tags)
	}
	return out
}

// Database returns config.databases' entry for name.
func (c *Catalog) Database(name string) (DatabaseDoc, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d, ok := c.mu.databases[name]
	return d, ok
}

// Route returns how ns is placed; ok is false when its database does not exist.
func (c *Catalog) Route(ns string) (*Routing, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	db, _, _ := splitNS(ns)
	if r, ok := c.mu.routing[ns]; ok {
		cp := *r
		cp.DB = c.mu.databases[db]
		return &cp, true
	}
	d, ok := c.mu.databases[db]
	if !ok {
		return nil, false
	}
	return &Routing{NS: ns, DB: d}, true
}

// EnsureDatabase returns the database's entry, creating it as mongos does on first
// use: its primary is the shard with the fewest databases, ties broken round robin.
func (c *Catalog) EnsureDatabase(name string, primary string) (DatabaseDoc, error) {
	if err := checkDBName(name); err != nil {
		return DatabaseDoc{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.mu.databases[name]; ok {
		return d, nil
	}
	if primary == "" {
		primary = c.pickPrimaryLocked()
	} else if !c.hasShardLocked(primary) {
		return DatabaseDoc{}, &wire.Error{Code: 70, Name: "ShardNotFound", Msg: fmt.Sprintf("shard %q not found", primary)}
	}
	d := DatabaseDoc{ID: name, Primary: primary, Version: DatabaseVersion{
		UUID: newUUID(), Timestamp: c.nextTimestampLocked(), LastMod: 1,
	}}
	c.mu.databases[name] = d
	c.placeLocked(name, nil, d.Version.Timestamp, []string{primary})
	return d, c.saveLocked()
}

func (c *Catalog) pickPrimaryLocked() string {
	count := map[string]int{}
	for _, d := range c.mu.databases {
		count[d.Primary]++
	}
	n := len(c.mu.shards)
	best := ""
	for i := range n {
		s := c.mu.shards[(int(c.mu.nextPrimary)+i)%n].ID
		if best == "" || count[s] < count[best] {
			best = s
		}
	}
	c.mu.nextPrimary = (c.mu.nextPrimary + 1) % int32(n)
	return best
}

// EnableSharding marks a database partitioned (creating it if needed).
func (c *Catalog) EnableSharding(name, primary string) (DatabaseDoc, error) {
	if _, err := c.EnsureDatabase(name, primary); err != nil {
		return DatabaseDoc{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.mu.databases[name]
	if primary != "" && d.Primary != primary {
		return DatabaseDoc{}, &wire.Error{Code: 48, Name: "NamespaceExists",
			Msg: fmt.Sprintf("database %s already exists with primary shard %s", name, d.Primary)}
	}
	d.Partitioned = true
	c.mu.databases[name] = d
	return d, c.saveLocked()
}

// AddCollection records a newly sharded collection with its initial chunks.
func (c *Catalog) AddCollection(coll CollectionDoc, chunks []ChunkDoc) (*Routing, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mu.routing[coll.ID]; ok {
		return nil, &wire.Error{Code: 23, Name: "AlreadyInitialized", Msg: fmt.Sprintf("sharding already enabled for collection %s", coll.ID)}
	}
	ts := c.nextTimestampLocked()
	coll.Timestamp = ts
	coll.Lastmod = primitive.NewDateTimeFromTime(time.Now())
	if c.rel.CollectionDropped() {
		coll.Lastmod = initialLastmod(len(chunks))
	}
	coll.LastmodEpoch = primitive.NewObjectID()
	for i := range chunks {
		chunks[i].ID = primitive.NewObjectID()
		chunks[i].UUID = coll.UUID
		chunks[i].Lastmod = primitive.Timestamp{T: 1, I: uint32(i)}
		chunks[i].OnCurrentShardSince = ts
		chunks[i].History = []ChunkHistory{{ValidAfter: ts, Shard: chunks[i].Shard}}
	}
	r, err := c.newRoutingLocked(coll, chunks)
	if err != nil {
		return nil, err
	}
	c.mu.routing[coll.ID] = r
	c.logChangeLocked("shardCollection.start", coll.ID, bson.D{
		{Key: "shardKey", Value: coll.Key}, {Key: "collection", Value: coll.ID}, {Key: "uuid", Value: coll.UUID},
		{Key: "primary", Value: r.DB.Primary}, {Key: "numChunks", Value: int32(len(chunks))},
	})
	c.logChangeLocked("shardCollection.end", coll.ID, bson.D{{Key: "version", Value: chunkVersionString(collectionVersion(chunks), coll.LastmodEpoch)}})
	c.placeLocked(coll.ID, &coll.UUID, ts, r.ChunkShards())
	return r, c.saveLocked()
}

// collectionVersion is the highest chunk lastmod of a collection.
func collectionVersion(chunks []ChunkDoc) primitive.Timestamp {
	var v primitive.Timestamp
	for _, ch := range chunks {
		if ch.Lastmod.T > v.T || (ch.Lastmod.T == v.T && ch.Lastmod.I > v.I) {
			v = ch.Lastmod
		}
	}
	return v
}

// SplitChunk splits the chunk of ns containing at into [min, at) and [at, max),
// bumping their minor versions as a split does.
func (c *Catalog) SplitChunk(ns string, at shardkey.Key) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.routing[ns]
	if !ok {
		return &wire.Error{Code: 118, Name: "NamespaceNotSharded", Msg: ns + " is not sharded"}
	}
	i := r.ChunkFor(at)
	if i < 0 {
		return wire.BadValue(fmt.Sprintf("split point %s is outside every chunk of %s", at, ns))
	}
	old := r.Chunks[i]
	if bytes.Equal(old.Min, at) {
		return &wire.Error{Code: 2, Name: "BadValue", Msg: fmt.Sprintf("cannot split chunk %s..%s at its own lower bound", bson.Raw(old.Min), bson.Raw(old.Max))}
	}
	v := collectionVersion(r.Chunks)
	left, right := old, old
	left.Max = bson.Raw(slices.Clone(at))
	left.Lastmod = primitive.Timestamp{T: v.T, I: v.I + 1}
	right.ID = primitive.NewObjectID()
	right.Min = bson.Raw(slices.Clone(at))
	right.Lastmod = primitive.Timestamp{T: v.T, I: v.I + 2}
	chunks := slices.Clone(r.Chunks)
	chunks[i] = left
	chunks = slices.Insert(chunks, i+1, right)
	bounds := func(ch ChunkDoc) bson.D {
		return bson.D{{Key: "min", Value: ch.Min}, {Key: "max", Value: ch.Max}, {Key: "lastmod", Value: ch.Lastmod}}
	}
	c.logChangeLocked("split", ns, bson.D{{Key: "before", Value: bounds(old)}, {Key: "left", Value: bounds(left)}, {Key: "right", Value: bounds(right)}})
	return c.replaceLocked(r, chunks)
}

// MoveChunk records that the chunk starting at min now lives on shard to.
func (c *Catalog) MoveChunk(ns string, min bson.Raw, to string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.routing[ns]
	if !ok {
		return &wire.Error{Code: 118, Name: "NamespaceNotSharded", Msg: ns + " is not sharded"}
	}
	chunks := slices.Clone(r.Chunks)
	for i := range chunks {
		if !bytes.Equal(chunks[i].Min, min) {
			continue
		}
		ts := c.nextTimestampLocked()
		v := collectionVersion(chunks)
		from := chunks[i].Shard
		chunks[i].Shard = to
		chunks[i].Lastmod = primitive.Timestamp{T: v.T + 1, I: 0}
		chunks[i].OnCurrentShardSince = ts
		chunks[i].History = append([]ChunkHistory{{ValidAfter: ts, Shard: to}}, chunks[i].History...)
		c.logChangeLocked("moveChunk.commit", ns, bson.D{
			{Key: "min", Value: chunks[i].Min}, {Key: "max", Value: chunks[i].Max}, {Key: "from", Value: from}, {Key: "to", Value: to},
		})
		// The donor's summary of the migration (MoveTimingHelper, less its step
		// timings): what sh.status() counts as the last day's migrations.
		c.logChangeLocked("moveChunk.from", ns, bson.D{
			{Key: "min", Value: chunks[i].Min}, {Key: "max", Value: chunks[i].Max}, {Key: "to", Value: to}, {Key: "from", Value: from},
			{Key: "note", Value: "success"},
		})
		nr, err := c.newRoutingLocked(*r.Coll, chunks)
		if err != nil {
			return err
		}
		c.mu.routing[ns] = nr
		if after := nr.ChunkShards(); !slices.Equal(r.ChunkShards(), after) {
			c.placeLocked(ns, &r.Coll.UUID, ts, after)
		}
		return c.saveLocked() // once: the whole catalog is rewritten
	}
	return wire.BadValue(fmt.Sprintf("no chunk of %s starts at %s", ns, min))
}

func (c *Catalog) replaceLocked(r *Routing, chunks []ChunkDoc) error {
	nr, err := c.newRoutingLocked(*r.Coll, chunks)
	if err != nil {
		return err
	}
	c.mu.routing[r.NS] = nr
	return c.saveLocked()
}

// RefineShardKey extends a sharded collection's key with suffix fields: each chunk
// bound gets MinKey for them, the global maximum MaxKey, and the collection a new epoch.
func (c *Catalog) RefineShardKey(ns string, key bson.Raw) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.routing[ns]
	if !ok {
		return &wire.Error{Code: 118, Name: "NamespaceNotSharded", Msg: ns + " is not sharded"}
	}
	fields, _ := key.Elements()
	suffix := fields[len(r.Pattern.Fields()):]
	extend := func(bound bson.Raw) bson.Raw {
		last := bsontype.MinKey
		if elems, _ := bound.Elements(); len(elems) > 0 && elems[0].Value().Type == bsontype.MaxKey {
			last = bsontype.MaxKey
		}
		elems, _ := bound.Elements()
		idx, b := bsoncore.AppendDocumentStart(nil)
		for _, e := range elems {
			b = append(b, e...)
		}
		for _, f := range suffix {
			b = bsoncore.AppendHeader(b, last, f.Key())
		}
		b, _ = bsoncore.AppendDocumentEnd(b, idx)
		return b
	}
	chunks := slices.Clone(r.Chunks)
	for i := range chunks {
		chunks[i].Min, chunks[i].Max = extend(chunks[i].Min), extend(chunks[i].Max)
	}
	coll := *r.Coll
	coll.Key = slices.Clone(key)
	coll.LastmodEpoch = primitive.NewObjectID()
	coll.Timestamp = c.nextTimestampLocked()
	coll.Lastmod = primitive.NewDateTimeFromTime(time.Now())
	nr, err := c.newRoutingLocked(coll, chunks)
	if err != nil {
		return err
	}
	c.mu.routing[ns] = nr
	return c.saveLocked()
}

// DropCollection forgets a sharded collection and its chunks.
func (c *Catalog) DropCollection(ns string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.routing[ns]
	if !ok {
		return nil
	}
	delete(c.mu.routing, ns)
	c.dropTagsLocked(ns)
	c.logChangeLocked("dropCollection", ns, bson.D{})
	c.placeLocked(ns, &r.Coll.UUID, c.nextTimestampLocked(), []string{})
	return c.saveLocked()
}

// RenameCollection moves a sharded collection's entry to a new namespace, keeping
// its uuid (chunks are keyed by uuid, so they follow).
func (c *Catalog) RenameCollection(from, to string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.mu.routing, to)
	r, ok := c.mu.routing[from]
	if !ok {
		return c.saveLocked()
	}
	delete(c.mu.routing, from)
	coll := *r.Coll
	coll.ID = to
	coll.Timestamp = c.nextTimestampLocked()
	coll.Lastmod = primitive.NewDateTimeFromTime(time.Now())
	nr, err := c.newRoutingLocked(coll, r.Chunks)
	if err != nil {
		return err
	}
	c.mu.routing[to] = nr
	c.logChangeLocked("renameCollection.end", from, bson.D{{Key: "source", Value: from}, {Key: "destination", Value: to}})
	c.placeLocked(from, &coll.UUID, coll.Timestamp, []string{})
	c.placeLocked(to, &coll.UUID, coll.Timestamp, nr.ChunkShards())
	return c.saveLocked()
}

// ShardedCollections names a database's sharded collections, sorted.
func (c *Catalog) ShardedCollections(db string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for ns := range c.mu.routing {
		if d, coll, _ := splitNS(ns); d == db {
			out = append(out, coll)
		}
	}
	slices.Sort(out)
	return out
}

// DropDatabase forgets a database and its sharded collections.
func (c *Catalog) DropDatabase(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mu.databases[name]; !ok {
		return nil
	}
	delete(c.mu.databases, name)
	for ns := range c.mu.routing {
		if db, _, _ := splitNS(ns); db == name {
			delete(c.mu.routing, ns)
			c.dropTagsLocked(ns)
		}
	}
	c.logChangeLocked("dropDatabase", name, bson.D{})
	c.placeLocked(name, nil, c.nextTimestampLocked(), []string{})
	return c.saveLocked()
}

// Balancer returns config.settings' balancer document.
func (c *Catalog) Balancer() BalancerDoc {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.balancer
}

// SetBalancer starts or stops the (simulated) balancer.
func (c *Catalog) SetBalancer(running bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.balancer.Stopped = !running
	c.mu.balancer.Mode = map[bool]string{true: "full", false: "off"}[running]
	return c.saveLocked()
}

func newUUID() primitive.Binary {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("router: no randomness for a UUID: " + err.Error())
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return primitive.Binary{Subtype: 4, Data: b}
}

// splitNS splits "db.coll" into its parts.
func splitNS(ns string) (db, coll string, ok bool) {
	for i := 0; i < len(ns); i++ {
		if ns[i] == '.' {
			return ns[:i], ns[i+1:], i > 0 && i < len(ns)-1
		}
	}
	return ns, "", false
}

// checkDBName refuses database names MongoDB refuses.
func checkDBName(name string) error {
	if name == "" || len(name) > 63 || bytes.ContainsAny([]byte(name), "/\\. \"$*<>:|?") {
		return &wire.Error{Code: 73, Name: "InvalidNamespace", Msg: fmt.Sprintf("Invalid database name: '%s'", name)}
	}
	return nil
}

// SetChunks replaces the chunks of an empty sharded collection in one change (one
// catalog write): the sandbox's bulk path for seeding many chunks, where 100,000
// splits and moves would each rewrite the catalog. chunks must cover the key space
// in order; each gets a new id, a version in one new major version, and a history
// starting now. The caller makes sure no documents are affected (_sandboxSetChunks
// checks that the collection is empty).
func (c *Catalog) SetChunks(ns string, chunks []ChunkDoc) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.routing[ns]
	if !ok {
		return &wire.Error{Code: 118, Name: "NamespaceNotSharded", Msg: ns + " is not sharded"}
	}
	ts := c.nextTimestampLocked()
	v := collectionVersion(r.Chunks)
	chunks = slices.Clone(chunks)
	for i := range chunks {
		chunks[i].ID = primitive.NewObjectID()
		chunks[i].UUID = r.Coll.UUID
		chunks[i].Lastmod = primitive.Timestamp{T: v.T + 1, I: uint32(i)}
		chunks[i].OnCurrentShardSince = ts
		chunks[i].History = []ChunkHistory{{ValidAfter: ts, Shard: chunks[i].Shard}}
	}
	nr, err := c.newRoutingLocked(*r.Coll, chunks)
	if err != nil {
		return wire.BadValue(err.Error())
	}
	c.mu.routing[ns] = nr
	c.logChangeLocked("multi-split", ns, bson.D{{Key: "number", Value: int32(len(chunks))}})
	c.placeLocked(ns, &r.Coll.UUID, ts, nr.ChunkShards())
	return c.saveLocked()
}

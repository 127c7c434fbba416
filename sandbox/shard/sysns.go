package shard

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/sysdb"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// The shard's own collections in admin, config and local (the oplog aside): what a
// shard member of the release holds besides user data, served from memory. Some follow
// from the cluster's metadata (the routing cache, its part of config.system.sessions),
// the rest from the node itself.

// Cluster is what a shard knows of its cluster, as a real shard learns it from the
// config server. A front outside a cluster (its own tests) has none.
type Cluster interface {
	// ClusterID is config.version's clusterId.
	ClusterID() primitive.ObjectID
	// ConfigServers is the config server connection string.
	ConfigServers() string
	// ShardCount is how many shards the cluster has.
	ShardCount() int
	// ShardCollections are the config collections the shard holds because of the
	// cluster's metadata; only those load accepts carry their documents.
	ShardCollections(shard string, load func(db, name string) bool) []sysdb.Collection
	// ConfigServerCollections are the config server's config and admin collections,
	// which a config shard holds too.
	ConfigServerCollections(load func(db, name string) bool) sysdb.Set
}

// internalCollections are the shard's admin, config and local collections; load picks
// those whose documents are needed (nil: none).
func (n *node) internalCollections(load func(db, name string) bool) sysdb.Set {
	f := n.front
	rel := f.cfg.Identity.Release()
	var set sysdb.Set
	adminVersion := []bson.Raw{sysdb.Raw(sysdb.FCVDocument(f.cfg.Identity.FCV))}
	if cl := f.cfg.Cluster; cl != nil {
		if f.cfg.ConfigServer {
			set = append(set, cl.ConfigServerCollections(load)...)
		}
		for _, c := range cl.ShardCollections(f.cfg.Name, load) {
			if _, dup := set.Find(c.DB, c.Name); !dup {
				set = append(set, c)
			}
		}
		// The shardIdentity document addShard leaves on every shard.
		adminVersion = append(adminVersion, sysdb.Raw(bson.D{
			{Key: "_id", Value: "shardIdentity"}, {Key: "shardName", Value: f.cfg.Name},
			{Key: "clusterId", Value: cl.ClusterID()}, {Key: "configsvrConnectionString", Value: cl.ConfigServers()},
		}))
	}
	own := []sysdb.Collection{
		{DB: "admin", Name: "system.version", Docs: adminVersion},
		{DB: "config", Name: "transactions", Indexes: transactionsIndexes(n), Docs: n.storedDocs(load, "config", "transactions")},
	}
	if rel.IndexBuilds() {
		own = append(own, sysdb.Collection{DB: "config", Name: "system.indexBuilds"})
	}
	if rel.ImageCollection() {
		own = append(own, sysdb.Collection{DB: "config", Name: "image_collection", Docs: n.storedDocs(load, "config", "image_collection")})
	}
	own = append(own, n.sysNode().LocalCollections(n.startupLog())...)
	for _, c := range own {
		if i := slices.IndexFunc(set, func(s sysdb.Collection) bool { return s.DB == c.DB && s.Name == c.Name }); i >= 0 {
			// A config shard: the node's own version of a collection the config
			// server also lists (admin.system.version with shardIdentity, transactions).
			if c.Name == "system.version" {
				c.Docs = append(set[i].Docs, c.Docs[1:]...)
			}
			set[i] = c
			continue
		}
		set = append(set, c)
	}
	for i := range set {
		if len(set[i].UUID.Data) == 0 {
			set[i].UUID = f.internalUUID(set[i].NS())
		}
	}
	return set
}

// storedDocs are the documents the node itself keeps in one of its internal
// collections in FerretDB (the session records of config.transactions, the images of
// config.image_collection: see sessions.go and writes.go), when load asks for them.
func (n *node) storedDocs(load func(db, name string) bool, db, coll string) []bson.Raw {
	if load == nil || !load(db, coll) {
		return nil
	}
	docs, err := n.be.find(n.ctx, db, coll, nil, nil, 0)
	if err != nil {
		n.front.cfg.Logger.Error("read the shard's own internal collection", "shard", n.front.cfg.Name, "ns", db+"."+coll, "err", err)
		return nil
	}
	return docs
}

func transactionsIndexes(n *node) []bson.D {
	if !n.front.cfg.Identity.Release().TransactionsParentIndex() {
		return nil
	}
	return []bson.D{sysdb.Index(
		bson.D{{Key: "parentLsid", Value: int32(1)}, {Key: "_id.txnNumber", Value: int32(1)}, {Key: "_id", Value: int32(1)}},
		"parent_lsid", bson.E{Key: "partialFilterExpression", Value: bson.D{{Key: "parentLsid", Value: bson.D{{Key: "$exists", Value: true}}}}})}
}

// sysNode describes the shard member for the documents it writes about itself.
func (n *node) sysNode() sysdb.Node {
	f := n.front
	role := "shardsvr"
	if f.cfg.ConfigServer {
		role = "configsvr"
	}
	return sysdb.Node{Release: f.cfg.Identity.Release(), Host: n.name(), Members: f.memberNames(), SetName: f.cfg.SetName, ClusterRole: role,
		ReplicaSetID: f.replicaSetID, Started: n.started, BuildInfo: f.cfg.Identity.BuildInfo()}
}

// internalCollection returns one internal collection with its documents.
func (n *node) internalCollection(db, coll string) (sysdb.Collection, bool) {
	if !sysdb.Internal(db) || isOplog(db, coll) {
		return sysdb.Collection{}, false
	}
	return n.internalCollections(func(d, c string) bool { return d == db && c == coll }).Find(db, coll)
}

// serveInternal answers reads of an internal collection; ok is false for anything else.
func (n *node) serveInternal(cmd *wire.Command) (bson.Raw, bool) {
	name := strings.ToLower(cmd.Name)
	switch name {
	case "find", "count", "aggregate", "distinct", "listindexes", "collstats":
	default:
		return nil, false
	}
	collName, _ := collName(cmd)
	c, ok := n.internalCollection(cmd.DB, collName)
	if !ok {
		return nil, false
	}
	ns := c.NS()
	switch name {
	case "find":
		return memoryFind(ns, c.Docs, cmd), true
	case "count":
		return memoryCount(ns, c.Docs, cmd), true
	case "aggregate":
		return memoryAggregate(ns, c.Docs, cmd), true
	case "distinct":
		return memoryDistinct(ns, c.Docs, cmd), true
	case "listindexes":
		return firstBatchReply(ns, sysdb.Raws(c.IndexSpecs(n.front.cfg.Identity.Release()))), true
	}
	size := c.Size()
	avg := int64(0)
	if len(c.Docs) > 0 {
		avg = size / int64(len(c.Docs))
	}
	return wire.OK(
		bson.E{Key: "ns", Value: ns}, bson.E{Key: "size", Value: size}, bson.E{Key: "count", Value: int64(len(c.Docs))},
		bson.E{Key: "avgObjSize", Value: avg}, bson.E{Key: "storageSize", Value: max(size, 4096)},
		bson.E{Key: "capped", Value: c.Options != nil && c.Options[0].Key == "capped"},
		bson.E{Key: "nindexes", Value: int32(len(c.IndexSpecs(n.front.cfg.Identity.Release())))},
	), true
}

// memoryFind answers find on documents held in memory, in one batch.
func memoryFind(ns string, docs []bson.Raw, cmd *wire.Command) bson.Raw {
	var stages [][2]any
	if f, ok := cmd.Lookup("filter").DocumentOK(); ok {
		stages = append(stages, [2]any{"$match", f})
	}
	if s, ok := cmd.Lookup("sort").DocumentOK(); ok {
		stages = append(stages, [2]any{"$sort", s})
	}
	if v, ok := cmd.Lookup("skip").AsInt64OK(); ok && v > 0 {
		stages = append(stages, [2]any{"$skip", v})
	}
	if v, ok := cmd.Lookup("limit").AsInt64OK(); ok && v != 0 {
		stages = append(stages, [2]any{"$limit", max(v, -v)})
	}
	if p, ok := cmd.Lookup("projection").DocumentOK(); ok {
		stages = append(stages, [2]any{"$project", p})
	}
	out, err := runStages(ns, docs, stages)
	if err != nil {
		return wire.ErrorReply(err)
	}
	return firstBatchReply(ns, out)
}

func runStages(ns string, docs []bson.Raw, stages [][2]any) ([]bson.Raw, error) {
	for _, st := range stages {
		t, data, err := bson.MarshalValue(st[1])
		if err != nil {
			return nil, err
		}
		if docs, err = applyStage(ns, docs, st[0].(string), bson.RawValue{Type: t, Value: data}); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

func memoryCount(ns string, docs []bson.Raw, cmd *wire.Command) bson.Raw {
	var stages [][2]any
	if q, ok := cmd.Lookup("query").DocumentOK(); ok {
		stages = append(stages, [2]any{"$match", q})
	}
	if v, ok := cmd.Lookup("skip").AsInt64OK(); ok && v > 0 {
		stages = append(stages, [2]any{"$skip", v})
	}
	if v, ok := cmd.Lookup("limit").AsInt64OK(); ok && v != 0 {
		stages = append(stages, [2]any{"$limit", max(v, -v)})
	}
	out, err := runStages(ns, docs, stages)
	if err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK(bson.E{Key: "n", Value: int32(len(out))})
}

func memoryAggregate(ns string, docs []bson.Raw, cmd *wire.Command) bson.Raw {
	for _, st := range values(cmd.Lookup("pipeline")) {
		elems, _ := document(st).Elements()
		if len(elems) != 1 {
			return wire.ErrorReply(wire.BadValue("a pipeline stage must have exactly one field"))
		}
		var err error
		if docs, err = applyStage(ns, docs, elems[0].Key(), elems[0].Value()); err != nil {
			return wire.ErrorReply(err)
		}
	}
	return firstBatchReply(ns, docs)
}

func memoryDistinct(ns string, docs []bson.Raw, cmd *wire.Command) bson.Raw {
	key, _ := cmd.Lookup("key").StringValueOK()
	if key == "" {
		return wire.ErrorReply(wire.BadValue("distinct needs a key"))
	}
	m, err := match.Compile(document(cmd.Lookup("query")))
	if err != nil {
		return wire.ErrorReply(wire.BadValue(fmt.Sprintf("query on %s: %v", ns, err)))
	}
	var vals []bson.RawValue
	for _, d := range docs {
		if !m.Match(d) {
			continue
		}
		v, err := d.LookupErr(strings.Split(key, ".")...)
		if err != nil {
			continue
		}
		if arr, ok := v.ArrayOK(); ok {
			elems, _ := arr.Values()
			vals = append(vals, elems...)
			continue
		}
		vals = append(vals, v)
	}
	slices.SortFunc(vals, compareRaw)
	vals = slices.CompactFunc(vals, func(a, b bson.RawValue) bool { return compareRaw(a, b) == 0 })
	arr := make(bson.A, len(vals))
	for i, v := range vals {
		arr[i] = v
	}
	return wire.OK(bson.E{Key: "values", Value: arr})
}

func compareRaw(a, b bson.RawValue) int {
	return shardkey.Compare(bsoncore.Value{Type: a.Type, Data: a.Value}, bsoncore.Value{Type: b.Type, Data: b.Value})
}

// sortDocs sorts documents by a sort specification: {$natural: ±1} keeps or reverses
// their order; field paths compare their values as MongoDB orders them (a missing
// field as null).
func sortDocs(docs []bson.Raw, spec bson.Raw) ([]bson.Raw, error) {
	elems, _ := spec.Elements()
	type key struct {
		path []string
		dir  int
	}
	var keys []key
	for _, e := range elems {
		dir, ok := e.Value().AsInt64OK()
		if !ok || (dir != 1 && dir != -1) {
			return nil, wire.BadValue(fmt.Sprintf("bad sort direction in %s", spec))
		}
		if e.Key() == "$natural" {
			if len(elems) != 1 {
				return nil, wire.BadValue("$natural cannot be combined with other sort fields")
			}
			out := slices.Clone(docs)
			if dir == -1 {
				slices.Reverse(out)
			}
			return out, nil
		}
		keys = append(keys, key{strings.Split(e.Key(), "."), int(dir)})
	}
	null := bson.RawValue{Type: bson.TypeNull}
	out := slices.Clone(docs)
	slices.SortStableFunc(out, func(a, b bson.Raw) int {
		for _, k := range keys {
			va, err := a.LookupErr(k.path...)
			if err != nil {
				va = null
			}
			vb, err := b.LookupErr(k.path...)
			if err != nil {
				vb = null
			}
			if c := compareRaw(va, vb) * k.dir; c != 0 {
				return c
			}
		}
		return 0
	})
	return out, nil
}

// directShardCheck refuses, as an 8.0 shard of a cluster with two or more shards and
// authentication does, a command on user data from a client without the
// directShardOperations role (src/mongo/db/direct_connection_util.cpp). The internal
// databases and the cluster's own members (the router) are exempt.
func (n *node) directShardCheck(s *wire.Session, cmd *wire.Command) error {
	f := n.front
	if !f.cfg.Identity.Release().DirectShardOperationsEnforced() || f.cfg.Credentials == nil || f.cfg.Cluster == nil ||
		s.Internal() || s.User() == "" || f.cfg.Cluster.ShardCount() < 2 || f.cfg.Identity.HasRole("directShardOperations") {
		return nil
	}
	db := cmd.DB
	if strings.EqualFold(cmd.Name, "renameCollection") {
		from, _ := cmd.Lookup(cmd.Name).StringValueOK()
		db, _, _ = strings.Cut(from, ".")
	}
	if sysdb.Internal(db) {
		return nil
	}
	return wire.Unauthorized("You are connecting to a sharded cluster improperly by connecting directly to a shard. Please connect to the cluster via a router (mongos).")
}

// internalUUID is the uuid of one of the shard's own collections, kept for the life of
// the front.
func (f *Front) internalUUID(ns string) primitive.Binary {
	f.uuidMu.Lock()
	defer f.uuidMu.Unlock()
	u, ok := f.uuids[ns]
	if !ok {
		u = sysdb.NewUUID()
		f.uuids[ns] = u
	}
	return u
}

// startupLog is local.startup_log: one entry per start of the front's node.
func (n *node) startupLog() []bson.Raw {
	f := n.front
	f.uuidMu.Lock()
	starts := slices.Clone(f.starts)
	f.uuidMu.Unlock()
	out := make([]bson.Raw, len(starts))
	for i, t := range starts {
		sn := n.sysNode()
		sn.Started = t
		out[i] = sysdb.Raw(sn.StartupLog())
	}
	return out
}

// logStartup records a start of the node in local.startup_log.
func (f *Front) logStartup(at time.Time) {
	f.uuidMu.Lock()
	defer f.uuidMu.Unlock()
	f.starts = append(f.starts, at)
}

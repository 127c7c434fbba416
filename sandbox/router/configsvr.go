package router

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/sysdb"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// ConfigReplSet is the replica set name of the sandbox's config server.
const ConfigReplSet = "cfgRS"

// ConfigServer answers as the cluster's config server: hello as a CSRS primary
// (or, for a legacy mirrored config server, as a standalone), the common commands,
// and read-only find/count/distinct/aggregate on its config, admin and local
// databases, served from the same catalog the router uses.
type ConfigServer struct {
	cat      *Catalog
	identity wire.Identity
	legacy   bool
	cursors  *cursorTable
	election primitive.ObjectID
	topo     *wire.Topology
	started  time.Time

	mu    sync.Mutex
	me    string
	hosts []string
}

// NewConfigServer builds the handler; SetHosts tells it its addresses once the
// listeners are up.
func NewConfigServer(cat *Catalog, identity wire.Identity, legacy bool) *ConfigServer {
	return &ConfigServer{cat: cat, identity: identity, legacy: legacy, cursors: newCursorTable(),
		election: primitive.NewObjectID(), topo: wire.NewTopology(), started: time.Now()}
}

// SetHosts records this server's address and the set's members.
func (c *ConfigServer) SetHosts(me string, hosts []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.me, c.hosts = me, hosts
}

// Close drops the server's cursors.
func (c *ConfigServer) Close() { c.cursors.closeAll(context.Background()) }

// Handle answers one command.
func (c *ConfigServer) Handle(ctx context.Context, s *wire.Session, cmd *wire.Command) bson.Raw {
	if reply, ok := c.identity.AnswerCommon(s, cmd); ok {
		return reply
	}
	reply, err := c.handle(ctx, s, cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	return reply
}

func (c *ConfigServer) handle(ctx context.Context, s *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	switch strings.ToLower(cmd.Name) {
	case "hello", "ismaster":
		return wire.OK(c.hello(ctx, s, cmd)...), nil
	case "serverstatus":
		return c.serverStatus(), nil
	case "getmore":
		return c.cursors.getMore(ctx, cmd), nil
	case "killcursors":
		return c.cursors.kill(ctx, cmd), nil
	case "find":
		coll, err := collName(cmd)
		if err != nil {
			return nil, err
		}
		q, err := parseFind(cmd)
		if err != nil {
			return nil, err
		}
		it, err := memoryFind(c.cat.ConfigServerDocs(cmd.DB, coll, q.filter), q)
		if err != nil {
			return nil, err
		}
		return c.cursors.reply(ctx, cmd.DB+"."+coll, it, q.batchSize, q.single), nil
	case "count":
		coll, err := collName(cmd)
		if err != nil {
			return nil, err
		}
		query, _ := cmd.Lookup("query").DocumentOK()
		it, err := memoryFind(c.cat.ConfigServerDocs(cmd.DB, coll, query), findQuery{filter: query})
		if err != nil {
			return nil, err
		}
		n, err := countAll(ctx, it)
		if err != nil {
			return nil, err
		}
		return wire.OK(bson.E{Key: "n", Value: narrowInt(n)}), nil
	case "aggregate":
		coll, ok := cmd.Lookup("aggregate").StringValueOK()
		if !ok {
			return nil, wire.BadValue("the sandbox config server runs aggregations on collections only")
		}
		pipeline, ok := cmd.Lookup("pipeline").ArrayOK()
		if !ok {
			return nil, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: "'pipeline' option must be specified as an array"}
		}
		filter, stages, err := parsePipeline(pipeline)
		if err != nil {
			return nil, err
		}
		it, err := memoryFind(c.cat.ConfigServerDocs(cmd.DB, coll, filter), findQuery{filter: filter})
		if err != nil {
			return nil, err
		}
		for _, st := range stages {
			if it, err = st(it); err != nil {
				return nil, err
			}
		}
		batchSize, _ := asInt64(cmd.Body.Lookup("cursor", "batchSize"))
		return c.cursors.reply(ctx, cmd.DB+"."+coll, it, batchSize, false), nil
	case "listcollections":
		return listInternalCollections(ctx, c.cursors, cmd, c.collections(nil).In(cmd.DB), c.identity)
	case "listindexes":
		return listInternalIndexes(ctx, c.cursors, cmd, c.collections(nil), c.identity)
	case "listdatabases":
		return listInternalDatabases(cmd, c.collections(func(string, string) bool { return true }), []string{"admin", "config", "local"})
	case "insert", "update", "delete", "findandmodify", "create", "drop", "dropdatabase", "createindexes":
		return nil, wire.IllegalOperation("the sandbox config server is read-only: change the cluster through its router")
	}
	return nil, wire.CommandNotFound(cmd.Name)
}

// node describes the config server for the documents it writes about itself.
func (c *ConfigServer) node() sysdb.Node {
	c.mu.Lock()
	me := c.me
	c.mu.Unlock()
	return sysdb.Node{Release: c.identity.Release(), Host: me, SetName: ConfigReplSet, ClusterRole: "configsvr",
		ReplicaSetID: c.election, Started: c.started, BuildInfo: c.identity.BuildInfo()}
}

// collections are the config server's internal collections; load picks those whose
// documents are needed.
func (c *ConfigServer) collections(load func(db, name string) bool) sysdb.Set {
	n := c.node()
	set := c.cat.ConfigServerCollections(load)
	return append(set, n.LocalCollections([]bson.Raw{sysdb.Raw(n.StartupLog())})...)
}

func (c *ConfigServer) hello(ctx context.Context, s *wire.Session, cmd *wire.Command) bson.D {
	c.mu.Lock()
	me, hosts := c.me, c.hosts
	c.mu.Unlock()
	c.topo.Await(ctx, c.identity, cmd)
	d := c.identity.Hello(s, cmd, c.topo)
	if c.legacy {
		return d
	}
	return append(d,
		bson.E{Key: "hosts", Value: hosts},
		bson.E{Key: "setName", Value: ConfigReplSet},
		bson.E{Key: "setVersion", Value: int32(1)},
		bson.E{Key: "secondary", Value: false},
		bson.E{Key: "primary", Value: me},
		bson.E{Key: "me", Value: me},
		bson.E{Key: "electionId", Value: c.election},
		bson.E{Key: "configsvr", Value: int32(2)},
	)
}

// serverStatus is a config server's: process mongod, its replica set and its sharding
// section.
func (c *ConfigServer) serverStatus() bson.Raw {
	c.mu.Lock()
	me := c.me
	c.mu.Unlock()
	up := time.Since(c.started)
	now := time.Now()
	return wire.OK(
		bson.E{Key: "host", Value: me},
		bson.E{Key: "version", Value: c.identity.Version},
		bson.E{Key: "process", Value: "mongod"},
		bson.E{Key: "pid", Value: int64(os.Getpid())},
		bson.E{Key: "uptime", Value: up.Seconds()},
		bson.E{Key: "uptimeMillis", Value: up.Milliseconds()},
		bson.E{Key: "uptimeEstimate", Value: int64(up.Seconds())},
		bson.E{Key: "localTime", Value: now},
		bson.E{Key: "repl", Value: bson.D{
			{Key: "setName", Value: ConfigReplSet}, {Key: "isWritablePrimary", Value: true},
			{Key: "secondary", Value: false}, {Key: "primary", Value: me}, {Key: "me", Value: me},
			{Key: "electionId", Value: c.election},
		}},
		bson.E{Key: "sharding", Value: shardingSection(c.cat)},
		bson.E{Key: "metrics", Value: bson.D{{Key: "queryExecutor", Value: bson.D{{Key: "scannedObjects", Value: c.cat.Scanned()}}}}},
	)
}

// shardingSection is serverStatus' sharding section on mongos and mongod alike.
func shardingSection(cat *Catalog) bson.D {
	return bson.D{
		{Key: "configsvrConnectionString", Value: cat.ConfigServers()},
		{Key: "lastSeenConfigServerOpTime", Value: bson.D{
			{Key: "ts", Value: primitive.Timestamp{T: uint32(time.Now().Unix()), I: 1}},
			{Key: "t", Value: int64(1)},
		}},
		{Key: "maxChunkSizeInBytes", Value: cat.Release().MaxChunkSizeBytes()},
	}
}

package router

import (
	"context"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// ConfigReplSet is the replica set name of the sandbox's config server.
const ConfigReplSet = "cfgRS"

// ConfigServer answers as the cluster's config server: hello as a CSRS primary
// (or, for a legacy mirrored config server, as a standalone), the common commands,
// and read-only find/count/distinct/aggregate on the config database, served from
// the same catalog the router uses.
type ConfigServer struct {
	cat      *Catalog
	identity wire.Identity
	legacy   bool
	cursors  *cursorTable
	election primitive.ObjectID

	mu    sync.Mutex
	me    string
	hosts []string
}

// NewConfigServer builds the handler; SetHosts tells it its addresses once the
// listeners are up.
func NewConfigServer(cat *Catalog, identity wire.Identity, legacy bool) *ConfigServer {
	return &ConfigServer{cat: cat, identity: identity, legacy: legacy, cursors: newCursorTable(), election: primitive.NewObjectID()}
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
	reply, err := c.handle(ctx, cmd)
	if err != nil {
		return wire.ErrorReply(err)
	}
	return reply
}

func (c *ConfigServer) handle(ctx context.Context, cmd *wire.Command) (bson.Raw, error) {
	switch strings.ToLower(cmd.Name) {
	case "hello", "ismaster":
		return wire.OK(c.hello(cmd)...), nil
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
		it, err := memoryFind(c.docs(cmd.DB, coll), q)
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
		it, err := memoryFind(c.docs(cmd.DB, coll), findQuery{filter: query})
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
		it, err := memoryFind(c.docs(cmd.DB, coll), findQuery{filter: filter})
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
		var docs []bson.Raw
		if cmd.DB == "config" {
			for _, name := range configCollections {
				docs = append(docs, rawDoc(bson.D{{Key: "name", Value: name}, {Key: "type", Value: "collection"}}))
			}
		}
		return c.cursors.reply(ctx, cmd.DB+".$cmd.listCollections", &sliceIter{docs: docs}, 0, false), nil
	case "listdatabases":
		return wire.OK(bson.E{Key: "databases", Value: bson.A{
			bson.D{{Key: "name", Value: "admin"}, {Key: "sizeOnDisk", Value: int64(0)}, {Key: "empty", Value: false}},
			bson.D{{Key: "name", Value: "config"}, {Key: "sizeOnDisk", Value: int64(0)}, {Key: "empty", Value: false}},
			bson.D{{Key: "name", Value: "local"}, {Key: "sizeOnDisk", Value: int64(0)}, {Key: "empty", Value: false}},
		}}), nil
	case "insert", "update", "delete", "findandmodify", "create", "drop", "dropdatabase", "createindexes":
		return nil, wire.IllegalOperation("the sandbox config server is read-only: change the cluster through its router")
	}
	return nil, wire.CommandNotFound(cmd.Name)
}

// docs serves config.* from the catalog; other databases are empty.
func (c *ConfigServer) docs(db, coll string) []bson.Raw {
	if db != "config" {
		return nil
	}
	return c.cat.Docs(coll)
}

func (c *ConfigServer) hello(cmd *wire.Command) bson.D {
	c.mu.Lock()
	me, hosts := c.me, c.hosts
	c.mu.Unlock()
	d := wire.HelloBase(cmd, c.identity.Version)
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

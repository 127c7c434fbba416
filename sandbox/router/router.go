// Package router is the sandbox's mongos: a wire-protocol server that keeps the
// cluster catalog (the config database) and routes every command to the shard
// fronts with the Go driver, plus the config server endpoint that serves the same
// catalog as a CSRS primary.
//
//	client ─► wire.Server ─► Router.Handle ─┬─ hello, listShards, balancer*, getShardMap, serverStatus
//	                                         ├─ admin.*, config.* reads ◄── Catalog (Go, persisted BSON file),
//	                                         │      rendered in the release's formats (formats.go)
//	                                         ├─ config.system.sessions reads ─► the shards owning its chunks
//	                                         ├─ shardCollection, split, moveChunk, zones ─► Catalog + shards
//	                                         ├─ insert/update/delete ─► target by shard key ─► shard(s)
//	                                         ├─ find/count/distinct/aggregate ─► shard cursors
//	                                         │      ─► k-way merge, orphan filter, skip/limit,
//	                                         │         projection, pipeline stages ─► router cursor
//	                                         └─ DDL ─► every shard holding the namespace
//
// The router never stores documents: everything lives on the shards, each of which
// writes its own oplog. What the router adds is what mongos adds: placement
// (implicit database creation with a primary shard, chunk ownership, hashed
// placement with MongoDB's own hash), merging, and the catalog in MongoDB's formats.
package router

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Config describes a router.
type Config struct {
	// Catalog is the cluster's config database, shared with its config server.
	Catalog *Catalog
	// Shards are the shard fronts, in the order listShards reports them.
	Shards []Shard
	// ClientOptions returns the base driver options for connecting to a shard
	// (credentials, TLS); the router adds the host and timeouts.
	ClientOptions func() *options.ClientOptions
	// Identity is the version/FCV the router reports.
	Identity wire.Identity
	// Credentials are the cluster's user, reported by usersInfo.
	Credentials *wire.Credentials
	// LeaveOrphans makes moveChunk keep the donor's copies (orphans).
	LeaveOrphans bool
	// CommandLatency delays split and moveChunk as a real cluster's take.
	CommandLatency CommandLatency
	Logger         *slog.Logger
}

// defaultOpTimeout bounds the second phase of a cross-shard transaction's commit,
// which goes on once decided even when its client gave up (txn.go).
const defaultOpTimeout = 2 * time.Minute

// Router is the mongos stand-in. It is a wire.Handler.
type Router struct {
	cfg      Config
	cat      *Catalog
	backends map[string]*backend
	order    []*backend
	cursors  *cursorTable
	txns     txnTable
	started  time.Time
	topo     *wire.Topology
	log      *slog.Logger

	nsMu   sync.Mutex
	nsLock map[string]*sync.RWMutex

	hold     chunkHold    // HoldChunkCommands
	cmdHolds commandHolds // HoldCommands
}

// New connects a router to its shards (lazily: the driver dials on first use).
func New(cfg Config) (*Router, error) {
	if cfg.Catalog == nil {
		return nil, fmt.Errorf("router: no catalog")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{
		cfg:      cfg,
		cat:      cfg.Catalog,
		backends: map[string]*backend{},
		cursors:  newCursorTable(),
		started:  time.Now(),
		topo:     wire.NewTopology(),
		log:      cfg.Logger,
		nsLock:   map[string]*sync.RWMutex{},
	}
	for _, s := range cfg.Shards {
		b, err := connectBackend(s, cfg.ClientOptions)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.backends[s.Name] = b
		r.order = append(r.order, b)
	}
	return r, nil
}

// Close drops the router's cursors and its connections to the shards; held commits
// are aborted.
func (r *Router) Close() error {
	r.ReleaseCommits(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.cursors.closeAll(ctx)
	for _, b := range r.order {
		b.client.Disconnect(ctx)
	}
	return nil
}

// Register records the router in config.mongos under the address it listens on.
func (r *Router) Register(addr string) { r.cat.RegisterMongos(addr, r.started) }

// Handle answers one command.
func (r *Router) Handle(ctx context.Context, s *wire.Session, cmd *wire.Command) bson.Raw {
	name := strings.ToLower(cmd.Name)
	if name == "getparameter" {
		// A mongos has no FCV of its own: before 8.3 it answers with its binary's
		// version, whatever the cluster's FCV is (SERVER-118760).
		return wire.FCVParameter(cmd, r.cfg.Identity.Release().FCV())
	}
	if reply, ok := r.cfg.Identity.AnswerCommon(s, cmd); ok {
		return reply
	}
	h, ok := routerCommands[name]
	if !ok {
		return wire.ErrorReply(wire.CommandNotFound(cmd.Name))
	}
	if v := cmd.Lookup("startTransaction"); v.Type != 0 && !r.cfg.Identity.Release().CrossShardTransactions() {
		return wire.ErrorReply(wire.IllegalOperation("Transactions are not supported on sharded clusters before 4.2: the sandbox's release is " + r.cfg.Identity.Release().String()))
	}
	ctx, cancel := opContext(ctx, cmd)
	defer cancel()
	err := r.awaitCommandHold(ctx, cmd)
	var reply bson.Raw
	if err == nil {
		reply, err = h(r, ctx, s, cmd)
	}
	if err != nil {
		r.log.Debug("command failed", "cmd", cmd.Name, "db", cmd.DB, "err", err)
		reply = wire.ErrorReply(err)
	}
	if cmd.Lookup("autocommit").Type != 0 {
		return txnReply(reply)
	}
	return reply
}

// opContext bounds a command by its maxTimeMS, and a command without one not at
// all, as a mongos does: its requests to the shards take their timeout from the
// operation's deadline, none without maxTimeMS (RemoteCommandRequest's
// kNoTimeout). A shard's first batch of a large sorted find may take minutes on
// the sandbox (FerretDB sorts the shard's whole collection in memory first); the
// client's own timeout is the one that gives up.
func opContext(ctx context.Context, cmd *wire.Command) (context.Context, context.CancelFunc) {
	if ms, ok := asInt64(cmd.Lookup("maxTimeMS")); ok && ms > 0 {
		return context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
	}
	return context.WithCancel(ctx)
}

// routerCommands maps lower-case command names to their handlers.
var routerCommands map[string]func(*Router, context.Context, *wire.Session, *wire.Command) (bson.Raw, error)

func init() {
	routerCommands = map[string]func(*Router, context.Context, *wire.Session, *wire.Command) (bson.Raw, error){
		"hello":               (*Router).hello,
		"ismaster":            (*Router).hello,
		"isdbgrid":            (*Router).isdbgrid,
		"serverstatus":        (*Router).serverStatus,
		"getshardmap":         (*Router).getShardMap,
		"listshards":          (*Router).listShards,
		"balancerstart":       (*Router).balancerStart,
		"balancerstop":        (*Router).balancerStop,
		"balancerstatus":      (*Router).balancerStatus,
		"flushrouterconfig":   (*Router).flushRouterConfig,
		"usersinfo":           (*Router).usersInfo,
		"rolesinfo":           (*Router).rolesInfo,
		"enablesharding":      (*Router).enableSharding,
		"shardcollection":     (*Router).shardCollection,
		"split":               (*Router).split,
		"movechunk":           (*Router).moveChunk,
		"moverange":           (*Router).moveRange,
		"find":                (*Router).find,
		"getmore":             (*Router).getMore,
		"killcursors":         (*Router).killCursors,
		"count":               (*Router).count,
		"distinct":            (*Router).distinct,
		"aggregate":           (*Router).aggregate,
		"insert":              (*Router).insert,
		"update":              (*Router).update,
		"delete":              (*Router).delete,
		"findandmodify":       (*Router).findAndModify,
		"listdatabases":       (*Router).listDatabases,
		"listcollections":     (*Router).listCollections,
		"listindexes":         (*Router).listIndexes,
		"create":              (*Router).create,
		"createindexes":       (*Router).createIndexes,
		"dropindexes":         (*Router).dropIndexes,
		"collmod":             (*Router).collMod,
		"drop":                (*Router).drop,
		"dropdatabase":        (*Router).dropDatabase,
		"renamecollection":    (*Router).renameCollection,
		"dbstats":             (*Router).dbStats,
		"collstats":           (*Router).collStats,
		"addshardtozone":      (*Router).addShardToZone,
		"removeshardfromzone": (*Router).removeShardFromZone,
		"updatezonekeyrange":  (*Router).updateZoneKeyRange,
	}
	routerCommands["committransaction"] = (*Router).commitTransaction
	routerCommands["aborttransaction"] = (*Router).abortTransaction
	routerCommands["refinecollectionshardkey"] = (*Router).refineCollectionShardKey
	routerCommands["_sandboxsetchunks"] = (*Router).setChunks
	routerCommands["moveprimary"] = (*Router).movePrimary
	routerCommands["reshardcollection"] = (*Router).reshardCollection
}

func (r *Router) hello(ctx context.Context, s *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	r.topo.Await(ctx, r.cfg.Identity, cmd)
	d := r.cfg.Identity.Hello(s, cmd, r.topo)
	d = append(d, bson.E{Key: "msg", Value: "isdbgrid"})
	return wire.OK(d...), nil
}

func (r *Router) isdbgrid(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	host, _ := os.Hostname()
	return wire.OK(bson.E{Key: "isdbgrid", Value: int32(1)}, bson.E{Key: "hostname", Value: host}), nil
}

func (r *Router) flushRouterConfig(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	return wire.OK(bson.E{Key: "flushed", Value: true}), nil
}

func (r *Router) getMore(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	return r.cursors.getMore(ctx, cmd), nil
}

func (r *Router) killCursors(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	return r.cursors.kill(ctx, cmd), nil
}

// usersInfo reports the cluster's one user (admin only), so tools that list users
// to re-create find it.
func (r *Router) usersInfo(_ context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	users := bson.A{}
	if c := r.cfg.Credentials; c != nil && cmd.DB == "admin" {
		roles := bson.A{}
		rs := r.cfg.Identity.Roles
		if len(rs) == 0 {
			rs = wire.DefaultRoles
		}
		for _, role := range rs {
			roles = append(roles, bson.D{{Key: "role", Value: role}, {Key: "db", Value: "admin"}})
		}
		user := bson.D{
			{Key: "_id", Value: "admin." + c.User},
			{Key: "user", Value: c.User},
			{Key: "db", Value: "admin"},
			{Key: "roles", Value: roles},
		}
		if r.cfg.Identity.Release().SCRAMSHA256() {
			// usersInfo lists the mechanisms from 4.0, when there came to be two.
			user = append(user, bson.E{Key: "mechanisms", Value: bson.A{r.cfg.Identity.Mechanism()}})
		}
		users = append(users, user)
	}
	return wire.OK(bson.E{Key: "users", Value: users}), nil
}

// rolesInfo reports no user-defined roles: the sandbox has only built-in ones, which
// rolesInfo leaves out unless asked for showBuiltinRoles, as MongoDB does.
func (r *Router) rolesInfo(_ context.Context, _ *wire.Session, _ *wire.Command) (bson.Raw, error) {
	return wire.OK(bson.E{Key: "roles", Value: bson.A{}}), nil
}

// backend returns the client for a shard name from the catalog.
func (r *Router) backend(name string) (*backend, error) {
	b, ok := r.backends[name]
	if !ok {
		return nil, &wire.Error{Code: 70, Name: "ShardNotFound", Msg: fmt.Sprintf("shard %q not found", name)}
	}
	return b, nil
}

// lockNS returns the namespace's lock: CRUD holds it shared, chunk migrations and
// DDL that move or remove data hold it exclusively (mongos' critical section).
func (r *Router) lockNS(ns string) *sync.RWMutex {
	r.nsMu.Lock()
	defer r.nsMu.Unlock()
	l := r.nsLock[ns]
	if l == nil {
		l = &sync.RWMutex{}
		r.nsLock[ns] = l
	}
	return l
}

// collName reads the collection named by a command's first field.
func collName(cmd *wire.Command) (string, error) {
	v := cmd.Lookup(cmd.Name)
	s, ok := v.StringValueOK()
	if !ok || s == "" {
		return "", &wire.Error{Code: 73, Name: "InvalidNamespace",
			Msg: fmt.Sprintf("collection name for %s must be a non-empty string", cmd.Name)}
	}
	return s, nil
}

// checkWritable refuses writes to the databases a sandbox router does not store.
func checkWritable(db string) error {
	switch db {
	case "config", "admin", "local":
		return wire.IllegalOperation(fmt.Sprintf("the sandbox router does not accept writes to the %s database", db))
	}
	return checkDBName(db)
}

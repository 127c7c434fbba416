// Package shard is one sandbox shard: a replica set of Config.Members members (see
// replset.go), each an embedded FerretDB (SQLite files in the member's directory,
// reachable only over a Unix socket there) behind a wire-protocol front on 127.0.0.1;
// the primary's front owns the oplog, the secondaries apply it.
//
//	client ─► wire (TLS, SCRAM) ─► front ─┬─ hello, replSetGetStatus, serverStatus ─► answered here
//	                                      ├─ 8.0: user data without directShardOperations ─► refused
//	                                      ├─ local.oplog.rs reads ─► oplog (memory + file, capped)
//	                                      ├─ admin/config/local internal collections ─► memory (sysns.go)
//	                                      ├─ writes, DDL ─► write lock ─► FerretDB by {_id} ─► oplog entry
//	                                      ├─ scans by _id, collection scans ─► SQLite pages ─► sjson decode (idscan.go)
//	                                      └─ other reads ─► FerretDB (+ UUIDs, views, kept indexes)
//
// FerretDB's own oplog cannot serve as a shard's (entries out of order, no DDL, updates
// logged as whole documents), so the front serializes the shard's writes, applies each
// to FerretDB one document at a time and appends the entry MongoDB would write
// (including $v:2 diffs) before the next one. Tailable awaitData cursors wait on the
// oplog's change signal.
//
// Everything it reports (hello, buildInfo, the internal collections' formats, the oplog's
// forms) is that of its identity's MongoDB release (package release).
//
// Commands carry the router's knowledge: {_sandboxSetCollection: coll, key, uuid} sets a
// collection's UUID and shard key (used for `ui` and the document keys of its entries),
// `fromMigrate: true` on insert, delete and drop marks their entries as a chunk
// migration's or a sharded DDL participant's, {_sandboxNoop: coll, o, o2} writes the
// no-op of a sharding event, and _sandboxLsid, txnNumber and stmtIds carry a retryable
// write's session.
package shard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/release"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Config describes one shard.
type Config struct {
	// Name is the shard's name, e.g. "src-shard0", and its replica set's unless SetName
	// says otherwise.
	Name string
	// SetName is the replica set name when it differs from the shard's (an 8.0 config
	// shard: shard "config" of replica set "cfgRS").
	SetName string
	// ConfigServer makes the node the cluster's config server as well (an 8.0 config
	// shard): it says so in hello and serves the config database's metadata.
	ConfigServer bool
	// Addr is where the front listens: "127.0.0.1:0" or a fixed port (kept on Restart).
	Addr string
	// Dir holds FerretDB's SQLite files, the oplog and the front's metadata.
	Dir         string
	TLS         *tls.Config
	Credentials *wire.Credentials
	// Internal is the cluster members' identity (see wire.Config.Internal): requests
	// authenticated with it come from the router.
	Internal *wire.Credentials
	// External are the cluster's users on $external (X.509, PLAIN), if any.
	External *wire.External
	// Cluster is what the shard knows of its cluster (nil outside one).
	Cluster Cluster
	// Identity is the version, FCV and user roles the shard reports.
	Identity wire.Identity
	// OplogSize caps the oplog in bytes (0: 64 MiB); old entries roll off.
	OplogSize int64
	// NoopInterval is how long the oplog may stay quiet before a no-op (0: 10 s).
	NoopInterval time.Duration
	// Members is the replica set's size (0: 1): a primary and Members-1 secondaries,
	// each on its own address (see replset.go).
	Members int
	// OplogHoles, when set, hides every other write's entry from the oplog's readers
	// for that long while later entries are served: oplog holes (oplog_holes.go).
	OplogHoles time.Duration
	// TxnOpsPerEntry is how many operations of a transaction one applyOps entry holds
	// before the next one starts (0: as many as fit in 15 MiB), as the server parameter
	// maxNumberOfTransactionOperationsInSingleOplogEntry does.
	TxnOpsPerEntry int
	// MemberAddrs are the secondaries' addresses ("127.0.0.1:0" for any); missing ones
	// come from Dir/replset.json, else any port.
	MemberAddrs []string
	// Latency delays the members' replies to clients (wire.Config.Latency).
	Latency time.Duration
	Logger  *slog.Logger
}

// Front is a running shard.
type Front struct {
	cfg    Config
	forms  forms        // the oplog forms of cfg.Identity
	server *wire.Server // member 0's, whose address names the shard
	// servers are the members' listeners, by member index (servers[0] == server).
	servers []*wire.Server
	set     replSet
	// names are the members' own names by address (NameMembers); nil: their addresses.
	names atomic.Pointer[map[string]string]
	reads readCounts // by member index (readcount.go)
	// replicaSetID is the shard's replica set id (settings.replicaSetId).
	replicaSetID primitive.ObjectID

	// uuidMu guards the uuids of the front's internal collections and its starts.
	uuidMu sync.Mutex
	uuids  map[string]primitive.Binary
	starts []time.Time

	// lifeMu serializes Stop, Restart, SetOplogSize and Close.
	lifeMu sync.Mutex

	mu struct {
		// Commands hold the read lock while they run; replacing the node takes the
		// write lock, so it waits for commands in flight (their context is cancelled
		// first, so they end promptly).
		sync.RWMutex
		nodes     []*node // by member index; nil while stopped
		oplogSize int64
		closed    bool
	}
}

// Start opens (or creates) the shard in cfg.Dir and starts serving.
func Start(cfg Config) (*Front, error) {
	if cfg.Name == "" || cfg.Dir == "" {
		return nil, errors.New("shard: Name and Dir are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.SetName == "" {
		cfg.SetName = cfg.Name
	}
	if cfg.OplogSize <= 0 {
		cfg.OplogSize = 64 << 20
	}
	if cfg.Members <= 0 {
		cfg.Members = 1
	}
	if cfg.NoopInterval <= 0 {
		cfg.NoopInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Identity.Version == "" {
		cfg.Identity.Version = release.Default.Version()
	}
	if cfg.Identity.FCV == "" {
		cfg.Identity.FCV = cfg.Identity.Release().FCV()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("shard %s: create %s: %w", cfg.Name, cfg.Dir, err)
	}
	f := &Front{cfg: cfg, forms: formsOf(cfg.Identity), replicaSetID: primitive.NewObjectID(), uuids: map[string]primitive.Binary{}}
	f.mu.oplogSize = cfg.OplogSize
	state, err := loadReplSetState(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", cfg.Name, err)
	}
	f.set.init(cfg.Members, state)
	nodes, err := openNodes(f)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", cfg.Name, err)
	}
	f.mu.nodes = nodes
	f.reads = make(readCounts, cfg.Members)
	for i := range cfg.Members {
		addr := cfg.Addr
		if i > 0 {
			addr = memberAddr(cfg, state, i)
		}
		s, err := wire.Listen(wire.Config{
			Addr:        addr,
			TLS:         cfg.TLS,
			Credentials: cfg.Credentials,
			Mechanism:   cfg.Identity.Mechanism(),
			Internal:    cfg.Internal,
			External:    cfg.External,
			Handler:     f.memberHandler(i),
			Latency:     cfg.Latency,
			Logger:      cfg.Logger,
		})
		if err != nil {
			for _, s := range f.servers {
				s.Close()
			}
			closeNodes(nodes)
			return nil, fmt.Errorf("shard %s: member %d: %w", cfg.Name, i, err)
		}
		f.servers = append(f.servers, s)
	}
	f.server = f.servers[0]
	if err := f.saveReplSetState(); err != nil {
		f.Close()
		return nil, fmt.Errorf("shard %s: %w", cfg.Name, err)
	}
	return f, nil
}

func (f *Front) memberHandler(i int) wire.Handler {
	return wire.HandlerFunc(func(ctx context.Context, s *wire.Session, cmd *wire.Command) bson.Raw {
		return f.handle(ctx, i, s, cmd)
	})
}

func (f *Front) handle(ctx context.Context, member int, s *wire.Session, cmd *wire.Command) (reply bson.Raw) {
	// A bug in one command must not take the whole sandbox process down.
	defer func() {
		if r := recover(); r != nil {
			f.cfg.Logger.Error("shard command failed", "shard", f.cfg.Name, "command", cmd.Name, "panic", r, "stack", string(debug.Stack()))
			reply = wire.ErrorReply(&wire.Error{Code: 1, Name: "InternalError", Msg: fmt.Sprintf("sandbox shard %s failed on %s: %v", f.cfg.Name, cmd.Name, r)})
		}
	}()
	if name := strings.ToLower(cmd.Name); name == "hello" || name == "ismaster" {
		f.awaitHello(ctx, member, cmd)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.mu.nodes == nil {
		return wire.ErrorReply(&wire.Error{Code: 91, Name: "ShutdownInProgress", Msg: "shard " + f.cfg.Name + " is stopped"})
	}
	f.reads.count(member, s, cmd)
	return f.mu.nodes[member].handle(s, cmd)
}

// awaitHello holds an awaitable hello (see wire.Topology.Await) without holding the
// front's lock, so that stopping or resizing the shard never waits for it; it ends
// early when the node stops or the server closes (ctx).
func (f *Front) awaitHello(ctx context.Context, member int, cmd *wire.Command) {
	f.mu.RLock()
	var n *node
	if f.mu.nodes != nil {
		n = f.mu.nodes[member]
	}
	f.mu.RUnlock()
	if n == nil {
		return
	}
	wait, cancel := context.WithCancel(n.ctx)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	n.topo.Await(wait, f.cfg.Identity, cmd)
}

// Name is the shard's name.
func (f *Front) Name() string { return f.cfg.Name }

// Addr is the front's host:port.
func (f *Front) Addr() string { return f.server.Addr() }

// Host is the shard's host string as listShards shows it: "setName/host:port,...",
// every member's address.
func (f *Front) Host() string { return f.cfg.SetName + "/" + strings.Join(f.MemberAddrs(), ",") }

// SetName is the shard's replica set name.
func (f *Front) SetName() string { return f.cfg.SetName }

// MemberAddrs are the members' addresses, by member index.
func (f *Front) MemberAddrs() []string {
	out := make([]string, len(f.servers))
	for i, s := range f.servers {
		out[i] = s.Addr()
	}
	return out
}

// NameMembers makes the members name themselves and each other by these names (address
// -> name) in hello, replSetGetStatus and their replica set config, as the members of a
// real set do by the host names of its configuration: a cluster behind its own DNS
// then names them only by names a client has to map. An address not in names keeps
// being named by itself.
func (f *Front) NameMembers(names map[string]string) {
	m := maps.Clone(names)
	f.names.Store(&m)
}

// memberName is how the members name the one listening on addr.
func (f *Front) memberName(addr string) string {
	if m := f.names.Load(); m != nil {
		if name, ok := (*m)[addr]; ok {
			return name
		}
	}
	return addr
}

// memberNames are the members' names (memberName), by member index.
func (f *Front) memberNames() []string {
	out := f.MemberAddrs()
	for i, a := range out {
		out[i] = f.memberName(a)
	}
	return out
}

func (f *Front) oplogSize() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.oplogSize
}

// Stop makes the shard unreachable (connections refused) and stops FerretDB, which
// releases its files; the data stays in Dir for Restart.
func (f *Front) Stop() error {
	f.lifeMu.Lock()
	defer f.lifeMu.Unlock()
	return f.stopLocked()
}

func (f *Front) stopLocked() error {
	f.mu.RLock()
	nodes, closed := f.mu.nodes, f.mu.closed
	f.mu.RUnlock()
	if closed {
		return errors.New("shard " + f.cfg.Name + " is closed")
	}
	if nodes == nil {
		return nil
	}
	for _, s := range f.servers {
		if err := s.SetFault(wire.Refuse); err != nil {
			return fmt.Errorf("shard %s: %w", f.cfg.Name, err)
		}
	}
	// Cancel only between writes: a write cut between its FerretDB change and its
	// oplog entry would leave data a real mongod could never have (a change with no
	// entry). Writes that wait for the lock find the context cancelled and fail before
	// touching anything. A secondary applies under the same lock.
	for _, n := range nodes {
		n.writeMu.Lock()
		n.cancel()
		n.writeMu.Unlock()
	}
	f.mu.Lock()
	f.mu.nodes = nil
	f.mu.Unlock()
	if err := closeNodes(nodes); err != nil {
		return fmt.Errorf("shard %s: %w", f.cfg.Name, err)
	}
	return nil
}

// Restart starts the shard again (stopping it first if it runs), on the same address
// with the same data and oplog.
func (f *Front) Restart() error {
	f.lifeMu.Lock()
	defer f.lifeMu.Unlock()
	if err := f.stopLocked(); err != nil {
		return err
	}
	nodes, err := openNodes(f)
	if err != nil {
		return fmt.Errorf("shard %s: restart: %w", f.cfg.Name, err)
	}
	f.mu.Lock()
	f.mu.nodes = nodes
	f.mu.Unlock()
	for _, s := range f.servers {
		if err := s.SetFault(wire.Healthy); err != nil {
			return fmt.Errorf("shard %s: listen again on %s: %w", f.cfg.Name, s.Addr(), err)
		}
	}
	return nil
}

// SetFault changes how the running shard treats its clients (see wire.Fault). A
// stopped shard refuses connections until Restart.
func (f *Front) SetFault(fault wire.Fault) error {
	f.mu.RLock()
	running := f.mu.nodes != nil
	f.mu.RUnlock()
	if !running {
		return fmt.Errorf("shard %s is stopped: Restart it instead", f.cfg.Name)
	}
	for _, s := range f.servers {
		if err := s.SetFault(fault); err != nil {
			return err
		}
	}
	return nil
}

// SetOplogSize changes the oplog's cap; shrinking rolls old entries off now.
func (f *Front) SetOplogSize(bytes int64) {
	f.lifeMu.Lock()
	defer f.lifeMu.Unlock()
	if bytes <= 0 {
		bytes = 64 << 20
	}
	f.mu.Lock()
	f.mu.oplogSize = bytes
	nodes := f.mu.nodes
	f.mu.Unlock()
	for _, n := range nodes {
		if err := n.oplog.setMax(bytes); err != nil {
			f.cfg.Logger.Error("resize oplog", "shard", f.cfg.Name, "err", err)
		}
	}
}

// SetMemberOplogSize changes one member's oplog cap, as replSetResizeOplog run on
// that member does but to any size (a secondary's oplog may be smaller than its
// primary's on a real set): shrinking rolls its old entries off now; the member keeps
// the size across restarts.
func (f *Front) SetMemberOplogSize(member int, bytes int64) error {
	f.lifeMu.Lock()
	defer f.lifeMu.Unlock()
	nodes, err := f.running()
	if err != nil {
		return err
	}
	if member < 0 || member >= len(nodes) {
		return fmt.Errorf("shard %s has members 0 to %d, not %d", f.cfg.Name, len(nodes)-1, member)
	}
	if bytes <= 0 {
		return fmt.Errorf("an oplog size must be positive, not %d", bytes)
	}
	return nodes[member].resizeOplog(bytes)
}

// Close stops the shard for good and frees its address; the data stays in Dir.
func (f *Front) Close() error {
	f.lifeMu.Lock()
	defer f.lifeMu.Unlock()
	f.mu.RLock()
	closed := f.mu.closed
	f.mu.RUnlock()
	if closed {
		return nil
	}
	err := f.stopLocked()
	f.mu.Lock()
	f.mu.closed = true
	f.mu.Unlock()
	for _, s := range f.servers {
		if errClose := s.Close(); err == nil {
			err = errClose
		}
	}
	return err
}

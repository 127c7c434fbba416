// Package sandbox starts local stand-in MongoDB sharded clusters for tests,
// benchmarks and the demo: real FerretDB servers behind shard fronts that own their
// oplogs, a config server and a mongos-like router, all on 127.0.0.1.
//
//	Start ─► release (Options.MongoDBVersion, or Dir's) ─► TLS material (Dir/tls)
//	      ─► shard fronts (Dir/<name>-shardN: FerretDB + oplog; 8.0: + config shard)
//	      ─► catalog (Dir/config/catalog.bson) ─► config server(s) ─► router
//	      ─► Dir/cluster.json (release and addresses, so a restart serves the same)
//
// Every node presents the same MongoDB release (package release): its hello,
// buildInfo, FCV, config database formats and internal namespaces.
//
// Each shard is a replica set of Options.Members members (package shard, replset.go).
//
// A Cluster is used through its URI with any MongoDB driver; its Go API adds the
// fault hooks tests need (stop, restart or isolate a shard, restart the router, step a
// shard's primary down with or without rollback, lag its secondaries, open oplog
// holes: replset.go; hold chosen commands in flight as a slow server would:
// HoldCommands), also served over HTTP for failure drills (Control).
// It is a test and demo tool, not a database.
package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/release"
	"github.com/shardlift/shardlift/sandbox/router"
	"github.com/shardlift/shardlift/sandbox/shard"
	"github.com/shardlift/shardlift/sandbox/sysdb"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Options shape a cluster.
type Options struct {
	// Shards is the number of shards (default 2).
	Shards int
	// Dir keeps the cluster's data and addresses; "" means a temporary directory
	// removed by Close.
	Dir string
	// Auth, when set, requires SCRAM (SHA-256; SHA-1 on 3.6) with these credentials on the router,
	// the config server and every shard.
	Auth *wire.Credentials
	// TLS makes every endpoint TLS-only, with certificates under Dir/tls.
	TLS bool
	// X509, like a cluster whose users are X.509 certificates, requires a client
	// certificate signed by the cluster's CA on every endpoint (TLS implied) and
	// accepts the MONGODB-X509 user of the one the CA issued (ClientCertFile).
	X509 bool
	// Plain, when set, is a PLAIN (LDAP) user on $external the cluster accepts.
	Plain *wire.Credentials
	// OplogSize is each shard's oplog size in bytes (0: the shard's default).
	OplogSize int64
	// NoopInterval is how long a shard's oplog may stay quiet before its primary
	// writes a periodic no-op (0: 10 s, as MongoDB's periodicNoopIntervalSecs).
	NoopInterval time.Duration
	// MongoDBVersion is the MongoDB release the cluster presents, "3.6" to "8.0"
	// (default: the one Dir's cluster presents, else "7.0"): hello, buildInfo, FCV,
	// the config database's formats and the internal namespaces of that release
	// (package release).
	MongoDBVersion string
	// Identity overrides what every node reports: a full version (its release is the
	// cluster's when MongoDBVersion is unset), an FCV other than the release's, the
	// user's roles. Tests use it to provoke version findings.
	Identity wire.Identity
	// LegacyConfigServers reports three mirrored config servers ("h1:p1,h2:p2,h3:p3")
	// instead of a CSRS ("cfgRS/host:port"), for validation tests.
	LegacyConfigServers bool
	// ConfigShard (MongoDB 8.0) makes the config server a shard as well: shard
	// "config", replica set cfgRS, holding user data beside the cluster's metadata.
	ConfigShard bool
	// LeaveOrphans makes moveChunk leave the donor's copies behind.
	LeaveOrphans bool
	// Members is the number of members of each shard's replica set (0: 1). Every
	// secondary applies each write again (package shard, replset.go): tests keep the
	// one-member default unless they exercise the set; the CLI starts 3.
	Members int
	// OplogHoles, when set, hides every other write's oplog entry from readers for that
	// long while the entries after it are served, as concurrent commits on a real
	// primary do (package shard, oplog_holes.go).
	OplogHoles time.Duration
	// TxnOpsPerEntry is how many operations of a transaction each shard logs in one
	// applyOps entry before chaining the next (0: as many as fit in 15 MiB), as the
	// server parameter maxNumberOfTransactionOperationsInSingleOplogEntry does: a small
	// number makes every transaction a large one, of several chained entries.
	TxnOpsPerEntry int
	// PrivateHostnames makes listShards, config.shards and the config server string
	// name the shards and config servers by names that do not resolve here (under
	// .sandbox.invalid), as a cluster behind its own DNS does: only a host map
	// (PrivateHosts, HostMapFile) reaches them.
	PrivateHostnames bool
	// CommandLatency makes the router's split and moveChunk take as long as a real
	// cluster's (router.RealisticCommandLatency); zero for tests.
	CommandLatency router.CommandLatency
	// Latency is the network delay between clients and the cluster: every reply of
	// its router, config servers and shard members to a client waits that long
	// (the router's own requests to its shards do not).
	Latency time.Duration
	Logger  *slog.Logger
}

// ShardInfo describes one shard.
type ShardInfo struct {
	Name string // replica set name, "<cluster>-shardN"
	Addr string // 127.0.0.1:port
	Host string // "name/addr", as listShards reports it
}

// Cluster is a running sandbox cluster.
type Cluster struct {
	name    string
	opts    Options
	dir     string
	tempDir bool
	certs   *certs
	log     *slog.Logger

	fronts     []*shard.Front
	catalog    *router.Catalog
	view       clusterView
	internal   *wire.Credentials // the cluster members' identity, with Auth
	private    map[string]string // private name -> address, with PrivateHostnames
	cfgHandler *router.ConfigServer
	cfgServers []*wire.Server
	cfgString  string

	mu struct {
		sync.Mutex
		router *router.Router
		server *wire.Server
		addr   string
		closed bool
	}
}

// layout is Dir/cluster.json: the addresses a restart reuses.
type layout struct {
	Name string `json:"name"`
	// Release is the MongoDB release the cluster presents ("" before releases were
	// recorded: 7.0).
	Release string `json:"release,omitempty"`
	// ConfigShard: the config server (Config[0]) is shard "config" too.
	ConfigShard bool          `json:"configShard,omitempty"`
	Shards      []layoutShard `json:"shards"`
	Router      string        `json:"router"`
	Config      []string      `json:"config"`
}

type layoutShard struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

const anyPort = "127.0.0.1:0"

// Start starts a cluster. name ("source", "destination") prefixes its shard names.
func Start(ctx context.Context, name string, opts Options) (*Cluster, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// A bad release is refused before anything is written.
	if _, err := identityOf(opts); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	c := &Cluster{name: name, opts: opts, log: opts.Logger}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "shardlift-sandbox-"+name+"-")
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: create a temporary directory: %w", name, err)
		}
		c.dir, c.tempDir = dir, true
	} else {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", name, err)
		}
		c.dir = opts.Dir
	}
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	return c, nil
}

// identityOf is what the cluster's nodes report: the release's version and FCV unless
// the options override them.
func identityOf(opts Options) (wire.Identity, error) {
	id := opts.Identity
	rel := release.Default
	switch {
	case opts.MongoDBVersion != "":
		r, err := release.Parse(opts.MongoDBVersion)
		if err != nil {
			return id, err
		}
		if id.Version != "" && release.Of(id.Version) != r {
			return id, fmt.Errorf("the identity's version %s is not a MongoDB %s version", id.Version, r)
		}
		rel = r
	case id.Version != "":
		rel = release.Of(id.Version)
	}
	if id.Version == "" {
		id.Version = rel.Version()
	}
	if id.FCV == "" {
		id.FCV = rel.FCV()
	}
	return id, nil
}

func (c *Cluster) start(ctx context.Context) error {
	lay, err := readLayout(c.dir)
	if err != nil {
		return err
	}
	if c.opts.MongoDBVersion == "" && c.opts.Identity.Version == "" {
		// Unless told otherwise, a directory's cluster keeps its release.
		c.opts.MongoDBVersion = lay.release()
	}
	if c.opts.Identity, err = identityOf(c.opts); err != nil {
		return err
	}
	rel := c.opts.Identity.Release()
	if held := lay.release(); held != "" && held != rel.String() {
		return fmt.Errorf("%s holds a MongoDB %s cluster: start it with MongoDB version %s or use another directory", c.dir, held, held)
	}
	switch {
	case c.opts.ConfigShard && !rel.ConfigShard():
		return fmt.Errorf("a config shard needs MongoDB 8.0; this cluster presents %s", rel)
	case c.opts.ConfigShard && c.opts.LegacyConfigServers:
		return errors.New("a config shard is a replica set: it cannot be a legacy mirrored config server")
	case len(lay.Shards) > 0 && lay.ConfigShard != c.opts.ConfigShard:
		return fmt.Errorf("%s holds a cluster whose config server %s a shard: start it the same way or use another directory", c.dir,
			map[bool]string{true: "is", false: "is not"}[lay.ConfigShard])
	}
	n := c.opts.Shards
	switch {
	case len(lay.Shards) > 0 && n != 0 && n != len(lay.Shards):
		return fmt.Errorf("%s holds a %d-shard cluster: start it with %d shards or use another directory", c.dir, len(lay.Shards), len(lay.Shards))
	case len(lay.Shards) > 0:
		n = len(lay.Shards)
	case n == 0:
		n = 2
	}
	if lay.Name != "" && lay.Name != c.name {
		return fmt.Errorf("%s holds the %q cluster, not %q: use another directory", c.dir, lay.Name, c.name)
	}
	if c.opts.TLS || c.opts.X509 {
		if c.certs, err = loadOrCreateCerts(filepath.Join(c.dir, "tls")); err != nil {
			return err
		}
	}
	serverTLS := c.serverTLS()
	if c.opts.Auth != nil || c.external() != nil {
		c.internal = &wire.Credentials{User: "__system", Password: randomSecret()}
	}
	var shards []router.Shard
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		sname := fmt.Sprintf("%s-shard%d", c.name, i)
		addr := anyPort
		if i < len(lay.Shards) && lay.Shards[i].Name == sname {
			addr = lay.Shards[i].Addr
		}
		f, err := c.startShard(shard.Config{Name: sname, Addr: addr, Dir: filepath.Join(c.dir, sname)})
		if err != nil {
			return fmt.Errorf("start shard %s: %w", sname, err)
		}
		c.fronts = append(c.fronts, f)
		addr, members := c.advertiseShard(f, f.Name(), ".sandbox.invalid:27018")
		shards = append(shards, router.Shard{Name: f.Name(), Addr: addr, Members: members})
	}
	var cfgAddrs []string
	if c.opts.ConfigShard {
		addr := anyPort
		if len(lay.Config) > 0 {
			addr = lay.Config[0]
		}
		f, err := c.startShard(shard.Config{Name: "config", SetName: router.ConfigReplSet, ConfigServer: true, Addr: addr,
			Dir: filepath.Join(c.dir, "config-shard")})
		if err != nil {
			return fmt.Errorf("start the config shard: %w", err)
		}
		c.fronts = append(c.fronts, f)
		addr, members := c.advertiseShard(f, c.name+"-config", ".sandbox.invalid:27019")
		shards = append(shards, router.Shard{Name: f.Name(), Addr: addr, SetName: router.ConfigReplSet, Members: members})
		cfgAddrs = []string{f.Addr()}
	}
	if c.catalog, err = router.OpenCatalog(filepath.Join(c.dir, "config", "catalog.bson"), shards, c.opts.Identity, c.opts.Auth); err != nil {
		return err
	}
	if err := c.startConfigServers(lay, serverTLS, &cfgAddrs); err != nil {
		return err
	}
	named := make([]string, len(cfgAddrs))
	for i, a := range cfgAddrs {
		named[i] = c.advertise(a, fmt.Sprintf("%s-config%d.sandbox.invalid:27019", c.name, i))
	}
	if c.opts.LegacyConfigServers {
		c.cfgString = strings.Join(named, ",")
	} else {
		c.cfgString = router.ConfigReplSet + "/" + named[0]
	}
	c.catalog.SetConfigServers(c.cfgString)
	c.view.set(c.catalog)
	routerAddr := anyPort
	if lay.Router != "" {
		routerAddr = lay.Router
	}
	c.mu.addr = routerAddr
	if err := c.startRouter(); err != nil {
		return err
	}
	lay = layout{Name: c.name, Release: rel.String(), ConfigShard: c.opts.ConfigShard, Router: c.mu.addr, Config: cfgAddrs}
	for _, f := range c.fronts {
		if f.Name() != "config" {
			lay.Shards = append(lay.Shards, layoutShard{Name: f.Name(), Addr: f.Addr()})
		}
	}
	if c.opts.PrivateHostnames {
		if err := WriteHostMap(c.HostMapFile(), c); err != nil {
			return fmt.Errorf("write the host map: %w", err)
		}
	}
	c.log.Info("sandbox cluster started", "cluster", c.name, "router", c.mu.addr, "config", c.cfgString, "shards", n, "dir", c.dir)
	return writeLayout(c.dir, lay)
}

// startShard starts a shard front of the cluster, cfg naming it and its place.
func (c *Cluster) startShard(cfg shard.Config) (*shard.Front, error) {
	cfg.TLS = c.serverTLS()
	cfg.Credentials = c.opts.Auth
	cfg.Internal = c.internal
	cfg.External = c.external()
	cfg.Cluster = &c.view
	cfg.Identity = c.opts.Identity
	cfg.OplogSize = c.opts.OplogSize
	cfg.NoopInterval = c.opts.NoopInterval
	cfg.Members = c.opts.Members
	cfg.OplogHoles = c.opts.OplogHoles
	cfg.TxnOpsPerEntry = c.opts.TxnOpsPerEntry
	cfg.Latency = c.opts.Latency
	cfg.Logger = c.log.With("shard", cfg.Name)
	return shard.Start(cfg)
}

// membersOf is a shard's member addresses when it has more than one.
func membersOf(f *shard.Front) []string {
	if m := f.MemberAddrs(); len(m) > 1 {
		return m
	}
	return nil
}

// startConfigServers starts the dedicated config server(s), unless the config server
// is a config shard (whose address cfgAddrs already holds).
func (c *Cluster) startConfigServers(lay layout, serverTLS *tls.Config, cfgAddrs *[]string) error {
	if c.opts.ConfigShard {
		return nil
	}
	nCfg := 1
	if c.opts.LegacyConfigServers {
		nCfg = 3
	}
	c.cfgHandler = router.NewConfigServer(c.catalog, c.opts.Identity, c.opts.LegacyConfigServers)
	for i := range nCfg {
		addr := anyPort
		if i < len(lay.Config) {
			addr = lay.Config[i]
		}
		s, err := wire.Listen(wire.Config{Addr: addr, TLS: serverTLS, Credentials: c.opts.Auth, Mechanism: c.opts.Identity.Mechanism(),
			External: c.external(), Handler: c.cfgHandler, Latency: c.opts.Latency, Logger: c.log.With("node", "config")})
		if err != nil {
			return fmt.Errorf("start the config server: %w", err)
		}
		c.cfgServers = append(c.cfgServers, s)
		*cfgAddrs = append(*cfgAddrs, s.Addr())
	}
	c.cfgHandler.SetHosts((*cfgAddrs)[0], *cfgAddrs)
	return nil
}

func (c *Cluster) serverTLS() *tls.Config {
	if c.certs == nil {
		return nil
	}
	return c.certs.serverConfig(c.opts.X509)
}

// advertise is the address the cluster names a member listening on addr by: addr,
// or with PrivateHostnames the private name, which PrivateHosts maps back to addr.
func (c *Cluster) advertise(addr, private string) string {
	if !c.opts.PrivateHostnames {
		return addr
	}
	if c.private == nil {
		c.private = map[string]string{}
	}
	c.private[private] = addr
	return private
}

// advertiseShard is how config.shards names a shard's members: their addresses, or
// with PrivateHostnames private names (prefix and suffix around the member's index
// from the second on: "source-shard0.sandbox.invalid:27018",
// "source-shard0-1.sandbox.invalid:27018", ...). addr is the primary's; members is
// nil for a one-member set, as membersOf.
func (c *Cluster) advertiseShard(f *shard.Front, prefix, suffix string) (addr string, members []string) {
	private := func(i int) string {
		if i == 0 {
			return prefix + suffix
		}
		return fmt.Sprintf("%s-%d%s", prefix, i, suffix)
	}
	real := membersOf(f)
	if real == nil {
		addr = c.advertise(f.Addr(), private(0))
		c.nameMembers(f, map[string]string{f.Addr(): addr})
		return addr, nil
	}
	addr = f.Addr()
	names := map[string]string{}
	for i, m := range real {
		name := c.advertise(m, private(i))
		names[m] = name
		members = append(members, name)
		if m == f.Addr() {
			addr = name
		}
	}
	c.nameMembers(f, names)
	return addr, members
}

// nameMembers makes a shard's members name themselves by their private names in
// hello (hosts, primary, me) and replSetGetStatus, as a real set's members report
// the names of its configuration: a driver that found the set through a host map
// then discovers only names the map must translate too.
func (c *Cluster) nameMembers(f *shard.Front, names map[string]string) {
	if c.opts.PrivateHostnames {
		f.NameMembers(names)
	}
}

// privateDialer reaches the members of a cluster by their private names, as the
// cluster's own network resolves them for its mongos.
type privateDialer struct {
	names map[string]string // private name -> address
	d     net.Dialer
}

func (p *privateDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if addr, ok := p.names[address]; ok {
		address = addr
	}
	return p.d.DialContext(ctx, network, address)
}

// PrivateHosts maps each private name of a cluster started with PrivateHostnames to
// the address its member listens on; nil without PrivateHostnames.
func (c *Cluster) PrivateHosts() map[string]string { return maps.Clone(c.private) }

// HostMapFile is Dir/host-map.txt, the cluster's own host map (WriteHostMap) when
// it was started with PrivateHostnames.
func (c *Cluster) HostMapFile() string { return filepath.Join(c.dir, "host-map.txt") }

// WriteHostMap writes the private names of the clusters and their addresses to path
// in the format of shardlift's --host-map (INTERNAL=REACHABLE, one a line).
func WriteHostMap(path string, clusters ...*Cluster) error {
	var b strings.Builder
	b.WriteString("# shardlift sandbox: where this workstation reaches the members the clusters name privately\n")
	for _, c := range clusters {
		names := slices.Sorted(maps.Keys(c.private))
		for _, n := range names {
			fmt.Fprintf(&b, "%s=%s\n", n, c.private[n])
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// external are the cluster's users on $external, or nil without any.
func (c *Cluster) external() *wire.External {
	if !c.opts.X509 && c.opts.Plain == nil {
		return nil
	}
	e := &wire.External{Plain: c.opts.Plain}
	if c.opts.X509 && c.certs != nil {
		e.X509Subject = c.certs.clientSubject
	}
	return e
}

// startRouter starts the router on c.mu.addr (the caller holds c.mu or is Start).
func (c *Cluster) startRouter() error {
	rt, err := router.New(c.routerConfig())
	if err != nil {
		return err
	}
	s, err := wire.Listen(wire.Config{Addr: c.mu.addr, TLS: c.serverTLS(), Credentials: c.opts.Auth, Mechanism: c.opts.Identity.Mechanism(),
		External: c.external(), Handler: rt, Latency: c.opts.Latency, Logger: c.log.With("node", "router")})
	if err != nil {
		rt.Close()
		return fmt.Errorf("start the router: %w", err)
	}
	c.mu.router, c.mu.server, c.mu.addr = rt, s, s.Addr()
	rt.Register(s.Addr())
	return nil
}

// routerConfig is the configuration of a router of the cluster.
func (c *Cluster) routerConfig() router.Config {
	var shards []router.Shard
	for _, f := range c.fronts {
		s := router.Shard{Name: f.Name(), Addr: f.Addr(), Members: membersOf(f)}
		if f.Name() == "config" {
			s.SetName = router.ConfigReplSet
		}
		shards = append(shards, s)
	}
	return router.Config{
		Catalog:        c.catalog,
		Shards:         shards,
		ClientOptions:  c.shardClientOptions,
		Identity:       c.opts.Identity,
		Credentials:    c.opts.Auth,
		LeaveOrphans:   c.opts.LeaveOrphans,
		CommandLatency: c.opts.CommandLatency,
		Logger:         c.log.With("node", "router"),
	}
}

// shardClientOptions are the driver options the router uses to reach its shards: it
// authenticates as a cluster member, as a mongos does with the cluster's keyfile.
func (c *Cluster) shardClientOptions() *options.ClientOptions {
	o := options.Client()
	if a := c.internal; a != nil {
		o.SetAuth(options.Credential{AuthMechanism: c.opts.Identity.Mechanism(), AuthSource: "admin", Username: a.User, Password: a.Password})
	}
	if c.certs != nil {
		o.SetTLSConfig(c.certs.clientConfig())
	}
	if c.opts.PrivateHostnames {
		o.SetDialer(&privateDialer{names: c.PrivateHosts()})
	}
	return o
}

// release is the release the layout's cluster presents: 7.0 for a layout written
// before releases were recorded, "" for a new directory.
func (l layout) release() string {
	switch {
	case l.Release != "":
		return l.Release
	case l.Name != "":
		return release.V70.String()
	}
	return ""
}

// clusterView is what the shards know of their cluster: the catalog, once it is open
// (the shards start first, since the catalog records their addresses).
type clusterView struct {
	cat atomic.Pointer[router.Catalog]
}

func (v *clusterView) set(c *router.Catalog) { v.cat.Store(c) }

func (v *clusterView) ClusterID() primitive.ObjectID {
	if c := v.cat.Load(); c != nil {
		return c.ClusterID()
	}
	return primitive.NilObjectID
}

func (v *clusterView) ConfigServers() string {
	if c := v.cat.Load(); c != nil {
		return c.ConfigServers()
	}
	return ""
}

func (v *clusterView) ShardCount() int {
	if c := v.cat.Load(); c != nil {
		return c.ShardCount()
	}
	return 0
}

func (v *clusterView) ShardCollections(shard string, load func(db, name string) bool) []sysdb.Collection {
	if c := v.cat.Load(); c != nil {
		return c.ShardCollections(shard, load)
	}
	return nil
}

func (v *clusterView) ConfigServerCollections(load func(db, name string) bool) sysdb.Set {
	if c := v.cat.Load(); c != nil {
		return c.ConfigServerCollections(load)
	}
	return nil
}

// randomSecret is a password nobody needs to know.
func randomSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("sandbox: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func readLayout(dir string) (layout, error) {
	var l layout
	data, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return l, fmt.Errorf("%s/cluster.json is damaged (%w): remove it to start on new ports", dir, err)
	}
	return l, nil
}

func writeLayout(dir string, l layout) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".cluster.json.tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save the cluster layout: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "cluster.json")); err != nil {
		return fmt.Errorf("save the cluster layout: %w", err)
	}
	return nil
}

// URI is the router's connection string, with everything a client needs:
// mongodb://[user:pass@]127.0.0.1:port/[?tls=true&tlsCAFile=<path>
// [&tlsCertificateKeyFile=<path>&authMechanism=MONGODB-X509]][&authMechanism=PLAIN&authSource=$external].
func (c *Cluster) URI() string {
	u := url.URL{Scheme: "mongodb", Host: c.RouterAddr(), Path: "/"}
	var query []string
	switch {
	case c.opts.X509:
	case c.opts.Plain != nil:
		u.User = url.UserPassword(c.opts.Plain.User, c.opts.Plain.Password)
		query = append(query, "authMechanism=PLAIN", "authSource="+url.QueryEscape("$external"))
	case c.opts.Auth != nil:
		u.User = url.UserPassword(c.opts.Auth.User, c.opts.Auth.Password)
	}
	if c.certs != nil {
		query = append([]string{"tls=true", "tlsCAFile=" + url.QueryEscape(c.certs.caFile)}, query...)
	}
	if c.opts.X509 {
		query = append(query, "tlsCertificateKeyFile="+url.QueryEscape(c.certs.clientFile), "authMechanism=MONGODB-X509")
	}
	u.RawQuery = strings.Join(query, "&")
	return u.String()
}

// ClientCertFile is the PEM file (certificate and key) of the X.509 user the CA
// issued, or "" without TLS.
func (c *Cluster) ClientCertFile() string {
	if c.certs == nil {
		return ""
	}
	return c.certs.clientFile
}

// RouterAddr is the router's host:port.
func (c *Cluster) RouterAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.addr
}

// ConfigAddr is the (first) config server's host:port.
func (c *Cluster) ConfigAddr() string {
	if c.opts.ConfigShard {
		return c.fronts[len(c.fronts)-1].Addr()
	}
	return c.cfgServers[0].Addr()
}

// ConfigString is the config server connection string the router reports.
func (c *Cluster) ConfigString() string { return c.cfgString }

// CAFile is the CA certificate's path, or "" without TLS.
func (c *Cluster) CAFile() string {
	if c.certs == nil {
		return ""
	}
	return c.certs.caFile
}

// Dir is the cluster's data directory.
func (c *Cluster) Dir() string { return c.dir }

// Identity is the release personality every node of the cluster presents.
func (c *Cluster) Identity() wire.Identity { return c.opts.Identity }

// Shards lists the shards.
func (c *Cluster) Shards() []ShardInfo {
	out := make([]ShardInfo, len(c.fronts))
	for i, f := range c.fronts {
		out[i] = ShardInfo{Name: f.Name(), Addr: f.Addr(), Host: f.Host()}
	}
	return out
}

func (c *Cluster) front(name string) (*shard.Front, error) {
	for _, f := range c.fronts {
		if f.Name() == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("sandbox %s has no shard %q", c.name, name)
}

// StopShard stops a shard: its port refuses connections until RestartShard.
func (c *Cluster) StopShard(name string) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	return f.Stop()
}

// RestartShard starts a stopped shard again, on the same address with the same data.
func (c *Cluster) RestartShard(name string) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	return f.Restart()
}

// SetMemberOplogSize changes one member's oplog cap on a shard (member 0 is the
// first primary); shrinking it rolls that member's old entries off now.
func (c *Cluster) SetMemberOplogSize(name string, member int, bytes int64) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	return f.SetMemberOplogSize(member, bytes)
}

// SetOplogSize changes a shard's oplog cap; shrinking it rolls old entries off now.
func (c *Cluster) SetOplogSize(name string, bytes int64) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	f.SetOplogSize(bytes)
	return nil
}

// SetShardFault makes a shard refuse or swallow its clients' requests (or heals it).
func (c *Cluster) SetShardFault(name string, fault wire.Fault) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	return f.SetFault(fault)
}

// SetRouterFault makes the router refuse or swallow requests (or heals it).
func (c *Cluster) SetRouterFault(fault wire.Fault) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return errors.New("sandbox closed")
	}
	return c.mu.server.SetFault(fault)
}

// HoldCommits keeps the router's cross-shard commits waiting once every participant
// has prepared, until ReleaseCommits: the transactions stay prepared on their shards.
func (c *Cluster) HoldCommits() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.router.HoldCommits()
}

// ReleaseCommits lets the held commits go on, or with abort aborts them, prepared.
func (c *Cluster) ReleaseCommits(abort bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.router.ReleaseCommits(abort)
}

// HeldCommits is how many prepared transactions wait on the hold.
func (c *Cluster) HeldCommits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.router.HeldCommits()
}

// HoldChunkCommands makes the router's split, moveChunk and moveRange wait until
// release is called (a restarted router holds none).
func (c *Cluster) HoldChunkCommands() (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.router.HoldChunkCommands()
}

// HoldCommands keeps the router's commands matching h in flight, as a slow server
// would, until release: they then run, or with abort answer Interrupted without
// acting (router.HoldCommands). A restarted router holds none.
func (c *Cluster) HoldCommands(h router.CommandHold) (release func(abort bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.router.HoldCommands(h)
}

// HeldCommands are the commands waiting on a hold now.
func (c *Cluster) HeldCommands() []router.HeldCommand {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.router.HeldCommands()
}

// RestartRouter stops the router (its connections and cursors are lost) and starts
// it again on the same address, as a restarted mongos.
func (c *Cluster) RestartRouter() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return errors.New("sandbox closed")
	}
	c.mu.server.Close()
	c.mu.router.Close()
	if err := c.startRouter(); err != nil {
		return fmt.Errorf("sandbox %s: restart the router: %w", c.name, err)
	}
	return nil
}

// Close stops every node. A temporary directory is removed; a Dir is kept.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	var errs []error
	if c.mu.server != nil {
		errs = append(errs, c.mu.server.Close())
	}
	if c.mu.router != nil {
		errs = append(errs, c.mu.router.Close())
	}
	c.mu.Unlock()
	for _, s := range c.cfgServers {
		errs = append(errs, s.Close())
	}
	if c.cfgHandler != nil {
		c.cfgHandler.Close()
	}
	for _, f := range c.fronts {
		errs = append(errs, f.Close())
	}
	if c.tempDir {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

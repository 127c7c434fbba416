package topology

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/mongoerr"
)

// parallelism bounds how many shards, members and collections discovery inspects at
// once: enough to hide network latency, few enough not to load a production cluster.
const parallelism = 8

// Discover connects to the endpoint and finds out what it is. For a sharded cluster
// it reads the shards and their members, the config servers, versions and FCVs,
// databases, sharded collections with their chunks, the balancer state, each shard's
// oplog window, the collection inventory with sizes, users and roles, and the user's
// privileges. It changes nothing.
//
// A connection failure to the endpoint returns (nil, classified *Error). Once the
// endpoint answered, the Cluster is returned even when parts failed: an unreachable
// member is recorded in its Member.Err, anything else unreadable in Cluster.Problems.
// Malformed sharding metadata (a host string or a chunk Shardlift cannot use) is
// returned as a non-nil error (matching ErrMetadata) together with the Cluster.
//
// Every network step is bounded by the endpoint's Timeout; shards, members and
// collections are inspected concurrently.
//
// A discovery during which the endpoint closed connections (a mongos restarting) is
// run once more after a pause, so that a moment's restart does not read as a
// cluster with unreadable parts.
func Discover(ctx context.Context, e Endpoint) (*Cluster, error) {
	return discoverRetried(ctx, e, func(ctx context.Context, d *discovery) error {
		if err := d.identify(ctx); err != nil {
			return err
		}
		if d.c.Kind == KindMongos {
			d.sharded(ctx)
		}
		return nil
	})
}

// DiscoverIndexes reads only what a comparison of two clusters' indexes needs: the
// user collections and views and each collection's indexes, through the endpoint
// (no sizes, shards, chunks, users or privileges, which Discover reads too and which
// cost a full read of the data on some servers). Like Discover, it returns what it
// could not read in Cluster.Problems, and runs once more after a connection the
// server closed.
func DiscoverIndexes(ctx context.Context, e Endpoint) (*Cluster, error) {
	return discoverRetried(ctx, e, func(ctx context.Context, d *discovery) error {
		d.readNamespaces(ctx, false)
		return nil
	})
}

// discoverRetried runs read on a new connection to the endpoint, and once more after
// a pause when the server closed connections meanwhile.
func discoverRetried(ctx context.Context, e Endpoint, read func(context.Context, *discovery) error) (*Cluster, error) {
	c, err := discoverOnce(ctx, e, read)
	if !closedDuring(c, err) || pauseBeforeRetry(ctx) != nil {
		return c, err
	}
	return discoverOnce(ctx, e, read)
}

// closedDuring tells whether a discovery met a connection the server closed after
// connect had succeeded (connect retries its own).
func closedDuring(c *Cluster, err error) bool {
	var te *Error
	if errors.As(err, &te) && errors.Is(err, ErrConnectionClosed) {
		return te.Op != "connect"
	}
	if c == nil {
		return false
	}
	for _, p := range c.Problems {
		if errors.Is(p.Err, ErrConnectionClosed) {
			return true
		}
	}
	return false
}

func discoverOnce(ctx context.Context, e Endpoint, read func(context.Context, *discovery) error) (*Cluster, error) {
	start := time.Now()
	client, s, err := connect(ctx, e)
	if err != nil {
		return nil, err
	}
	defer disconnect(ctx, client, e.timeout())
	d := &discovery{e: e, s: s, client: client, c: &Cluster{Endpoint: e.String()}}
	if err := read(ctx, d); err != nil {
		return nil, err
	}
	d.c.Elapsed = time.Since(start)
	return d.c, errors.Join(d.malformed...)
}

// disconnect closes a client without letting a dead server hold the caller.
func disconnect(ctx context.Context, client *mongo.Client, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	_ = client.Disconnect(ctx)
}

// discovery is one Discover call's state. Each concurrent task writes its own part
// of the Cluster; only the shared lists below are guarded by mu.
type discovery struct {
	e      Endpoint
	s      *settings
	client *mongo.Client
	c      *Cluster

	mu        sync.Mutex
	malformed []error
}

func (d *discovery) problem(ctx context.Context, part string, err error) {
	// Problem.Error names the part; the classified error need not repeat it.
	err = classify(ctx, "", "", d.s.tlsOn, d.e.timeout()/2, err)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.c.Problems = append(d.c.Problems, Problem{Part: part, Err: err})
}

func (d *discovery) malformedMetadata(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.malformed = append(d.malformed, err)
}

// command runs one command on the endpoint, bounded by the timeout.
func (d *discovery) command(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
	return runCommand(ctx, d.client, d.e.timeout(), db, cmd)
}

func runCommand(ctx context.Context, client *mongo.Client, timeout time.Duration, db string, cmd bson.D) (bson.Raw, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return client.Database(db).RunCommand(ctx, cmd).Raw()
}

// identify asks the endpoint what it is, and its version and FCV.
func (d *discovery) identify(ctx context.Context) error {
	hello, err := helloOf(ctx, d.client, d.e.timeout())
	if err != nil {
		return classify(ctx, "hello", "", d.s.tlsOn, d.e.timeout()/2, err)
	}
	switch {
	case str(hello, "msg") == "isdbgrid":
		d.c.Kind = KindMongos
	case str(hello, "setName") != "":
		d.c.Kind, d.c.SetName = KindReplicaSet, str(hello, "setName")
	default:
		d.c.Kind = KindStandalone
	}
	d.c.Router.Host = str(hello, "me")
	if d.c.Router.Host == "" && len(d.s.hosts) > 0 {
		d.c.Router.Host = d.s.hosts[0]
	}
	d.c.Router.Version, d.c.Router.FCV, err = versionOf(ctx, d.client, d.e.timeout())
	if err != nil {
		return classify(ctx, "buildInfo", d.c.Router.Host, d.s.tlsOn, d.e.timeout()/2, err)
	}
	if d.s.username == "" {
		if err := loginNeeded(ctx, d.client, d.e.timeout()); err != nil {
			return &Error{Kind: ErrAuthRequired, Host: d.c.Router.Host, Op: "connect", Err: err}
		}
	}
	if d.c.Access, err = readAccessWithin(ctx, d.client, d.e.timeout()); err != nil {
		d.problem(ctx, PartAccess, err)
	}
	return nil
}

// helloOf runs hello, or isMaster on servers older than 4.4.2 that lack it.
func helloOf(ctx context.Context, client *mongo.Client, timeout time.Duration) (bson.Raw, error) {
	reply, err := runCommand(ctx, client, timeout, "admin", bson.D{{Key: "hello", Value: 1}})
	if err != nil && isCommandNotFound(err) {
		reply, err = runCommand(ctx, client, timeout, "admin", bson.D{{Key: "isMaster", Value: 1}})
	}
	return reply, err
}

// loginNeeded returns the server's refusal when it enforces authentication for a
// client that gave no user, else nil. Such a server answers hello, ping and buildInfo
// before a login and refuses every other command as Unauthorized (code 13): without
// this probe, each part of discovery would fail as a missing privilege of a user
// that was never named.
func loginNeeded(ctx context.Context, client *mongo.Client, timeout time.Duration) error {
	_, err := runCommand(ctx, client, timeout, "admin", bson.D{{Key: "listDatabases", Value: 1}, {Key: "nameOnly", Value: true}})
	if mongoerr.HasCode(err, codeUnauthorized) {
		return err
	}
	return nil
}

// versionOf reads buildInfo's version and the FCV; a server that does not report its
// FCV (mongos) gets "".
func versionOf(ctx context.Context, client *mongo.Client, timeout time.Duration) (version, fcv string, err error) {
	info, err := runCommand(ctx, client, timeout, "admin", bson.D{{Key: "buildInfo", Value: 1}})
	if err != nil {
		return "", "", err
	}
	version = str(info, "version")
	param, err := runCommand(ctx, client, timeout, "admin", bson.D{{Key: "getParameter", Value: 1}, {Key: "featureCompatibilityVersion", Value: 1}})
	if err == nil {
		v := param.Lookup("featureCompatibilityVersion")
		if doc, ok := v.DocumentOK(); ok {
			fcv = str(doc, "version")
		} else {
			fcv, _ = v.StringValueOK()
		}
	}
	return version, fcv, nil
}

// sharded discovers everything behind a mongos: first the shards and config servers
// (the member probes need them), then every other part concurrently.
func (d *discovery) sharded(ctx context.Context) {
	var first errgroup.Group
	first.Go(func() error { d.listShards(ctx); return nil })
	first.Go(func() error { d.configString(ctx); return nil })
	_ = first.Wait()

	var g errgroup.Group
	g.SetLimit(parallelism)
	for i := range d.c.Shards {
		g.Go(func() error { d.inspectShard(ctx, &d.c.Shards[i]); return nil })
	}
	if len(d.c.ConfigServers.Hosts) > 0 {
		g.Go(func() error { d.inspectConfigServers(ctx); return nil })
	}
	g.Go(func() error { d.readDatabases(ctx); return nil })
	g.Go(func() error { d.readCollections(ctx); return nil })
	g.Go(func() error { d.readZones(ctx); return nil })
	g.Go(func() error { d.readBalancer(ctx); return nil })
	g.Go(func() error { d.readInventory(ctx); return nil })
	g.Go(func() error { d.readUsers(ctx); return nil })
	var clusterID primitive.ObjectID
	g.Go(func() error {
		var err error
		if clusterID, err = readClusterID(ctx, d.client, d.e.timeout()); err != nil {
			d.problem(ctx, PartClusterID, err)
		}
		return nil
	})
	g.Go(func() error { d.readMarker(ctx); return nil })
	_ = g.Wait()
	d.c.Identity = Identity{ClusterID: clusterID, Shards: shardHosts(d.c.Shards), Routers: normalHosts(d.s.hosts)}

	sharded := map[string]bool{}
	for _, c := range d.c.Collections {
		sharded[c.Namespace] = c.Sharded()
	}
	for i := range d.c.Namespaces {
		d.c.Namespaces[i].Sharded = sharded[d.c.Namespaces[i].Name()]
	}
}

// readMarker reads Shardlift's marker, if a migration into this cluster left one.
func (d *discovery) readMarker(ctx context.Context) {
	mctx, cancel := context.WithTimeout(ctx, d.e.timeout())
	defer cancel()
	m, err := ReadMarker(mctx, d.client)
	if err != nil {
		d.problem(ctx, PartMarker, err)
		return
	}
	d.c.Marker = m
}

func readAccessWithin(ctx context.Context, client *mongo.Client, timeout time.Duration) (Access, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return readAccess(ctx, client)
}

// listShards reads the shards and parses their host strings strictly.
func (d *discovery) listShards(ctx context.Context) {
	reply, err := d.command(ctx, "admin", bson.D{{Key: "listShards", Value: 1}})
	if err != nil {
		d.problem(ctx, PartShards, err)
		return
	}
	shards, err := parseShards(reply)
	if err != nil {
		d.malformedMetadata(err)
	}
	d.c.Shards = shards
}

// parseShards reads listShards' reply, config.shards' documents: {_id, host,
// state, draining, tags (its zones), maxSize (until 5.x), topologyTime (5.0+)}.
// From 8.0 a config server that also holds data (a config shard) is listed as
// the shard named "config" with the config servers as its hosts: it is a shard
// like any other for the migration. A shard whose host string does not parse is
// left out and reported.
func parseShards(reply bson.Raw) ([]Shard, error) {
	arr, ok := reply.Lookup("shards").ArrayOK()
	if !ok {
		return nil, &MetadataError{Where: "listShards", Reason: "the reply has no shards array"}
	}
	values, _ := arr.Values()
	var shards []Shard
	var errs []error
	for _, v := range values {
		doc, ok := v.DocumentOK()
		if !ok {
			errs = append(errs, &MetadataError{Where: "listShards", Reason: "a shard entry is not a document"})
			continue
		}
		name, host := str(doc, "_id"), str(doc, "host")
		if name == "" {
			errs = append(errs, &MetadataError{Where: "listShards", Reason: fmt.Sprintf("a shard has no _id (host %q)", host)})
			continue
		}
		setName, hosts, err := ParseHostString(host)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", name, err))
			continue
		}
		sh := Shard{Name: name, SetName: setName, Hosts: hosts, Draining: isTrue(doc.Lookup("draining"))}
		if tags, ok := doc.Lookup("tags").ArrayOK(); ok {
			values, _ := tags.Values()
			for _, v := range values {
				if zone, ok := v.StringValueOK(); ok {
					sh.Zones = append(sh.Zones, zone)
				}
			}
		}
		shards = append(shards, sh)
	}
	return shards, errors.Join(errs...)
}

// configString finds the config servers' connection string: serverStatus on mongos,
// else getShardMap.
func (d *discovery) configString(ctx context.Context) {
	var conn string
	status, err := d.command(ctx, "admin", bson.D{{Key: "serverStatus", Value: 1}})
	if err == nil {
		if sharding, ok := status.Lookup("sharding").DocumentOK(); ok {
			conn = str(sharding, "configsvrConnectionString")
		}
	}
	if conn == "" {
		m, mapErr := d.command(ctx, "admin", bson.D{{Key: "getShardMap", Value: 1}})
		if mapErr != nil {
			d.problem(ctx, PartConfigServers, errors.Join(err, mapErr))
			return
		}
		if doc, ok := m.Lookup("map").DocumentOK(); ok {
			conn = str(doc, "config")
		}
	}
	if conn == "" {
		d.problem(ctx, PartConfigServers, errors.New("neither serverStatus nor getShardMap reports the config server connection string"))
		return
	}
	setName, hosts, err := ParseHostString(conn)
	if err != nil {
		d.malformedMetadata(fmt.Errorf("config servers: %w", err))
		return
	}
	d.c.ConfigServers = ConfigServers{ConnString: conn, SetName: setName, Hosts: hosts, Legacy: setName == ""}
}

// inspectShard probes every member of a shard, then reads the primary's oplog
// window and the user's privileges there.
func (d *discovery) inspectShard(ctx context.Context, sh *Shard) {
	members, primary := d.inspectMembers(ctx, sh.Hosts)
	defer members.close(ctx, d.e.timeout())
	sh.Members = members.list
	sh.Version, sh.FCV = members.version()
	if primary < 0 {
		sh.Oplog.Err = fmt.Errorf("no member of shard %s answered as primary", sh.Name)
		for _, m := range sh.Members {
			if m.Primary && m.Err != nil {
				sh.Oplog.Err = fmt.Errorf("the primary of shard %s could not be inspected: %w", sh.Name, m.Err)
				break
			}
		}
		return
	}
	sh.Primary = sh.Members[primary].Host
	client := members.clients[primary]
	sh.Oplog = readOplog(ctx, client, d.e.timeout())
	if sh.Oplog.Err != nil {
		sh.Oplog.Err = classify(ctx, "read the oplog of shard "+sh.Name+" on", sh.Primary, d.s.tlsOn, d.e.timeout()/2, sh.Oplog.Err)
	}
	for i := range sh.Members {
		switch m := &sh.Members[i]; {
		case i == primary:
			m.Oplog = sh.Oplog
		case m.Err == nil && members.clients[i] != nil:
			m.Oplog = readOplog(ctx, members.clients[i], d.e.timeout())
		default:
			m.Oplog.Err = fmt.Errorf("member %s did not answer", m.Host)
		}
	}
	a, err := readAccessWithin(ctx, client, d.e.timeout())
	if err != nil {
		d.problem(ctx, PartAccess+" on shard "+sh.Name, err)
	}
	sh.Access = a
	if sh.DataBytes, sh.IndexBytes, err = dataBytes(ctx, client, d.e.timeout()); err != nil {
		d.problem(ctx, PartSizes+" on shard "+sh.Name, err)
	} else {
		sh.DataBytesKnown = true
	}
}

// dataBytes sums dbStats' dataSize and indexSize over the user databases of one
// server.
func dataBytes(ctx context.Context, client *mongo.Client, timeout time.Duration) (data, index int64, err error) {
	dbs, err := listDatabases(ctx, client, timeout)
	if err != nil {
		return 0, 0, err
	}
	for _, db := range dbs {
		stats, err := runCommand(ctx, client, timeout, db, bson.D{{Key: "dbStats", Value: 1}})
		if err != nil {
			return 0, 0, fmt.Errorf("dbStats of %s: %w", db, err)
		}
		size, ok := asInt64(stats.Lookup("dataSize"))
		if !ok {
			return 0, 0, fmt.Errorf("dbStats of %s has no dataSize", db)
		}
		indexes, _ := asInt64(stats.Lookup("indexSize"))
		data, index = data+size, index+indexes
	}
	return data, index, nil
}

func (d *discovery) inspectConfigServers(ctx context.Context) {
	members, _ := d.inspectMembers(ctx, d.c.ConfigServers.Hosts)
	members.close(ctx, d.e.timeout())
	d.c.ConfigServers.Members = members.list
	d.c.ConfigServers.Version, d.c.ConfigServers.FCV = members.version()
}

// probed are the members of one replica set and their open clients (nil for the
// members that did not answer).
type probed struct {
	list    []Member
	clients []*mongo.Client
}

// close disconnects the members' clients.
func (p probed) close(ctx context.Context, timeout time.Duration) {
	for _, c := range p.clients {
		if c != nil {
			disconnect(ctx, c, timeout)
		}
	}
}

// version is the primary's version and FCV, else the first answering member's.
func (p probed) version() (string, string) {
	for _, m := range p.list {
		if m.Primary {
			return m.Version, m.FCV
		}
	}
	for _, m := range p.list {
		if m.Err == nil && m.Version != "" {
			return m.Version, m.FCV
		}
	}
	return "", ""
}

// inspectMembers connects to every host directly with the endpoint's credentials and
// returns them with the index of the first that answered as primary (-1 for none).
func (d *discovery) inspectMembers(ctx context.Context, hosts []string) (probed, int) {
	p := probed{list: make([]Member, len(hosts)), clients: make([]*mongo.Client, len(hosts))}
	var g errgroup.Group
	for i, h := range hosts {
		g.Go(func() error {
			p.list[i], p.clients[i] = probeMember(ctx, d.e.ForHosts([]string{h}, ""), h)
			return nil
		})
	}
	_ = g.Wait()
	primary := -1
	for i, m := range p.list {
		// A primary whose probe failed after hello has no client to read through.
		if m.Primary && p.clients[i] != nil && primary < 0 {
			primary = i
		}
	}
	return p, primary
}

// probeMember connects to one server directly and reads its role and version. The
// client is returned open (nil on failure) for the caller to reuse and close.
// tagsOf reads hello's tags (nil when none).
func tagsOf(hello bson.Raw) map[string]string {
	doc, ok := hello.Lookup("tags").DocumentOK()
	if !ok {
		return nil
	}
	elems, _ := doc.Elements()
	out := map[string]string{}
	for _, e := range elems {
		if v, ok := e.Value().StringValueOK(); ok {
			out[e.Key()] = v
		}
	}
	return out
}

func probeMember(ctx context.Context, e Endpoint, host string) (Member, *mongo.Client) {
	m := Member{Node: Node{Host: host}}
	client, s, err := connect(ctx, e)
	if err != nil {
		m.Err = err
		return m, nil
	}
	hello, err := helloOf(ctx, client, e.timeout())
	if err == nil {
		m.SetName = str(hello, "setName")
		m.Primary = isTrue(hello.Lookup("isWritablePrimary")) || isTrue(hello.Lookup("ismaster"))
		m.Secondary = isTrue(hello.Lookup("secondary"))
		m.Tags = tagsOf(hello)
		if ms, ok := hello.Lookup("lastWrite", "lastWriteDate").DateTimeOK(); ok {
			m.LastWrite = time.UnixMilli(ms)
		}
		m.Version, m.FCV, err = versionOf(ctx, client, e.timeout())
	}
	if err != nil {
		m.Err = classify(ctx, "inspect", host, s.tlsOn, e.timeout()/2, err)
		disconnect(ctx, client, e.timeout())
		return m, nil
	}
	return m, client
}

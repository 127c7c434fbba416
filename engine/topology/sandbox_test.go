package topology_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Discovery against real servers: the sandbox, or the cluster named by
// SHARDLIFT_TEST_SOURCE_URI (a test database is created there and dropped after).

const testTimeout = 5 * time.Second

// source returns the cluster under test and, on the sandbox, its handle.
func source(t *testing.T, opts sandbox.Options) (topology.Endpoint, *sandbox.Cluster) {
	t.Helper()
	if uri := os.Getenv("SHARDLIFT_TEST_SOURCE_URI"); uri != "" {
		return topology.Endpoint{URI: uri, Timeout: testTimeout}, nil
	}
	opts.Dir = t.TempDir()
	c, err := sandbox.Start(context.Background(), "source", opts)
	if err != nil {
		t.Fatalf("start the sandbox: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return topology.Endpoint{URI: c.URI(), Timeout: testTimeout}, c
}

func connect(t *testing.T, e topology.Endpoint) *mongo.Client {
	t.Helper()
	client, err := topology.Connect(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client
}

func must(t *testing.T, client *mongo.Client, cmd bson.D) {
	t.Helper()
	if err := client.Database("admin").RunCommand(context.Background(), cmd).Err(); err != nil {
		t.Fatalf("%v: %v", cmd, err)
	}
}

func TestDiscoverReadsEveryPartOfAShardedCluster(t *testing.T) {
	e, sb := source(t, sandbox.Options{Shards: 2, Auth: &wire.Credentials{User: "migrator", Password: "pw-1234"}, TLS: true})
	ctx := context.Background()
	before, err := topology.Discover(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if before.Kind != topology.KindMongos || len(before.Shards) < 2 {
		t.Fatalf("kind %s with %d shards; want a mongos with at least 2 shards", before.Kind, len(before.Shards))
	}

	// A sharded collection with one chunk on each of two shards, and an unsharded one.
	db := fmt.Sprintf("shardlift_discover_%d", time.Now().UnixNano())
	client := connect(t, e)
	t.Cleanup(func() { client.Database(db).Drop(context.Background()) })
	last := before.Shards[len(before.Shards)-1].Name
	must(t, client, bson.D{{Key: "enableSharding", Value: db}})
	must(t, client, bson.D{{Key: "shardCollection", Value: db + ".orders"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	docs := make([]any, 20)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}}
	}
	if _, err := client.Database(db).Collection("orders").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	must(t, client, bson.D{{Key: "split", Value: db + ".orders"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 10}}}})
	must(t, client, bson.D{{Key: "moveChunk", Value: db + ".orders"}, {Key: "find", Value: bson.D{{Key: "k", Value: 15}}}, {Key: "to", Value: last}})
	if _, err := client.Database(db).Collection("carts").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}

	c, err := topology.Discover(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Problems {
		t.Logf("problem: %v", p)
	}
	if c.Router.Version == "" || c.Router.Host == "" {
		t.Errorf("router = %+v", c.Router)
	}
	for _, sh := range c.Shards {
		if sh.Primary == "" || sh.Version == "" || sh.FCV == "" {
			t.Errorf("shard %s: primary %q version %q FCV %q", sh.Name, sh.Primary, sh.Version, sh.FCV)
		}
		for _, m := range sh.Members {
			if m.Err != nil || m.SetName != sh.SetName {
				t.Errorf("shard %s member %s: set %q, err %v", sh.Name, m.Host, m.SetName, m.Err)
			}
		}
		if sh.Oplog.Err != nil || sh.Oplog.Last.T == 0 || sh.Oplog.Last.Compare(sh.Oplog.First) < 0 {
			t.Errorf("shard %s oplog %+v", sh.Name, sh.Oplog)
		}
		if !sh.Access.Known {
			t.Errorf("shard %s: privileges unknown", sh.Name)
		}
	}
	cs := c.ConfigServers
	if cs.Legacy || cs.SetName == "" || len(cs.Members) == 0 || cs.FCV == "" {
		t.Errorf("config servers = %+v", cs)
	}
	for _, m := range cs.Members {
		if m.Err != nil {
			t.Errorf("config server %s: %v", m.Host, m.Err)
		}
	}
	var coll *topology.Collection
	for i := range c.Collections {
		if c.Collections[i].Namespace == db+".orders" {
			coll = &c.Collections[i]
		}
	}
	if coll == nil {
		t.Fatalf("%s.orders not among the sharded collections %v", db, c.Collections)
	}
	if len(coll.Key) != 1 || coll.Key[0].Key != "k" || len(coll.Chunks) != 2 || len(coll.ChunksOn(last)) != 1 {
		t.Errorf("%s.orders: key %v, chunks %v", db, coll.Key, coll.Chunks)
	}
	primary := ""
	for _, d := range c.Databases {
		if d.Name == db {
			primary = d.Primary
		}
	}
	if primary == "" {
		t.Errorf("config.databases has no primary for %s: %v", db, c.Databases)
	}
	kinds := map[string]topology.Namespace{}
	for _, ns := range c.Namespaces {
		if ns.DB == db {
			kinds[ns.Collection] = ns
		}
	}
	if o, ok := kinds["orders"]; !ok || !o.Sharded || o.Type != "collection" || o.Count != 20 {
		t.Errorf("orders in the inventory = %+v", o)
	}
	indexes := map[string]bool{}
	for _, spec := range kinds["orders"].Indexes {
		indexes[spec.Lookup("name").StringValue()] = true
	}
	if !indexes["_id_"] || !indexes["k_1"] {
		t.Errorf("indexes of orders in the inventory: %v, want _id_ and the shard key's k_1", kinds["orders"].Indexes)
	}
	if ca, ok := kinds["carts"]; !ok || ca.Sharded || ca.Count != 1 {
		t.Errorf("carts in the inventory = %+v", ca)
	}
	if c.Balancer.From == "" || c.Balancer.Mode == "" {
		t.Errorf("balancer = %+v", c.Balancer)
	}
	if sb != nil {
		if !c.Access.Known || len(c.Access.Users) != 1 || c.Access.Users[0] != "migrator@admin" {
			t.Errorf("access = %+v", c.Access)
		}
		if len(c.Users) != 1 || c.Users[0].Name != "migrator" {
			t.Errorf("users = %+v", c.Users)
		}
		if strings.Contains(fmt.Sprintf("%+v", c), "pw-1234") {
			t.Error("the discovered cluster holds the password")
		}
		for i, sh := range c.Shards {
			want := sb.Shards()[i]
			if sh.Name != want.Name || len(sh.Hosts) != 1 || sh.Hosts[0] != want.Addr || sh.Primary != want.Addr {
				t.Errorf("shard %d = %s %v primary %s; want %s at %s", i, sh.Name, sh.Hosts, sh.Primary, want.Name, want.Addr)
			}
		}
		if cs.Members[0].Host != sb.ConfigAddr() || cs.ConnString != sb.ConfigString() {
			t.Errorf("config servers %s (%s), want %s", cs.ConnString, cs.Members[0].Host, sb.ConfigString())
		}
		want := sb.Identity().Version
		if sh := c.Shards[0]; sh.Version != want || sh.FCV != "7.0" || c.Router.Version != want {
			t.Errorf("versions: router %s shard %s/%s", c.Router.Version, sh.Version, sh.FCV)
		}
	}
}

func TestDiscoverReadsTheBalancerState(t *testing.T) {
	e, _ := source(t, sandbox.Options{Shards: 1})
	client := connect(t, e)
	ctx := context.Background()
	before, err := topology.Discover(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if before.Balancer.Enabled {
		must(t, client, bson.D{{Key: "balancerStop", Value: 1}})
		t.Cleanup(func() { must(t, client, bson.D{{Key: "balancerStart", Value: 1}}) })
	} else {
		must(t, client, bson.D{{Key: "balancerStart", Value: 1}})
		t.Cleanup(func() { must(t, client, bson.D{{Key: "balancerStop", Value: 1}}) })
	}
	after, err := topology.Discover(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if after.Balancer.Enabled == before.Balancer.Enabled {
		t.Errorf("balancer enabled %v before and after switching it", before.Balancer.Enabled)
	}
}

func TestDiscoverRecordsAStoppedShardMember(t *testing.T) {
	e, sb := source(t, sandbox.Options{Shards: 2})
	if sb == nil {
		t.Skip("stopping a shard needs the sandbox")
	}
	down := sb.Shards()[1]
	if err := sb.StopShard(down.Name); err != nil {
		t.Fatal(err)
	}
	c, err := topology.Discover(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	sh := c.Shards[1]
	if sh.Name != down.Name || len(sh.Members) != 1 || !errors.Is(sh.Members[0].Err, topology.ErrRefused) || sh.Primary != "" {
		t.Fatalf("stopped shard = %+v", sh)
	}
	if c.Shards[0].Members[0].Err != nil || c.Shards[0].Primary == "" {
		t.Errorf("the running shard was affected: %+v", c.Shards[0])
	}
}

func TestDiscoverTellsAReplicaSetMemberFromAMongos(t *testing.T) {
	e, _ := source(t, sandbox.Options{Shards: 1})
	c, err := topology.Discover(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	member, err := topology.Discover(context.Background(), e.ForHosts(c.Shards[0].Hosts[:1], ""))
	if err != nil {
		t.Fatal(err)
	}
	if member.Kind != topology.KindReplicaSet || member.SetName != c.Shards[0].SetName || len(member.Shards) != 0 {
		t.Errorf("a shard member discovered as %s %q with %d shards", member.Kind, member.SetName, len(member.Shards))
	}
}

func TestLegacyConfigServersAreRecognised(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("legacy config servers need the sandbox")
	}
	e, sb := source(t, sandbox.Options{Shards: 1, LegacyConfigServers: true})
	c, err := topology.Discover(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ConfigServers.Legacy || c.ConfigServers.SetName != "" || len(c.ConfigServers.Hosts) != 3 || c.ConfigServers.ConnString != sb.ConfigString() {
		t.Errorf("config servers = %+v; want three legacy mirrored ones", c.ConfigServers)
	}
}

func TestASilentShardCostsAtMostItsTimeouts(t *testing.T) {
	e, sb := source(t, sandbox.Options{Shards: 2})
	if sb == nil {
		t.Skip("silencing a shard needs the sandbox")
	}
	silent := sb.Shards()[1]
	if err := sb.SetShardFault(silent.Name, wire.Blackhole); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.SetShardFault(silent.Name, wire.Healthy) })
	e.Timeout = time.Second
	start := time.Now()
	c, err := topology.Discover(context.Background(), e)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Shards[1].Members[0]; !errors.Is(m.Err, topology.ErrTimeout) {
		t.Errorf("silent member error %v; want ErrTimeout", m.Err)
	}
	// Every step waits at most the timeout and steps run concurrently: a silent host
	// costs seconds, never minutes. The bound is loose on purpose (slow machines).
	if elapsed > 30*time.Second {
		t.Errorf("discovery with a silent shard took %v with a 1s timeout", elapsed)
	}
}

// A cluster's identity is config.version's clusterId, which the cluster keeps for
// life (a restart of the sandbox keeps it too), plus its shards and mongos.
func TestIdentityIsTheClusterIDItKeepsAcrossRestarts(t *testing.T) {
	e, sb := source(t, sandbox.Options{Shards: 2})
	ctx := context.Background()
	id, err := topology.ReadIdentity(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if id.ClusterID.IsZero() || len(id.Shards) == 0 || len(id.Routers) == 0 {
		t.Fatalf("identity %+v", id)
	}
	c, err := topology.Discover(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if o := topology.Compare(c.Identity, id); !o.SameClusterID || len(o.Hosts) < len(id.Routers)+len(id.Shards) {
		t.Fatalf("discovery's identity %v differs from ReadIdentity's %v", c.Identity, id)
	}
	if sb == nil {
		return // a real cluster: the rest restarts the sandbox
	}
	for i, sh := range sb.Shards() {
		if id.Shards[i].Name != sh.Name || len(id.Shards[i].Hosts) != 1 || id.Shards[i].Hosts[0] != sh.Addr {
			t.Errorf("shard %d: %+v, want %s at %s", i, id.Shards[i], sh.Name, sh.Addr)
		}
	}
	dir := sb.Dir()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sandbox.Start(ctx, "source", sandbox.Options{Shards: 2, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	restarted, err := topology.ReadIdentity(ctx, topology.Endpoint{URI: again.URI(), Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if restarted.ClusterID != id.ClusterID {
		t.Fatalf("clusterId %s after a restart, was %s", restarted.ClusterID.Hex(), id.ClusterID.Hex())
	}
	other, _ := source(t, sandbox.Options{Shards: 2})
	otherID, err := topology.ReadIdentity(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if o := topology.Compare(id, otherID); o.Any() {
		t.Fatalf("two sandboxes share %s", o.Describe())
	}
}

// The index comparison's discovery reads every collection's indexes as Discover
// does, and nothing of their data: no sizes (a collStats on a server that counts by
// reading), no shards, chunks or users.
func TestDiscoverIndexesReadsTheIndexesAndNoSizes(t *testing.T) {
	e, _ := source(t, sandbox.Options{Shards: 2})
	ctx := context.Background()
	client := connect(t, e)
	db := fmt.Sprintf("shardlift_indexes_%d", time.Now().UnixNano())
	t.Cleanup(func() { client.Database(db).Drop(context.Background()) })
	if _, err := client.Database(db).Collection("people").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "email", Value: "a@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Database(db).Collection("people").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	full, err := topology.Discover(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	light, err := topology.DiscoverIndexes(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if len(light.Problems) > 0 {
		t.Fatalf("problems: %v", light.Problems)
	}
	if len(light.Shards) > 0 || len(light.Collections) > 0 || len(light.Users) > 0 {
		t.Errorf("read %d shards, %d sharded collections, %d users: more than the indexes", len(light.Shards), len(light.Collections), len(light.Users))
	}
	byName := map[string]topology.Namespace{}
	for _, n := range full.Namespaces {
		byName[n.Name()] = n
	}
	if len(light.Namespaces) != len(full.Namespaces) {
		t.Fatalf("%d namespaces, Discover %d", len(light.Namespaces), len(full.Namespaces))
	}
	for _, n := range light.Namespaces {
		f, ok := byName[n.Name()]
		if !ok || n.Type != f.Type || len(n.Indexes) != len(f.Indexes) {
			t.Errorf("%s: type %q, %d indexes; Discover: %v type %q, %d indexes", n.Name(), n.Type, len(n.Indexes), ok, f.Type, len(f.Indexes))
		}
		for i := range n.Indexes {
			if !bytes.Equal(n.Indexes[i], f.Indexes[i]) {
				t.Errorf("%s index %d: %s, Discover %s", n.Name(), i, n.Indexes[i], f.Indexes[i])
			}
		}
		if n.SizeKnown {
			t.Errorf("%s: size read (%d documents)", n.Name(), n.Count)
		}
	}
	if p, ok := byName[db+".people"]; !ok || !p.SizeKnown || len(p.Indexes) != 2 {
		t.Fatalf("Discover's %s.people: %+v", db, p)
	}
}

package sandbox

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Points 5 and 6, and the cluster's life cycle.

func TestStopRestartAndIsolateAShard(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := shardedCollection(t, c, cl, bson.D{{Key: "k", Value: 1}})
	splitAndMove(t, cl)
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "k", Value: 1}}, bson.D{{Key: "k", Value: 70}}}); err != nil {
		t.Fatal(err)
	}
	second := c.Shards()[1].Name
	if err := c.StopShard(second); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", c.Shards()[1].Addr, time.Second); err == nil {
		t.Error("a stopped shard accepts connections")
	}
	if got := findAll(t, coll, bson.D{{Key: "k", Value: 1}}); len(got) != 1 {
		t.Errorf("a read targeted at the running shard returned %d documents", len(got))
	}
	_, err := coll.Find(ctx, bson.D{{Key: "k", Value: 70}})
	if err == nil || !strings.Contains(err.Error(), second) {
		t.Errorf("a read targeted at the stopped shard: %v, want an error naming %s", err, second)
	}
	if err := c.RestartShard(second); err != nil {
		t.Fatal(err)
	}
	if got := findAll(t, coll, bson.D{}); len(got) != 2 {
		t.Errorf("after the restart the router reads %d documents, want 2", len(got))
	}

	if err := c.SetShardFault(second, wire.Blackhole); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := coll.InsertOne(short, bson.D{{Key: "k", Value: 71}}); err == nil {
		t.Error("an insert into an unreachable shard succeeded")
	}
	if err := c.SetShardFault(second, wire.Healthy); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "k", Value: 72}}); err != nil {
		t.Errorf("after healing: %v", err)
	}
}

func TestRestartRouterKeepsAddressAndMetadata(t *testing.T) {
	c := startCluster(t, Options{})
	uri := c.URI()
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := shardedCollection(t, c, cl, bson.D{{Key: "k", Value: 1}})
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "k", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartRouter(); err != nil {
		t.Fatal(err)
	}
	if c.URI() != uri {
		t.Errorf("the router moved: %s -> %s", uri, c.URI())
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("after the router restart: %d documents, %v", n, err)
	}
	if err := c.SetRouterFault(wire.Refuse); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := cl.Ping(short, nil); err == nil {
		t.Error("a refusing router answered")
	}
	if err := c.SetRouterFault(wire.Healthy); err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(ctx, nil); err != nil {
		t.Errorf("after healing the router: %v", err)
	}
}

func TestRestartWithTheSameDirServesTheSameAddressesAndData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := Start(ctx, "source", Options{Dir: dir, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	uri, shards, ca := first.URI(), first.Shards(), first.CAFile()
	caPEM, _ := os.ReadFile(ca)
	cl := connect(t, options.Client().ApplyURI(uri))
	coll := shardedCollection(t, first, cl, bson.D{{Key: "k", Value: "hashed"}})
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "k", Value: 1}}, bson.D{{Key: "k", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	cl.Disconnect(ctx)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	again := startCluster(t, Options{Dir: dir, TLS: true})
	if again.URI() != uri {
		t.Errorf("URI changed across restarts: %s -> %s", uri, again.URI())
	}
	for i, s := range again.Shards() {
		if s != shards[i] {
			t.Errorf("shard %d moved: %+v -> %+v", i, shards[i], s)
		}
	}
	if pem, _ := os.ReadFile(again.CAFile()); string(pem) != string(caPEM) {
		t.Error("the CA was regenerated on restart; clients holding the old one would fail")
	}
	cl2 := routerClient(t, again)
	if n, err := cl2.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
		t.Errorf("after restart: %d documents, %v", n, err)
	}
	_, m := chunkMap(t, cl2, "app.c")
	if m.Len() != 4 {
		t.Errorf("after restart the hashed collection has %d chunks, want 4", m.Len())
	}
}

func TestAuthAndTLSAreEnforced(t *testing.T) {
	c := startCluster(t, Options{TLS: true, Auth: &wire.Credentials{User: "migrator", Password: "p@ss:w/rd"}})
	ctx := context.Background()
	if !strings.Contains(c.URI(), "tls=true") || !strings.Contains(c.URI(), "tlsCAFile=") {
		t.Fatalf("URI %s does not ask for TLS with the CA file", c.URI())
	}
	good := routerClient(t, c)
	if _, err := good.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "a", Value: 1}}); err != nil {
		t.Fatalf("with the right credentials: %v", err)
	}
	bad := connect(t, options.Client().ApplyURI(c.URI()).SetAuth(options.Credential{Username: "migrator", Password: "wrong"}))
	if err := bad.Ping(ctx, nil); err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Errorf("a wrong password: %v, want an authentication failure", err)
	}
	plainOpts := options.Client().SetHosts([]string{c.RouterAddr()}).SetAuth(options.Credential{Username: "migrator", Password: "p@ss:w/rd"})
	plain := connect(t, plainOpts.SetServerSelectionTimeout(time.Second))
	if err := plain.Ping(ctx, nil); err == nil {
		t.Error("a plain connection to a TLS router succeeded")
	}
	untrusted := connect(t, options.Client().SetHosts([]string{c.RouterAddr()}).SetTLSConfig(&tls.Config{}).SetServerSelectionTimeout(time.Second))
	if err := untrusted.Ping(ctx, nil); err == nil {
		t.Error("a TLS connection that does not trust the sandbox CA succeeded")
	}
	// Shards enforce the same.
	shard := c.Shards()[0]
	sc := shardClient(t, c, shard)
	if err := sc.Ping(ctx, nil); err != nil {
		t.Errorf("a direct shard connection with credentials and the CA: %v", err)
	}
	anon := connect(t, options.Client().SetHosts([]string{shard.Addr}).SetDirect(true).SetTLSConfig(tlsTo(t, c.CAFile())))
	err := anon.Database("admin").RunCommand(ctx, bson.D{{Key: "listDatabases", Value: 1}}).Err()
	if commandCode(err) != 13 && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("an unauthenticated shard command: %v, want Unauthorized", err)
	}
}

func TestStartIsFastAndCloseRemovesTheTempDir(t *testing.T) {
	began := time.Now()
	c, err := Start(context.Background(), "destination", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a 2-shard cluster started in %s", time.Since(began))
	if got := c.Shards()[0].Name; got != "destination-shard0" {
		t.Errorf("shard name %q", got)
	}
	dir := c.Dir()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the temporary directory %s is still there: %v", dir, err)
	}
}

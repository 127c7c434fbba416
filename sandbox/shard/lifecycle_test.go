package shard

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"

	"github.com/shardlift/shardlift/sandbox/wire"
)

func TestShardAnswersAsReplicaSetPrimary(t *testing.T) {
	f := startFront(t, Config{Name: "src-shard0"})
	ctx := context.Background()
	// A replica-set connection string: the driver must discover the primary.
	c, err := mongo.Connect(ctx, options.Client().ApplyURI("mongodb://"+f.Addr()+"/?replicaSet=src-shard0").SetServerSelectionTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	if err := c.Ping(ctx, readpref.Primary()); err != nil {
		t.Fatalf("primary not found through replica-set discovery: %v", err)
	}
	var hello bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		t.Fatal(err)
	}
	if hello["setName"] != "src-shard0" || hello["isWritablePrimary"] != true || hello["primary"] != f.Addr() ||
		len(hello["hosts"].(bson.A)) != 1 || hello["hosts"].(bson.A)[0] != f.Addr() {
		t.Fatalf("hello: %v", hello)
	}
	if f.Host() != "src-shard0/"+f.Addr() {
		t.Fatalf("Host() = %q", f.Host())
	}
	var status bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetStatus", Value: 1}}).Decode(&status); err != nil {
		t.Fatal(err)
	}
	member := status["members"].(bson.A)[0].(bson.M)
	if status["set"] != "src-shard0" || member["stateStr"] != "PRIMARY" || member["name"] != f.Addr() {
		t.Fatalf("replSetGetStatus: %v", status)
	}
	var ss bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "serverStatus", Value: 1}}).Decode(&ss); err != nil {
		t.Fatal(err)
	}
	if ss["process"] != "mongod" || ss["repl"].(bson.M)["setName"] != "src-shard0" {
		t.Fatalf("serverStatus: %v", ss)
	}
	var dbs bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "listDatabases", Value: 1}}).Decode(&dbs); err != nil || !strings.Contains(dbsNames(dbs), "local") {
		t.Fatalf("listDatabases lacks local: %v %v", dbs, err)
	}
	info := collectionInfo(t, c.Database("local"), "oplog.rs")
	if info["options"].(bson.M)["capped"] != true {
		t.Fatalf("local.oplog.rs is not listed as capped: %v", info)
	}
}

func dbsNames(reply bson.M) string {
	var names []string
	for _, d := range reply["databases"].(bson.A) {
		names = append(names, d.(bson.M)["name"].(string))
	}
	return strings.Join(names, ",")
}

func TestStopRefusesConnectionsAndRestartServesTheSameDataAndOplog(t *testing.T) {
	f := startFront(t, Config{})
	addr := f.Addr()
	ctx := context.Background()
	c := connect(t, f)
	coll := c.Database("app").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	before := lastTS(t, c)

	if err := f.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("a stopped shard accepted a connection")
	}
	if err := f.SetFault(wire.Healthy); err == nil {
		t.Fatal("SetFault on a stopped shard succeeded")
	}

	if err := f.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if f.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", f.Addr(), addr)
	}
	c2 := connect(t, f)
	if n, err := c2.Database("app").Collection("c").CountDocuments(ctx, bson.D{{Key: "_id", Value: "kept"}}); err != nil || n != 1 {
		t.Fatalf("data after restart: %d %v", n, err)
	}
	entries := entriesAfter(t, c2, primitive.Timestamp{})
	if len(entries) == 0 || compareTS(tsOf(entries[len(entries)-1]), before) != 0 {
		t.Fatalf("oplog after restart does not end at %v", before)
	}
	if _, err := c2.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "new"}}); err != nil {
		t.Fatal(err)
	}
	if after := lastTS(t, c2); compareTS(after, before) <= 0 {
		t.Fatalf("ts went from %v to %v across a restart", before, after)
	}
}

func tsOf(e bson.Raw) primitive.Timestamp {
	t, i := e.Lookup("ts").Timestamp()
	return primitive.Timestamp{T: t, I: i}
}

func TestDataAndOplogSurviveCloseAndStart(t *testing.T) {
	dir := t.TempDir()
	f, err := Start(Config{Name: "s", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := f.Addr()
	ctx := context.Background()
	c := connect(t, f)
	setCollection(t, c, "app", "c", bson.D{{Key: "sk", Value: 1}})
	if _, err := c.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "sk", Value: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Database("app").Collection("c").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "t", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(60)}); err != nil {
		t.Fatal(err)
	}
	before := entriesAfter(t, c, primitive.Timestamp{})
	c.Disconnect(ctx)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g := startFront(t, Config{Name: "s", Dir: dir, Addr: addr})
	c2 := connect(t, g)
	after := entriesAfter(t, c2, primitive.Timestamp{})
	if len(after) != len(before) {
		t.Fatalf("oplog has %d entries after Close+Start, had %d", len(after), len(before))
	}
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Fatalf("entry %d changed across Close+Start:\n%s\n%s", i, before[i], after[i])
		}
	}
	if n, _ := c2.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); n != 1 {
		t.Fatalf("documents after Close+Start: %d", n)
	}
	if ix := indexNames(t, c2.Database("app").Collection("c")); ix["t_1"]["expireAfterSeconds"] != int32(60) {
		t.Fatalf("TTL index lost across Close+Start: %v", ix)
	}
	// The collection keeps its UUID and shard key: a delete logs {_id, sk} under it.
	if _, err := c2.Database("app").Collection("c").DeleteOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	last := entriesAfter(t, c2, tsOf(after[len(after)-1]))
	if len(last) != 1 || !bytes.Equal(last[0].Lookup("o").Document(), ext(t, `{"_id": 1, "sk": 5}`)) || !last[0].Lookup("ui").Equal(after[len(after)-2].Lookup("ui")) {
		t.Fatalf("delete after Close+Start: %v", last)
	}
}

func TestAuthAndTLSAreEnforced(t *testing.T) {
	cert, pool := selfSigned(t)
	creds := &wire.Credentials{User: "migrator", Password: "pw"}
	f := startFront(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Credentials: creds})
	ctx := context.Background()

	good := connect(t, f, options.Client().SetTLSConfig(&tls.Config{RootCAs: pool}).
		SetAuth(options.Credential{Username: "migrator", Password: "pw"}))
	if _, err := good.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatalf("authenticated TLS insert: %v", err)
	}
	if n, err := oplogColl(good).CountDocuments(ctx, bson.D{{Key: "op", Value: "i"}}); err != nil || n != 1 {
		t.Fatalf("authenticated oplog read: %d %v", n, err)
	}

	wrong := connect(t, f, options.Client().SetTLSConfig(&tls.Config{RootCAs: pool}).
		SetAuth(options.Credential{Username: "migrator", Password: "nope"}))
	if err := wrong.Ping(ctx, nil); err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
	anon := connect(t, f, options.Client().SetTLSConfig(&tls.Config{RootCAs: pool}))
	if err := oplogColl(anon).FindOne(ctx, bson.D{}).Err(); commandCode(err) != 13 {
		t.Fatalf("unauthenticated oplog read: want Unauthorized, got %v", err)
	}
	plain := connect(t, f, options.Client().SetAuth(options.Credential{Username: "migrator", Password: "pw"}).SetServerSelectionTimeout(time.Second))
	if err := plain.Ping(ctx, nil); err == nil {
		t.Fatal("a plain connection to a TLS shard succeeded")
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sandbox"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// A shard stopped while writes are in flight must keep data and oplog in step, as a
// real mongod does: every document it holds has its insert entry and every insert
// entry its document. Before writes were quiesced on Stop, a write cut between its
// FerretDB change and its oplog append left a document with no entry.
func TestStopMidWriteNeverLeavesDataWithoutAnOplogEntry(t *testing.T) {
	f := startFront(t, Config{})
	for round := 0; round < 4; round++ {
		c := connect(t, f, options.Client().SetRetryWrites(false))
		coll := c.Database("db").Collection("stop")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var landed atomic.Int64
		for w := 0; w < 4; w++ {
			go func(w int) {
				defer func() { done <- struct{}{} }()
				for i := 0; ctx.Err() == nil; i++ {
					if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: primitive.NewObjectID()}, {Key: "w", Value: w}, {Key: "round", Value: round}}); err == nil {
						landed.Add(1)
					}
				}
			}(w)
		}
		// Stop once some writes landed (more each round), with others in flight: a
		// fixed sleep stopped a busy machine's shard before its first write.
		for limit := time.Now().Add(time.Minute); landed.Load() < int64(1+round*4); {
			if time.Now().After(limit) {
				t.Fatalf("round %d: no write landed in a minute", round)
			}
			time.Sleep(time.Millisecond)
		}
		if err := f.Stop(); err != nil {
			t.Fatal(err)
		}
		cancel()
		for w := 0; w < 4; w++ {
			<-done
		}
		if err := f.Restart(); err != nil {
			t.Fatal(err)
		}

		c = connect(t, f)
		docs := map[primitive.ObjectID]bool{}
		cur, err := c.Database("db").Collection("stop").Find(context.Background(), bson.D{{Key: "round", Value: round}})
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(context.Background()) {
			docs[cur.Current.Lookup("_id").ObjectID()] = true
		}
		entries := map[primitive.ObjectID]bool{}
		for _, e := range entriesAfter(t, c, primitive.Timestamp{}) {
			o := e.Lookup("o").Document()
			if e.Lookup("op").StringValue() == "i" && e.Lookup("ns").StringValue() == "db.stop" && o.Lookup("round").Int32() == int32(round) {
				entries[o.Lookup("_id").ObjectID()] = true
			}
		}
		if len(docs) == 0 {
			t.Fatalf("round %d: no write landed before Stop; the test proves nothing", round)
		}
		for id := range docs {
			if !entries[id] {
				t.Errorf("round %d: document %s is on the shard with no oplog entry", round, id.Hex())
			}
		}
		for id := range entries {
			if !docs[id] {
				t.Errorf("round %d: oplog entry for %s whose document is not on the shard", round, id.Hex())
			}
		}
	}
}

// A 4.4+ driver keeps an awaitable hello in flight on every shard it monitors (held up
// to its heartbeat interval, a minute here): resizing the oplog or stopping the shard
// must not wait for it, nor stall the shard's other commands meanwhile.
func TestAwaitableHellosDoNotHoldTheShard(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f, options.Client().SetHeartbeatInterval(time.Minute))
	ctx := context.Background()
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatal(err)
	}
	within := func(what string, fn func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { fn(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s waited for the driver's awaitable hello", what)
		}
	}
	for i := range 10 {
		within("SetOplogSize", func() { f.SetOplogSize(int64(64+i) << 20) })
		within("a find", func() { oplogColl(c).FindOne(ctx, bson.D{}) })
	}
	within("Stop", func() {
		if err := f.Stop(); err != nil {
			t.Error(err)
		}
	})
	within("Restart", func() {
		if err := f.Restart(); err != nil {
			t.Error(err)
		}
	})
}

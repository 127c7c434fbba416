package wire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// echoHandler answers hello as a standalone and echoes how many documents an insert got.
func echoHandler() Handler {
	return HandlerFunc(func(ctx context.Context, s *Session, cmd *Command) bson.Raw {
		switch strings.ToLower(cmd.Name) {
		case "hello", "ismaster":
			return OK(HelloBase(cmd, "7.0.0")...)
		case "ping", "endsessions":
			return OK()
		case "insert":
			docs, _ := cmd.Lookup("documents").Array().Values()
			return OK(bson.E{Key: "n", Value: int32(len(docs))})
		case "whoami":
			return OK(bson.E{Key: "user", Value: s.User()})
		}
		return ErrorReply(CommandNotFound(cmd.Name))
	})
}

func listen(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Handler == nil {
		cfg.Handler = echoHandler()
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func connect(t *testing.T, opts *options.ClientOptions) *mongo.Client {
	t.Helper()
	opts.SetServerSelectionTimeout(2 * time.Second).SetConnectTimeout(2 * time.Second).SetDirect(true)
	c, err := mongo.Connect(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func TestDriverHandshakeAndDocumentSequences(t *testing.T) {
	s := listen(t, Config{})
	c := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	ctx := context.Background()
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatalf("ping: %v", err)
	}
	// The driver sends insert documents as an OP_MSG document sequence.
	docs := make([]any, 250)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}}
	}
	res, err := c.Database("db").Collection("c").InsertMany(ctx, docs)
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	if len(res.InsertedIDs) != 250 {
		t.Fatalf("inserted %d", len(res.InsertedIDs))
	}
}

func TestUnknownCommandIsCommandNotFound(t *testing.T) {
	s := listen(t, Config{})
	c := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	err := c.Database("admin").RunCommand(context.Background(), bson.D{{Key: "frobnicate", Value: 1}}).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 59 {
		t.Fatalf("want CommandNotFound, got %v", err)
	}
}

func TestAuthRequiresTheRightPassword(t *testing.T) {
	s := listen(t, Config{Credentials: &Credentials{User: "migrator", Password: "s3cret p@ss"}})
	ctx := context.Background()

	good := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).
		SetAuth(options.Credential{Username: "migrator", Password: "s3cret p@ss"}))
	var who bson.M
	if err := good.Database("admin").RunCommand(ctx, bson.D{{Key: "whoami", Value: 1}}).Decode(&who); err != nil {
		t.Fatalf("authenticated command: %v", err)
	}
	if who["user"] != "migrator" {
		t.Fatalf("session user = %v", who["user"])
	}

	bad := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).
		SetAuth(options.Credential{Username: "migrator", Password: "wrong"}))
	err := bad.Ping(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("wrong password: want authentication failure, got %v", err)
	}

	anon := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	err = anon.Database("admin").RunCommand(ctx, bson.D{{Key: "whoami", Value: 1}}).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 13 {
		t.Fatalf("unauthenticated command: want Unauthorized, got %v", err)
	}
}

func TestTLSOnlyServerRejectsPlainClients(t *testing.T) {
	cert, pool := selfSigned(t)
	s := listen(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	ctx := context.Background()

	secure := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).SetTLSConfig(&tls.Config{RootCAs: pool}))
	if err := secure.Ping(ctx, nil); err != nil {
		t.Fatalf("TLS ping: %v", err)
	}
	plain := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	if err := plain.Ping(ctx, nil); err == nil {
		t.Fatal("a plain connection to a TLS-only server succeeded")
	}
}

func TestRefuseThenHealServesOnTheSameAddress(t *testing.T) {
	s := listen(t, Config{})
	addr := s.Addr()
	if err := s.SetFault(Refuse); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("connection accepted while refusing")
	}
	if err := s.SetFault(Healthy); err != nil {
		t.Fatal(err)
	}
	c := connect(t, options.Client().ApplyURI("mongodb://"+addr))
	if err := c.Ping(context.Background(), nil); err != nil {
		t.Fatalf("after healing: %v", err)
	}
}

func TestBlackholeSwallowsRequests(t *testing.T) {
	s := listen(t, Config{})
	if err := s.SetFault(Blackhole); err != nil {
		t.Fatal(err)
	}
	c := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx, nil); err == nil {
		t.Fatal("ping answered through a blackhole")
	}
	if err := s.SetFault(Healthy); err != nil {
		t.Fatal(err)
	}
	c2 := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	if err := c2.Ping(context.Background(), nil); err != nil {
		t.Fatalf("after healing: %v", err)
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

// A 4.4+ node answers an awaitable hello (its own topologyVersion and maxAwaitTimeMS,
// as the drivers' streaming monitor sends) only after maxAwaitTimeMS, and any other
// hello at once; a 4.2 node has no topologyVersion.
func TestAwaitableHello(t *testing.T) {
	topo := NewTopology()
	id := Identity{Version: "7.0.14", FCV: "7.0"}
	s := listen(t, Config{Handler: HandlerFunc(func(ctx context.Context, sess *Session, cmd *Command) bson.Raw {
		if strings.EqualFold(cmd.Name, "hello") || strings.EqualFold(cmd.Name, "isMaster") {
			topo.Await(ctx, id, cmd)
			return OK(id.Hello(sess, cmd, topo)...)
		}
		return ErrorReply(CommandNotFound(cmd.Name))
	})})
	c := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	tv, ok := first.Lookup("topologyVersion").DocumentOK()
	if !ok || first.Lookup("connectionId").Type == 0 {
		t.Fatalf("a 7.0 hello: %s", first)
	}
	other := bson.D{{Key: "processId", Value: primitive.NewObjectID()}, {Key: "counter", Value: int64(0)}}
	if _, err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}, {Key: "topologyVersion", Value: other}, {Key: "maxAwaitTimeMS", Value: int64(600000)}}).Raw(); err != nil {
		t.Errorf("a hello with another topologyVersion: %v", err)
	}
	start := time.Now()
	if _, err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}, {Key: "topologyVersion", Value: tv}, {Key: "maxAwaitTimeMS", Value: int64(200)}}).Raw(); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("an awaitable hello was answered after %v, before its maxAwaitTimeMS", waited)
	}
	old := Identity{Version: "4.2.25"}.Hello(nil, &Command{Name: "hello", Body: mustRaw(t, bson.D{{Key: "hello", Value: 1}})}, topo)
	for _, e := range old {
		if e.Key == "topologyVersion" {
			t.Errorf("a 4.2 hello carries topologyVersion")
		}
	}
}

func mustRaw(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Latency delays every reply to a client (here an hour: the handshake itself never
// completes within the client's timeout), and none to the cluster's own router.
func TestLatencyDelaysRepliesToClientsNotToTheRouter(t *testing.T) {
	s := listen(t, Config{Latency: time.Hour})
	c := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx, nil); err == nil {
		t.Fatal("a client's ping answered within 2 s at an hour's latency")
	}
	router := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).SetAppName(RouterAppName))
	if err := router.Ping(context.Background(), nil); err != nil {
		t.Fatalf("the router's ping: %v", err)
	}
}

package validate_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Every check runs here against real servers: the sandbox's FerretDB shards behind
// its router, or the clusters named by SHARDLIFT_TEST_SOURCE_URI and
// SHARDLIFT_TEST_DESTINATION_URI. Failures that need a cluster shaped on purpose
// (legacy config servers, another shard count, another version, a stopped shard)
// run on the sandbox only and are skipped against real clusters.

const testTimeout = 5 * time.Second

var sandboxCreds = &wire.Credentials{User: "migrator", Password: "s3cret-pass"}

// realPair is the real clusters to test against, if the environment names them.
func realPair() (src, dst string, ok bool) {
	src, dst = os.Getenv("SHARDLIFT_TEST_SOURCE_URI"), os.Getenv("SHARDLIFT_TEST_DESTINATION_URI")
	return src, dst, src != "" && dst != ""
}

func sandboxOnly(t *testing.T) {
	t.Helper()
	if _, _, ok := realPair(); ok {
		t.Skip("needs a sandbox cluster shaped for this failure; SHARDLIFT_TEST_*_URI name real clusters")
	}
}

// start starts a sandbox cluster closed at the end of the test.
func start(t *testing.T, name string, opts sandbox.Options) *sandbox.Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := sandbox.Start(context.Background(), name, opts)
	if err != nil {
		t.Fatalf("start sandbox %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close sandbox %s: %v", name, err)
		}
	})
	return c
}

// shared is the good pair most tests use: a seeded source and an empty destination,
// both requiring SCRAM and TLS. Validation changes nothing, so tests share it.
var shared struct {
	once     sync.Once
	src, dst *sandbox.Cluster
	err      error
	dir      string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.src != nil {
		shared.src.Close()
	}
	if shared.dst != nil {
		shared.dst.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// goodPair returns the endpoints of a pair that passes every check.
func goodPair(t *testing.T) (src, dst topology.Endpoint) {
	t.Helper()
	if s, d, ok := realPair(); ok {
		return topology.Endpoint{URI: s, Timeout: testTimeout}, topology.Endpoint{URI: d, Timeout: testTimeout}
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "shardlift-validate-test-")
		if shared.err != nil {
			return
		}
		opts := sandbox.Options{Shards: 2, Auth: sandboxCreds, TLS: true}
		opts.Dir = filepath.Join(shared.dir, "source")
		if shared.src, shared.err = sandbox.Start(context.Background(), "source", opts); shared.err != nil {
			return
		}
		opts.Dir = filepath.Join(shared.dir, "destination")
		if shared.dst, shared.err = sandbox.Start(context.Background(), "destination", opts); shared.err != nil {
			return
		}
		shared.err = seed(shared.src.URI())
	})
	if shared.err != nil {
		t.Fatalf("start the shared sandbox pair: %v", shared.err)
	}
	return topology.Endpoint{URI: shared.src.URI(), Timeout: testTimeout}, topology.Endpoint{URI: shared.dst.URI(), Timeout: testTimeout}
}

// seed makes a sharded collection with chunks on two shards and an unsharded one.
func seed(uri string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer client.Disconnect(ctx)
	admin := client.Database("admin")
	var shards struct {
		Shards []struct {
			ID string `bson:"_id"`
		} `bson:"shards"`
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "listShards", Value: 1}}).Decode(&shards); err != nil {
		return err
	}
	for _, cmd := range []bson.D{
		{{Key: "enableSharding", Value: "shop"}},
		{{Key: "shardCollection", Value: "shop.orders"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}},
	} {
		if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
			return err
		}
	}
	docs := make([]any, 100)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}, {Key: "item", Value: "widget"}}
	}
	if _, err := client.Database("shop").Collection("orders").InsertMany(ctx, docs); err != nil {
		return err
	}
	for _, cmd := range []bson.D{
		{{Key: "split", Value: "shop.orders"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 50}}}},
		{{Key: "moveChunk", Value: "shop.orders"}, {Key: "find", Value: bson.D{{Key: "k", Value: 75}}}, {Key: "to", Value: shards.Shards[len(shards.Shards)-1].ID}},
	} {
		if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
			return err
		}
	}
	_, err = client.Database("shop").Collection("carts").InsertOne(ctx, bson.D{{Key: "_id", Value: "c1"}, {Key: "items", Value: bson.A{1, 2}}})
	return err
}

func run(t *testing.T, src, dst topology.Endpoint) validate.Report {
	t.Helper()
	r := validate.Run(context.Background(), src, dst)
	for _, f := range r.Findings {
		t.Logf("%-8s %s: %s | %s", f.Status, f.Title, f.Detail, f.Fix)
	}
	return r
}

// expect asserts a finding's status and that its detail and fix say each of the
// given things (detail words first, then fix words after a "|" entry).
func expect(t *testing.T, r validate.Report, id string, status validate.Status, says ...string) {
	t.Helper()
	f, ok := r.Finding(id)
	if !ok {
		t.Fatalf("no finding %s", id)
	}
	if f.Status != status {
		t.Errorf("%s: status %s (%s), want %s", id, f.Status, f.Detail, status)
	}
	inFix := false
	for _, s := range says {
		if s == "|" {
			inFix = true
			continue
		}
		text := f.Detail
		if inFix {
			text = f.Fix
		}
		if !strings.Contains(text, s) {
			t.Errorf("%s: %q does not say %q", id, text, s)
		}
	}
}

// coreChecks must pass on every good pair. The others may warn on the sandbox: it
// lists its migration user (users are not migrated) and its router answers neither
// rolesInfo nor collStats, so roles and collection sizes are unknown there.
var coreChecks = []string{validate.IDSourceReachable, validate.IDSourceSharded, validate.IDSourceMetadata,
	validate.IDSourceConfigServers, validate.IDSourceMembers, validate.IDSourceReadPreference, validate.IDSourceReadAccess, validate.IDSourceOplogAccess,
	validate.IDSourceConfigAccess, validate.IDSourceBalancerAccess, validate.IDDestReachable, validate.IDDestSharded,
	validate.IDDestMetadata, validate.IDShardCount, validate.IDVersion, validate.IDFCV, validate.IDVersionCrossing, validate.IDDestEmpty,
	validate.IDDestPrivileges, validate.IDCollectionKinds}

func TestGoodPairPassesEveryCheck(t *testing.T) {
	src, dst := goodPair(t)
	r := run(t, src, dst)
	if !r.Passed() {
		t.Fatalf("a good pair did not pass: %s", r.Summary())
	}
	if r.Source == nil || r.Destination == nil || len(r.Source.Shards) == 0 {
		t.Fatal("the report does not carry the discovered clusters")
	}
	for _, id := range coreChecks {
		expect(t, r, id, validate.Passed)
	}
	if _, _, real := realPair(); !real {
		expect(t, r, validate.IDSourceMetadata, validate.Passed, "1 sharded collection with 2 chunks")
		expect(t, r, validate.IDUsers, validate.Warning, "migrator@admin")
	}
}

// The oplog check plans with each shard's read rate, measured by reading its
// largest collection as the copy reads it, not with an assumed one.
func TestTheOplogCheckUsesEachShardsMeasuredReadRate(t *testing.T) {
	src, dst := goodPair(t)
	r := run(t, src, dst)
	f, _ := r.Finding(validate.IDOplogWindow)
	for _, sh := range r.Source.Shards {
		if !strings.Contains(f.Detail, sh.Name+": copying its ") && !strings.Contains(f.Detail, sh.Name+"'s oplog holds") {
			t.Errorf("the oplog check says nothing of shard %s's copy: %q", sh.Name, f.Detail)
		}
	}
	if !strings.Contains(f.Detail, "at the measured ") || !strings.Contains(f.Detail, "/s takes ") {
		t.Errorf("the oplog check measured no read rate: %q", f.Detail)
	}
	if _, _, real := realPair(); !real {
		expect(t, r, validate.IDOplogWindow, validate.Passed)
	}
}

func TestValidationLeavesTheBalancerAsItWas(t *testing.T) {
	src, dst := goodPair(t)
	before := run(t, src, dst).Source.Balancer
	after := run(t, src, dst).Source.Balancer
	if before != after || before.From == "" {
		t.Errorf("balancer before %+v, after %+v", before, after)
	}
}

func TestReplicaSetSourceIsRefused(t *testing.T) {
	src, dst := goodPair(t)
	c, err := topology.Discover(context.Background(), src)
	if err != nil || len(c.Shards) == 0 {
		t.Fatalf("discover the source: %v", err)
	}
	shard := src.ForHosts(c.Shards[0].Hosts[:1], "")
	r := run(t, shard, dst)
	expect(t, r, validate.IDSourceSharded, validate.Failed, "replica set ("+c.Shards[0].SetName+")", "|", "Migrate it as a replica set first", "mongos")
	expect(t, r, validate.IDSourceMembers, validate.NotRun, "Source is a sharded cluster")
	if r.Passed() {
		t.Error("a replica-set source passed")
	}
}

// standaloneNode answers as a mongod outside any replica set.
func standaloneNode(t *testing.T) string {
	t.Helper()
	id := wire.Identity{Version: "7.0.42", FCV: "7.0"}
	s, err := wire.Listen(wire.Config{Addr: "127.0.0.1:0", Handler: wire.HandlerFunc(func(_ context.Context, sess *wire.Session, cmd *wire.Command) bson.Raw {
		switch strings.ToLower(cmd.Name) {
		case "hello", "ismaster":
			return wire.OK(wire.HelloBase(cmd, id.Version)...)
		}
		if reply, ok := id.AnswerCommon(sess, cmd); ok {
			return reply
		}
		return wire.ErrorReply(wire.CommandNotFound(cmd.Name))
	})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

func TestStandaloneSourceIsRefused(t *testing.T) {
	_, dst := goodPair(t)
	r := run(t, topology.Endpoint{Hosts: []string{standaloneNode(t)}, Timeout: testTimeout}, dst)
	expect(t, r, validate.IDSourceSharded, validate.Failed, "standalone", "|", "Convert the standalone to a replica set first")
}

func TestLegacyConfigServersAreRefused(t *testing.T) {
	sandboxOnly(t)
	_, dst := goodPair(t)
	legacy := start(t, "source", sandbox.Options{Shards: 2, Auth: sandboxCreds, TLS: true, LegacyConfigServers: true})
	r := run(t, topology.Endpoint{URI: legacy.URI(), Timeout: testTimeout}, dst)
	expect(t, r, validate.IDSourceConfigServers, validate.Failed, "legacy mirrored", legacy.ConfigString(), "|", "replica set")
}

func TestDestinationWithAnotherShardCountFails(t *testing.T) {
	sandboxOnly(t)
	src, _ := goodPair(t)
	three := start(t, "destination", sandbox.Options{Shards: 3, Auth: sandboxCreds, TLS: true})
	r := run(t, src, topology.Endpoint{URI: three.URI(), Timeout: testTimeout})
	expect(t, r, validate.IDShardCount, validate.Failed, "source has 2 shards", "destination has 3 shards", "|", "so that it has 2")
}

// withPassword replaces the password of a URI.
func withPassword(t *testing.T, uri, password string) (string, bool) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return "", false
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String(), true
}

func TestWrongPasswordFails(t *testing.T) {
	src, dst := goodPair(t)
	bad, ok := withPassword(t, src.URI, "not-the-password")
	if !ok {
		t.Skip("the source URI has no credentials to get wrong")
	}
	r := run(t, topology.Endpoint{URI: bad, Timeout: testTimeout}, dst)
	expect(t, r, validate.IDSourceReachable, validate.Failed, "authentication failed", "|", "user name and password", "every shard")
	for _, f := range r.Findings {
		if strings.Contains(f.Detail+f.Fix, "not-the-password") {
			t.Errorf("%s repeats the password: %s", f.ID, f.Detail)
		}
	}
}

// withoutTLS removes TLS from a URI.
func withoutTLS(uri string) (string, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Query().Get("tls") != "true" {
		return "", false
	}
	q := u.Query()
	q.Del("tls")
	q.Del("tlsCAFile")
	u.RawQuery = q.Encode()
	return u.String(), true
}

func TestTLSOffAgainstATLSClusterFails(t *testing.T) {
	src, dst := goodPair(t)
	plain, ok := withoutTLS(src.URI)
	if !ok {
		t.Skip("the source does not use TLS")
	}
	// A TLS-only server closes a plain connection without a word: the driver waits
	// for its server selection timeout before the probe tells why, so keep it short.
	r := run(t, topology.Endpoint{URI: plain, Timeout: 2 * time.Second}, dst)
	expect(t, r, validate.IDSourceReachable, validate.Failed, "requires TLS but TLS is off", "|", "Turn TLS on")
}

func TestCorruptCAFileFails(t *testing.T) {
	src, dst := goodPair(t)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src.CAFile = path
	r := run(t, src, dst)
	expect(t, r, validate.IDSourceReachable, validate.Failed, "not a valid PEM certificate", path, "|", "PEM")
}

// otherCA writes a CA that signed nothing of the clusters'.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "someone else's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCAThatDidNotSignTheServerFails(t *testing.T) {
	src, dst := goodPair(t)
	if _, ok := withoutTLS(src.URI); !ok {
		t.Skip("the source does not use TLS")
	}
	src.CAFile = otherCA(t)
	r := run(t, src, dst)
	expect(t, r, validate.IDSourceReachable, validate.Failed, "not signed by a trusted CA", "|", "CA file that signed")
}

func TestUnreachableShardMemberFails(t *testing.T) {
	sandboxOnly(t)
	_, dst := goodPair(t)
	src := start(t, "source", sandbox.Options{Shards: 2, Auth: sandboxCreds, TLS: true})
	down := src.Shards()[1]
	if err := src.StopShard(down.Name); err != nil {
		t.Fatal(err)
	}
	r := run(t, topology.Endpoint{URI: src.URI(), Timeout: testTimeout}, dst)
	expect(t, r, validate.IDSourceMembers, validate.Failed, down.Name, down.Addr, "refused", "|", "firewall")
	expect(t, r, validate.IDSourceOplogAccess, validate.Failed, down.Name)
}

func TestVersionAndFCVMismatchFail(t *testing.T) {
	sandboxOnly(t)
	src, _ := goodPair(t)
	older := start(t, "destination", sandbox.Options{Shards: 2, Auth: sandboxCreds, TLS: true, Identity: wire.Identity{Version: "6.0.12", FCV: "6.0"}})
	r := run(t, src, topology.Endpoint{URI: older.URI(), Timeout: testTimeout})
	expect(t, r, validate.IDVersion, validate.Failed, "source runs MongoDB 7.0", "destination runs 6.0", "|", "7.0")
	expect(t, r, validate.IDFCV, validate.Failed, "7.0", "6.0", "|", "setFeatureCompatibilityVersion")

	fcvOnly := start(t, "destination", sandbox.Options{Shards: 2, Auth: sandboxCreds, TLS: true, Identity: wire.Identity{Version: "7.0.42", FCV: "6.0"}})
	r = run(t, src, topology.Endpoint{URI: fcvOnly.URI(), Timeout: testTimeout})
	expect(t, r, validate.IDVersion, validate.Passed)
	expect(t, r, validate.IDFCV, validate.Failed, "source's FCV is 7.0", "destination's is 6.0")
}

func TestAnUpgradeFrom44OrNewerPassesAndADowngradeDoesNot(t *testing.T) {
	sandboxOnly(t)
	src := start(t, "source", sandbox.Options{Shards: 1, Auth: sandboxCreds, Identity: wire.Identity{Version: "5.0.30", FCV: "5.0"}})
	dst := start(t, "destination", sandbox.Options{Shards: 1, Auth: sandboxCreds})
	srcEP, dstEP := topology.Endpoint{URI: src.URI(), Timeout: testTimeout}, topology.Endpoint{URI: dst.URI(), Timeout: testTimeout}
	r := run(t, srcEP, dstEP)
	expect(t, r, validate.IDVersion, validate.Passed, "an upgrade from MongoDB 5.0 to 7.0")
	expect(t, r, validate.IDFCV, validate.Passed)
	expect(t, r, validate.IDVersionCrossing, validate.Passed)
	r = run(t, dstEP, srcEP)
	expect(t, r, validate.IDVersion, validate.Failed, "downgrade", "|", "7.0")
}

func TestVersionsOlderThan36AreRefused(t *testing.T) {
	sandboxOnly(t)
	old := wire.Identity{Version: "3.4.24", FCV: "3.4"}
	src := start(t, "source", sandbox.Options{Shards: 1, Identity: old})
	dst := start(t, "destination", sandbox.Options{Shards: 1, Identity: old})
	r := run(t, topology.Endpoint{URI: src.URI(), Timeout: testTimeout}, topology.Endpoint{URI: dst.URI(), Timeout: testTimeout})
	// A real 3.4 reports wire version 5 (as the sandbox's 3.4 does): the driver refuses
	// it at the handshake, so the refusal comes at the first check, with the same fix.
	expect(t, r, validate.IDSourceReachable, validate.Failed, "older than MongoDB 3.6", "|", "Upgrade")
}

func TestNonEmptyDestinationIsAWarning(t *testing.T) {
	sandboxOnly(t)
	src, _ := goodPair(t)
	dst := start(t, "destination", sandbox.Options{Shards: 2, Auth: sandboxCreds, TLS: true})
	ctx := context.Background()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(dst.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	if _, err := client.Database("leftover").Collection("things").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	r := run(t, src, topology.Endpoint{URI: dst.URI(), Timeout: testTimeout})
	expect(t, r, validate.IDDestEmpty, validate.Warning, "leftover (1 collection)", "wipe", "|", "Back up")
	if !r.Passed() {
		t.Errorf("a non-empty destination failed validation (it is a warning): %s", r.Summary())
	}
	if n, err := client.Database("leftover").Collection("things").CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("validation touched the destination's data: %d documents, %v", n, err)
	}
}

func TestUserWithoutClusterRolesFailsThePrivilegeChecks(t *testing.T) {
	sandboxOnly(t)
	_, dst := goodPair(t)
	src := start(t, "source", sandbox.Options{Shards: 2, Auth: sandboxCreds, Identity: wire.Identity{Roles: []string{"readAnyDatabase"}}})
	r := run(t, topology.Endpoint{URI: src.URI(), Timeout: testTimeout}, dst)
	expect(t, r, validate.IDSourceReadAccess, validate.Passed)
	expect(t, r, validate.IDSourceOplogAccess, validate.Failed, "local.oplog.rs", "|", "clusterAdmin")
	expect(t, r, validate.IDSourceConfigAccess, validate.Failed, "insert, update, remove", "|", "clusterAdmin")
	expect(t, r, validate.IDSourceBalancerAccess, validate.Failed, "config.settings", "|", "clusterAdmin")
}

func TestDestinationUserWithoutDBAdminIsNamedBeforeAnythingChanges(t *testing.T) {
	// The sandbox answers connectionStatus with the privileges MongoDB's built-in
	// roles grant: readWriteAnyDatabase and clusterAdmin lack bypassDocumentValidation
	// and collMod, which dbAdminAnyDatabase grants.
	sandboxOnly(t)
	src, _ := goodPair(t)
	dst := start(t, "destination", sandbox.Options{Shards: 2, Auth: sandboxCreds, Identity: wire.Identity{Roles: []string{"readWriteAnyDatabase", "clusterAdmin"}}})
	r := run(t, src, topology.Endpoint{URI: dst.URI(), Timeout: testTimeout})
	expect(t, r, validate.IDDestPrivileges, validate.Failed, "bypassDocumentValidation on shop.carts", "collMod", "dbAdminAnyDatabase",
		"|", "dbAdminAnyDatabase")
	f, _ := r.Finding(validate.IDDestPrivileges)
	if strings.Contains(f.Detail, "enableSharding") || strings.Contains(f.Detail, "splitChunk") {
		t.Errorf("clusterAdmin grants the sharding commands, yet: %s", f.Detail)
	}
	expect(t, r, validate.IDSourceConfigAccess, validate.Passed)
}

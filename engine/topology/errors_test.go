package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Every classification below is checked against a failure that really happens: a
// name that does not resolve, a closed port, a server that swallows requests, TLS
// servers with certificates from another CA, SCRAM with a wrong password.

const shortTimeout = 1500 * time.Millisecond

// expectKind asserts err is a classified *Error of the kind, names the host and has a fix.
func expectKind(t *testing.T, err, kind error, host string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v: want kind %v", err, kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *topology.Error", err)
	}
	if host != "" && !strings.Contains(err.Error(), host) {
		t.Errorf("error %q does not name host %s", err, host)
	}
	if Fix(err) == "" {
		t.Errorf("no fix for %v", err)
	}
}

// driverOnly connects with the driver alone (no preflight), to prove the driver's
// own errors are classified too.
func driverOnly(t *testing.T, e Endpoint) error {
	t.Helper()
	ctx := context.Background()
	s, err := e.resolve()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := e.clientOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer disconnect(ctx, client, time.Second)
	return classify(ctx, "connect", "", s.tlsOn, e.timeout()/2, client.Ping(ctx, nil))
}

func TestClassifiesUnresolvableHostAsDNS(t *testing.T) {
	t.Parallel()
	host := "no-such-host.shardlift.invalid:27017"
	_, err := Connect(context.Background(), Endpoint{Hosts: []string{host}, Timeout: shortTimeout})
	expectKind(t, err, ErrDNS, host)
}

func TestClassifiesClosedPortAsRefused(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := Endpoint{Hosts: []string{addr}, Timeout: shortTimeout}
	_, err := Connect(context.Background(), e)
	expectKind(t, err, ErrRefused, addr)
	expectKind(t, driverOnly(t, e), ErrRefused, addr)
}

// clearedPool is what the driver returns when a command meets the server's pool
// cleared by another operation's failed connection: a retryable pool error whose
// cause is only in its message (the driver's own type is unexported).
type clearedPool struct{}

func (clearedPool) Error() string {
	return "connection pool for 127.0.0.1:45959 was cleared because another operation failed with: connection(127.0.0.1:45959[-8]) socket was unexpectedly closed: EOF"
}
func (clearedPool) Retryable() bool { return true }

// A pool cleared under the connect is a server closing connections for a moment:
// classified so, connect tries again (fault scenario 4 restarts the source's mongos
// while the migration connects, and the migration exited on the driver's message).
func TestClassifiesAClearedPoolAsClosedConnections(t *testing.T) {
	err := classify(context.Background(), "connect", "", false, shortTimeout, fmt.Errorf("ping: %w", clearedPool{}))
	expectKind(t, err, ErrConnectionClosed, "")
}

func TestClassifiesSilentServerAsTimeout(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{})
	if err := s.SetFault(wire.Blackhole); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Connect(context.Background(), Endpoint{Hosts: []string{s.Addr()}, Timeout: shortTimeout})
	expectKind(t, err, ErrTimeout, s.Addr())
	if waited := time.Since(start); waited > 10*shortTimeout {
		t.Errorf("a silent server held Connect for %v with a %v timeout", waited, shortTimeout)
	}
}

func TestClassifiesPlainClientToTLSServerAsTLSRequired(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{TLS: ca.serverTLS(t)})
	e := Endpoint{Hosts: []string{s.Addr()}, Timeout: shortTimeout}
	_, err := Connect(context.Background(), e)
	expectKind(t, err, ErrTLSRequired, s.Addr())
	expectKind(t, driverOnly(t, e), ErrTLSRequired, s.Addr())
}

func TestClassifiesTLSClientToPlainServerAsNotTLS(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{})
	_, err := Connect(context.Background(), Endpoint{Hosts: []string{s.Addr()}, TLS: true, Timeout: shortTimeout})
	expectKind(t, err, ErrNotTLS, s.Addr())
}

func TestClassifiesCertificateFromAnotherCAAsUnknownAuthority(t *testing.T) {
	t.Parallel()
	signer, other := newCA(t, "signer"), newCA(t, "other")
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{TLS: signer.serverTLS(t)})
	e := Endpoint{Hosts: []string{s.Addr()}, TLS: true, CAPEM: other.pem, Timeout: shortTimeout}
	_, err := Connect(context.Background(), e)
	expectKind(t, err, ErrUnknownAuthority, s.Addr())
	expectKind(t, driverOnly(t, e), ErrUnknownAuthority, s.Addr())

	// The right CA connects.
	e.CAPEM = signer.pem
	client, err := Connect(context.Background(), e)
	if err != nil {
		t.Fatalf("connect with the signing CA: %v", err)
	}
	disconnect(context.Background(), client, time.Second)
}

func TestClassifiesCertificateForAnotherNameAsCertificateName(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{TLS: ca.serverTLSFor(t, []string{"db.example.com"}, nil)})
	_, err := Connect(context.Background(), Endpoint{Hosts: []string{s.Addr()}, CAPEM: ca.pem, Timeout: shortTimeout})
	expectKind(t, err, ErrCertificateName, s.Addr())
}

func TestClassifiesNonPEMCAFileAsInvalidCA(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, []byte("this is not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := Endpoint{Hosts: []string{"127.0.0.1:1"}, CAFile: path}
	_, err := e.ClientOptions()
	expectKind(t, err, ErrInvalidCA, "")
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the CA file", err)
	}
	_, err = Connect(context.Background(), e)
	expectKind(t, err, ErrInvalidCA, "")
}

func TestClassifiesWrongPasswordAsAuthFailed(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{Credentials: &wire.Credentials{User: "migrator", Password: "right"}})
	e := Endpoint{Hosts: []string{s.Addr()}, Username: "migrator", Password: "wrong", Timeout: shortTimeout}
	_, err := Connect(context.Background(), e)
	expectKind(t, err, ErrAuthFailed, s.Addr())
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q repeats the password", err)
	}

	e.Password = "right"
	client, err := Connect(context.Background(), e)
	if err != nil {
		t.Fatalf("connect with the right password: %v", err)
	}
	disconnect(context.Background(), client, time.Second)
}

func TestClassifiesMissingCAFileAsUnreadable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gone", "ca.pem")
	for _, e := range []Endpoint{
		{Hosts: []string{"127.0.0.1:1"}, CAFile: path},
		{URI: "mongodb://127.0.0.1:1/?tls=true&tlsCAFile=" + path},
	} {
		_, err := e.ClientOptions()
		expectKind(t, err, ErrCAFileUnreadable, "")
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("error %q does not name the CA file and why it cannot be read", err)
		}
	}
	unreadable := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(unreadable, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root reads any file
		_, err := ReadCAFile(unreadable)
		expectKind(t, err, ErrCAFileUnreadable, "")
	}
}

// A password (or user name) with a character the connection string reserves, left as
// is: its own kind and fix, and never a piece of the password in the message.
func TestClassifiesUnescapedCharacterInTheUserInfo(t *testing.T) {
	t.Parallel()
	for uri, says := range map[string]string{
		"mongodb://migrator:p@ssw0rd-long@db1:27017/":   "an @",
		"mongodb://migrator:pa:ssw0rd-long@db1:27017/":  "a : in the password",
		"mongodb://migrator:pa/ssw0rd-long@db1:27017/":  "a / in the password",
		"mongodb://migrator:100%zzsure-long@db1:27017/": "a % in the password",
	} {
		_, err := Endpoint{URI: uri}.ClientOptions()
		expectKind(t, err, ErrUnescapedUserInfo, "")
		if !strings.Contains(err.Error(), says) {
			t.Errorf("%s: error %q does not say %q", uri, err, says)
		}
		for _, piece := range []string{"ssw0rd", "zzsure"} {
			if strings.Contains(err.Error(), piece) {
				t.Errorf("%s: error %q shows part of the password", uri, err)
			}
		}
		if _, err := ParseURI(uri); !errors.Is(err, ErrUnescapedUserInfo) {
			t.Errorf("ParseURI(%s) = %v, want ErrUnescapedUserInfo", uri, err)
		}
	}
	if _, err := ParseURI("mongodb://migrator:p%40ssw0rd@db1:27017/"); err != nil {
		t.Errorf("an encoded @ is refused: %v", err)
	}
}

// replicaSet= on a mongos: the driver finds no member and times out; the error says
// what is wrong instead of blaming the network.
func TestClassifiesReplicaSetOnAMongos(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{})
	_, err := Connect(context.Background(), Endpoint{URI: "mongodb://" + s.Addr() + "/?replicaSet=rs0", Timeout: shortTimeout})
	expectKind(t, err, ErrReplicaSetOnMongos, s.Addr())
	if !strings.Contains(err.Error(), "replicaSet=rs0") {
		t.Errorf("error %q does not quote the option", err)
	}
	// The same host without the option connects.
	client, err := Connect(context.Background(), Endpoint{URI: "mongodb://" + s.Addr() + "/", Timeout: shortTimeout})
	if err != nil {
		t.Fatal(err)
	}
	disconnect(context.Background(), client, time.Second)
}

// A server that enforces authentication, reached without a user: the cluster needs a
// login, not privileges for a user that was never named.
func TestClassifiesMissingLoginAsAuthRequired(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{Credentials: &wire.Credentials{User: "migrator", Password: "right"}})
	_, err := Discover(context.Background(), Endpoint{Hosts: []string{s.Addr()}, Timeout: shortTimeout})
	expectKind(t, err, ErrAuthRequired, s.Addr())
	if !strings.Contains(Fix(err), "Username and Password") {
		t.Errorf("fix %q does not say what to enter", Fix(err))
	}
	c, err := Discover(context.Background(), Endpoint{Hosts: []string{s.Addr()}, Username: "migrator", Password: "right", Timeout: shortTimeout})
	if err != nil || c.Kind != KindMongos {
		t.Fatalf("with the login: %v, %+v", err, c)
	}
}

func TestClassifiesMissingPrivilegeAsUnauthorized(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos", unauthorized: map[string]bool{"listshards": true}}, wire.Config{})
	c, err := Discover(context.Background(), Endpoint{Hosts: []string{s.Addr()}, Timeout: shortTimeout})
	if err != nil {
		t.Fatal(err)
	}
	probs := c.ProblemsWith(PartShards)
	if len(probs) != 1 {
		t.Fatalf("problems with listShards: %v (all: %v)", probs, c.Problems)
	}
	expectKind(t, probs[0].Err, ErrUnauthorized, "")
	if !IsUnauthorized(probs[0].Err) {
		t.Error("IsUnauthorized is false for a code 13 failure")
	}
}

func TestClassifiesPre36ServerAsTooOld(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos", version: "3.4.24", maxWire: 5}, wire.Config{})
	_, err := Connect(context.Background(), Endpoint{Hosts: []string{s.Addr()}, Timeout: shortTimeout})
	expectKind(t, err, ErrServerTooOld, "")
}

func TestUnclassifiedErrorsKeepTheirCause(t *testing.T) {
	cause := errors.New("something else")
	err := classify(context.Background(), "listShards", "", false, time.Second, cause)
	if !errors.Is(err, cause) || Fix(err) != "" {
		t.Fatalf("classify(%v) = %v with fix %q; want the cause wrapped and no fix", cause, err, Fix(err))
	}
}

// A member that answers hello as primary but fails the probe after it has no client:
// the shard reports that primary's failure instead of reading through nothing.
func TestAPrimaryWhoseProbeFailedIsNotReadThrough(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "primary", unauthorized: map[string]bool{"buildinfo": true}}, wire.Config{})
	e := Endpoint{Hosts: []string{s.Addr()}, Timeout: shortTimeout}
	client, st, err := connect(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	defer disconnect(context.Background(), client, e.timeout())
	d := &discovery{e: e, s: st, client: client, c: &Cluster{}}
	sh := &Shard{Name: "shard-a", Hosts: []string{s.Addr()}}
	d.inspectShard(context.Background(), sh)
	if sh.Oplog.Err == nil || !strings.Contains(sh.Oplog.Err.Error(), "the primary of shard shard-a could not be inspected") {
		t.Fatalf("oplog error = %v, want the primary's probe failure", sh.Oplog.Err)
	}
}

// closingProxy forwards connections to a server, except that while it is closing it
// closes every connection that sends a request: a mongos restarting under its clients.
type closingProxy struct {
	ln      net.Listener
	backend string
	closing atomic.Bool
	closed  atomic.Int32

	mu   sync.Mutex
	live []net.Conn
}

// restart closes every forwarded connection and closes new ones until healed.
func (p *closingProxy) restart() {
	p.closing.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.live {
		c.Close()
	}
	p.live = nil
}

func startClosingProxy(t *testing.T, backend string) *closingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &closingProxy{ln: ln, backend: backend}
	p.closing.Store(true)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *closingProxy) serve(c net.Conn) {
	defer c.Close()
	first := make([]byte, 4096)
	n, err := c.Read(first)
	if err != nil {
		return
	}
	if p.closing.Load() {
		p.closed.Add(1)
		return
	}
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		return
	}
	defer b.Close()
	p.mu.Lock()
	p.live = append(p.live, c, b)
	p.mu.Unlock()
	if _, err := b.Write(first[:n]); err != nil {
		return
	}
	go io.Copy(c, b)
	io.Copy(b, c)
}

// countPauses replaces the pause before a retry, for the test, by heal (the server
// is back) and counts the pauses.
func countPauses(t *testing.T, heal func()) *int {
	old := pauseBeforeRetry
	t.Cleanup(func() { pauseBeforeRetry = old })
	pauses := new(int)
	pauseBeforeRetry = func(context.Context) error {
		*pauses++
		heal()
		return nil
	}
	return pauses
}

// A mongos that closes connections while it restarts costs a retry, not a failed
// validation: the connection that follows the pause succeeds.
func TestAServerClosingConnectionsForAMomentIsTriedAgain(t *testing.T) {
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{})
	p := startClosingProxy(t, s.Addr())
	pauses := countPauses(t, func() { p.closing.Store(false) })
	client, err := Connect(context.Background(), Endpoint{Hosts: []string{p.ln.Addr().String()}, Timeout: shortTimeout})
	if err != nil {
		t.Fatalf("connect through a restart: %v (%d connections closed, %d pauses)", err, p.closed.Load(), *pauses)
	}
	disconnect(context.Background(), client, time.Second)
	if *pauses != 1 || p.closed.Load() == 0 {
		t.Errorf("%d pauses, %d connections closed; want one pause after closed connections", *pauses, p.closed.Load())
	}
}

// A mongos that refuses connections for a moment (restarting, not listening yet)
// costs a retry, not a failed validation.
func TestAServerRefusingConnectionsForAMomentIsTriedAgain(t *testing.T) {
	addr := freeAddr(t)
	listening := false
	pauses := countPauses(t, func() {
		if listening {
			return
		}
		s, err := wire.Listen(wire.Config{Addr: addr, Handler: wire.HandlerFunc(fakeNode{role: "mongos", version: "7.0.14"}.handle)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		listening = true
	})
	client, err := Connect(context.Background(), Endpoint{Hosts: []string{addr}, Timeout: shortTimeout})
	if err != nil {
		t.Fatalf("connect to a mongos listening again after a pause: %v (%d pauses)", err, *pauses)
	}
	disconnect(context.Background(), client, time.Second)
	if *pauses != 1 {
		t.Errorf("%d pauses; want one", *pauses)
	}
}

// A server that always closes the connection is reported as such after the retries.
func TestAServerThatAlwaysClosesIsReportedAfterTheRetries(t *testing.T) {
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{})
	p := startClosingProxy(t, s.Addr())
	pauses := countPauses(t, func() {})
	_, err := Connect(context.Background(), Endpoint{Hosts: []string{p.ln.Addr().String()}, Timeout: shortTimeout})
	expectKind(t, err, ErrConnectionClosed, p.ln.Addr().String())
	if *pauses != closedRetries {
		t.Errorf("%d pauses; want %d", *pauses, closedRetries)
	}
}

// A mongos restarting after the connection succeeded, in the middle of a discovery,
// costs one more discovery, not a cluster reported unreachable or unreadable.
func TestADiscoveryCutByARestartIsRunAgain(t *testing.T) {
	var p *closingProxy
	var once sync.Once
	s := startNode(t, fakeNode{role: "mongos", before: func(name string) {
		if name == "buildinfo" {
			once.Do(p.restart)
		}
	}}, wire.Config{})
	p = startClosingProxy(t, s.Addr())
	p.closing.Store(false)
	pauses := countPauses(t, func() { p.closing.Store(false) })
	c, err := Discover(context.Background(), Endpoint{Hosts: []string{p.ln.Addr().String()}, Timeout: shortTimeout})
	if c == nil || errors.Is(err, ErrConnectionClosed) {
		t.Fatalf("discover through a restart: %v", err)
	}
	if c.Kind != KindMongos || c.Router.Version == "" || *pauses != 1 {
		t.Errorf("kind %q, version %q after %d pauses; want the mongos read after one pause", c.Kind, c.Router.Version, *pauses)
	}
}

package topology

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serverTLS is a TLS server configuration with a certificate for 127.0.0.1 and
// localhost signed by the CA.
func (ca *testCA) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	return ca.serverTLSFor(t, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
}

// serverTLSFor is a TLS server configuration with a certificate for the given names.
func (ca *testCA) serverTLSFor(t *testing.T, names []string, ips []net.IP) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// fakeNode is a wire server that answers like one MongoDB server: enough for the
// driver's handshake and for the commands a test needs. It produces real network,
// TLS and authentication failures for the classification tests.
type fakeNode struct {
	// role is "mongos", "primary" (of replica set "rs0") or "standalone".
	role    string
	version string
	// maxWire overrides the reported wire version when non-zero.
	maxWire int32
	// unauthorized lists commands answered with Unauthorized (code 13).
	unauthorized map[string]bool
	// before, when set, is called with each command's lower-case name before it is
	// answered.
	before func(name string)
}

func (n fakeNode) handle(_ context.Context, s *wire.Session, cmd *wire.Command) bson.Raw {
	name := strings.ToLower(cmd.Name)
	if n.before != nil {
		n.before(name)
	}
	if n.unauthorized[name] {
		return wire.ErrorReply(wire.Unauthorized("not authorized on admin to execute command { " + cmd.Name + " }"))
	}
	switch name {
	case "hello", "ismaster":
		d := wire.HelloBase(cmd, n.version)
		if n.maxWire != 0 {
			for i := range d {
				if d[i].Key == "maxWireVersion" {
					d[i].Value = n.maxWire
				}
			}
		}
		switch n.role {
		case "mongos":
			d = append(d, bson.E{Key: "msg", Value: "isdbgrid"})
		case "primary":
			d = append(d, bson.E{Key: "setName", Value: "rs0"}, bson.E{Key: "hosts", Value: bson.A{"127.0.0.1"}})
		}
		return wire.OK(d...)
	}
	id := wire.Identity{Version: n.version, FCV: MajorVersion(n.version)}
	if reply, ok := id.AnswerCommon(s, cmd); ok {
		return reply
	}
	return wire.ErrorReply(wire.CommandNotFound(cmd.Name))
}

// startNode serves a fakeNode; cfg.Handler is set here.
func startNode(t *testing.T, n fakeNode, cfg wire.Config) *wire.Server {
	t.Helper()
	if n.version == "" {
		n.version = "7.0.14"
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.Handler = wire.HandlerFunc(n.handle)
	s, err := wire.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// freeAddr is a 127.0.0.1 address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

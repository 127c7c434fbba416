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
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// selfSignedFor is a self-signed certificate for 127.0.0.1 usable by a server and a
// client, with the subject given.
func selfSignedFor(t *testing.T, subject pkix.Name) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: subject, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
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

func whoami(t *testing.T, c *mongo.Client) (bson.M, error) {
	t.Helper()
	var st struct {
		AuthInfo bson.M `bson:"authInfo"`
	}
	err := c.Database("admin").RunCommand(context.Background(), bson.D{{Key: "connectionStatus", Value: 1}}).Decode(&st)
	return st.AuthInfo, err
}

// An X.509 user authenticates by the client certificate the handshake verified, on
// $external; a certificate for another subject, or SCRAM, does not get in.
func TestX509UserIsTheVerifiedClientCertificate(t *testing.T) {
	cert, pool := selfSignedFor(t, pkix.Name{CommonName: "migrator", OrganizationalUnit: []string{"clients"}})
	other, _ := selfSignedFor(t, pkix.Name{CommonName: "intruder"})
	pool.AddCert(mustParse(t, other))
	subject := "CN=migrator,OU=clients"
	s := listen(t, Config{
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		External: &External{X509Subject: subject},
		Handler:  HandlerFunc(func(ctx context.Context, s *Session, cmd *Command) bson.Raw { return identityHandler(s, cmd) }),
	})
	clientTLS := func(c tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{c}}
	}
	x509Auth := options.Credential{AuthMechanism: MechanismX509, AuthSource: "$external"}

	good := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).SetTLSConfig(clientTLS(cert)).SetAuth(x509Auth))
	info, err := whoami(t, good)
	if err != nil {
		t.Fatalf("X.509 user: %v", err)
	}
	users, _ := info["authenticatedUsers"].(bson.A)
	if len(users) != 1 || users[0].(bson.M)["user"] != subject || users[0].(bson.M)["db"] != "$external" {
		t.Errorf("authenticated users %v; want %s on $external", users, subject)
	}

	wrong := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).SetTLSConfig(clientTLS(other)).SetAuth(x509Auth))
	if err := wrong.Ping(context.Background(), nil); err == nil {
		t.Error("a certificate for another subject authenticated")
	}
	scram := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).SetTLSConfig(clientTLS(cert)).
		SetAuth(options.Credential{Username: "migrator", Password: "x"}))
	if err := scram.Ping(context.Background(), nil); err == nil {
		t.Error("SCRAM authenticated on a cluster whose user is X.509")
	}
	anon := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).SetTLSConfig(clientTLS(cert)))
	var ce mongo.CommandError
	if err := anon.Database("admin").RunCommand(context.Background(), bson.D{{Key: "listDatabases", Value: 1}}).Err(); !errors.As(err, &ce) || ce.Code != 13 {
		t.Errorf("unauthenticated command: %v, want Unauthorized", err)
	}
	noCert := connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).SetTLSConfig(&tls.Config{RootCAs: pool}).SetAuth(x509Auth))
	if err := noCert.Ping(context.Background(), nil); err == nil {
		t.Error("a client without a certificate got in")
	}
}

func TestPlainUserIsOnExternal(t *testing.T) {
	s := listen(t, Config{External: &External{Plain: &Credentials{User: "ldap-dba", Password: "Ld@p pw"}},
		Handler: HandlerFunc(func(ctx context.Context, s *Session, cmd *Command) bson.Raw { return identityHandler(s, cmd) })})
	plain := func(user, pw, source string) *mongo.Client {
		return connect(t, options.Client().ApplyURI("mongodb://"+s.Addr()).
			SetAuth(options.Credential{AuthMechanism: MechanismPLAIN, AuthSource: source, Username: user, Password: pw}))
	}
	info, err := whoami(t, plain("ldap-dba", "Ld@p pw", "$external"))
	if err != nil {
		t.Fatalf("PLAIN user: %v", err)
	}
	if users, _ := info["authenticatedUsers"].(bson.A); len(users) != 1 || users[0].(bson.M)["db"] != "$external" {
		t.Errorf("authenticated users %v; want ldap-dba on $external", users)
	}
	for _, bad := range []struct{ user, pw, source string }{{"ldap-dba", "wrong", "$external"}, {"other", "Ld@p pw", "$external"}} {
		if _, err := whoami(t, plain(bad.user, bad.pw, bad.source)); err == nil {
			t.Errorf("PLAIN %+v authenticated", bad)
		}
	}
}

func identityHandler(s *Session, cmd *Command) bson.Raw {
	if cmd.Name == "hello" || cmd.Name == "isMaster" || cmd.Name == "ismaster" {
		return OK(HelloBase(cmd, "7.0.0")...)
	}
	if reply, ok := (Identity{Version: "7.0.0", FCV: "7.0"}).AnswerCommon(s, cmd); ok {
		return reply
	}
	return ErrorReply(CommandNotFound(cmd.Name))
}

func mustParse(t *testing.T, c tls.Certificate) *x509.Certificate {
	t.Helper()
	p, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

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
	"errors"
	"maps"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/youmark/pkcs8"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// clientPEM is a client certificate for cn signed by the CA, with its key in PEM:
// plain, PKCS#8 encrypted with password ("pkcs8"), or a legacy DEK-Info block ("legacy").
func (ca *testCA) clientPEM(t *testing.T, cn, encryption, password string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: []string{"dba"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	var block *pem.Block
	switch encryption {
	case "":
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}
	case "pkcs8":
		keyDER, err := pkcs8.MarshalPrivateKey(key, []byte(password), nil)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: keyDER}
	case "legacy":
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		//nolint:staticcheck // what openssl's traditional format produces, still in use
		block, err = x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", keyDER, []byte(password), x509.PEMCipherAES256)
		if err != nil {
			t.Fatal(err)
		}
	}
	return append(out, pem.EncodeToMemory(block)...)
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every connection setting of the URI reaches the driver's options, with the TLS
// configuration Shardlift builds (the CA) holding the client certificate too, and
// ForHosts (a shard member) gets the same.
func TestURISettingsReachTheDriverWhole(t *testing.T) {
	ca := newCA(t, "ca")
	caFile := writeTemp(t, "ca.pem", ca.pem)
	plainCert := writeTemp(t, "client.pem", ca.clientPEM(t, "migrator", "", ""))
	pkcs8Cert := writeTemp(t, "client-pkcs8.pem", ca.clientPEM(t, "migrator", "pkcs8", "k3y&pw"))
	legacyCert := writeTemp(t, "client-legacy.pem", ca.clientPEM(t, "migrator", "legacy", "k3y"))
	q := url.QueryEscape
	for _, tc := range []struct {
		name      string
		e         Endpoint
		mechanism string
		source    string
		user      string
		props     map[string]string
		noAuth    bool
		cert      bool
		hostnames bool // tlsAllowInvalidHostnames
	}{
		{name: "SCRAM default", e: Endpoint{URI: "mongodb://u:p@h:1/"}, source: "admin", user: "u"},
		{name: "SCRAM on the URI's db", e: Endpoint{URI: "mongodb://u:p@h:1/sales"}, source: "sales", user: "u"},
		{name: "SCRAM-SHA-1", e: Endpoint{URI: "mongodb://u:p@h:1/?authMechanism=SCRAM-SHA-1"}, mechanism: "SCRAM-SHA-1", source: "admin", user: "u"},
		{name: "SCRAM-SHA-256 authSource", e: Endpoint{URI: "mongodb://u:p@h:1/?authMechanism=SCRAM-SHA-256&authSource=users"}, mechanism: "SCRAM-SHA-256", source: "users", user: "u"},
		{name: "no user", e: Endpoint{URI: "mongodb://h:1/"}, noAuth: true},
		{name: "X.509 with a plain key", e: Endpoint{URI: "mongodb://h:1/?authMechanism=MONGODB-X509&tlsCAFile=" + q(caFile) + "&tlsCertificateKeyFile=" + q(plainCert)},
			mechanism: "MONGODB-X509", source: "$external", cert: true},
		{name: "X.509 named user", e: Endpoint{URI: "mongodb://CN=migrator,OU=dba@h:1/?authMechanism=MONGODB-X509&tls=true&tlsCertificateKeyFile=" + q(plainCert)},
			mechanism: "MONGODB-X509", source: "$external", user: "CN=migrator,OU=dba", cert: true},
		{name: "client cert with SCRAM, PKCS#8 key password in the URI",
			e:      Endpoint{URI: "mongodb://u:p@h:1/?tlsCAFile=" + q(caFile) + "&tlsCertificateKeyFile=" + q(pkcs8Cert) + "&tlsCertificateKeyFilePassword=" + q("k3y&pw")},
			source: "admin", user: "u", cert: true},
		{name: "client cert, key password given apart (keyring, environment)",
			e:      Endpoint{URI: "mongodb://u:p@h:1/?tlsCAFile=" + q(caFile) + "&tlsCertificateKeyFile=" + q(pkcs8Cert), CertificateKeyPassword: "k3y&pw"},
			source: "admin", user: "u", cert: true},
		{name: "legacy encrypted key", e: Endpoint{URI: "mongodb://h:1/?authMechanism=MONGODB-X509&tlsCertificateKeyFile=" + q(legacyCert) + "&sslClientCertificateKeyPassword=k3y"},
			mechanism: "MONGODB-X509", source: "$external", cert: true},
		{name: "PLAIN (LDAP)", e: Endpoint{URI: "mongodb://ldapuser:p@h:1/?authMechanism=PLAIN"}, mechanism: "PLAIN", source: "$external", user: "ldapuser"},
		{name: "PLAIN on the URI's db, as the driver does", e: Endpoint{URI: "mongodb://ldapuser:p@h:1/ldapdb?authMechanism=PLAIN"}, mechanism: "PLAIN", source: "ldapdb", user: "ldapuser"},
		{name: "AWS from the environment", e: Endpoint{URI: "mongodb://h:1/?authMechanism=MONGODB-AWS"}, mechanism: "MONGODB-AWS", source: "$external"},
		{name: "AWS keys and session token", e: Endpoint{URI: "mongodb://AKIA:secret@h:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok"},
			mechanism: "MONGODB-AWS", source: "$external", user: "AKIA", props: map[string]string{"AWS_SESSION_TOKEN": "tok"}},
		{name: "GSSAPI with a service name", e: Endpoint{URI: "mongodb://dba%40EXAMPLE.COM@h:1/?authMechanism=GSSAPI&authMechanismProperties=SERVICE_NAME:mongo2,CANONICALIZE_HOST_NAME:true"},
			mechanism: "GSSAPI", source: "$external", user: "dba@EXAMPLE.COM", props: map[string]string{"SERVICE_NAME": "mongo2", "CANONICALIZE_HOST_NAME": "true"}},
		{name: "tlsAllowInvalidHostnames", e: Endpoint{URI: "mongodb://h:1/?tls=true&tlsCAFile=" + q(caFile) + "&tlsAllowInvalidHostnames=true"}, noAuth: true, hostnames: true},
		{name: "fields instead of a URI (the app's form)",
			e:         Endpoint{Hosts: []string{"m1:1", "m2:2"}, AuthMechanism: "MONGODB-X509", CAFile: caFile, CertificateKeyFile: pkcs8Cert, CertificateKeyPassword: "k3y&pw", AllowInvalidHostnames: true},
			mechanism: "MONGODB-X509", source: "$external", cert: true, hostnames: true},
		{name: "fields: PLAIN", e: Endpoint{Hosts: []string{"m1:1"}, AuthMechanism: "PLAIN", Username: "l", Password: "p"}, mechanism: "PLAIN", source: "$external", user: "l"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range []Endpoint{tc.e, tc.e.ForHosts([]string{"shard0-a:27018"}, "")} {
				opts, err := e.ClientOptions()
				if err != nil {
					t.Fatalf("%s: %v", e, err)
				}
				switch {
				case tc.noAuth && opts.Auth != nil:
					t.Errorf("%s: credential %+v; want none", e, opts.Auth)
				case tc.noAuth:
				case opts.Auth == nil:
					t.Fatalf("%s: no credential", e)
				default:
					a := opts.Auth
					if a.AuthMechanism != tc.mechanism || a.AuthSource != tc.source || a.Username != tc.user {
						t.Errorf("%s: mechanism %q source %q user %q; want %q %q %q", e, a.AuthMechanism, a.AuthSource, a.Username, tc.mechanism, tc.source, tc.user)
					}
					for k, v := range tc.props {
						if a.AuthMechanismProperties[k] != v {
							t.Errorf("%s: authMechanismProperties %v; want %s:%s", e, a.AuthMechanismProperties, k, v)
						}
					}
				}
				if tc.cert || tc.hostnames {
					if opts.TLSConfig == nil {
						t.Fatalf("%s: TLS is off", e)
					}
					if strings.Contains(e.String()+tc.e.URI, "tlsCAFile") || tc.e.CAFile != "" {
						if opts.TLSConfig.RootCAs == nil {
							t.Errorf("%s: the CA was dropped", e)
						}
					}
				}
				if got := opts.TLSConfig != nil && len(opts.TLSConfig.Certificates) == 1; got != tc.cert {
					t.Errorf("%s: client certificate kept %v; want %v", e, got, tc.cert)
				}
				if got := opts.TLSConfig != nil && opts.TLSConfig.VerifyConnection != nil; got != tc.hostnames {
					t.Errorf("%s: host names unchecked %v; want %v", e, got, tc.hostnames)
				}
			}
		})
	}
}

func TestDefaultAuthSourcePerMechanism(t *testing.T) {
	for _, tc := range []struct{ mechanism, db, want string }{
		{"", "", "admin"}, {"", "sales", "sales"},
		{"SCRAM-SHA-1", "", "admin"}, {"SCRAM-SHA-256", "", "admin"}, {"scram-sha-256", "sales", "sales"},
		{"MONGODB-X509", "", "$external"}, {"MONGODB-X509", "sales", "$external"},
		{"MONGODB-AWS", "sales", "$external"}, {"GSSAPI", "", "$external"},
		{"PLAIN", "", "$external"}, {"plain", "ldap", "ldap"},
	} {
		if got := DefaultAuthSource(tc.mechanism, tc.db); got != tc.want {
			t.Errorf("DefaultAuthSource(%q, %q) = %q, want %q", tc.mechanism, tc.db, got, tc.want)
		}
		// The driver agrees, for a connection string.
		uri := "mongodb://u:pw@h:1/" + tc.db
		if strings.EqualFold(tc.mechanism, MechanismX509) {
			uri = "mongodb://h:1/" + tc.db // an X.509 user has no password
		}
		if tc.mechanism != "" {
			uri += "?authMechanism=" + tc.mechanism
		}
		cs, err := ParseURI(uri)
		if err != nil {
			t.Fatal(err)
		}
		if cs.AuthSource != tc.want {
			t.Errorf("driver: %s authenticates on %q, DefaultAuthSource says %q", uri, cs.AuthSource, tc.want)
		}
	}
	if _, err := (Endpoint{Hosts: []string{"h:1"}, AuthMechanism: "KERBEROS"}).ClientOptions(); !errors.Is(err, ErrInvalidURI) || !strings.Contains(err.Error(), "GSSAPI") {
		t.Errorf("unknown mechanism: %v; want ErrInvalidURI naming the ones offered", err)
	}
}

func TestClientCertificateFailuresAreClassified(t *testing.T) {
	ca := newCA(t, "ca")
	encrypted := writeTemp(t, "enc.pem", ca.clientPEM(t, "m", "pkcs8", "right"))
	certOnly := writeTemp(t, "cert.pem", ca.pem)
	for _, tc := range []struct {
		name string
		e    Endpoint
		kind error
	}{
		{"missing file", Endpoint{Hosts: []string{"h:1"}, CertificateKeyFile: filepath.Join(t.TempDir(), "nope.pem")}, ErrClientCertUnreadable},
		{"no key in the file", Endpoint{Hosts: []string{"h:1"}, CertificateKeyFile: certOnly}, ErrInvalidClientCert},
		{"encrypted key without password", Endpoint{Hosts: []string{"h:1"}, CertificateKeyFile: encrypted}, ErrClientKeyPassword},
		{"wrong password", Endpoint{URI: "mongodb://h:1/?tlsCertificateKeyFile=" + url.QueryEscape(encrypted) + "&tlsCertificateKeyFilePassword=wrong"}, ErrClientKeyPassword},
	} {
		_, err := tc.e.ClientOptions()
		if !errors.Is(err, tc.kind) || Fix(err) == "" {
			t.Errorf("%s: %v; want %v with a fix", tc.name, err, tc.kind)
		}
		if err != nil && strings.Contains(err.Error(), "wrong") {
			t.Errorf("%s: %q shows the key password", tc.name, err)
		}
	}
}

// A server that requires client certificates refuses a connection without one with a
// precise error, and accepts the one its CA signed; tlsAllowInvalidHostnames accepts
// a certificate for another name but still not one from another CA.
func TestClientCertificateIsPresentedAndItsRefusalClassified(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t, "ca"), newCA(t, "other")
	srvTLS := ca.serverTLSFor(t, []string{"db.internal.example"}, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srvTLS.ClientCAs, srvTLS.ClientAuth = pool, tls.RequireAndVerifyClientCert
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{TLS: srvTLS})

	base := Endpoint{Hosts: []string{s.Addr()}, CAPEM: ca.pem, AllowInvalidHostnames: true, Timeout: shortTimeout}
	_, err := Connect(context.Background(), base)
	expectKind(t, err, ErrClientCertRefused, s.Addr())

	foreign := base
	foreign.CertificateKeyFile = writeTemp(t, "foreign.pem", other.clientPEM(t, "m", "", ""))
	_, err = Connect(context.Background(), foreign)
	expectKind(t, err, ErrClientCertRefused, s.Addr())

	good := base
	good.CertificateKeyFile = writeTemp(t, "good.pem", ca.clientPEM(t, "m", "", ""))
	client, err := Connect(context.Background(), good)
	if err != nil {
		t.Fatalf("with the CA's client certificate: %v", err)
	}
	disconnect(context.Background(), client, time.Second)

	strict := good
	strict.AllowInvalidHostnames = false
	_, err = Connect(context.Background(), strict)
	expectKind(t, err, ErrCertificateName, s.Addr())

	wrongCA := good
	wrongCA.CAPEM = other.pem
	_, err = Connect(context.Background(), wrongCA)
	expectKind(t, err, ErrUnknownAuthority, s.Addr())
}

func TestMaskURIHidesKeyPasswordAndSessionToken(t *testing.T) {
	in := "mongodb://AKIA:s3cret@h:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:t0ken&tlsCertificateKeyFile=/c.pem&tlsCertificateKeyFilePassword=k3y"
	got := MaskURI(in)
	for _, secret := range []string{"s3cret", "t0ken", "k3y"} {
		if strings.Contains(got, secret) {
			t.Errorf("MaskURI = %q shows %q", got, secret)
		}
	}
	if !strings.Contains(got, "tlsCertificateKeyFile=/c.pem") || !strings.Contains(got, "authMechanism=MONGODB-AWS") {
		t.Errorf("MaskURI = %q lost what is not secret", got)
	}
	if got := MaskURI("mongodb://h:1/?tls=true;tlsCertificateKeyFilePassword=k3y;appName=a"); got != "mongodb://h:1/?tls=true;tlsCertificateKeyFilePassword=****;appName=a" {
		t.Errorf("MaskURI with ; separators = %q", got)
	}
	if !reflect.DeepEqual(withoutQueryOptions(in, tlsFileOptions), "mongodb://AKIA:s3cret@h:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:t0ken") {
		t.Errorf("withoutQueryOptions = %q", withoutQueryOptions(in, tlsFileOptions))
	}
}

func TestMechanismPropertiesAreReadAsAConnectionStringWritesThem(t *testing.T) {
	t.Parallel()
	got, err := ParseMechanismProperties(" SERVICE_NAME:mongodb, CANONICALIZE_HOST_NAME:true,SERVICE_REALM:EX:AMPLE ")
	want := map[string]string{"SERVICE_NAME": "mongodb", "CANONICALIZE_HOST_NAME": "true", "SERVICE_REALM": "EX:AMPLE"}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	if got, err := ParseMechanismProperties("  "); err != nil || got != nil {
		t.Fatalf("empty: %v, %v", got, err)
	}
	if _, err := ParseMechanismProperties("SERVICE_NAME"); err == nil || !strings.Contains(err.Error(), "NAME:VALUE") {
		t.Fatalf("a name without a value: %v", err)
	}
}

package topology

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// Bad input, from users (connection strings, host lists, CA PEM) and from the servers
// themselves (shard host strings): no panic, a classified error that says what is
// wrong, and never an input accepted with a part of it dropped.

// FuzzParseHostString: a shard or config server host string either parses into
// exactly the hosts it lists, or is a *MetadataError naming it.
func FuzzParseHostString(f *testing.F) {
	for _, s := range []string{
		"rs0/h1:27017,h2:27018", "h1:1,h2:65535", "cfgRS/[::1]:27019", "rs0/", "/h:1", "rs0/h:0",
		"rs0/h:65536", "rs0/h", "a/b/c:1", "rs 0/h:1", "h:1,h:1", "h:1,,h:2", "", ",", "rs0/h:1 ", "h:-1", "[::1]:x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, hosts, err := ParseHostString(s)
		if err != nil {
			var me *MetadataError
			if !errors.As(err, &me) || !errors.Is(err, ErrMetadata) {
				t.Fatalf("%q: error %v is not a *MetadataError", s, err)
			}
			if me.Reason == "" || !strings.Contains(me.Where, "host string") {
				t.Fatalf("%q: the error does not say what is wrong: %v", s, err)
			}
			return
		}
		if len(hosts) == 0 {
			t.Fatalf("%q: accepted with no hosts", s)
		}
		for _, h := range hosts {
			if err := checkHostPort(h); err != nil {
				t.Fatalf("%q: accepted host %q: %v", s, h, err)
			}
		}
		// Nothing dropped: the parts rebuild the string.
		rebuilt := strings.Join(hosts, ",")
		if set != "" {
			rebuilt = set + "/" + rebuilt
		}
		if rebuilt != s {
			t.Fatalf("%q parsed as set %q hosts %q: something was dropped", s, set, hosts)
		}
	})
}

// FuzzConnectionString: a connection string gives driver options whose hosts are the
// string's, or a classified *Error with a fix (ErrInvalidURI, ErrUnescapedUserInfo,
// ErrInvalidCA for a tlsCAFile that is not PEM, ErrCAFileUnreadable for one that
// cannot be read) that never shows the password.
func FuzzConnectionString(f *testing.F) {
	for _, s := range []string{
		"mongodb://h1:27017,h2:27017/?replicaSet=rs0", "mongodb://user:s3cret-pw@h:1/?authSource=admin",
		"mongodb://user:s3cret-pw@h:99999/", "mongodb://user:s3cret-pw@/", "mongodb://h:1/?tls=true&tlsInsecure=true",
		"mongodb://h:1/?connectTimeoutMS=-1", "mongodb://h:1/?unknownOption=x", "mongodb://%zz@h:1/", "mongodb://h:1,/",
		"mongodb://:@h:1/", "http://h:1/", "mongodb://", "h1:27017", "mongodb://h:1/?tlsCAFile=%2Fnonexistent",
		"mongodb://u:p@a@h:1/", "mongodb://h:1/db?w=majority&readPreference=secondary",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		if strings.HasPrefix(strings.ToLower(uri), "mongodb+srv://") {
			t.Skip("mongodb+srv:// resolves DNS; its parsing is the driver's")
		}
		e := Endpoint{URI: uri}
		opts, err := e.ClientOptions()
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("%q: unclassified error %v", uri, err)
			}
			switch te.Kind {
			case ErrInvalidURI, ErrUnescapedUserInfo, ErrInvalidCA, ErrCAFileUnreadable:
			default:
				t.Fatalf("%q: error of kind %v: %v", uri, te.Kind, err)
			}
			if pw := uriPassword(uri); len(pw) >= 4 && !strings.Contains(MaskURI(uri), pw) && strings.Contains(err.Error(), pw) {
				t.Fatalf("%q: the error shows the password: %v", uri, err)
			}
			if Fix(err) == "" {
				t.Fatalf("%q: no fix for %v", uri, err)
			}
			return
		}
		if len(opts.Hosts) == 0 {
			t.Fatalf("%q: accepted with no hosts", uri)
		}
		for _, h := range opts.Hosts {
			if strings.TrimSpace(h) == "" {
				t.Fatalf("%q: accepted an empty host", uri)
			}
		}
	})
}

// FuzzHostList: a host list (comma separated, as typed in the app) gives options with
// exactly those hosts, or an ErrInvalidURI naming the problem.
func FuzzHostList(f *testing.F) {
	for _, s := range []string{"h1:27017,h2:27017", "h1", "h1:1, h2:2", ",", "h:1,,h:2", " ", "[::1]:27017", "h:0", "h:abc"} {
		f.Add(s, "")
		f.Add(s, "rs0")
	}
	f.Fuzz(func(t *testing.T, list, set string) {
		hosts := strings.Split(list, ",")
		opts, err := Endpoint{Hosts: hosts, ReplicaSet: set}.ClientOptions()
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || te.Kind != ErrInvalidURI {
				t.Fatalf("%q: error %v is not ErrInvalidURI", list, err)
			}
			return
		}
		if len(opts.Hosts) != len(hosts) {
			t.Fatalf("%q: %d hosts given, options have %v", list, len(hosts), opts.Hosts)
		}
		for i, h := range hosts {
			if opts.Hosts[i] != h || strings.TrimSpace(h) == "" {
				t.Fatalf("%q: host %q became %q", list, h, opts.Hosts[i])
			}
		}
	})
}

// testCAPEM is a freshly made self-signed CA certificate in PEM.
func testCAPEM(f *testing.F) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// FuzzCAPEM: pasted CA text either yields a TLS configuration trusting it, or an
// ErrInvalidCA that tells what a PEM CA looks like; never TLS without the CA.
func FuzzCAPEM(f *testing.F) {
	ca := testCAPEM(f)
	f.Add(ca)
	f.Add(append(append([]byte{}, ca...), ca...))
	f.Add(ca[:len(ca)/2])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x0a})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, pemText []byte) {
		if len(pemText) == 0 {
			return // no CA given: nothing to parse
		}
		opts, err := Endpoint{Hosts: []string{"h:27017"}, CAPEM: pemText}.ClientOptions()
		if err != nil {
			var te *Error
			if !errors.As(err, &te) || te.Kind != ErrInvalidCA {
				t.Fatalf("error %v is not ErrInvalidCA", err)
			}
			if !strings.Contains(Fix(err), "PEM") {
				t.Fatalf("the fix does not say what a CA looks like: %q", Fix(err))
			}
			return
		}
		if opts.TLSConfig == nil || opts.TLSConfig.RootCAs == nil {
			t.Fatal("a CA was given and accepted, but TLS does not trust it")
		}
		if opts.TLSConfig.InsecureSkipVerify {
			t.Fatal("a CA was given and verification is off")
		}
	})
}

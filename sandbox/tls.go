package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certs is a sandbox's TLS material: a CA (its key is thrown away once the
// certificates are signed), one server certificate for 127.0.0.1 and localhost,
// shared by the router, the config server and the shards (which present it to each
// other as members do), and the client certificate of the cluster's X.509 user.
type certs struct {
	caFile string
	server tls.Certificate
	pool   *x509.CertPool
	// clientFile holds the X.509 user's certificate and key; clientSubject is the
	// user's name, the certificate's subject.
	clientFile    string
	clientSubject string
}

// clientName is the subject of the X.509 user's certificate.
var clientName = pkix.Name{CommonName: "migrator", OrganizationalUnit: []string{"clients"}, Organization: []string{"Shardlift sandbox (test only)"}}

// loadOrCreateCerts reuses dir/ca.pem, server.pem, server-key.pem and client.pem
// when they are all there, and generates them otherwise.
func loadOrCreateCerts(dir string) (*certs, error) {
	caFile := filepath.Join(dir, "ca.pem")
	certFile := filepath.Join(dir, "server.pem")
	keyFile := filepath.Join(dir, "server-key.pem")
	clientFile := filepath.Join(dir, "client.pem")
	if !exists(caFile) || !exists(certFile) || !exists(keyFile) || !exists(clientFile) {
		if err := generateCerts(dir, caFile, certFile, keyFile, clientFile); err != nil {
			return nil, fmt.Errorf("generate the sandbox's TLS certificates in %s: %w", dir, err)
		}
	}
	server, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load the sandbox's server certificate (delete %s to regenerate it): %w", dir, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the sandbox's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate (delete %s to regenerate it)", caFile, dir)
	}
	client, err := tls.LoadX509KeyPair(clientFile, clientFile)
	if err != nil {
		return nil, fmt.Errorf("load the sandbox's client certificate (delete %s to regenerate it): %w", dir, err)
	}
	leaf, err := x509.ParseCertificate(client.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load the sandbox's client certificate (delete %s to regenerate it): %w", dir, err)
	}
	return &certs{caFile: caFile, server: server, pool: pool, clientFile: clientFile, clientSubject: leaf.Subject.String()}, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func generateCerts(dir, caFile, certFile, keyFile, clientFile string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Shardlift sandbox CA", Organization: []string{"Shardlift sandbox (test only)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"Shardlift sandbox (test only)"}},
		DNSNames:     []string{"localhost", "*.sandbox.invalid"}, // the private names of PrivateHostnames
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	client, err := clientCertPEM(ca, caKey, now)
	if err != nil {
		return err
	}
	// The keys first and the CA last: a reader that finds all the files knows the
	// set is complete.
	return errors.Join(
		writePEM(keyFile, "EC PRIVATE KEY", keyDER, 0o600),
		os.WriteFile(clientFile, client, 0o600),
		writePEM(certFile, "CERTIFICATE", der, 0o644),
		writePEM(caFile, "CERTIFICATE", caDER, 0o644),
	)
}

// clientCertPEM is the X.509 user's certificate, signed by the CA, followed by its
// key: one PEM file, as tlsCertificateKeyFile takes it.
func clientCertPEM(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      clientName,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode)
}

// serverConfig is the TLS configuration of every sandbox listener; with
// requireClientCerts, as a mongod with net.tls.CAFile and X.509 users, a client must
// present a certificate the CA signed.
func (c *certs) serverConfig(requireClientCerts bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{c.server}, MinVersion: tls.VersionTLS12}
	if requireClientCerts {
		cfg.ClientCAs, cfg.ClientAuth = c.pool, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// clientConfig is how the router connects to its shards: it presents the members'
// certificate, as cluster members do to each other.
func (c *certs) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.pool, Certificates: []tls.Certificate{c.server}, MinVersion: tls.VersionTLS12}
}

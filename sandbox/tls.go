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

// certs is a sandbox's TLS material: a CA (its key is thrown away once the server
// certificate is signed) and one server certificate for 127.0.0.1 and localhost,
// shared by the router, the config server and the shards.
type certs struct {
	caFile string
	server tls.Certificate
	pool   *x509.CertPool
}

// loadOrCreateCerts reuses dir/ca.pem, server.pem and server-key.pem when they are
// all there, and generates them otherwise.
func loadOrCreateCerts(dir string) (*certs, error) {
	caFile := filepath.Join(dir, "ca.pem")
	certFile := filepath.Join(dir, "server.pem")
	keyFile := filepath.Join(dir, "server-key.pem")
	if !exists(caFile) || !exists(certFile) || !exists(keyFile) {
		if err := generateCerts(dir, caFile, certFile, keyFile); err != nil {
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
	return &certs{caFile: caFile, server: server, pool: pool}, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func generateCerts(dir, caFile, certFile, keyFile string) error {
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
		DNSNames:     []string{"localhost"},
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
	// The key first and the CA last: a reader that finds all three files knows the
	// set is complete.
	return errors.Join(
		writePEM(keyFile, "EC PRIVATE KEY", keyDER, 0o600),
		writePEM(certFile, "CERTIFICATE", der, 0o644),
		writePEM(caFile, "CERTIFICATE", caDER, 0o644),
	)
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

// serverConfig is the TLS configuration of every sandbox listener.
func (c *certs) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.server}, MinVersion: tls.VersionTLS12}
}

// clientConfig is how the router connects to its shards.
func (c *certs) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.pool, MinVersion: tls.VersionTLS12}
}

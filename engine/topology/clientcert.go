package topology

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/youmark/pkcs8"
)

// loadClientCertificate reads the client certificate and its private key from PEM
// files (one file holding both, as tlsCertificateKeyFile does, or a certificate file
// and a key file). An encrypted key (PKCS#8 or a legacy DEK-Info block) is decrypted
// with password. Every failure is an *Error that names the file and never the password.
func loadClientCertificate(password string, files ...string) (tls.Certificate, error) {
	var data []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			cause := err
			var pe *fs.PathError
			if errors.As(err, &pe) {
				cause = pe.Err
			}
			return tls.Certificate{}, &Error{Kind: ErrClientCertUnreadable, Op: "read client certificate " + f, Err: cause}
		}
		data = append(append(data, b...), '\n')
	}
	where := "load client certificate " + strings.Join(files, " and ")
	var certs, keys [][]byte
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			certs = append(certs, pem.EncodeToMemory(block))
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			key, err := decryptKey(block, password)
			if err != nil {
				return tls.Certificate{}, &Error{Kind: ErrClientKeyPassword, Op: where, Err: err}
			}
			keys = append(keys, key)
		}
	}
	if len(certs) == 0 || len(keys) == 0 {
		return tls.Certificate{}, &Error{Kind: ErrInvalidClientCert, Op: where,
			Err: fmt.Errorf("found %d certificate(s) and %d private key(s) in PEM form; need both", len(certs), len(keys))}
	}
	cert, err := tls.X509KeyPair(bytes.Join(certs, nil), bytes.Join(keys, nil))
	if err != nil {
		return tls.Certificate{}, &Error{Kind: ErrInvalidClientCert, Op: where, Err: err}
	}
	return cert, nil
}

// decryptKey returns a private key block as unencrypted PEM, decrypting it with
// password when it is encrypted.
func decryptKey(block *pem.Block, password string) ([]byte, error) {
	legacy := x509.IsEncryptedPEMBlock(block) //nolint:staticcheck // MongoDB's docs still produce DEK-Info keys
	pkcs8Encrypted := block.Type == "ENCRYPTED PRIVATE KEY"
	if !legacy && !pkcs8Encrypted {
		return pem.EncodeToMemory(block), nil
	}
	if password == "" {
		return nil, errors.New("the private key is encrypted and no password was given")
	}
	if legacy {
		der, err := x509.DecryptPEMBlock(block, []byte(password)) //nolint:staticcheck // see above
		if err != nil {
			return nil, errors.New("the password does not decrypt the private key")
		}
		return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der}), nil
	}
	key, err := pkcs8.ParsePKCS8PrivateKey(block.Bytes, []byte(password))
	if err != nil {
		return nil, errors.New("the password does not decrypt the private key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// verifyIgnoringHostname is the certificate check of tlsAllowInvalidHostnames: the
// server's chain must still lead to a trusted CA (roots, or the system's when nil),
// whatever host name its certificate is for.
func verifyIgnoringHostname(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		return err
	}
}

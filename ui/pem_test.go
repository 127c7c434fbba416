package ui

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testCA makes a self-signed certificate, valid from notBefore to notAfter, as PEM.
func testCA(t testing.TB, notBefore, notAfter time.Time, isCA bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Example Test CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCheckPEMSaysWhatIsWrong(t *testing.T) {
	now := t0
	good := string(testCA(t, now.Add(-time.Hour), now.Add(24*time.Hour), true))
	key := "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
	csr := "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
	broken := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	cases := []struct {
		name, text, err, warning, summary string
	}{
		{name: "empty", text: "  \n"},
		{name: "plain text", text: "hello", err: "not a PEM certificate"},
		{name: "half pasted", text: good[:len(good)/2], err: "not a PEM certificate"},
		{name: "private key", text: key, err: "this is a private key"},
		{name: "request", text: csr, err: "this is a certificate request, not a certificate"},
		{name: "not DER", text: broken, err: "certificate 1 cannot be read"},
		{name: "trailing junk", text: good + "junk", err: "the text after certificate 1 is not PEM"},
		{name: "good", text: good, summary: "1 certificate: Example Test CA, valid until"},
		{name: "bundle", text: good + "\n" + good, summary: "2 certificates: Example Test CA"},
		{name: "expired", text: string(testCA(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), true)), warning: "certificate 1 expired on"},
		{name: "not yet valid", text: string(testCA(t, now.Add(24*time.Hour), now.Add(48*time.Hour), true)), warning: "is not valid before"},
		{name: "server certificate", text: string(testCA(t, now.Add(-time.Hour), now.Add(time.Hour), false)), warning: "is not a CA certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := checkPEM(c.text, now)
			switch {
			case c.err != "":
				if got.Err == nil || !strings.Contains(got.Err.Error(), c.err) {
					t.Fatalf("error %v, want one saying %q", got.Err, c.err)
				}
			case got.Err != nil:
				t.Fatalf("unexpected error %v", got.Err)
			}
			if !strings.Contains(got.Warning, c.warning) || (c.warning == "" && got.Warning != "") {
				t.Errorf("warning %q, want %q", got.Warning, c.warning)
			}
			if !strings.Contains(got.Summary, c.summary) {
				t.Errorf("summary %q, want %q", got.Summary, c.summary)
			}
		})
	}
}

package ui

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// pemCheck is what the CA field says about the text in it, as the user types.
type pemCheck struct {
	// Summary describes valid certificates ("1 certificate: CN=Example CA, valid until 2031-01-02").
	Summary string
	// Warning is set when the certificates parse but TLS will probably fail with them.
	Warning string
	// Err is set when the text is not usable; its message says what to paste instead.
	Err error
}

// checkPEM parses a CA bundle: one or more PEM CERTIFICATE blocks and nothing else.
func checkPEM(text string, now time.Time) pemCheck {
	rest := bytes.TrimSpace([]byte(text))
	if len(rest) == 0 {
		return pemCheck{}
	}
	var certs []*x509.Certificate
	for len(rest) > 0 {
		block, after := pem.Decode(rest)
		if block == nil {
			if len(certs) == 0 {
				return pemCheck{Err: errors.New("not a PEM certificate: paste the text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----, both lines included")}
			}
			return pemCheck{Err: fmt.Errorf("the text after certificate %d is not PEM: remove it or paste the complete certificate", len(certs))}
		}
		switch {
		case strings.Contains(block.Type, "PRIVATE KEY"):
			return pemCheck{Err: errors.New("this is a private key, not a certificate: paste the CA certificate (BEGIN CERTIFICATE), and keep the key secret")}
		case block.Type != "CERTIFICATE":
			return pemCheck{Err: fmt.Errorf("this is a %s, not a certificate: paste the CA certificate (BEGIN CERTIFICATE)", strings.ToLower(block.Type))}
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return pemCheck{Err: fmt.Errorf("certificate %d cannot be read (%v): copy it again from the CA file", len(certs)+1, err)}
		}
		certs = append(certs, c)
		rest = bytes.TrimSpace(after)
	}

	first := certs[0]
	name := first.Subject.CommonName
	if name == "" {
		name = first.Subject.String()
	}
	res := pemCheck{Summary: fmt.Sprintf("%d certificate%s: %s, valid until %s",
		len(certs), plural(len(certs)), name, first.NotAfter.UTC().Format("2006-01-02"))}
	var warnings []string
	for i, c := range certs {
		switch {
		case now.After(c.NotAfter):
			warnings = append(warnings, fmt.Sprintf("certificate %d expired on %s", i+1, c.NotAfter.UTC().Format("2006-01-02")))
		case now.Before(c.NotBefore):
			warnings = append(warnings, fmt.Sprintf("certificate %d is not valid before %s", i+1, c.NotBefore.UTC().Format("2006-01-02")))
		}
		if !c.IsCA {
			warnings = append(warnings, fmt.Sprintf("certificate %d is not a CA certificate (is it the server's own?)", i+1))
		}
	}
	if len(warnings) > 0 {
		res.Warning = strings.Join(warnings, "; ") + ": TLS verification will probably fail"
	}
	return res
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

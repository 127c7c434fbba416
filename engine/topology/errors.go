package topology

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/x/mongo/driver"
	"go.mongodb.org/mongo-driver/x/mongo/driver/auth"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	"github.com/shardlift/shardlift/engine/mongoerr"
)

// Kinds of connection and permission failures. Every error Connect, Discover and the
// probes return for one of these causes is an *Error whose Kind is one of them, so
// callers test with errors.Is(err, ErrRefused) and show Error() and Fix(err) to the DBA.
var (
	// ErrInvalidURI: the connection string does not parse.
	ErrInvalidURI = errors.New("the connection string is not valid")
	// ErrDNS: the host name does not resolve (or the SRV record of a mongodb+srv URI).
	ErrDNS = errors.New("the host name does not resolve")
	// ErrRefused: nothing listens on that host and port (or a firewall rejects it).
	ErrRefused = errors.New("the connection was refused")
	// ErrTimeout: no answer within the timeout (a firewall dropping packets, a dead
	// host, a wrong port on a host that does not answer).
	ErrTimeout = errors.New("no answer within the timeout")
	// ErrTLSRequired: TLS is off but the server only accepts TLS connections.
	ErrTLSRequired = errors.New("the server requires TLS but TLS is off")
	// ErrNotTLS: TLS is on but the server does not speak TLS.
	ErrNotTLS = errors.New("TLS is on but the server does not use TLS")
	// ErrUnknownAuthority: the server's certificate is not signed by the CA given
	// (or by a system CA when none is given).
	ErrUnknownAuthority = errors.New("the server's certificate is not signed by a trusted CA")
	// ErrCertificateName: the server's certificate is for another host name.
	ErrCertificateName = errors.New("the server's certificate does not match its host name")
	// ErrCertificateInvalid: the server's certificate is expired or otherwise unusable.
	ErrCertificateInvalid = errors.New("the server's certificate is not valid")
	// ErrInvalidCA: the CA file or pasted CA is not a PEM certificate.
	ErrInvalidCA = errors.New("the CA file is not a valid PEM certificate")
	// ErrCAFileUnreadable: the CA file is missing or cannot be read.
	ErrCAFileUnreadable = errors.New("the CA file cannot be read")
	// ErrUnescapedUserInfo: the user name or password in a connection string holds a
	// character that must be percent-encoded there (@ : / %).
	ErrUnescapedUserInfo = errors.New("the user name or password in the connection string has a character that must be percent-encoded")
	// ErrReplicaSetOnMongos: the connection string names a replica set (replicaSet=)
	// but its host is a mongos, which belongs to none: the driver finds no member.
	ErrReplicaSetOnMongos = errors.New("the connection string names a replica set, but the host is a mongos")
	// ErrAuthRequired: the server enforces authentication and no user was given.
	ErrAuthRequired = errors.New("the cluster requires authentication and no user was given")
	// ErrAuthFailed: the server rejected the user name or password (code 18).
	ErrAuthFailed = errors.New("authentication failed")
	// ErrUnauthorized: the user is authenticated but lacks a privilege (code 13).
	ErrUnauthorized = errors.New("the user is not authorized")
	// ErrServerTooOld: the server is older than MongoDB 3.6, which the driver cannot use.
	ErrServerTooOld = errors.New("the server is older than MongoDB 3.6")
	// ErrClientCertUnreadable: the client certificate file is missing or cannot be read.
	ErrClientCertUnreadable = errors.New("the client certificate file cannot be read")
	// ErrInvalidClientCert: the client certificate file does not hold a PEM
	// certificate with its matching private key.
	ErrInvalidClientCert = errors.New("the client certificate file is not a PEM certificate with its private key")
	// ErrClientKeyPassword: the client certificate's private key is encrypted and the
	// password is missing or wrong.
	ErrClientKeyPassword = errors.New("the client certificate's private key cannot be decrypted")
	// ErrClientCertRefused: the server requires a client certificate and got none, or
	// one not signed by a CA it trusts.
	ErrClientCertRefused = errors.New("the server refused the client certificate (or requires one)")
	// ErrMechanismUnavailable: the authentication mechanism is not enabled on the
	// server, or not built into this Shardlift (GSSAPI).
	ErrMechanismUnavailable = errors.New("the authentication mechanism is not available")
	// ErrConnectionClosed: the server closed the connection during the handshake for
	// a reason the probe could not tell.
	ErrConnectionClosed = errors.New("the server closed the connection")
)

// Error is a classified failure: what kind it is, where it happened and what was
// being done. It matches its Kind with errors.Is and unwraps to the original error.
type Error struct {
	// Kind is one of the Err* sentinels of this package.
	Kind error
	// Host is the host:port concerned, or "" when the failure is not tied to one.
	Host string
	// Op says what was being done, such as "connect" or "listShards".
	Op string
	// Err is the underlying error from the driver, the network or the TLS stack.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		if e.Host != "" {
			b.WriteString(" " + e.Host)
		}
		b.WriteString(": ")
	} else if e.Host != "" {
		b.WriteString(e.Host + ": ")
	}
	b.WriteString(e.Kind.Error())
	if e.Err != nil {
		b.WriteString(" (" + e.Err.Error() + ")")
	}
	return b.String()
}

// Unwrap lets errors.Is see both the Kind and the original error.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// fixes are what a DBA should do about each kind, modeled on the Atlas procedure's
// "If validation fails, check that..." list.
var fixes = map[error]string{
	ErrInvalidURI:           "Check the connection string: mongodb://[user[:password]@]host1:port1[,host2:port2]/[?options] or mongodb+srv://host/.",
	ErrDNS:                  "Check the host name for typos and that it resolves from this workstation (a private name may need the VPN, a DNS server or an /etc/hosts entry). A shard or config server name only the cluster's own network resolves can be mapped to an address this workstation reaches: in the app, in the Shard addresses table; on the command line, --map-host NAME:PORT=REACHABLE:PORT or --host-map FILE.",
	ErrRefused:              "Check that mongos/mongod runs on that host and port, and that the cluster's firewall lets this workstation in.",
	ErrTimeout:              "Grant this workstation network access on the cluster's firewall (packets are being dropped), check the host and port, or allow a longer --timeout on a slow link.",
	ErrTLSRequired:          "Turn TLS on (tls=true in the URI, the TLS toggle in the app) and give the cluster's CA file if its certificate is not from a public CA.",
	ErrNotTLS:               "Turn TLS off: this server accepts plain connections only (the TLS toggle must be on only if the cluster requires it).",
	ErrUnknownAuthority:     "Give the CA file that signed the cluster's certificates (--source-ca/--destination-ca, or paste the PEM in the app); the CA given did not sign this server's certificate.",
	ErrCertificateName:      "Connect with the host name written in the server's certificate (not an IP address or an alias the certificate does not list).",
	ErrCertificateInvalid:   "Renew the server's certificate (it is expired, not yet valid or not usable for a server), or check the workstation's clock.",
	ErrInvalidCA:            "Give the CA as a PEM file (it starts with -----BEGIN CERTIFICATE-----); a DER, PKCS#12 or key file does not work.",
	ErrCAFileUnreadable:     "Check the CA file's path and that this user may read it (--source-ca/--destination-ca or tlsCAFile= on the command line); in the app, choose the file again or paste the certificate.",
	ErrUnescapedUserInfo:    "Percent-encode these characters in the user name and password of the connection string: @ as %40, : as %3A, / as %2F, % as %25. Or leave the password out of the connection string: in the app, type it in the Password field; on the command line, put it in SHARDLIFT_SOURCE_PASSWORD or SHARDLIFT_DESTINATION_PASSWORD.",
	ErrReplicaSetOnMongos:   "Remove replicaSet= from the connection string: give the mongos hosts alone (Shardlift finds each shard's replica set itself).",
	ErrAuthRequired:         "Enter the user name and password of a user with the readWriteAnyDatabase and clusterAdmin roles: in the app, the Username and Password fields; on the command line, mongodb://USER@host:port/ with the password in SHARDLIFT_SOURCE_PASSWORD or SHARDLIFT_DESTINATION_PASSWORD.",
	ErrAuthFailed:           "Check the user name and password, and that the user exists on the admin database (authSource); on a sharded source the same user must exist on every shard and on the config server replica set.",
	ErrUnauthorized:         "Grant the user the readWriteAnyDatabase and clusterAdmin roles on the admin database (on the cluster, every shard and the config servers).",
	ErrServerTooOld:         "Upgrade the cluster to MongoDB 3.6 or newer before migrating: older servers are not supported.",
	ErrClientCertUnreadable: "Check the client certificate file's path (tlsCertificateKeyFile= in the connection string, the Client certificate field in the app) and that this user may read it.",
	ErrInvalidClientCert:    "Give one PEM file holding the client certificate and its private key (cat client.crt client.key > client.pem), as mongosh's --tlsCertificateKeyFile takes it.",
	ErrClientKeyPassword:    "Give the password of the client certificate's private key: in the app, the Key password field; on the command line, SHARDLIFT_SOURCE_KEY_PASSWORD or SHARDLIFT_DESTINATION_KEY_PASSWORD (or tlsCertificateKeyFilePassword= in the connection string).",
	ErrClientCertRefused:    "Give a client certificate signed by a CA the cluster trusts (tlsCertificateKeyFile= in the connection string, the Client certificate field in the app): the cluster requires one (net.tls.mode requireTLS with a CAFile, or MONGODB-X509 users).",
	ErrMechanismUnavailable: "Use an authentication mechanism the cluster enables (its setParameter authenticationMechanisms); for GSSAPI (Kerberos), use a Shardlift built with -tags gssapi (Debian: apt-get install libkrb5-dev).",
	ErrConnectionClosed:     "Check that the host and port are a MongoDB server, whether it requires TLS (the TLS toggle) and the server's log for the reason it closed the connection.",
}

// Fix is the action a DBA should take for a classified error, or "" for others.
func Fix(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return fixes[e.Kind]
	}
	return ""
}

// codeAuthFailed and codeUnauthorized are MongoDB's error codes for a refused
// login and for a missing privilege.
const (
	codeAuthFailed           = 18
	codeUnauthorized         = 13
	codeMechanismUnavailable = 334
)

// clientCertAlerts are the TLS alerts a server sends about the client's certificate
// (crypto/tls names them so in "remote error: tls: ...").
var clientCertAlerts = []string{"certificate required", "bad certificate", "unknown certificate authority", "certificate expired", "unsupported certificate", "certificate revoked", "certificate unknown"}

// clientCertRefused tells whether the server ended the TLS session over the client's
// certificate: with TLS 1.3 this comes on the first read after the handshake.
func clientCertRefused(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" {
		return false
	}
	for _, a := range clientCertAlerts {
		if strings.HasSuffix(op.Err.Error(), "tls: "+a) {
			return true
		}
	}
	return false
}

// classify turns err into an *Error when its cause is one this package knows. host
// is the server concerned when known ("" lets classify find it in a server selection
// error); tlsOn says whether the connection used TLS: a connection the server closed
// during the handshake is then probed for the protocol mismatch. Other errors are returned wrapped with op.
func classify(ctx context.Context, op, host string, tlsOn bool, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	cause, causeHost := rootCause(err)
	if host == "" {
		host = causeHost
	}
	kind := kindOf(cause)
	if kind == nil {
		kind = kindOf(err)
	}
	if kind == ErrConnectionClosed && host != "" {
		// A server closes a connection whose first bytes are in the wrong protocol:
		// find out which protocol it speaks.
		switch tlsTalker := speaksTLS(ctx, host, timeout); {
		case !tlsOn && tlsTalker:
			kind = ErrTLSRequired
		case tlsOn && !tlsTalker:
			kind = ErrNotTLS
		}
	}
	if kind == nil {
		if op == "" {
			return err
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	// The per-server cause reads better than the driver's whole topology description.
	return &Error{Kind: kind, Host: host, Op: op, Err: cause}
}

// rootCause digs the per-server error out of a server selection failure: the driver
// reports "server selection timeout" while the reason (refused, TLS, ...) is the
// last error of one of the servers it tried.
func rootCause(err error) (error, string) {
	var sse topology.ServerSelectionError
	if !errors.As(err, &sse) {
		return err, ""
	}
	for _, s := range sse.Desc.Servers {
		if s.LastError != nil {
			return s.LastError, s.Addr.String()
		}
	}
	if len(sse.Desc.Servers) == 1 {
		return err, sse.Desc.Servers[0].Addr.String()
	}
	return err, ""
}

// kindOf names the cause of err by its type or code; nil when unknown.
func kindOf(err error) error {
	var (
		dnsErr      *net.DNSError
		unknownCA   x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidCert x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
		authErr     *auth.Error
		netErr      net.Error
		poolErr     driver.RetryablePoolError
	)
	switch {
	case errors.As(err, &dnsErr):
		return ErrDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.As(err, &unknownCA):
		return ErrUnknownAuthority
	case errors.As(err, &hostnameErr):
		return ErrCertificateName
	case errors.As(err, &invalidCert):
		return ErrCertificateInvalid
	case errors.As(err, &recordErr):
		return ErrNotTLS
	case clientCertRefused(err):
		return ErrClientCertRefused
	case mongoerr.HasCode(err, codeMechanismUnavailable), strings.Contains(err.Error(), "GSSAPI support not enabled"):
		// The driver's only report of a build without Kerberos is this message.
		return ErrMechanismUnavailable
	case mongoerr.HasCode(err, codeAuthFailed):
		return ErrAuthFailed
	case mongoerr.HasCode(err, codeUnauthorized):
		return ErrUnauthorized
	case errors.As(err, &authErr):
		return ErrAuthFailed
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return ErrConnectionClosed
	case errors.As(err, &poolErr) && poolErr.Retryable():
		// The driver cleared its pool for the server because a connection to it
		// failed, and says why only in the message ("connection pool for ... was
		// cleared because another operation failed with: ... EOF"): a mongos
		// restarting under the connect (fault scenario 4's migration did not start).
		return ErrConnectionClosed
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, topology.ErrServerSelectionTimeout),
		errors.As(err, &netErr) && netErr.Timeout():
		return ErrTimeout
	case strings.Contains(err.Error(), "reports wire version"):
		// The driver's only report of a pre-3.6 server is this formatted message
		// (description.Topology.CompatibilityErr), not a typed error.
		return ErrServerTooOld
	}
	return nil
}

// IsUnauthorized reports whether err is a missing-privilege failure (code 13).
func IsUnauthorized(err error) bool {
	return errors.Is(err, ErrUnauthorized) || mongoerr.HasCode(err, codeUnauthorized)
}

// isCommandNotFound reports whether the server does not know the command (code 59),
// as older versions and the sandbox answer for commands they lack.
func isCommandNotFound(err error) bool { return mongoerr.HasCode(err, 59) }

// speaksTLS tells whether host completes a TLS handshake. It is asked only after a
// plain connection was closed during the MongoDB handshake, to tell "this server
// requires TLS" from other reasons; the certificate is not checked here because only
// the protocol matters.
func speaksTLS(ctx context.Context, host string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return false
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) // a protocol probe: no data is sent
	err = tc.HandshakeContext(ctx)
	if err == nil {
		return true
	}
	// A TLS alert (for example "certificate required") also proves the server speaks TLS;
	// a plain server closes the connection or answers with something that is not a record.
	var recordErr tls.RecordHeaderError
	var alert tls.AlertError
	return errors.As(err, &alert) && !errors.As(err, &recordErr)
}

// IsRetryablePoolError reports a connection pool error the driver marks retryable:
// "connection pool for HOST was cleared because another operation failed with:
// ...", returned to the operations waiting on a pool that another operation's
// network error cleared. It carries no NetworkError label and does not wrap the
// network error it names, so the usual checks miss it.
func IsRetryablePoolError(err error) bool {
	var pe interface{ Retryable() bool } // the driver's driver.RetryablePoolError
	return errors.As(err, &pe) && pe.Retryable()
}

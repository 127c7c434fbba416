package wire

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
)

// External are users defined outside MongoDB, authenticated on the $external
// database as a real server does: MONGODB-X509 by the client certificate the TLS
// handshake verified, PLAIN (LDAP) by name and password.
type External struct {
	// X509Subject is the subject of the X.509 user's client certificate, in the
	// RFC 2253 form MongoDB names such users by ("CN=migrator,OU=clients,O=..."). The
	// server's TLS configuration must require and verify client certificates.
	X509Subject string
	// Plain is the PLAIN user.
	Plain *Credentials
}

// The mechanisms of External users, as drivers name them.
const (
	MechanismX509  = "MONGODB-X509"
	MechanismPLAIN = "PLAIN"
)

const externalDB = "$external"

// authenticateX509 answers authenticate {mechanism: "MONGODB-X509"} (and the same
// document sent as hello's speculativeAuthenticate): the user is the subject of the
// client certificate of this connection, which the TLS handshake verified.
func (a *authenticator) authenticateX509(s *Session, cmd *Command) bson.Raw {
	mech, _ := cmd.Lookup("mechanism").StringValueOK()
	if mech != MechanismX509 || a.external == nil || a.external.X509Subject == "" {
		return ErrorReply(MechanismUnavailable(fmt.Sprintf("Received authentication for mechanism %s which is not enabled", mech)))
	}
	if cmd.DB != externalDB {
		return ErrorReply(&Error{2, "BadValue", "X.509 authentication must always use the $external database."})
	}
	subject := s.peerSubject()
	if subject == "" {
		return ErrorReply(&Error{18, "AuthenticationFailed", "No verified subject name available from client"})
	}
	if user, ok := cmd.Lookup("user").StringValueOK(); ok && user != "" && user != subject {
		return ErrorReply(&Error{18, "AuthenticationFailed", "There is no x.509 client certificate matching the user."})
	}
	if subject != a.external.X509Subject {
		return ErrorReply(&Error{11, "UserNotFound", fmt.Sprintf("Could not find user %q for db \"$external\"", subject)})
	}
	s.user, s.userDB, s.internal = subject, externalDB, false
	return OK(bson.E{Key: "dbname", Value: externalDB}, bson.E{Key: "user", Value: subject})
}

// plainStart completes a PLAIN exchange in its one saslStart: the payload is
// [authzid] NUL user NUL password (RFC 4616).
func (a *authenticator) plainStart(s *Session, cmd *Command) bson.Raw {
	if cmd.DB != externalDB {
		return ErrorReply(AuthenticationFailed())
	}
	_, payload, _ := cmd.Lookup("payload").BinaryOK()
	parts := bytes.Split(payload, []byte{0})
	p := a.external.Plain
	if len(parts) != 3 || string(parts[1]) != p.User ||
		subtle.ConstantTimeCompare(parts[2], []byte(p.Password)) != 1 {
		return ErrorReply(AuthenticationFailed())
	}
	s.user, s.userDB, s.internal = p.User, externalDB, false
	return saslReply(true, nil)
}

// peerSubject is the subject of the client certificate this connection's TLS
// handshake verified, or "" without one.
func (s *Session) peerSubject() string {
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.String()
}

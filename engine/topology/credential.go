package topology

import (
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/mongo/options"
)

// The authentication mechanisms of the Go driver v1 that Shardlift offers. GSSAPI
// (Kerberos) works only in a binary built with the driver's build tag: go build
// -tags gssapi, with Debian's libkrb5-dev installed (cgo).
const (
	MechanismSCRAMSHA1   = "SCRAM-SHA-1"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismX509        = "MONGODB-X509"
	MechanismPLAIN       = "PLAIN"
	MechanismAWS         = "MONGODB-AWS"
	MechanismGSSAPI      = "GSSAPI"
)

// Mechanisms lists them in the order a form offers them; "" (let the server choose
// SCRAM) comes first.
var Mechanisms = []string{"", MechanismSCRAMSHA256, MechanismSCRAMSHA1, MechanismX509, MechanismPLAIN, MechanismAWS, MechanismGSSAPI}

// OfferedMechanisms are the Mechanisms this binary can authenticate with: GSSAPI
// only in a build with the gssapi tag.
func OfferedMechanisms() []string {
	if gssapiBuilt {
		return Mechanisms
	}
	return slices.DeleteFunc(slices.Clone(Mechanisms), func(m string) bool { return m == MechanismGSSAPI })
}

// ParseMechanismProperties reads authMechanismProperties as a connection string writes
// them, NAME:VALUE pairs separated by commas; "" is none.
func ParseMechanismProperties(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not NAME:VALUE (write SERVICE_NAME:mongodb, several separated by commas)", strings.TrimSpace(pair))
		}
		out[name] = value
	}
	return out, nil
}

// externalMechanisms authenticate users defined outside MongoDB: on $external.
var externalMechanisms = map[string]bool{MechanismX509: true, MechanismAWS: true, MechanismGSSAPI: true, "MONGODB-OIDC": true}

// DefaultAuthSource is the database a user of the mechanism is looked up on when the
// connection string names none, as the driver decides it: $external for users defined
// outside MongoDB (X.509, AWS IAM, Kerberos), the connection string's database or else
// $external for PLAIN (LDAP; the Go driver v1 authenticates PLAIN on $external
// whatever it says, GODRIVER-3317), and the connection string's database or else
// admin for SCRAM.
func DefaultAuthSource(mechanism, uriDatabase string) string {
	switch m := strings.ToUpper(mechanism); {
	case externalMechanisms[m]:
		return "$external"
	case uriDatabase != "":
		return uriDatabase
	case m == MechanismPLAIN:
		return "$external"
	default:
		return "admin"
	}
}

// checkMechanism refuses a mechanism the driver does not know, naming the ones it does.
func checkMechanism(mechanism string) error {
	for _, m := range Mechanisms {
		if strings.EqualFold(m, mechanism) {
			return nil
		}
	}
	if strings.EqualFold(mechanism, "MONGODB-CR") {
		return nil // the driver maps it to SCRAM-SHA-1 for 3.6+ servers
	}
	return &Error{Kind: ErrInvalidURI, Err: fmt.Errorf("authMechanism %q is not one of %s", mechanism, strings.Join(Mechanisms[1:], ", "))}
}

// credential is the driver credential of the settings, or nil when the endpoint
// does not authenticate. Users without a name (X.509 takes it from the client
// certificate, AWS from the environment) still authenticate.
func (s *settings) credential() *options.Credential {
	if s.username == "" && s.mechanism == "" && len(s.mechanismProperties) == 0 {
		return nil
	}
	return &options.Credential{
		AuthMechanism:           s.mechanism,
		AuthMechanismProperties: s.mechanismProperties,
		AuthSource:              s.authSource,
		Username:                s.username,
		Password:                s.password,
		PasswordSet:             s.password != "" || s.passwordSet,
	}
}

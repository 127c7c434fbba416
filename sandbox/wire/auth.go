package wire

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Credentials is the one SCRAM user a sandbox server accepts, defined on "admin".
type Credentials struct {
	User     string
	Password string
}

// The SASL mechanisms the sandbox offers: SCRAM-SHA-256, as on a server whose users
// were created with mechanisms: ["SCRAM-SHA-256"], or, on a server of a release before
// 4.0, the SCRAM-SHA-1 it had instead.
const (
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA1   = "SCRAM-SHA-1"
)

// authenticator checks SCRAM conversations against the stored keys of the cluster's
// user and, when set, its internal member identity. The keys are derived once from the
// passwords; the passwords themselves are not kept.
type authenticator struct {
	mechanism string
	internal  string // the internal identity's user name, "" without one
	server    *scram.Server
	external  *External // users on $external, nil without
}

// newAuthenticator: c is the SCRAM user on admin, nil when the cluster's only users
// are External ones (the internal identity is SCRAM all the same).
func newAuthenticator(mechanism string, c *Credentials, internal *Credentials) (*authenticator, error) {
	hash := scram.SHA256
	switch mechanism {
	case SCRAMSHA256:
	case SCRAMSHA1:
		hash = scram.SHA1
	default:
		return nil, fmt.Errorf("the sandbox offers %s or %s, not %q", SCRAMSHA256, SCRAMSHA1, mechanism)
	}
	users := map[string]scram.StoredCredentials{}
	var all []Credentials
	if c != nil {
		all = append(all, *c)
	}
	if internal != nil {
		all = append(all, *internal)
	}
	for _, u := range all {
		if mechanism == SCRAMSHA1 {
			u.Password = passwordDigest(u)
		}
		stored, err := storedKeys(mechanism, hash, u)
		if err != nil {
			return nil, err
		}
		users[u.User] = stored
	}
	server, err := hash.NewServer(func(name string) (scram.StoredCredentials, error) {
		stored, ok := users[name]
		if !ok {
			return scram.StoredCredentials{}, fmt.Errorf("unknown user %q", name)
		}
		return stored, nil
	})
	if err != nil {
		return nil, err
	}
	a := &authenticator{mechanism: mechanism, server: server}
	if internal != nil {
		a.internal = internal.User
	}
	return a, nil
}

// passwordDigest is what MongoDB's SCRAM-SHA-1 uses as the password: the hex MD5 of
// "user:mongo:password" (the drivers' SCRAM-SHA-1 does the same on their side).
func passwordDigest(c Credentials) string {
	sum := md5.Sum([]byte(c.User + ":mongo:" + c.Password))
	return hex.EncodeToString(sum[:])
}

func storedKeys(mechanism string, hash scram.HashGeneratorFcn, c Credentials) (scram.StoredCredentials, error) {
	client, err := hash.NewClient(c.User, c.Password, "")
	if err != nil {
		return scram.StoredCredentials{}, fmt.Errorf("sandbox credentials: %w", err)
	}
	salt := make([]byte, 28)
	if _, err := rand.Read(salt); err != nil {
		return scram.StoredCredentials{}, err
	}
	// MongoDB's default iteration counts: 15000 for SCRAM-SHA-256, 10000 for SCRAM-SHA-1.
	iters := 15000
	if mechanism == SCRAMSHA1 {
		iters = 10000
	}
	stored, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iters})
	if err != nil {
		return scram.StoredCredentials{}, fmt.Errorf("sandbox credentials: %w", err)
	}
	return stored, nil
}

// authenticated records the conversation's user on the session.
func (a *authenticator) authenticated(s *Session) {
	s.user, s.userDB = s.conv.scram.Username(), "admin"
	s.internal = a.internal != "" && s.user == a.internal
	s.conv = nil
}

// conversation is one client's SASL exchange, held by its session.
type conversation struct {
	scram             *scram.ServerConversation
	skipEmptyExchange bool
	awaitingEmpty     bool
}

// preAuthCommands are those MongoDB runs for a client that has not authenticated yet.
var preAuthCommands = map[string]bool{
	"hello": true, "ismaster": true, "saslstart": true, "saslcontinue": true,
	"ping": true, "buildinfo": true, "endsessions": true, "logout": true,
}

func (a *authenticator) saslStart(s *Session, cmd *Command) bson.Raw {
	mech, _ := cmd.Lookup("mechanism").StringValueOK()
	if mech == MechanismPLAIN && a.external != nil && a.external.Plain != nil {
		return a.plainStart(s, cmd)
	}
	if mech != a.mechanism {
		return ErrorReply(MechanismUnavailable(fmt.Sprintf("Received authentication for mechanism %s which is not enabled", mech)))
	}
	if cmd.DB != "admin" {
		return ErrorReply(AuthenticationFailed())
	}
	conv := &conversation{scram: a.server.NewConversation()}
	if opts, ok := cmd.Lookup("options").DocumentOK(); ok {
		conv.skipEmptyExchange, _ = opts.Lookup("skipEmptyExchange").BooleanOK()
	}
	s.conv = conv
	return a.step(s, cmd)
}

func (a *authenticator) saslContinue(s *Session, cmd *Command) bson.Raw {
	if s.conv == nil {
		return ErrorReply(&Error{17, "ProtocolError", "No SASL session state found"})
	}
	if s.conv.awaitingEmpty {
		a.authenticated(s)
		return saslReply(true, nil)
	}
	return a.step(s, cmd)
}

func (a *authenticator) step(s *Session, cmd *Command) bson.Raw {
	_, payload, ok := cmd.Lookup("payload").BinaryOK()
	if !ok {
		s.conv = nil
		return ErrorReply(BadValue("SASL payload must be BinData"))
	}
	out, err := s.conv.scram.Step(string(payload))
	if err != nil || (s.conv.scram.Done() && !s.conv.scram.Valid()) {
		s.conv = nil
		return ErrorReply(AuthenticationFailed())
	}
	if !s.conv.scram.Done() {
		return saslReply(false, []byte(out))
	}
	if s.conv.skipEmptyExchange {
		a.authenticated(s)
		return saslReply(true, []byte(out))
	}
	s.conv.awaitingEmpty = true
	return saslReply(false, []byte(out))
}

func saslReply(done bool, payload []byte) bson.Raw {
	return OK(
		bson.E{Key: "conversationId", Value: int32(1)},
		bson.E{Key: "done", Value: done},
		bson.E{Key: "payload", Value: primitive.Binary{Data: payload}},
	)
}

// requiresAuth reports whether the command must wait for authentication.
func requiresAuth(name string) bool { return !preAuthCommands[strings.ToLower(name)] }

package wire

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Credentials is the one SCRAM-SHA-256 user a sandbox server accepts, defined on "admin".
type Credentials struct {
	User     string
	Password string
}

// mechanism is the only SASL mechanism the sandbox offers, as on a server whose users
// were created with mechanisms: ["SCRAM-SHA-256"].
const mechanism = "SCRAM-SHA-256"

// authenticator checks SCRAM conversations against one user's stored keys. The keys are
// derived once from the password; the password itself is not kept.
type authenticator struct {
	user   string
	server *scram.Server
}

func newAuthenticator(c Credentials) (*authenticator, error) {
	client, err := scram.SHA256.NewClient(c.User, c.Password, "")
	if err != nil {
		return nil, fmt.Errorf("sandbox credentials: %w", err)
	}
	salt := make([]byte, 28)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	stored, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: 15000})
	if err != nil {
		return nil, fmt.Errorf("sandbox credentials: %w", err)
	}
	server, err := scram.SHA256.NewServer(func(name string) (scram.StoredCredentials, error) {
		if name != c.User {
			return scram.StoredCredentials{}, fmt.Errorf("unknown user %q", name)
		}
		return stored, nil
	})
	if err != nil {
		return nil, err
	}
	return &authenticator{user: c.User, server: server}, nil
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
	if mech != mechanism {
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
		s.conv = nil
		s.user = a.user
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
		s.conv = nil
		s.user = a.user
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

// Package wire is the MongoDB wire-protocol server the sandbox's routers and shard
// fronts are built on.
//
//	TCP/TLS listener ─► connection goroutine ─► decode (OP_MSG, OP_QUERY handshake)
//	    ─► SCRAM gate ─► Handler.Handle(cmd) ─► encode reply (OP_MSG / OP_REPLY)
//
// It knows nothing of sharding: a Handler answers commands. It adds what every MongoDB
// server does before a command reaches its logic (authentication, saslSupportedMechs in
// the handshake) and the faults tests need (refuse connections, swallow requests).
package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// Handler answers commands. It is called from one goroutine per client connection, so
// it must be safe for concurrent use; it returns the reply document ({ok: 1, ...} or an
// ErrorReply). ctx ends when the server closes.
type Handler interface {
	Handle(ctx context.Context, s *Session, cmd *Command) bson.Raw
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, s *Session, cmd *Command) bson.Raw

func (f HandlerFunc) Handle(ctx context.Context, s *Session, cmd *Command) bson.Raw {
	return f(ctx, s, cmd)
}

// Fault is what a server does to its clients, for failure tests.
type Fault int

const (
	// Healthy serves normally.
	Healthy Fault = iota
	// Refuse closes the listener and every connection: clients get "connection refused",
	// as from a stopped server.
	Refuse
	// Blackhole accepts connections but never answers, as behind a firewall that drops
	// packets: clients wait until their own timeouts.
	Blackhole
)

// Config says how a server listens.
type Config struct {
	// Addr is host:port; port 0 picks a free one, which Addr() then reports.
	Addr string
	// TLS, when set, makes the listener TLS-only.
	TLS *tls.Config
	// Credentials, when set, require SCRAM authentication for most commands.
	Credentials *Credentials
	// Mechanism is the SCRAM mechanism offered: SCRAMSHA256 (the default) or
	// SCRAMSHA1 (a 3.6 server).
	Mechanism string
	// Internal is the cluster's own member identity (MongoDB's keyfile user __system):
	// the router authenticates with it to its shards, which then treat its requests as
	// a cluster member's. Only meaningful with Credentials.
	Internal *Credentials
	// External, when set, are users on $external (X.509, PLAIN) that may
	// authenticate too; authentication is then required as with Credentials.
	External *External
	// Latency delays every reply to a client, as a network between the client and
	// the cluster would (half of it each way, all of it per round trip); the
	// cluster's own traffic, its router's requests to its shards (RouterAppName),
	// is answered at once.
	Latency time.Duration
	Handler Handler
	Logger  *slog.Logger
}

// RouterAppName is the application name a sandbox router's connections to its
// shards give in their handshake: Config.Latency does not apply to them.
const RouterAppName = "sandbox-router"

// Server is one listening wire-protocol endpoint.
type Server struct {
	cfg    Config
	auth   *authenticator
	nextID atomic.Int64
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		addr     string
		listener net.Listener
		conns    map[net.Conn]struct{}
		fault    Fault
		healed   chan struct{} // closed when a Blackhole ends
		closed   bool
	}
}

// Listen starts a server.
func Listen(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("wire: no handler")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg}
	if cfg.Credentials != nil || cfg.External != nil {
		if cfg.Mechanism == "" {
			cfg.Mechanism = SCRAMSHA256
		}
		a, err := newAuthenticator(cfg.Mechanism, cfg.Credentials, cfg.Internal)
		if err != nil {
			return nil, err
		}
		a.external = cfg.External
		s.auth = a
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.conns = map[net.Conn]struct{}{}
	s.mu.healed = make(chan struct{})
	s.mu.addr = cfg.Addr
	if err := s.listenLocked(); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// listenLocked opens the listener on the server's address and starts accepting.
func (s *Server) listenLocked() error {
	l, err := net.Listen("tcp", s.mu.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.mu.addr, err)
	}
	s.mu.addr = l.Addr().String()
	if s.cfg.TLS != nil {
		l = tls.NewListener(l, s.cfg.TLS)
	}
	s.mu.listener = l
	s.wg.Add(1)
	go s.accept(l)
	return nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.addr
}

// SetFault changes how the server treats its clients. Returning to Healthy from Refuse
// listens again on the same address.
func (s *Server) SetFault(f Fault) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return errors.New("wire: server closed")
	}
	prev := s.mu.fault
	if prev == f {
		return nil
	}
	s.mu.fault = f
	if prev == Blackhole {
		close(s.mu.healed)
		s.mu.healed = make(chan struct{})
		s.dropConnsLocked()
	}
	switch f {
	case Refuse:
		s.mu.listener.Close()
		s.mu.listener = nil
		s.dropConnsLocked()
	case Healthy:
		if s.mu.listener == nil {
			return s.listenLocked()
		}
	}
	return nil
}

func (s *Server) dropConnsLocked() {
	for c := range s.mu.conns {
		c.Close()
	}
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	if s.mu.listener != nil {
		s.mu.listener.Close()
	}
	s.dropConnsLocked()
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) accept(l net.Listener) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.mu.closed || s.mu.listener != l {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.mu.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// Session is one client connection's state.
type Session struct {
	// Remote is the client's address.
	Remote string
	// ID is the server's number for the connection (hello's connectionId).
	ID       int64
	user     string
	userDB   string // the database the user is defined on: admin or $external
	internal bool
	appName  string // the handshake's client.application.name
	conv     *conversation
	conn     net.Conn
	// router is set once the handshake named the client a sandbox router.
	router bool
}

// UserDB is the database the authenticated user is defined on ("admin", or
// "$external" for X.509 and PLAIN users).
func (s *Session) UserDB() string {
	if s.userDB == "" {
		return "admin"
	}
	return s.userDB
}

// User is the authenticated user name, or "" before authentication (or without auth).
func (s *Session) User() string { return s.user }

// AppName is the application name the client gave in its handshake ("" if none).
func (s *Session) AppName() string { return s.appName }

// Internal reports whether the client authenticated as the cluster's internal member
// identity (Config.Internal), as a mongos does to its shards.
func (s *Session) Internal() bool { return s.internal }

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.mu.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sess := &Session{Remote: c.RemoteAddr().String(), ID: s.nextID.Add(1), conn: c}
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		msg, err := readMessage(r)
		if err != nil {
			return
		}
		if s.waitWhileBlackholed() {
			return
		}
		req, err := decodeRequest(msg)
		if err != nil {
			s.cfg.Logger.Warn("bad wire message", "remote", sess.Remote, "err", err)
			return
		}
		reply := s.dispatch(sess, &req.cmd)
		if req.moreToCome {
			continue
		}
		if !s.delay(sess, &req.cmd) {
			return
		}
		if _, err := c.Write(encodeReply(req, reply)); err != nil {
			return
		}
	}
}

// delay waits the configured latency before a reply to a client (not to the
// cluster's router); it reports false when the server closed meanwhile.
func (s *Server) delay(sess *Session, cmd *Command) bool {
	if s.cfg.Latency <= 0 {
		return true
	}
	if client, ok := cmd.Lookup("client").DocumentOK(); ok {
		name, _ := client.Lookup("application", "name").StringValueOK()
		sess.router = name == RouterAppName
	}
	if sess.router {
		return true
	}
	t := time.NewTimer(s.cfg.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// waitWhileBlackholed blocks a request while the server swallows traffic; it reports
// true when the connection must be dropped instead of answered.
func (s *Server) waitWhileBlackholed() bool {
	s.mu.Lock()
	fault, healed := s.mu.fault, s.mu.healed
	s.mu.Unlock()
	if fault != Blackhole {
		return false
	}
	select {
	case <-healed:
	case <-s.ctx.Done():
	}
	return true
}

func (s *Server) dispatch(sess *Session, cmd *Command) bson.Raw {
	lower := strings.ToLower(cmd.Name)
	if name, ok := cmd.Body.Lookup("client", "application", "name").StringValueOK(); ok && (lower == "hello" || lower == "ismaster") {
		sess.appName = name
	}
	if s.auth != nil {
		switch lower {
		case "saslstart":
			return s.auth.saslStart(sess, cmd)
		case "saslcontinue":
			return s.auth.saslContinue(sess, cmd)
		case "authenticate":
			return s.auth.authenticateX509(sess, cmd)
		case "logout":
			sess.user, sess.userDB, sess.internal = "", "", false
			return OK()
		}
		if sess.user == "" && requiresAuth(cmd.Name) {
			return ErrorReply(Unauthorized(fmt.Sprintf("command %s requires authentication", cmd.Name)))
		}
	}
	reply := s.cfg.Handler.Handle(s.ctx, sess, cmd)
	if s.auth != nil && (lower == "hello" || lower == "ismaster") && cmd.Lookup("saslSupportedMechs").Type != 0 {
		reply = appendField(reply, "saslSupportedMechs", bson.A{s.auth.mechanism})
	}
	return reply
}

// appendField returns doc with key: value added at the end.
func appendField(doc bson.Raw, key string, value any) bson.Raw {
	t, data, err := bson.MarshalValue(value)
	if err != nil {
		return doc
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	elems, _ := bsoncore.Document(doc).Elements()
	for _, e := range elems {
		out = append(out, e...)
	}
	out = bsoncore.AppendValueElement(out, key, bsoncore.Value{Type: t, Data: data})
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return bson.Raw(out)
}

package topology

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"
	"golang.org/x/sync/errgroup"
)

// DefaultTimeout is how long Shardlift waits for a server when Endpoint.Timeout is
// zero. A connection gets half of it to be established (DNS, TCP, TLS, the MongoDB
// handshake and authentication); finding a usable server and each discovery command
// get all of it. A dead or firewalled host therefore costs at most this long.
const DefaultTimeout = 10 * time.Second

// Endpoint says how to reach a cluster: a connection string or a host list, with the
// credentials and TLS settings. Fields set here override the same settings in URI.
// Passwords are used for authentication only: String() and every error mask them.
type Endpoint struct {
	// URI is a mongodb:// or mongodb+srv:// connection string. Set URI or Hosts.
	URI string
	// Hosts is a list of host:port (mongos routers, or the members of one replica set).
	Hosts []string
	// ReplicaSet, with more than one host, is the replica set the hosts belong to; the
	// connection then follows that set's primary. A single host without it is a
	// direct connection to exactly that server.
	ReplicaSet string
	// Username and Password are the user's credentials; Password may be empty in URI
	// and given here (for example from an environment variable or the keyring). An
	// X.509 user needs no name (the server reads it from the client certificate), nor
	// does an AWS one whose keys come from the environment.
	Username, Password string
	// AuthSource is the database the user is defined on; "" means the URI's, else
	// DefaultAuthSource of the mechanism.
	AuthSource string
	// AuthMechanism is one of Mechanisms; "" lets the server choose SCRAM.
	AuthMechanism string
	// AuthMechanismProperties are the mechanism's settings (SERVICE_NAME for Kerberos,
	// AWS_SESSION_TOKEN for temporary AWS keys).
	AuthMechanismProperties map[string]string
	// TLS turns TLS on. Giving a CA (CAFile or CAPEM) turns it on as well.
	TLS bool
	// CAFile is a PEM file of the CA that signed the servers' certificates.
	CAFile string
	// CAPEM is the same CA pasted as PEM text; it wins over CAFile.
	CAPEM []byte
	// CertificateKeyFile is a PEM file with the client certificate and its private key
	// (tlsCertificateKeyFile): presented to servers that require client certificates,
	// and the identity of MONGODB-X509. Giving it turns TLS on.
	CertificateKeyFile string
	// CertificateKeyPassword decrypts the private key of CertificateKeyFile when it is
	// encrypted. It is a secret, like Password.
	CertificateKeyPassword string
	// AllowInvalidHostnames accepts a server certificate made out to another host
	// name, still signed by the CA (tlsAllowInvalidHostnames).
	AllowInvalidHostnames bool
	// Timeout bounds each connection and each command (DefaultTimeout when zero).
	Timeout time.Duration
	// ReadPreference is the mode in which the copy and the oplog tail read each shard
	// of a source (one of ReadPreferenceModes); "" leaves the connection string's
	// readPreference, else DefaultReadPreference. See Reads.
	ReadPreference string
	// ShardReadPreferences choose again for some source shards, by shard name: each
	// a ShardReadPreferenceFormat spec ("secondary;dc:west") whose mode and tag sets
	// replace the default's for that shard (maxStalenessSeconds stays the connection
	// string's). See ReadsByShard.
	ShardReadPreferences map[string]string
	// Hosts maps the names the cluster gives its members to the addresses this
	// workstation reaches them at; it applies to every connection, shards' included.
	HostMap HostMap

	// Carried from the URI to ForHosts endpoints.
	insecure    bool
	passwordSet bool
	keyFiles    []string // tlsCertificateFile and tlsPrivateKeyFile, given apart
	uriDatabase string
	err         error
}

func (e Endpoint) timeout() time.Duration {
	if e.Timeout > 0 {
		return e.Timeout
	}
	return DefaultTimeout
}

// String names the endpoint in messages: the URI with its password masked, or the hosts.
func (e Endpoint) String() string {
	if e.URI != "" {
		return MaskURI(e.URI)
	}
	s := strings.Join(e.Hosts, ",")
	if e.ReplicaSet != "" {
		s = e.ReplicaSet + "/" + s
	}
	return s
}

// MaskURI replaces the password of a connection string, and the secrets among its
// options (the client key's password, an AWS session token), with ****. Everything before
// the last @ is taken as user information, so a malformed URI is masked too much
// rather than too little.
func MaskURI(uri string) string {
	return maskUserPassword(maskQuerySecrets(uri))
}

func maskUserPassword(uri string) string {
	scheme := strings.Index(uri, "://")
	if scheme < 0 {
		return uri
	}
	rest := uri[scheme+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return uri
	}
	user := rest[:at]
	if colon := strings.Index(user, ":"); colon >= 0 {
		user = user[:colon] + ":****"
	}
	return uri[:scheme+3] + user + rest[at:]
}

// settings is an Endpoint with its URI resolved: what a connection needs.
type settings struct {
	hosts      []string
	replicaSet string
	username   string
	password   string
	authSource string
	mechanism  string
	// mechanismProperties, passwordSet: see options.Credential.
	mechanismProperties map[string]string
	passwordSet         bool
	tlsOn               bool
	insecure            bool
	allowInvalidHosts   bool
	caPEM               []byte
	caName              string
	clientCert          *tls.Certificate
	// fromURI is the parsed connection string, whose other options still apply.
	fromURI *connstring.ConnString
}

// resolve merges the URI (if any) with the fields that override it.
func (e Endpoint) resolve() (*settings, error) {
	if e.err != nil {
		return nil, e.err
	}
	var cs *connstring.ConnString
	switch {
	case e.URI != "" && len(e.Hosts) > 0:
		return nil, &Error{Kind: ErrInvalidURI, Err: errors.New("give either a connection string or a host list, not both")}
	case e.URI == "" && len(e.Hosts) == 0:
		return nil, &Error{Kind: ErrInvalidURI, Err: errors.New("no connection string and no hosts given")}
	case e.URI != "":
		var err error
		if cs, err = connstring.ParseAndValidate(e.URI); err != nil {
			return nil, uriError(e, err)
		}
		e = e.withURIFields(cs)
		e.Hosts = cs.Hosts
		if e.ReplicaSet == "" {
			e.ReplicaSet = cs.ReplicaSet
		}
	}
	if err := checkMechanism(e.AuthMechanism); err != nil {
		return nil, err
	}
	s := &settings{
		hosts: e.Hosts, replicaSet: e.ReplicaSet, username: e.Username, password: e.Password,
		authSource: e.AuthSource, mechanism: strings.ToUpper(e.AuthMechanism),
		mechanismProperties: e.AuthMechanismProperties, passwordSet: e.passwordSet,
		tlsOn: e.TLS, insecure: e.insecure, allowInvalidHosts: e.AllowInvalidHostnames,
		fromURI: cs,
	}
	for _, h := range s.hosts {
		if strings.TrimSpace(h) == "" {
			return nil, &Error{Kind: ErrInvalidURI, Err: fmt.Errorf("empty host in %q", strings.Join(s.hosts, ","))}
		}
	}
	if s.authSource == "" {
		s.authSource = DefaultAuthSource(s.mechanism, e.uriDatabase)
	}
	switch {
	case len(e.CAPEM) > 0:
		s.caPEM, s.caName = e.CAPEM, "the pasted CA"
	case e.CAFile != "":
		pem, err := ReadCAFile(e.CAFile)
		if err != nil {
			return nil, err
		}
		s.caPEM, s.caName = pem, "CA file "+e.CAFile
	}
	keyFiles := e.keyFiles
	if e.CertificateKeyFile != "" {
		keyFiles = []string{e.CertificateKeyFile}
	}
	if len(keyFiles) > 0 {
		cert, err := loadClientCertificate(e.CertificateKeyPassword, keyFiles...)
		if err != nil {
			return nil, err
		}
		s.clientCert = &cert
	}
	if s.caPEM != nil || s.clientCert != nil {
		s.tlsOn = true
	}
	return s, nil
}

// ReadCAFile reads a PEM CA file; a file that is missing or unreadable is an *Error
// of kind ErrCAFileUnreadable naming it.
func ReadCAFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		cause := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			cause = pe.Err // the path is in Op already
		}
		return nil, &Error{Kind: ErrCAFileUnreadable, Op: "read CA file " + path, Err: cause}
	}
	return data, nil
}

// ParseURI parses and validates a connection string as the driver does; a string the
// driver refuses is a classified *Error that does not repeat its password.
func ParseURI(uri string) (*connstring.ConnString, error) {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return nil, uriError(Endpoint{URI: uri}, err)
	}
	return cs, nil
}

// uriError reports a connection string that does not parse, or whose SRV record does
// not resolve, without repeating its password.
func uriError(e Endpoint, err error) error {
	kind := ErrInvalidURI
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		kind = ErrDNS
	}
	msg := err.Error()
	if which := unescapedInUserInfo(msg); which != "" {
		// The driver's text may quote part of the password ("invalid URL escape"):
		// say which character it is instead.
		kind, msg = ErrUnescapedUserInfo, which
	}
	for _, secret := range []string{uriPassword(e.URI), e.Password, e.CertificateKeyPassword} {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "****")
		}
	}
	return &Error{Kind: kind, Op: "parse " + MaskURI(e.URI), Err: errors.New(msg)}
}

// userInfoErrors are the driver's messages (x/mongo/driver/connstring) for a user name
// or password with a reserved character left as is, and what each means.
var userInfoErrors = []struct{ driver, means string }{
	{"unescaped @ sign in user info", "an @ in the user name or password is not written %40"},
	{"unescaped colon in password", "a : in the password is not written %3A"},
	{"unescaped slash in password", "a / in the password is not written %2F"},
	{"unescaped slash in username", "a / in the user name is not written %2F"},
	{"invalid password", "a % in the password does not start a percent-encoding (write a % as %25)"},
	{"invalid username", "a % in the user name does not start a percent-encoding (write a % as %25)"},
}

// unescapedInUserInfo says which reserved character the driver's parse error is
// about, or "" when the error is about something else.
func unescapedInUserInfo(driverMsg string) string {
	for _, e := range userInfoErrors {
		if strings.Contains(driverMsg, "error parsing uri: "+e.driver) {
			return e.means
		}
	}
	return ""
}

// uriPassword is the raw password part of a URI, as MaskURI finds it.
func uriPassword(uri string) string {
	_, pw, _ := userInfo(uri)
	return pw
}

// userInfo splits the user information of a URI as MaskURI finds it (raw, still
// percent-encoded).
func userInfo(uri string) (user, password string, hasPassword bool) {
	scheme := strings.Index(uri, "://")
	if scheme < 0 {
		return "", "", false
	}
	rest := uri[scheme+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", "", false
	}
	user, password, hasPassword = strings.Cut(rest[:at], ":")
	return user, password, hasPassword
}

// URIUser tells whether a connection string names a user and whether it carries
// that user's password, so a caller can supply the password from elsewhere.
func URIUser(uri string) (user string, hasPassword bool) {
	u, _, has := userInfo(uri)
	if unescaped, err := url.PathUnescape(u); err == nil {
		u = unescaped
	}
	return u, has
}

// tlsConfig builds the TLS client configuration, or nil when TLS is off.
func (s *settings) tlsConfig() (*tls.Config, error) {
	if !s.tlsOn {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: s.insecure} // only when the URI asked for tlsInsecure
	if s.caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(s.caPEM) {
			return nil, &Error{Kind: ErrInvalidCA, Op: "load " + s.caName}
		}
		cfg.RootCAs = pool
	}
	if s.clientCert != nil {
		cfg.Certificates = []tls.Certificate{*s.clientCert}
	}
	if s.allowInvalidHosts && !s.insecure {
		// Go checks the chain and the name together: skip both, then check the chain.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = verifyIgnoringHostname(cfg.RootCAs)
	}
	return cfg, nil
}

// ClientOptions builds the driver options for the endpoint: hosts or URI, SCRAM
// credentials, TLS with the given CA, and the timeouts of DefaultTimeout. A CA that is
// not PEM is an *Error of kind ErrInvalidCA.
func (e Endpoint) ClientOptions() (*options.ClientOptions, error) {
	s, err := e.resolve()
	if err != nil {
		return nil, err
	}
	return e.clientOptions(s)
}

func (e Endpoint) clientOptions(s *settings) (*options.ClientOptions, error) {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	opts := options.Client()
	if s.fromURI != nil {
		// The TLS files were read above, with the password from wherever it came:
		// the driver must not read them again (it would fail on a key whose password
		// is not in the URI).
		opts.ApplyURI(withoutQueryOptions(e.URI, tlsFileOptions))
	} else {
		opts.SetHosts(s.hosts)
		if s.replicaSet != "" && len(s.hosts) > 1 {
			opts.SetReplicaSet(s.replicaSet)
		} else if len(s.hosts) == 1 {
			opts.SetDirect(true)
		}
	}
	// Every connection reads the primary by default, whatever readPreference the
	// connection string gives: the copy and the tail read the members it names
	// explicitly (Endpoint.Reads), every other read needs the primary.
	opts.SetReadPreference(readpref.Primary())
	if cred := s.credential(); cred != nil {
		opts.SetAuth(*cred)
	}
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	if len(e.HostMap) > 0 {
		opts.SetDialer(&mappingDialer{hosts: e.HostMap})
	}
	t := e.timeout()
	opts.SetConnectTimeout(t / 2).SetServerSelectionTimeout(t)
	if opts.AppName == nil { // the servers' logs and currentOp name Shardlift, unless the URI says otherwise
		opts.SetAppName("shardlift")
	}
	if err := opts.Validate(); err != nil {
		return nil, uriError(e, err)
	}
	return opts, nil
}

// ForHosts is an endpoint for other servers of the same cluster (shard members,
// config servers) with the same credentials, TLS settings, CA and timeout. One host
// without replicaSet is a direct connection to that server.
func (e Endpoint) ForHosts(hosts []string, replicaSet string) Endpoint {
	out := e
	out.URI, out.Hosts, out.ReplicaSet = "", hosts, replicaSet
	if e.URI == "" || e.err != nil {
		return out
	}
	cs, err := connstring.ParseAndValidate(e.URI)
	if err != nil {
		out.err = uriError(e, err)
		return out
	}
	return out.withURIFields(cs)
}

// withURIFields fills the credential, TLS and CA fields the endpoint leaves unset
// from the connection string: fields given explicitly override the URI.
func (e Endpoint) withURIFields(cs *connstring.ConnString) Endpoint {
	if e.Username == "" {
		e.Username = cs.Username
	}
	if e.Password == "" {
		e.Password = cs.Password
	}
	if e.AuthSource == "" && cs.AuthSourceSet {
		e.AuthSource = cs.AuthSource // else the mechanism's default, in resolve
	}
	if e.AuthMechanism == "" {
		e.AuthMechanism = cs.AuthMechanism
	}
	if e.AuthMechanismProperties == nil {
		e.AuthMechanismProperties = cs.AuthMechanismProperties
	}
	e.passwordSet = e.passwordSet || cs.PasswordSet
	e.uriDatabase = cs.Database
	e.TLS = e.TLS || cs.SSL
	e.insecure = e.insecure || cs.SSLInsecure || uriFlag(cs, "tlsallowinvalidcertificates")
	e.AllowInvalidHostnames = e.AllowInvalidHostnames || uriFlag(cs, "tlsallowinvalidhostnames")
	if cs.SSLCaFileSet && e.CAFile == "" && len(e.CAPEM) == 0 {
		e.CAFile = cs.SSLCaFile
	}
	if e.CertificateKeyFile == "" && len(e.keyFiles) == 0 {
		switch {
		case cs.SSLClientCertificateKeyFileSet:
			e.CertificateKeyFile = cs.SSLClientCertificateKeyFile
		case cs.SSLCertificateFileSet || cs.SSLPrivateKeyFileSet:
			e.keyFiles = nonEmpty(cs.SSLCertificateFile, cs.SSLPrivateKeyFile)
		}
	}
	if e.CertificateKeyPassword == "" && cs.SSLClientCertificateKeyPasswordSet && cs.SSLClientCertificateKeyPassword != nil {
		e.CertificateKeyPassword = cs.SSLClientCertificateKeyPassword()
	}
	return e
}

// Connect opens a client to the endpoint and proves it usable: every host is first
// checked for DNS, TCP and TLS (so a dead host is reported at once and precisely),
// then the driver connects, authenticates and pings. Failures are classified *Errors.
// The caller disconnects the client.
func Connect(ctx context.Context, e Endpoint) (*mongo.Client, error) {
	client, _, err := connect(ctx, e)
	return client, err
}

// closedRetries is how many more times connect tries a server that refused the
// connection, or accepted it and closed it without saying why: a mongos or member
// restarting (or a load balancer draining) does that for a moment, and one such
// moment must not fail a validation or a resume (fault scenario 4 restarts the
// source's mongos while the pre-migration checks connect: the checks failed with
// "the connection was refused" and the migration did not start). A server that
// always does it (nothing listens there, a wrong protocol) is still reported, a
// couple of seconds later.
const closedRetries = 2

// pauseBeforeRetry waits before each of those tries (a test replaces it).
var pauseBeforeRetry = func(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
		return nil
	}
}

func connect(ctx context.Context, e Endpoint) (*mongo.Client, *settings, error) {
	for attempt := 0; ; attempt++ {
		client, s, err := connectOnce(ctx, e)
		if attempt == closedRetries || !errors.Is(err, ErrConnectionClosed) && !errors.Is(err, ErrRefused) {
			return client, s, err
		}
		if pauseBeforeRetry(ctx) != nil {
			return nil, nil, err
		}
	}
}

func connectOnce(ctx context.Context, e Endpoint) (*mongo.Client, *settings, error) {
	s, err := e.resolve()
	if err != nil {
		return nil, nil, err
	}
	opts, err := e.clientOptions(s)
	if err != nil {
		return nil, nil, err
	}
	if err := preflight(ctx, s.hosts, e.HostMap, opts.TLSConfig, e.timeout()/2); err != nil {
		return nil, nil, err
	}
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, nil, classify(ctx, "connect", "", s.tlsOn, e.timeout()/2, err)
	}
	pctx, cancel := context.WithTimeout(ctx, e.timeout())
	defer cancel()
	if err := client.Ping(pctx, nil); err != nil {
		disconnect(ctx, client, e.timeout())
		if s.replicaSet != "" {
			// The driver drops a mongos from a replica set's topology and finds no
			// member: it reports a timeout, which would send the DBA to the firewall.
			if host := firstMongos(ctx, e, s.hosts); host != "" {
				return nil, nil, &Error{Kind: ErrReplicaSetOnMongos, Host: host, Op: "connect",
					Err: fmt.Errorf("replicaSet=%s, but %s answers as a mongos", s.replicaSet, host)}
			}
		}
		host := ""
		if len(s.hosts) == 1 {
			host = s.hosts[0]
		}
		return nil, nil, classify(ctx, "connect", host, s.tlsOn, e.timeout()/2, err)
	}
	return client, s, nil
}

// firstMongos connects to each host directly and returns the first that answers
// hello as a mongos, or "".
func firstMongos(ctx context.Context, e Endpoint, hosts []string) string {
	for _, h := range hosts {
		client, _, err := connect(ctx, e.ForHosts([]string{h}, ""))
		if err != nil {
			continue
		}
		hello, err := helloOf(ctx, client, e.timeout())
		disconnect(ctx, client, e.timeout())
		if err == nil && str(hello, "msg") == "isdbgrid" {
			return h
		}
	}
	return ""
}

// preflight checks that at least one host resolves, accepts TCP and (with TLS)
// completes a TLS handshake with a certificate the configuration trusts. When none
// does, the first host's failure is returned, classified.
func preflight(ctx context.Context, hosts []string, hostMap HostMap, tlsCfg *tls.Config, timeout time.Duration) error {
	errs := make([]error, len(hosts))
	var g errgroup.Group
	for i, h := range hosts {
		g.Go(func() error {
			errs[i] = probeHost(ctx, h, hostMap.Reachable(h), tlsCfg, timeout)
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// withPort adds MongoDB's default port to a host given without one, as the driver does.
func withPort(host string) string {
	if _, _, err := net.SplitHostPort(host); err != nil && !strings.HasPrefix(host, "[") && strings.Count(host, ":") == 0 {
		return net.JoinHostPort(host, "27017")
	}
	return host
}

// probeHost is one host's DNS, TCP and TLS check; it dials addr, where host is
// reached (host itself unless a host map says otherwise).
func probeHost(ctx context.Context, host, addr string, tlsCfg *tls.Config, timeout time.Duration) error {
	if strings.HasSuffix(host, ".sock") {
		return nil
	}
	host, addr = withPort(host), withPort(addr)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		err = classify(ctx, "connect", host, tlsCfg != nil, timeout, err)
		if addr != host {
			err = fmt.Errorf("%w (reached at %s by the host map)", err, addr)
		}
		return err
	}
	defer conn.Close()
	if tlsCfg == nil {
		return nil
	}
	cfg := tlsCfg.Clone()
	if cfg.ServerName == "" {
		name, _, splitErr := net.SplitHostPort(host)
		if splitErr != nil {
			name = host
		}
		cfg.ServerName = name
	}
	if err := tls.Client(conn, cfg).HandshakeContext(ctx); err != nil {
		return classify(ctx, "TLS handshake with", host, true, timeout, err)
	}
	return nil
}

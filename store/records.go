package store

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// The bson tags are the file format: rename Go fields freely, never the tags.
// Times are kept to the millisecond (BSON datetime), in UTC.

// ConnSettings are the non-secret settings of one cluster connection. There is no
// password field on purpose: passwords live in the OS keyring (see Secrets).
type ConnSettings struct {
	Hosts    []string `bson:"hosts"` // mongos host:port list, without credentials
	Username string   `bson:"username,omitempty"`
	TLS      bool     `bson:"tls"`
	CAFile   string   `bson:"caFile,omitempty"` // path of a CA bundle picked by the user
	CAPEM    string   `bson:"caPem,omitempty"`  // or the pasted CA certificates (public)
	// URI is the connection string the user entered, passed through RedactURI: every
	// option (authSource, replicaSet, an unresolved mongodb+srv host, readPreference,
	// tls options...) as entered, no secret. Empty for a connection entered as a host
	// list, and in records written before it was kept (those resume from Hosts).
	URI string `bson:"uri,omitempty"`
	// AuthMechanism and AuthMechanismProperties (without AWS_SESSION_TOKEN) are the
	// form's authentication settings; CertificateKeyFile is the path of the client
	// certificate with its key (its password is in the keyring).
	AuthMechanism           string            `bson:"authMechanism,omitempty"`
	AuthMechanismProperties map[string]string `bson:"authMechanismProperties,omitempty"`
	CertificateKeyFile      string            `bson:"certificateKeyFile,omitempty"`
	// HostMap is where this workstation reaches the members the cluster names
	// (internal host:port -> reachable host:port): a resumed migration dials the same.
	HostMap map[string]string `bson:"hostMap,omitempty"`
	// ReadPreference is the mode chosen for the source's shards (a flag or the
	// form), so that a resumed migration reads the members it read; "" leaves the
	// URI's readPreference, else the default.
	ReadPreference string `bson:"readPreference,omitempty"`
	// ShardReadPreferences are the source shards read otherwise, shard name -> mode
	// and tag sets (topology.ShardReadPreferenceFormat), kept for the same reason.
	ShardReadPreferences map[string]string `bson:"shardReadPreferences,omitempty"`
}

// RedactURI is a mongodb:// or mongodb+srv:// connection string without its secrets:
// the password of the user information (the user stays), the options that hold a
// password (secretOptions) and the AWS_SESSION_TOKEN of authMechanismProperties.
// Everything else is kept byte for byte, so a URI without secrets comes back unchanged.
// The user information ends at the first '@', as the driver reads it: uri is one
// the driver accepts (the app checks it with connstring.ParseAndValidate first).
func RedactURI(uri string) string {
	scheme := strings.Index(uri, "://")
	if scheme < 0 {
		return uri
	}
	head, rest := uri[:scheme+3], uri[scheme+3:]
	if at := strings.Index(rest, "@"); at >= 0 {
		if user, _, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			rest = rest[at+1:]
			if user != "" {
				rest = user + "@" + rest
			}
		}
	}
	q := strings.Index(rest, "?")
	if q < 0 {
		return head + rest
	}
	pairs := strings.FieldsFunc(rest[q+1:], func(r rune) bool { return r == '&' || r == ';' })
	kept := make([]string, 0, len(pairs))
	for _, pair := range pairs {
		if p, keep := redactOption(pair); keep {
			kept = append(kept, p)
		}
	}
	if slices.Equal(kept, pairs) {
		return head + rest
	}
	if len(kept) == 0 {
		return head + rest[:q]
	}
	return head + rest[:q+1] + strings.Join(kept, "&")
}

// secretOptions are the connection string options whose value is a secret, by
// lowercased name (the driver reads option names case-insensitively).
var secretOptions = map[string]bool{
	"tlscertificatekeyfilepassword":   true,
	"sslclientcertificatekeypassword": true,
}

// redactOption is one key=value of a connection string without its secret, and
// whether anything of it is left.
func redactOption(pair string) (string, bool) {
	rawKey, rawValue, _ := strings.Cut(pair, "=")
	key, err := url.QueryUnescape(rawKey)
	if err != nil {
		key = rawKey
	}
	key = strings.ToLower(key)
	if secretOptions[key] {
		return "", false
	}
	if key != "authmechanismproperties" {
		return pair, true
	}
	value, err := url.QueryUnescape(rawValue)
	if err != nil {
		// Unreadable, so the token cannot be told apart: keep none of it.
		return "", false
	}
	props := strings.Split(value, ",")
	kept := props[:0:0]
	for _, p := range props {
		name, _, _ := strings.Cut(p, ":")
		if !strings.EqualFold(name, "AWS_SESSION_TOKEN") {
			kept = append(kept, p)
		}
	}
	switch {
	case len(kept) == len(props):
		return pair, true
	case len(kept) == 0:
		return "", false
	}
	return rawKey + "=" + url.QueryEscape(strings.Join(kept, ",")), true
}

// Event is one lifecycle transition of a migration.
type Event struct {
	At     time.Time `bson:"at"`
	From   string    `bson:"from"`
	To     string    `bson:"to"`
	Reason string    `bson:"reason,omitempty"`
}

// Summary is what the final screen shows once a migration has ended.
type Summary struct {
	FinishedAt      time.Time     `bson:"finishedAt"`
	Documents       int64         `bson:"documents"`
	Bytes           int64         `bson:"bytes"`
	OptimeGap       time.Duration `bson:"optimeGap"` // gap when syncing stopped (staging copies)
	Verification    string        `bson:"verification,omitempty"`
	UsersToRecreate []string      `bson:"usersToRecreate,omitempty"`
}

// Migration is one migration's record, without its per-shard checkpoints (those are
// kept in their own keys so that a checkpoint write stays small).
type Migration struct {
	ID          string       `bson:"_id"`
	Name        string       `bson:"name,omitempty"`
	CreatedAt   time.Time    `bson:"createdAt"`
	Source      ConnSettings `bson:"source"`
	Destination ConnSettings `bson:"destination"`
	// State and History change only through AppendHistory, so every transition is
	// recorded with its time; SaveMigration keeps the stored ones.
	State   string  `bson:"state"`
	History []Event `bson:"history,omitempty"`
	// SourceIdentity and DestinationIdentity are the clusters the migration runs
	// between, recorded when it starts; nil in records written before they were kept
	// (the engine records them on the first resume).
	SourceIdentity      *ClusterIdentity `bson:"sourceIdentity,omitempty"`
	DestinationIdentity *ClusterIdentity `bson:"destinationIdentity,omitempty"`
	// BalancerWasOn is the source balancer's state before Shardlift stopped it;
	// nil until it has been recorded.
	BalancerWasOn *bool     `bson:"balancerWasOn,omitempty"`
	TimerDeadline time.Time `bson:"timerDeadline,omitempty"` // cutover timer; zero when not running
	Summary       *Summary  `bson:"summary,omitempty"`       // nil until the migration ended
}

// ClusterIdentity is how a migration knows a cluster: the clusterId of its
// config.version, its shards and the mongos addresses it was reached through.
type ClusterIdentity struct {
	ClusterID primitive.ObjectID `bson:"clusterId"`
	Shards    []ShardHosts       `bson:"shards,omitempty"`
	Routers   []string           `bson:"routers,omitempty"`
}

// ShardHosts is one shard of a ClusterIdentity: its name and members' host:port.
type ShardHosts struct {
	Name  string   `bson:"name"`
	Hosts []string `bson:"hosts,omitempty"`
}

// PartitionProgress is the copy progress of one partition of one namespace.
type PartitionProgress struct {
	Done   bool          `bson:"done"`
	LastID bson.RawValue `bson:"lastId,omitempty"` // _id of the last document copied, as raw BSON
	Docs   int64         `bson:"docs"`
	Bytes  int64         `bson:"bytes"`
	// Min and Max bound a range partition's _ids (Min included, Max excluded; absent:
	// open); a namespace copied whole has neither, as every record before them.
	Min bson.RawValue `bson:"min,omitempty"`
	Max bson.RawValue `bson:"max,omitempty"`
}

// ShardCheckpoint is the resume point of one source shard.
type ShardCheckpoint struct {
	Shard string              `bson:"shard"`
	Phase string              `bson:"phase"`
	T0    primitive.Timestamp `bson:"t0"` // the majority commit point when the copy started
	// T0Term is the term of the entry at T0 (absent in a checkpoint saved before it
	// was kept: 0, unknown).
	T0Term  int64               `bson:"t0Term,omitempty"`
	Applied primitive.Timestamp `bson:"applied"` // last oplog ts durably applied by every applier
	// AppliedTerm is the term ("t") of the entry at Applied, checked when the shard
	// resumes; 0 in a checkpoint saved before it was kept (the ts alone is checked).
	AppliedTerm int64 `bson:"appliedTerm,omitempty"`
	// TxnStart is where the shard's replay starts reading when it is before T0: the
	// first entry of the oldest transaction that may be open at T0 (absent: none).
	TxnStart primitive.Timestamp `bson:"txnStart,omitempty"`
	// Copied is keyed by namespace and partition id, as the engine names them.
	Copied    map[string]PartitionProgress `bson:"copied,omitempty"`
	Error     string                       `bson:"error,omitempty"`
	UpdatedAt time.Time                    `bson:"updatedAt"` // set by SaveShardCheckpoint
}

// maxIDLen bounds ids and shard names, which are bbolt keys and keyring attributes.
const maxIDLen = 200

// checkName refuses empty, overlong or ambiguous ids: "/" separates the migration id
// from the role in keyring keys.
func checkName(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, kind)
	case len(s) > maxIDLen:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, kind, maxIDLen)
	case strings.ContainsAny(s, "/\x00"):
		return fmt.Errorf("%w: %s %q contains '/' or a NUL byte", ErrInvalid, kind, s)
	}
	return nil
}

// checkNoSecrets refuses connection settings that would put a secret on disk: a
// connection string pasted into a host field (it may carry user:password@) or a
// private key pasted along with the CA certificates.
func checkNoSecrets(role string, c ConnSettings) error {
	for _, h := range c.Hosts {
		if strings.ContainsAny(h, "@/") {
			return fmt.Errorf("%w: %s host %q is not a host:port: enter each mongos as host:port, and the password in its own field",
				ErrInvalid, role, redactHost(h))
		}
	}
	if strings.Contains(c.CAPEM, "PRIVATE KEY") {
		return fmt.Errorf("%w: the %s CA certificates contain a private key; paste only the CA certificates", ErrInvalid, role)
	}
	if c.URI != "" && RedactURI(c.URI) != c.URI {
		return fmt.Errorf("%w: the %s connection string carries a password or another secret; only %s is kept, and the password goes to the keyring",
			ErrInvalid, role, RedactURI(c.URI))
	}
	return nil
}

// redactHost hides whatever precedes an '@', which may be user:password.
func redactHost(h string) string {
	if i := strings.LastIndex(h, "@"); i >= 0 {
		return "<redacted>" + h[i:]
	}
	return h
}

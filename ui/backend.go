package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shardlift/shardlift/engine"
)

// Backend is everything the screens need from the rest of Shardlift. The app package
// implements it over the engine, the store and the sandbox; the tests fake it. Every
// method may do network or disk I/O: the UI calls them off the event goroutine only.
type Backend interface {
	// Migrations lists the migrations recorded on this workstation, newest first.
	Migrations(ctx context.Context) ([]MigrationInfo, error)
	// Validate connects to both clusters and runs every pre-migration check. An error
	// means the checks could not run at all (a *FieldError when one form field is at
	// fault); a check that ran and failed is a Check with Status Failed.
	Validate(ctx context.Context, src, dst Connection) (Validation, error)
	// Start starts a migration: it saves the passwords to the OS keyring, stops the
	// source balancer and prepares the destination. It refuses a destination that holds
	// data unless wipeConfirmed is set. When the migration started but the passwords
	// could not be saved, it returns the Migration together with an error wrapping
	// ErrKeyringUnavailable, which the UI shows as a notice.
	Start(ctx context.Context, src, dst Connection, wipeConfirmed bool) (Migration, error)
	// Open attaches to a recorded migration: a running one resumes from its
	// checkpoints, a finished one shows its summary. pw is nil on the first try; when
	// the passwords are not in the keyring Open returns an error wrapping
	// ErrPasswordsNeeded and the UI asks for them and calls Open again.
	Open(ctx context.Context, id string, pw *Passwords) (Migration, error)
	// Remove deletes a migration that is not running from this workstation: its
	// history, checkpoints and saved passwords. The clusters are not touched.
	Remove(ctx context.Context, id string) error
	// StartSandbox starts local stand-in clusters with a seeded data set and a live
	// write load, and returns the connections to fill the forms with. ctx bounds the
	// start only: the sandbox runs until the app exits.
	StartSandbox(ctx context.Context) (src, dst Connection, err error)
	// ExportDiagnostics writes a zip of the migration's history, logs and settings,
	// without secrets, to w.
	ExportDiagnostics(ctx context.Context, id string, w io.Writer) error
	// ClearMarker removes the marker of migration migrationID from the destination,
	// once the destination proves to be cluster clusterID (what the DBA typed to
	// confirm) and the marker there is still that migration's. It leaves everything
	// else as it is.
	ClearMarker(ctx context.Context, dst Connection, clusterID, migrationID string) error
	// OpenLog opens the migration's log file with the desktop's application for it.
	// It returns the file's path also when the file could not be opened (err says
	// why), so that the screen can say where it is.
	OpenLog(ctx context.Context, id string) (path string, err error)
}

// Migration is one attached migration. Snapshot is cheap and never blocks on I/O;
// every other method may, and returns an error written for a DBA.
type Migration interface {
	// Snapshot is the migration's progress now.
	Snapshot() engine.Snapshot
	// StartCutover moves a ready migration to the cutover step.
	StartCutover(ctx context.Context) error
	// ExtendTimer adds 24 hours to the cutover window.
	ExtendTimer(ctx context.Context) error
	// Done finishes the cutover once the optime gap is zero: it verifies the
	// destination, finalizes it and restores the source balancer, and returns when that
	// is over. When the verification finds mismatches it returns an error wrapping
	// ErrVerificationMismatch (the details are in Snapshot().Verification) unless
	// override is set.
	Done(ctx context.Context, override bool) error
	// Cancel stops syncing, leaves the migrated data on the destination and restores
	// the source balancer. Returns when that is over.
	Cancel(ctx context.Context) error
	// RestartShard restarts the sync of one shard from the beginning.
	RestartShard(ctx context.Context, shard string) error
	// Retry starts a failed migration again from its checkpoints.
	Retry(ctx context.Context) error
	// Detach hands the migration to a background process that keeps syncing after the
	// window closes; Open attaches to it again.
	Detach(ctx context.Context) error
	// Pause stops syncing at a checkpoint; Open resumes from it.
	Pause(ctx context.Context) error
}

// Connection is what the user typed into one cluster's form.
type Connection struct {
	// Hosts is a mongos host:port list ("db1:27017,db2:27017") or a mongodb:// or
	// mongodb+srv:// URI.
	Hosts    string
	Username string
	Password string
	TLS      bool
	// CAFile is the path of a CA certificate file chosen by the user, CAPEM a pasted
	// certificate; at most one is set.
	CAFile string
	CAPEM  string
	// AuthMechanism is one of topology.Mechanisms ("": the server's SCRAM), and
	// AuthMechanismProperties its properties as a connection string writes them
	// ("SERVICE_NAME:mongodb,CANONICALIZE_HOST_NAME:true").
	AuthMechanism, AuthMechanismProperties string
	// CertificateKeyFile is the PEM file of the client certificate and its key,
	// CertificateKeyPassword the key's password when it is encrypted (a secret, kept
	// in the keyring like Password).
	CertificateKeyFile, CertificateKeyPassword string
	// HostMap maps the names the cluster gives its shard members (listShards, hello)
	// to the host:port this workstation reaches them at; nil: every name as it is.
	HostMap map[string]string
	// ReadPreference is the source's: which members of each shard the copy and the
	// tail read (one of topology.ReadPreferenceModes; "" leaves the connection
	// string's, else the default). The destination's form has none.
	ReadPreference string
	// ShardReadPreferences are the source's shards read otherwise, shard name ->
	// mode (or mode and tag sets, topology.ShardReadPreferenceFormat); nil: every
	// shard as ReadPreference says. The destination's form has none.
	ShardReadPreferences map[string]string
}

// Passwords are typed again when the keyring could not give them back.
type Passwords struct {
	Source, Destination string
	// SourceKey and DestinationKey are the client certificate keys' passwords, asked
	// for when a PasswordsError names their side.
	SourceKey, DestinationKey string
}

// PasswordsError is ErrPasswordsNeeded saying which passwords to type again: the
// users' (Users) and those of the client certificate keys of the sides in Keys.
// Open given Passwords takes a user's password left empty from the keyring when it
// holds one.
type PasswordsError struct {
	Users bool
	Keys  []Side
	Err   error
}

func (e *PasswordsError) Error() string {
	if errors.Is(e.Err, ErrPasswordsNeeded) {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v: %v", ErrPasswordsNeeded, e.Err)
}

func (e *PasswordsError) Unwrap() []error { return []error{ErrPasswordsNeeded, e.Err} }

// Status is the outcome of one pre-migration check.
type Status int

const (
	Passed Status = iota
	Warning
	Failed
	// NotRun is a check that could not run because one it depends on failed. It
	// blocks the start as a failed check does.
	NotRun
)

// Check is one pre-migration check as the Connections screen shows it.
type Check struct {
	Status Status
	// Title says what was checked and what was found ("Source is a sharded cluster (3 shards)").
	Title string
	// Detail adds the evidence; Fix says what to do when the check did not pass.
	Detail, Fix string
}

// Validation is the result of Validate.
type Validation struct {
	Checks []Check
	// DestinationHasData is set when starting would wipe the destination;
	// DestinationContents then describes what is there ("2 databases, 1.2 M documents")
	// and WipeDatabases names every database the wipe drops.
	DestinationHasData  bool
	DestinationContents string
	WipeDatabases       []string
	// HeldBy is set when another migration's marker holds the destination.
	HeldBy *Hold
	// ShardHosts are the source's shard members as the cluster names them, which
	// Shardlift connects to directly: the rows of the host map.
	ShardHosts []ShardHost
}

// ShardHost is one shard member as the source cluster names it.
type ShardHost struct {
	Shard, Host string
	// Problem says why it could not be reached (at its mapped address, when mapped),
	// "" when it answered.
	Problem string
}

// Hold is another migration's marker on the destination.
type Hold struct {
	// ClusterID is the destination's clusterId, MigrationID the migration holding
	// it; Marker describes that migration (its source, start and workstation).
	ClusterID, MigrationID, Marker string
	// Workstation is where that migration runs.
	Workstation string
}

// MigrationInfo is one row of the Start screen's list.
type MigrationInfo struct {
	ID, Name string
	State    engine.State
	Updated  time.Time
	Shards   int
	// Lag is the replication lag while the migration syncs, and the optime gap at the
	// moment it was cancelled; LagKnown is false when it is not known (a shard still
	// copies, or the migration is not open in this process).
	Lag      time.Duration
	LagKnown bool
	// Reason explains a failed or expired state.
	Reason string
}

// Sentinel errors the app package wraps so that the UI can react to them.
var (
	// ErrKeyringUnavailable: the OS keyring could not save or give back the passwords.
	// From Start it is a notice, not a failure.
	ErrKeyringUnavailable = errors.New("the system keyring is not available")
	// ErrPasswordsNeeded: Open needs the passwords typed again.
	ErrPasswordsNeeded = errors.New("the passwords are needed to resume")
	// ErrVerificationMismatch: Done found ranges that differ; finishing needs an override.
	ErrVerificationMismatch = errors.New("source and destination differ")
)

// Side names one of the two connection forms.
type Side int

const (
	Source Side = iota
	Destination
)

func (s Side) String() string {
	if s == Destination {
		return "destination"
	}
	return "source"
}

// Field names one field of a connection form.
type Field int

const (
	FieldHosts Field = iota
	FieldUsername
	FieldPassword
	FieldTLS
	FieldCA
	FieldMechanism
	FieldMechanismProperties
	FieldClientCert
	FieldKeyPassword
	// FieldHostMap is the host map, which both forms share.
	FieldHostMap
	// FieldReadPreference is the source's read preference.
	FieldReadPreference
	// FieldShardReadPreferences are the source's shards read otherwise (the Read
	// each shard from table).
	FieldShardReadPreferences
)

// FieldError ties an error to the form field to fix, so that the form can show it
// under that field.
type FieldError struct {
	Side  Side
	Field Field
	Err   error
	// Fix, when known, says what to do about Err.
	Fix string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Side, fieldNames[e.Field], e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

var fieldNames = map[Field]string{
	FieldHosts:                "mongos hosts",
	FieldUsername:             "username",
	FieldPassword:             "password",
	FieldTLS:                  "TLS",
	FieldCA:                   "CA certificate",
	FieldMechanism:            "authentication mechanism",
	FieldMechanismProperties:  "mechanism properties",
	FieldClientCert:           "client certificate",
	FieldKeyPassword:          "key password",
	FieldHostMap:              "shard addresses",
	FieldReadPreference:       "read preference",
	FieldShardReadPreferences: "shard read preferences",
}

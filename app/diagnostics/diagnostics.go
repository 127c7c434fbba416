package diagnostics

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/app/logfile"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/store"
)

// Diagnostics: what a DBA attaches when asking for help, with no secret in it.
//
//	slog records of the app ─► LogRing (recent lines, secrets masked) ──────────┐
//	the migration's log file (migrationlog.go) ─────────────────────────────────┤
//	store: the migration's record, history, shard checkpoints ─► JSON ──────────┼─► SecretSet.redact ─► zip
//	live migration's snapshot, version and build info ─► JSON ──────────────────┘
//
// The state file holds no password by construction (store.ConnSettings has no field
// for one); SecretSet is the second fence: every password the app has seen is masked
// in the log lines as they are written and in every file of the zip.

// The app's metadata, as in FyneApp.toml (the desktop app sets it from these, and a
// test of package gui keeps the two equal).
const (
	AppName    = "Shardlift"
	AppID      = "io.shardlift.app"
	AppVersion = "0.1.0"
	AppBuild   = 1
)

// LogRingSize is how many recent log lines the diagnostics keep.
const LogRingSize = 4000

// minSecretLen: shorter secrets are not masked, since masking them would garble
// ordinary words; a password that short is refused by any real cluster's policy.
const minSecretLen = 4

// SecretSet is every password the app has seen in this process, to mask them.
type SecretSet struct {
	mu   sync.RWMutex
	list []string
}

// add remembers secrets, with the forms a connection string escapes them into.
func (s *SecretSet) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sec := range secrets {
		if len(sec) < minSecretLen {
			continue
		}
		userinfo := strings.TrimPrefix(url.UserPassword("", sec).String(), ":") // as in mongodb://user:<this>@host
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec), userinfo} {
			if !slices.Contains(s.list, form) {
				s.list = append(s.list, form)
			}
		}
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(s.list, func(a, b string) int { return len(b) - len(a) })
}

// redact returns p with every secret replaced by ****, and every connection string
// in it without its secrets: its password, even one the app never saw, and the
// options that hold one (store.RedactURI).
func (s *SecretSet) Redact(p []byte) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sec := range s.list {
		if bytes.Contains(p, []byte(sec)) {
			p = bytes.ReplaceAll(p, []byte(sec), []byte("****"))
		}
	}
	return redactConnectionStrings(p)
}

// connectionString is a connection string in text: from its scheme to the next
// space or quote.
var connectionString = regexp.MustCompile(`mongodb(\+srv)?://[^\s"'<>]*`)

// redactConnectionStrings passes each connection string in p through MaskURI, which
// takes all before the last @ as user information (so a password with an unescaped
// @ is masked whole), then store.RedactURI.
func redactConnectionStrings(p []byte) []byte {
	if !bytes.Contains(p, []byte("mongodb")) {
		return p
	}
	return connectionString.ReplaceAllFunc(p, func(uri []byte) []byte {
		return []byte(store.RedactURI(topology.MaskURI(string(uri))))
	})
}

// redactWriter masks the secrets in what passes through it to w.
type redactWriter struct {
	w       io.Writer
	secrets *SecretSet
}

func (r redactWriter) Write(p []byte) (int, error) {
	if _, err := r.w.Write(r.secrets.Redact(bytes.Clone(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// LogRing keeps the most recent log lines. slog's text handler writes each record
// in one Write call, so one Write is one line.
type LogRing struct {
	secrets *SecretSet
	mu      struct {
		sync.Mutex
		lines []string
		next  int // where the next line goes once the ring is full
	}
	size int
}

func NewLogRing(size int, secrets *SecretSet) *LogRing {
	return &LogRing{size: size, secrets: secrets}
}

func (r *LogRing) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(r.secrets.Redact(bytes.Clone(p))), "\n")
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.mu.lines) < r.size {
		r.mu.lines = append(r.mu.lines, line)
	} else {
		r.mu.lines[r.mu.next] = line
		r.mu.next = (r.mu.next + 1) % r.size
	}
	return len(p), nil
}

// lines returns the kept lines, oldest first.
func (r *LogRing) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.mu.lines))
	out = append(out, r.mu.lines[r.mu.next:]...)
	return append(out, r.mu.lines[:r.mu.next]...)
}

// NewAppLogger logs to the ring (info and above), to stderr (warnings and above) and,
// when logs is not nil, each record about a migration to that migration's log file
// (info and above), all with the secrets masked.
func NewAppLogger(ring *LogRing, stderr io.Writer, secrets *SecretSet, logs *MigrationLogs) *slog.Logger {
	handlers := []slog.Handler{
		slog.NewTextHandler(ring, &slog.HandlerOptions{Level: slog.LevelInfo}),
		slog.NewTextHandler(redactWriter{w: stderr, secrets: secrets}, &slog.HandlerOptions{Level: slog.LevelWarn}),
	}
	if logs != nil {
		handlers = append(handlers, logs.Handler())
	}
	return slog.New(slog.NewMultiHandler(handlers...))
}

// The JSON files of the zip. Their field names are for people reading them.
type (
	Migration struct {
		ID            string               `json:"id"`
		Name          string               `json:"name"`
		CreatedAt     time.Time            `json:"createdAt"`
		State         string               `json:"state"`
		Source        diagConn             `json:"source"`
		Destination   diagConn             `json:"destination"`
		History       []diagEvent          `json:"history"`
		BalancerWasOn *bool                `json:"sourceBalancerWasOn"`
		TimerDeadline *time.Time           `json:"cutoverDeadline"`
		Summary       *store.Summary       `json:"summary"`
		Relaxed       []diagRelaxed        `json:"relaxedOnDestination"`
		Verification  *engine.Verification `json:"verification"`
		SourceUsers   []engine.User        `json:"sourceUsersToRecreate"`
	}
	// diagConn is a connection's settings: hosts, the connection string without its
	// secrets, user, TLS and where the CA came from. There is no password here, and
	// none in the state file.
	diagConn struct {
		Hosts    []string `json:"hosts"`
		URI      string   `json:"connectionString,omitempty"`
		Username string   `json:"username"`
		TLS      bool     `json:"tls"`
		CAFile   string   `json:"caFile,omitempty"`
		CAPasted string   `json:"caPasted,omitempty"`
		// The authentication mechanism, the client certificate's path and the host
		// map: what a support engineer needs to see how the clusters were reached.
		AuthMechanism      string            `json:"authMechanism,omitempty"`
		CertificateKeyFile string            `json:"certificateKeyFile,omitempty"`
		HostMap            map[string]string `json:"hostMap,omitempty"`
	}
	diagEvent struct {
		At     time.Time `json:"at"`
		Shard  string    `json:"shard,omitempty"`
		From   string    `json:"from"`
		To     string    `json:"to"`
		Reason string    `json:"reason,omitempty"`
	}
	diagRelaxed struct {
		NS       string `json:"ns"`
		Kind     string `json:"kind"`
		Original string `json:"original"`
	}
	// Shard is one shard's checkpoint. The _id where each partition's copy
	// stopped is left out: it is the user's data.
	Shard struct {
		Shard            string                   `json:"shard"`
		Phase            string                   `json:"phase"`
		T0               string                   `json:"t0"`
		ConsistencyPoint string                   `json:"consistencyPoint"`
		Applied          string                   `json:"applied"`
		Error            string                   `json:"error,omitempty"`
		UpdatedAt        time.Time                `json:"updatedAt"`
		Partitions       map[string]diagPartition `json:"partitions"`
		History          []diagEvent              `json:"history"`
	}
	diagPartition struct {
		Done  bool  `json:"done"`
		Docs  int64 `json:"docs"`
		Bytes int64 `json:"bytes"`
	}
	Version struct {
		App        string            `json:"app"`
		ID         string            `json:"id"`
		Version    string            `json:"version"`
		Build      int               `json:"build"`
		Go         string            `json:"go"`
		OS         string            `json:"os"`
		Arch       string            `json:"arch"`
		Revision   string            `json:"vcsRevision,omitempty"`
		RevisionAt string            `json:"vcsTime,omitempty"`
		Modified   string            `json:"vcsModified,omitempty"`
		Modules    map[string]string `json:"modules"`
		ExportedAt time.Time         `json:"exportedAt"`
	}
)

const diagReadme = `Shardlift diagnostics for migration %s, exported %s.

  migration.json    the migration's settings (hosts, user names, TLS, CA file path),
                    lifecycle history, cutover timer, summary and verification
  checkpoints.json  each source shard's checkpoint: phase, oplog positions, copy
                    progress per namespace
  snapshot.json     its progress at the export (when open in this Shardlift)
  log.txt           this Shardlift's recent log lines
  migration.log     the migration's own log file, oldest line first (when it has one)
  version.json      Shardlift's version and build

No password is in this file: the state file never holds one, and every password
Shardlift saw while running is masked (****) in each file.
`

// Sources are what a diagnostics zip is made of.
type Sources struct {
	Store    *store.Store
	Snapshot *engine.Snapshot // the migration's, when it runs in this process
	Ring     *LogRing
	Logs     *MigrationLogs // nil when the app keeps no log files
	Secrets  *SecretSet
}

// Export writes the diagnostics zip of migration id to w.
func Export(ctx context.Context, w io.Writer, id string, from Sources) error {
	st := from.Store
	rec, err := st.Migration(id)
	if err != nil {
		return err
	}
	cps, err := st.ShardCheckpoints(id)
	if err != nil {
		return err
	}
	engRec, engShards, err := checkpoints.New(st, id).Load()
	if err != nil {
		return err
	}
	type file struct {
		name string
		data any // a string is written as it is, anything else as JSON
	}
	files := []file{
		{"README.txt", fmt.Sprintf(diagReadme, id, time.Now().UTC().Format(time.RFC3339))},
		{"migration.json", diagMigrationOf(rec, engRec)},
		{"checkpoints.json", diagShardsOf(cps, engShards)},
	}
	if from.Snapshot != nil {
		files = append(files, file{"snapshot.json", *from.Snapshot})
	}
	files = append(files, file{"log.txt", strings.Join(from.Ring.Lines(), "\n") + "\n"})
	if from.Logs != nil {
		var log []byte
		for _, path := range logfile.Files(from.Logs.Path(id)) {
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("diagnostics: %w", err)
			}
			log = append(log, data...)
		}
		if len(log) > 0 {
			files = append(files, file{"migration.log", string(log)})
		}
	}
	files = append(files, file{"version.json", VersionInfo()})
	z := zip.NewWriter(w)
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		var data []byte
		if s, ok := f.data.(string); ok {
			data = []byte(s)
		} else if data, err = json.MarshalIndent(f.data, "", "  "); err != nil {
			return fmt.Errorf("diagnostics: encode %s: %w", f.name, err)
		}
		fw, err := z.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Now()})
		if err != nil {
			return fmt.Errorf("diagnostics: %w", err)
		}
		if _, err := fw.Write(from.Secrets.Redact(data)); err != nil {
			return fmt.Errorf("diagnostics: write %s: %w", f.name, err)
		}
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("diagnostics: %w", err)
	}
	return nil
}

func diagConnOf(c store.ConnSettings) diagConn {
	d := diagConn{Hosts: c.Hosts, URI: store.RedactURI(c.URI), Username: c.Username, TLS: c.TLS, CAFile: c.CAFile,
		AuthMechanism: c.AuthMechanism, CertificateKeyFile: c.CertificateKeyFile, HostMap: c.HostMap}
	if c.CAPEM != "" {
		d.CAPasted = fmt.Sprintf("pasted PEM, %d bytes", len(c.CAPEM))
	}
	return d
}

func diagMigrationOf(m store.Migration, r engine.Record) Migration {
	d := Migration{
		ID: m.ID, Name: m.Name, CreatedAt: m.CreatedAt, State: m.State,
		Source: diagConnOf(m.Source), Destination: diagConnOf(m.Destination),
		BalancerWasOn: m.BalancerWasOn, Summary: m.Summary, Verification: r.Verification, SourceUsers: r.Users,
	}
	if !m.TimerDeadline.IsZero() {
		t := m.TimerDeadline
		d.TimerDeadline = &t
	}
	for _, e := range m.History {
		d.History = append(d.History, diagEvent{At: e.At, From: e.From, To: e.To, Reason: e.Reason})
	}
	for _, x := range r.Relaxed {
		d.Relaxed = append(d.Relaxed, diagRelaxed{NS: x.NS, Kind: string(x.Kind), Original: x.Original.String()})
	}
	return d
}

func diagShardsOf(cps []store.ShardCheckpoint, shards []engine.ShardCheckpoint) []Shard {
	updated := map[string]time.Time{}
	for _, cp := range cps {
		updated[cp.Shard] = cp.UpdatedAt
	}
	out := []Shard{}
	for _, s := range shards {
		d := Shard{
			Shard: s.Shard, Phase: string(s.Phase), T0: tsText(s.T0), ConsistencyPoint: tsText(s.ConsistencyPoint),
			Applied: tsText(s.Applied), Error: s.Error, UpdatedAt: updated[s.Shard], Partitions: map[string]diagPartition{},
		}
		for ns, p := range s.Copied {
			d.Partitions[ns] = diagPartition{Done: p.Done, Docs: p.Docs, Bytes: p.Bytes}
		}
		for _, e := range s.History {
			d.History = append(d.History, diagEvent{At: e.At, Shard: e.Shard, From: e.From, To: e.To, Reason: e.Reason})
		}
		out = append(out, d)
	}
	return out
}

// tsText is an oplog timestamp as MongoDB tools print it, with its wall time.
func tsText(ts primitive.Timestamp) string {
	if ts.IsZero() {
		return ""
	}
	return fmt.Sprintf("Timestamp(%d, %d) %s", ts.T, ts.I, time.Unix(int64(ts.T), 0).UTC().Format(time.RFC3339))
}

// VersionInfo is this build's version, from the app's metadata and Go's build info.
func VersionInfo() Version {
	v := Version{
		App: AppName, ID: AppID, Version: AppVersion, Build: AppBuild,
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		Modules: map[string]string{}, ExportedAt: time.Now().UTC(),
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.RevisionAt = s.Value
		case "vcs.modified":
			v.Modified = s.Value
		}
	}
	for _, d := range info.Deps {
		switch d.Path {
		case "fyne.io/fyne/v2", "go.mongodb.org/mongo-driver", "go.etcd.io/bbolt",
			"github.com/zalando/go-keyring", "github.com/FerretDB/FerretDB":
			v.Modules[d.Path] = d.Version
		}
	}
	return v
}

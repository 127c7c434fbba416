package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/oplogbuf"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/units"
	"github.com/shardlift/shardlift/store"
)

const migrateDescription = `Migrates a sharded cluster into another one, headless: validates both (and refuses to
start on a failed check), stops the source balancer, prepares the destination, copies
every shard and keeps replaying their oplogs.

Shardlift knows each cluster by its clusterId (config.version) and its servers: it
refuses a source that is the destination or shares a server with it, a state file
of other clusters (one state file per source and destination), and a destination
another migration holds (see 'shardlift clear-marker' for a dead one's). It prints a progress line every few
seconds and runs until the migration is done, cancelled or expired, or until
interrupted (Ctrl-C): the state file keeps the checkpoints, and running the same
command again resumes the migration from them.

With --api, the lifecycle is driven through a JSON API on that loopback address:
'shardlift status|cutover|done|cancel|extend|restart-shard|verify --api ADDR'; GET
/metrics serves the same figures to Prometheus. Every user of this machine can reach
a loopback port: --api-token-file FILE makes the API require the token in FILE
(created readable by you only, and printed once, when missing); give the clients the
same --api-token-file FILE.

Each cluster is given as its mongos connection string (mongodb://..., mongodb+srv://...)
or as a list of its mongos host:port (db1:27017,db2:27017), as in the app.

Passwords come from the URI, or else from SHARDLIFT_SOURCE_PASSWORD and
SHARDLIFT_DESTINATION_PASSWORD; a client certificate key's from
tlsCertificateKeyFilePassword= or else SHARDLIFT_SOURCE_KEY_PASSWORD and
SHARDLIFT_DESTINATION_KEY_PASSWORD. They are never printed nor saved.

Exit status: 0 when the migration is done or cancelled, 1 when it failed, expired, was
refused or interrupted, 2 for bad usage.`

func runMigrate(ctx context.Context, s streams, args []string) int {
	f := newFlags("migrate", "--source URI --destination URI --state FILE [flags]", migrateDescription)
	clusters := addClusterFlags(f)
	statePath := f.String("state", "", "the state `FILE` that keeps the checkpoints of this source and destination (created when absent)")
	apiAddr := f.String("api", "", "serve the JSON API on `ADDR`, a loopback HOST:PORT such as 127.0.0.1:8321")
	tokenFile := f.String("api-token-file", "", "make the API require the token kept in `FILE` (created owner-only with a new token, printed once, when missing)")
	wipe := f.Bool("wipe-destination", false, "confirm that a destination holding data is wiped before the migration starts")
	timeout := f.Duration("timeout", topology.DefaultTimeout, "wait at most `D` for each connection and each discovery command")
	every := f.Duration("progress-every", 5*time.Second, "print a progress line every `D`")
	window := f.Duration("cutover-window", engine.DefaultCutoverWindow, "how long the cutover window stays open once every shard is in sync, `D` (shorter for trial runs)")
	verbose := f.Bool("verbose", false, "log every step of the engine")
	partitions := f.Int("copy-partitions", initialsync.DefaultPartitions, "read each large collection of a shard with `N` cursors in parallel, each its own _id range (1: one cursor)")
	partitionSize := f.String("partition-min-size", units.Bytes(initialsync.DefaultPartitionBytes), "a collection's part on a shard is large from `SIZE` (such as 512MiB) or 4 million documents")
	continuous := f.Bool("continuous-verify", true, "compare the destination with the source while it syncs, so that I'm done verifies only what changed since (false: I'm done verifies everything)")
	duty := f.Float64("continuous-duty", engine.DefaultContinuousDuty, "the fraction `F` of its time each cursor of the continuous verification may spend reading (above 0, at most 1); it always waits while a shard's replay lags")
	bufferSize := f.String("oplog-buffer-size", units.Bytes(replay.DefaultBufferLimit), "buffer each source shard's oplog on local disk, beside the state file, up to `SIZE` (such as 10GiB; at most what the free disk allows; 0: replay straight from the source's oplog, whose window then bounds the copy's duration)")
	if code, ok := f.parse(s, args); !ok {
		return code
	}
	switch {
	case f.NArg() > 0:
		return usageError(s, f.prog, "unexpected argument %q", f.Arg(0))
	case *clusters.source == "":
		return usageError(s, f.prog, "--source is required")
	case *clusters.destination == "":
		return usageError(s, f.prog, "--destination is required")
	case *statePath == "":
		return usageError(s, f.prog, "--state is required")
	case *timeout <= 0:
		return usageError(s, f.prog, "--timeout %v: the timeout must be positive", *timeout)
	case *every <= 0:
		return usageError(s, f.prog, "--progress-every %v: the period must be positive", *every)
	case *window <= 0:
		return usageError(s, f.prog, "--cutover-window %v: the window must be positive", *window)
	case *partitions < 1:
		return usageError(s, f.prog, "--copy-partitions %d: give 1 or more cursors per collection", *partitions)
	case !(*duty > 0 && *duty <= 1):
		return usageError(s, f.prog, "--continuous-duty %v: give a fraction above 0 and at most 1, such as 0.2 (a fifth of the time)", *duty)
	}
	minSize, err := humanize.ParseBytes(*partitionSize)
	if err != nil || minSize == 0 {
		return usageError(s, f.prog, "--partition-min-size %q: give a size such as 512MiB or 2GB", *partitionSize)
	}
	bufferBytes, err := humanize.ParseBytes(*bufferSize)
	if err != nil || bufferBytes > 0 && bufferBytes < oplogbuf.DefaultSegmentBytes {
		return usageError(s, f.prog, "--oplog-buffer-size %q: give a size of %s or more, such as 10GiB, or 0 to read the oplog straight from the source", *bufferSize, units.Bytes(oplogbuf.DefaultSegmentBytes))
	}
	src, dst, err := clusters.endpoints(*timeout)
	if err != nil {
		return usageError(s, f.prog, "%v", err)
	}
	if *apiAddr != "" {
		if err := api.CheckLoopback(*apiAddr); err != nil {
			return usageError(s, f.prog, "%v", err)
		}
	}
	var token string
	if *tokenFile != "" {
		if *apiAddr == "" {
			return usageError(s, f.prog, "--api-token-file protects the API: give --api ADDR as well")
		}
		var created bool
		if token, created, err = api.LoadOrCreateToken(*tokenFile); err != nil {
			fmt.Fprintf(s.err, "%s: %v\n", f.prog, err)
			return exitFail
		}
		if created {
			fmt.Fprintf(s.out, "api token (shown this once; kept in %s, give that file to the clients with --api-token-file): %s\n", *tokenFile, token)
		}
	}
	secrets := endpointSecrets(src, dst)
	out := &redactingWriter{w: &syncWriter{w: s.out}, secrets: secrets}
	errw := &redactingWriter{w: &syncWriter{w: s.err}, secrets: secrets}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(errw, f.prog+": "+format+"\n", a...)
		return exitFail
	}

	// Both clusters' identities are read before anything is written: one cluster
	// given twice, or other clusters than the state file's, change nothing. A state
	// file that exists is opened first (another Shardlift using it is said at once);
	// a new one is created only once the identities are read, so that a refused run
	// leaves no file behind.
	var st *store.Store
	if _, err := os.Stat(*statePath); err == nil {
		if st, err = store.Open(*statePath, store.Options{}); err != nil {
			return fail("%v", err)
		}
		defer st.Close()
	}
	srcID, dstID, err := readIdentities(ctx, src, dst)
	if err != nil {
		return fail("%v", err)
	}
	if st == nil {
		if st, err = store.Open(*statePath, store.Options{}); err != nil {
			return fail("%v", err)
		}
		defer st.Close()
	}
	id, resumed, err := findOrCreateMigration(st, clusterOf(src, *clusters.sourceCA, srcID), clusterOf(dst, *clusters.destinationCA, dstID))
	if err != nil {
		return fail("state file %s: %v", *statePath, err)
	}
	if resumed && len(src.HostMap) == 0 {
		if src.HostMap, err = recordedHostMap(st, id); err != nil {
			return fail("state file %s: %v", *statePath, err)
		}
		dst.HostMap = src.HostMap
		if n := len(src.HostMap); n > 0 {
			fmt.Fprintf(out, "host map: %d names, as the migration started with (--host-map or --map-host replace it)\n", n)
		}
	}
	if resumed {
		if src, err = resumedReadPreference(st, id, src); err != nil {
			return fail("state file %s: %v", *statePath, err)
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	// The migration's log file, as the app writes it: every step, whatever --verbose says.
	logSecrets := &diagnostics.SecretSet{}
	logSecrets.Add(secrets...)
	logs := diagnostics.NewMigrationLogs(diagnostics.LogDir(*statePath), logSecrets)
	defer logs.Close()
	log := slog.New(slog.NewMultiHandler(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: level}), logs.Handler()))
	log.Info("shardlift migrate", "migration", id, "version", diagnostics.AppVersion, "source", src.String(), "destination", dst.String(),
		"state", *statePath, "resumed", resumed)
	bufferDir := checkpoints.OplogBufferDir(*statePath, id)
	if bufferBytes == 0 {
		bufferDir = ""
	}
	m, err := engine.New(engine.Config{
		ID: id, Source: src, Destination: dst, CutoverWindow: *window, Logger: log,
		Partitions: *partitions, PartitionBytes: int64(min(minSize, 1<<62)), ContinuousPause: continuousPause(*continuous), ContinuousDuty: *duty,
		OplogBufferDir: bufferDir, OplogBufferLimit: int64(min(bufferBytes, 1<<62)),
	}, checkpoints.New(st, id))
	if err != nil {
		return fail("%v", err)
	}
	if resumed {
		fmt.Fprintf(out, "resuming migration %s (%s) from %s\n", id, m.State(), *statePath)
	} else {
		fmt.Fprintf(out, "migration %s: %s -> %s, state in %s\n", id, src, dst, *statePath)
	}
	fmt.Fprintf(out, "log: %s\n", logs.Path(id))
	if reads, err := src.Reads(); err == nil {
		fmt.Fprintf(out, "source shards read: %s\n", reads)
	}
	if *apiAddr != "" {
		stopAPI, err := serveAPI(ctx, *apiAddr, m, token)
		if err != nil {
			return fail("%v", err)
		}
		defer stopAPI()
		client := "--api " + *apiAddr
		if token != "" {
			client += " --api-token-file " + *tokenFile
		}
		fmt.Fprintf(out, "api: http://%s (shardlift status %s)\n", *apiAddr, client)
	}

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(*every)
		defer tick.Stop()
		steps := time.NewTicker(stepsEvery)
		defer steps.Stop()
		printed := len(m.Snapshot().History) // a resumed migration's past steps are not news
		for {
			select {
			case <-stopProgress:
				printSteps(out, m.Snapshot().History, printed)
				return
			case <-steps.C:
				printed = printSteps(out, m.Snapshot().History, printed)
			case <-tick.C:
				fmt.Fprintln(out, progressLine(m.Snapshot(), time.Now()))
			}
		}
	}()
	runErr := m.Run(ctx, engine.StartOptions{WipeDestination: *wipe})
	close(stopProgress)
	<-progressDone
	return migrateResult(out, errw, f.prog, *statePath, m.Snapshot(), runErr, ctx.Err() != nil)
}

// migrateResult prints how the run ended and returns the exit code.
func migrateResult(out, errw io.Writer, prog, statePath string, snap engine.Snapshot, err error, interrupted bool) int {
	var verr *engine.ValidationError
	switch {
	case interrupted:
		fmt.Fprintf(errw, "%s: interrupted while %s; the checkpoints are in %s: run the same command again to resume\n", prog, snap.State, statePath)
		return exitFail
	case errors.As(err, &verr):
		fmt.Fprintf(errw, "%s: the migration did not start; these checks failed:\n", prog)
		for _, f := range verr.Failed {
			line := fmt.Sprintf("  FAIL  %s: %s", f.Title, f.Detail)
			if f.Fix != "" {
				line += " | Fix: " + f.Fix
			}
			fmt.Fprintln(errw, line)
		}
		return exitFail
	case err != nil:
		fmt.Fprintf(errw, "%s: %v\n", prog, err)
		return exitFail
	}
	fmt.Fprintln(out, progressLine(snap, time.Now()))
	switch snap.State {
	case engine.Done:
		fmt.Fprintf(out, "done: %s\n", snap.Reason)
	case engine.Cancelled:
		// The engine's reasons for a cancel say "cancelled ..." themselves.
		fmt.Fprintln(out, snap.Reason)
	case engine.Expired:
		fmt.Fprintf(errw, "%s: expired: %s\n", prog, snap.Reason)
	}
	if sum := snap.Summary; sum != nil {
		for _, p := range sum.Shards {
			fmt.Fprintf(out, "  %s\n", p.Text)
		}
	}
	if v := snap.Verification; v != nil {
		for _, mm := range v.Mismatches {
			fmt.Fprintf(out, "  differs: %s %s: %d documents on the source, %d on the destination; for example _id %s\n",
				mm.Namespace, mm.Range, mm.SourceCount, mm.DestCount, strings.Join(mm.SampleIDs, ", "))
		}
		for _, l := range v.Late {
			fmt.Fprintf(out, "  late writes: %s: the destination lacks them\n", l)
		}
		for _, d := range v.Indexes {
			fmt.Fprintf(out, "  index differs: %s\n", d)
		}
	}
	if len(snap.SourceUsers) > 0 {
		fmt.Fprintln(out, "users and roles are not migrated; re-create them on the destination:")
		for _, u := range snap.SourceUsers {
			kind := "user"
			if u.IsRole {
				kind = "role"
			}
			fmt.Fprintf(out, "  %s %s@%s roles %s\n", kind, u.Name, u.DB, strings.Join(u.Roles, ", "))
		}
	}
	if snap.State == engine.Expired {
		return exitFail
	}
	return exitOK
}

// stepsEvery is how often migrate looks for new steps in the migration's history.
const stepsEvery = 250 * time.Millisecond

// printSteps prints the migration's own steps of history after the first done (its
// state changes, the stop and the restore of the source balancer, the finalize
// steps), as they happen, and returns how many are printed.
func printSteps(w io.Writer, history []engine.Event, done int) int {
	for _, e := range history[min(done, len(history)):] {
		if e.Shard != "" {
			continue // the progress lines show the shards
		}
		step := e.Reason
		if e.From != e.To {
			step = strings.ReplaceAll(e.From+" -> "+e.To, "_", " ")
			if e.Reason != "" {
				step += ": " + e.Reason
			}
		}
		fmt.Fprintf(w, "[%s] %s\n", e.At.Local().Format("15:04:05"), step)
	}
	return len(history)
}

// serveAPI serves the API until the returned stop is called.
func serveAPI(ctx context.Context, addr string, m api.Control, token string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve the API on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: api.NewHandler(ctx, m, token), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns http.ErrServerClosed on Shutdown
	}()
	return func() {
		// Let an answer being written (I'm done's) reach its client.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-served
	}, nil
}

// continuousPause is engine.Config.ContinuousPause for --continuous-verify.
func continuousPause(on bool) time.Duration {
	if on {
		return engine.DefaultContinuousPause
	}
	return -1
}

// progressLine is one line of progress for people.
func progressLine(s engine.Snapshot, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", now.Format("15:04:05"), strings.ReplaceAll(string(s.State), "_", " "))
	o := s.Overall
	if o.DocsTotal > 0 || o.DocsCopied > 0 {
		// "~": the totals are the source's estimates until every namespace is copied.
		about, estimated := "", ""
		if o.TotalsEstimated {
			about, estimated = "~", ", totals estimated"
		}
		fmt.Fprintf(&b, " | copied %s/%s%s docs (%s/%s%s%s)", humanize.Comma(o.DocsCopied), about, humanize.Comma(o.DocsTotal),
			units.Bytes(o.BytesCopied), about, units.Bytes(o.BytesTotal), estimated)
	}
	switch s.State {
	case engine.Starting:
		if p := s.Placement; p != nil {
			fmt.Fprintf(&b, " | %s", p)
		}
	case engine.Syncing, engine.Ready:
		if o.LagKnown {
			fmt.Fprintf(&b, " | lag %s", engine.GapText(o.Lag))
		} else {
			b.WriteString(" | lag — (not every shard replays yet)")
		}
	case engine.CuttingOver, engine.Cancelled, engine.Expired:
		if s.OptimeGapKnown {
			fmt.Fprintf(&b, " | optime gap %s", engine.GapText(s.OptimeGap))
		} else {
			b.WriteString(" | optime gap — (not every shard replays yet)")
		}
	}
	if c := s.Continuous; c != nil && (s.State == engine.Syncing || s.State == engine.Ready || s.State == engine.CuttingOver) {
		fmt.Fprintf(&b, " | %s", c.Text())
	}
	if s.UniqueIndexes != "" && (s.State == engine.Ready || s.State == engine.CuttingOver) {
		fmt.Fprintf(&b, " | %s", s.UniqueIndexes)
	}
	if (s.State == engine.Syncing || s.State == engine.Ready || s.State == engine.CuttingOver) && !s.TimerDeadline.IsZero() {
		left := max(s.TimerDeadline.Sub(now), 0)
		fmt.Fprintf(&b, " | window closes in %dh%02dm", int(left.Hours()), int(left.Minutes())%60)
	}
	var shards []string
	for _, sh := range s.Shards {
		p := sh.Name + " " + strings.ReplaceAll(string(sh.Phase), "_", " ")
		if sh.Phase == engine.CatchingUp || sh.Phase == engine.Synced {
			if sh.LagKnown {
				p += " " + engine.GapText(sh.Lag)
			} else {
				p += " —"
			}
		}
		if sh.Buffer != nil && sh.Phase != engine.ShardFailed {
			p += " [" + sh.Buffer.String() + "]"
		}
		if sh.Retrying != "" {
			p += " (" + sh.Retrying + ")"
		} else if at := sh.Clearing.String(); sh.Phase == engine.Clearing && at != "" {
			p += " (" + at + ")"
		} else if sh.Waiting != "" {
			p += " (" + sh.Waiting + ")"
		} else if sh.Moved != "" {
			p += " (copying again: " + sh.Moved + ")"
		}
		if r := sh.RangesText(); r != "" {
			p += " (" + r + ")"
		}
		shards = append(shards, p)
	}
	if len(shards) > 0 {
		b.WriteString(" | " + strings.Join(shards, ", "))
	}
	if s.Reason != "" {
		b.WriteString(" | " + s.Reason)
	}
	return b.String()
}

// readIdentities reads both clusters' identities and refuses one cluster given as
// both, or two sharing a server.
func readIdentities(ctx context.Context, src, dst topology.Endpoint) (srcID, dstID topology.Identity, err error) {
	if srcID, err = topology.ReadIdentity(ctx, src); err != nil {
		return srcID, dstID, fmt.Errorf("source %s: %w", src, err)
	}
	if dstID, err = topology.ReadIdentity(ctx, dst); err != nil {
		return srcID, dstID, fmt.Errorf("destination %s: %w", dst, err)
	}
	if o := topology.Compare(srcID, dstID); o.Any() {
		return srcID, dstID, &engine.SameClusterError{Source: src.String(), Destination: dst.String(), SourceID: srcID, DestinationID: dstID, Overlap: o}
	}
	return srcID, dstID, nil
}

// cluster is one side of a migration as the command line names it.
type cluster struct {
	endpoint topology.Endpoint
	settings store.ConnSettings
	id       topology.Identity
}

func clusterOf(e topology.Endpoint, caFile string, id topology.Identity) cluster {
	return cluster{endpoint: e, settings: checkpoints.ConnSettings(e, caFile), id: id}
}

// isIn refuses c as the source or destination (role) of m unless it is the
// cluster m recorded: the same clusterId or, in a record older than identities,
// the same mongos hosts.
func (c cluster) isIn(m store.Migration, role string) error {
	recorded, settings := m.SourceIdentity, m.Source
	if role == "destination" {
		recorded, settings = m.DestinationIdentity, m.Destination
	}
	was := topology.Identity{Routers: settings.Hosts}
	switch {
	case recorded == nil && slices.Equal(settings.Hosts, c.settings.Hosts):
		return nil
	case recorded != nil && recorded.ClusterID == c.id.ClusterID:
		return nil
	case recorded != nil:
		was = *checkpoints.FromStoreIdentity(recorded)
	}
	return &engine.WrongClusterError{MigrationID: m.ID, Role: role, Endpoint: c.endpoint.String(), Recorded: was, Found: c.id}
}

// findOrCreateMigration finds the migration of this source and destination that
// has not ended in the state file (to resume it), or records a new one. A state
// file belongs to one source and one destination: a migration of other clusters
// in it is refused before anything is written.
func findOrCreateMigration(st *store.Store, src, dst cluster) (id string, resumed bool, err error) {
	all, err := st.Migrations()
	if err != nil {
		return "", false, err
	}
	for _, m := range all { // newest first
		if err := src.isIn(m, "source"); err != nil {
			return "", false, err
		}
		if err := dst.isIn(m, "destination"); err != nil {
			return "", false, err
		}
		switch engine.State(m.State) {
		case engine.Done:
			// Run again after a crash during finalize, the same command would start
			// over onto the cluster the applications now use (--wipe-destination too).
			return "", false, fmt.Errorf("migration %s of these clusters is done: the destination is now the applications' cluster and is not migrated onto again; to migrate again, pass --state with a new file", m.ID)
		case engine.Cancelled, engine.Expired:
			// A staging copy: a new migration may refresh it.
		default:
			return m.ID, true, nil
		}
		break
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, err
	}
	id = time.Now().UTC().Format("m20060102-150405-") + hex.EncodeToString(b[:])
	err = st.SaveMigration(store.Migration{
		ID: id, Name: src.endpoint.String() + " -> " + dst.endpoint.String(), State: string(engine.Draft),
		Source: src.settings, Destination: dst.settings,
	})
	return id, false, err
}

// resumedReadPreference is src reading as the resumed migration id did, unless
// --source-read-preference or --shard-read-preference chose again (then recorded
// for the next resume): each replaces what was kept of its own.
func resumedReadPreference(st *store.Store, id string, src topology.Endpoint) (topology.Endpoint, error) {
	m, err := st.Migration(id)
	if err != nil {
		return src, err
	}
	changed := false
	switch {
	case src.ReadPreference == "":
		src.ReadPreference = m.Source.ReadPreference
	case src.ReadPreference != m.Source.ReadPreference:
		m.Source.ReadPreference, changed = src.ReadPreference, true
	}
	switch {
	case len(src.ShardReadPreferences) == 0:
		src.ShardReadPreferences = m.Source.ShardReadPreferences
	case !maps.Equal(src.ShardReadPreferences, m.Source.ShardReadPreferences):
		m.Source.ShardReadPreferences, changed = src.ShardReadPreferences, true
	}
	if changed {
		return src, st.SaveMigration(m)
	}
	return src, nil
}

// recordedHostMap is the host map a migration started with, which a resumed run
// given none dials again (nil when it had none).
func recordedHostMap(st *store.Store, id string) (topology.HostMap, error) {
	rec, err := st.Migration(id)
	if err != nil {
		return nil, err
	}
	if len(rec.Source.HostMap) == 0 {
		return nil, nil
	}
	return topology.HostMap(rec.Source.HostMap), nil
}

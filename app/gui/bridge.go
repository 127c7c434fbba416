package gui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// bridge is the desktop app's ui.Backend over the real parts; it is the only code
// that touches both the screens and the engine, the store and the sandbox:
//
//	ui ─► bridge ─┬─ Validate ─► connOf ─► validate.Run ─► checksOf ─► []ui.Check
//	              ├─ Start ─► store record (no password) + keyring ─► engine.New ─► liveMigration.run
//	              ├─ Open ─► store record + keyring password ─► engine.New ─► liveMigration.run (resume)
//	              ├─ Migrations, Remove ─► store + keyring
//	              ├─ StartSandbox ─► sandboxPair (two clusters, seed, write load)
//	              └─ ExportDiagnostics ─► diagnostics.Export ─► zip
//
// The bridge owns every goroutine it starts (the migrations' Runs, the sandbox's
// load) under its context, which is the process's, not the window's: a migration
// handed to the background keeps running after the window closed. Close stops them
// all (a Run stopped that way resumes from its checkpoints) and releases the sandbox
// and the state file.
type bridge struct {
	ctx     context.Context
	stop    context.CancelFunc
	st      *store.Store // nil when the state file could not be opened; stErr says why
	stErr   error
	keyring secretStore
	log     *slog.Logger
	ring    *diagnostics.LogRing
	logs    *diagnostics.MigrationLogs // nil: no log files
	secrets *diagnostics.SecretSet
	timeout time.Duration
	sbOpts  sandboxOptions
	// pollEvery is the engine's look at lag and timer (0: the engine's default).
	pollEvery time.Duration

	wg        sync.WaitGroup // Runs and the sandbox load
	sandboxMu sync.Mutex     // serializes StartSandbox
	changed   chan struct{}  // poked when a Run ends
	mu        struct {
		sync.Mutex
		live    map[string]*liveMigration
		sandbox *sandboxPair
		closed  bool
	}
}

// secretStore is the keyring as the bridge uses it (*store.Secrets).
type secretStore interface {
	Set(migrationID, role, password string) error
	Get(migrationID, role string) (string, error)
	DeleteAll(migrationID string) error
}

var _ secretStore = (*store.Secrets)(nil)

// bridgeConfig is what newBridge wires together.
type bridgeConfig struct {
	// Store is the open state file, or nil with StoreErr saying why it is not.
	Store    *store.Store
	StoreErr error
	Keyring  secretStore
	Log      *slog.Logger
	Ring     *diagnostics.LogRing
	// Logs are the migrations' log files Log writes to (nil: none); Close closes them.
	Logs    *diagnostics.MigrationLogs
	Secrets *diagnostics.SecretSet
	// Timeout bounds each connection and command (topology.DefaultTimeout when 0).
	Timeout   time.Duration
	Sandbox   sandboxOptions
	PollEvery time.Duration
}

var _ ui.Backend = (*bridge)(nil)

// newBridge takes ownership of cfg.Store: Close closes it.
func newBridge(ctx context.Context, cfg bridgeConfig) *bridge {
	ctx, stop := context.WithCancel(ctx)
	if cfg.Secrets == nil {
		cfg.Secrets = &diagnostics.SecretSet{}
	}
	if cfg.Ring == nil {
		cfg.Ring = diagnostics.NewLogRing(diagnostics.LogRingSize, cfg.Secrets)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(cfg.Ring, nil))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = topology.DefaultTimeout
	}
	if cfg.Store == nil && cfg.StoreErr == nil {
		cfg.StoreErr = errors.New("no state file is open")
	}
	b := &bridge{
		ctx: ctx, stop: stop, st: cfg.Store, stErr: cfg.StoreErr, keyring: cfg.Keyring, log: cfg.Log,
		ring: cfg.Ring, logs: cfg.Logs, secrets: cfg.Secrets, timeout: cfg.Timeout, sbOpts: cfg.Sandbox.withDefaults(),
		pollEvery: cfg.PollEvery, changed: make(chan struct{}, 1),
	}
	b.mu.live = map[string]*liveMigration{}
	return b
}

// Close stops every migration running in this process at its checkpoints, stops the
// sandbox and closes the state file. It is safe to call more than once.
func (b *bridge) Close() error {
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return nil
	}
	b.mu.closed = true
	running := 0
	for _, l := range b.mu.live {
		if l.active() {
			running++
		}
	}
	b.mu.Unlock()
	if running > 0 {
		b.log.Info("stopping the migrations running in this process at their checkpoints; opening them again resumes them", "count", running)
	}
	b.stop()
	b.wg.Wait()
	var errs []error
	b.sandboxMu.Lock()
	if p := b.sandboxPair(); p != nil {
		errs = append(errs, p.close(b.log))
	}
	b.sandboxMu.Unlock()
	if b.st != nil {
		errs = append(errs, b.st.Close())
	}
	if b.logs != nil {
		errs = append(errs, b.logs.Close())
	}
	return errors.Join(errs...)
}

// stateStore is the open state file, or why there is none.
func (b *bridge) stateStore() (*store.Store, error) {
	if b.st == nil {
		return nil, b.stErr
	}
	return b.st, nil
}

func (b *bridge) live(id string) *liveMigration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.live[id]
}

// spawn runs f in a goroutine Close waits for, unless the bridge is closing.
// Lock order: bridge.mu before a liveMigration's mu.
func (b *bridge) spawn(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

func (b *bridge) poke() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// Migrations implements ui.Backend.
func (b *bridge) Migrations(ctx context.Context) ([]ui.MigrationInfo, error) {
	st, err := b.stateStore()
	if err != nil {
		return nil, err
	}
	recs, err := st.Migrations()
	if err != nil {
		return nil, err
	}
	out := make([]ui.MigrationInfo, 0, len(recs))
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info := ui.MigrationInfo{ID: rec.ID, Name: rec.Name, State: engine.State(rec.State), Updated: rec.CreatedAt}
		if n := len(rec.History); n > 0 && rec.History[n-1].At.After(info.Updated) {
			info.Updated = rec.History[n-1].At
		}
		cps, err := st.ShardCheckpoints(rec.ID)
		if err != nil {
			return nil, err
		}
		for _, cp := range cps {
			if cp.Shard == checkpoints.MetaShard {
				continue
			}
			info.Shards++
			if cp.UpdatedAt.After(info.Updated) {
				info.Updated = cp.UpdatedAt
			}
		}
		switch info.State {
		case engine.Failed, engine.Expired:
			for i := len(rec.History) - 1; i >= 0; i-- {
				if rec.History[i].To == rec.State {
					info.Reason = rec.History[i].Reason
					break
				}
			}
		}
		if s := rec.Summary; s != nil && (info.State == engine.Cancelled || info.State == engine.Expired) {
			info.Lag, info.LagKnown = s.OptimeGap, true
		}
		if l := b.live(rec.ID); l != nil {
			s := l.Snapshot()
			info.State, info.Reason, info.Lag, info.LagKnown = s.State, "", s.Overall.Lag, s.Overall.LagKnown
			if s.State == engine.Failed || s.State == engine.Expired {
				info.Reason = s.Reason
			}
			if s.State == engine.CuttingOver || s.State == engine.Cancelled || s.State == engine.Expired {
				info.Lag, info.LagKnown = s.OptimeGap, s.OptimeGapKnown
			}
			if len(s.Shards) > 0 {
				info.Shards = len(s.Shards)
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// Validate implements ui.Backend.
func (b *bridge) Validate(ctx context.Context, src, dst ui.Connection) (ui.Validation, error) {
	s, err := connOf(ui.Source, src, b.timeout)
	if err != nil {
		return ui.Validation{}, err
	}
	d, err := connOf(ui.Destination, dst, b.timeout)
	if err != nil {
		return ui.Validation{}, err
	}
	b.secrets.Add(s.password, d.password, s.keyPassword, d.keyPassword)
	r := validate.Run(ctx, s.endpoint, d.endpoint)
	if err := ctx.Err(); err != nil {
		return ui.Validation{}, err
	}
	b.log.Info("validated", "source", s.endpoint.String(), "destination", d.endpoint.String(),
		"result", r.Summary(), "elapsed", r.Elapsed.Round(time.Millisecond))
	for _, f := range r.Findings {
		if f.Status != validate.Passed {
			b.log.Info("check "+string(f.Status), "check", f.ID, "detail", f.Detail)
		}
	}
	v := checksOf(r)
	for i := range v.Checks {
		c := &v.Checks[i]
		c.Title = string(b.secrets.Redact([]byte(c.Title)))
		c.Detail = string(b.secrets.Redact([]byte(c.Detail)))
		c.Fix = string(b.secrets.Redact([]byte(c.Fix)))
	}
	for i := range v.ShardHosts {
		h := &v.ShardHosts[i]
		h.Problem = string(b.secrets.Redact([]byte(h.Problem)))
	}
	return v, nil
}

// ClearMarker implements ui.Backend: the destination's identity is read again and
// must be clusterID, and its marker still migrationID's, before it is removed.
func (b *bridge) ClearMarker(ctx context.Context, dst ui.Connection, clusterID, migrationID string) error {
	d, err := connOf(ui.Destination, dst, b.timeout)
	if err != nil {
		return err
	}
	b.secrets.Add(d.password)
	client, err := topology.Connect(ctx, d.endpoint)
	if err != nil {
		return fmt.Errorf("destination %s: %w", d.endpoint, err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	id, err := topology.IdentityOf(ctx, client, d.endpoint)
	if err != nil {
		return fmt.Errorf("destination %s: %w", d.endpoint, err)
	}
	if _, err := prepare.ClearMarker(ctx, client, id, clusterID, migrationID); err != nil {
		return err
	}
	b.log.Warn("cleared another migration's marker from the destination", "destination", d.endpoint.String(), "migration", migrationID, "cluster", clusterID)
	return nil
}

// Start implements ui.Backend: it records the migration (settings without
// passwords), saves the passwords to the keyring, and runs the engine until the
// migration has started (validated again, destination checked, start steps
// begun). A refusal (a failed check, a destination holding data without the wipe
// confirmed) removes the record again and is returned.
func (b *bridge) Start(ctx context.Context, src, dst ui.Connection, wipeConfirmed bool) (ui.Migration, error) {
	st, err := b.stateStore()
	if err != nil {
		return nil, err
	}
	s, err := connOf(ui.Source, src, b.timeout)
	if err != nil {
		return nil, err
	}
	d, err := connOf(ui.Destination, dst, b.timeout)
	if err != nil {
		return nil, err
	}
	b.secrets.Add(s.password, d.password, s.keyPassword, d.keyPassword)
	id, err := newMigrationID()
	if err != nil {
		return nil, err
	}
	name := s.endpoint.String() + " -> " + d.endpoint.String()
	rec := store.Migration{ID: id, Name: name, State: string(engine.Draft), Source: s.settings, Destination: d.settings}
	if err := st.SaveMigration(rec); err != nil {
		return nil, err
	}
	keyErr := b.savePasswords(id, s, d)
	l, err := b.newLive(id, s.endpoint, d.endpoint)
	if err != nil {
		b.forget(id)
		return nil, err
	}
	b.log.Info("migration starting", "migration", id, "name", name, "wipeConfirmed", wipeConfirmed, "version", diagnostics.AppVersion)
	opts := engine.StartOptions{WipeDestination: wipeConfirmed}
	if err := l.awaitStarted(ctx, l.run(opts)); err != nil {
		if st := l.m.State(); st == engine.Draft || st == engine.Validated {
			// Refused before anything changed on either cluster: nothing to keep.
			l.stopRun()
			b.drop(id)
			b.forget(id)
		}
		return nil, err
	}
	if keyErr != nil {
		return l, keyErr
	}
	return l, nil
}

// savePasswords keeps the non-empty passwords (the users' and the client
// certificate keys') in the keyring. An unusable keyring is a notice for the UI
// (keyringNotice), not a failure.
func (b *bridge) savePasswords(id string, src, dst conn) error {
	if b.keyring == nil {
		return keyringNotice{errors.New("no system keyring in this build")}
	}
	for _, p := range []struct{ role, pw string }{
		{store.RoleSource, src.password}, {store.RoleDestination, dst.password},
		{store.RoleSourceKey, src.keyPassword}, {store.RoleDestinationKey, dst.keyPassword},
	} {
		if p.pw == "" {
			continue
		}
		if err := b.keyring.Set(id, p.role, p.pw); err != nil {
			b.log.Warn("the password was not saved to the system keyring", "migration", id, "role", p.role, "err", keyringCause(err))
			if errors.Is(err, store.ErrKeyringUnavailable) {
				return keyringNotice{err}
			}
			return fmt.Errorf("save the %s password to the system keyring: %w", p.role, err)
		}
	}
	return nil
}

// keyringCause is the detail of a keyring error, for the log.
func keyringCause(err error) error {
	var ke *store.KeyringError
	if errors.As(err, &ke) && ke.Cause != nil {
		return fmt.Errorf("%s: %w", ke.Op, ke.Cause)
	}
	return err
}

// keyringNotice is the keyring being unavailable, as the UI reacts to it: a notice
// on top of the running migration. Its message is the store's sentence, which says
// what happens next.
type keyringNotice struct{ err error }

func (k keyringNotice) Error() string        { return k.err.Error() }
func (k keyringNotice) Unwrap() error        { return k.err }
func (k keyringNotice) Is(target error) bool { return target == ui.ErrKeyringUnavailable }

// Open implements ui.Backend.
func (b *bridge) Open(ctx context.Context, id string, pw *ui.Passwords) (ui.Migration, error) {
	if l := b.live(id); l != nil {
		l.attachAgain()
		return l, nil
	}
	st, err := b.stateStore()
	if err != nil {
		return nil, err
	}
	rec, err := st.Migration(id)
	if err != nil {
		return nil, err
	}
	state := engine.State(rec.State)
	// A migration that ended needs no connection: its summary is in the state file.
	// Any other can sync or restore (cancel), which needs the passwords.
	var srcPw, dstPw string
	connects := state != engine.Done && state != engine.Cancelled
	if connects {
		if pw != nil {
			srcPw, dstPw = pw.Source, pw.Destination
			if srcPw == "" {
				srcPw, _ = b.keyringPassword(id, store.RoleSource, rec.Source.Username)
			}
			if dstPw == "" {
				dstPw, _ = b.keyringPassword(id, store.RoleDestination, rec.Destination.Username)
			}
		} else if srcPw, dstPw, err = b.loadPasswords(id, rec); err != nil {
			return nil, &ui.PasswordsError{Users: true, Keys: keySides(rec), Err: err}
		}
	}
	srcEnd, dstEnd := b.resumedEndpoints(id, state, rec, srcPw, dstPw, pw)
	if connects {
		if err := keyPasswordsNeeded(srcEnd, dstEnd); err != nil {
			return nil, err
		}
	}
	l, err := b.newLive(id, srcEnd, dstEnd)
	if err != nil {
		return nil, err
	}
	if resumable(state) {
		b.log.Info("migration resuming from its checkpoints", "migration", id, "state", state, "version", diagnostics.AppVersion)
		l.run(engine.StartOptions{})
	}
	return l, nil
}

// loadPasswords reads the passwords of the users the record names from the keyring.
func (b *bridge) loadPasswords(id string, rec store.Migration) (src, dst string, err error) {
	if src, err = b.keyringPassword(id, store.RoleSource, rec.Source.Username); err != nil {
		return "", "", err
	}
	if dst, err = b.keyringPassword(id, store.RoleDestination, rec.Destination.Username); err != nil {
		return "", "", err
	}
	return src, dst, nil
}

// keyringPassword is the keyring's password of the migration's user in role; none
// for a connection without a user.
func (b *bridge) keyringPassword(id, role, user string) (string, error) {
	if user == "" {
		return "", nil
	}
	if b.keyring == nil {
		return "", fmt.Errorf("%w: no system keyring in this build", ui.ErrPasswordsNeeded)
	}
	pw, err := b.keyring.Get(id, role)
	if err != nil {
		b.log.Info("password not read from the keyring", "migration", id, "role", role, "err", keyringCause(err))
		return "", fmt.Errorf("%w: %w", ui.ErrPasswordsNeeded, err)
	}
	return pw, nil
}

// keySides are the sides whose record names a client certificate, whose key may
// need a password.
func keySides(rec store.Migration) []ui.Side {
	var out []ui.Side
	for side, s := range map[ui.Side]store.ConnSettings{ui.Source: rec.Source, ui.Destination: rec.Destination} {
		if s.CertificateKeyFile != "" || strings.Contains(strings.ToLower(s.URI), "tlscertificatekeyfile=") {
			out = append(out, side)
		}
	}
	slices.Sort(out)
	return out
}

// keyPasswordsNeeded is a PasswordsError naming the sides whose client certificate
// key is encrypted and has no password (or a wrong one), nil when none.
func keyPasswordsNeeded(src, dst topology.Endpoint) error {
	perr := &ui.PasswordsError{}
	for _, side := range []struct {
		s ui.Side
		e topology.Endpoint
	}{{ui.Source, src}, {ui.Destination, dst}} {
		if _, err := side.e.ClientOptions(); errors.Is(err, topology.ErrClientKeyPassword) {
			perr.Keys = append(perr.Keys, side.s)
			perr.Err = err
		}
	}
	if len(perr.Keys) == 0 {
		return nil
	}
	return perr
}

// resumedEndpoints rebuilds a migration's endpoints from its record, the users'
// passwords and the client certificate keys' passwords: those typed again (pw), else
// the keyring's.
func (b *bridge) resumedEndpoints(id string, state engine.State, rec store.Migration, srcPw, dstPw string, pw *ui.Passwords) (src, dst topology.Endpoint) {
	srcKey, dstKey := b.loadKeyPasswords(id, state)
	if pw != nil && pw.SourceKey != "" {
		srcKey = pw.SourceKey
	}
	if pw != nil && pw.DestinationKey != "" {
		dstKey = pw.DestinationKey
	}
	b.secrets.Add(srcPw, dstPw, srcKey, dstKey)
	src, dst = checkpoints.EndpointOf(rec.Source, srcPw, b.timeout), checkpoints.EndpointOf(rec.Destination, dstPw, b.timeout)
	src.CertificateKeyPassword, dst.CertificateKeyPassword = srcKey, dstKey
	return src, dst
}

// loadKeyPasswords reads the client certificate keys' passwords the keyring holds for
// a migration that still connects; a key without a password has none saved, and a
// wrong or missing one is reported by the connection itself (ErrClientKeyPassword).
func (b *bridge) loadKeyPasswords(id string, state engine.State) (src, dst string) {
	if b.keyring == nil || state == engine.Done || state == engine.Cancelled {
		return "", ""
	}
	get := func(role string) string {
		pw, err := b.keyring.Get(id, role)
		if err != nil && !errors.Is(err, store.ErrSecretNotFound) {
			b.log.Info("key password not read from the keyring", "migration", id, "role", role, "err", keyringCause(err))
		}
		return pw
	}
	return get(store.RoleSourceKey), get(store.RoleDestinationKey)
}

// Remove implements ui.Backend.
func (b *bridge) Remove(ctx context.Context, id string) error {
	st, err := b.stateStore()
	if err != nil {
		return err
	}
	if l := b.live(id); l != nil && l.active() {
		return fmt.Errorf("%s is syncing in this Shardlift: cancel it first", l.name)
	}
	b.drop(id)
	if err := st.RemoveMigration(id); err != nil {
		return err
	}
	b.deletePasswords(id)
	b.log.Info("migration removed from this workstation", "migration", id)
	if b.logs != nil {
		if err := b.logs.Remove(id); err != nil {
			b.log.Warn("the migration's log files could not be deleted; delete them by hand", "path", b.logs.Path(id), "err", err)
		}
	}
	return nil
}

// deletePasswords removes a migration's passwords from the keyring. When the keyring
// cannot be reached the entries stay, which the log says with their names.
func (b *bridge) deletePasswords(id string) {
	if b.keyring == nil {
		return
	}
	if err := b.keyring.DeleteAll(id); err != nil {
		b.log.Warn("the migration's passwords could not be deleted from the system keyring; delete them by hand",
			"service", store.KeyringService, "keys", id+"/"+store.RoleSource+", "+id+"/"+store.RoleDestination+" (and -key)", "err", keyringCause(err))
	}
}

// forget removes a migration that never started: its record and its passwords.
func (b *bridge) forget(id string) {
	if err := b.st.RemoveMigration(id); err != nil && !errors.Is(err, store.ErrNotFound) {
		b.log.Warn("remove the record of a migration that did not start", "migration", id, "err", err)
	}
	b.deletePasswords(id)
}

func (b *bridge) drop(id string) {
	b.mu.Lock()
	delete(b.mu.live, id)
	b.mu.Unlock()
}

// newLive builds the engine's migration over the state file and registers it.
func (b *bridge) newLive(id string, src, dst topology.Endpoint) (*liveMigration, error) {
	m, err := engine.New(engine.Config{
		ID: id, Source: src, Destination: dst, PollEvery: b.pollEvery, Logger: b.log,
		OplogBufferDir: checkpoints.OplogBufferDir(b.st.Path(), id),
	}, checkpoints.New(b.st, id))
	if err != nil {
		return nil, err
	}
	l := &liveMigration{b: b, id: id, m: m, name: src.String() + " -> " + dst.String(), sandbox: b.isSandboxSource(src),
		destinationURI: applicationURI(dst)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return nil, errors.New("Shardlift is closing")
	}
	b.mu.live[id] = l
	return l, nil
}

// detachedRunning lists the migrations handed to the background that still sync.
func (b *bridge) detachedRunning() []*liveMigration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*liveMigration
	for _, l := range b.mu.live {
		if l.detached() && l.active() {
			out = append(out, l)
		}
	}
	return out
}

// newMigrationID names a migration by its start time, plus random bits so that two
// started in the same second differ.
func newMigrationID() (string, error) {
	var r [3]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("make a migration id: %w", err)
	}
	return time.Now().UTC().Format("m20060102-150405-") + hex.EncodeToString(r[:]), nil
}

// ExportDiagnostics implements ui.Backend.
func (b *bridge) ExportDiagnostics(ctx context.Context, id string, w io.Writer) error {
	st, err := b.stateStore()
	if err != nil {
		return err
	}
	from := diagnostics.Sources{Store: st, Ring: b.ring, Logs: b.logs, Secrets: b.secrets}
	if l := b.live(id); l != nil {
		snap := l.Snapshot()
		from.Snapshot = &snap
	}
	if err := diagnostics.Export(ctx, w, id, from); err != nil {
		return err
	}
	b.log.Info("diagnostics exported", "migration", id)
	return nil
}

// OpenLog implements ui.Backend.
func (b *bridge) OpenLog(ctx context.Context, id string) (string, error) {
	return b.logs.Open(ctx, id)
}

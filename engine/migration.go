package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
)

// Defaults of Config.
const (
	DefaultSyncedLag     = 3 * time.Second
	DefaultCutoverWindow = 72 * time.Hour
	DefaultExtension     = 24 * time.Hour
	DefaultPollEvery     = 500 * time.Millisecond
	DefaultDrainTimeout  = time.Minute
	// DefaultContinuousPause: the continuous verification compares a namespace, or
	// rechecks what changed, at most once a second.
	DefaultContinuousPause = time.Second
	// DefaultContinuousDuty: each of the continuous verification's cursors reads
	// at most a fifth of its time (readGovernor), the rest it pauses.
	DefaultContinuousDuty = 0.2
	// DefaultContinuousYieldLag: the continuous verification's reads wait while a
	// replay lags 2 s or more, as the lag is measured (whole seconds of the oplog's
	// timestamps): at least a whole second behind. A lag of 1 s says only that the
	// current second's entries are not all applied yet, which a replay under steady
	// writes shows half the time: waiting at 1 s compared no range in 10 minutes
	// of scenario 16 on the loaded machine (session 10), the replay holding 0 to 3 s.
	DefaultContinuousYieldLag = 2 * time.Second
)

// Config is one migration.
type Config struct {
	// ID names the migration in the checkpoints.
	ID string
	// Source and Destination are the two clusters' mongos endpoints.
	Source, Destination topology.Endpoint
	// SyncedLag: a shard whose lag is under it is synced; the migration is ready
	// when every shard is (DefaultSyncedLag).
	SyncedLag time.Duration
	// FellBehindLag: a synced shard whose lag reaches it is catching up again
	// (default: 10 s or 3 x SyncedLag, whichever is larger). The gap between the
	// two keeps a lag hovering around SyncedLag from flapping.
	FellBehindLag time.Duration
	// CutoverWindow is how long the cutover timer runs once the migration is ready
	// (DefaultCutoverWindow); Extension is what ExtendTimer adds (DefaultExtension).
	CutoverWindow, Extension time.Duration
	// PollEvery is how often the lifecycle looks at the shards' lag and the timer.
	PollEvery time.Duration
	// DrainTimeout bounds I'm done's wait for every shard to apply the source's
	// newest entry, and the graceful stop of the replays.
	DrainTimeout time.Duration
	// MovesWatchEvery is how often the move watcher looks for chunk and
	// collection moves on the source (DefaultMovesWatchEvery).
	MovesWatchEvery time.Duration
	// MissedMoveGrace is how long a fromMigrate insert into a range its shard did
	// not own at T0 waits for a look at the chunk map to explain it before the
	// shard copies again (DefaultMissedMoveGrace); tests that insert one with no
	// move at all shorten it.
	MissedMoveGrace time.Duration
	// Workstation names the machine running the migration in the destination's
	// marker, for a second migration's refusal to say who holds it (os.Hostname
	// when empty).
	Workstation string
	// ContinuousPause is the pause between two steps of the continuous
	// verification (DefaultContinuousPause): what bounds its load on the clusters
	// while the replay runs. Negative turns it off: finalize then compares
	// everything.
	ContinuousPause time.Duration
	// ContinuousDuty is the fraction of its time each cursor of the continuous
	// verification may spend reading, measured (DefaultContinuousDuty; at most 1).
	ContinuousDuty float64
	// ContinuousYieldLag: the continuous verification's reads wait while a
	// shard's replay lags this or more (DefaultContinuousYieldLag).
	ContinuousYieldLag time.Duration
	// Partitions, PartitionBytes and PartitionDocs tune the copy of large
	// collections (initialsync.Config; zero: its defaults).
	Partitions                    int
	PartitionBytes, PartitionDocs int64
	// OplogBufferDir, when set, holds each source shard's oplog buffer (a folder
	// per shard): its oplog is fetched from T0 while its copy runs and the replay
	// reads it from there, so a copy longer than the shard's oplog window still
	// ends consistent. Empty: the replay reads the source's oplog directly.
	OplogBufferDir string
	// OplogBufferLimit bounds each shard's buffer (replay.DefaultBufferLimit when
	// zero); a buffer never takes more than its share of the free disk.
	OplogBufferLimit int64
	// Clock is the time of the lifecycle (SystemClock when nil).
	Clock  Clock
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.ID == "" {
		return errors.New("migration: no ID")
	}
	if c.SyncedLag <= 0 {
		c.SyncedLag = DefaultSyncedLag
	}
	if c.FellBehindLag <= 0 {
		c.FellBehindLag = max(10*time.Second, 3*c.SyncedLag)
	}
	if c.FellBehindLag < c.SyncedLag {
		return fmt.Errorf("migration: FellBehindLag %v is below SyncedLag %v", c.FellBehindLag, c.SyncedLag)
	}
	if c.CutoverWindow <= 0 {
		c.CutoverWindow = DefaultCutoverWindow
	}
	if c.Extension <= 0 {
		c.Extension = DefaultExtension
	}
	if c.PollEvery <= 0 {
		c.PollEvery = DefaultPollEvery
	}
	if c.MovesWatchEvery <= 0 {
		c.MovesWatchEvery = DefaultMovesWatchEvery
	}
	if c.MissedMoveGrace <= 0 {
		c.MissedMoveGrace = DefaultMissedMoveGrace
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.ContinuousPause == 0 {
		c.ContinuousPause = DefaultContinuousPause
	}
	if c.ContinuousDuty > 1 {
		return fmt.Errorf("migration: ContinuousDuty %v is above 1 (a fraction of the time: 0.2 reads a fifth of it)", c.ContinuousDuty)
	}
	if c.ContinuousDuty <= 0 {
		c.ContinuousDuty = DefaultContinuousDuty
	}
	if c.ContinuousYieldLag <= 0 {
		c.ContinuousYieldLag = DefaultContinuousYieldLag
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workstation == "" {
		if c.Workstation, _ = os.Hostname(); c.Workstation == "" {
			c.Workstation = "unknown"
		}
	}
	return nil
}

// StartOptions are the user's choices when a migration starts.
type StartOptions struct {
	// WipeDestination confirms that a destination holding data may be wiped.
	WipeDestination bool
}

// Option changes how New builds a Migration.
type Option func(*Migration)

// WithConnector replaces the real clusters (NewMongoClusters) by other parts.
func WithConnector(c Connector) Option { return func(m *Migration) { m.connect = c } }

// Migration drives one migration through its lifecycle (DESIGN section 3):
//
//	Run: load checkpoints ─► identities (identity.go: not one cluster, the recorded ones)
//	     ─► Draft/Validated: validate ─► no other migration's marker ─► destination empty, or
//	        its wipe confirmed ─► this migration's marker placed ─► wipe (each database noted)
//	     ─► Starting: record the balancer's state, stop it ─► discover + plan ─► prepare the destination
//	     ─► Syncing: per shard, in parallel: T0 ─► copy ─► indexes ─► consistency point ─► replay
//	     ─► Ready when every shard's lag < SyncedLag (deadline stored; back to Syncing while a shard
//	        fails, falls behind or restarts: the deadline keeps running) ─► StartCutover ─► CuttingOver
//	     ─► Done: gap 0, drain ─► Finalizing: stop tailing, restore relaxed options, balancers,
//	        verify, remove the marker ─► Done
//	Cancel (any time), expiry of the deadline, RestartShard, ExtendTimer: see their doc.
//
// Run owns every goroutine; the actions (StartCutover, Done, Cancel, ...) are called
// from other goroutines while Run is active and are serialized among themselves.
// Snapshot is cheap and never does I/O.
type Migration struct {
	cfg Config
	// sourceReads are the source's read preference and its shards' own, for the
	// snapshots (zero when invalid: starting the migration says why).
	sourceReads topology.ShardReads
	cp          Checkpoints
	connect     Connector
	clock       Clock
	log         *slog.Logger
	relaxed     *relaxedLog
	// ordered are the namespaces the replays apply in oplog order (their unique
	// indexes restored while syncing: unique.go); set by Run before any replay.
	ordered *replay.OrderedNamespaces

	// life serializes the lifecycle's operations, held during their I/O. Shard
	// pipelines never take it: an action holding it may wait for them.
	life sync.Mutex
	run  *runState // guarded by life; non-nil while Run is active

	// recMu guards rec and serializes writes of the migration's record. Lock
	// order: life, then a shard's saveMu or recMu, then mu.
	recMu sync.Mutex
	rec   Record

	running atomic.Bool
	wake    chan struct{}
	// lookNow wakes the move watcher before its next look is due (a replay read
	// a fromMigrate insert it cannot explain; every shard in sync waits for a
	// look that covers the last T0: lookForReady).
	lookNow chan struct{}

	// mu guards what Snapshot reads; held only to copy values, never during I/O.
	mu struct {
		sync.Mutex
		state        State
		reason       string
		startedAt    time.Time
		history      []Event
		deadline     time.Time
		verification *Verification
		placement    *Placement
		continuous   *continuousVerifier // the Run's, for its progress
		summary      *Summary
		users        []User
		shards       []*shardState
		finalGap     time.Duration // frozen when syncing stopped for good
		verifying    bool
		uniqueText   string // the restore of the unique indexes while syncing
		// blocking is the shard that keeps the cutover from finishing, as last noted.
		blocking string
		// lastT0 is when a shard last recorded its T0 (or the Run began);
		// movesLooked when the last completed look for chunk moves started
		// (movesUnseenLocked); lookAskedFor the lastT0 lookForReady last asked a
		// look for.
		lastT0, movesLooked, lookAskedFor time.Time
	}
}

// runState is what one Run owns.
type runState struct {
	ctx      context.Context
	clusters Clusters
	wg       sync.WaitGroup
	pipes    map[string]*pipe // the running shard pipelines; guarded by Migration.life
	stopped  bool             // syncing stopped for good (finalize, cancel, expiry)
	// cancelStart and startDone let Cancel interrupt the start sequence.
	cancelStart context.CancelFunc
	startDone   chan struct{}
	fresh       bool // the destination was found empty (or wiped) by this Run
	// continuous is the continuous verification (nil when turned off); contMu
	// serializes its steps with finalize's use of it; stopContinuous ends its
	// steps (the finalize's first act: a comparison under way is abandoned
	// rather than waited for).
	continuous     *continuousVerifier
	contMu         sync.Mutex
	stopContinuous context.CancelFunc
	// stopUnique and uniqueDone are the restore of the unique indexes while the
	// sync runs (unique.go); nil when it was not started.
	stopUnique  context.CancelFunc
	uniqueDone  chan struct{}
	uniqueTried atomic.Bool // it went through every index once in this Run
}

// New loads the migration's checkpoints; Run then starts or resumes it.
func New(cfg Config, cp Checkpoints, opts ...Option) (*Migration, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cp == nil {
		return nil, errors.New("migration: no checkpoints")
	}
	// Every record names the migration, the clusters' (DDL applied, retries) too: the
	// app files a record by that name, and drops one that names none.
	cfg.Logger = cfg.Logger.With("migration", cfg.ID)
	m := &Migration{cfg: cfg, cp: cp, clock: cfg.Clock, log: cfg.Logger, wake: make(chan struct{}, 1),
		lookNow: make(chan struct{}, 1), sourceReads: sourceReads(cfg.Source)}
	m.connect = NewMongoClusters
	for _, o := range opts {
		o(m)
	}
	m.relaxed = &relaxedLog{m: m}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// load reads the checkpoints into memory.
func (m *Migration) load() error {
	rec, cps, err := m.cp.Load()
	if err != nil {
		return fmt.Errorf("load migration %s: %w", m.cfg.ID, err)
	}
	if rec.State == "" {
		rec.State = Draft
	}
	if !rec.State.Valid() {
		return fmt.Errorf("load migration %s: unknown state %q in the state file", m.cfg.ID, rec.State)
	}
	history := slices.Clone(rec.History)
	var shards []*shardState
	for _, c := range cps {
		shards = append(shards, newShardState(c))
		history = append(history, c.History...)
	}
	slices.SortStableFunc(history, func(a, b Event) int { return a.At.Compare(b.At) })
	m.rec = rec
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.state = rec.State
	m.mu.history = history
	m.mu.deadline = rec.TimerDeadline
	m.mu.verification = rec.Verification
	m.mu.summary = rec.Summary
	m.mu.users = rec.Users
	m.mu.shards = shards
	if rec.Summary != nil {
		m.mu.finalGap = rec.Summary.OptimeGap
	}
	for _, e := range rec.History {
		if e.To == string(Starting) {
			m.mu.startedAt = e.At
			break
		}
	}
	m.mu.reason = lastReason(rec)
	return nil
}

// lastReason explains a failed or ended migration, or one being cancelled, after
// a restart.
func lastReason(rec Record) string {
	if rec.Cancelling != nil && rec.State != Cancelled {
		return cancellingReason(*rec.Cancelling)
	}
	switch rec.State {
	case Failed, Expired, Cancelled, Done:
		for i := len(rec.History) - 1; i >= 0; i-- {
			if rec.History[i].To == string(rec.State) {
				return rec.History[i].Reason
			}
		}
	}
	return ""
}

// State is the migration's lifecycle state.
func (m *Migration) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.state
}

func (m *Migration) setReason(r string) {
	m.mu.Lock()
	m.mu.reason = r
	m.mu.Unlock()
}

func (m *Migration) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// errStartCancelled ends a start sequence that Cancel interrupted.
var errStartCancelled = errors.New("the start was cancelled")

// Run starts the migration, or resumes it from its checkpoints, and drives it until
// it is done, cancelled or expired (nil), until a start step fails (the migration is
// then failed, and the error says why), or until ctx ends (ctx's error: everything
// stops as in a crash and the next Run resumes from the checkpoints). A migration
// refused before it started (a failed check, a destination holding data or held by
// another migration) returns a *ValidationError, a *DestinationNotEmptyError or a
// *DestinationInUseError and stays as it was. Clusters that are one, or are not the
// ones the migration started with, are refused at every Run (*SameClusterError,
// *WrongClusterError), before anything is written.
func (m *Migration) Run(ctx context.Context, opts StartOptions) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("migration: Run is already active")
	}
	defer m.running.Store(false)
	switch m.State() {
	case Done, Cancelled:
		return nil
	case Expired:
		// Nothing more happens to an expired migration, unless a Cancel of it was
		// recorded and not finished: begin finishes that.
		if m.cancelRequest() == nil {
			return nil
		}
	}
	clusters, err := m.connect(ctx, m.cfg, m.relaxed)
	if err != nil {
		return fmt.Errorf("connect to the clusters: %w", err)
	}
	// Every goroutine of this Run lives in rctx and is waited for before Run returns.
	rctx, cancelRun := context.WithCancel(ctx)
	r := &runState{ctx: rctx, clusters: clusters, pipes: map[string]*pipe{}}
	m.life.Lock()
	m.run = r
	m.ordered = m.orderedNamespaces()
	m.life.Unlock()
	defer func() {
		m.life.Lock()
		m.run = nil
		cancelRun()
		m.haltPipes(r)
		m.life.Unlock()
		r.wg.Wait()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if cerr := clusters.Close(cctx); cerr != nil {
			m.log.Warn("close the connections", "err", cerr)
		}
	}()
	recorded, err := m.checkIdentities(ctx, clusters)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // stopped, not refused
		}
		return err
	}
	m.life.Lock()
	m.noteIf(recorded)
	m.life.Unlock()
	if m.cfg.ContinuousPause > 0 {
		m.recMu.Lock()
		saved := cloneContinuous(m.rec.Continuous)
		m.recMu.Unlock()
		r.continuous = newContinuousVerifier(clusters, saved, m.replayPositions, func(st *ContinuousState) error {
			return m.saveRecord(func(rec *Record) { rec.Continuous = st })
		})
		r.continuous.gov = &readGovernor{duty: m.cfg.ContinuousDuty, yieldLag: m.cfg.ContinuousYieldLag,
			lag: m.replayLag, now: time.Now, sleep: sleepCtx}
		m.mu.Lock()
		m.mu.continuous = r.continuous
		m.mu.Unlock()
		cctx, stop := context.WithCancel(rctx)
		r.stopContinuous = stop
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.verifyContinuously(cctx, r)
		}()
	}
	r.wg.Add(3)
	go func() {
		defer r.wg.Done()
		if err := clusters.RunDDL(rctx); err != nil && rctx.Err() == nil {
			m.log.Error("DDL applier stopped", "err", err)
		}
	}()
	// No look has compared the shards' saved ownerships with the source since
	// this Run began: a move made while Shardlift was down must not reach the
	// cutover unseen.
	m.mu.Lock()
	m.mu.lastT0 = m.clock.Now()
	m.mu.Unlock()
	go func() {
		defer r.wg.Done()
		m.watchMoves(rctx, r)
	}()
	go func() {
		defer r.wg.Done()
		m.watchFailed(rctx, clusters)
	}()
	if err := m.begin(ctx, r, opts); err != nil && !errors.Is(err, errStartCancelled) {
		return err
	}
	return m.monitor(ctx, r)
}

// begin brings the migration from its loaded state to syncing (or resumes the
// finalize), launching the shard pipelines.
func (m *Migration) begin(ctx context.Context, r *runState, opts StartOptions) error {
	if req := m.cancelRequest(); req != nil {
		// Cancelled before the process stopped: finish that, never sync again.
		m.life.Lock()
		defer m.life.Unlock()
		return m.finishCancel(ctx, r, r.clusters, *req)
	}
	switch st := m.State(); st {
	case Starting, Failed, Syncing, Ready, CuttingOver:
		// Still this migration's destination: its marker stays, or is put back.
		if err := m.holdDestination(ctx, r.clusters); err != nil {
			return err
		}
	}
	switch st := m.State(); st {
	case Draft, Validated:
		inv, err := m.validate(ctx, r, opts)
		if err != nil {
			return err
		}
		return m.starting(ctx, r, inv)
	case Failed:
		m.life.Lock()
		err := m.transition(Starting, "retrying from the checkpoints")
		m.life.Unlock()
		if err != nil {
			return err
		}
		return m.starting(ctx, r, Inventory{})
	case Starting:
		return m.starting(ctx, r, Inventory{})
	case Syncing, Ready, CuttingOver:
		return m.resume(ctx, r)
	case Finalizing:
		m.life.Lock()
		defer m.life.Unlock()
		if err := m.finalize(ctx, r, false); err != nil {
			m.log.Warn("finalize did not complete", "err", err)
		}
		return nil
	default:
		return fmt.Errorf("migration: cannot run from state %s", st)
	}
}

// validate runs the checks, refuses a destination another migration holds, and
// refuses a destination holding data unless the user confirmed the wipe. Nothing
// has been changed on either cluster when it refuses. It then marks the destination
// as this migration's and wipes it (each database dropped is in the history).
func (m *Migration) validate(ctx context.Context, r *runState, opts StartOptions) (Inventory, error) {
	m.setReason("running the pre-migration checks")
	inv, err := r.clusters.Validate(ctx)
	if err != nil {
		return Inventory{}, err
	}
	m.setUsers(inv.Users)
	if err := m.refuseHeldDestination(ctx, r.clusters); err != nil {
		return Inventory{}, err
	}
	dbs, err := r.clusters.DestinationData(ctx)
	if err != nil {
		return Inventory{}, fmt.Errorf("look for data on the destination: %w", err)
	}
	m.life.Lock()
	defer m.life.Unlock()
	if err := m.transition(Validated, "every pre-migration check passed"); err != nil {
		return Inventory{}, err
	}
	if len(dbs) > 0 && !opts.WipeDestination {
		return Inventory{}, &DestinationNotEmptyError{Databases: dbs}
	}
	if err := m.holdDestination(ctx, r.clusters); err != nil {
		return Inventory{}, err
	}
	reason, err := m.wipeIfAsked(ctx, r.clusters, dbs)
	if err == nil {
		r.fresh = true
		err = m.transition(Starting, reason)
	}
	if err != nil {
		// Not started: the destination is not held any more.
		if rerr := m.releaseDestination(context.WithoutCancel(ctx), r.clusters); rerr != nil {
			m.log.Warn("the migration did not start, and its marker stays on the destination", "err", rerr)
		}
		return Inventory{}, err
	}
	return inv, nil
}

// wipeIfAsked drops the destination's databases when it holds data (the user
// confirmed it), recording each database dropped; it returns the reason of the
// start. Called with life held.
func (m *Migration) wipeIfAsked(ctx context.Context, c Clusters, dbs []string) (string, error) {
	if len(dbs) == 0 {
		return "the destination is empty", nil
	}
	var dropped []string
	err := c.WipeDestination(ctx, func(db string) {
		dropped = append(dropped, db)
		m.noteAt(slog.LevelWarn, "wipe of the destination, as confirmed: dropped database "+db)
	})
	if err != nil {
		return "", fmt.Errorf("wipe the destination (dropped so far: %s): %w", listOrNone(dropped), err)
	}
	return "the destination was wiped as confirmed (dropped databases " + listOrNone(dropped) + ")", nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// starting runs the start steps, each of which may run again after an interruption:
// record the balancer's state (before stopping it), stop it, plan, stop the
// destination's balancer, prepare the destination, launch the shards. inv is what
// validation found, or empty on a resume.
func (m *Migration) starting(ctx context.Context, r *runState, inv Inventory) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.life.Lock()
	if m.State() != Starting {
		m.life.Unlock()
		return errStartCancelled // cancelled before the steps began
	}
	r.cancelStart, r.startDone = cancel, make(chan struct{})
	m.life.Unlock()
	err := m.startSteps(sctx, r, inv)
	m.life.Lock()
	defer m.life.Unlock()
	close(r.startDone)
	r.cancelStart = nil
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case sctx.Err() != nil:
		return errStartCancelled // Cancel interrupted the start and takes over
	}
	if terr := m.transition(Failed, err.Error()); terr != nil {
		return errors.Join(err, terr)
	}
	return err
}

func (m *Migration) startSteps(ctx context.Context, r *runState, inv Inventory) error {
	m.recMu.Lock()
	recorded := m.rec.BalancerWasOn != nil
	m.recMu.Unlock()
	if !recorded {
		if len(inv.Shards) == 0 {
			// A retry before the state was recorded: read it now, still unstopped.
			var err error
			if inv, err = r.clusters.Discover(ctx); err != nil {
				return fmt.Errorf("discover the clusters: %w", err)
			}
		}
		on := inv.BalancerOn
		if err := m.saveRecord(func(rec *Record) { rec.BalancerWasOn = &on }); err != nil {
			return err
		}
	}
	wasOn, err := r.clusters.StopSourceBalancer(ctx)
	if err != nil {
		return fmt.Errorf("stop the source balancer: %w", err)
	}
	m.noteBalancerStopped(wasOn)
	if wasOn {
		m.recMu.Lock()
		off := m.rec.BalancerWasOn != nil && !*m.rec.BalancerWasOn
		m.recMu.Unlock()
		if off {
			// It was switched on between discovery and the stop: restore it on.
			if err := m.saveRecord(func(rec *Record) { on := true; rec.BalancerWasOn = &on }); err != nil {
				return err
			}
		}
	}
	m.setReason("reading both clusters' metadata with the source balancer stopped")
	inv, err = r.clusters.Discover(ctx)
	if err != nil {
		return fmt.Errorf("discover the clusters with the balancer stopped: %w", err)
	}
	m.setUsers(inv.Users)
	if err := r.clusters.SetDestinationBalancer(ctx, false); err != nil {
		return fmt.Errorf("stop the destination balancer: %w", err)
	}
	m.setReason("preparing the destination: its databases, collections, indexes and chunk placement")
	if err := r.clusters.PrepareDestination(ctx, m.setPlacement); err != nil {
		return err
	}
	m.life.Lock()
	defer m.life.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.launchAll(r, inv); err != nil {
		return err
	}
	return m.transition(Syncing, fmt.Sprintf("the destination is prepared; %d shards are syncing", len(inv.Shards)))
}

// resume restarts the pipelines of a migration that was syncing, ready or cutting
// over, or expires it when its deadline passed meanwhile. It holds life throughout:
// a Cancel meanwhile would restore a balancer that resume then stops again.
func (m *Migration) resume(ctx context.Context, r *runState) error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.expiredNow() {
		m.expire(ctx, r)
		return nil
	}
	inv, err := r.clusters.Discover(ctx)
	if err != nil {
		return fmt.Errorf("discover the clusters to resume: %w", err)
	}
	m.setUsers(inv.Users)
	// Both balancers must still be off (someone may have turned one on meanwhile);
	// the source's original state is already recorded and is not overwritten.
	wasOn, err := r.clusters.StopSourceBalancer(ctx)
	if err != nil {
		return fmt.Errorf("stop the source balancer: %w", err)
	}
	if wasOn {
		m.noteBalancerStopped(wasOn)
	}
	if err := r.clusters.SetDestinationBalancer(ctx, false); err != nil {
		return fmt.Errorf("stop the destination balancer: %w", err)
	}
	return m.launchAll(r, inv)
}

// setPlacement keeps Prepare's placement progress for Snapshot.
func (m *Migration) setPlacement(p Placement) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.placement = &p
}

// noteBalancerStopped records in the history that the source balancer was stopped,
// as restoreSourceBalancer records its restore.
func (m *Migration) noteBalancerStopped(wasOn bool) {
	if wasOn {
		m.note("source balancer stopped")
	} else {
		m.note("source balancer already off")
	}
}

func (m *Migration) setUsers(users []User) {
	if users == nil {
		return
	}
	m.mu.Lock()
	m.mu.users = users
	m.mu.Unlock()
	if err := m.saveRecord(func(rec *Record) { rec.Users = users }); err != nil {
		m.log.Warn("save the source's users", "err", err)
	}
}

// monitor watches the shards and the timer until the migration ends or ctx does.
func (m *Migration) monitor(ctx context.Context, r *runState) error {
	for {
		m.life.Lock()
		m.check(ctx, r)
		st := m.State()
		m.life.Unlock()
		switch st {
		case Done, Cancelled, Expired:
			return nil
		}
		t := m.clock.NewTimer(m.cfg.PollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		case <-m.wake:
			t.Stop()
		}
	}
}

// check moves shards between catching up and synced by their lag, makes the
// migration ready when every shard is synced and syncing again when one is not
// (failed, behind, restarted), says during the cutover what keeps it from
// finishing, and expires the migration at its deadline. Called with life held.
func (m *Migration) check(ctx context.Context, r *runState) {
	now := m.clock.Now()
	m.sample(now)
	if req := m.cancelRequest(); req != nil {
		// A Cancel whose caller gave up waiting (its context ended) left it to us.
		if err := m.finishCancel(ctx, r, r.clusters, *req); err != nil {
			m.log.Error("finish the cancel", "err", err)
		}
		return
	}
	st := m.State()
	if st != Syncing && st != Ready && st != CuttingOver {
		return
	}
	if m.expiredNow() {
		m.expire(ctx, r)
		return
	}
	if r.stopped {
		return
	}
	for _, sh := range m.shardList() {
		m.judgeLag(sh)
	}
	snap := m.Snapshot()
	_, notSynced := snap.firstNotSynced(false)
	switch st {
	case Syncing:
		m.mu.Lock()
		unseen := m.movesUnseenLocked()
		m.mu.Unlock()
		switch {
		case notSynced == "" && len(snap.Shards) > 0 && unseen:
			m.setReason("every shard is in sync; looking for chunk moves on the source since the last shard started")
			m.lookForReady()
		case notSynced == "" && len(snap.Shards) > 0:
			m.becomeReady(now)
		case !snap.TimerDeadline.IsZero():
			m.setReason(notSynced) // it was ready: say why it is not any more
		}
	case Ready:
		// A synced shard whose lag is not known yet (resumed, its replay starting)
		// holds Start cutover for a moment; it does not make the migration syncing.
		for _, p := range snap.Shards {
			if why := p.NotSynced(false); why != "" && p.Phase != Synced {
				m.fallBack(why, snap.TimerDeadline)
				break
			}
		}
	case CuttingOver:
		m.judgeCutover(snap, notSynced)
	}
	if st := m.State(); st == Ready || st == CuttingOver {
		m.startUniqueRestore(r)
	}
}

// becomeReady starts the cutover window, or keeps the one that kept running while a
// shard was not in sync: falling back to syncing neither resets the DBA's window
// nor extends it. Called with life held.
func (m *Migration) becomeReady(now time.Time) {
	m.mu.Lock()
	deadline := m.mu.deadline
	m.mu.Unlock()
	reason := ""
	if deadline.IsZero() {
		deadline = now.Add(m.cfg.CutoverWindow)
		if err := m.saveRecord(func(rec *Record) { rec.TimerDeadline = deadline }); err != nil {
			m.log.Error("save the cutover deadline", "err", err)
			return
		}
		m.mu.Lock()
		m.mu.deadline = deadline
		m.mu.Unlock()
		reason = fmt.Sprintf("every shard is in sync (lag under %v): the cutover window closes at %s", m.cfg.SyncedLag, deadline.UTC().Format(time.RFC3339))
	} else {
		reason = fmt.Sprintf("every shard is in sync again (lag under %v): the cutover window, which kept running, closes at %s", m.cfg.SyncedLag, deadline.UTC().Format(time.RFC3339))
	}
	if err := m.transition(Ready, reason); err != nil {
		m.log.Error("become ready", "err", err)
	}
}

// fallBack makes a ready migration syncing again because a shard is not in sync
// (why names it); the cutover window keeps running. Called with life held.
func (m *Migration) fallBack(why string, deadline time.Time) {
	reason := fmt.Sprintf("%s; the cutover can start once every shard is in sync again; the cutover window keeps running (it closes at %s)",
		why, deadline.UTC().Format(time.RFC3339))
	if err := m.transition(Syncing, reason); err != nil {
		m.log.Error("fall back to syncing", "err", err)
		return
	}
	m.setReason(why)
}

// judgeCutover says, while cutting over, what keeps the cutover from finishing (a
// failed shard, one copying again), recorded in the history when that shard changes
// and when nothing does any more; otherwise it names a shard that fell behind.
// Called with life held.
func (m *Migration) judgeCutover(snap Snapshot, behind string) {
	p, why := snap.firstNotSynced(true)
	m.mu.Lock()
	was := m.mu.blocking
	m.mu.blocking = p.Name
	m.mu.Unlock()
	switch {
	case why != "":
		reason := "the cutover cannot finish: " + why
		if p.Name != was {
			m.note(reason)
		}
		m.setReason(reason)
	default:
		if was != "" {
			m.note("every shard replays again: the cutover can finish once the optime gap is 0:00")
		}
		m.setReason(behind)
	}
}

// expiredNow reports whether the cutover window has closed.
func (m *Migration) expiredNow() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.mu.deadline.IsZero() && !m.clock.Now().Before(m.mu.deadline)
}

// expire stops syncing at the deadline, leaves the data in place, restores what the
// sync relaxed and both balancers, and makes the migration expired. A restore that
// fails is named in the reason; Cancel tries it again. Called with life held.
func (m *Migration) expire(ctx context.Context, r *runState) {
	m.mu.Lock()
	deadline := m.mu.deadline
	m.mu.Unlock()
	gap, _ := m.liveGap()
	m.stopSync(ctx, r)
	m.freezeGap(gap)
	reason := fmt.Sprintf("the cutover window closed at %s: syncing stopped with the destination %s behind; the migrated data stays on the destination",
		deadline.UTC().Format(time.RFC3339), GapText(gap))
	if err := m.restoreAll(ctx, r.clusters); err != nil {
		reason += "; " + err.Error() + " (cancel the migration to try again)"
	}
	m.writeSummary(gap, nil, m.positions())
	if err := m.transition(Expired, reason); err != nil {
		m.log.Error("expire", "err", err)
	}
}

// transition moves the migration to a new state, recorded durably first. Called
// with life held.
func (m *Migration) transition(to State, reason string) error {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	from := m.State()
	ev, err := Transition(from, to, m.clock.Now(), reason)
	if err != nil {
		return err
	}
	if err := m.cp.AppendEvent(ev); err != nil {
		return fmt.Errorf("record the transition to %s: %w", to, err)
	}
	m.rec.State = to
	m.rec.History = append(m.rec.History, ev)
	m.mu.Lock()
	m.mu.state = to
	m.mu.history = append(m.mu.history, ev)
	if to == Starting && m.mu.startedAt.IsZero() {
		m.mu.startedAt = ev.At
	}
	switch to {
	case Failed, Expired, Cancelled, Done:
		m.mu.reason = reason
	default:
		m.mu.reason = ""
	}
	m.mu.Unlock()
	m.log.Info("migration state", "from", from, "to", to, "reason", reason)
	m.poke()
	return nil
}

// note records a step that changes no state (a finalize step, an extension of the
// timer, an override) in the history, and logs it. Called with life held.
func (m *Migration) note(reason string) { m.noteAt(slog.LevelInfo, reason) }

// noteIf notes reason unless it is empty. Called with life held.
func (m *Migration) noteIf(reason string) {
	if reason != "" {
		m.note(reason)
	}
}

// noteAt is note with the log line at level (Warn for what a DBA must see even
// without verbose logging: a dropped database).
func (m *Migration) noteAt(level slog.Level, reason string) {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	st := m.State()
	ev := Event{At: m.clock.Now(), From: string(st), To: string(st), Reason: reason}
	if err := m.cp.AppendEvent(ev); err != nil {
		m.log.Warn("record a step in the history", "step", reason, "err", err)
		return
	}
	m.rec.History = append(m.rec.History, ev)
	m.mu.Lock()
	m.mu.history = append(m.mu.history, ev)
	m.mu.Unlock()
	m.log.Log(context.Background(), level, reason)
}

// saveRecord changes the record and saves it.
func (m *Migration) saveRecord(change func(*Record)) error {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	next := m.rec
	next.Relaxed = slices.Clone(m.rec.Relaxed)
	change(&next)
	if err := m.cp.SaveRecord(next); err != nil {
		return fmt.Errorf("save migration %s: %w", m.cfg.ID, err)
	}
	m.rec = next
	return nil
}

// freezeGap keeps the optime gap at the moment syncing stopped for good.
func (m *Migration) freezeGap(gap time.Duration) {
	m.mu.Lock()
	m.mu.finalGap = gap
	m.mu.Unlock()
}

// frozenGap is the optime gap kept when syncing stopped for good.
func (m *Migration) frozenGap() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.finalGap
}

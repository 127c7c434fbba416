package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/topology"
)

// Checkpointer keeps each shard's resume point durably.
type Checkpointer interface {
	// SaveApplied records that every entry of shard's oplog up to at is applied; at
	// carries the term of that entry, which a resume checks (Config.ResumeTerm).
	SaveApplied(shard string, at OpTime) error
}

// Config describes one shard's replay.
type Config struct {
	// Shard is the source shard's name, for messages, checkpoints and DDL.
	Shard       string
	Source      Source
	Destination Destination
	// DDL applies the DDL of every shard of the migration once. Required.
	DDL DDLApplier
	// Checkpoints receives the resume point every CheckpointEvery and at the end;
	// nil for a replay that is never resumed (a file).
	Checkpoints Checkpointer

	// Resume is the entry the replay starts after: the shard's T0 (its newest entry
	// when the copy began) or the checkpoint it resumes from. That entry must still be
	// in the oplog (else the shard fails with a *GapError) and is not applied again.
	// Zero means every entry of the source, the first one included (a file).
	Resume primitive.Timestamp
	// ResumeTerm is the term of the entry at Resume, 0 when unknown (a checkpoint
	// saved before terms were kept: only its ts is checked). The entry the oplog
	// holds at Resume must be of this term: one of another term, or none while the
	// oplog holds older entries, means the source rolled back entries this replay
	// applied, and the shard fails with a *RollbackError.
	ResumeTerm int64
	// T0 is the shard's T0: the copy holds every write up to it (it reads at the
	// majority commit point, at or after T0). TxnStart is the first entry of the
	// oldest transaction open at T0 (zero when none was): a replay that starts at T0
	// (Resume == T0) reads from TxnStart instead, that entry included, so that it
	// sees every entry of the transactions T0 cut in two. Of the entries up to T0 it
	// uses only those of transactions (oplog.Translator.ProcessCopied); the rest
	// are in the copy and only move the resume point.
	T0, TxnStart primitive.Timestamp
	// T0Term is the term of the entry at T0 (0 when unknown): a replay that reads
	// from before T0 (TxnStart, or a checkpoint before it) checks that the entry it
	// reads at T0 is of this term, as the resume check does at Resume; the copy
	// holds the writes up to that entry, so one of another term, or none, means the
	// source rolled back what the copy holds, and the shard fails with a
	// *RollbackError.
	T0Term int64
	// ConsistencyPoint is the newest source ts when the shard's copy finished. Entries
	// up to it may meet documents the copy read in a later state, so the write errors
	// that causes (see idempotencyCodes) are tolerated up to it, and fail the shard
	// after it. The replay also tolerates them up to the newest entry at its own start,
	// which a previous run (killed before it checkpointed) may have applied already.
	ConsistencyPoint primitive.Timestamp

	// FromMigrate, when set, is called with the namespace and document of each
	// fromMigrate insert read after T0, which the replay skips (a chunk
	// migration's recipient logs what it receives so): the move watcher's
	// cross-check for a move it did not see (engine/moves.go). It runs in the
	// reader and must be quick; doc is only valid during the call.
	FromMigrate func(ns oplog.Namespace, doc bson.Raw)

	// Translator configures the decoding of entries into writes (shard key fields of
	// sharded collections, the transaction buffer's bound).
	Translator oplog.Config

	// Appliers is the number of parallel appliers (K); zero means 4.
	Appliers int
	// QueueBytes bounds the bytes of the writes read and not yet applied, over all
	// appliers and the writes waiting behind a DDL; zero means 64 MiB. Outside it: the
	// tailer's batch, one batch between tailer and dispatcher and the dispatcher's
	// batch (each at most the source's batch size and 16 MiB), and the open
	// transactions (Translator.TxnBufferBytes).
	QueueBytes int64
	// A bulk write holds at most BatchWrites writes (zero: 1000), BatchBytes bytes
	// (zero: 8 MiB) and BatchUpdates update or replace statements (zero: as many as
	// BatchWrites). (Until session 11 the default was 99, for FerretDB, which
	// deadlocked on bulks of 100 updates when it took them itself; the sandbox's shard
	// fronts now run each statement on their own, and a mongod does not mind: at 40 ms
	// from the destination the cap cut the mixed batches to 59 writes and the replay to
	// half its rate.)
	BatchWrites  int
	BatchBytes   int64
	BatchUpdates int
	// SerialBulks writes each batch as one bulk write per namespace, ordered when a
	// document repeats (the driver then sends a command per run of one kind, a round
	// trip each), as the applier did before it wrote in rounds (see writeRounds):
	// only for the benchmark's before-and-after.
	SerialBulks bool
	// Pipeline is how many full batches an applier may have in flight at once (each
	// written in rounds), its documents' writes kept in order (see run.apply); 1
	// waits for each batch before the next (as SerialBulks does). Zero chooses it
	// from the destination's round trip at the start of each run (see
	// pipelineDepth).
	Pipeline int
	// Ordered, when set, are the namespaces whose writes are applied in oplog order
	// (their unique indexes are restored on the destination): see
	// OrderedNamespaces. Shared by every shard's replay.
	Ordered *OrderedNamespaces
	// Linger is how long an applier waits for more writes before it writes a batch
	// that is not full; zero means 5 ms.
	Linger time.Duration
	// CheckpointEvery is the checkpoint period; zero means 1 s.
	CheckpointEvery time.Duration
	// CommitPollEvery is how often the source's majority commit point is asked
	// again while the entries read wait for it to move; zero means 10 ms.
	CommitPollEvery time.Duration

	Logger *slog.Logger
}

func (c *Config) defaults() error {
	switch {
	case c.Shard == "":
		return errors.New("replay: the shard has no name")
	case c.Source == nil || c.Destination == nil || c.DDL == nil:
		return fmt.Errorf("replay of shard %s: Source, Destination and DDL are required", c.Shard)
	}
	if c.Appliers <= 0 {
		c.Appliers = 4
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 64 << 20
	}
	if c.BatchWrites <= 0 {
		c.BatchWrites = 1000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 8 << 20
	}
	if c.BatchUpdates <= 0 {
		c.BatchUpdates = c.BatchWrites
	}
	switch {
	case c.SerialBulks:
		c.Pipeline = 1
	case c.Pipeline < 0:
		c.Pipeline = 0
	}
	if c.Linger <= 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = time.Second
	}
	if c.CommitPollEvery <= 0 {
		c.CommitPollEvery = 10 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("shard", c.Shard)
	return nil
}

// Shard replays one shard's oplog into the destination: Run it in a goroutine,
// read Snapshot at will, and Stop it (or cancel Run's context, which abandons the
// work in flight without a final checkpoint, as a crash would).
type Shard struct {
	cfg   Config
	c     counters
	rates rates

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	started  atomic.Bool

	noPipelines atomic.Bool  // the destination refused a pipeline update (see ImageReader)
	depth       atomic.Int32 // the batches in flight per applier chosen last (see pipelineDepth)
	timedDepth  atomic.Bool  // depth was chosen from a timed round trip

	// start is the resume point the replay was given: never saved again. Before
	// TxnStart when the replay reads from there (beforeTxns), else Resume.
	start      OpTime
	beforeTxns bool

	wm     atomic.Pointer[Watermark]  // resume point of the current run
	pos    atomic.Pointer[Watermark]  // position for other shards' DDL (see DDLApplier.Position)
	held   atomic.Pointer[heldScopes] // what pos leaves aside: the entries not applied yet, by namespace
	budget atomic.Pointer[budget]
	// posMoved wakes housekeep when pos or held moves: another shard's DDL may wait for
	// it, and each DDL that waits for a tick of positionEvery holds the DDL after
	// it too (see housekeep).
	posMoved chan struct{}
	// saveMu serializes the saves of the resume point (housekeep's, Checkpoint's and
	// the final one); saved is the last one saved, which a save never goes back from.
	saveMu sync.Mutex
	saved  OpTime

	mu struct {
		sync.Mutex
		retrying [numRetry]string // by retryWork, retryCheckpoint, retrySource
		waiting  []*hold          // DDL waiting for the other shards, oldest first
		// commitWait is when the entry the tailer holds began waiting for the
		// majority commit point (zero: none waits).
		commitWait time.Time
		// commitMembers are where the set's members were (MemberReporter) when
		// last asked during that wait, for the entry commitAwaited; nil: not known.
		commitMembers []topology.MemberOpTime
		commitAwaited primitive.Timestamp
		// aside counts the items the current run set aside behind a DDL on the
		// destination, by namespace (see run.setAside).
		aside map[string]int64
		err   error
	}
}

// New checks cfg and returns a Shard ready to Run.
func New(cfg Config) (*Shard, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Shard{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{}), posMoved: make(chan struct{}, 1)}
	s.start = OpTime{TS: cfg.Resume, Term: cfg.ResumeTerm}
	if !cfg.TxnStart.IsZero() && cfg.Resume == cfg.T0 && cfg.TxnStart.Before(cfg.T0) {
		s.start, s.beforeTxns = OpTime{TS: justBefore(cfg.TxnStart)}, true
		s.saved = s.start // before TxnStart is no entry: never saved
	}
	s.wm.Store(newWatermarkAt(s.start))
	s.pos.Store(s.newPosition(s.start))
	s.held.Store(s.newHeldScopes())
	s.budget.Store(newBudget(cfg.QueueBytes))
	return s, nil
}

// newestEvery is how often the source's newest entry is read, for the lag.
const newestEvery = 2 * time.Second

// positionEvery is how often the shard tells the DDL applier how far it is.
const positionEvery = 100 * time.Millisecond

// commitWaitShown is how long entries wait for the source's majority commit point
// before the shard's progress says so: under a load every new entry waits a few
// milliseconds for the secondaries, which is no news.
const commitWaitShown = time.Second

// Run replays until Stop (nil), the end of a finite source (nil), a failure (the
// error; the shard must be restarted or the fault fixed) or the end of ctx
// (ctx.Err(), without a final checkpoint). Transient faults are retried, each time
// from the resume point, reporting "retrying: <cause>" in the progress.
func (s *Shard) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return fmt.Errorf("replay of shard %s: Run called twice", s.cfg.Shard)
	}
	defer close(s.done)
	hkCtx, stopHK := context.WithCancel(ctx)
	var hk sync.WaitGroup
	hk.Add(2)
	go func() { defer hk.Done(); s.housekeep(hkCtx) }()
	go func() { defer hk.Done(); s.pollNewest(hkCtx) }()

	err := s.loop(ctx)
	stopHK()
	hk.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if cerr := s.finalCheckpoint(ctx); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		s.mu.Lock()
		s.mu.err = err
		s.mu.retrying = [numRetry]string{}
		s.mu.Unlock()
	}
	return err
}

// loop runs the pipeline, from the resume point again after each transient fault.
func (s *Shard) loop(ctx context.Context) error {
	tolerate := s.cfg.ConsistencyPoint
	retry := newBackoff()
	for !s.stopping() {
		newest, err := s.cfg.Source.Newest(ctx)
		if err == nil {
			raiseTS(&s.c.newest, newest)
			tolerate = maxTS(tolerate, newest)
			from := s.wm.Load().At()
			r := newRun(s, from, tolerate, s.pipelineDepth(ctx))
			err = r.run(ctx)
			s.noteAside(nil)
			tolerate = maxTS(tolerate, r.lastRead)
			if errors.Is(err, errReadAgain) {
				s.cfg.Logger.Info("reading again the entries set aside behind a DDL", "shard", s.cfg.Shard, "from", tsString(s.wm.Load().Floor()))
				retry.reset()
				continue
			}
			if s.wm.Load().Floor().After(from.TS) {
				retry.reset() // it made progress: the fault is new, retry soon
			}
			if err == nil {
				s.setRetrying(retryWork, "")
				return nil
			}
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case s.stopping():
			return nil
		case isTransient(err) || errors.Is(err, errCursorClosed) || memberGone(err):
			s.setRetrying(retryWork, "retrying: "+err.Error())
			s.cfg.Logger.Warn("replay interrupted, resuming from the checkpoint", "from", tsString(s.wm.Load().Floor()), "err", err)
			if err := retry.wait(ctx, s.stop); err != nil {
				return err
			}
		default:
			var gap *GapError
			var rollback *RollbackError
			if errors.As(err, &gap) || errors.As(err, &rollback) {
				return err
			}
			return fmt.Errorf("replay of shard %s: %w", s.cfg.Shard, err)
		}
	}
	return nil
}

// Stop asks Run to stop reading, apply what it read and save a final checkpoint,
// and waits for it to return (or for ctx to end).
func (s *Shard) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	if !s.started.Load() {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Shard) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// What is being retried, for Progress.Retrying.
const (
	retryWork       = iota // tailing or writing
	retryCheckpoint        // saving the checkpoint
	retrySource            // reaching the source shard (a tail can wait silently on a dead link)
	retryCommit            // learning the source shard's majority commit point
	numRetry
)

// waitingFor records that h waits for the other shards (on), or no longer does.
func (s *Shard) waitingFor(h *hold, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.waiting = slices.DeleteFunc(s.mu.waiting, func(x *hold) bool { return x == h })
	if on {
		s.mu.waiting = append(s.mu.waiting, h)
	}
}

func (s *Shard) setRetrying(kind int, msg string) {
	s.mu.Lock()
	s.mu.retrying[kind] = msg
	s.mu.Unlock()
}

// newPosition is a position watermark that wakes housekeep when it moves.
func (s *Shard) newPosition(from OpTime) *Watermark {
	w := newWatermarkAt(from)
	w.moved = s.posMoved
	return w
}

func (s *Shard) newHeldScopes() *heldScopes { return newHeldScopes(s.posMoved) }

// reportPosition tells the DDL applier the shard's position and the scopes it
// leaves aside, read in that order (see run.leaveAside).
func (s *Shard) reportPosition() {
	floor := s.pos.Load().Floor()
	s.cfg.DDL.Position(s.cfg.Shard, floor, s.held.Load().snapshot()...)
}

// housekeep saves checkpoints, tells the DDL applier the shard's position and
// samples the apply rate, until ctx ends. The position goes out as soon as it
// moves, not only at the tick: two shards whose DDL alternate (each waits for the
// other to pass it) would otherwise wait half a tick per DDL on average, which a
// few DDL a second turn into a lag that never shrinks.
func (s *Shard) housekeep(ctx context.Context) {
	tick := time.NewTicker(positionEvery)
	defer tick.Stop()
	var lastSave, lastSample time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.posMoved:
			s.reportPosition()
			continue
		case now := <-tick.C:
			s.reportPosition()
			floor := s.wm.Load().At().TS
			s.cfg.DDL.Applied(s.cfg.Shard, floor)
			if now.Sub(lastSample) >= time.Second {
				lastSample = now
				s.rates.add(now, s.c.inserts.Load()+s.c.updates.Load()+s.c.deletes.Load())
			}
			if s.cfg.Checkpoints == nil || now.Sub(lastSave) < s.cfg.CheckpointEvery {
				continue
			}
			lastSave = now
			if at, err := s.saveCheckpoint(); err != nil {
				// Retried at the next period, with the newest floor: never skipped.
				s.setRetrying(retryCheckpoint, fmt.Sprintf("retrying: save the checkpoint %s: %v", tsString(at.TS), err))
				continue
			}
			s.setRetrying(retryCheckpoint, "")
		}
	}
}

// saveCheckpoint saves the resume point (everything applied so far) unless it is
// the one saved last, and returns it.
func (s *Shard) saveCheckpoint() (OpTime, error) {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	at := s.wm.Load().At()
	if at == s.saved {
		return at, nil
	}
	if err := s.cfg.Checkpoints.SaveApplied(s.cfg.Shard, at); err != nil {
		return at, err
	}
	s.saved = at
	return at, nil
}

// Checkpoint saves the resume point now rather than at the next period: I'm done
// calls it once every shard applied the source's newest entry, so that a crash
// before the final checkpoint does not leave the finalize an older resume point
// (the writes between the two would read as the source's writes after the sync
// stopped).
func (s *Shard) Checkpoint() error {
	if s.cfg.Checkpoints == nil {
		return nil
	}
	at, err := s.saveCheckpoint()
	if err != nil {
		return fmt.Errorf("save the checkpoint %s of shard %s: %w", tsString(at.TS), s.cfg.Shard, err)
	}
	return nil
}

// finalCheckpoint saves the resume point once the pipeline has stopped, retrying
// until it is saved or ctx ends.
func (s *Shard) finalCheckpoint(ctx context.Context) error {
	if s.cfg.Checkpoints == nil {
		return nil
	}
	b := newBackoff()
	for {
		at, err := s.saveCheckpoint()
		if err == nil {
			return nil
		}
		s.setRetrying(retryCheckpoint, fmt.Sprintf("retrying: save the checkpoint %s: %v", tsString(at.TS), err))
		if werr := b.wait(ctx, nil); werr != nil {
			return fmt.Errorf("save the final checkpoint %s of shard %s: %w", tsString(at.TS), s.cfg.Shard, err)
		}
	}
}

// pollNewest reads the source's newest entry every newestEvery, for the lag: the
// tailer's last entry is the newest only once it has caught up.
func (s *Shard) pollNewest(ctx context.Context) {
	tick := time.NewTicker(newestEvery)
	defer tick.Stop()
	var since time.Time // of the first failure in a row
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			qctx, cancel := context.WithTimeout(ctx, newestEvery)
			ts, err := s.cfg.Source.Newest(qctx)
			cancel()
			switch {
			case err == nil:
				raiseTS(&s.c.newest, ts)
				since = time.Time{}
				s.setRetrying(retrySource, "")
			case ctx.Err() != nil:
				return
			case since.IsZero():
				since = time.Now()
			default:
				// A tail blocked on a link that drops packets gets no error: the
				// failed polls are what shows the shard is out of reach.
				s.setRetrying(retrySource, fmt.Sprintf("retrying: the source shard has not answered since %s: %v", since.UTC().Format("15:04:05"), err))
			}
		}
	}
}

// Snapshot returns the shard's progress. It does no I/O and takes only short locks.
func (s *Shard) Snapshot() Progress {
	p := Progress{
		Shard:        s.cfg.Shard,
		Inserts:      s.c.inserts.Load(),
		Updates:      s.c.updates.Load(),
		Deletes:      s.c.deletes.Load(),
		DDL:          s.c.ddl.Load(),
		Transactions: s.c.txns.Load(),
		Tolerated:    s.c.tolerated.Load(),
		Pipeline:     int(s.depth.Load()),
		SetAside:     s.c.setAside.Load(),
		UniqueWaits:  s.c.uniqueWaits.Load(),
		Entries:      s.c.entries.Load(),
		Bytes:        s.c.bytes.Load(),
		ApplyRate:    s.rates.rate(),
		Applied:      s.wm.Load().Floor(),
		Newest:       unpackTS(s.c.newest.Load()),
		LastWrite:    unpackTS(s.c.lastWrite.Load()),
		Committed:    unpackTS(s.c.committed.Load()),
		CommitWaits:  s.c.commitWaits.Load(),
	}
	b := s.budget.Load()
	p.QueuedBytes, p.PeakQueuedBytes = b.used(), b.peak.Load()
	for i := range p.Skipped {
		p.Skipped[i] = s.c.skipped[i].Load()
	}
	if p.Newest.T > p.Applied.T {
		p.Lag = time.Duration(p.Newest.T-p.Applied.T) * time.Second
	}
	s.mu.Lock()
	p.Retrying, p.Err = s.mu.retrying[retryWork], s.mu.err
	var waits []string
	if since := s.mu.commitWait; !since.IsZero() && time.Since(since) >= commitWaitShown {
		waits = append(waits, commitWaitText(p.Newest, p.Committed, s.mu.commitAwaited, s.mu.commitMembers))
	}
	var waiting *hold
	if len(s.mu.waiting) > 0 {
		waiting = s.mu.waiting[0]
	}
	aside := asideText(s.mu.aside)
	for _, kind := range []int{retryCheckpoint, retrySource, retryCommit} {
		if p.Retrying == "" {
			p.Retrying = s.mu.retrying[kind]
		}
	}
	s.mu.Unlock()
	if waiting != nil {
		if w := s.cfg.DDL.Waiting(s.cfg.Shard, waiting.ts, waiting.ddl); w != "" {
			waits = append(waits, w)
		}
	}
	if aside != "" {
		waits = append(waits, aside)
	}
	p.Waiting = strings.Join(waits, "; ")
	return p
}

// commitWaitText says why entries wait for the majority commit point and, when
// the members' positions are known, which members hold the entry waited for
// (awaited) and how far the others are behind it; else how far the shard's majority
// is behind its newest entry (as last read): the lag grows by that much while it
// lasts.
func commitWaitText(newest, committed, awaited primitive.Timestamp, members []topology.MemberOpTime) string {
	why := "; entries are applied once a majority holds them, so that a failover cannot take back a write applied here"
	if len(members) > 0 {
		return "waiting for a majority of the source shard's members to catch up: " + membersText(awaited, members) + why
	}
	behind := ""
	if newest.T > committed.T && !committed.IsZero() {
		behind = fmt.Sprintf(": its majority commit point is %s behind its newest entry", time.Duration(newest.T-committed.T)*time.Second)
	}
	return "waiting for a majority of the source shard's members to catch up" + behind + why
}

// membersText says how many members hold the entry awaited, of how many a
// majority needs, and where each other member is: "1 of 3 members holds the entry
// of 19:06:31 UTC (2 needed); rs0-1:27018 is 6s behind, rs0-2:27019 is unreachable".
func membersText(awaited primitive.Timestamp, members []topology.MemberOpTime) string {
	holding := 0
	var others []string
	for _, m := range members {
		switch {
		case !m.Reachable:
			others = append(others, m.Name+" is unreachable")
		case m.TS.IsZero():
			others = append(others, fmt.Sprintf("%s (%s) reports no position", m.Name, strings.ToLower(m.State)))
		case !m.TS.Before(awaited):
			holding++
		case m.Behind(awaited) == 0:
			others = append(others, m.Name+" is under 1s behind")
		default:
			others = append(others, fmt.Sprintf("%s is %s behind", m.Name, m.Behind(awaited)))
		}
	}
	verb := "hold"
	if holding == 1 {
		verb = "holds"
	}
	text := fmt.Sprintf("%d of %d members %s the entry of %s (%d needed)", holding, len(members), verb,
		time.Unix(int64(awaited.T), 0).UTC().Format("15:04:05 UTC"), len(members)/2+1)
	if len(others) > 0 {
		text += "; " + strings.Join(others, ", ")
	}
	return text
}

// membersEvery is how often, while entries wait for the majority, the members'
// positions are read again for the shard's progress.
const membersEvery = time.Second

// readMembers asks src where the members are; nil when it cannot say (the
// progress then says less, and the wait goes on).
func readMembers(ctx context.Context, src MemberReporter) []topology.MemberOpTime {
	ctx, cancel := context.WithTimeout(ctx, membersEvery)
	defer cancel()
	members, err := src.Members(ctx)
	if err != nil {
		return nil
	}
	return members
}

// commitWaitShown reports whether entries have waited for the majority long
// enough for the progress to say so.
func (s *Shard) commitWaitShown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.mu.commitWait.IsZero() && time.Since(s.mu.commitWait) >= commitWaitShown
}

// setCommitMembers records where the members were while the entry at awaited
// waits for the majority.
func (s *Shard) setCommitMembers(awaited primitive.Timestamp, members []topology.MemberOpTime) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.commitAwaited, s.mu.commitMembers = awaited, members
}

// setCommitWait records that the tailer's entries wait for the majority commit
// point (on) or no longer do.
func (s *Shard) setCommitWait(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !on:
		s.mu.commitWait = time.Time{}
		s.mu.commitMembers, s.mu.commitAwaited = nil, primitive.Timestamp{}
	case s.mu.commitWait.IsZero():
		s.mu.commitWait = time.Now()
	}
}

// unbounded is past every entry: the majority bound of a source without one.
var unbounded = primitive.Timestamp{T: math.MaxUint32, I: math.MaxUint32}

// justBefore is the position just before ts: the resume point of a replay that
// reads from ts on, ts included. An entry may sit there (ts minus one increment),
// so such a replay tails from ts itself (see run.tail) and never saves it.
func justBefore(ts primitive.Timestamp) primitive.Timestamp {
	if ts.I > 0 {
		return primitive.Timestamp{T: ts.T, I: ts.I - 1}
	}
	return primitive.Timestamp{T: ts.T - 1, I: math.MaxUint32}
}

func maxTS(a, b primitive.Timestamp) primitive.Timestamp {
	if a.Before(b) {
		return b
	}
	return a
}

// sawCommitPoint and commitWaited implement tailNotes (setCommitWait and
// setRetrying are above).
func (s *Shard) sawCommitPoint(ts primitive.Timestamp) { raiseTS(&s.c.committed, ts) }
func (s *Shard) commitWaited()                         { s.c.commitWaits.Add(1) }

// noteAside counts an item set aside for the namespaces scopes; nil clears the
// count when a run ends (the next one reads them again).
func (s *Shard) noteAside(scopes []oplog.Namespace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if scopes == nil {
		s.mu.aside = nil
		return
	}
	if s.mu.aside == nil {
		s.mu.aside = map[string]int64{}
	}
	for _, sc := range scopes {
		s.mu.aside[sc.String()]++
	}
}

// asideText says what the current run set aside, for the shard's row.
func asideText(aside map[string]int64) string {
	if len(aside) == 0 {
		return ""
	}
	var parts []string
	for _, ns := range slices.Sorted(maps.Keys(aside)) {
		parts = append(parts, fmt.Sprintf("%s (%d)", ns, aside[ns]))
	}
	return "writes set aside until the DDL on them is applied, then read again from the resume point: " + strings.Join(parts, ", ")
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
)

// shardState is one source shard: its durable checkpoint and what the snapshot
// shows of it.
type shardState struct {
	name string

	// saveMu serializes the writes of this shard's checkpoint (the pipeline's copy
	// and replay checkpoints and the lifecycle's phase changes).
	saveMu sync.Mutex
	cp     ShardCheckpoint // guarded by saveMu: as last saved

	// Guarded by Migration.mu.
	phase    Phase
	err      string
	t0       primitive.Timestamp
	copier   Copier
	replayer Replayer
	fetcher  *replay.Fetcher // the oplog buffer's, when the migration buffers it
	// copied are the copy's counters from the checkpoint, for a shard resumed past
	// its copy (no copier).
	copiedDocs, copiedBytes int64
	// estimate is the plan's expectation of the copy: the totals until a copier
	// counts them.
	estimate Estimate
	// expected are what a restarted shard copied before its restart: its totals
	// until its new copy counts them.
	expectedDocs, expectedBytes int64
	samples                     []sample
	// applied is the checkpoint's resume point.
	applied primitive.Timestamp
	// clearing is where a restarted shard's clear of the destination is (nil
	// when it does not clear).
	clearing *ClearProgress
	// watched is the newest entry of a failed shard's source, as watchFailed last
	// read it; unreachable, that its last look failed.
	watched     primitive.Timestamp
	unreachable bool
	// moved is the checkpoint's Moved.
	moved string
	// buffered is the checkpoint's Buffered: the row's buffer until a fetcher runs.
	buffered BufferedOplog
	// unexplained names the range of a fromMigrate insert the shard's replay read
	// that the shard did not own at its T0, until a look for moves acts on it;
	// unexplainedAt is when it was read (moves.go).
	unexplained   string
	unexplainedAt time.Time
}

// sample is one look at a shard's counters, for rates and estimates.
type sample struct {
	at          time.Time
	docs, bytes int64
	lag         time.Duration
}

// maxSamples keeps about five seconds of samples at the default poll period.
const maxSamples = 10

func newShardState(cp ShardCheckpoint) *shardState {
	if cp.Phase == "" {
		cp.Phase = Pending
	}
	sh := &shardState{name: cp.Shard, cp: cp, phase: cp.Phase, err: cp.Error, t0: cp.T0, applied: cp.Applied, moved: cp.Moved, buffered: cp.Buffered}
	for _, p := range cp.Copied {
		sh.copiedDocs += p.Docs
		sh.copiedBytes += p.Bytes
	}
	return sh
}

func (sh *shardState) checkpoint() ShardCheckpoint {
	sh.saveMu.Lock()
	defer sh.saveMu.Unlock()
	return sh.cp
}

// pipe is one running shard pipeline.
type pipe struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *Migration) shardList() []*shardState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.mu.shards)
}

func (m *Migration) shard(name string) *shardState {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sh := range m.mu.shards {
		if sh.name == name {
			return sh
		}
	}
	return nil
}

// launchAll starts the pipeline of every source shard, from its checkpoint: the
// inventory's shards, in listShards order. Called with life held.
func (m *Migration) launchAll(r *runState, inv Inventory) error {
	names := inv.Shards
	if len(names) == 0 {
		return errors.New("the source lists no shards")
	}
	known := map[string]*shardState{}
	for _, sh := range m.shardList() {
		known[sh.name] = sh
	}
	var shards []*shardState
	for _, name := range names {
		sh, ok := known[name]
		if !ok {
			sh = newShardState(ShardCheckpoint{Shard: name})
		}
		delete(known, name)
		shards = append(shards, sh)
	}
	if len(known) > 0 {
		gone := slices.Sorted(maps.Keys(known))
		return fmt.Errorf("source shards %s have checkpoints but the source no longer lists them: the migration cannot continue; cancel it and start a new one",
			strings.Join(gone, ", "))
	}
	m.mu.Lock()
	m.mu.shards = shards
	for _, sh := range shards {
		sh.estimate = inv.Estimates[sh.name]
	}
	m.mu.Unlock()
	for _, sh := range shards {
		// A shard that never started copying in an earlier run may have left part
		// of a copy behind before its first checkpoint: it is cleared first.
		m.launch(r, sh, !r.fresh && sh.checkpoint().Phase == Pending)
	}
	return nil
}

// launch starts one shard's pipeline. Called with life held.
func (m *Migration) launch(r *runState, sh *shardState, clear bool) {
	if r.stopped {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	p := &pipe{cancel: cancel, done: make(chan struct{})}
	r.pipes[sh.name] = p
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(p.done)
		defer cancel()
		err := m.pipeline(ctx, r, sh, clear)
		if err == nil || ctx.Err() != nil {
			return
		}
		var resharded *ReshardedError
		if errors.As(err, &resharded) {
			r.wg.Go(func() { m.stopOnResharding(r, resharded.What) })
			return
		}
		m.failShard(sh, err)
		r.clusters.ReleaseDDL(sh.name)
	}()
}

// setClearing records where the shard's clear of the destination is, for its
// row (nil once it ended).
func (m *Migration) setClearing(sh *shardState, at *ClearProgress) {
	m.mu.Lock()
	sh.clearing = at
	m.mu.Unlock()
}

// retryRediscovery runs op (which discovers the source again) until it succeeds,
// fails otherwise than on that discovery, or stepPatience has passed: a source
// shard away or failing over fails the discovery for a while, and the shard that
// asked must wait for it, not fail (fault scenarios 2 and 9).
func (m *Migration) retryRediscovery(ctx context.Context, shard string, op func() error) error {
	deadline := m.clock.Now().Add(stepPatience)
	for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
		err := op()
		if err == nil || !errors.Is(err, errRediscover) || ctx.Err() != nil || m.clock.Now().After(deadline) {
			return err
		}
		m.log.Warn("retrying", "shard", shard, "err", err)
		t := m.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

// stepPatience is how long reading T0 or the consistency point retries a transient
// failure (a failover of the source shard takes 10 to 30 seconds) before the shard
// fails.
const stepPatience = 2 * time.Minute

// pipeline runs one shard from its checkpoint's phase: T0, copy, consistency point,
// index builds, replay. Each step is saved before the next begins, so a restart
// resumes at the step it stopped in. It returns nil when the replay is stopped.
func (m *Migration) pipeline(ctx context.Context, r *runState, sh *shardState, clear bool) (err error) {
	c := r.clusters
	cp := sh.checkpoint()
	sink := shardSink{m: m, sh: sh}
	if cp.Phase == ShardFailed {
		c.ReleaseDDL(sh.name) // it stays failed until restarted
		return nil
	}
	if cp.Phase == Pending {
		if clear {
			m.setClearing(sh, &ClearProgress{})
			err := m.retryRediscovery(ctx, sh.name, func() error {
				return c.ClearShard(ctx, sh.name, func(at ClearProgress) { m.setClearing(sh, &at) })
			})
			m.setClearing(sh, nil)
			if err != nil {
				return fmt.Errorf("clear what shard %s owns on the destination: %w", sh.name, err)
			}
		}
		start, own, err := startWithOwnership(ctx, c, sh.name)
		if err != nil {
			return err
		}
		t0 := start.T0
		if t0.IsZero() {
			return fmt.Errorf("record T0 of shard %s: its oplog is empty (is it a replica set member?)", sh.name)
		}
		err = m.shardPhase(sh, nil, Copying, "copy started; the oplog replay will start after T0 "+tsText(t0), func(cp *ShardCheckpoint) {
			cp.T0, cp.T0Term, cp.TxnStart, cp.ConsistencyPoint, cp.Copied, cp.DDLApplied = t0, start.T0Term, start.TxnStart, primitive.Timestamp{}, nil, nil
			cp.Owned = &own
			cp.Applied, cp.AppliedTerm = primitive.Timestamp{}, 0
		})
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.mu.lastT0 = m.clock.Now()
		m.mu.Unlock()
		cp = sh.checkpoint()
	}
	parent := ctx
	ctx, buffered, stopFetch, err := m.bufferOplog(ctx, c, sh, replayStartOf(cp))
	if err != nil {
		return err
	}
	defer func() {
		if ctx.Err() != nil && parent.Err() == nil {
			err = context.Cause(ctx) // the fetcher failed: a gap behind its buffer
		}
		stopFetch()
	}()
	var copier Copier
	if cp.Phase == Copying || cp.Phase == BuildingIndexes {
		if cp.Owned == nil {
			// A state file older than the saved ownership: the chunk map of now,
			// saved so that the move watcher compares with it from now on.
			own, err := c.Ownership(ctx, sh.name)
			if err != nil {
				return err
			}
			if err := m.saveShard(sh, func(cp *ShardCheckpoint) { cp.Owned = &own }); err != nil {
				return fmt.Errorf("save the checkpoint of shard %s: %w", sh.name, err)
			}
			cp = sh.checkpoint()
		}
		err := m.retryRediscovery(ctx, sh.name, func() (err error) {
			copier, err = c.NewCopier(ctx, sh.name, cp.T0, *cp.Owned, cp.Copied, sink)
			return err
		})
		if err != nil {
			return err
		}
		m.mu.Lock()
		sh.copier = copier
		m.mu.Unlock()
	}
	if cp.Phase == Copying {
		if err := copier.Copy(ctx); err != nil {
			return err
		}
		var point primitive.Timestamp
		err := replay.RetryTransient(ctx, stepPatience, func(ctx context.Context) (err error) {
			point, err = c.Newest(ctx, sh.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("record the consistency point of shard %s: %w", sh.name, err)
		}
		p := copier.Snapshot()
		reason := fmt.Sprintf("copied %d documents (%d orphans skipped); building indexes", p.Docs, p.Orphans)
		if err := m.shardPhase(sh, nil, BuildingIndexes, reason, func(cp *ShardCheckpoint) { cp.ConsistencyPoint = point }); err != nil {
			return err
		}
		cp = sh.checkpoint()
	}
	if cp.Phase == BuildingIndexes {
		if err := copier.BuildIndexes(ctx); err != nil {
			return err
		}
		if err := m.shardPhase(sh, nil, CatchingUp, "indexes built; replaying the oplog from T0", nil); err != nil {
			return err
		}
		cp = sh.checkpoint()
	}
	if cp.Phase == Synced {
		// A synced shard stays synced across a restart unless its lag reaches
		// FellBehindLag, as it would have without the restart: a ready migration
		// stays ready through a restart of Shardlift unless a shard really fell behind.
		reason := fmt.Sprintf("resumed from the checkpoint: in sync unless its lag reaches %v", m.cfg.FellBehindLag)
		if err := m.shardPhase(sh, nil, Synced, reason, nil); err != nil {
			return err
		}
	}
	if cp.Phase != CatchingUp && cp.Phase != Synced {
		return fmt.Errorf("shard %s: unexpected phase %q in its checkpoint", sh.name, cp.Phase)
	}
	from := replayStartOf(cp)
	from.Buffered = buffered
	from.Ordered = m.ordered
	if cp.Owned != nil {
		from.FromMigrate = m.fromMigrateCheck(sh, *cp.Owned)
	}
	rp, err := c.NewReplayer(sh.name, from, cp.DDLApplied, sink)
	if err != nil {
		return err
	}
	m.mu.Lock()
	sh.replayer = rp
	m.mu.Unlock()
	return rp.Run(ctx)
}

// replayStartOf is where a shard's replay starts, from its checkpoint.
func replayStartOf(cp ShardCheckpoint) ReplayStart {
	from := ReplayStart{Resume: replay.OpTime{TS: cp.Applied, Term: cp.AppliedTerm}, T0: cp.T0, T0Term: cp.T0Term, TxnStart: cp.TxnStart, ConsistencyPoint: cp.ConsistencyPoint}
	if cp.Applied.IsZero() {
		from.Resume = replay.OpTime{TS: cp.T0, Term: cp.T0Term}
	}
	return from
}

// ownershipAttempts bounds how often a shard's start reads the chunk map again
// because a chunk moved while it recorded its T0.
const ownershipAttempts = 5

// startWithOwnership records a shard's start point (T0) with what it owns then:
// the chunk map read before and after T0, again until both reads agree, so that
// no move falls between the ownership the copy takes and its T0.
func startWithOwnership(ctx context.Context, c Clusters, shard string) (StartPoint, prepare.Ownership, error) {
	for attempt := 1; ; attempt++ {
		before, err := ownershipNow(ctx, c, shard)
		if err != nil {
			return StartPoint{}, prepare.Ownership{}, err
		}
		var start StartPoint
		err = replay.RetryTransient(ctx, stepPatience, func(ctx context.Context) (err error) {
			start, err = c.StartPoint(ctx, shard)
			return err
		})
		if err != nil {
			return StartPoint{}, prepare.Ownership{}, fmt.Errorf("record T0 of shard %s: %w", shard, err)
		}
		after, err := ownershipNow(ctx, c, shard)
		if err != nil {
			return StartPoint{}, prepare.Ownership{}, err
		}
		moved := prepare.Changes(shard, before, after, nil)
		if len(moved) == 0 {
			return start, after, nil
		}
		if attempt == ownershipAttempts {
			return StartPoint{}, prepare.Ownership{}, fmt.Errorf("record T0 of shard %s: the source's chunks kept moving (%s): stop moving chunks, then restart this shard", shard, moved[0].What)
		}
	}
}

// ownershipNow reads what a shard owns now, riding out a failover of the config
// servers or a restarted mongos as reading T0 does.
func ownershipNow(ctx context.Context, c Clusters, shard string) (own prepare.Ownership, err error) {
	err = replay.RetryTransient(ctx, stepPatience, func(ctx context.Context) (err error) {
		own, err = c.Ownership(ctx, shard)
		return err
	})
	return own, err
}

// stopOnResharding stops the migration because a shard found a collection
// resharded when it started.
func (m *Migration) stopOnResharding(r *runState, what string) {
	m.life.Lock()
	defer m.life.Unlock()
	if m.run == r && !r.stopped {
		m.stopForResharding(r.ctx, r, []string{what})
	}
}

// failShard records why a shard's sync stopped; the others keep syncing.
func (m *Migration) failShard(sh *shardState, err error) {
	msg := err.Error()
	if !strings.Contains(msg, "restart this shard") {
		msg += ": restart this shard once the cause is fixed"
	}
	m.log.Error("shard failed", "shard", sh.name, "err", err)
	if serr := m.shardPhase(sh, nil, ShardFailed, msg, func(cp *ShardCheckpoint) { cp.Error = msg }); serr != nil {
		m.log.Error("record the failure of a shard", "shard", sh.name, "err", serr)
		m.mu.Lock()
		sh.phase, sh.err = ShardFailed, msg
		m.mu.Unlock()
	}
}

// shardPhase moves a shard to a new phase, saved with its event; from, when not
// nil, lists the phases the move is made from (another is left as it is: the
// pipeline and the lifecycle both move shards).
func (m *Migration) shardPhase(sh *shardState, from []Phase, to Phase, reason string, change func(*ShardCheckpoint)) error {
	sh.saveMu.Lock()
	if from != nil && !slices.Contains(from, sh.cp.Phase) {
		sh.saveMu.Unlock()
		return nil
	}
	next := sh.cp
	next.Shard = sh.name
	prev := next.Phase
	if change != nil {
		change(&next)
	}
	if to != ShardFailed {
		next.Error = ""
	}
	if to == Synced {
		next.Moved = ""
	}
	next.Phase = to
	ev := Event{At: m.clock.Now(), Shard: sh.name, From: string(prev), To: string(to), Reason: reason}
	next.History = append(slices.Clip(next.History), ev)
	m.stampBuffer(sh, &next)
	err := m.cp.SaveShard(next)
	if err == nil {
		sh.cp = next
	}
	sh.saveMu.Unlock()
	if err != nil {
		return fmt.Errorf("save the checkpoint of shard %s: %w", sh.name, err)
	}
	m.mu.Lock()
	sh.phase, sh.err, sh.t0, sh.applied = to, next.Error, next.T0, next.Applied
	if to != ShardFailed {
		sh.watched, sh.unreachable = primitive.Timestamp{}, false
	}
	sh.moved, sh.buffered = next.Moved, next.Buffered
	m.mu.history = append(m.mu.history, ev)
	m.mu.Unlock()
	m.log.Info("shard phase", "shard", sh.name, "from", prev, "to", to, "reason", reason)
	m.poke()
	return nil
}

// saveShard changes a shard's checkpoint without changing its phase.
func (m *Migration) saveShard(sh *shardState, change func(*ShardCheckpoint)) error {
	sh.saveMu.Lock()
	defer sh.saveMu.Unlock()
	next := sh.cp
	next.Shard = sh.name
	change(&next)
	m.stampBuffer(sh, &next)
	if err := m.cp.SaveShard(next); err != nil {
		return err
	}
	sh.cp = next
	m.mu.Lock()
	sh.buffered = next.Buffered
	m.mu.Unlock()
	return nil
}

// shardSink takes a shard's copy and replay checkpoints.
type shardSink struct {
	m  *Migration
	sh *shardState
}

// SaveCopyProgress implements initialsync.CheckpointSink.
func (s shardSink) SaveCopyProgress(_ string, progress map[string]initialsync.PartitionProgress) error {
	return s.m.saveShard(s.sh, func(cp *ShardCheckpoint) { cp.Copied = progress })
}

// SaveApplied implements replay.Checkpointer. The DDL entries the resume point
// passed are never read again: their records go.
func (s shardSink) SaveApplied(_ string, at replay.OpTime) error {
	ts := at.TS
	err := s.m.saveShard(s.sh, func(cp *ShardCheckpoint) {
		cp.Applied, cp.AppliedTerm = ts, at.Term
		if slices.ContainsFunc(cp.DDLApplied, func(c replay.DDLCopy) bool { return !ts.Before(c.TS) }) {
			cp.DDLApplied = slices.DeleteFunc(slices.Clone(cp.DDLApplied), func(c replay.DDLCopy) bool { return !ts.Before(c.TS) })
		}
	})
	if err == nil {
		s.m.mu.Lock()
		s.sh.applied = ts
		f := s.sh.fetcher
		s.m.mu.Unlock()
		if f != nil {
			// The buffer's segments before the checkpoint are applied: they go.
			if rerr := f.Release(ts); rerr != nil {
				s.m.log.Warn("oplog buffer: remove applied segments", "shard", s.sh.name, "err", rerr)
			}
		}
	}
	return err
}

// DDLApplied implements replay.DDLLog.
func (s shardSink) DDLApplied(_ string, c replay.DDLCopy) error {
	return s.m.saveShard(s.sh, func(cp *ShardCheckpoint) {
		if !slices.Contains(cp.DDLApplied, c) && cp.Applied.Before(c.TS) {
			cp.DDLApplied = append(slices.Clip(cp.DDLApplied), c)
		}
	})
}

// judgeLag moves a replaying shard between catching up and synced by its lag.
// Called with life held.
func (m *Migration) judgeLag(sh *shardState) {
	m.mu.Lock()
	phase, rp := sh.phase, sh.replayer
	m.mu.Unlock()
	if rp == nil || (phase != CatchingUp && phase != Synced) {
		return
	}
	p := rp.Snapshot()
	if p.Err != nil || p.Newest.IsZero() {
		return
	}
	var err error
	switch {
	case phase == CatchingUp && p.Lag < m.cfg.SyncedLag:
		err = m.shardPhase(sh, []Phase{CatchingUp}, Synced, "in sync: lag "+GapText(p.Lag), nil)
	case phase == Synced && p.Lag >= m.cfg.FellBehindLag:
		err = m.shardPhase(sh, []Phase{Synced}, CatchingUp, "fell behind: lag "+GapText(p.Lag), nil)
	}
	if err != nil {
		m.log.Warn("record a shard's phase", "shard", sh.name, "err", err)
	}
}

// stopSync stops every shard for good: the replays stop gracefully (what they read
// is applied and checkpointed), the rest is cancelled. Called with life held.
func (m *Migration) stopSync(ctx context.Context, r *runState) {
	if r == nil || r.stopped {
		return
	}
	m.stopUniqueRestore(r)
	r.stopped = true
	var wg sync.WaitGroup
	for name, p := range r.pipes {
		sh := m.shard(name)
		if sh == nil {
			continue
		}
		m.mu.Lock()
		rp := sh.replayer
		m.mu.Unlock()
		if rp == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, m.cfg.DrainTimeout)
			defer cancel()
			if err := rp.Stop(sctx); err != nil {
				m.log.Warn("the replay did not stop in time; cancelling it", "shard", name, "err", err)
			}
			p.cancel()
		}()
	}
	wg.Wait()
	m.haltPipes(r)
}

// haltPipes cancels every pipeline and waits for them. Called with life held.
func (m *Migration) haltPipes(r *runState) {
	for name, p := range r.pipes {
		p.cancel()
		<-p.done
		delete(r.pipes, name)
	}
}

// sample records every shard's counters for rates and estimates.
func (m *Migration) sample(now time.Time) {
	for _, sh := range m.shardList() {
		m.mu.Lock()
		copier, rp := sh.copier, sh.replayer
		m.mu.Unlock()
		s := sample{at: now}
		if copier != nil {
			p := copier.Snapshot()
			s.docs, s.bytes = p.Docs, p.Bytes
		}
		if rp != nil {
			s.lag = rp.Snapshot().Lag
		}
		m.mu.Lock()
		sh.samples = append(sh.samples, s)
		if len(sh.samples) > maxSamples {
			sh.samples = slices.Delete(sh.samples, 0, len(sh.samples)-maxSamples)
		}
		m.mu.Unlock()
	}
}

func tsText(ts primitive.Timestamp) string {
	return fmt.Sprintf("%s (Timestamp(%d, %d))", time.Unix(int64(ts.T), 0).UTC().Format(time.RFC3339), ts.T, ts.I)
}

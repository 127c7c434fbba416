package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/cutover"
)

// StartCutover moves a ready migration to the cutover: the applications must now
// stop writing to the source, and the optime gap shows when the destination has
// caught up.
func (m *Migration) StartCutover(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	if err := m.refuseWhileCancelling("start the cutover"); err != nil {
		return err
	}
	st := m.State()
	if st == Ready || st == Syncing {
		// Name the shard that is not in sync. (The monitor makes a ready migration
		// syncing again, but may not have looked since that shard failed.)
		if err := m.Snapshot().notSyncedError("start the cutover", false); err != nil {
			return err
		}
	}
	if st != Ready {
		return &RefusedError{Action: "start the cutover", State: st, Why: whyNotReady(st)}
	}
	m.mu.Lock()
	unseen := m.movesUnseenLocked()
	m.mu.Unlock()
	if unseen {
		return &RefusedError{Action: "start the cutover", State: st,
			Why: "Shardlift is looking for chunk moves on the source since the migration resumed or a shard started; try again in a few seconds"}
	}
	if m.expiredNow() {
		return m.refuseExpired(ctx, "start the cutover")
	}
	return m.transition(CuttingOver, "cutover started: stop every write to the source; the optime gap reaches 0:00 once the destination has applied everything")
}

func whyNotReady(st State) string {
	switch st {
	case Starting, Syncing:
		return "the cutover starts once every shard is in sync (the migration is then ready)"
	case CuttingOver, Finalizing:
		return "the cutover has already started"
	case Done, Cancelled, Expired:
		return "the migration has ended"
	case Failed:
		return "the migration failed: resume it or cancel it"
	}
	return "start the migration first"
}

// refuseExpired expires a migration whose deadline passed (when Run is active) and
// refuses the action. Called with life held.
func (m *Migration) refuseExpired(ctx context.Context, action string) error {
	if r := m.run; r != nil {
		m.expire(ctx, r)
	}
	return &RefusedError{Action: action, State: m.State(), Why: "the cutover window has closed and syncing stopped", Err: ErrExpired}
}

// ExtendTimer adds Config.Extension (24 hours) to the cutover window, any number of
// times while it runs; after the deadline it is refused (ErrExpired).
func (m *Migration) ExtendTimer(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	if err := m.refuseWhileCancelling("extend the cutover window"); err != nil {
		return err
	}
	st := m.State()
	m.mu.Lock()
	running := !m.mu.deadline.IsZero()
	m.mu.Unlock()
	switch {
	case st == Ready || st == CuttingOver:
	case st == Syncing && running:
		// Ready before, until a shard fell out of sync: the window kept running.
	case st == Expired:
		return &RefusedError{Action: "extend the cutover window", State: st, Why: "the window has closed and syncing stopped; start a new migration", Err: ErrExpired}
	default:
		return &RefusedError{Action: "extend the cutover window", State: st, Why: "the window runs once the migration has been ready"}
	}
	if m.expiredNow() {
		return m.refuseExpired(ctx, "extend the cutover window")
	}
	m.mu.Lock()
	deadline := m.mu.deadline.Add(m.cfg.Extension)
	m.mu.Unlock()
	if err := m.saveRecord(func(rec *Record) { rec.TimerDeadline = deadline }); err != nil {
		return err
	}
	m.mu.Lock()
	m.mu.deadline = deadline
	m.mu.Unlock()
	m.note(fmt.Sprintf("cutover window extended by %v: it closes at %s", m.cfg.Extension, deadline.UTC().Format(time.RFC3339)))
	return nil
}

// Done is I'm done: refused unless the migration is cutting over with an optime
// gap of 0, or of settlingGap or less (a *GapError carries the gap). It then waits
// for every shard to apply the source's newest entry, stops tailing and finalizes
// the destination: the relaxed index and collection options are restored, the
// source balancer is put back as it was, the destination balancer started, and the
// destination verified.
// Mismatches keep the migration finalizing (a *MismatchError) unless override is
// set, which is recorded in the history. Calling Done again resumes a finalize that
// did not complete; a restart of the process does too.
func (m *Migration) Done(ctx context.Context, override bool) error {
	m.life.Lock()
	defer m.life.Unlock()
	if err := m.refuseWhileCancelling("finish the cutover"); err != nil {
		return err
	}
	st := m.State()
	r := m.run
	switch st {
	case CuttingOver:
		if err := m.Snapshot().finishRefusal(); err != nil && !settling(err) {
			return err
		}
		if r == nil {
			return ErrNotRunning
		}
		if err := m.drain(ctx, r); err != nil {
			return err
		}
		if err := m.checkpointDrained(); err != nil {
			return err
		}
		// A verification made earlier (on demand, with writes going on) is not the
		// final one: only a verification made while finalizing can be overridden.
		if err := m.saveVerification(nil); err != nil {
			return err
		}
		if err := m.transition(Finalizing, "I'm done: every shard applied the source's newest entry (optime gap 0:00)"); err != nil {
			return err
		}
	case Finalizing:
		if r == nil {
			return ErrNotRunning
		}
	case Ready:
		return &RefusedError{Action: "finish the cutover", State: st, Why: "start the cutover first, stop the writes to the source and wait for the optime gap to reach 0:00"}
	default:
		return &RefusedError{Action: "finish the cutover", State: st, Why: whyNotReady(st)}
	}
	return m.finalize(ctx, r, override)
}

// settlingGap is the largest optime gap I'm done waits out (see drain) rather
// than refuses: the last entries written before the writes stopped, or the
// no-op a primary writes every 10 s with no write to replicate (a gap of 0:01 for
// the moment its shard's replay takes to apply it), arriving while the DBA reads
// 0:00 and presses I'm done.
const settlingGap = 2 * time.Second

// settling reports whether err refuses I'm done only for a gap of settlingGap or
// less.
func settling(err error) bool {
	var ge *GapError
	return errors.As(err, &ge) && ge.Gap <= settlingGap
}

// drain waits until every shard has applied the newest entry its source oplog had
// when I'm done was pressed: the gap read from the replays' last look at the source
// may be a moment old. Called with life held.
func (m *Migration) drain(ctx context.Context, r *runState) error {
	deadline := m.clock.Now().Add(m.cfg.DrainTimeout)
	for _, sh := range m.shardList() {
		newest, err := r.clusters.Newest(ctx, sh.name)
		if err != nil {
			return fmt.Errorf("read the newest oplog entry of shard %s: %w", sh.name, err)
		}
		for {
			m.mu.Lock()
			rp := sh.replayer
			m.mu.Unlock()
			var applied primitive.Timestamp
			if rp != nil {
				applied = rp.Snapshot().Applied
			}
			if !applied.Before(newest) {
				break
			}
			if !m.clock.Now().Before(deadline) {
				return &GapError{Gap: gapBetween(applied, newest), Shard: sh.name}
			}
			t := m.clock.NewTimer(50 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C():
			}
		}
	}
	return nil
}

// checkpointDrained saves every shard's resume point once drain saw it reach the
// source's newest entry, before the migration is recorded finalizing: the finalize
// reads the source's writes after each shard's saved resume point, and a crash
// between I'm done and the sync's final checkpoint left it the periodic one, up to
// a second older; the writes applied in between then read as writes the source
// took after the sync stopped, and the finalize refused to pass (fault scenario 6:
// "took 63 writes after the sync stopped"). Called with life held.
func (m *Migration) checkpointDrained() error {
	for _, sh := range m.shardList() {
		m.mu.Lock()
		rp := sh.replayer
		m.mu.Unlock()
		if rp == nil {
			continue
		}
		if err := rp.Checkpoint(); err != nil {
			return err
		}
	}
	return nil
}

// gapBetween is how far applied is behind newest: at least a second when it is
// behind at all, so that a gap of 0 means every entry is applied.
func gapBetween(applied, newest primitive.Timestamp) time.Duration {
	if !applied.Before(newest) {
		return 0
	}
	return max(time.Second, time.Duration(int64(newest.T)-int64(applied.T))*time.Second)
}

// finalize runs the steps after I'm done, each idempotent, each shown in the
// reason while it runs and recorded in the history once done. Called with life held
// and the migration finalizing.
func (m *Migration) finalize(ctx context.Context, r *runState, override bool) error {
	step := func(doing string) { m.setReason(doing) }
	fail := func(err error) error {
		m.setReason(err.Error())
		return err
	}
	if !r.stopped {
		step("stopping the sync")
		tailing := len(r.pipes) > 0
		m.stopSync(ctx, r)
		if tailing {
			m.note("sync stopped: tailing ended on every shard")
		}
	}
	step("restoring the index and collection options relaxed for the sync")
	if err := m.restoreRelaxed(ctx, r.clusters); err != nil {
		return fail(err)
	}
	indexDiffs, err := m.restoreFromSource(ctx, r.clusters)
	if err != nil {
		return fail(err)
	}
	step("restoring the source balancer")
	if err := m.restoreSourceBalancer(ctx, r.clusters); err != nil {
		return fail(err)
	}
	step("starting the destination balancer")
	if err := r.clusters.SetDestinationBalancer(ctx, true); err != nil {
		return fail(fmt.Errorf("start the destination balancer: %w", err))
	}
	m.note("destination balancer started")

	v := m.finalVerification()
	if v == nil || !override {
		step("verifying the destination against the source")
		var err error
		if v, err = m.finalVerify(ctx, r); err != nil {
			return fail(err)
		}
		step("looking for writes the source took after the sync stopped")
		if v.Late, err = m.lateWrites(ctx, r.clusters); err != nil {
			return fail(err)
		}
		// The collections and indexes as restoreFromSource left them: the
		// verification reads documents only, and the source's writes have stopped.
		v.Indexes = indexDiffs
		m.setReason("")
		if err := m.saveVerification(v); err != nil {
			return fail(err)
		}
	}
	if !v.OK() {
		if !override {
			return fail(&MismatchError{Verification: v})
		}
		v.Overridden = true
		if err := m.saveVerification(v); err != nil {
			return fail(err)
		}
		m.note("finished with an override: " + v.Differences())
	}
	step("removing Shardlift's marker from the destination")
	if err := m.releaseDestination(ctx, r.clusters); err != nil {
		return fail(err)
	}
	m.writeSummary(0, v, nil)
	if err := m.transition(Done, "the destination is finalized: "+verificationText(v)); err != nil {
		return err
	}
	m.removeBuffers()
	return nil
}

// finalVerification is the verification made since the migration started
// finalizing (Done clears any earlier one), nil when none was.
func (m *Migration) finalVerification() *Verification {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	if m.rec.Verification == nil {
		return nil
	}
	v := *m.rec.Verification
	return &v
}

func verificationText(v *Verification) string {
	switch {
	case v == nil:
		return "not verified"
	case v.OK():
		return fmt.Sprintf("verified: %d namespaces, %d ranges, %d documents, every range matches", v.Namespaces, v.Ranges, v.Documents)
	case v.Overridden:
		return "finished with an override: " + v.Differences()
	}
	return v.Differences()
}

// Verify compares source and destination now, on demand while the migration is
// ready or cutting over: while writes continue, ranges being written can differ.
// The result is in the snapshot.
func (m *Migration) Verify(ctx context.Context) (*Verification, error) {
	m.life.Lock()
	st, r := m.State(), m.run
	cancelling := m.refuseWhileCancelling("verify")
	m.life.Unlock()
	if cancelling != nil {
		return nil, cancelling
	}
	if st != Ready && st != CuttingOver {
		return nil, &RefusedError{Action: "verify", State: st, Why: "verification on demand runs while the migration is ready or cutting over; I'm done verifies too"}
	}
	if r == nil {
		return nil, ErrNotRunning
	}
	m.mu.Lock()
	busy := m.mu.verifying
	m.mu.verifying = true
	m.mu.Unlock()
	if busy {
		return nil, &RefusedError{Action: "verify", State: st, Why: "a verification is already running"}
	}
	defer func() {
		m.mu.Lock()
		m.mu.verifying = false
		m.mu.Unlock()
	}()
	v, err := m.verify(ctx, r.clusters)
	if err != nil {
		return nil, err
	}
	m.life.Lock()
	defer m.life.Unlock()
	if st := m.State(); st == Ready || st == CuttingOver {
		// Saved only while it is still the latest word: once I'm done was pressed,
		// only the finalize's own verification counts.
		if err := m.saveVerification(v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// verify compares the clusters; the caller saves the result.
func (m *Migration) verify(ctx context.Context, c Clusters) (*Verification, error) {
	v, err := c.Verify(ctx, func(done, total int) {
		m.setReason(fmt.Sprintf("verifying: %d of %d namespaces compared", done, total))
	})
	if err != nil {
		return nil, fmt.Errorf("verify the destination: %w", err)
	}
	v.At = m.clock.Now()
	m.setReason("")
	return v, nil
}

func (m *Migration) saveVerification(v *Verification) error {
	if err := m.saveRecord(func(rec *Record) { rec.Verification = v }); err != nil {
		return err
	}
	m.mu.Lock()
	m.mu.verification = v
	m.mu.Unlock()
	return nil
}

// Cancel stops syncing at any time until the migration is done (finalizing
// included), keeps the migrated data, restores what the sync relaxed and both
// balancers, and makes the migration cancelled. Cancelling during the cutover is
// how a staging copy is made: the summary keeps the optime gap at that moment. A
// restore that fails is reported (the migration is cancelled all the same) with
// what to do by hand. Without an active Run, Cancel connects to the clusters
// itself.
//
// The cancel is durable: it is recorded before anything stops, so a crash during
// its clean-up, or before the cancelled state is recorded, never resumes the
// sync: the next Run (or Cancel) finishes the cancel.
func (m *Migration) Cancel(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	st := m.State()
	if !st.CanMoveTo(Cancelled) {
		return &RefusedError{Action: "cancel", State: st, Why: whyNotCancel(st)}
	}
	r := m.run
	var (
		c       Clusters // connected here when no Run is active
		connErr error
	)
	if r == nil {
		if c, connErr = m.connect(ctx, m.cfg, m.relaxed); connErr == nil {
			defer c.Close(context.WithoutCancel(ctx))
			// Refused before anything is recorded: these are not its clusters.
			recorded, err := m.checkIdentities(ctx, c)
			if err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
			m.noteIf(recorded)
		}
	}
	req := m.cancelRequest()
	if req == nil {
		gap := m.frozenGap()
		if r != nil && !r.stopped {
			gap, _ = m.liveGap()
		}
		req = &CancelRequest{At: m.clock.Now(), From: st, OptimeGap: gap}
		if err := m.saveRecord(func(rec *Record) { rec.Cancelling = req }); err != nil {
			return fmt.Errorf("cancel: record the cancel before stopping anything: %w", err)
		}
		m.setReason(cancellingReason(*req))
	}
	if st == Starting && r != nil && r.cancelStart != nil {
		// Interrupt the start steps and wait for them (they need life to finish).
		r.cancelStart()
		done := r.startDone
		m.life.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		m.life.Lock()
		if err := ctx.Err(); err != nil {
			return err // the monitor, or the next Run, finishes the recorded cancel
		}
		if st = m.State(); st == Cancelled {
			return nil // the monitor finished it meanwhile
		}
		if !st.CanMoveTo(Cancelled) {
			return &RefusedError{Action: "cancel", State: st, Why: whyNotCancel(st)}
		}
	}
	if r != nil {
		return m.finishCancel(ctx, r, r.clusters, *req)
	}
	if connErr != nil {
		return fmt.Errorf("cancel: connect to the clusters to restore them: %w", connErr)
	}
	return m.finishCancel(ctx, nil, c, *req)
}

// cancelRequest is the recorded cancel not yet finished, or nil.
func (m *Migration) cancelRequest() *CancelRequest {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	if m.rec.Cancelling == nil || m.rec.State == Cancelled {
		return nil
	}
	req := *m.rec.Cancelling
	return &req
}

// refuseWhileCancelling refuses an action once a cancel is recorded.
func (m *Migration) refuseWhileCancelling(action string) error {
	if req := m.cancelRequest(); req != nil {
		return &RefusedError{Action: action, State: m.State(), Why: "the migration is being cancelled (since " + req.At.UTC().Format(time.RFC3339) + ")"}
	}
	return nil
}

func cancellingReason(req CancelRequest) string {
	return "cancelling (asked at " + req.At.UTC().Format(time.RFC3339) + "): stopping the sync and restoring the balancers and the relaxed index options"
}

// finishCancel does the clean-up of a recorded cancel and records the migration
// cancelled; every step may run again after an interruption. r is the active Run
// (nil when Cancel connected by itself). Called with life held.
func (m *Migration) finishCancel(ctx context.Context, r *runState, c Clusters, req CancelRequest) error {
	m.setReason(cancellingReason(req))
	m.stopSync(ctx, r)
	m.freezeGap(req.OptimeGap)
	positions := m.positions()
	reason := "cancelled: syncing stopped; the migrated data stays on the destination"
	switch req.From {
	case CuttingOver:
		if bad := inconsistent(positions); bad != "" {
			reason = "cancelled during the cutover: the destination is not a consistent staging copy: " + bad
		} else {
			reason = fmt.Sprintf("cancelled during the cutover: a staging copy %s behind the source", GapText(req.OptimeGap))
		}
	case Finalizing:
		reason = "cancelled while finalizing: syncing had stopped with every entry applied (optime gap 0:00); the migrated data stays on the destination"
	}
	restoreErr := m.restoreAll(ctx, c)
	if err := ctx.Err(); err != nil {
		return err // interrupted, not failed: the next Run finishes the cancel
	}
	if restoreErr != nil {
		reason += "; but " + restoreErr.Error()
	}
	m.writeSummary(req.OptimeGap, nil, positions)
	if err := m.transition(Cancelled, reason); err != nil {
		return errors.Join(err, restoreErr)
	}
	m.removeBuffers()
	if restoreErr != nil {
		return fmt.Errorf("the migration is cancelled, but %w", restoreErr)
	}
	return nil
}

func whyNotCancel(st State) string {
	switch st {
	case Done, Cancelled:
		return "the migration has ended"
	}
	return "the migration has not started"
}

// restoreAll puts the destination and the source back into use after the sync
// stopped early (cancel, expiry): relaxed options, source balancer, destination
// balancer, Shardlift's marker. Every step is tried; the error lists those that
// failed, with the fix.
func (m *Migration) restoreAll(ctx context.Context, c Clusters) error {
	var errs []string
	if err := m.restoreRelaxed(ctx, c); err != nil {
		errs = append(errs, err.Error())
	}
	if err := m.restoreSourceBalancer(ctx, c); err != nil {
		errs = append(errs, err.Error()+" (start it by hand with sh.startBalancer() on a source mongos)")
	}
	if err := c.SetDestinationBalancer(ctx, true); err != nil {
		errs = append(errs, fmt.Sprintf("start the destination balancer: %v (start it by hand with sh.startBalancer() on a destination mongos)", err))
	} else {
		m.note("destination balancer started")
	}
	if err := m.releaseDestination(ctx, c); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// restoreRelaxed re-applies every relaxed original on the destination.
func (m *Migration) restoreRelaxed(ctx context.Context, c Clusters) error {
	m.recMu.Lock()
	relaxed := append([]Relaxed(nil), m.rec.Relaxed...)
	m.recMu.Unlock()
	var failed []string
	for _, x := range relaxed {
		if err := c.Restore(ctx, x); err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", x.NS, x.Original, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("restore the options relaxed for the sync on the destination: %s", strings.Join(failed, "; "))
	}
	if len(relaxed) > 0 {
		m.note(restoredText(relaxed))
	}
	return nil
}

// restoredText says what restoreRelaxed restored: the unique indexes restored
// while syncing (unique.go) were not built again.
func restoredText(relaxed []Relaxed) string {
	early, unique := 0, 0
	for _, x := range relaxed {
		switch {
		case x.UniqueRestored:
			early++
		case x.Kind == RelaxedIndex && cutover.WantsUnique(x.Original):
			unique++
		}
	}
	return fmt.Sprintf("restored %d index and collection options relaxed for the sync (unique, TTL): %d unique indexes made unique now, %d already restored while syncing", len(relaxed), unique, early)
}

// restoreSourceBalancer puts the source balancer back as the migration found it.
func (m *Migration) restoreSourceBalancer(ctx context.Context, c Clusters) error {
	m.recMu.Lock()
	was := m.rec.BalancerWasOn
	m.recMu.Unlock()
	if was == nil {
		return nil // never recorded, so never stopped
	}
	if err := c.RestoreSourceBalancer(ctx, *was); err != nil {
		return fmt.Errorf("restore the source balancer: %w", err)
	}
	if *was {
		m.note("source balancer started again, as it was on before the migration")
	} else {
		m.note("source balancer left off, as it was before the migration")
	}
	return nil
}

// inconsistent lists the shards whose copy is not a consistent staging copy, in
// words; "" when every shard's is.
func inconsistent(positions []ShardPosition) string {
	var bad []string
	for _, p := range positions {
		if !p.Consistent {
			bad = append(bad, p.Text)
		}
	}
	return strings.Join(bad, "; ")
}

// writeSummary keeps what the final screen shows; positions are where the shards
// stopped (nil once done: every shard applied everything).
func (m *Migration) writeSummary(gap time.Duration, v *Verification, positions []ShardPosition) {
	s := m.Snapshot()
	sum := &Summary{
		FinishedAt: m.clock.Now(), Documents: s.Overall.DocsCopied, Bytes: s.Overall.BytesCopied,
		OptimeGap: gap, Verification: verificationText(v), Shards: positions,
	}
	if v == nil {
		sum.Verification = ""
	}
	for _, u := range s.SourceUsers {
		sum.UsersToRecreate = append(sum.UsersToRecreate, u.Name+"@"+u.DB)
	}
	switch bad := inconsistent(positions); {
	case v != nil:
		sum.Notes = append(sum.Notes, "writes that reached the source after the cutover were not copied to the destination")
	case bad != "":
		sum.Notes = append(sum.Notes, "the destination is not a consistent staging copy: "+bad)
	case gap > 0:
		sum.Notes = append(sum.Notes, fmt.Sprintf("the destination is %s behind the source: writes after that were not copied", GapText(gap)))
	}
	sum.Notes = append(sum.Notes, "users and roles are not migrated: re-create them on the destination")
	if err := m.saveRecord(func(rec *Record) { rec.Summary = sum }); err != nil {
		m.log.Error("save the summary", "err", err)
		return
	}
	m.mu.Lock()
	m.mu.summary = sum
	m.mu.Unlock()
}

// RestartShard restarts one shard's sync from the beginning (a failed shard, or any
// on request): its pipeline stops, what it owns on the destination is cleared, and
// it is copied and replayed again from a new T0 while the other shards keep syncing.
// A ready migration is syncing again until the shard is in sync.
func (m *Migration) RestartShard(ctx context.Context, name string) error {
	m.life.Lock()
	defer m.life.Unlock()
	if err := m.refuseWhileCancelling("restart shard " + name); err != nil {
		return err
	}
	st := m.State()
	switch st {
	case Syncing, Ready, CuttingOver:
	case Done, Cancelled:
		return &RefusedError{Action: "restart shard " + name, State: st, Why: "the migration has ended"}
	case Expired:
		return &RefusedError{Action: "restart shard " + name, State: st, Why: "syncing stopped when the cutover window closed", Err: ErrExpired}
	default:
		return &RefusedError{Action: "restart shard " + name, State: st, Why: "shards restart only while the migration syncs"}
	}
	sh := m.shard(name)
	if sh == nil {
		return fmt.Errorf("restart shard %q: %w", name, ErrUnknownShard)
	}
	r := m.run
	if r == nil || r.stopped {
		return ErrNotRunning
	}
	m.haltShard(r, name)
	return m.relaunch(r, sh, "restart requested: its data on the destination is cleared, then copied and replayed again", "")
}

// haltShard stops one shard's pipeline and waits for it. Called with life held.
func (m *Migration) haltShard(r *runState, name string) {
	if p := r.pipes[name]; p != nil {
		p.cancel()
		<-p.done
		delete(r.pipes, name)
	}
	r.clusters.ReleaseDDL(name)
}

// relaunch starts a halted shard again from scratch: its data on the destination
// is cleared, then copied from a new T0 (and a new ownership) and replayed.
// moved names the move that made it copy again ("" for none). Called with life
// held.
func (m *Migration) relaunch(r *runState, sh *shardState, reason, moved string) error {
	st := m.State()
	m.mu.Lock()
	// Until its new copy counts them, the shard's totals are what it had copied: the
	// overall progress must not read 100% while it copies again.
	row := sh.progressLocked()
	sh.expectedDocs, sh.expectedBytes = max(row.DocsTotal, sh.expectedDocs), max(row.BytesTotal, sh.expectedBytes)
	sh.copier, sh.replayer, sh.fetcher, sh.samples, sh.copiedDocs, sh.copiedBytes = nil, nil, nil, nil, 0, 0
	sh.unexplained, sh.unexplainedAt = "", time.Time{} // its new T0 reads the chunk map again
	m.mu.Unlock()
	err := m.shardPhase(sh, nil, Pending, reason, func(cp *ShardCheckpoint) {
		cp.T0, cp.ConsistencyPoint, cp.Applied, cp.Copied, cp.Error = primitive.Timestamp{}, primitive.Timestamp{}, primitive.Timestamp{}, nil, ""
		cp.DDLApplied, cp.Owned, cp.Moved, cp.Buffered = nil, nil, moved, BufferedOplog{}
	})
	if err != nil {
		return err
	}
	if st == Ready {
		// Not ready any more, from now on: the shard copies again.
		snap := m.Snapshot()
		_, why := snap.firstNotSynced(false)
		m.fallBack(why, snap.TimerDeadline)
	}
	m.launch(r, sh, true)
	return nil
}

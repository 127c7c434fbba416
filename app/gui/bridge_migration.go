package gui

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/ui"
)

// liveMigration is one migration open in this process: the engine's Migration and
// the Run that drives it (ui.Migration). The Run belongs to the bridge's context, so
// it outlives the window when the migration is handed to the background:
//
//	run ─► goroutine: engine.Migration.Run(ctx) ─► done, err ─► bridge.poke
//	Pause, bridge.Close ─► cancel ctx ─► Run stops as in a crash; the checkpoints
//	                        are in the state file and the next Run resumes from them
type liveMigration struct {
	b    *bridge
	id   string
	m    *engine.Migration
	name string
	// sandbox is set when the source is this process's sandbox: its write load, the
	// stand-in for the applications, is stopped when the cutover starts.
	sandbox bool
	// destinationURI, when set, replaces the snapshot's DestinationURI (see
	// applicationURI).
	destinationURI string

	mu struct {
		sync.Mutex
		cancel   context.CancelFunc // non-nil while a Run is active
		done     chan struct{}      // closed when the latest Run returned
		err      error              // what the latest Run returned, unless stopped on purpose
		paused   bool               // the latest Run was stopped on purpose
		detached bool
		opts     engine.StartOptions
	}
}

var _ ui.Migration = (*liveMigration)(nil)

// startedPoll is how often awaitStarted looks at the state.
const startedPoll = 50 * time.Millisecond

// run starts a Run unless one is active, and returns the channel closed when the
// active Run returns.
func (l *liveMigration) run(opts engine.StartOptions) <-chan struct{} {
	l.mu.Lock()
	if l.mu.cancel != nil {
		defer l.mu.Unlock()
		return l.mu.done
	}
	ctx, cancel := context.WithCancel(l.b.ctx)
	done := make(chan struct{})
	l.mu.cancel, l.mu.done, l.mu.err, l.mu.paused, l.mu.opts = cancel, done, nil, false, opts
	l.mu.Unlock()
	finish := func(err error, stopped bool) {
		cancel()
		l.mu.Lock()
		l.mu.cancel = nil
		if stopped {
			l.mu.paused = true
		} else {
			l.mu.err = err
		}
		l.mu.Unlock()
		close(done)
	}
	started := l.b.spawn(func() {
		err := l.m.Run(ctx, opts)
		stopped := ctx.Err() != nil
		finish(err, stopped)
		st := l.m.State()
		switch {
		case stopped:
			l.b.log.Info("migration paused at its checkpoints", "migration", l.id, "state", st)
		case err != nil:
			l.b.log.Error("migration stopped", "migration", l.id, "state", st, "err", err)
		default:
			l.b.log.Info("migration ended", "migration", l.id, "state", st)
		}
		l.b.poke()
	})
	if !started {
		finish(errors.New("Shardlift is closing"), false)
	}
	return done
}

// awaitStarted waits until the migration is past its start checks (starting or
// later), or until the Run returned: the error of a Run that ended before the start
// is returned.
func (l *liveMigration) awaitStarted(ctx context.Context, done <-chan struct{}) error {
	t := time.NewTicker(startedPoll)
	defer t.Stop()
	for {
		switch l.m.State() {
		case engine.Draft, engine.Validated, engine.Failed:
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			l.mu.Lock()
			err := l.mu.err
			l.mu.Unlock()
			if st := l.m.State(); st != engine.Draft && st != engine.Validated {
				return nil // failed in a start step: the screens show why, with Retry
			}
			if err == nil {
				err = errors.New("the migration stopped before it started")
			}
			return startError(err)
		case <-t.C:
		}
	}
}

// startError words a refusal of the start for the Connections screen.
func startError(err error) error {
	var notEmpty *engine.DestinationNotEmptyError
	if errors.As(err, &notEmpty) {
		return fmt.Errorf("the destination holds data (databases %v) that validation did not report: validate again, then confirm the wipe: %w", notEmpty.Databases, err)
	}
	return err
}

// stopRun stops the active Run, if any, and waits for it.
func (l *liveMigration) stopRun() {
	l.mu.Lock()
	cancel, done := l.mu.cancel, l.mu.done
	l.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (l *liveMigration) active() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.cancel != nil
}

func (l *liveMigration) detached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.detached
}

// attachAgain is Open on a migration already open here: it is on screen again, and
// a Run that was stopped resumes.
func (l *liveMigration) attachAgain() {
	l.mu.Lock()
	l.mu.detached = false
	paused, opts := l.mu.paused, l.mu.opts
	l.mu.Unlock()
	if paused && resumable(l.m.State()) {
		l.run(opts)
	}
}

// Snapshot implements ui.Migration. A migration whose Run ended with an error while
// it still had syncing to do is shown as failed with that error, so that the screen
// offers Retry, which resumes it from its checkpoints.
func (l *liveMigration) Snapshot() engine.Snapshot {
	s := l.m.Snapshot()
	if l.destinationURI != "" {
		s.DestinationURI = l.destinationURI
	}
	l.mu.Lock()
	active, err, paused := l.mu.cancel != nil, l.mu.err, l.mu.paused
	l.mu.Unlock()
	switch {
	case active || !resumable(s.State):
	case errors.Is(err, engine.ErrWrongCluster) || errors.Is(err, engine.ErrSameCluster) || errors.Is(err, engine.ErrDestinationInUse):
		// Refused before anything changed: the message says what to do, and a
		// Retry alone would be refused again.
		s.State, s.Reason = engine.Failed, err.Error()
	case err != nil && s.State != engine.Failed:
		s.State = engine.Failed
		s.Reason = fmt.Sprintf("syncing stopped: %v. Retry resumes the migration from its checkpoints.", err)
	case err != nil && s.Reason == "":
		s.Reason = err.Error()
	case paused:
		s.Reason = "paused at its checkpoints"
	}
	return s
}

// StartCutover implements ui.Migration.
func (l *liveMigration) StartCutover(ctx context.Context) error {
	if err := l.m.StartCutover(ctx); err != nil {
		return l.uiError(err)
	}
	if l.sandbox {
		l.b.stopSandboxLoad("the cutover started: the sandbox's write load stands for the applications, which stop writing now")
	}
	return nil
}

// ExtendTimer implements ui.Migration.
func (l *liveMigration) ExtendTimer(ctx context.Context) error {
	return l.uiError(l.m.ExtendTimer(ctx))
}

// Done implements ui.Migration.
func (l *liveMigration) Done(ctx context.Context, override bool) error {
	return l.uiError(l.m.Done(ctx, override))
}

// Cancel implements ui.Migration. Without an active Run the engine connects to
// the clusters itself to restore them.
func (l *liveMigration) Cancel(ctx context.Context) error {
	return l.uiError(l.m.Cancel(ctx))
}

// RestartShard implements ui.Migration.
func (l *liveMigration) RestartShard(ctx context.Context, shard string) error {
	return l.uiError(l.m.RestartShard(ctx, shard))
}

// Retry implements ui.Migration: a new Run resumes from the checkpoints (a failed
// start is retried by the engine from where it failed).
func (l *liveMigration) Retry(ctx context.Context) error {
	if l.active() && l.m.State() != engine.Failed {
		return errors.New("the migration is already running")
	}
	l.stopRun()
	l.mu.Lock()
	opts := l.mu.opts
	l.mu.Unlock()
	l.b.log.Info("retrying from the checkpoints", "migration", l.id, "state", l.m.State())
	return l.awaitStarted(ctx, l.run(opts))
}

// Detach implements ui.Migration: the process keeps running without a window until
// the migration ends or Shardlift is opened again (see Run).
func (l *liveMigration) Detach(ctx context.Context) error {
	if !l.active() {
		return errors.New("the migration is not syncing: there is nothing to keep running in the background")
	}
	l.mu.Lock()
	l.mu.detached = true
	l.mu.Unlock()
	l.b.log.Info("migration handed to the background", "migration", l.id)
	return nil
}

// Pause implements ui.Migration: the Run stops; the checkpoints are in the state
// file and opening the migration again resumes from them.
func (l *liveMigration) Pause(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.mu.cancel, l.mu.done
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// uiError words the engine's errors for the screens.
func (l *liveMigration) uiError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrVerificationMismatch):
		return mismatchError{err}
	case errors.Is(err, engine.ErrNotRunning):
		l.mu.Lock()
		last := l.mu.err
		l.mu.Unlock()
		msg := "syncing is not running"
		if last != nil {
			msg += fmt.Sprintf(" (%v)", last)
		}
		return errors.New(msg + ": press Retry to resume the migration from its checkpoints, then try again")
	}
	return err
}

// mismatchError is the engine's verification mismatch as the cutover screen reacts
// to it (ui.ErrVerificationMismatch), keeping the engine's message.
type mismatchError struct{ err error }

func (e mismatchError) Error() string        { return e.err.Error() }
func (e mismatchError) Unwrap() error        { return e.err }
func (e mismatchError) Is(target error) bool { return target == ui.ErrVerificationMismatch }

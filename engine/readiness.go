package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The cutover's readiness has one rule, read from a Snapshot by the lifecycle's
// actions (StartCutover, Done), by its monitor (ready falls back to syncing, the
// cutover says it cannot finish) and by the API and the screens, so that none of
// them can say "ready" while a shard is not in sync:
//
//   - the cutover starts only when every shard is synced (its lag measured: a shard
//     resumed after a restart waits until its replay has read its source);
//   - I'm done finishes it only when no shard failed or is copying again, and the
//     optime gap (every shard's, a failed one's included) is known and 0.

// NotSyncedError refuses to start or finish the cutover while a shard is not in
// sync; it matches ErrRefused.
type NotSyncedError struct {
	Action string // "start the cutover", "finish the cutover"
	Shard  string
	Phase  Phase
	// Why names the shard, says what is wrong with it and what to do.
	Why string
}

func (e *NotSyncedError) Error() string { return fmt.Sprintf("cannot %s: %s", e.Action, e.Why) }

// Is makes a NotSyncedError match ErrRefused.
func (e *NotSyncedError) Is(target error) bool { return target == ErrRefused }

// NotSynced is why this shard keeps the cutover from starting (finishing false) or
// from finishing, in words a DBA can act on; "" when it does not. A shard catching
// up does not keep the cutover from finishing by itself: the optime gap says
// whether it has applied everything.
func (p ShardProgress) NotSynced(finishing bool) string {
	switch p.Phase {
	case Synced:
		if !finishing && !p.LagKnown {
			// Resumed after a restart, its replay has not looked at its source yet.
			return fmt.Sprintf("shard %s has not read its source's newest entry since it resumed: its lag is not known yet; wait a moment", p.Name)
		}
		return ""
	case CatchingUp:
		if finishing {
			return ""
		}
		return fmt.Sprintf("shard %s is behind (lag %s): wait until it is in sync again", p.Name, GapText(p.Lag))
	case ShardFailed:
		return fmt.Sprintf("shard %s failed: %s", p.Name, p.Error)
	}
	return fmt.Sprintf("shard %s is not in sync: it is %s; wait until it has copied its data and caught up",
		p.Name, strings.ReplaceAll(string(p.Phase), "_", " "))
}

// firstNotSynced is the first shard that keeps the cutover from starting (or
// finishing), and why; ok when none does.
func (s Snapshot) firstNotSynced(finishing bool) (shard ShardProgress, why string) {
	for _, p := range s.Shards {
		if why := p.NotSynced(finishing); why != "" {
			return p, why
		}
	}
	return ShardProgress{}, ""
}

// notSyncedError refuses action when a shard keeps the cutover from starting (or
// finishing); nil when none does.
func (s Snapshot) notSyncedError(action string, finishing bool) error {
	if p, why := s.firstNotSynced(finishing); why != "" {
		return &NotSyncedError{Action: action, Shard: p.Name, Phase: p.Phase, Why: why}
	}
	return nil
}

// CanStartCutover reports whether Start cutover is accepted now and, when it is
// not, why (naming the shard that is not in sync).
func (s Snapshot) CanStartCutover() (bool, string) {
	if s.State == Ready || s.State == Syncing {
		if _, why := s.firstNotSynced(false); why != "" {
			return false, why
		}
	}
	if s.State != Ready {
		return false, whyNotReady(s.State)
	}
	return len(s.Shards) > 0, ""
}

// CanFinish reports whether I'm done is accepted now and, when it is not, why. A
// finalize that stopped on an error is resumed by I'm done.
func (s Snapshot) CanFinish() (bool, string) {
	switch s.State {
	case Finalizing:
		return true, ""
	case CuttingOver:
	case Ready:
		return false, "start the cutover first"
	default:
		return false, whyNotReady(s.State)
	}
	var ns *NotSyncedError
	var gap *GapError
	switch err := s.finishRefusal(); {
	case errors.As(err, &ns):
		return false, ns.Why
	case errors.As(err, &gap):
		return false, gapAdvice(gap.Gap, gap.Shard)
	}
	return true, ""
}

// finishRefusal is why I'm done is refused while cutting over (nil when it is not):
// a shard not in sync or whose gap is not known yet (a *NotSyncedError), or an
// optime gap that is not 0 (a *GapError).
func (s Snapshot) finishRefusal() error {
	if err := s.notSyncedError("finish the cutover", true); err != nil {
		return err
	}
	if !s.OptimeGapKnown {
		for _, p := range s.Shards {
			if !p.LagKnown {
				return &NotSyncedError{Action: "finish the cutover", Shard: p.Name, Phase: p.Phase,
					Why: fmt.Sprintf("the optime gap is not known yet: shard %s has not read its source's newest entry; wait a moment", p.Name)}
			}
		}
	}
	if s.OptimeGap > 0 {
		return &GapError{Gap: s.OptimeGap, Shard: s.GapShard}
	}
	return nil
}

// gapAdvice is what to do about an optime gap that is not 0 yet (no shard failed:
// notSynced says so first).
func gapAdvice(gap time.Duration, shard string) string {
	return fmt.Sprintf("the optime gap is %s (shard %s is behind): stop every write to the source and wait until the gap is 0:00",
		GapText(gap), shard)
}

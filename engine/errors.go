package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/validate"
)

// Sentinel errors of the lifecycle; test them with errors.Is. The errors returned
// carry the details (typed errors below) in messages a DBA can act on.
var (
	// ErrRefused: the action is not possible in the migration's current state (a
	// *RefusedError, or a *GapError for I'm done while the optime gap is not 0).
	ErrRefused = errors.New("refused")
	// ErrNotRunning: the action needs the migration's Run, which is not active.
	ErrNotRunning = errors.New("the migration is not running here: start it again (shardlift migrate with the same state file) to resume it")
	// ErrUnknownShard: no source shard has that name.
	ErrUnknownShard = errors.New("no such source shard")
	// ErrExpired: the cutover window closed; syncing stopped.
	ErrExpired = errors.New("the cutover window has closed")
	// ErrDestinationNotEmpty: the destination holds data that is not this
	// migration's (a *DestinationNotEmptyError).
	ErrDestinationNotEmpty = errors.New("the destination holds data")
	// ErrVerificationMismatch: verification found ranges that differ (a
	// *MismatchError); finishing needs an explicit override.
	ErrVerificationMismatch = errors.New("source and destination differ")
	// ErrValidation: a pre-migration check failed (a *ValidationError).
	ErrValidation = errors.New("a pre-migration check failed")
)

// RefusedError is an action the lifecycle does not allow now.
type RefusedError struct {
	Action string // "start the cutover", "I'm done", ...
	State  State
	// Why says what to do instead.
	Why string
	// Err is a more specific sentinel (ErrExpired), or nil.
	Err error
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("cannot %s: the migration is %s", e.Action, e.State)
	if e.Why != "" {
		msg += "; " + e.Why
	}
	return msg
}

// Is makes every RefusedError match ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func (e *RefusedError) Unwrap() error { return e.Err }

// GapError refuses I'm done while the destination is behind the source.
type GapError struct {
	// Gap is the optime gap at the refusal; Shard is the shard furthest behind.
	Gap   time.Duration
	Shard string
}

func (e *GapError) Error() string {
	return fmt.Sprintf("cannot finish the cutover: the optime gap is %s (shard %s is behind): stop every write to the source and wait until the gap is 0:00",
		GapText(e.Gap), e.Shard)
}

// Is makes a GapError match ErrRefused.
func (e *GapError) Is(target error) bool { return target == ErrRefused }

// GapText writes a duration as the cutover screen does: m:ss, or h:mm:ss.
func GapText(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// DestinationNotEmptyError refuses to start into a destination holding data that
// is not this migration's.
type DestinationNotEmptyError struct {
	Databases []string
}

func (e *DestinationNotEmptyError) Error() string {
	return fmt.Sprintf("the destination already holds data (databases %s): starting the migration wipes it; confirm the wipe (--wipe-destination) or choose an empty destination",
		strings.Join(e.Databases, ", "))
}

func (e *DestinationNotEmptyError) Unwrap() error { return ErrDestinationNotEmpty }

// ValidationError lists the pre-migration checks that failed.
type ValidationError struct {
	Failed []validate.Finding
}

func (e *ValidationError) Error() string {
	var parts []string
	for _, f := range e.Failed {
		p := f.Title + ": " + f.Detail
		if f.Fix != "" {
			p += " (fix: " + f.Fix + ")"
		}
		parts = append(parts, p)
	}
	return "the migration did not start: " + strings.Join(parts, "; ")
}

func (e *ValidationError) Unwrap() error { return ErrValidation }

// MismatchError blocks I'm done when verification found differences.
type MismatchError struct {
	Verification *Verification
}

func (e *MismatchError) Error() string {
	v := e.Verification
	msg := fmt.Sprintf("verification found %d of %d ranges that differ", len(v.Mismatches), v.Ranges)
	if len(v.Mismatches) > 0 {
		m := v.Mismatches[0]
		msg += fmt.Sprintf(" (first: %s %s, %d documents on the source, %d on the destination)", m.Namespace, m.Range, m.SourceCount, m.DestCount)
	}
	return msg + ": fix the destination and press I'm done again, or finish with an override"
}

func (e *MismatchError) Unwrap() error { return ErrVerificationMismatch }

package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
)

// Sentinel errors of the lifecycle; test them with errors.Is. The errors returned
// carry the details (typed errors below) in messages a DBA can act on.
var (
	// ErrRefused: the action is not possible in the migration's current state (a
	// *RefusedError; a *NotSyncedError while a shard is not in sync; a *GapError for
	// I'm done while the optime gap is not 0).
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
	// ErrSameCluster: the source and the destination are one cluster or share
	// servers (a *SameClusterError).
	ErrSameCluster = errors.New("the source and the destination are the same cluster")
	// ErrWrongCluster: a cluster is not the one the migration recorded when it
	// started (a *WrongClusterError).
	ErrWrongCluster = errors.New("not the cluster this migration runs on")
	// ErrDestinationInUse: another migration holds the destination (a
	// *DestinationInUseError).
	ErrDestinationInUse = errors.New("another migration holds the destination")
)

// SameClusterError refuses to migrate a cluster into itself, or into a cluster
// sharing one of its servers: the wipe would drop the source's databases, the copy
// would write over them. Nothing was changed on either cluster.
type SameClusterError struct {
	// Source and Destination are the endpoints given, passwords masked.
	Source, Destination     string
	SourceID, DestinationID topology.Identity
	Overlap                 topology.Overlap
}

func (e *SameClusterError) Error() string {
	return fmt.Sprintf("refused: the source %s is %s and the destination %s is %s: %s. Migrating a cluster into itself would drop or overwrite the source's data, so nothing was changed on either; give the destination's own mongos address (a cluster other than the source, sharing none of its servers)",
		e.Source, e.SourceID, e.Destination, e.DestinationID, e.Overlap.Describe())
}

func (e *SameClusterError) Unwrap() error { return ErrSameCluster }

// WrongClusterError refuses to resume (or cancel) a migration on another cluster
// than the one it recorded when it started. Nothing was changed, on the clusters or
// in the state file.
type WrongClusterError struct {
	MigrationID string
	// Role is "source" or "destination"; Endpoint is the one given now.
	Role, Endpoint  string
	Recorded, Found topology.Identity
}

func (e *WrongClusterError) Error() string {
	return fmt.Sprintf("refused: migration %s was started with %s %s, but the %s given now (%s) is %s; nothing was changed. Give the clusters this migration was started with, or use another state file (--state) for a migration of these clusters",
		e.MigrationID, e.Role, e.Recorded, e.Role, e.Endpoint, e.Found)
}

func (e *WrongClusterError) Unwrap() error { return ErrWrongCluster }

// DestinationInUseError refuses a second migration into a destination that
// another migration holds (its marker is there).
type DestinationInUseError struct {
	Destination string // the endpoint, password masked
	Marker      topology.Marker
}

func (e *DestinationInUseError) Error() string {
	return fmt.Sprintf("refused: the destination %s is held by %s, and a second migration into it would overwrite that one; nothing was changed. Wait for that migration to end or cancel it in the Shardlift that runs it; if it is known dead (that Shardlift no longer runs and will not be resumed), clear its marker with: shardlift clear-marker --destination URI",
		e.Destination, e.Marker)
}

func (e *DestinationInUseError) Unwrap() error { return ErrDestinationInUse }

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
	return "cannot finish the cutover: " + gapAdvice(e.Gap, e.Shard)
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
	if len(v.Late) > 0 {
		return v.Late[0].String() + ": the destination lacks them. Stop whatever still writes to the source, then cancel the migration and start a new one, or finish with an override to accept the difference"
	}
	if len(v.Mismatches) == 0 && len(v.Indexes) > 0 {
		return "verification found " + v.Differences() + ": make the destination's collections and indexes as the source's (build each index as the source's getIndexes() shows it, drop an index or a collection the source does not have) and press I'm done again, or finish with an override"
	}
	msg := fmt.Sprintf("verification found %d of %d ranges that differ", len(v.Mismatches), v.Ranges)
	if len(v.Mismatches) > 0 {
		m := v.Mismatches[0]
		msg += fmt.Sprintf(" (first: %s %s, %d documents on the source, %d on the destination)", m.Namespace, m.Range, m.SourceCount, m.DestCount)
	}
	return msg + ": fix the destination and press I'm done again, or finish with an override"
}

func (e *MismatchError) Unwrap() error { return ErrVerificationMismatch }

// ReshardedError says that a collection was resharded (reshardCollection, or 8.0's
// moveCollection or unshardCollection) during the migration: the destination has
// its old shard key and cannot follow, so the migration stops.
type ReshardedError struct {
	What string // the resharding, in words
}

func (e *ReshardedError) Error() string {
	return e.What + " during the migration: the destination has the old shard key and cannot follow it, so syncing stopped. " +
		"Cancel this migration and start a new one (and reshard, move or unshard collections only before a migration or after its cutover)"
}

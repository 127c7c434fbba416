package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/topology"
)

// ErrOplogGap: the shard's oplog no longer holds the entry the replay must resume
// from; the entries between it and the oldest one left are lost. Nothing continues
// from a gap: the shard must be restarted (its data cleared and copied again). The
// error returned is a *GapError, whose message says so.
var ErrOplogGap = errors.New("oplog gap")

// GapError reports an oplog that rolled past a shard's resume point.
type GapError struct {
	Shard  string
	Resume primitive.Timestamp // the entry the replay had to start from
	// First is the oldest entry the oplog returned instead (zero when the server
	// reported the lost position without returning one: CappedPositionLost).
	First primitive.Timestamp
}

func (e *GapError) Error() string {
	at := time.Unix(int64(e.Resume.T), 0).UTC().Format("2006-01-02 15:04:05 UTC")
	return fmt.Sprintf("the oplog of shard %s no longer reaches back to %s (Timestamp(%d, %d)): restart this shard",
		e.Shard, at, e.Resume.T, e.Resume.I)
}

func (e *GapError) Unwrap() error { return ErrOplogGap }

// ErrRolledBack: the source shard lost an entry this replay had applied (a
// failover rolled it back). The destination may hold writes the source no longer
// has: the shard must be restarted. The error returned is a *RollbackError.
var ErrRolledBack = errors.New("source rolled back")

// RollbackError reports a resume point the source no longer holds as applied: the
// entry there is of another term, or gone while older entries remain.
type RollbackError struct {
	Shard   string
	Applied OpTime // the entry the replay applied last
	Found   OpTime // the entry the source holds at its ts instead (zero: none)
	// AtT0: Applied is the shard's T0, up to which the destination holds the copy
	// (the replay had applied nothing after it).
	AtT0 bool
}

func (e *RollbackError) Error() string {
	at := time.Unix(int64(e.Applied.TS.T), 0).UTC().Format("2006-01-02 15:04:05 UTC")
	applied := "that the destination applied last"
	if e.AtT0 {
		applied = "that is the shard's T0, up to which the destination holds its copy"
	}
	what := fmt.Sprintf("no longer holds the entry at %s (Timestamp(%d, %d)) %s", at, e.Applied.TS.T, e.Applied.TS.I, applied)
	if e.Found.TS == e.Applied.TS {
		what = fmt.Sprintf("holds another entry at %s (Timestamp(%d, %d)) than the one %s: one of term %d, not %d",
			at, e.Applied.TS.T, e.Applied.TS.I, strings.TrimPrefix(applied, "that "), e.Found.Term, e.Applied.Term)
	}
	return fmt.Sprintf("the source shard %s rolled back past what was applied (a failover lost writes Shardlift had already copied): its oplog %s; the destination may hold writes the source no longer has: restart this shard to copy it again",
		e.Shard, what)
}

func (e *RollbackError) Unwrap() error { return ErrRolledBack }

// Server error codes this package acts on (MongoDB's error_codes.yml).
const (
	codeHostUnreachable                 = 6
	codeHostNotFound                    = 7
	codeTypeMismatch                    = 14
	codeNamespaceNotFound               = 26
	codeIndexNotFound                   = 27
	codePathNotViable                   = 28
	codeLockTimeout                     = 24
	codeCursorNotFound                  = 43
	codeNamespaceExists                 = 48
	codeExceededTimeLimit               = 50
	codeStaleShardVersion               = 63
	codeNetworkTimeout                  = 89
	codeShutdownInProgress              = 91
	codeWriteConflict                   = 112
	codeFailedToSatisfyReadPreference   = 133
	codeCappedPositionLost              = 136
	codeStaleEpoch                      = 150
	codeQueryPlanKilled                 = 175
	codePrimarySteppedDown              = 189
	codeNetworkInterfaceExceededTimeLim = 202
	codeCursorKilled                    = 237
	codeNotImplemented                  = 238
	codeExceededTimeLimitGeneric        = 262
	codeInterruptedAtShutdown           = 11600
	codeInterrupted                     = 11601
	codeInterruptedDueToReplStateChange = 11602
	codeDuplicateKey                    = 11000
	codeNotWritablePrimary              = 10107
	codeStaleConfig                     = 13388
	codeNotPrimaryNoSecondaryOk         = 13435
	codeNotPrimaryOrSecondary           = 13436
	codeSocketException                 = 9001
	codeFailedToParse                   = 9
	codeInvalidOptions                  = 72
	codeIDLUnknownField                 = 40415
)

// optionRefusedCodes are how servers say they do not take a command's option:
// FerretDB answers NotImplemented, MongoDB-compatible servers an unknown field.
var optionRefusedCodes = []int{codeFailedToParse, codeInvalidOptions, codeNotImplemented, codeIDLUnknownField}

// transientCodes are server errors that a retry (after reconnecting, for the tailer)
// can get past: the node stepped down or is shutting down, the network failed, a
// routing table was stale, a write conflicted, a cursor was killed by a restart.
var transientCodes = []int{
	codeHostUnreachable, codeHostNotFound, codeLockTimeout, codeCursorNotFound,
	codeExceededTimeLimit, codeStaleShardVersion, codeNetworkTimeout, codeShutdownInProgress,
	codeWriteConflict, codeFailedToSatisfyReadPreference, codeStaleEpoch, codeQueryPlanKilled,
	codePrimarySteppedDown, codeNetworkInterfaceExceededTimeLim, codeCursorKilled,
	codeExceededTimeLimitGeneric, codeInterruptedAtShutdown, codeInterruptedDueToReplStateChange,
	codeNotWritablePrimary, codeStaleConfig, codeNotPrimaryNoSecondaryOk, codeNotPrimaryOrSecondary,
	codeSocketException,
}

// transientLabels are the driver's and the server's labels for retryable failures.
var transientLabels = []string{"NetworkError", "RetryableWriteError", "TransientTransactionError", "ResumableChangeStreamError"}

// idempotencyCodes are the write errors that replaying an entry against a document
// already in a later state can produce, and that the entry's later ones repair:
//
//   - DuplicateKey (11000) on _id: an insert (a replace-upsert by the full document
//     key) meets the document under another shard key value, because the copy read
//     it after a shard key change that a later entry of this oplog records. Unique
//     secondary indexes are built relaxed during sync (oplog.RelaxIndexForSync), so
//     a duplicate key can only be on _id, except on an ordered namespace (its
//     unique index restored: see OrderedNamespaces), which writeNS handles first.
//   - PathNotViable (28) and TypeMismatch (14): an update's $set descends into a field
//     (or array element) that is no longer a document or an array in the copied
//     state; the later entry that changed that field is replayed after it.
//
// They are tolerated only before the shard's consistency point (see
// Config.ConsistencyPoint): after it, every document is in the state the entry was
// written against, and such an error means the destination diverged.
var idempotencyCodes = []int{codeDuplicateKey, codePathNotViable, codeTypeMismatch}

// isTransient reports whether err is worth retrying: network failures, timeouts
// (server selection while a node is down, an operation's time limit) and the server
// errors listed in transientCodes. Callers check their own context first: its end
// is never a fault to retry.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) || topology.IsRetryablePoolError(err) {
		return true
	}
	var le mongo.LabeledError
	if errors.As(err, &le) {
		for _, l := range transientLabels {
			if le.HasErrorLabel(l) {
				return true
			}
		}
	}
	return mongoerr.HasCode(err, transientCodes...)
}

// memberGone: the member being read changed role, or none matches the read
// preference now (all down, or none a secondary during an election): the next
// run chooses again.
func memberGone(err error) bool {
	return errors.Is(err, topology.ErrMemberChanged) || errors.Is(err, topology.ErrNoEligibleMember)
}

// isCappedPositionLost reports the server's way of saying that a tailable cursor's
// position was overwritten: the oplog rolled past it.
func isCappedPositionLost(err error) bool { return mongoerr.HasCode(err, codeCappedPositionLost) }

// errStopped ends a pipeline run whose owner asked it to stop.
var errStopped = errors.New("replay stopped")

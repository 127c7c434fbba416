package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
)

// tailer reads one shard's oplog and hands on, in batches, only what its majority
// committed: the replay's pipeline reads the source through it, and so does the
// Fetcher that buffers the oplog on disk while the copy runs.
type tailer struct {
	src       Source
	shard     string
	pollEvery time.Duration       // how often the commit point is asked while entries wait
	out       chan<- []bson.Raw   // the batches handed on; closed when run returns
	notes     tailNotes           // what the tailer tells its owner's progress
	stopping  func() bool         // the owner stops: errors then end the tail quietly
	bound     primitive.Timestamp // the source's majority commit point, as last read
	eof       bool                // the source ended (a file); set before out is closed
}

// tailNotes receives what a tailer reports: a Shard, or a Fetcher.
type tailNotes interface {
	// setCommitWait: entries wait for the majority commit point (on), or no longer.
	setCommitWait(on bool)
	// setRetrying(retryCommit, msg): the point cannot be read now, and why ("": it can).
	setRetrying(kind int, msg string)
	// sawCommitPoint: the majority commit point read.
	sawCommitPoint(ts primitive.Timestamp)
	// commitWaited: one more look at the point found it behind an entry.
	commitWaited()
	// commitWaitShown: the wait is long enough to show; setCommitMembers: where
	// the members are meanwhile (asked only while it is shown).
	commitWaitShown() bool
	setCommitMembers(awaited primitive.Timestamp, members []topology.MemberOpTime)
}

// run reads the oplog from from on into batches until the source ends, the shard
// stops or an error, and closes out. It hands on only entries that the majority commit point read before the
// cursor passed them covers (see sendCommitted); after entries had to wait for the
// point to move, it opens the cursor again after the last entry it handed on, so
// that an entry that was in an oplog hole when the cursor passed it is read now.
func (r *tailer) run(ctx context.Context, from primitive.Timestamp) error {
	defer close(r.out)
	// The commit point as of now covers the entries the first cursor reads up to
	// it; a source that cannot say yet is asked again when an entry waits.
	if bound, err := r.src.Majority(ctx); err == nil && r.bound.Before(bound.TS) {
		r.bound = bound.TS
		r.notes.sawCommitPoint(bound.TS)
	}
	var sent OpTime // the newest entry handed on by this run (zero: none yet)
	for {
		reopen, err := r.tailCursor(ctx, from, &sent)
		if err != nil || !reopen {
			return err
		}
		if !sent.TS.IsZero() {
			from = sent.TS
		}
	}
}

// tailCursor reads one cursor opened at from until it must be opened again
// (reopen), the source ends, the shard stops or an error. A cursor opened again at
// the entry handed on last (sent) must start with that entry, which it skips.
func (r *tailer) tailCursor(ctx context.Context, from primitive.Timestamp, sent *OpTime) (reopen bool, err error) {
	cur, err := r.src.Tail(ctx, from)
	if isCappedPositionLost(err) {
		return false, &GapError{Shard: r.shard, Resume: from}
	}
	if err != nil {
		return false, r.tailError(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = cur.Close(cctx) // the server reaps a cursor it cannot close after 10 minutes
	}()
	last := from
	again := !sent.TS.IsZero() && sent.TS == from
	for {
		batch, err := cur.Next(ctx)
		switch {
		case err == io.EOF:
			r.eof = true
			return false, nil
		case isCappedPositionLost(err):
			return false, &GapError{Shard: r.shard, Resume: last}
		case err != nil:
			return false, r.tailError(err)
		case len(batch) == 0:
			continue
		}
		if again {
			again = false
			if first := tsOf(batch[0]); first != sent.TS {
				return false, lostEntry(ctx, r.src, r.shard, *sent, first)
			}
			if batch = batch[1:]; len(batch) == 0 {
				continue
			}
		}
		last = tsOf(batch[len(batch)-1])
		reopen, err := r.sendCommitted(ctx, batch, sent)
		if err != nil {
			return false, r.tailError(err)
		}
		if reopen {
			return true, nil
		}
	}
}

// tsOf is an entry's ts (zero without one: the decoder reports such an entry).
func tsOf(raw bson.Raw) primitive.Timestamp {
	t, i, _ := raw.Lookup("ts").TimestampOK()
	return primitive.Timestamp{T: t, I: i}
}

// sendCommitted hands on the entries of batch the source's majority commit point
// covers, as last read: an entry past it could still be rolled back by a failover,
// or follow an entry that was in an oplog hole when the cursor read the batch (the
// point is never past a hole). When an entry is past it, sendCommitted waits,
// asking the source again every CommitPollEvery, until the point moves past it,
// and asks for the cursor to be opened again (reopen) rather than trust the rest
// of the batch. Meanwhile the tailer reads nothing more: what waits is this one
// batch. sent is the newest entry handed on.
func (r *tailer) sendCommitted(ctx context.Context, batch []bson.Raw, sent *OpTime) (reopen bool, err error) {
	n := 0
	for n < len(batch) {
		if ts := tsOf(batch[n]); !ts.IsZero() && r.bound.Before(ts) {
			break
		}
		n++ // an entry without ts is the decoder's to report
	}
	if n > 0 {
		select {
		case r.out <- batch[:n]:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		if ts := tsOf(batch[n-1]); !ts.IsZero() {
			term, _ := batch[n-1].Lookup("t").AsInt64OK()
			*sent = OpTime{TS: ts, Term: term}
		}
	}
	if n == len(batch) {
		return false, nil
	}
	if err := r.awaitCommitted(ctx, batch[n]); err != nil {
		return false, err
	}
	return true, nil
}

// awaitCommitted reads the majority commit point until it is at or past entry.
func (r *tailer) awaitCommitted(ctx context.Context, entry bson.Raw) error {
	t, i, _ := entry.Lookup("ts").TimestampOK()
	ts := primitive.Timestamp{T: t, I: i}
	r.notes.setCommitWait(true)
	defer r.notes.setCommitWait(false)
	members, reports := r.src.(MemberReporter)
	var tick *time.Timer
	var asked time.Time // when the members were last asked where they are
	for {
		bound, err := r.src.Majority(ctx)
		switch {
		case errors.Is(err, topology.ErrNoCommitPoint):
			// A primary elected a moment ago: the point will come; say why nothing
			// is applied meanwhile.
			r.notes.setRetrying(retryCommit, "retrying: "+err.Error())
		case err != nil:
			return fmt.Errorf("read the majority commit point: %w", err)
		default:
			r.notes.setRetrying(retryCommit, "")
		}
		if r.bound.Before(bound.TS) {
			r.bound = bound.TS
			r.notes.sawCommitPoint(bound.TS)
		}
		if !r.bound.Before(ts) {
			return nil
		}
		r.notes.commitWaited()
		if reports && r.notes.commitWaitShown() && time.Since(asked) >= membersEvery {
			asked = time.Now()
			r.notes.setCommitMembers(ts, readMembers(ctx, members))
		}
		if tick == nil {
			tick = time.NewTimer(r.pollEvery)
			defer tick.Stop()
		} else {
			tick.Reset(r.pollEvery)
		}
		select {
		case <-tick.C:
		case <-ctx.Done(): // also on Stop
			return ctx.Err()
		}
	}
}

func (r *tailer) tailError(err error) error {
	if r.stopping() {
		return nil
	}
	var gap *GapError
	var rollback *RollbackError
	if errors.As(err, &gap) || errors.As(err, &rollback) {
		return err // a buffered source's fetcher found it: its message says all
	}
	return fmt.Errorf("tail the oplog: %w", err)
}

// lostEntry explains an oplog that returned first where it had to return the
// entry want: it rolled past want (a gap), or, when it still holds older entries,
// rolled want back.
func lostEntry(ctx context.Context, src Source, shard string, want OpTime, first primitive.Timestamp) error {
	oldest, err := src.Oldest(ctx)
	if err != nil {
		return fmt.Errorf("read the oldest oplog entry: %w", err)
	}
	if !oldest.IsZero() && oldest.Before(want.TS) {
		return &RollbackError{Shard: shard, Applied: want}
	}
	return &GapError{Shard: shard, Resume: want.TS, First: first}
}

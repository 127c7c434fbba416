package initialsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// writeLoop writes the batches of one namespace's partitions until the scanners
// close the channel or a write fails. A batch is completed in its partition's
// tracker only once it is written, so a failed batch holds the checkpoint before it.
func (c *Copier) writeLoop(ctx context.Context, in <-chan *batch) error {
	for b := range in {
		if err := ctx.Err(); err != nil {
			c.mem.release(b.weight)
			return err
		}
		p := b.part
		err := c.write(ctx, p, b)
		c.mem.release(b.weight)
		if err != nil {
			return err
		}
		// The namespace's counters first: once the tracker marks the last batch
		// done, they are final.
		p.owner.docs.Add(int64(len(b.ends)))
		p.owner.bytes.Add(int64(len(b.arena)))
		p.tracker.complete(b.seq)
	}
	return nil
}

// write inserts one batch, retrying transient failures (only the documents that
// failed; those already written come back as duplicates and are skipped).
func (c *Copier) write(ctx context.Context, p *partition, b *batch) error {
	docs := b.docs()
	ordered := p.ns.Capped
	failures := 0
	for len(docs) > 0 {
		res := outcome(docs, ordered, c.insertInFlight(ctx, p, docs, ordered))
		if len(res.unnamed) > 0 {
			if err := c.confirmDuplicates(ctx, p, docs, res.unnamed); err != nil {
				return fmt.Errorf("insert into the destination: %w", err)
			}
		}
		if res.err == nil {
			if failures > 0 {
				c.setRetrying("")
			}
			docs = res.rest
			continue
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if !res.retry || failures >= c.retry.attempts {
			return fmt.Errorf("insert into the destination: %w", res.err)
		}
		failures++
		c.log.Warn("destination write failed, retrying", "ns", p.id, "docs", len(res.rest), "attempt", failures, "err", res.err)
		c.setRetrying(fmt.Sprintf("retrying (attempt %d): write %s to the destination: %v", failures, p.id, res.err))
		if err := c.retry.wait(ctx, failures); err != nil {
			return err
		}
		docs = res.rest
	}
	return nil
}

// confirmDuplicates settles duplicate key errors that name no index (FerretDB's
// do not): a document whose _id is on the destination is an _id duplicate, any
// other one collides with another unique index.
func (c *Copier) confirmDuplicates(ctx context.Context, p *partition, docs []bson.Raw, unnamed []mongo.WriteError) error {
	ids := make([]bson.RawValue, len(unnamed))
	for i, we := range unnamed {
		ids[i] = docs[we.Index].Lookup("_id")
	}
	var present []bool
	err := c.retrying(ctx, p.id, func() error {
		var err error
		present, err = c.cfg.Destination.ExistingIDs(ctx, p.ns.DB, p.ns.Name, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("look up the _ids of duplicate key errors: %w", err)
	}
	for i, we := range unnamed {
		if !present[i] {
			return documentError(docs, we)
		}
	}
	return nil
}

// result is what an insert left to do.
type result struct {
	// rest are the documents still to write (next, or again on retry).
	rest  []bson.Raw
	retry bool
	// unnamed are duplicate key errors that do not say on which index: _id
	// duplicates only if the document's _id is on the destination.
	unnamed []mongo.WriteError
	err     error
}

// outcome reads an insert's result. err is nil when the remaining documents can
// be sent at once (an ordered insert stopped by an _id duplicate).
func outcome(docs []bson.Raw, ordered bool, err error) result {
	if err == nil {
		return result{}
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) {
		return result{rest: docs, retry: transient(err), err: err}
	}
	var res result
	if ordered {
		// An ordered insert stops at its first error; nothing after it was tried.
		if len(bwe.WriteErrors) == 0 {
			return result{rest: docs, retry: true, err: err}
		}
		we := bwe.WriteErrors[0].WriteError
		if we.Index < 0 || we.Index >= len(docs) {
			return result{err: fmt.Errorf("the server reported a write error at index %d of %d documents: %w", we.Index, len(docs), err)}
		}
		switch duplicateOn(we) {
		case dupUnnamed:
			res.unnamed = []mongo.WriteError{we}
			fallthrough
		case dupID:
			res.rest = docs[we.Index+1:]
			return res
		}
		if transientCode(we.Code) {
			return result{rest: docs[we.Index:], retry: true, err: err}
		}
		return result{err: documentError(docs, we)}
	}
	for _, bw := range bwe.WriteErrors {
		we := bw.WriteError
		if we.Index < 0 || we.Index >= len(docs) {
			return result{err: fmt.Errorf("the server reported a write error at index %d of %d documents: %w", we.Index, len(docs), err)}
		}
		switch dup := duplicateOn(we); {
		case dup == dupID:
		case dup == dupUnnamed:
			res.unnamed = append(res.unnamed, we)
		case transientCode(we.Code):
			res.rest = append(res.rest, docs[we.Index])
		default:
			return result{err: documentError(docs, we)}
		}
	}
	if bwe.WriteConcernError != nil {
		// Not acknowledged by the write concern: send everything again.
		res.rest, res.retry, res.err = docs, true, err
		return res
	}
	if len(res.rest) > 0 {
		res.retry, res.err = true, err
	}
	return res
}

// documentError names the document a write error is about and what to do.
func documentError(docs []bson.Raw, we mongo.WriteError) error {
	id := docs[we.Index].Lookup("_id")
	if duplicateOn(we) != notDuplicate {
		return fmt.Errorf("document _id %s: a unique index other than _id refuses it (%s, code %d): the destination holds other data; wipe it and start again", id, we.Message, we.Code)
	}
	return fmt.Errorf("document _id %s: %s (code %d)", id, we.Message, we.Code)
}

// Kinds of write errors for duplicates.
const (
	notDuplicate = iota
	// dupID: the document's _id is on the destination already (written before an
	// interruption).
	dupID
	// dupOther: another unique index refuses the document.
	dupOther
	// dupUnnamed: a duplicate key error that does not say which index.
	dupUnnamed
)

// duplicateOn tells which index a duplicate key error is about, from its
// keyPattern (4.2 and later) or its message ("... index: _id_ dup key: ...").
func duplicateOn(we mongo.WriteError) int {
	if we.Code != 11000 && we.Code != 11001 {
		return notDuplicate
	}
	if len(we.Raw) > 0 {
		if kp, ok := we.Raw.Lookup("keyPattern").DocumentOK(); ok {
			if elems, err := kp.Elements(); err == nil && len(elems) == 1 && elems[0].Key() == "_id" {
				return dupID
			}
			return dupOther
		}
	}
	switch {
	case strings.Contains(we.Message, " index: _id_ "):
		return dupID
	case strings.Contains(we.Message, " index: "):
		return dupOther
	}
	return dupUnnamed
}

// DefaultStopGrace bounds how long an insert already sent goes on after the copy
// was told to stop (Config.StopGrace).
const DefaultStopGrace = 15 * time.Second

// insertInFlight sends one insert and waits for its answer however long the
// destination takes, and even when the copy is stopped meanwhile (up to
// Config.StopGrace). An insert has no deadline of its own: one abandoned by its client
// still runs on the server (waiting on a lock, queued behind others), so sending it
// again, as a deadline led to, could have the first copy land after the shard's
// replay has deleted the document, bringing it back. A process that takes over after
// a stop (a resume, another window) replays deletes of the same documents: the grace
// lets the inserts in flight end first.
func (c *Copier) insertInFlight(ctx context.Context, p *partition, docs []bson.Raw, ordered bool) error {
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopped := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.StopGrace, cancel) })
	defer stopped()
	return c.cfg.Destination.Insert(ictx, p.ns.DB, p.ns.Name, docs, ordered)
}

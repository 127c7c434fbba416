package initialsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// orphanRun is how many documents in a row, counted in batches of BatchDocs, may
// be skipped as orphans before the scan position is recorded anyway, so that a
// long run of orphans does not hold the checkpoint back.
const orphanRun = 10

// batch is a run of scanned documents: the owned ones to write, and where the
// run ends in the scan.
type batch struct {
	part   *partition
	seq    uint64
	arena  []byte // the documents, back to back
	ends   []int  // end offset of each document in arena
	lastID bson.RawValue
	weight int64 // what the batch took from the budget
}

func (b *batch) docs() []bson.Raw {
	out := make([]bson.Raw, len(b.ends))
	start := 0
	for i, end := range b.ends {
		out[i] = bson.Raw(b.arena[start:end])
		start = end
	}
	return out
}

// copyNamespace splits a namespace that has no partitions yet, then runs the
// scanners of its partitions (Config.Partitions at once) and its writers until
// every partition is copied or one of them fails.
func (c *Copier) copyNamespace(ctx context.Context, n *namespace) error {
	start := time.Now()
	if n.partitions() == nil {
		c.split(ctx, n)
	}
	writers := c.cfg.Writers
	if n.ns.Capped {
		// Natural order is the collection's content: one ordered writer keeps it.
		writers = 1
		if err := c.restartCapped(ctx, n); err != nil {
			return err
		}
	}
	parts := n.partitions()
	if len(parts) > 1 {
		// Each range's cursor hands over a batch per round trip: with fewer writers
		// than ranges read at once, the inserts' round trips bound the copy instead.
		writers = max(writers, min(len(parts), c.cfg.Partitions))
	}
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan *batch, writers)
	for range writers {
		g.Go(func() error { return c.writeLoop(gctx, batches) })
	}
	g.Go(func() error {
		defer close(batches)
		scans, sctx := errgroup.WithContext(gctx)
		scans.SetLimit(c.cfg.Partitions)
		for _, p := range parts {
			if prog, _ := p.tracker.progress(); !prog.Done {
				scans.Go(func() error { return c.scan(sctx, p, batches) })
			}
		}
		return scans.Wait()
	})
	err := g.Wait()
	for b := range batches {
		c.mem.release(b.weight) // left in the queue by writers that stopped early
	}
	if err != nil {
		return fmt.Errorf("%s: %w", n.id, err)
	}
	if !partsDone(parts) {
		return fmt.Errorf("%s: internal error: the scans ended with batches still pending", n.id)
	}
	n.done.Store(true)
	c.log.Info("namespace copied", "ns", n.id, "partitions", len(parts), "docs", n.docs.Load(), "bytes", n.bytes.Load(), "elapsed", time.Since(start))
	return nil
}

// restartCapped empties a capped collection before its copy: its natural order
// cannot be resumed by _id, and a run interrupted before its first checkpoint
// leaves documents behind too, so it is always copied whole into an empty
// collection (New started its progress from nothing).
func (c *Copier) restartCapped(ctx context.Context, n *namespace) error {
	if err := c.cfg.Destination.Empty(ctx, n.ns.Collection); err != nil {
		return fmt.Errorf("empty capped %s before copying it: %w", n.id, err)
	}
	return nil
}

// scanner is one partition's read state.
type scanner struct {
	c   *Copier
	p   *partition
	out chan<- *batch
	// last is the _id of the last document read: where the scan resumes.
	last   bson.RawValue
	cur    *batch
	keyBuf []byte
	// scanned counts the documents of cur, orphans included.
	scanned int
}

// scan reads the partition from its resume point and hands batches to the writers.
func (c *Copier) scan(ctx context.Context, p *partition, out chan<- *batch) error {
	prog, _ := p.tracker.progress()
	s := &scanner{c: c, p: p, out: out, last: prog.LastID, cur: &batch{part: p}}
	order := ByID
	if p.ns.Capped {
		order, s.last = Natural, bson.RawValue{}
	}
	failures := 0
	for {
		err := s.read(ctx, order)
		if err == nil {
			if failures > 0 {
				c.setRetrying("")
			}
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A capped collection's natural order cannot be reopened where it stopped:
		// its partition fails, and the next Copy copies it again whole.
		var fatal *fatalError
		if errors.As(err, &fatal) || order == Natural || !transient(err) || failures >= c.retry.attempts {
			return fmt.Errorf("read from the source shard: %w", err)
		}
		failures++
		c.log.Warn("source read interrupted, reopening the scan", "ns", p.id, "after", s.last, "attempt", failures, "err", err)
		c.setRetrying(fmt.Sprintf("retrying (attempt %d): read %s from the source shard: %v", failures, p.id, err))
		if err := c.retry.wait(ctx, failures); err != nil {
			return err
		}
	}
	if err := s.emit(ctx); err != nil {
		return err
	}
	p.tracker.end()
	return nil
}

// fatalError is a scan failure that retrying cannot fix.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// read opens a cursor after s.last and consumes it to the end.
func (s *scanner) read(ctx context.Context, order Order) error {
	if s.p.ranged {
		return s.readRange(ctx)
	}
	filter := bson.D{}
	from := s.last
	if from.Type != 0 {
		// Not {$gt: last}: range operators bracket by type and would lose every
		// _id of a later type class. Earlier classes come back and are dropped below.
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$lte", Value: s.last}}}}}}
	}
	// The resume filter and the order compare _ids as compareIDs does: bytewise for
	// strings, whatever the collection's default collation.
	simple := order == ByID && s.p.ns.DefaultCollation() != nil
	cur, err := s.c.cfg.Source.Find(ctx, s.p.ns.DB, s.p.ns.Name, filter, order, simple)
	if err != nil {
		return err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		if err := s.add(ctx, cur.Current(), order, from); err != nil {
			return err
		}
	}
	return cur.Err()
}

// readRange opens a cursor on the partition's range from s.last (included, by
// index bounds: no type class is skipped) and consumes it to the end.
func (s *scanner) readRange(ctx context.Context) error {
	from := s.p.min
	if s.last.Type != 0 {
		from = s.last
	}
	cur, err := s.c.cfg.Source.FindRange(ctx, s.p.ns.DB, s.p.ns.Name, from, s.p.max)
	if err != nil {
		return err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	resumed := s.last
	for cur.Next(ctx) {
		doc := cur.Current()
		id := doc.Lookup("_id")
		if id.Type != 0 && !s.p.inRange(id) {
			return &fatalError{fmt.Errorf("the shard returned _id %s outside partition %s: the scan cannot be trusted to cover its range exactly", id, s.p.id)}
		}
		if resumed.Type != 0 && sameID(id, resumed) {
			continue // the resume point itself, copied before the cursor was opened
		}
		if err := s.add(ctx, doc, ByID, bson.RawValue{}); err != nil {
			return err
		}
	}
	return cur.Err()
}

// add takes one scanned document into the current batch. from is where the
// cursor was opened: documents at or before it were read before.
func (s *scanner) add(ctx context.Context, doc bson.Raw, order Order, from bson.RawValue) error {
	id, err := doc.LookupErr("_id")
	if err != nil {
		return &fatalError{fmt.Errorf("a document has no _id: %w", err)}
	}
	if order == ByID {
		if from.Type != 0 && compareIDs(id, from) <= 0 {
			return nil // an earlier type class, read before the cursor was opened
		}
		if s.last.Type != 0 && compareIDs(id, s.last) <= 0 {
			return &fatalError{fmt.Errorf("the shard returned _id %s after %s: the scan is not in _id order, so it cannot be resumed safely", id, s.last)}
		}
	}
	owned, buf, err := s.p.ns.Owns(doc, s.keyBuf)
	s.keyBuf = buf
	if err != nil {
		return &fatalError{fmt.Errorf("document _id %s: %w", id, err)}
	}
	if owned && len(s.cur.ends) > 0 && int64(len(s.cur.arena)+len(doc)) > s.c.cfg.BatchBytes {
		// The batch is full without this document: it ends at the previous one.
		if err := s.emit(ctx); err != nil {
			return err
		}
	}
	s.last = cloneValue(id)
	s.scanned++
	if !owned {
		s.c.orphans.Add(1)
		if s.scanned >= orphanRun*s.c.cfg.BatchDocs {
			return s.emit(ctx)
		}
		return nil
	}
	b := s.cur
	b.arena = append(b.arena, doc...)
	b.ends = append(b.ends, len(b.arena))
	if len(b.ends) >= s.c.cfg.BatchDocs || int64(len(b.arena)) >= s.c.cfg.BatchBytes {
		return s.emit(ctx)
	}
	return nil
}

// emit closes the current batch: it waits for room in the budget, registers the
// batch with the tracker, and hands it to a writer (or, with nothing to write,
// completes it at once).
func (s *scanner) emit(ctx context.Context) error {
	b := s.cur
	if s.scanned == 0 {
		return nil
	}
	s.cur, s.scanned = &batch{part: s.p}, 0
	b.lastID = s.last
	if len(b.ends) == 0 {
		s.p.tracker.complete(s.p.tracker.issue(b.lastID, 0, 0))
		return nil
	}
	b.weight = int64(len(b.arena))
	if err := s.c.mem.acquire(ctx, b.weight); err != nil {
		return err
	}
	b.seq = s.p.tracker.issue(b.lastID, int64(len(b.ends)), int64(len(b.arena)))
	select {
	case s.out <- b:
		return nil
	case <-ctx.Done():
		s.c.mem.release(b.weight)
		return ctx.Err()
	}
}

// compareIDs orders _id values as MongoDB's _id index does.
func compareIDs(a, b bson.RawValue) int {
	return shardkey.Compare(bsoncore.Value{Type: a.Type, Data: a.Value}, bsoncore.Value{Type: b.Type, Data: b.Value})
}

func cloneValue(v bson.RawValue) bson.RawValue {
	return bson.RawValue{Type: v.Type, Value: bytes.Clone(v.Value)}
}

package initialsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/prepare"
)

// Defaults of Config.
const (
	DefaultNamespaces      = 4
	DefaultWriters         = 4
	DefaultBatchDocs       = 1000
	DefaultBatchBytes      = 8 << 20
	DefaultQueueBytes      = 64 << 20
	DefaultCheckpointEvery = time.Second
	// DefaultPartitions cursors read a large namespace at once (see docs/performance.md).
	DefaultPartitions = 8
	// A namespace is large from DefaultPartitionBytes or DefaultPartitionDocs on the shard.
	DefaultPartitionBytes = 1 << 30
	DefaultPartitionDocs  = 4_000_000
)

// Order is the order a scan returns documents in.
type Order int

const (
	// ByID is ascending _id, MongoDB's order across types.
	ByID Order = iota
	// Natural is insertion order ($natural), for capped collections.
	Natural
)

// Source reads one shard directly (not through mongos: a shard's copy must see
// its own documents, orphans included, to skip them).
type Source interface {
	// Find scans db.coll with the filter in the given order. simpleCollation
	// compares strings (in the filter and in the order) by their bytes, as the
	// copier does, on a collection with a default collation.
	Find(ctx context.Context, db, coll string, filter bson.D, order Order, simpleCollation bool) (Cursor, error)
	// FindRange scans the documents of db.coll whose _id is in [min, max) in
	// MongoDB's order across types (a zero bound leaves that end open), in _id
	// order, by the _id index's bounds rather than a filter, which would bracket by type.
	FindRange(ctx context.Context, db, coll string, min, max bson.RawValue) (Cursor, error)
	// SampleIDs draws about n _ids of db.coll at random, in no order; one may repeat.
	SampleIDs(ctx context.Context, db, coll string, n int) ([]bson.RawValue, error)
	// ListIndexes returns the collection's index specifications.
	ListIndexes(ctx context.Context, db, coll string) ([]bson.Raw, error)
}

// Cursor iterates a scan. Current is valid until the next call to Next.
type Cursor interface {
	Next(ctx context.Context) bool
	Current() bson.Raw
	Err() error
	Close(ctx context.Context) error
}

// Destination writes to the destination cluster through mongos. Errors are the
// driver's (mongo.BulkWriteException, mongo.CommandError, network errors), so
// that duplicates and transient failures are told apart the same way for real
// servers and for fakes.
type Destination interface {
	// Insert inserts the documents, bypassing document validation.
	Insert(ctx context.Context, db, coll string, docs []bson.Raw, ordered bool) error
	// CreateIndexes builds the indexes (createIndexes).
	CreateIndexes(ctx context.Context, db, coll string, specs []bson.Raw) error
	// Empty deletes every document of a collection (prepare.EmptyCollection).
	Empty(ctx context.Context, c *prepare.Collection) error
	// ExistingIDs reports, for each _id, whether a document with an equal _id is in
	// db.coll.
	ExistingIDs(ctx context.Context, db, coll string, ids []bson.RawValue) ([]bool, error)
}

// CheckpointSink saves a shard's copy progress, keyed by partition: the
// namespace "db.coll" copied whole, or "db.coll$i" for its range i. It is called at most once per Config.CheckpointEvery and
// when Copy returns, from one goroutine at a time.
type CheckpointSink interface {
	SaveCopyProgress(shard string, progress map[string]PartitionProgress) error
}

// IndexSink keeps the original specification of every index built relaxed
// (unique left out, TTL made huge), so that finalize or cancel can restore it.
type IndexSink interface {
	RelaxedIndex(ns string, original bson.Raw) error
}

// Config is one shard's copy.
type Config struct {
	// Shard is the shard's part of the plan.
	Shard *prepare.ShardPlan
	// Source reads the shard's primary directly; Destination writes through mongos.
	Source      Source
	Destination Destination
	// Saved is the progress saved by an earlier run (nil to start afresh).
	Saved       map[string]PartitionProgress
	Checkpoints CheckpointSink
	Indexes     IndexSink
	// IndexBuilds is shared by the copiers of all shards so that each index is
	// built once; nil gives this copier a registry of its own.
	IndexBuilds *IndexBuilds
	// Namespaces are copied this many at once; Writers write each one's batches
	// (a namespace read in ranges has at least one writer per range read at once).
	Namespaces, Writers int
	// Partitions cursors read a namespace of at least PartitionBytes or
	// PartitionDocs (the plan's estimate for the shard), each its own _id range;
	// 1 reads every namespace with one cursor.
	Partitions                    int
	PartitionBytes, PartitionDocs int64
	// BatchDocs and BatchBytes cut batches; a document bigger than BatchBytes is
	// a batch of its own.
	BatchDocs  int
	BatchBytes int64
	// QueueBytes bounds the batches read and not yet written, for the whole shard.
	QueueBytes int64
	// CheckpointEvery is the shortest time between two checkpoints.
	CheckpointEvery time.Duration
	// StopGrace is how long an insert already sent may run on once the copy is
	// told to stop (0: DefaultStopGrace); tests whose destination never answers a
	// held insert shorten it.
	StopGrace time.Duration
	Logger    *slog.Logger
}

// Progress is a copy's progress at one moment.
type Progress struct {
	// Docs and Bytes have been written (including what an earlier run copied).
	Docs, Bytes int64
	// DocsTotal and BytesTotal add up, for each namespace, what it copied once it
	// is copied, else the larger of the plan's estimate and what it copied so far:
	// never less than Docs and Bytes, and exact once Estimated is false. They shrink
	// only when a namespace turns out smaller than its estimate.
	DocsTotal, BytesTotal int64
	// Estimated is set while a namespace is still being copied (or waits to be).
	Estimated bool
	// Orphans are the documents skipped because the shard does not own them.
	Orphans int64
	// Namespaces and NamespacesDone count the shard's namespaces.
	Namespaces, NamespacesDone int
	// Retrying describes a transient failure being retried ("retrying: ..."), so the
	// shard's row shows a source or destination that went away; "" otherwise.
	Retrying string
	// Ranges are the namespaces being copied in _id ranges (not done yet, ranges
	// chosen), in the plan's order.
	Ranges []NamespaceRanges
}

// NamespaceRanges is the copy of one namespace in _id ranges: how many of its
// ranges are durably copied, of how many.
type NamespaceRanges struct {
	Namespace   string
	Done, Total int
}

// Copier copies one shard. Copy and BuildIndexes are meant to be called once
// each, in that order; Snapshot may be called at any time from any goroutine.
type Copier struct {
	cfg    Config
	log    *slog.Logger
	spaces []*namespace
	extra  map[string]PartitionProgress // saved partitions the plan no longer has
	mem    *budget
	retry  retryPolicy
	builds *IndexBuilds

	orphans  atomic.Int64
	retryMsg atomic.Pointer[string]
	watch    *sourceWatch
}

// New checks the configuration and restores the saved progress.
func New(cfg Config) (*Copier, error) {
	switch {
	case cfg.Shard == nil:
		return nil, errors.New("initial sync: no shard plan")
	case cfg.Source == nil || cfg.Destination == nil:
		return nil, fmt.Errorf("initial sync of shard %s: source and destination are required", cfg.Shard.Source)
	case cfg.Checkpoints == nil || cfg.Indexes == nil:
		return nil, fmt.Errorf("initial sync of shard %s: checkpoint and index sinks are required", cfg.Shard.Source)
	}
	cfg.Namespaces = orDefault(cfg.Namespaces, DefaultNamespaces)
	cfg.Writers = orDefault(cfg.Writers, DefaultWriters)
	cfg.BatchDocs = orDefault(cfg.BatchDocs, DefaultBatchDocs)
	cfg.BatchBytes = orDefault(cfg.BatchBytes, DefaultBatchBytes)
	cfg.QueueBytes = orDefault(cfg.QueueBytes, DefaultQueueBytes)
	cfg.CheckpointEvery = orDefault(cfg.CheckpointEvery, DefaultCheckpointEvery)
	cfg.StopGrace = orDefault(cfg.StopGrace, DefaultStopGrace)
	cfg.Partitions = orDefault(cfg.Partitions, DefaultPartitions)
	cfg.PartitionBytes = orDefault(cfg.PartitionBytes, DefaultPartitionBytes)
	cfg.PartitionDocs = orDefault(cfg.PartitionDocs, DefaultPartitionDocs)
	c := &Copier{cfg: cfg, log: cfg.Logger, mem: newBudget(cfg.QueueBytes), retry: defaultRetry, extra: maps.Clone(cfg.Saved), builds: cfg.IndexBuilds}
	if c.builds == nil {
		c.builds = NewIndexBuilds()
	}
	c.watch = newSourceWatch(time.Now)
	c.cfg.Source = watchedSource{src: cfg.Source, w: c.watch}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("shard", cfg.Shard.Source)
	for i := range cfg.Shard.Namespaces {
		ns := &cfg.Shard.Namespaces[i]
		n := &namespace{ns: ns, id: ns.NS()}
		if err := n.restore(cfg.Saved, c.extra); err != nil {
			return nil, fmt.Errorf("initial sync of shard %s: %w", cfg.Shard.Source, err)
		}
		parts := n.partitions()
		if ns.Capped && (len(parts) != 1 || !partsDone(parts)) {
			// Copied again whole (see restartCapped): what an earlier run wrote of it
			// counts for nothing.
			parts = []*partition{n.wholePartition(PartitionProgress{})}
			n.setPartitions(parts)
		}
		if parts == nil && !c.splits(ns) {
			n.setPartitions([]*partition{n.wholePartition(PartitionProgress{})})
		}
		for _, p := range parts {
			prog, _ := p.tracker.progress()
			n.docs.Add(prog.Docs)
			n.bytes.Add(prog.Bytes)
		}
		n.done.Store(parts != nil && partsDone(parts))
		c.spaces = append(c.spaces, n)
	}
	return c, nil
}

// partsDone reports whether every partition is durably copied.
func partsDone(parts []*partition) bool {
	for _, p := range parts {
		if prog, _ := p.tracker.progress(); !prog.Done {
			return false
		}
	}
	return true
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Snapshot returns the progress; it is cheap and never blocks on I/O.
func (c *Copier) Snapshot() Progress {
	p := Progress{Orphans: c.orphans.Load(), Namespaces: len(c.spaces), Retrying: c.retryingNow()}
	for _, part := range c.spaces {
		// done first: once it is set, the counters read after it are final.
		done := part.done.Load()
		docs, bytes := part.docs.Load(), part.bytes.Load()
		p.Docs += docs
		p.Bytes += bytes
		if done {
			p.NamespacesDone++
			p.DocsTotal += docs
			p.BytesTotal += bytes
			continue
		}
		p.Estimated = true
		p.DocsTotal += max(part.ns.Docs, docs)
		p.BytesTotal += max(part.ns.Bytes, bytes)
		if r, ok := part.ranges(); ok {
			p.Ranges = append(p.Ranges, r)
		}
	}
	return p
}

// ranges is the progress of a namespace copied in _id ranges; ok is false for a
// namespace read whole, or whose ranges are not chosen yet.
func (n *namespace) ranges() (r NamespaceRanges, ok bool) {
	parts := n.partitions()
	if len(parts) == 0 || !parts[0].ranged {
		return r, false
	}
	r = NamespaceRanges{Namespace: n.id, Total: len(parts)}
	for _, p := range parts {
		if prog, _ := p.tracker.progress(); prog.Done {
			r.Done++
		}
	}
	return r, true
}

// setRetrying records the transient failure being retried ("" once it is over).
func (c *Copier) setRetrying(msg string) { c.retryMsg.Store(&msg) }

// retryingNow is the failure being retried, else a source read unanswered for
// StallAfter, else "".
func (c *Copier) retryingNow() string {
	if p := c.retryMsg.Load(); p != nil && *p != "" {
		return *p
	}
	return c.watch.stalled(StallAfter)
}

// Copy copies every document the shard owns that the saved progress does not
// already cover, then saves the final progress. It returns the first failure
// (the other namespaces are stopped), wrapping ctx's error when cancelled; the
// progress saved on the way out lets the next Copy resume.
func (c *Copier) Copy(ctx context.Context) error {
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	copied := make(chan struct{})
	g.Go(func() error { return c.checkpointLoop(gctx, copied) })
	g.Go(func() error {
		defer close(copied)
		work, wctx := errgroup.WithContext(gctx)
		work.SetLimit(c.cfg.Namespaces)
		for _, n := range c.spaces {
			if n.done.Load() {
				continue
			}
			work.Go(func() error { return c.copyNamespace(wctx, n) })
		}
		return work.Wait()
	})
	err := g.Wait()
	if saveErr := c.save(); saveErr != nil {
		err = errors.Join(err, saveErr)
	}
	if err != nil {
		return fmt.Errorf("copy of shard %s: %w", c.cfg.Shard.Source, err)
	}
	s := c.Snapshot()
	c.log.Info("copy done", "docs", s.Docs, "bytes", s.Bytes, "orphans", s.Orphans, "elapsed", time.Since(start))
	return nil
}

// checkpointLoop saves the progress at most once per CheckpointEvery while the
// copy runs, when it changed.
func (c *Copier) checkpointLoop(ctx context.Context, copied <-chan struct{}) error {
	tick := time.NewTicker(c.cfg.CheckpointEvery)
	defer tick.Stop()
	var saved uint64
	for {
		select {
		case <-copied:
			return nil
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if v := c.version(); v != saved {
			if err := c.save(); err != nil {
				return err
			}
			saved = v
		}
	}
}

// version changes whenever any partition's durable progress does.
func (c *Copier) version() uint64 {
	var v uint64
	for _, n := range c.spaces {
		for _, p := range n.partitions() {
			_, pv := p.tracker.progress()
			v += pv + 1 // a namespace just split changes the version too
		}
	}
	return v
}

// save hands every partition's durable progress to the sink.
func (c *Copier) save() error {
	all := make(map[string]PartitionProgress, len(c.spaces)+len(c.extra))
	maps.Copy(all, c.extra)
	for _, n := range c.spaces {
		for _, p := range n.partitions() {
			all[p.id], _ = p.tracker.progress()
		}
	}
	if err := c.cfg.Checkpoints.SaveCopyProgress(c.cfg.Shard.Source, all); err != nil {
		return fmt.Errorf("save the copy checkpoint: %w", err)
	}
	return nil
}

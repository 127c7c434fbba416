package initialsync

import (
	"context"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/bson"
	"golang.org/x/sync/semaphore"
)

// PartitionProgress is the saved copy progress of one partition (a whole
// namespace, or one _id range of it): everything from its start up to and
// including LastID, in _id order, is on the destination.
type PartitionProgress struct {
	// Min and Max bound a range partition's _ids, Min included, Max excluded, in
	// MongoDB's order across types; zero (Type 0) leaves that end open. Both are
	// zero for a namespace copied whole.
	Min, Max bson.RawValue
	// Done is set once every document of the partition is durable.
	Done bool
	// LastID is the _id of the last document scanned (copied or skipped as an
	// orphan) in the durable prefix; zero (Type 0) before the first batch.
	LastID bson.RawValue
	// Docs and Bytes count the documents of the durable prefix written to the
	// destination (orphans excluded).
	Docs, Bytes int64
}

// tracker computes a partition's durable prefix while batches complete in any
// order: the checkpoint moves past a batch only once it and every batch issued
// before it are written. A batch that failed, or was handed to a writer that has
// not finished, holds the checkpoint where it is.
type tracker struct {
	mu struct {
		sync.Mutex
		durable PartitionProgress
		head    uint64 // sequence number of pending[0]
		pending []mark
		version uint64 // bumped whenever durable changes
		ended   bool   // the scan issued its last batch
	}
}

// mark is one issued batch: where it ends and what it adds.
type mark struct {
	lastID      bson.RawValue
	docs, bytes int64
	done        bool
}

func newTracker(saved PartitionProgress) *tracker {
	t := &tracker{}
	t.mu.durable = saved
	return t
}

// issue registers the next batch, in scan order, and returns its sequence number.
// lastID must not alias a buffer that changes.
func (t *tracker) issue(lastID bson.RawValue, docs, bytes int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.mu.head + uint64(len(t.mu.pending))
	t.mu.pending = append(t.mu.pending, mark{lastID: lastID, docs: docs, bytes: bytes})
	return seq
}

// complete records that batch seq is durable on the destination, and moves the
// durable prefix over every completed batch at its head.
func (t *tracker) complete(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := int(seq - t.mu.head)
	if seq < t.mu.head || i >= len(t.mu.pending) {
		return
	}
	t.mu.pending[i].done = true
	n := 0
	for n < len(t.mu.pending) && t.mu.pending[n].done {
		m := t.mu.pending[n]
		t.mu.durable.LastID = m.lastID
		t.mu.durable.Docs += m.docs
		t.mu.durable.Bytes += m.bytes
		n++
	}
	if n == 0 {
		return
	}
	clear(t.mu.pending[:n])
	t.mu.pending = t.mu.pending[n:]
	t.mu.head += uint64(n)
	t.mu.durable.Done = t.mu.ended && len(t.mu.pending) == 0
	t.mu.version++
}

// end records that the scan issued its last batch: the partition is done once
// every batch is durable (at once if none is pending).
func (t *tracker) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.ended = true
	if len(t.mu.pending) == 0 && !t.mu.durable.Done {
		t.mu.durable.Done = true
		t.mu.version++
	}
}

// progress is the durable prefix and its version.
func (t *tracker) progress() (PartitionProgress, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.durable, t.mu.version
}

// budget bounds the bytes of batches read but not yet written, across every
// namespace of a copier, so that memory stays flat whatever the data size. It is
// first come, first served, so a big batch is not starved by small ones. A
// request larger than the whole budget (one document near 16 MiB with a smaller
// budget) waits for the budget to be entirely free and then takes all of it.
type budget struct {
	sem      *semaphore.Weighted
	capacity int64
	used     atomic.Int64
	waiting  atomic.Int32
}

func newBudget(capacity int64) *budget {
	return &budget{sem: semaphore.NewWeighted(capacity), capacity: capacity}
}

// clamp is what a request of n bytes actually takes.
func (b *budget) clamp(n int64) int64 { return max(1, min(n, b.capacity)) }

// acquire takes n bytes (clamped) from the budget, waiting for releases.
func (b *budget) acquire(ctx context.Context, n int64) error {
	n = b.clamp(n)
	if !b.sem.TryAcquire(n) {
		b.waiting.Add(1)
		err := b.sem.Acquire(ctx, n)
		b.waiting.Add(-1)
		if err != nil {
			return err
		}
	}
	b.used.Add(n)
	return nil
}

// release gives back what acquire(n) took.
func (b *budget) release(n int64) {
	n = b.clamp(n)
	b.used.Add(-n)
	b.sem.Release(n)
}

package replay

import (
	"context"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
)

// budget bounds the bytes of the writes a shard holds between the dispatcher and the
// destination. The dispatcher takes bytes before it queues (or parks) a write; the
// applier gives them back once the write is applied.
type budget struct {
	limit int64
	mu    struct {
		sync.Mutex
		used    int64
		changed chan struct{} // closed and replaced on every release
	}
	peak atomic.Int64
}

func newBudget(limit int64) *budget {
	b := &budget{limit: limit}
	b.mu.changed = make(chan struct{})
	return b
}

// tryTake takes n bytes if they fit. A write larger than the whole budget is let
// through alone, when nothing else is held, so that a 16 MiB document never blocks
// the shard.
func (b *budget) tryTake(n int64) (ok bool, changed <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.used+n <= b.limit || b.mu.used == 0 {
		b.mu.used += n
		if b.mu.used > b.peak.Load() {
			b.peak.Store(b.mu.used)
		}
		return true, nil
	}
	return false, b.mu.changed
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.used -= n
	close(b.mu.changed)
	b.mu.changed = make(chan struct{})
}

func (b *budget) used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.used
}

// task is one write for an applier, in queue order.
type task struct {
	write oplog.Write
	// diff is the $v: 2 diff a pipeline-form update reproduces, when the entry is at
	// hand (a top-level update): destinations without pipeline updates apply it by
	// reading and replacing the document (see ImageReader).
	diff  bson.Raw
	done  *completion // what to mark once the write is applied
	bytes int64
	// mark is the write's place in its namespace's order, when the namespace has a
	// unique index restored (see OrderedNamespaces); nil otherwise.
	mark *orderMark
}

// completion ties a write (or a DDL) to the positions it completes.
type completion struct {
	entry    primitive.Timestamp // ts of the entry (the commit's, in a transaction)
	ts       Ticket              // in the resume point's Watermark
	held     *heldMark           // in the held scopes (a DDL's is in its hold or parked item)
	txn      *txnGroup           // the transaction this item commits, if any
	tolerate bool                // idempotency errors are tolerated (up to the consistency point)
}

// queuedWrites counts the writes handed to the appliers and not yet applied, by
// namespace and by database, so that a DDL waits for the writes before it to the
// namespaces it touches only, while the others' go on. Once a DDL holds its
// namespaces no write to them is queued until it is applied (they are parked): the
// counts it waits on only fall.
type queuedWrites struct {
	mu    sync.Mutex
	count map[oplog.Namespace]int           // {DB, ""} counts the whole database
	idle  map[oplog.Namespace]chan struct{} // closed when the count falls to 0
}

func newQueuedWrites() *queuedWrites {
	return &queuedWrites{count: map[oplog.Namespace]int{}, idle: map[oplog.Namespace]chan struct{}{}}
}

func (q *queuedWrites) add(ns oplog.Namespace) {
	q.mu.Lock()
	q.count[ns]++
	q.count[oplog.Namespace{DB: ns.DB}]++
	q.mu.Unlock()
}

// applied counts tasks out.
func (q *queuedWrites) applied(tasks []task) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range tasks {
		ns := tasks[i].write.NS
		q.fall(ns)
		q.fall(oplog.Namespace{DB: ns.DB})
	}
}

func (q *queuedWrites) fall(key oplog.Namespace) {
	if q.count[key]--; q.count[key] > 0 {
		return
	}
	delete(q.count, key)
	if ch, ok := q.idle[key]; ok {
		close(ch)
		delete(q.idle, key)
	}
}

// wait returns once no write to scopes (a database is {DB, ""}) is queued.
func (q *queuedWrites) wait(ctx context.Context, scopes []oplog.Namespace) error {
	for _, sc := range scopes {
		q.mu.Lock()
		if q.count[sc] == 0 {
			q.mu.Unlock()
			continue
		}
		ch, ok := q.idle[sc]
		if !ok {
			ch = make(chan struct{})
			q.idle[sc] = ch
		}
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// queue is one applier's input, in dispatch order. Its length is bounded by the
// shard's budget, not here.
type queue struct {
	mu struct {
		sync.Mutex
		tasks  []task
		head   int
		closed bool
	}
	signal chan struct{} // holds a token when tasks may be waiting
}

func newQueue() *queue { return &queue{signal: make(chan struct{}, 1)} }

func (q *queue) push(t task) {
	q.mu.Lock()
	q.mu.tasks = append(q.mu.tasks, t)
	q.mu.Unlock()
	q.poke()
}

func (q *queue) close() {
	q.mu.Lock()
	q.mu.closed = true
	q.mu.Unlock()
	q.poke()
}

func (q *queue) poke() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop takes the oldest task without waiting. closed is set once the queue is closed
// and empty.
func (q *queue) pop() (t task, ok, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.head == len(q.mu.tasks) {
		return task{}, false, q.mu.closed
	}
	t = q.mu.tasks[q.mu.head]
	q.mu.tasks[q.mu.head] = task{}
	q.mu.head++
	if q.mu.head == len(q.mu.tasks) {
		q.mu.tasks, q.mu.head = q.mu.tasks[:0], 0
	} else if q.mu.head > 1024 && q.mu.head*2 > len(q.mu.tasks) {
		n := copy(q.mu.tasks, q.mu.tasks[q.mu.head:])
		clear(q.mu.tasks[n:])
		q.mu.tasks, q.mu.head = q.mu.tasks[:n], 0
	}
	return t, true, false
}

// wait takes the oldest task, waiting for one; closed is set once the queue is
// closed and empty.
func (q *queue) wait(ctx context.Context) (t task, closed bool, err error) {
	for {
		t, ok, closed := q.pop()
		if ok || closed {
			return t, closed, nil
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return task{}, false, ctx.Err()
		}
	}
}

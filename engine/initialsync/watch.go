package initialsync

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// StallAfter is how long a source read may go unanswered before the shard's row
// says so. A stopped or unreachable shard often returns no error at all for a
// while (the driver waits for a server to select, a read on a link that drops
// packets waits for its timeout), so there is nothing to retry and, without this,
// nothing to show.
const StallAfter = 5 * time.Second

// sourceWatch notes the source reads in flight. Each cursor (and each other call)
// has one sourceRead, registered once; a cursor step only stores its start time
// in it, so watching costs no lock and no allocation per document.
type sourceWatch struct {
	mu    sync.Mutex
	reads map[*sourceRead]struct{}
	now   func() time.Time
	// base is the origin of the start times: they are kept as offsets from it, so
	// that comparing them uses the monotonic clock, as time.Time.Sub does.
	base time.Time
}

// sourceRead is one cursor's (or one call's) read in flight, if any.
type sourceRead struct {
	what string
	// since is the start of the read in flight as an offset from the watch's
	// base, or idle.
	since atomic.Int64
}

// idle is a sourceRead's since when no read is in flight.
const idle = math.MinInt64

func newSourceWatch(now func() time.Time) *sourceWatch {
	return &sourceWatch{reads: map[*sourceRead]struct{}{}, now: now, base: now()}
}

// track registers the reads of what, none in flight yet; untrack ends it.
func (w *sourceWatch) track(what string) *sourceRead {
	r := &sourceRead{what: what}
	r.since.Store(idle)
	w.mu.Lock()
	w.reads[r] = struct{}{}
	w.mu.Unlock()
	return r
}

func (w *sourceWatch) untrack(r *sourceRead) {
	w.mu.Lock()
	delete(w.reads, r)
	w.mu.Unlock()
}

// start notes that a read of r begins now; end, that it is answered.
func (w *sourceWatch) start(r *sourceRead) { r.since.Store(int64(w.now().Sub(w.base))) }
func (w *sourceWatch) end(r *sourceRead)   { r.since.Store(idle) }

// call watches one call of what until its returned func is called.
func (w *sourceWatch) call(what string) func() {
	r := w.track(what)
	w.start(r)
	return func() { w.untrack(r) }
}

// stalled describes the oldest read in flight for longer than after, or "".
func (w *sourceWatch) stalled(after time.Duration) string {
	var oldest *sourceRead
	var oldestSince int64
	w.mu.Lock()
	for r := range w.reads {
		if since := r.since.Load(); since != idle && (oldest == nil || since < oldestSince) {
			oldest, oldestSince = r, since
		}
	}
	w.mu.Unlock()
	if oldest == nil {
		return ""
	}
	since := w.base.Add(time.Duration(oldestSince))
	if w.now().Sub(since) < after {
		return ""
	}
	// "a read": the shard may answer others meanwhile (a slow $sample beside a
	// copy that goes on); when it is down, every read waits and this is the oldest.
	return fmt.Sprintf("waiting: a read has had no answer from the source shard since %s (%s)", since.UTC().Format("15:04:05"), oldest.what)
}

// watchedSource is a Source whose every call, and every cursor step, is watched.
type watchedSource struct {
	src Source
	w   *sourceWatch
}

func (s watchedSource) Find(ctx context.Context, db, coll string, filter bson.D, order Order, simpleCollation bool) (Cursor, error) {
	what := "read " + db + "." + coll
	end := s.w.call(what)
	cur, err := s.src.Find(ctx, db, coll, filter, order, simpleCollation)
	end()
	return s.cursor(cur, err, what)
}

func (s watchedSource) FindRange(ctx context.Context, db, coll string, min, max bson.RawValue) (Cursor, error) {
	what := "read " + db + "." + coll
	end := s.w.call(what)
	cur, err := s.src.FindRange(ctx, db, coll, min, max)
	end()
	return s.cursor(cur, err, what)
}

// cursor watches the steps of cur, a cursor that reads what, until it is closed.
func (s watchedSource) cursor(cur Cursor, err error, what string) (Cursor, error) {
	if err != nil {
		return nil, err
	}
	return &watchedCursor{cur: cur, w: s.w, read: s.w.track(what)}, nil
}

func (s watchedSource) SampleIDs(ctx context.Context, db, coll string, n int) ([]bson.RawValue, error) {
	defer s.w.call("sample " + db + "." + coll + " for its partitions")()
	return s.src.SampleIDs(ctx, db, coll, n)
}

func (s watchedSource) ListIndexes(ctx context.Context, db, coll string) ([]bson.Raw, error) {
	defer s.w.call("list the indexes of " + db + "." + coll)()
	return s.src.ListIndexes(ctx, db, coll)
}

type watchedCursor struct {
	cur  Cursor
	w    *sourceWatch
	read *sourceRead
}

func (c *watchedCursor) Next(ctx context.Context) bool {
	c.w.start(c.read)
	ok := c.cur.Next(ctx)
	c.w.end(c.read)
	return ok
}

func (c *watchedCursor) Current() bson.Raw { return c.cur.Current() }
func (c *watchedCursor) Err() error        { return c.cur.Err() }

func (c *watchedCursor) Close(ctx context.Context) error {
	c.w.untrack(c.read)
	defer c.w.call("close the cursor of " + c.read.what)()
	return c.cur.Close(ctx)
}

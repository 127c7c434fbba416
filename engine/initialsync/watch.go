package initialsync

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// StallAfter is how long a source read may go unanswered before the shard's row
// says so. A stopped or unreachable shard often returns no error at all for a
// while (the driver waits for a server to select, a read on a link that drops
// packets waits for its timeout), so there is nothing to retry and, without this,
// nothing to show.
const StallAfter = 5 * time.Second

// sourceWatch notes the source reads in flight.
type sourceWatch struct {
	mu   sync.Mutex
	next uint64
	open map[uint64]sourceCall
	now  func() time.Time
}

type sourceCall struct {
	what  string
	since time.Time
}

func newSourceWatch(now func() time.Time) *sourceWatch {
	return &sourceWatch{open: map[uint64]sourceCall{}, now: now}
}

// begin notes a read of what; the returned func ends it.
func (w *sourceWatch) begin(what string) func() {
	w.mu.Lock()
	id := w.next
	w.next++
	w.open[id] = sourceCall{what: what, since: w.now()}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.open, id)
		w.mu.Unlock()
	}
}

// stalled describes the oldest read in flight for longer than after, or "".
func (w *sourceWatch) stalled(after time.Duration) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var oldest sourceCall
	for _, c := range w.open {
		if oldest.since.IsZero() || c.since.Before(oldest.since) {
			oldest = c
		}
	}
	if oldest.since.IsZero() || w.now().Sub(oldest.since) < after {
		return ""
	}
	return fmt.Sprintf("waiting: the source shard has not answered since %s (%s)", oldest.since.UTC().Format("15:04:05"), oldest.what)
}

// watchedSource is a Source whose every call, and every cursor step, is watched.
type watchedSource struct {
	src Source
	w   *sourceWatch
}

func (s watchedSource) Find(ctx context.Context, db, coll string, filter bson.D, order Order, simpleCollation bool) (Cursor, error) {
	end := s.w.begin("read " + db + "." + coll)
	cur, err := s.src.Find(ctx, db, coll, filter, order, simpleCollation)
	end()
	if err != nil {
		return nil, err
	}
	return watchedCursor{cur: cur, w: s.w, what: "read " + db + "." + coll}, nil
}

func (s watchedSource) FindRange(ctx context.Context, db, coll string, min, max bson.RawValue) (Cursor, error) {
	end := s.w.begin("read " + db + "." + coll)
	cur, err := s.src.FindRange(ctx, db, coll, min, max)
	end()
	if err != nil {
		return nil, err
	}
	return watchedCursor{cur: cur, w: s.w, what: "read " + db + "." + coll}, nil
}

func (s watchedSource) SampleIDs(ctx context.Context, db, coll string, n int) ([]bson.RawValue, error) {
	defer s.w.begin("sample " + db + "." + coll + " for its partitions")()
	return s.src.SampleIDs(ctx, db, coll, n)
}

func (s watchedSource) ListIndexes(ctx context.Context, db, coll string) ([]bson.Raw, error) {
	defer s.w.begin("list the indexes of " + db + "." + coll)()
	return s.src.ListIndexes(ctx, db, coll)
}

type watchedCursor struct {
	cur  Cursor
	w    *sourceWatch
	what string
}

func (c watchedCursor) Next(ctx context.Context) bool {
	defer c.w.begin(c.what)()
	return c.cur.Next(ctx)
}

func (c watchedCursor) Current() bson.Raw { return c.cur.Current() }
func (c watchedCursor) Err() error        { return c.cur.Err() }

func (c watchedCursor) Close(ctx context.Context) error {
	defer c.w.begin("close the cursor of " + c.what)()
	return c.cur.Close(ctx)
}

package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// docIter is a stream of result documents. Next returns ok=false at the end.
// Close releases what the stream holds (shard cursors); it is safe to call twice.
type docIter interface {
	Next(ctx context.Context) (doc bson.Raw, ok bool, err error)
	Close(ctx context.Context)
}

// sliceIter serves documents already in memory.
type sliceIter struct{ docs []bson.Raw }

func (s *sliceIter) Next(context.Context) (bson.Raw, bool, error) {
	if len(s.docs) == 0 {
		return nil, false, nil
	}
	d := s.docs[0]
	s.docs = s.docs[1:]
	return d, true, nil
}

func (s *sliceIter) Close(context.Context) { s.docs = nil }

// drain reads a whole stream into memory.
func drain(ctx context.Context, it docIter) ([]bson.Raw, error) {
	defer it.Close(context.WithoutCancel(ctx))
	var out []bson.Raw
	for {
		d, ok, err := it.Next(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, d)
	}
}

const (
	// defaultFirstBatch is MongoDB's first batch size when the client gives none.
	defaultFirstBatch = 101
	// maxBatchBytes keeps a reply under maxBsonObjectSize with room for the envelope.
	maxBatchBytes = 16*1024*1024 - 64*1024
	// cursorIdleTimeout is MongoDB's cursorTimeoutMillis default.
	cursorIdleTimeout = 10 * time.Minute
)

// cursorTable holds the router-side cursors of one server. Idle cursors are reaped
// when cursors are opened or continued, so the table needs no goroutine of its own.
type cursorTable struct {
	mu      sync.Mutex
	cursors map[int64]*routerCursor
}

type routerCursor struct {
	ns      string
	it      docIter
	pending bson.Raw // a document read but not sent because the batch was full
	busy    bool
	lastUse time.Time
}

func newCursorTable() *cursorTable {
	return &cursorTable{cursors: map[int64]*routerCursor{}}
}

// reply answers find/aggregate/listX with a first batch from it, keeping a cursor
// open when more documents remain.
func (t *cursorTable) reply(ctx context.Context, ns string, it docIter, batchSize int64, single bool) bson.Raw {
	if batchSize <= 0 {
		batchSize = defaultFirstBatch
	}
	c := &routerCursor{ns: ns, it: it}
	batch, done, err := c.batch(ctx, batchSize)
	if err != nil {
		it.Close(context.WithoutCancel(ctx))
		return wire.ErrorReply(err)
	}
	var id int64
	if done || single {
		it.Close(context.WithoutCancel(ctx))
	} else {
		id = t.add(ctx, c)
	}
	return cursorReply(ns, id, "firstBatch", batch)
}

func cursorReply(ns string, id int64, key string, batch []bson.Raw) bson.Raw {
	arr := make(bson.A, len(batch))
	for i, d := range batch {
		arr[i] = d
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{
		{Key: key, Value: arr},
		{Key: "id", Value: id},
		{Key: "ns", Value: ns},
	}})
}

func (t *cursorTable) add(ctx context.Context, c *routerCursor) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reapLocked(ctx)
	c.lastUse = time.Now()
	for {
		id := rand.Int64N(1<<62) + 1
		if _, taken := t.cursors[id]; !taken {
			t.cursors[id] = c
			return id
		}
	}
}

func (t *cursorTable) reapLocked(ctx context.Context) {
	now := time.Now()
	for id, c := range t.cursors {
		if !c.busy && now.Sub(c.lastUse) > cursorIdleTimeout {
			delete(t.cursors, id)
			c.it.Close(context.WithoutCancel(ctx))
		}
	}
}

// getMore answers {getMore: id, collection, batchSize}.
func (t *cursorTable) getMore(ctx context.Context, cmd *wire.Command) bson.Raw {
	idv := cmd.Lookup("getMore")
	id, ok := idv.Int64OK()
	if !ok {
		return wire.ErrorReply(wire.BadValue("getMore must be a cursor id (int64)"))
	}
	coll, _ := cmd.Lookup("collection").StringValueOK()
	ns := cmd.DB + "." + coll
	batchSize, _ := asInt64(cmd.Lookup("batchSize"))

	t.mu.Lock()
	t.reapLocked(ctx)
	c, found := t.cursors[id]
	switch {
	case !found:
		t.mu.Unlock()
		return wire.ErrorReply(wire.CursorNotFound(fmt.Sprintf("cursor id %d not found", id)))
	case c.ns != ns:
		t.mu.Unlock()
		return wire.ErrorReply(&wire.Error{Code: 13, Name: "Unauthorized",
			Msg: fmt.Sprintf("Requested getMore on namespace '%s', but cursor belongs to a different namespace %s", ns, c.ns)})
	case c.busy:
		t.mu.Unlock()
		return wire.ErrorReply(&wire.Error{Code: 292, Name: "CursorInUse", Msg: fmt.Sprintf("cursor id %d is already in use", id)})
	}
	c.busy = true
	t.mu.Unlock()

	batch, done, err := c.batch(ctx, batchSize)

	t.mu.Lock()
	c.busy = false
	c.lastUse = time.Now()
	if err != nil || done {
		delete(t.cursors, id)
	}
	t.mu.Unlock()
	if err != nil || done {
		c.it.Close(context.WithoutCancel(ctx))
	}
	if err != nil {
		return wire.ErrorReply(err)
	}
	if done {
		id = 0
	}
	return cursorReply(c.ns, id, "nextBatch", batch)
}

// batch reads up to n documents (n <= 0: as many as fit) and reports whether the
// stream is exhausted.
func (c *routerCursor) batch(ctx context.Context, n int64) ([]bson.Raw, bool, error) {
	var out []bson.Raw
	size := 0
	for n <= 0 || int64(len(out)) < n {
		d := c.pending
		c.pending = nil
		if d == nil {
			var ok bool
			var err error
			d, ok, err = c.it.Next(ctx)
			if err != nil {
				return nil, false, err
			}
			if !ok {
				return out, true, nil
			}
		}
		if len(out) > 0 && size+len(d) > maxBatchBytes {
			c.pending = d
			return out, false, nil
		}
		size += len(d)
		out = append(out, d)
	}
	// Look ahead so an exhausted stream closes with this batch (id 0), as MongoDB
	// does when the last document fits.
	d, ok, err := c.it.Next(ctx)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return out, true, nil
	}
	c.pending = d
	return out, false, nil
}

// kill answers {killCursors: coll, cursors: [ids]}.
func (t *cursorTable) kill(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := cmd.Lookup("killCursors").StringValueOK()
	ns := cmd.DB + "." + coll
	arr, ok := cmd.Lookup("cursors").ArrayOK()
	if !ok {
		return wire.ErrorReply(wire.BadValue("killCursors needs a cursors array"))
	}
	vals, _ := arr.Values()
	killed, notFound := bson.A{}, bson.A{}
	for _, v := range vals {
		if v.Type != bsontype.Int64 {
			continue
		}
		id := v.Int64()
		t.mu.Lock()
		c, found := t.cursors[id]
		if found && c.ns == ns && !c.busy {
			delete(t.cursors, id)
		} else {
			found = false
		}
		t.mu.Unlock()
		if found {
			c.it.Close(context.WithoutCancel(ctx))
			killed = append(killed, id)
		} else {
			notFound = append(notFound, id)
		}
	}
	return wire.OK(
		bson.E{Key: "cursorsKilled", Value: killed},
		bson.E{Key: "cursorsNotFound", Value: notFound},
		bson.E{Key: "cursorsAlive", Value: bson.A{}},
		bson.E{Key: "cursorsUnknown", Value: bson.A{}},
	)
}

// closeAll drops every cursor (router shutdown).
func (t *cursorTable) closeAll(ctx context.Context) {
	t.mu.Lock()
	cs := t.cursors
	t.cursors = map[int64]*routerCursor{}
	t.mu.Unlock()
	for _, c := range cs {
		c.it.Close(ctx)
	}
}

package replay

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// slowDelete is a destination that runs the first delete of one document for
// longer than its client waits, when the client set a deadline (a server under a
// long lock outlasts any), or else for a moment, and runs it to the end whatever its
// client does: when the client gives up on it, the server still runs it, and here it
// lands just after the next write of that document (the worst moment). A second
// copy of the delete sent meanwhile runs at once.
type slowDelete struct {
	*fakeDest
	id    string // idKey of the document whose first delete is slow
	mu    sync.Mutex
	sends int           // copies of the delete received
	late  []oplog.Write // the first copy, abandoned by its client, not yet run
}

func (d *slowDelete) deletes(writes []oplog.Write) bool {
	for _, w := range writes {
		if w.Kind == oplog.Delete && idKey(w.Filter.Lookup("_id")) == d.id {
			return true
		}
	}
	return false
}

func (d *slowDelete) Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	if d.deletes(writes) {
		d.mu.Lock()
		d.sends++
		first := d.sends == 1
		d.mu.Unlock()
		if first {
			runs := 100 * time.Millisecond
			if deadline, ok := ctx.Deadline(); ok {
				runs = time.Until(deadline) + time.Second
			}
			select {
			case <-time.After(runs): // the server finishes it and answers
			case <-ctx.Done(): // the client gave up on it; the server still runs it
				d.mu.Lock()
				d.late = writes
				d.mu.Unlock()
				return 0, ctx.Err()
			}
		}
		return d.fakeDest.Write(ctx, ns, writes)
	}
	n, err := d.fakeDest.Write(ctx, ns, writes)
	d.mu.Lock()
	late := d.late
	d.late = nil
	d.mu.Unlock()
	if late != nil {
		d.fakeDest.Write(context.Background(), ns, late)
	}
	return n, err
}

// A bulk write that the destination takes longer than its client's deadline to run
// (it has none) is never sent again while its first copy may still run there: sent again and
// answered, the document's next write would follow, and the first copy, landing
// after it, would take the document back (here: a delete removing the document
// inserted again after it).
func TestASlowWriteIsNotSentAgainWhileTheDestinationMayStillRunIt(t *testing.T) {
	entries := []bson.Raw{
		noopOp(at(1)),
		insertOp(at(2), ns, doc(1, 1)),
		deleteOp(at(3), ns, int32(1)),
		insertOp(at(4), ns, doc(1, 2)),
	}
	src := newFakeOplog(entries...)
	src.finite = true
	inner := newFakeDest()
	key, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(1)}})
	dest := &slowDelete{fakeDest: inner, id: idKey(bson.Raw(key).Lookup("_id"))}
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 1,
		DDL: startDDL(t, []string{"s0"}, &fakeExec{dest: inner})})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, ok := inner.docs(ns)[dest.id]
	if !ok || got.Map()["v"] != int32(2) {
		t.Errorf("document 1 is %v (present: %v), want its last insert (v 2): the delete's first copy ran after it", got, ok)
	}
	dest.mu.Lock()
	defer dest.mu.Unlock()
	if dest.sends != 1 {
		t.Errorf("the delete was sent %d times while the destination still ran its first copy, want once", dest.sends)
	}
}

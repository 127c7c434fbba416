package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// heldWrites is a destination gate that holds bulk writes until released,
// counting how many are held at once.
type heldWrites struct {
	release chan struct{}
	hold    func(writes []oplog.Write) bool // which to hold (nil: all)
	mu      sync.Mutex
	now     int
	most    int
}

func (h *heldWrites) gate(ctx context.Context, _ oplog.Namespace, writes []oplog.Write) error {
	if h.hold != nil && !h.hold(writes) {
		return nil
	}
	h.mu.Lock()
	h.now++
	h.most = max(h.most, h.now)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.now--
		h.mu.Unlock()
	}()
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *heldWrites) counts() (now, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now, h.most
}

func TestAnApplierKeepsPipelineBatchesInFlightOnASlowDestination(t *testing.T) {
	// One applier, a batch per write, 20 documents: while the destination answers
	// nothing, the applier has Pipeline (4) bulk writes in flight, never more, and
	// the resume point stays at the start; once answered, everything is applied.
	entries := []bson.Raw{noopOp(at(1))}
	for i := 2; i <= 21; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	src := newFakeOplog(entries...)
	src.finite = true
	dest := newFakeDest()
	held := &heldWrites{release: make(chan struct{})}
	dest.gate = held.gate
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 1, BatchWrites: 1, Pipeline: 4})
	wait := start(t, context.Background(), s)
	eventually(t, "4 bulk writes in flight at once", func() bool { now, _ := held.counts(); return now == 4 })
	if _, most := held.counts(); most != 4 {
		t.Fatalf("%d bulk writes in flight at once, want at most 4 (Pipeline)", most)
	}
	if got := s.Snapshot().Applied; got != at(1) {
		t.Fatalf("resume point %v while every write is unanswered, want %v", got, at(1))
	}
	close(held.release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if _, most := held.counts(); most != 4 {
		t.Fatalf("%d bulk writes in flight at once, want at most 4 (Pipeline)", most)
	}
	if n := len(dest.docs(ns)); n != 20 {
		t.Fatalf("%d documents, want 20", n)
	}
	if got := s.Snapshot().Applied; got != at(21) {
		t.Fatalf("resume point %v, want the last entry %v", got, at(21))
	}
}

func TestADocumentsWritesWaitForItsBatchInFlightWhileTheOthersGoOn(t *testing.T) {
	// One applier, batches of 2, 4 in flight. Document 1 is inserted (2), updated
	// (7), deleted (13) and inserted again (14) among inserts of documents 2 to 10;
	// the destination holds the bulk write of its first insert. The later (full)
	// batches of other documents are applied meanwhile; none of document 1's later
	// writes is sent while its insert is unanswered, and the resume point stays
	// before it. Once answered, document 1's writes land in oplog order.
	entries := []bson.Raw{
		noopOp(at(1)),
		insertOp(at(2), ns, doc(1, 2)),
	}
	for i := 2; i <= 5; i++ {
		entries = append(entries, insertOp(at(uint32(i+1)), ns, doc(i, 0)))
	}
	entries = append(entries, setOp(at(7), ns, int32(1), bson.D{{Key: "v", Value: int32(7)}}))
	for i := 6; i <= 10; i++ {
		entries = append(entries, insertOp(at(uint32(i+2)), ns, doc(i, 0)))
	}
	entries = append(entries, deleteOp(at(13), ns, int32(1)), insertOp(at(14), ns, doc(1, 14)))
	src := newFakeOplog(entries...)
	src.finite = true
	dest := newFakeDest()
	var once sync.Once
	held := &heldWrites{release: make(chan struct{}), hold: func(writes []oplog.Write) bool {
		first := false
		if slices.ContainsFunc(writes, func(w oplog.Write) bool { return w.Filter.Lookup("_id").Int32() == 1 }) {
			once.Do(func() { first = true })
		}
		return first
	}}
	dest.gate = held.gate
	s := testShard(t, Config{Source: src, Destination: dest, Resume: at(1), Appliers: 1, BatchWrites: 2, Pipeline: 4, Linger: time.Millisecond})
	wait := start(t, context.Background(), s)
	// Document 2 shares the held batch; 3 to 10 go in later ones.
	eventually(t, "documents 3 to 10 applied while document 1's insert is held", func() bool {
		docs := dest.docs(ns)
		for i := 3; i <= 10; i++ {
			if _, ok := docs[idKey(bsonInt(i))]; !ok {
				return false
			}
		}
		return true
	})
	for _, w := range dest.writes() {
		if idInt(w.id) == 1 {
			t.Fatalf("a write of document 1 (%v) applied while its insert is unanswered", w)
		}
	}
	if got := s.Snapshot().Applied; got != at(1) {
		t.Fatalf("resume point %v while the insert at %v is unanswered, want %v", got, at(2), at(1))
	}
	close(held.release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	var ones []int32
	for _, w := range dest.writes() {
		if idInt(w.id) == 1 {
			ones = append(ones, w.v)
		}
	}
	if want := []int32{2, 7, -1, 14}; !slices.Equal(ones, want) {
		t.Fatalf("document 1's writes left v %v, want %v (insert, update, delete, insert)", ones, want)
	}
	if n := len(dest.docs(ns)); n != 10 {
		t.Fatalf("%d documents, want 10", n)
	}
	if got := s.Snapshot().Applied; got != at(14) {
		t.Fatalf("resume point %v, want the last entry %v", got, at(14))
	}
}

// bsonInt is an int32 as a raw value, for idKey.
func bsonInt(i int) bson.RawValue {
	_, b, _ := bson.MarshalValue(int32(i))
	return bson.RawValue{Type: bson.TypeInt32, Value: b}
}

// roundTripDest is a fake destination a given round trip away (see RoundTripper).
type roundTripDest struct {
	*fakeDest
	rtt   time.Duration
	err   error
	asked atomic.Int32
}

func (d *roundTripDest) RoundTrip(context.Context) (time.Duration, error) {
	d.asked.Add(1)
	return d.rtt, d.err
}

func TestTheBatchesInFlightFollowTheDestinationsRoundTrip(t *testing.T) {
	// One applier, a batch per write, 20 documents, the destination answering
	// nothing: a destination 40 ms away (or one that cannot be timed) gets 4 bulk
	// writes at once, one on the same host gets one at a time, and Pipeline, when
	// set, is taken as it is without asking.
	for _, c := range []struct {
		name     string
		rtt      time.Duration
		err      error
		pipeline int
		want     int
		asked    int32
	}{
		{name: "40 ms away", rtt: 40 * time.Millisecond, want: 4, asked: 1},
		{name: "on the same host", rtt: 80 * time.Microsecond, want: 1, asked: 1},
		{name: "not timed", err: errors.New("ping: connection refused"), want: 4, asked: 1},
		{name: "pipeline set", rtt: 80 * time.Microsecond, pipeline: 2, want: 2, asked: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			entries := []bson.Raw{noopOp(at(1))}
			for i := 2; i <= 21; i++ {
				entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
			}
			src := newFakeOplog(entries...)
			src.finite = true
			dest := &roundTripDest{fakeDest: newFakeDest(), rtt: c.rtt, err: c.err}
			held := &heldWrites{release: make(chan struct{})}
			dest.gate = held.gate
			s := testShard(t, Config{Source: src, Destination: dest, DDL: startDDL(t, []string{"s0"}, &fakeExec{dest: dest.fakeDest}),
				Resume: at(1), Appliers: 1, BatchWrites: 1, Pipeline: c.pipeline})
			wait := start(t, context.Background(), s)
			eventually(t, "the replay's run", func() bool { return s.Snapshot().Pipeline != 0 })
			if got := s.Snapshot().Pipeline; got != c.want {
				t.Fatalf("%d batches in flight per applier, want %d", got, c.want)
			}
			eventually(t, fmt.Sprintf("%d bulk writes in flight at once", c.want), func() bool { now, _ := held.counts(); return now == c.want })
			close(held.release)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			if _, most := held.counts(); most != c.want {
				t.Fatalf("%d bulk writes in flight at once, want at most %d", most, c.want)
			}
			if n := dest.asked.Load(); n != c.asked {
				t.Fatalf("the round trip was timed %d times, want %d", n, c.asked)
			}
			if n := len(dest.docs(ns)); n != 20 {
				t.Fatalf("%d documents, want 20", n)
			}
		})
	}
}

package replay

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/topology"
)

// catalogs are the sharded collections the fake source and destination list.
type catalogs struct {
	mu       sync.Mutex
	src, dst []topology.Collection
	events   []string // "key shop.orders", "newest" in the order the watcher asked
}

func (c *catalogs) list(which *[]topology.Collection) func(context.Context) ([]topology.Collection, error) {
	return func(context.Context) ([]topology.Collection, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Clone(*which), nil
	}
}

func (c *catalogs) note(e string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

// shardingExec records the sharding DDL and then lists the collection sharded on
// the fake destination, as prepare.EnsureShardKey leaves it.
type shardingExec struct {
	c   *catalogs
	ran chan string
}

func (e *shardingExec) Exec(_ context.Context, d oplog.DDL) error {
	var key bson.D
	if err := bson.Unmarshal(d.Options.Lookup("key").Document(), &key); err != nil {
		return err
	}
	e.c.mu.Lock()
	e.c.dst = slices.DeleteFunc(e.c.dst, func(c topology.Collection) bool { return c.Namespace == d.NS.String() })
	e.c.dst = append(e.c.dst, topology.Collection{Namespace: d.NS.String(), Key: key})
	e.c.mu.Unlock()
	e.ran <- d.Kind.String() + " " + d.NS.String()
	return nil
}

// A DDL no shard read is due only once every shard has applied past its ts, the
// namespaces it holds for a DDL of its own included: the position it reports for
// the other shards' DDL, which leaves those aside, is not enough.
func TestScheduledDDLWaitsForWhatEveryShardApplied(t *testing.T) {
	o := NewDDLOnce([]string{"s0", "s1"}, &fakeExec{}, nil)
	var outcome []error
	o.Schedule(ts(105, 0), oplog.DDL{Kind: oplog.DDLShardCollection, NS: oplog.Namespace{DB: "shop", Coll: "orders"}}, func(err error) { outcome = append(outcome, err) })
	o.Position("s0", ts(200, 0))
	o.Position("s1", ts(200, 0)) // s1 holds shop.orders for its create: its writes there wait
	o.Applied("s0", ts(106, 0))
	o.Applied("s1", ts(105, 0))
	if due := o.dueScheduled(); len(due) != 0 {
		t.Fatalf("due while s1 has not applied past 105: %+v", due)
	}
	o.Applied("s1", ts(106, 0))
	if due := o.dueScheduled(); len(due) != 1 || due[0].ddl.Kind != oplog.DDLShardCollection {
		t.Fatalf("due %+v, want the shardCollection once both applied past 105", due)
	}
	if due := o.dueScheduled(); len(due) != 0 {
		t.Fatalf("handed out twice: %+v", due)
	}
}

// The metadata watcher (the only way 3.6 to 4.4 tell a sharding during the sync)
// makes the replays use the new key first, then reads the source's newest ts and
// schedules the destination's sharding for once every shard applied past it: the
// writes translated without the key are all applied while the destination
// collection still takes them. A refine follows the same way; nothing is
// scheduled twice.
func TestMetadataWatcherShardsTheDestinationOnceTheReplaysPassedTheNewKey(t *testing.T) {
	c := &catalogs{}
	exec := &shardingExec{c: c, ran: make(chan string, 4)}
	ddl := startDDL(t, []string{"s0", "s1"}, exec)
	keys := map[string][]string{}
	var newest uint32 = 105
	w := &ShardKeyWatch{
		Source: c.list(&c.src), Destination: c.list(&c.dst),
		Newest:     func(context.Context) (primitive.Timestamp, error) { c.note("newest"); return ts(newest, 0), nil },
		DDL:        ddl,
		KeyChanged: func(ns string, fields []string) { c.note("key " + ns); keys[ns] = fields },
	}
	ctx := context.Background()
	applied := func(at uint32) {
		ddl.Applied("s0", ts(at, 0))
		ddl.Applied("s1", ts(at, 0))
	}

	// Nothing sharded on the source that the destination lacks: nothing to do.
	c.src = []topology.Collection{{Namespace: "shop.carts", Key: bson.D{{Key: "_id", Value: "hashed"}}}}
	c.dst = []topology.Collection{{Namespace: "shop.carts", Key: bson.D{{Key: "_id", Value: "hashed"}}}}
	if err := w.Check(ctx); err != nil || len(c.events) != 0 {
		t.Fatalf("Check = %v, events %v; want nothing done", err, c.events)
	}

	c.src = append(c.src, topology.Collection{Namespace: "shop.orders", Key: bson.D{{Key: "customerId", Value: 1}}})
	if err := w.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.events, []string{"key shop.orders", "newest"}) || !slices.Equal(keys["shop.orders"], []string{"customerId"}) {
		t.Fatalf("events %v, keys %v; want the new key before the newest ts is read", c.events, keys)
	}
	if err := w.Check(ctx); err != nil || len(c.events) != 2 {
		t.Fatalf("a second Check while it waits: %v, events %v; want nothing scheduled again", err, c.events)
	}
	applied(106)
	if got := <-exec.ran; got != "shardCollection shop.orders" {
		t.Fatalf("ran %q, want shardCollection", got)
	}

	// The source refines the key; the destination follows.
	c.mu.Lock()
	c.src[1].Key = bson.D{{Key: "customerId", Value: 1}, {Key: "day", Value: 1}}
	c.mu.Unlock()
	newest = 110
	if err := w.Check(ctx); err != nil {
		t.Fatal(err)
	}
	applied(111)
	if got := <-exec.ran; got != "refineCollectionShardKey shop.orders" {
		t.Fatalf("ran %q, want the refine", got)
	}
	if !slices.Equal(keys["shop.orders"], []string{"customerId", "day"}) {
		t.Errorf("keys after the refine: %v", keys["shop.orders"])
	}
	if err := w.Check(ctx); err != nil || len(c.events) != 4 {
		t.Errorf("Check once the destination has the key: %v, events %v", err, c.events)
	}
}

// A check that cannot read the newest ts schedules nothing and tries again.
func TestMetadataWatcherRetriesWhenTheOplogCannotBeRead(t *testing.T) {
	c := &catalogs{src: []topology.Collection{{Namespace: "shop.orders", Key: bson.D{{Key: "k", Value: 1}}}}}
	fail := true
	var scheduled []oplog.DDL
	w := &ShardKeyWatch{
		Source: c.list(&c.src), Destination: c.list(&c.dst),
		Newest: func(context.Context) (primitive.Timestamp, error) {
			if fail {
				return primitive.Timestamp{}, errors.New("shard s1 unreachable")
			}
			return ts(5, 0), nil
		},
		DDL:        schedulerFunc(func(_ primitive.Timestamp, d oplog.DDL) { scheduled = append(scheduled, d) }),
		KeyChanged: func(string, []string) {},
	}
	if err := w.Check(context.Background()); err == nil || len(scheduled) != 0 {
		t.Fatalf("Check = %v with %d scheduled; want the error and nothing scheduled", err, len(scheduled))
	}
	fail = false
	if err := w.Check(context.Background()); err != nil || len(scheduled) != 1 || scheduled[0].Kind != oplog.DDLShardCollection {
		t.Fatalf("Check = %v, scheduled %+v", err, scheduled)
	}
}

type schedulerFunc func(primitive.Timestamp, oplog.DDL)

func (f schedulerFunc) Schedule(ts primitive.Timestamp, d oplog.DDL, _ func(error)) { f(ts, d) }

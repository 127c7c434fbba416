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
// the fake destination, as prepare.EnsureShardKey leaves it; it notes where the
// shards' replays were when it ran.
type shardingExec struct {
	c         *catalogs
	positions func() string
	ran       chan string
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
	e.ran <- d.Kind.String() + " " + d.NS.String() + " after " + e.positions()
	return nil
}

// The metadata watcher (the only way 3.6 to 5.x tell a sharding during the sync)
// makes the replays use the new key first, then shards the destination only once
// every shard has replayed past the source's newest entry at that moment: the
// writes translated without the key are all applied while the destination
// collection still takes them. A refine follows the same way; nothing is
// scheduled twice.
func TestMetadataWatcherShardsTheDestinationAfterTheReplaysCaughtUp(t *testing.T) {
	c := &catalogs{}
	var posMu sync.Mutex
	reported := []string{}
	exec := &shardingExec{c: c, ran: make(chan string, 4), positions: func() string {
		posMu.Lock()
		defer posMu.Unlock()
		return reported[len(reported)-1]
	}}
	ddl := startDDL(t, []string{"s0", "s1"}, exec)
	position := func(shard string, at uint32) {
		posMu.Lock()
		reported = append(reported, shard+"@"+string(rune('0'+at-100)))
		posMu.Unlock()
		ddl.Position(shard, ts(at, 0))
	}
	keys := map[string][]string{}
	w := &ShardKeyWatch{
		Source: c.list(&c.src), Destination: c.list(&c.dst),
		Newest:     func(context.Context) (primitive.Timestamp, error) { c.note("newest"); return ts(105, 0), nil },
		DDL:        ddl,
		KeyChanged: func(ns string, fields []string) { c.note("key " + ns); keys[ns] = fields },
	}
	ctx := context.Background()
	position("s0", 101)
	position("s1", 101)

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
	position("s0", 106) // past the newest ts of 105
	position("s1", 105) // not past it
	position("s1", 106)
	if got := <-exec.ran; got != "shardCollection shop.orders after s1@6" {
		t.Fatalf("ran %q, want shardCollection once s1 passed 105", got)
	}

	// The source refines the key; the destination follows.
	c.src[1].Key = bson.D{{Key: "customerId", Value: 1}, {Key: "day", Value: 1}}
	if err := w.Check(ctx); err != nil {
		t.Fatal(err)
	}
	position("s0", 107)
	position("s1", 107)
	if got := <-exec.ran; got != "refineCollectionShardKey shop.orders after s1@7" {
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

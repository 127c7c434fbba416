package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/router"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// The router sends a write command's statements to the shards in child batches, as
// mongos's batch write executor does (sandbox/router/batchwrite.go).

// shardWrite is one write command a router sent a shard.
type shardWrite struct {
	shard   string
	name    string  // insert, update or delete
	keys    []int32 // the number each statement's filter (an insert's document) starts with
	stmtIDs []int32 // the stmtIds of a retryable write
}

func (w shardWrite) String() string {
	return fmt.Sprintf("%s %s %v", w.shard, w.name, w.keys)
}

// shardWrites are the write commands on database app that a router sends its shards,
// seen by the command monitor of its driver connections to them.
type shardWrites struct {
	mu     sync.Mutex
	byAddr map[string]string // shard address -> shard name
	sent   []shardWrite
}

func (s *shardWrites) started(_ context.Context, e *event.CommandStartedEvent) {
	field := map[string]string{"insert": "documents", "update": "updates", "delete": "deletes"}[e.CommandName]
	if field == "" || e.DatabaseName != "app" {
		return
	}
	addr, _, _ := strings.Cut(e.ConnectionID, "[")
	w := shardWrite{shard: s.byAddr[addr], name: e.CommandName}
	for _, stmt := range values(e.Command.Lookup(field)) {
		doc := stmt.Document()
		if e.CommandName != "insert" {
			doc = doc.Lookup("q").Document()
		}
		key, _ := doc.Index(0).Value().AsInt32OK()
		w.keys = append(w.keys, key)
	}
	for _, id := range values(e.Command.Lookup("stmtIds")) {
		w.stmtIDs = append(w.stmtIDs, id.Int32())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, w)
}

// take returns the commands named name ("": all) sent since the last take, and
// forgets them all.
func (s *shardWrites) take(name string) []shardWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []shardWrite
	for _, w := range s.sent {
		if name == "" || w.name == name {
			out = append(out, w)
		}
	}
	s.sent = nil
	return out
}

// monitoredRouter starts a second router of the cluster, whose driver connections to
// the shards report the write commands it sends them, and connects to it.
func monitoredRouter(t *testing.T, c *Cluster) (*mongo.Client, *shardWrites) {
	t.Helper()
	writes := &shardWrites{byAddr: map[string]string{}}
	for _, s := range c.Shards() {
		writes.byAddr[s.Addr] = s.Name
	}
	cfg := c.routerConfig()
	base := cfg.ClientOptions
	cfg.ClientOptions = func() *options.ClientOptions {
		return base().SetMonitor(&event.CommandMonitor{Started: writes.started})
	}
	rt, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wire.Listen(wire.Config{Addr: anyPort, Handler: rt})
	if err != nil {
		rt.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		rt.Close()
	})
	return connect(t, options.Client().SetHosts([]string{srv.Addr()})), writes
}

// hashedCollection shards app.<name> on hashed _id over both shards, holding documents
// _id 0 to n-1 with {n: 0}, and returns it with each _id's shard.
func hashedCollection(t *testing.T, cl *mongo.Client, name string, n int) (*mongo.Collection, []string) {
	t.Helper()
	run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "app"}, {Key: "primaryShard", Value: "source-shard0"}})
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app." + name}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}})
	coll := cl.Database("app").Collection(name)
	insertNumbered(t, coll, n)
	pattern, chunks := chunkMap(t, cl, "app."+name)
	shardOf := make([]string, n)
	for i := range n {
		key, err := pattern.Extract(rawDoc(t, bson.D{{Key: "_id", Value: int32(i)}}))
		if err != nil {
			t.Fatal(err)
		}
		shardOf[i], _ = chunks.Owner(key)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(shardOf)))) != 2 {
		t.Fatalf("the _ids of app.%s are all on one shard: %v", name, shardOf)
	}
	return coll, shardOf
}

// insertNumbered inserts {_id: i, n: 0} for i in [0, n).
func insertNumbered(t *testing.T, coll *mongo.Collection, n int) {
	t.Helper()
	var docs []any
	for i := range n {
		docs = append(docs, bson.D{{Key: "_id", Value: int32(i)}, {Key: "n", Value: int32(0)}})
	}
	if _, err := coll.InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
}

func rawDoc(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// incByID are updateOne {_id: i} {$inc: {n: 1}} for each i.
func incByID(ids ...int) []mongo.WriteModel {
	var ms []mongo.WriteModel
	for _, i := range ids {
		ms = append(ms, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: int32(i)}}).
			SetUpdate(bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int32(1)}}}}))
	}
	return ms
}

func deleteOneByID(ids ...int) []mongo.WriteModel {
	var ms []mongo.WriteModel
	for _, i := range ids {
		ms = append(ms, mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: int32(i)}}))
	}
	return ms
}

func upTo(n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	return ids
}

// wantBatches are the child batches of a command of statements named by ids: an
// ordered command's are the runs of consecutive ids on one shard; an unordered one's,
// one per shard (by shard name), each in the client's order.
func wantBatches(name string, shardOf []string, ids []int, ordered bool) []shardWrite {
	var out []shardWrite
	for _, i := range ids {
		k := len(out) - 1
		if !ordered {
			k = slices.IndexFunc(out, func(w shardWrite) bool { return w.shard == shardOf[i] })
		}
		if k < 0 || out[k].shard != shardOf[i] {
			out = append(out, shardWrite{shard: shardOf[i], name: name})
			k = len(out) - 1
		}
		out[k].keys = append(out[k].keys, int32(i))
	}
	if !ordered {
		slices.SortFunc(out, func(a, b shardWrite) int { return strings.Compare(a.shard, b.shard) })
	}
	return out
}

// sameWrites compares the commands sent with the ones wanted (shard, name, keys),
// sorting them first when their order is the shards' own (unordered commands).
func sameWrites(got, want []shardWrite, sorted bool) bool {
	if sorted {
		got = slices.Clone(got)
		slices.SortFunc(got, func(a, b shardWrite) int { return strings.Compare(a.shard, b.shard) })
	}
	return slices.EqualFunc(got, want, func(a, b shardWrite) bool {
		return a.shard == b.shard && a.name == b.name && slices.Equal(a.keys, b.keys)
	})
}

// A command of single-shard statements reaches each shard as one command per child
// batch: an unsharded collection's as one command, a sharded collection's unordered
// statements as one command per shard, its ordered ones as one per run of consecutive
// statements for one shard.
func TestWritesReachEachShardAsChildBatches(t *testing.T) {
	c := startCluster(t, Options{})
	cl, writes := monitoredRouter(t, c)
	ctx := context.Background()
	const n = 40

	plain := cl.Database("app").Collection("plain")
	insertNumbered(t, plain, n)
	if got := writes.take("insert"); len(got) != 1 || len(got[0].keys) != n {
		t.Errorf("an insert of %d documents on an unsharded collection reached the shards as %v, want one command", n, got)
	}
	for _, ordered := range []bool{true, false} {
		if res, err := plain.BulkWrite(ctx, incByID(upTo(n)...), options.BulkWrite().SetOrdered(ordered)); err != nil || res.ModifiedCount != n {
			t.Fatalf("ordered %v: %+v, %v", ordered, res, err)
		}
		if got := writes.take("update"); len(got) != 1 || got[0].shard != "source-shard0" || len(got[0].keys) != n {
			t.Errorf("ordered %v: %d updates on an unsharded collection reached the shards as %v, want one command to its primary shard", ordered, n, got)
		}
	}

	hashed, shardOf := hashedCollection(t, cl, "hashed", n)
	writes.take("")
	for _, ordered := range []bool{true, false} {
		want := wantBatches("update", shardOf, upTo(n), ordered)
		if res, err := hashed.BulkWrite(ctx, incByID(upTo(n)...), options.BulkWrite().SetOrdered(ordered)); err != nil || res.ModifiedCount != n {
			t.Fatalf("ordered %v: %+v, %v", ordered, res, err)
		}
		if got := writes.take("update"); !sameWrites(got, want, !ordered) {
			t.Errorf("ordered %v: the updates reached the shards as\n%v\nwant\n%v", ordered, got, want)
		}
	}
	for _, ordered := range []bool{true, false} {
		half := upTo(n / 2)
		if !ordered {
			half = upTo(n)[n/2:]
		}
		want := wantBatches("delete", shardOf, half, ordered)
		if res, err := hashed.BulkWrite(ctx, deleteOneByID(half...), options.BulkWrite().SetOrdered(ordered)); err != nil || res.DeletedCount != int64(len(half)) {
			t.Fatalf("ordered %v: %+v, %v", ordered, res, err)
		}
		if got := writes.take("delete"); !sameWrites(got, want, !ordered) {
			t.Errorf("ordered %v: the deletes reached the shards as\n%v\nwant\n%v", ordered, got, want)
		}
	}
	if n, _ := hashed.CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("%d documents left after deleting them all", n)
	}
}

// numbers reads n of every document of coll by _id.
func numbers(t *testing.T, coll *mongo.Collection) map[int32]int32 {
	t.Helper()
	out := map[int32]int32{}
	for _, d := range findAll(t, coll, bson.D{}) {
		if n, ok := d.Lookup("n").Int32OK(); ok {
			out[d.Lookup("_id").Int32()] = n
		}
	}
	return out
}

// writeErrorIndexes are the statement indexes of a bulk write's write errors.
func writeErrorIndexes(err error) []int {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) {
		return nil
	}
	var out []int
	for _, we := range bwe.WriteErrors {
		out = append(out, we.Index)
	}
	return out
}

// A statement failing on its shard in the middle of a child batch: an ordered command
// applies the statements before it and none after it, on any shard (no batch after its
// own is sent); an unordered one applies all the others. The write error carries the
// client's index, not the batch's.
func TestAFailingStatementStopsOnlyAnOrderedCommand(t *testing.T) {
	c := startCluster(t, Options{})
	cl, writes := monitoredRouter(t, c)
	ctx := context.Background()
	const n, bad = 30, 17
	for _, ordered := range []bool{true, false} {
		coll, shardOf := hashedCollection(t, cl, fmt.Sprintf("errors_%v", ordered), n)
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: bad}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: "text"}}}}); err != nil {
			t.Fatal(err)
		}
		writes.take("")
		res, err := coll.BulkWrite(ctx, incByID(upTo(n)...), options.BulkWrite().SetOrdered(ordered))
		if got := writeErrorIndexes(err); !slices.Equal(got, []int{bad}) {
			t.Fatalf("ordered %v: %v, want one write error at index %d", ordered, err, bad)
		}
		want := wantBatches("update", shardOf, upTo(n), ordered)
		if ordered {
			failed := slices.IndexFunc(want, func(w shardWrite) bool { return slices.Contains(w.keys, bad) })
			want = want[:failed+1]
		}
		if k := slices.Index(want[len(want)-1].keys, bad); ordered && k == 0 {
			t.Fatalf("_id %d starts its child batch %v: choose another", bad, want)
		}
		if got := writes.take("update"); !sameWrites(got, want, !ordered) {
			t.Errorf("ordered %v: the updates reached the shards as\n%v\nwant\n%v", ordered, got, want)
		}
		applied := n - 1
		if ordered {
			applied = bad
		}
		if res.ModifiedCount != int64(applied) {
			t.Errorf("ordered %v: nModified %d, want %d", ordered, res.ModifiedCount, applied)
		}
		for id, v := range numbers(t, coll) {
			want := int32(1)
			if ordered && id > bad {
				want = 0 // never tried
			}
			if v != want {
				t.Errorf("ordered %v: _id %d has n %d, want %d", ordered, id, v, want)
			}
		}
	}
}

// Replace-upserts by _id, half of them of documents that exist: the upserted _ids are
// reported at the client's indexes of the statements that inserted them.
func TestUpsertedIDsCarryTheClientsIndexes(t *testing.T) {
	c := startCluster(t, Options{})
	cl, writes := monitoredRouter(t, c)
	ctx := context.Background()
	const n = 40
	for _, ordered := range []bool{true, false} {
		coll, shardOf := hashedCollection(t, cl, fmt.Sprintf("upserts_%v", ordered), n)
		if _, err := coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: n / 2}}}}); err != nil {
			t.Fatal(err)
		}
		var ms []mongo.WriteModel
		var ids []int
		want := map[int64]any{}
		for i := range n {
			id := (i * 7) % n // existing (< n/2) and new _ids mixed over both shards
			ids = append(ids, id)
			ms = append(ms, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: int32(id)}}).
				SetReplacement(bson.D{{Key: "n", Value: int32(i)}}).SetUpsert(true))
			if id >= n/2 {
				want[int64(i)] = int32(id)
			}
		}
		writes.take("")
		res, err := coll.BulkWrite(ctx, ms, options.BulkWrite().SetOrdered(ordered))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := writes.take("update"), wantBatches("update", shardOf, ids, ordered); !sameWrites(got, want, !ordered) {
			t.Errorf("ordered %v: the upserts reached the shards as\n%v\nwant\n%v", ordered, got, want)
		}
		if res.MatchedCount != n/2 || res.UpsertedCount != n/2 || len(res.UpsertedIDs) != len(want) {
			t.Fatalf("ordered %v: %+v", ordered, res)
		}
		for i, id := range want {
			if res.UpsertedIDs[i] != id {
				t.Errorf("ordered %v: upserted[%d] = %v, want %v", ordered, i, res.UpsertedIDs[i], id)
			}
		}
	}
}

// A retryable update and delete command sent again (a driver retrying after a lost
// answer) is applied once: each child batch carries its statements' ids, the client's
// indexes, which the shards log and know again.
func TestARetriedBatchIsAppliedOnce(t *testing.T) {
	c := startCluster(t, Options{})
	cl, writes := monitoredRouter(t, c)
	ctx := context.Background()
	const n = 24
	coll, _ := hashedCollection(t, cl, "retried", n)
	// Two documents per group g: a deleteOne by g is pinned to g's shard and deletes
	// the other document when it runs again.
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.groups"}, {Key: "key", Value: bson.D{{Key: "g", Value: "hashed"}}}})
	groups := cl.Database("app").Collection("groups")
	var docs []any
	for i := range n {
		docs = append(docs, bson.D{{Key: "g", Value: int32(i / 2)}, {Key: "_id", Value: int32(i)}})
	}
	if _, err := groups.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	var updates, deletes bson.A
	for i := range n {
		updates = append(updates, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: int32(i)}}}, {Key: "u", Value: bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int32(1)}}}}}})
	}
	for g := range n / 2 {
		deletes = append(deletes, bson.D{{Key: "q", Value: bson.D{{Key: "g", Value: int32(g)}}}, {Key: "limit", Value: int32(1)}})
	}
	update := bson.D{{Key: "update", Value: "retried"}, {Key: "updates", Value: updates}, {Key: "ordered", Value: false}, {Key: "txnNumber", Value: int64(5)}}
	del := bson.D{{Key: "delete", Value: "groups"}, {Key: "deletes", Value: deletes}, {Key: "ordered", Value: false}, {Key: "txnNumber", Value: int64(6)}}
	sess, err := cl.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	writes.take("")
	mongo.WithSession(ctx, sess, func(sc mongo.SessionContext) error {
		for _, cmd := range []bson.D{update, del} {
			// The driver sends the command again: same session, txnNumber, statements.
			for attempt := range 2 {
				reply, err := cl.Database("app").RunCommand(sc, cmd).Raw()
				if err != nil || reply.Lookup("writeErrors").Type != 0 {
					t.Fatalf("%s, attempt %d: %s, %v", cmd[0].Key, attempt, reply, err)
				}
				if got := reply.Lookup("n").AsInt64(); got != int64(len(cmd[1].Value.(bson.A))) {
					t.Errorf("%s, attempt %d: answered %s", cmd[0].Key, attempt, reply)
				}
				// Statement i of each command names _id i (g i).
				sent := writes.take("")
				if len(sent) != 2 {
					t.Errorf("%s, attempt %d: reached the shards as %v, want one child batch per shard", cmd[0].Key, attempt, sent)
				}
				for _, w := range sent {
					if !slices.Equal(w.stmtIDs, w.keys) {
						t.Errorf("%s, attempt %d: a child batch to %s of statements %v carries stmtIds %v, want their client indexes", cmd[0].Key, attempt, w.shard, w.keys, w.stmtIDs)
					}
				}
			}
		}
		return nil
	})
	for id, v := range numbers(t, coll) {
		if v != 1 {
			t.Errorf("_id %d has n %d after the retried update, want 1", id, v)
		}
	}
	if left, _ := groups.CountDocuments(ctx, bson.D{}); left != n/2 {
		t.Errorf("%d documents left after the retried deletes, want %d", left, n/2)
	}
}

// An ordered command mixing statements the router runs alone (an updateOne without the
// shard key, a broadcast, a shard key change) with targeted ones: each runs in its place,
// seeing what the statements before it wrote, and the targeted ones around it go in
// child batches. A failing statement run alone stops an ordered command too.
func TestStatementsRunAloneKeepTheirPlace(t *testing.T) {
	c := startCluster(t, Options{})
	cl, writes := monitoredRouter(t, c)
	ctx := context.Background()
	coll := shardedCollection(t, c, cl, bson.D{{Key: "k", Value: 1}})
	splitAndMove(t, cl) // k < 50 on shard0, k >= 50 on shard1
	var docs []any
	for i := range 100 {
		docs = append(docs, bson.D{{Key: "_id", Value: int32(i)}, {Key: "k", Value: int32(i)}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	set := func(f string, v any) bson.D { return bson.D{{Key: "$set", Value: bson.D{{Key: f, Value: v}}}} }
	byK := func(k int32) bson.D { return bson.D{{Key: "k", Value: k}} }
	writes.take("")
	res, err := coll.BulkWrite(ctx, []mongo.WriteModel{
		mongo.NewUpdateOneModel().SetFilter(byK(1)).SetUpdate(set("tag", "a")),                              // 0: shard0
		mongo.NewUpdateOneModel().SetFilter(byK(2)).SetUpdate(set("tag", "a")),                              // 1: shard0, same batch
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "tag", Value: "a"}}).SetUpdate(set("seen", true)),  // 2: alone, finds 1 or 2
		mongo.NewUpdateOneModel().SetFilter(byK(60)).SetUpdate(set("tag", "b")),                             // 3: shard1
		mongo.NewUpdateManyModel().SetFilter(bson.D{{Key: "tag", Value: "b"}}).SetUpdate(set("seen", true)), // 4: broadcast, sees 3
		mongo.NewUpdateOneModel().SetFilter(byK(61)).SetUpdate(set("k", int32(5))),                          // 5: alone, moves _id 61 to shard0
		mongo.NewUpdateManyModel().SetFilter(byK(5)).SetUpdate(set("seen", true)),                           // 6: shard0, sees 5
		mongo.NewUpdateOneModel().SetFilter(byK(70)).SetUpdate(set("tag", "c")),                             // 7: shard1
	})
	if err != nil || res.MatchedCount != 9 || res.ModifiedCount != 9 {
		t.Fatalf("the mixed command: %+v, %v; want 9 matched and modified", res, err)
	}
	seen := findAll(t, coll, bson.D{{Key: "seen", Value: true}})
	var ids []int32
	for _, d := range seen {
		ids = append(ids, d.Lookup("_id").Int32())
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int32{1, 5, 60, 61}) && !slices.Equal(ids, []int32{2, 5, 60, 61}) {
		t.Errorf("seen by _id %v, want 1 or 2 (the statement without the shard key), 5 and 61 (after the move), 60 (the broadcast)", ids)
	}
	// The updates the shards got, in order: the batch of 0 and 1, then one command per
	// statement up to 6 and 7 (the move is an insert and a delete, no update); 2 goes
	// by the _id of the document it found.
	want := []string{"source-shard0 update [1 2]", fmt.Sprintf("source-shard0 update [%d]", ids[0]), "source-shard1 update [60]",
		"source-shard0 update [0]", "source-shard1 update [0]", "source-shard0 update [5]", "source-shard1 update [70]"}
	var got []string
	for _, w := range writes.take("update") {
		got = append(got, w.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("the updates reached the shards as\n%q\nwant\n%q", got, want)
	}

	// An upsert without the shard key fails where the router runs it alone.
	for _, ordered := range []bool{true, false} {
		_, err := coll.BulkWrite(ctx, []mongo.WriteModel{
			mongo.NewUpdateOneModel().SetFilter(byK(10)).SetUpdate(set("ordered", ordered)),
			mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "tag", Value: "none"}}).SetUpdate(set("x", 1)).SetUpsert(true),
			mongo.NewUpdateOneModel().SetFilter(byK(11)).SetUpdate(set("ordered", ordered)),
		}, options.BulkWrite().SetOrdered(ordered))
		if got := writeErrorIndexes(err); !slices.Equal(got, []int{1}) {
			t.Fatalf("ordered %v: %v, want a write error at index 1", ordered, err)
		}
		n, _ := coll.CountDocuments(ctx, bson.D{{Key: "ordered", Value: ordered}})
		if want := map[bool]int64{true: 1, false: 2}[ordered]; n != want {
			t.Errorf("ordered %v: %d statements applied, want %d", ordered, n, want)
		}
	}
}

// A transaction's command of statements for both shards goes in child batches that join
// each shard to the transaction: the commit applies them all, an abort none.
func TestChildBatchesJoinTheTransaction(t *testing.T) {
	c := startCluster(t, Options{})
	cl, writes := monitoredRouter(t, c)
	ctx := context.Background()
	const n = 20
	coll, shardOf := hashedCollection(t, cl, "txn", n)
	writes.take("")
	for _, commit := range []bool{true, false} {
		sess, err := cl.StartSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.StartTransaction(); err != nil {
			t.Fatal(err)
		}
		sc := mongo.NewSessionContext(ctx, sess)
		if res, err := coll.BulkWrite(sc, incByID(upTo(n)...), options.BulkWrite().SetOrdered(false)); err != nil || res.ModifiedCount != n {
			t.Fatalf("commit %v: %+v, %v", commit, res, err)
		}
		if got, want := writes.take("update"), wantBatches("update", shardOf, upTo(n), false); !sameWrites(got, want, true) {
			t.Errorf("commit %v: the transaction's updates reached the shards as\n%v\nwant\n%v", commit, got, want)
		}
		if commit {
			err = sess.CommitTransaction(ctx)
		} else {
			err = sess.AbortTransaction(ctx)
		}
		sess.EndSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	for id, v := range numbers(t, coll) {
		if v != 1 {
			t.Errorf("_id %d has n %d after a committed and an aborted transaction, want 1", id, v)
		}
	}

	// A statement failing in a transaction fails the command and ends the transaction.
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: int32(2)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: "text"}}}}); err != nil {
		t.Fatal(err)
	}
	sess, err := cl.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	_, err = sess.WithTransaction(ctx, func(sc mongo.SessionContext) (any, error) {
		return coll.BulkWrite(sc, incByID(0, 1, 2, 3))
	})
	if err == nil {
		t.Fatal("a transaction whose statement fails committed")
	}
	if got := numbers(t, coll); got[0] != 1 || got[1] != 1 {
		t.Errorf("after the failed transaction: %v, want n 1 for _id 0 and 1", got)
	}
}

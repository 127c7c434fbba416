package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Replay against real servers: two sandbox clusters, or the clusters named by
// SHARDLIFT_TEST_SOURCE_URI and SHARDLIFT_TEST_DESTINATION_URI (which must not hold the
// seed data set's namespaces: the test writes them).

type clusters struct {
	src, dst *mongo.Client
	shards   []sourceShard
	sandbox  *sandbox.Cluster // the source, when it is a sandbox
}

type sourceShard struct {
	name   string
	client *mongo.Client // to the shard's primary (or its replica set)
}

func startClusters(t testing.TB, opts sandbox.Options) *clusters {
	t.Helper()
	ctx := context.Background()
	c := &clusters{}
	srcURI, dstURI := os.Getenv("SHARDLIFT_TEST_SOURCE_URI"), os.Getenv("SHARDLIFT_TEST_DESTINATION_URI")
	if srcURI == "" || dstURI == "" {
		src, err := sandbox.Start(ctx, "source", opts)
		if err != nil {
			t.Fatalf("start the source sandbox: %v", err)
		}
		t.Cleanup(func() { src.Close() })
		dst, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: opts.Shards})
		if err != nil {
			t.Fatalf("start the destination sandbox: %v", err)
		}
		t.Cleanup(func() { dst.Close() })
		srcURI, dstURI, c.sandbox = src.URI(), dst.URI(), src
	}
	c.src, c.dst = connect(t, srcURI), connect(t, dstURI)
	var reply struct {
		Shards []struct {
			ID   string `bson:"_id"`
			Host string `bson:"host"`
		} `bson:"shards"`
	}
	if err := c.src.Database("admin").RunCommand(ctx, bson.D{{Key: "listShards", Value: 1}}).Decode(&reply); err != nil {
		t.Fatalf("listShards on the source: %v", err)
	}
	for _, s := range reply.Shards {
		rs, hosts, _ := strings.Cut(s.Host, "/")
		ep := topology.Endpoint{URI: srcURI}.ForHosts(strings.Split(hosts, ","), rs)
		// A sandbox just started on a loaded machine can take longer than one
		// connect's timeout to answer (once under a load average of 34).
		client, err := topology.Connect(ctx, ep)
		for deadline := time.Now().Add(2 * time.Minute); err != nil && time.Now().Before(deadline); {
			t.Logf("connect to shard %s: %v; again", s.ID, err)
			client, err = topology.Connect(ctx, ep)
		}
		if err != nil {
			t.Fatalf("connect to shard %s: %v", s.ID, err)
		}
		t.Cleanup(func() { client.Disconnect(context.Background()) })
		c.shards = append(c.shards, sourceShard{name: s.ID, client: client})
	}
	return c
}

func connect(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(context.Background(), options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client
}

// checkpoints is an in-memory Checkpointer.
type checkpoints struct {
	mu sync.Mutex
	ts map[string]primitive.Timestamp
}

func (c *checkpoints) SaveApplied(shard string, at replay.OpTime) error {
	ts := at.TS
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ts == nil {
		c.ts = map[string]primitive.Timestamp{}
	}
	c.ts[shard] = ts
	return nil
}

func (c *checkpoints) get(shard string) (primitive.Timestamp, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, ok := c.ts[shard]
	return ts, ok
}

// sink records what was relaxed.
type sink struct{}

func (sink) IndexRelaxed(oplog.Namespace, bson.Raw) error    { return nil }
func (sink) OptionsWithheld(oplog.Namespace, bson.Raw) error { return nil }

func keyFields() func(oplog.Namespace) []string {
	fields := map[oplog.Namespace][]string{}
	for _, c := range seed.Collections() {
		if c.Key != nil {
			fields[oplog.Namespace{DB: c.DB, Coll: c.Name}] = c.KeyFields()
		}
	}
	return func(ns oplog.Namespace) []string { return fields[ns] }
}

// migration replays every source shard into the destination.
type migration struct {
	c      *clusters
	t0, cp map[string]primitive.Timestamp
	cps    *checkpoints
	ddl    *replay.DDLOnce
	shards []*replay.Shard
	errs   chan error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newest(t testing.TB, c *clusters) map[string]primitive.Timestamp {
	t.Helper()
	out := map[string]primitive.Timestamp{}
	for _, s := range c.shards {
		ts, err := replay.NewMongoSource(s.client, replay.MongoSourceOptions{}).Newest(context.Background())
		if err != nil {
			t.Fatalf("newest entry of shard %s: %v", s.name, err)
		}
		out[s.name] = ts
	}
	return out
}

// start runs a Shard per source shard, each from its checkpoint (or T0).
func (m *migration) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	var names []string
	for _, s := range m.c.shards {
		names = append(names, s.name)
	}
	m.ddl = replay.NewDDLOnce(names, replay.NewMongoDDL(m.c.dst, sink{}), nil)
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.ddl.Run(ctx) }()
	m.shards = nil
	m.errs = make(chan error, len(m.c.shards))
	for _, s := range m.c.shards {
		resume, ok := m.cps.get(s.name)
		if !ok {
			resume = m.t0[s.name]
		}
		sh, err := replay.New(replay.Config{
			Shard:            s.name,
			Source:           replay.NewMongoSource(s.client, replay.MongoSourceOptions{}),
			Destination:      replay.NewMongoDestination(m.c.dst),
			DDL:              m.ddl,
			Checkpoints:      m.cps,
			Resume:           resume,
			ConsistencyPoint: m.cp[s.name],
			Translator:       oplog.Config{KeyFields: keyFields()},
		})
		if err != nil {
			t.Fatal(err)
		}
		m.shards = append(m.shards, sh)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := sh.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				m.errs <- err
			}
		}()
	}
}

// kill cancels every shard without a final checkpoint, as kill -9 would.
func (m *migration) kill() {
	m.cancel()
	m.wg.Wait()
}

// stop stops every shard cleanly.
func (m *migration) stop(t testing.TB) {
	t.Helper()
	for _, s := range m.shards {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}
	m.cancel()
	m.wg.Wait()
}

// waitCaughtUp waits until every shard applied up to the source's newest entry
// and reports a lag of 0.
func (m *migration) waitCaughtUp(t testing.TB) {
	t.Helper()
	target := newest(t, m.c)
	deadline := time.Now().Add(2 * time.Minute)
	for i, s := range m.c.shards {
		for p := m.shards[i].Snapshot(); p.Applied.Before(target[s.name]) || p.Lag != 0; p = m.shards[i].Snapshot() {
			select {
			case err := <-m.errs:
				t.Fatalf("replay failed: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("shard %s still behind: %+v, want %v", s.name, m.shards[i].Snapshot(), target[s.name])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// copyData copies every seed collection's documents, as an initial sync would,
// while the load runs: some are read in a later state than the oplog's position.
func copyData(t testing.TB, c *clusters) {
	t.Helper()
	ctx := context.Background()
	for _, coll := range seed.Collections() {
		cur, err := c.src.Database(coll.DB).Collection(coll.Name).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var batch []any
		flush := func() {
			if len(batch) == 0 {
				return
			}
			_, err := c.dst.Database(coll.DB).Collection(coll.Name).InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
			if err != nil && !mongo.IsDuplicateKeyError(err) {
				t.Fatalf("copy %s.%s: %v", coll.DB, coll.Name, err)
			}
			batch = batch[:0]
		}
		for cur.Next(ctx) {
			batch = append(batch, bson.Raw(append([]byte(nil), cur.Current...)))
			if len(batch) == 500 {
				flush()
			}
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		flush()
	}
}

// compare checks every seed namespace document by document, byte for byte.
func compare(t testing.TB, c *clusters) {
	t.Helper()
	ctx := context.Background()
	read := func(client *mongo.Client, db, coll string) map[string]bson.Raw {
		cur, err := client.Database(db).Collection(coll).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bson.Raw{}
		for cur.Next(ctx) {
			out[cur.Current.Lookup("_id").String()] = append(bson.Raw(nil), cur.Current...)
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	total := 0
	bad := map[string]bool{}
	for _, coll := range seed.Collections() {
		src, dst := read(c.src, coll.DB, coll.Name), read(c.dst, coll.DB, coll.Name)
		total += len(src)
		for id, s := range src {
			d, ok := dst[id]
			switch {
			case !ok:
				t.Errorf("%s.%s: document %s missing on the destination", coll.DB, coll.Name, id)
			case !bytes.Equal(s, d):
				t.Errorf("%s.%s: document %s differs:\n  source      %s\n  destination %s", coll.DB, coll.Name, id, s, d)
			default:
				continue
			}
			bad[id] = true
		}
		for id := range dst {
			if _, ok := src[id]; !ok {
				t.Errorf("%s.%s: document %s only on the destination", coll.DB, coll.Name, id)
				bad[id] = true
			}
		}
	}
	t.Logf("compared %d documents", total)
	if len(bad) > 0 && len(bad) <= 5 {
		// What the source's oplogs say about them, to tell a replay fault from a
		// source that lost an entry.
		for _, s := range c.shards {
			cur, err := s.client.Database("local").Collection("oplog.rs").Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			for cur.Next(ctx) {
				if bad[cur.Current.Lookup("o", "_id").String()] || bad[cur.Current.Lookup("o2", "_id").String()] {
					t.Logf("oplog of %s: %s", s.name, cur.Current)
				}
			}
		}
	}
}

var loadSeed uint64

func runLoad(t testing.TB, c *clusters, rate int) (stop func() *load.Stats) {
	stop, _ = runLoadCounted(t, c, rate)
	return stop
}

// runLoadCounted is runLoad that also gives the load's counts as it runs.
func runLoadCounted(t testing.TB, c *clusters, rate int) (stop func() *load.Stats, stats *load.Stats) {
	ctx, cancel := context.WithCancel(context.Background())
	stats = &load.Stats{}
	done := make(chan error, 1)
	loadSeed++
	rnd := rand.New(rand.NewPCG(7, loadSeed))
	go func() { done <- load.Run(ctx, c.src, rate, rnd, stats) }()
	return func() *load.Stats {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("load: %v", err)
		}
		return stats
	}, stats
}

func TestReplayConvergesUnderLoadAndAcrossAKill(t *testing.T) {
	c := startClusters(t, sandbox.Options{Shards: 2})
	ctx := context.Background()
	if _, err := seed.Populate(ctx, c.src, 600, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatalf("seed the source: %v", err)
	}
	if _, err := seed.Populate(ctx, c.dst, 0, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatalf("create the collections on the destination: %v", err)
	}
	m := &migration{c: c, cps: &checkpoints{}, t0: newest(t, c)}
	stopLoad := runLoad(t, c, 300)
	time.Sleep(500 * time.Millisecond) // writes between T0 and the copy
	copyData(t, c)
	m.cp = newest(t, c)

	m.start(t)
	time.Sleep(1500 * time.Millisecond)
	m.kill()
	for _, s := range c.shards {
		ts, ok := m.cps.get(s.name)
		t.Logf("shard %s killed; checkpoint %v (saved: %v), T0 %v", s.name, ts, ok, m.t0[s.name])
	}
	// The source moves on while nothing replays. The restart waits as a restarted
	// process would: the killed one's last bulk writes may still be running on the
	// destination (the sandbox applies about a thousand writes a second).
	time.Sleep(1500 * time.Millisecond)
	m.start(t)
	time.Sleep(1500 * time.Millisecond)
	stats := stopLoad()
	t.Logf("load: %v", stats)
	m.waitCaughtUp(t)
	var applied int64
	for _, s := range m.shards {
		p := s.Snapshot()
		applied += p.Inserts + p.Updates + p.Deletes
		t.Logf("%s: %+v", p.Shard, p)
	}
	m.stop(t)
	if applied == 0 {
		t.Fatal("nothing was replayed after the kill")
	}
	compare(t, c)
}

func TestReplayRetriesWhileASourceShardIsDown(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("needs a source shard that can be stopped: the sandbox")
	}
	c := startClusters(t, sandbox.Options{Shards: 2})
	ctx := context.Background()
	if _, err := seed.Populate(ctx, c.src, 300, rand.New(rand.NewPCG(5, 6))); err != nil {
		t.Fatalf("seed the source: %v", err)
	}
	if _, err := seed.Populate(ctx, c.dst, 0, rand.New(rand.NewPCG(5, 6))); err != nil {
		t.Fatalf("create the collections on the destination: %v", err)
	}
	m := &migration{c: c, cps: &checkpoints{}, t0: newest(t, c)}
	copyData(t, c)
	m.cp = newest(t, c)
	m.start(t)
	stopLoad, writes := runLoadCounted(t, c, 300)
	// The replay must have writes to catch up with after the outage: wait for them
	// (a second's sleep stopped the load before its first write on a busy machine).
	deadline := time.Now().Add(time.Minute)
	for writes.Total() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("the load made %d writes in a minute (%d failed, last: %v)", writes.Total(), writes.Errors(), writes.LastError())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The load stops first. Its last writes, abandoned by the client, may still run
	// on the router: a sandbox shard stops between two writes (never between a
	// write's data and its oplog entry), so they land whole or fail whole.
	t.Logf("load: %v", stopLoad())
	name := c.shards[0].name
	if err := c.sandbox.StopShard(name); err != nil {
		t.Fatalf("stop shard %s: %v", name, err)
	}
	deadline = time.Now().Add(time.Minute)
	for !strings.HasPrefix(m.shards[0].Snapshot().Retrying, "retrying: ") {
		if time.Now().After(deadline) {
			t.Fatalf("shard %s down, and its replay does not say it retries: %+v", name, m.shards[0].Snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("shard %s down: %s", name, m.shards[0].Snapshot().Retrying)
	if err := c.sandbox.RestartShard(name); err != nil {
		t.Fatalf("restart shard %s: %v", name, err)
	}
	for m.shards[0].Snapshot().Retrying != "" {
		if time.Now().After(deadline) {
			t.Fatalf("shard %s back, and its replay still retries: %+v", name, m.shards[0].Snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.waitCaughtUp(t)
	m.stop(t)
	compare(t, c)
}

func TestOplogGapOnResumeAfterTheOplogRolledOver(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("needs a source whose oplog can be made to roll over: the sandbox")
	}
	c := startClusters(t, sandbox.Options{Shards: 1, OplogSize: 64 << 10})
	ctx := context.Background()
	coll := c.src.Database("gap").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	m := &migration{c: c, cps: &checkpoints{}, t0: newest(t, c), cp: newest(t, c)}
	m.start(t)
	for i := 1; i <= 10; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	m.waitCaughtUp(t)
	m.stop(t)
	name := c.shards[0].name
	resume, _ := m.cps.get(name)
	// While the replay is stopped the source writes several times its oplog's size.
	pad := strings.Repeat("x", 1000)
	for i := 11; i < 400; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: pad}}); err != nil {
			t.Fatal(err)
		}
	}
	m.start(t)
	var err error
	select {
	case err = <-m.errs:
	case <-time.After(time.Minute):
		t.Fatal("the replay resumed past a gap")
	}
	m.kill()
	if !errors.Is(err, replay.ErrOplogGap) {
		t.Fatalf("error %v, want ErrOplogGap", err)
	}
	want := fmt.Sprintf("the oplog of shard %s no longer reaches back to %s (Timestamp(%d, %d)): restart this shard",
		name, time.Unix(int64(resume.T), 0).UTC().Format("2006-01-02 15:04:05 UTC"), resume.T, resume.I)
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

// BenchmarkReplayBacklog replays a backlog of mixed entries (inserts, $v: 2 updates,
// deletes) into a sandbox destination, and sends the same writes directly as ordered
// bulk writes from one goroutine, for comparison.
func BenchmarkReplayBacklog(b *testing.B) {
	c := startClusters(b, sandbox.Options{Shards: 2})
	ctx := context.Background()
	backlog, n := mixedBacklog(b, 1000, 1500, 500)
	coll := c.dst.Database("bench").Collection("c")
	b.Run("replay", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if err := coll.Drop(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			ddl := replay.NewDDLOnce([]string{"bench"}, replay.NewMongoDDL(c.dst, nil), nil)
			dctx, cancel := context.WithCancel(ctx)
			go ddl.Run(dctx)
			s, err := replay.New(replay.Config{Shard: "bench", Source: replay.NewReaderSource(bytes.NewReader(backlog)),
				Destination: replay.NewMongoDestination(c.dst), DDL: ddl})
			if err != nil {
				b.Fatal(err)
			}
			err = s.Run(ctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "entries/s")
		}
	})
	b.Run("direct-bulk", func(b *testing.B) {
		models := directModels(b, backlog)
		for b.Loop() {
			b.StopTimer()
			if err := coll.Drop(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			for i := 0; i < len(models); i += 99 {
				if _, err := coll.BulkWrite(ctx, models[i:min(i+99, len(models))]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(models))/time.Since(start).Seconds(), "writes/s")
		}
	})
}

// mixedBacklog builds concatenated raw oplog entries on bench.c: inserts of about
// 300-byte documents, then $v: 2 updates of them, then deletes.
func mixedBacklog(b *testing.B, inserts, updates, deletes int) ([]byte, int) {
	var buf []byte
	ts := uint32(1_700_000_000)
	add := func(d bson.D) {
		ts++
		d = append(bson.D{{Key: "ts", Value: primitive.Timestamp{T: ts, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}}, d...)
		raw, err := bson.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		buf = append(buf, raw...)
	}
	r := rand.New(rand.NewPCG(3, 4))
	pad := strings.Repeat("p", 250)
	// ObjectId _ids, as most collections have (and the only kind, with strings, that
	// FerretDB finds without a collection scan).
	oid := func(i int) primitive.ObjectID {
		var id primitive.ObjectID
		id[0], id[10], id[11] = 0x65, byte(i>>8), byte(i)
		return id
	}
	for i := range inserts {
		add(bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "bench.c"}, {Key: "o", Value: bson.D{
			{Key: "_id", Value: oid(i)}, {Key: "n", Value: int32(0)}, {Key: "pad", Value: pad}}}})
	}
	for i := range updates {
		add(bson.D{{Key: "op", Value: "u"}, {Key: "ns", Value: "bench.c"},
			{Key: "o", Value: bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "n", Value: int32(i)}}}}}}},
			{Key: "o2", Value: bson.D{{Key: "_id", Value: oid(r.IntN(inserts))}}}})
	}
	for i := range deletes {
		add(bson.D{{Key: "op", Value: "d"}, {Key: "ns", Value: "bench.c"}, {Key: "o", Value: bson.D{{Key: "_id", Value: oid(i)}}}})
	}
	return buf, inserts + updates + deletes
}

// directModels translates the backlog into the driver models a client would send.
func directModels(b *testing.B, backlog []byte) []mongo.WriteModel {
	tr := oplog.NewTranslator(oplog.Config{})
	var models []mongo.WriteModel
	for len(backlog) > 0 {
		raw := bson.Raw(backlog[:int(uint32(backlog[0])|uint32(backlog[1])<<8|uint32(backlog[2])<<16|uint32(backlog[3])<<24)])
		backlog = backlog[len(raw):]
		e, err := oplog.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		items, err := tr.Process(&e, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, it := range items {
			w := it.Write
			switch w.Kind {
			case oplog.InsertReplace:
				models = append(models, mongo.NewReplaceOneModel().SetFilter(w.Filter).SetReplacement(w.Replacement).SetUpsert(true))
			case oplog.Update:
				models = append(models, mongo.NewUpdateOneModel().SetFilter(w.Filter).SetUpdate(w.Update))
			case oplog.Delete:
				models = append(models, mongo.NewDeleteOneModel().SetFilter(w.Filter))
			}
		}
	}
	return models
}

// Rule "open transactions at T0", on a sandbox shard's oplog: from any link of a
// transaction's chain that more entries follow, TxnChainStart reads back, entry by
// entry on the primary, to the chain's first entry.
func TestTxnChainStartOnAShardsOplog(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("needs a source that logs a transaction of one operation per entry: the sandbox")
	}
	c := startClusters(t, sandbox.Options{Shards: 1, TxnOpsPerEntry: 1})
	ctx := context.Background()
	coll := c.src.Database("txn").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	sess, err := c.src.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	if _, err := sess.WithTransaction(ctx, func(sc mongo.SessionContext) (any, error) {
		for i := 1; i <= 3; i++ {
			if _, err := coll.InsertOne(sc, bson.D{{Key: "_id", Value: i}}); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}); err != nil {
		t.Fatalf("the transaction: %v", err)
	}
	src := replay.NewMongoSource(c.shards[0].client, replay.MongoSourceOptions{})
	raws, _, err := src.After(ctx, primitive.Timestamp{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var links []primitive.Timestamp // the transaction's entries, oldest first
	for _, raw := range raws {
		if raw.Lookup("lsid").Type != 0 && raw.Lookup("o", "applyOps").Type != 0 {
			t, i, _ := raw.Lookup("ts").TimestampOK()
			links = append(links, primitive.Timestamp{T: t, I: i})
		}
	}
	if len(links) != 3 {
		t.Fatalf("the transaction logged %d applyOps entries, want 3 (one operation each)", len(links))
	}
	for i, at := range links {
		want := links[0]
		if i == len(links)-1 {
			want = primitive.Timestamp{} // the last entry ends the chain
		}
		got, err := src.TxnChainStart(ctx, at)
		if err != nil || got != want {
			t.Errorf("entry %d at %v: chain start %v (%v), want %v", i, at, got, err, want)
		}
	}
}

package initialsync_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Integration tests run against two sandbox clusters, or against the real clusters
// named by these variables (whose destination they write to: use test clusters).
const (
	sourceEnv      = "SHARDLIFT_TEST_SOURCE_URI"
	destinationEnv = "SHARDLIFT_TEST_DESTINATION_URI"
)

// env is a source and a destination cluster with clients to their routers.
type env struct {
	src, dst       topology.Endpoint
	srcC, dstC     *mongo.Client
	srcTop, dstTop *topology.Cluster
	// dbs are the databases this test owns on the source; the plan is limited to them.
	dbs []string
	// orphans is true when the source leaves orphans behind on moveChunk.
	orphans bool
	// builds is the index build registry the shards' copiers share.
	builds *initialsync.IndexBuilds
}

func startEnv(t testing.TB, shards int) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{builds: initialsync.NewIndexBuilds()}
	srcURI, dstURI := os.Getenv(sourceEnv), os.Getenv(destinationEnv)
	if srcURI == "" || dstURI == "" {
		if testing.Short() {
			t.Skip("integration test: starts two sandbox clusters (set " + sourceEnv + " and " + destinationEnv + " to use real ones)")
		}
		var clusters [2]*sandbox.Cluster
		for i, name := range []string{"source", "destination"} {
			c, err := sandbox.Start(ctx, name, sandbox.Options{Shards: shards, Dir: t.TempDir(), LeaveOrphans: name == "source"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			clusters[i] = c
		}
		srcURI, dstURI, e.orphans = clusters[0].URI(), clusters[1].URI(), true
	}
	e.src, e.dst = topology.Endpoint{URI: srcURI, Timeout: 30 * time.Second}, topology.Endpoint{URI: dstURI, Timeout: 30 * time.Second}
	var err error
	if e.srcC, err = topology.Connect(ctx, e.src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srcC.Disconnect(context.Background()) })
	if e.dstC, err = topology.Connect(ctx, e.dst); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.dstC.Disconnect(context.Background()) })
	return e
}

// testDB names a database of this test run, unique so that real clusters' data is
// never touched.
func (e *env) testDB(t testing.TB, name string) string {
	db := fmt.Sprintf("sl_%s_%04x", name, rand.IntN(1<<16))
	e.dbs = append(e.dbs, db)
	t.Cleanup(func() {
		ctx := context.Background()
		e.srcC.Database(db).Drop(ctx)
		e.dstC.Database(db).Drop(ctx)
	})
	return db
}

// run runs a command on the source router.
func run(t testing.TB, c *mongo.Client, cmd bson.D) {
	t.Helper()
	if err := c.Database("admin").RunCommand(context.Background(), cmd).Err(); err != nil {
		t.Fatalf("%v: %v", cmd[0], err)
	}
}

// populate creates, on the source, a ranged collection spread over the shards with
// _ids of mixed types and (on the sandbox) orphans, an unsharded collection, a
// capped one and a few large documents; on the sandbox also the seed data set.
func (e *env) populate(t testing.TB, docs int) {
	t.Helper()
	ctx := context.Background()
	srcTop, err := topology.Discover(ctx, e.src)
	if err != nil {
		t.Fatal(err)
	}
	shards := srcTop.Shards
	db := e.testDB(t, "it")
	run(t, e.srcC, bson.D{{Key: "enableSharding", Value: db}, {Key: "primaryShard", Value: shards[0].Name}})
	ranged := db + ".ranged"
	run(t, e.srcC, bson.D{{Key: "shardCollection", Value: ranged}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	// n chunks [.., 100), [100, 200), ... on the shards in turn, the last two on the
	// last shard; the last chunk then moves to the first shard, leaving orphans.
	n := len(shards) + 1
	for i := 1; i < n; i++ {
		run(t, e.srcC, bson.D{{Key: "split", Value: ranged}, {Key: "middle", Value: bson.D{{Key: "k", Value: i * 100}}}})
	}
	for i := range n {
		to := shards[min(i, len(shards)-1)].Name
		run(t, e.srcC, bson.D{{Key: "moveChunk", Value: ranged}, {Key: "find", Value: bson.D{{Key: "k", Value: i * 100}}}, {Key: "to", Value: to}})
	}
	var batch []any
	for i := range n * 100 {
		var id any
		switch i % 3 {
		case 0:
			id = int32(i)
		case 1:
			id = fmt.Sprintf("id-%05d", i)
		default:
			id = primitive.NewObjectID()
		}
		batch = append(batch, bson.D{
			{Key: "_id", Value: id}, {Key: "k", Value: i},
			{Key: "tags", Value: bson.A{"a", i % 7}}, {Key: "nested", Value: bson.D{{Key: "x", Value: i}, {Key: "y", Value: "z"}}},
		})
	}
	if _, err := e.srcC.Database(db).Collection("ranged").InsertMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	run(t, e.srcC, bson.D{{Key: "moveChunk", Value: ranged}, {Key: "find", Value: bson.D{{Key: "k", Value: (n - 1) * 100}}}, {Key: "to", Value: shards[0].Name}})

	plain := e.srcC.Database(db).Collection("plain")
	batch = batch[:0]
	for i := range 500 {
		batch = append(batch, bson.D{{Key: "_id", Value: i}, {Key: "text", Value: strings.Repeat("p", 100+i)}})
	}
	if _, err := plain.InsertMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "text", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	if err := e.srcC.Database(db).RunCommand(ctx, bson.D{{Key: "create", Value: "capped"}, {Key: "capped", Value: true}, {Key: "size", Value: 1 << 20}}).Err(); err != nil {
		t.Fatal(err)
	}
	batch = batch[:0]
	for i := range 50 {
		batch = append(batch, bson.D{{Key: "_id", Value: 1000 - i}, {Key: "seq", Value: i}})
	}
	if _, err := e.srcC.Database(db).Collection("capped").InsertMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := e.srcC.Database(db).CreateView(ctx, "firstTen", "plain", bson.A{bson.D{{Key: "$match", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: 10}}}}}}}); err != nil {
		t.Fatal(err)
	}
	big := e.srcC.Database(db).Collection("big")
	for i, size := range []int{1 << 10, 9 << 20, 1 << 10} { // one above the 8 MiB batch limit
		if _, err := big.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "blob", Value: primitive.Binary{Data: bytes.Repeat([]byte{byte(i)}, size)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if e.orphans && docs > 0 {
		if _, err := seed.Populate(ctx, e.srcC, docs, rand.New(rand.NewPCG(1, 2))); err != nil {
			t.Fatal(err)
		}
		for _, c := range seed.Collections() {
			if !contains(e.dbs, c.DB) {
				e.dbs = append(e.dbs, c.DB)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// plan discovers both clusters and plans the migration of the test's databases.
func (e *env) plan(t testing.TB) *prepare.Plan {
	t.Helper()
	ctx := context.Background()
	var err error
	if e.srcTop, err = topology.Discover(ctx, e.src); err != nil {
		t.Fatal(err)
	}
	if e.dstTop, err = topology.Discover(ctx, e.dst); err != nil {
		t.Fatal(err)
	}
	p, err := prepare.NewPlan(e.srcTop, e.dstTop)
	if err != nil {
		t.Fatal(err)
	}
	return only(p, e.dbs)
}

// only limits a plan to some databases.
func only(p *prepare.Plan, dbs []string) *prepare.Plan {
	out := &prepare.Plan{}
	for _, d := range p.Databases {
		if contains(dbs, d.Name) {
			out.Databases = append(out.Databases, d)
		}
	}
	for _, c := range p.Collections {
		if contains(dbs, c.DB) {
			out.Collections = append(out.Collections, c)
		}
	}
	for _, s := range p.Shards {
		part := prepare.ShardPlan{Source: s.Source, Destination: s.Destination}
		for _, n := range s.Namespaces {
			if contains(dbs, n.DB) {
				part.Namespaces = append(part.Namespaces, n)
				part.Docs += n.Docs
				part.Bytes += n.Bytes
			}
		}
		out.Shards = append(out.Shards, part)
	}
	return out
}

// memory is an in-memory checkpoint and index sink, as the store would be.
type memory struct {
	mu       sync.Mutex
	progress map[string]map[string]initialsync.PartitionProgress
	relaxed  map[string][]bson.Raw
	saves    atomic.Int64
}

func newMemory() *memory {
	return &memory{progress: map[string]map[string]initialsync.PartitionProgress{}, relaxed: map[string][]bson.Raw{}}
}

func (m *memory) SaveCopyProgress(shard string, p map[string]initialsync.PartitionProgress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.progress[shard] = p
	m.saves.Add(1)
	return nil
}

func (m *memory) RelaxedIndex(ns string, original bson.Raw) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.relaxed[ns] = append(m.relaxed[ns], original)
	return nil
}

func (m *memory) RelaxedCollection(string, bson.Raw) error { return nil }

func (m *memory) saved(shard string) map[string]initialsync.PartitionProgress {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.progress[shard]
}

// shardClient connects directly to a source shard's primary, as the engine does.
func (e *env) shardClient(t testing.TB, name string) *mongo.Client {
	t.Helper()
	for _, s := range e.srcTop.Shards {
		if s.Name != name {
			continue
		}
		if s.Primary == "" {
			t.Fatalf("shard %s has no primary: %v", name, s.Oplog.Err)
		}
		c, err := topology.Connect(context.Background(), e.src.ForHosts([]string{s.Primary}, ""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Disconnect(context.Background()) })
		return c
	}
	t.Fatalf("no source shard %s", name)
	return nil
}

// copyShard runs one shard's copy and index builds; batchDocs 0 is the default.
func (e *env) copyShard(ctx context.Context, t testing.TB, p *prepare.Plan, shard string, mem *memory, dst initialsync.Destination, batchDocs int) (*initialsync.Copier, error) {
	sp, _ := p.Shard(shard)
	src := e.shardClient(t, shard)
	t0, err := initialsync.RecordT0(ctx, src)
	if err != nil {
		return nil, err
	}
	if t0.T == 0 {
		return nil, fmt.Errorf("T0 of shard %s is zero", shard)
	}
	if dst == nil {
		dst = initialsync.MongoDestination(e.dstC)
	}
	c, err := initialsync.New(initialsync.Config{
		Shard: sp, Source: initialsync.MongoSource(src, t0), Destination: dst,
		Saved: mem.saved(shard), Checkpoints: mem, Indexes: mem, IndexBuilds: e.builds, BatchDocs: batchDocs,
	})
	if err != nil {
		return nil, err
	}
	if err := c.Copy(ctx); err != nil {
		return c, err
	}
	consistent, err := initialsync.RecordT0(ctx, src)
	if err != nil {
		return c, err
	}
	if consistent.Before(t0) {
		return c, fmt.Errorf("shard %s: the consistency point %v is before T0 %v", shard, consistent, t0)
	}
	return c, c.BuildIndexes(ctx)
}

// copyAll copies every shard in parallel.
func (e *env) copyAll(t testing.TB, p *prepare.Plan, mem *memory) (orphans int64) {
	t.Helper()
	var g errgroup.Group
	var n atomic.Int64
	for _, s := range p.Shards {
		g.Go(func() error {
			c, err := e.copyShard(context.Background(), t, p, s.Source, mem, nil, 0)
			if c != nil {
				n.Add(c.Snapshot().Orphans)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return n.Load()
}

// all reads a collection through a router, sorted by _id.
func all(t testing.TB, c *mongo.Client, db, coll string, sort bson.D) []bson.Raw {
	t.Helper()
	cur, err := c.Database(db).Collection(coll).Find(context.Background(), bson.D{}, options.Find().SetSort(sort))
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	for cur.Next(context.Background()) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertEqual compares every collection of the plan, document by document (BSON
// bytes), as the routers return them: the source's router leaves orphans out.
func (e *env) assertEqual(t testing.TB, p *prepare.Plan) {
	t.Helper()
	for _, c := range p.Collections {
		if c.Type != "collection" {
			continue
		}
		sort := bson.D{{Key: "_id", Value: 1}}
		want, got := all(t, e.srcC, c.DB, c.Name, sort), all(t, e.dstC, c.DB, c.Name, sort)
		if len(got) != len(want) {
			t.Fatalf("%s: %d documents on the destination, %d on the source", c.NS(), len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: document %d differs:\nsource      %s\ndestination %s", c.NS(), i, trim(want[i]), trim(got[i]))
			}
		}
		if c.Capped {
			natural := bson.D{{Key: "$natural", Value: 1}}
			want, got := all(t, e.srcC, c.DB, c.Name, natural), all(t, e.dstC, c.DB, c.Name, natural)
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("capped %s: natural order differs at %d: %s vs %s", c.NS(), i, trim(want[i]), trim(got[i]))
				}
			}
		}
	}
}

func trim(d bson.Raw) string {
	s := d.String()
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// assertPrepared checks that every database's primary is the twin of its source
// primary, that collections and views have the source's options, and that the
// destination's chunks are split at every source boundary, each on the twin of
// its source shard.
func (e *env) assertPrepared(t testing.TB, p *prepare.Plan) {
	t.Helper()
	ctx := context.Background()
	for _, d := range p.Databases {
		var doc struct {
			Primary string `bson:"primary"`
		}
		if err := e.dstC.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: d.Name}}).Decode(&doc); err != nil {
			t.Fatalf("database %s on the destination: %v", d.Name, err)
		}
		if doc.Primary != d.Primary {
			t.Fatalf("database %s has its primary on %s, want %s (twin of %s)", d.Name, doc.Primary, d.Primary, d.SourcePrimary)
		}
	}
	for _, c := range p.Collections {
		specs, err := e.dstC.Database(c.DB).ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: c.Name}})
		if err != nil || len(specs) != 1 {
			t.Fatalf("%s on the destination: %v (%d found)", c.NS(), err, len(specs))
		}
		if specs[0].Type != c.Type {
			t.Fatalf("%s is a %s on the destination, a %s on the source", c.NS(), specs[0].Type, c.Type)
		}
		for _, opt := range []string{"capped", "size", "viewOn", "pipeline"} {
			want := c.Options.Lookup(opt)
			if got := specs[0].Options.Lookup(opt); want.Type != 0 && !got.Equal(want) {
				t.Fatalf("%s: option %s is %v on the destination, %v on the source", c.NS(), opt, got, want)
			}
		}
	}
	for _, c := range p.Collections {
		if !c.Sharded {
			continue
		}
		var coll struct {
			UUID bson.RawValue `bson:"uuid"`
		}
		if err := e.dstC.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: c.NS()}}).Decode(&coll); err != nil {
			t.Fatalf("%s is not sharded on the destination: %v", c.NS(), err)
		}
		cur, err := e.dstC.Database("config").Collection("chunks").Find(ctx, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "ns", Value: c.NS()}}, bson.D{{Key: "uuid", Value: coll.UUID}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		onDest := map[string]string{}
		for cur.Next(ctx) {
			lo, _ := cur.Current.Lookup("min").DocumentOK()
			shard, _ := cur.Current.Lookup("shard").StringValueOK()
			onDest[string(lo)] = shard
		}
		for _, ch := range c.Chunks {
			if got, want := onDest[string(ch.Min)], p.Twin(ch.Shard); got != want {
				t.Fatalf("%s: the chunk starting at %s is on destination shard %q, want %q (twin of %s)", c.NS(), bson.Raw(ch.Min), got, want, ch.Shard)
			}
		}
	}
}

func balancerMode(t testing.TB, c *mongo.Client) string {
	t.Helper()
	reply, err := c.Database("admin").RunCommand(context.Background(), bson.D{{Key: "balancerStatus", Value: 1}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	mode, _ := reply.Lookup("mode").StringValueOK()
	return mode
}

func TestMigrationCopyMakesTheDestinationEqualAndSurvivesRestarts(t *testing.T) {
	e := startEnv(t, 3)
	e.populate(t, 1500)
	ctx := context.Background()

	before := balancerMode(t, e.srcC)
	wasOn, err := prepare.StopBalancer(ctx, e.srcC)
	if err != nil {
		t.Fatal(err)
	}
	if mode := balancerMode(t, e.srcC); mode != "off" {
		t.Fatalf("balancer mode %q after StopBalancer, want off", mode)
	}
	t.Cleanup(func() {
		if err := prepare.RestoreBalancer(ctx, e.srcC, wasOn); err != nil {
			t.Error(err)
		}
	})

	p := e.plan(t)
	mem := newMemory()
	if err := prepare.Prepare(ctx, e.dstC, p, mem, nil, nil); err != nil {
		t.Fatal(err)
	}
	e.assertPrepared(t, p)
	if err := prepare.Prepare(ctx, e.dstC, p, mem, nil, nil); err != nil {
		t.Fatalf("Prepare run a second time: %v", err)
	}

	orphans := e.copyAll(t, p, mem)
	e.assertEqual(t, p)
	if e.orphans && orphans != 100 {
		t.Errorf("%d orphans skipped, want the 100 documents the last moveChunk left behind", orphans)
	}
	if mem.saves.Load() == 0 {
		t.Error("no checkpoint was saved")
	}
	plainNS := e.dbs[0] + ".plain"
	if len(mem.relaxed[plainNS]) != 1 || mem.relaxed[plainNS][0].Lookup("unique").Type == 0 {
		t.Errorf("relaxed originals of %s: %v, want its unique index as the source has it", plainNS, mem.relaxed[plainNS])
	}
	specs, err := e.dstC.Database(e.dbs[0]).Collection("plain").Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if s.Name == "text_1" && s.Unique != nil && *s.Unique {
			t.Errorf("index text_1 was built unique on the destination during the sync")
		}
	}

	t.Run("clear one shard and copy it again", func(t *testing.T) {
		shard := p.Shards[1].Source
		if err := prepare.ClearShard(ctx, e.dstC, p, shard, nil); err != nil {
			t.Fatal(err)
		}
		sp, _ := p.Shard(shard)
		for _, n := range sp.Namespaces {
			left, err := e.dstC.Database(n.DB).Collection(n.Name).CountDocuments(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			total, err := e.srcC.Database(n.DB).Collection(n.Name).CountDocuments(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Ranges == nil && left != 0 {
				t.Fatalf("%s (unsharded, on %s) still has %d documents", n.NS(), shard, left)
			}
			if n.Ranges != nil && (left == 0 || left >= total) {
				t.Fatalf("%s has %d of %d documents after clearing %s: only that shard's ranges must go", n.NS(), left, total, shard)
			}
		}
		delete(mem.progress, shard)
		if _, err := e.copyShard(ctx, t, p, shard, mem, nil, 0); err != nil {
			t.Fatal(err)
		}
		e.assertEqual(t, p)
	})

	t.Run("restore the balancer", func(t *testing.T) {
		if err := prepare.RestoreBalancer(ctx, e.srcC, wasOn); err != nil {
			t.Fatal(err)
		}
		if err := prepare.RestoreBalancer(ctx, e.srcC, wasOn); err != nil {
			t.Fatalf("RestoreBalancer twice: %v", err)
		}
		if mode := balancerMode(t, e.srcC); mode != before {
			t.Fatalf("balancer mode %q after restore, want %q as before", mode, before)
		}
	})

	t.Run("a resumed scan keeps the _ids of later type classes", func(t *testing.T) {
		e.resumeKeepsLaterTypeClasses(t, p)
	})

	t.Run("a cancelled copy resumes without loss or duplicates", func(t *testing.T) {
		if err := prepare.Wipe(ctx, e.dstC, "test", func(string) {}); err != nil {
			t.Fatal(err)
		}
		if has, dbs, err := prepare.HasUserData(ctx, e.dstC); err != nil || has {
			t.Fatalf("after Wipe the destination still holds %v (%v)", dbs, err)
		}
		e.builds = initialsync.NewIndexBuilds()
		if err := prepare.Prepare(ctx, e.dstC, p, mem, nil, nil); err != nil {
			t.Fatal(err)
		}
		mem := newMemory()
		// Each round cancels every shard's copy after n more batch writes, resuming
		// from what the rounds before saved. Where a round's cancellations happen to
		// leave no partition part-copied (every batch written belonged to partitions
		// that finished, or to none whose first batch was durable), the next round
		// cancels later: the test must resume at least one part-copied partition.
		interrupted := 0
		for round, n := 1, int64(5); interrupted == 0; round, n = round+1, n*2 {
			if round > 5 {
				t.Fatal("no partition was left part-copied by five rounds of cancellations: the test resumes nothing")
			}
			for _, s := range p.Shards {
				ctx, cancel := context.WithCancel(ctx)
				dst := &cancelAfter{Destination: initialsync.MongoDestination(e.dstC), n: n, cancel: cancel}
				_, err := e.copyShard(ctx, t, p, s.Source, mem, dst, 40)
				cancel()
				if err == nil && dst.calls.Load() > n {
					t.Fatalf("the copy of %s went on after it was cancelled", s.Source)
				}
			}
			for _, progress := range mem.progress {
				for _, pp := range progress {
					if !pp.Done && pp.Docs > 0 {
						interrupted++
					}
				}
			}
		}
		e.copyAll(t, p, mem)
		e.assertEqual(t, p)
	})
}

// resumeKeepsLaterTypeClasses resumes the copy of the first shard's part of the
// ranged collection (_ids of three types) after a string _id, into an emptied
// destination collection: exactly the documents after it in MongoDB's order must
// arrive, the ObjectIds included and the numbers left out.
func (e *env) resumeKeepsLaterTypeClasses(t *testing.T, p *prepare.Plan) {
	ctx := context.Background()
	db := e.dbs[0]
	sp, _ := p.Shard(p.Shards[0].Source)
	var part *prepare.ShardPlan
	for _, n := range sp.Namespaces {
		if n.NS() == db+".ranged" {
			part = &prepare.ShardPlan{Source: sp.Source, Destination: sp.Destination, Namespaces: []prepare.ShardNamespace{n}}
		}
	}
	if part == nil {
		t.Fatalf("shard %s has no part of %s.ranged", sp.Source, db)
	}
	if _, err := e.dstC.Database(db).Collection("ranged").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	last := bson.RawValue{Type: bson.TypeString, Value: bsoncore.AppendString(nil, "id-00049")}
	src := e.shardClient(t, sp.Source)
	var want []bson.Raw
	for _, d := range all(t, src, db, "ranged", bson.D{{Key: "_id", Value: 1}}) {
		id := d.Lookup("_id")
		if shardkey.Compare(bsoncore.Value{Type: id.Type, Data: id.Value}, bsoncore.Value{Type: last.Type, Data: last.Value}) > 0 {
			want = append(want, d)
		}
	}
	mem := newMemory()
	c, err := initialsync.New(initialsync.Config{
		Shard: part, Source: initialsync.MongoSource(src, primitive.Timestamp{}), Destination: initialsync.MongoDestination(e.dstC),
		Saved:       map[string]initialsync.PartitionProgress{db + ".ranged": {LastID: last}},
		Checkpoints: mem, Indexes: mem,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Copy(ctx); err != nil {
		t.Fatal(err)
	}
	got := all(t, e.dstC, db, "ranged", bson.D{{Key: "_id", Value: 1}})
	types := map[bsontype.Type]int{}
	for _, d := range got {
		types[d.Lookup("_id").Type]++
	}
	if len(got) != len(want) || types[bson.TypeObjectID] == 0 || types[bson.TypeString] == 0 || types[bson.TypeInt32] != 0 {
		t.Fatalf("resumed after \"id-00049\": %d documents copied (by _id type %v), want %d: the strings after it and every ObjectId, no number", len(got), types, len(want))
	}
}

// cancelAfter cancels the copy once n inserts went through, as a kill would.
type cancelAfter struct {
	initialsync.Destination
	n      int64
	calls  atomic.Int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Insert(ctx context.Context, db, coll string, docs []bson.Raw, ordered bool) error {
	err := c.Destination.Insert(ctx, db, coll, docs, ordered)
	if c.calls.Add(1) >= c.n {
		c.cancel()
	}
	return err
}

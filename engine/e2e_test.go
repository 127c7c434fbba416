package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// End-to-end tests run the whole lifecycle on two sandbox clusters, or on the real
// clusters these variables name (the destination is wiped: use test clusters).
const (
	sourceEnv      = "SHARDLIFT_TEST_SOURCE_URI"
	destinationEnv = "SHARDLIFT_TEST_DESTINATION_URI"
)

// e2e is a source seeded with the sandbox data set, a destination, and a write load.
type e2e struct {
	t          *testing.T
	src, dst   topology.Endpoint
	srcC, dstC *mongo.Client
	// srcBox and dstBox are the sandboxes, for tests that need them (nil on real
	// clusters).
	srcBox, dstBox *sandbox.Cluster
	stats          load.Stats
	stopLoad       context.CancelFunc
	loadDone       chan error
}

func startE2E(t *testing.T, docs int) *e2e {
	t.Helper()
	return startE2EWith(t, docs, "", nil)
}

// startE2EWith is startE2E with a source sandbox shaped by source; needs says what
// of the sandbox the test relies on, to skip it on real clusters.
func startE2EWith(t *testing.T, docs int, needs string, source func(*sandbox.Options)) *e2e {
	t.Helper()
	var shape func(string, *sandbox.Options)
	if source != nil {
		shape = func(side string, o *sandbox.Options) {
			if side == "source" {
				source(o)
			}
		}
	}
	return startE2EShaped(t, docs, needs, shape)
}

// startE2EShaped is startE2E with both sandboxes shaped by shape (side is "source"
// or "destination").
func startE2EShaped(t *testing.T, docs int, needs string, shape func(side string, o *sandbox.Options)) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts two sandbox clusters (set " + sourceEnv + " and " + destinationEnv + " to use real ones)")
	}
	ctx := context.Background()
	srcURI, dstURI := os.Getenv(sourceEnv), os.Getenv(destinationEnv)
	if (srcURI != "" && dstURI != "") && shape != nil {
		t.Skip("needs the sandbox: " + needs)
	}
	var srcBox, dstBox *sandbox.Cluster
	if srcURI == "" || dstURI == "" {
		var uris [2]string
		for i, name := range []string{"source", "destination"} {
			opts := sandbox.Options{Shards: 2, Dir: t.TempDir()}
			if shape != nil {
				shape(name, &opts)
			}
			if f := os.Getenv("SHARDLIFT_E2E_SANDBOX_LOG"); f != "" {
				w, err := os.Create(f + "." + name)
				if err != nil {
					t.Fatal(err)
				}
				opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			c, err := sandbox.Start(ctx, name, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			uris[i] = c.URI()
			if i == 0 {
				srcBox = c
			} else {
				dstBox = c
			}
		}
		srcURI, dstURI = uris[0], uris[1]
	}
	e := &e2e{t: t, src: topology.Endpoint{URI: srcURI, Timeout: 30 * time.Second}, dst: topology.Endpoint{URI: dstURI, Timeout: 30 * time.Second}, srcBox: srcBox, dstBox: dstBox}
	var err error
	if e.srcC, err = topology.Connect(ctx, e.src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srcC.Disconnect(context.Background()) })
	if e.dstC, err = topology.Connect(ctx, e.dst); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.dstC.Disconnect(context.Background()) })
	present, err := seed.Present(ctx, e.srcC)
	if err != nil {
		t.Fatal(err)
	}
	if !present {
		if _, err := seed.Populate(ctx, e.srcC, docs, rand.New(rand.NewPCG(7, 8))); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// rollOverAShard shrinks every source shard's oplog to 2 MiB and writes 4 MiB to
// one shard (the primary of a new database, burst), so that its oplog rolls over
// past what a migration read of it; it returns that shard.
func (e *e2e) rollOverAShard() string {
	e.t.Helper()
	ctx, t := context.Background(), e.t
	for _, sh := range e.srcBox.Shards() {
		if err := e.srcBox.SetOplogSize(sh.Name, 2<<20); err != nil {
			t.Fatal(err)
		}
	}
	fill := e.srcC.Database("burst").Collection("fill")
	pad := strings.Repeat("x", 100<<10)
	for i := range 40 {
		if _, err := fill.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: pad}}); err != nil {
			t.Fatal(err)
		}
	}
	var db struct {
		Primary string `bson:"primary"`
	}
	if err := e.srcC.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: "burst"}}).Decode(&db); err != nil {
		t.Fatal(err)
	}
	return db.Primary
}

// startLoad keeps opsPerSec writes per second going to the source.
func (e *e2e) startLoad(opsPerSec int) {
	ctx, cancel := context.WithCancel(context.Background())
	e.stopLoad, e.loadDone = cancel, make(chan error, 1)
	go func() { e.loadDone <- load.Run(ctx, e.srcC, opsPerSec, rand.New(rand.NewPCG(9, 10)), &e.stats) }()
	e.t.Cleanup(e.endLoad)
}

// endLoad stops the load and waits for its writes in flight.
func (e *e2e) endLoad() {
	if e.stopLoad == nil {
		return
	}
	e.stopLoad()
	if err := <-e.loadDone; err != nil {
		e.t.Errorf("load: %v", err)
	}
	e.stopLoad = nil
	e.t.Logf("load: %s", &e.stats)
	e.awaitQuietSource()
}

// awaitQuietSource waits until no write lands on the source any more: a load writer
// whose request was cancelled returns at once while its write may still be running in
// the router. The applications "stopped writing" only once every shard's newest entry
// (no-ops aside) stays the same for a second.
func (e *e2e) awaitQuietSource() {
	e.t.Helper()
	ctx := context.Background()
	var shards struct {
		Shards []struct{ Host string } `bson:"shards"`
	}
	if err := e.srcC.Database("admin").RunCommand(ctx, bson.D{{Key: "listShards", Value: 1}}).Decode(&shards); err != nil {
		e.t.Fatalf("listShards: %v", err)
	}
	var members []*mongo.Client
	for _, sh := range shards.Shards {
		_, hosts, err := topology.ParseHostString(sh.Host)
		if err != nil {
			e.t.Fatal(err)
		}
		c, err := topology.Connect(ctx, e.src.ForHosts(hosts[:1], ""))
		if err != nil {
			e.t.Fatal(err)
		}
		defer c.Disconnect(ctx)
		members = append(members, c)
	}
	if err := load.AwaitQuiet(ctx, members, time.Second, time.Minute); err != nil {
		e.t.Fatal(err)
	}
}

// migration returns a Migration on real clusters, keeping its state in cp; tune
// changes its Config first.
func (e *e2e) migration(cp Checkpoints, tune ...func(*Config)) *Migration {
	e.t.Helper()
	cfg := Config{
		ID: "e2e", Source: e.src, Destination: e.dst, PollEvery: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range tune {
		f(&cfg)
	}
	m, err := New(cfg, cp)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// running runs m in the background; stop cancels it and returns Run's result.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func run(m *Migration, opts StartOptions) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx, opts) }()
	return r
}

func (r *running) kill() error {
	r.cancel()
	return <-r.done
}

// await polls the snapshot until cond holds; the limit only keeps a broken run from
// hanging the test.
func await(t *testing.T, m *Migration, limit time.Duration, what string, cond func(Snapshot) bool) Snapshot {
	t.Helper()
	end := time.Now().Add(limit)
	for {
		s := m.Snapshot()
		if cond(s) {
			return s
		}
		if s.State == Failed || time.Now().After(end) {
			t.Fatalf("never %s: state %s, reason %q, shards %+v", what, s.State, s.Reason, s.Shards)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isState(st State) func(Snapshot) bool { return func(s Snapshot) bool { return s.State == st } }

// startCutover starts the cutover once every shard is in sync: a shard may have
// fallen behind under the load, the migration is then syncing until it caught up.
func (e *e2e) startCutover(m *Migration) {
	e.t.Helper()
	var err error
	var ns *NotSyncedError
	var refused *RefusedError
	// A shard the move watcher restarts (a DBA's move during the test) copies again
	// first (the migration syncs meanwhile), and a ready migration waits for the
	// watcher's look after that.
	await(e.t, m, 3*time.Minute, "the cutover started", func(Snapshot) bool {
		err = m.StartCutover(context.Background())
		return !errors.As(err, &ns) && !(errors.As(err, &refused) && (refused.State == Syncing || refused.State == Ready))
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// finish stops the load, starts the cutover, waits for the gap to close and presses
// I'm done.
func (e *e2e) finish(m *Migration) Snapshot {
	e.t.Helper()
	e.endLoad()
	e.startCutover(m)
	began := time.Now()
	await(e.t, m, time.Minute, "closed the optime gap", func(s Snapshot) bool { return s.OptimeGapKnown && s.OptimeGap == 0 })
	e.t.Logf("optime gap 0:00 %v after the load stopped", time.Since(began).Round(time.Millisecond))
	if err := m.Done(context.Background(), false); err != nil {
		e.explainMismatch(m.Snapshot())
		e.t.Fatalf("I'm done: %v", err)
	}
	return m.Snapshot()
}

// explainMismatch logs, for each document a failed verification names, the
// entries of the source shards' oplogs that wrote it: what a lost or extra
// document's story is.
func (e *e2e) explainMismatch(s Snapshot) {
	v := s.Verification
	if v == nil || e.srcBox == nil {
		return
	}
	ctx := context.Background()
	for _, mm := range v.Mismatches {
		e.t.Logf("differs: %s %s: source %d, destination %d, _ids %v", mm.Namespace, mm.Range, mm.SourceCount, mm.DestCount, mm.SampleIDs)
		for _, sh := range e.srcBox.Shards() {
			client, err := topology.Connect(ctx, e.src.ForHosts([]string{sh.Addr}, ""))
			if err != nil {
				e.t.Logf("shard %s: %v", sh.Name, err)
				continue
			}
			cur, err := client.Database("local").Collection("oplog.rs").Find(ctx, bson.D{{Key: "ns", Value: mm.Namespace}})
			if err == nil {
				for cur.Next(ctx) {
					var id bson.RawValue
					if o2, ok := cur.Current.Lookup("o2").DocumentOK(); ok {
						id = o2.Lookup("_id")
					} else if o, ok := cur.Current.Lookup("o").DocumentOK(); ok {
						id = o.Lookup("_id")
					}
					idJSON, _ := bson.MarshalExtJSON(bson.D{{Key: "v", Value: id}}, true, false)
					for _, want := range mm.SampleIDs {
						if strings.Contains(string(idJSON), want) {
							e.t.Logf("  shard %s: %s", sh.Name, cur.Current)
						}
					}
				}
				cur.Close(ctx)
			}
			client.Disconnect(ctx)
		}
	}
	for _, p := range s.Shards {
		e.t.Logf("shard %s: phase %s, applied up to %v", p.Name, p.Phase, p.AppliedUpTo)
	}
}

// sameData compares every seed collection of both clusters document by document,
// exact BSON, in _id order.
func (e *e2e) sameData() int {
	e.t.Helper()
	ctx := context.Background()
	total := 0
	for _, c := range seed.Collections() {
		a, b := e.all(ctx, e.srcC, c.DB, c.Name), e.all(ctx, e.dstC, c.DB, c.Name)
		if len(a) != len(b) {
			e.t.Errorf("%s: %d documents on the source, %d on the destination", c.Namespace(), len(a), len(b))
		}
		for i := range min(len(a), len(b)) {
			if !bytes.Equal(a[i], b[i]) {
				e.t.Errorf("%s: document %d differs:\n source %s\n dest   %s", c.Namespace(), i, a[i], b[i])
				break
			}
		}
		total += len(a)
	}
	return total
}

// sameIndexes checks that every index of the source's seed collections is on the
// destination with the same key, unique flag and TTL: what the sync relaxed is
// restored.
func (e *e2e) sameIndexes() {
	e.t.Helper()
	ctx := context.Background()
	for _, c := range seed.Collections() {
		dst := map[string]bson.Raw{}
		for _, spec := range e.indexes(ctx, e.dstC, c.DB, c.Name) {
			name, _ := spec.Lookup("name").StringValueOK()
			dst[name] = spec
		}
		for _, spec := range e.indexes(ctx, e.srcC, c.DB, c.Name) {
			name, _ := spec.Lookup("name").StringValueOK()
			got, ok := dst[name]
			if !ok {
				e.t.Errorf("%s: index %s is not on the destination", c.Namespace(), name)
				continue
			}
			for _, f := range []string{"key", "unique", "expireAfterSeconds"} {
				a, b := spec.Lookup(f), got.Lookup(f)
				if f == "unique" && (a.Type == 0 || b.Type == 0) {
					a, b = bson.RawValue{Type: bson.TypeBoolean, Value: []byte{boolByte(a)}}, bson.RawValue{Type: bson.TypeBoolean, Value: []byte{boolByte(b)}}
				}
				if x, okA := a.AsInt64OK(); okA {
					if y, okB := b.AsInt64OK(); okB && x == y {
						continue // a TTL read back as another integer type
					}
				}
				if !a.Equal(b) {
					e.t.Errorf("%s: index %s has %s %s on the source and %s on the destination", c.Namespace(), name, f, a, b)
				}
			}
		}
	}
}

func boolByte(v bson.RawValue) byte {
	if b, ok := v.BooleanOK(); ok && b {
		return 1
	}
	return 0
}

func (e *e2e) indexes(ctx context.Context, c *mongo.Client, db, coll string) []bson.Raw {
	cur, err := c.Database(db).Collection(coll).Indexes().List(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	return out
}

func (e *e2e) all(ctx context.Context, c *mongo.Client, db, coll string) []bson.Raw {
	cur, err := c.Database(db).Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *e2e) balancerOn(c *mongo.Client) bool {
	e.t.Helper()
	st, err := c.Database("admin").RunCommand(context.Background(), bson.D{{Key: "balancerStatus", Value: 1}}).Raw()
	if err != nil {
		e.t.Fatal(err)
	}
	mode, _ := st.Lookup("mode").StringValueOK()
	return mode != "off"
}

// A seeded source with a load running is migrated: ready, the load stops, the
// cutover closes the gap, I'm done finalizes and verification matches every range.
func TestSandboxMigrationWithALoadEndsDoneAndVerified(t *testing.T) {
	e := startE2E(t, 3000)
	e.startLoad(100)
	m := e.migration(newMemCheckpoints("e2e"))
	r := run(m, StartOptions{WipeDestination: true})
	began := time.Now()
	s := await(t, m, 3*time.Minute, "ready", isState(Ready))
	t.Logf("ready after %v: %d documents copied, lag %v", time.Since(began).Round(time.Millisecond), s.Overall.DocsCopied, s.Overall.Lag)
	if e.balancerOn(e.srcC) || e.balancerOn(e.dstC) {
		t.Fatal("a balancer runs during the sync")
	}
	// The load keeps writing while the migration stays ready.
	for e.stats.Total() < 800 {
		if s := m.Snapshot(); s.State != Ready {
			t.Fatalf("state %s under load, want ready", s.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s = m.Snapshot()
	t.Logf("under load: lag %v, %.0f writes/s applied", s.Overall.Lag, s.Overall.ApplyRate)
	s = e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	v := s.Verification
	if s.State != Done || !v.OK() || v.Ranges == 0 || v.Matched != v.Ranges {
		t.Fatalf("state %s verification %+v", s.State, v)
	}
	n := e.sameData()
	t.Logf("verified %d namespaces, %d ranges, %d documents; %d documents compared independently", v.Namespaces, v.Ranges, v.Documents, n)
	e.sameIndexes()
	if !e.balancerOn(e.srcC) || !e.balancerOn(e.dstC) {
		t.Fatal("balancers not restored after done")
	}
}

// A document changed on the destination behind Shardlift's back (after the sync
// stopped applying to it) is found by verification, which blocks I'm done.
func TestSandboxVerificationFindsADocumentAlteredOnTheDestination(t *testing.T) {
	e := startE2E(t, 1000)
	m := e.migration(newMemCheckpoints("e2e"))
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "ready", isState(Ready))
	if err := m.StartCutover(context.Background()); err != nil {
		t.Fatal(err)
	}
	await(t, m, time.Minute, "closed the optime gap", func(s Snapshot) bool { return s.OptimeGapKnown && s.OptimeGap == 0 })
	ctx := context.Background()
	c := seed.Collections()[0]
	doc, err := e.dstC.Database(c.DB).Collection(c.Name).FindOne(ctx, bson.D{}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	filter := bson.D{{Key: "_id", Value: doc.Lookup("_id")}}
	for _, f := range c.KeyFields() {
		if f != "_id" {
			filter = append(filter, bson.E{Key: f, Value: doc.Lookup(strings.Split(f, ".")...)})
		}
	}
	if _, err := e.dstC.Database(c.DB).Collection(c.Name).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "tampered", Value: true}}}}); err != nil {
		t.Fatal(err)
	}
	err = m.Done(ctx, false)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("Done after tampering: %v", err)
	}
	mm := me.Verification.Mismatches
	if len(mm) != 1 || mm[0].Namespace != c.Namespace() || len(mm[0].SampleIDs) != 1 || mm[0].SampleIDs[0] != doc.Lookup("_id").String() {
		t.Fatalf("mismatches %+v, want %s _id %s", mm, c.Namespace(), doc.Lookup("_id"))
	}
	t.Logf("found: %s %s sample %v", mm[0].Namespace, mm[0].Range, mm[0].SampleIDs)
	if err := m.Done(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil || m.State() != Done || !m.Snapshot().Verification.Overridden {
		t.Fatalf("Run %v, state %s", err, m.State())
	}
}

// The process is killed (Run's context cancelled, nothing more saved) at several
// points while a load runs; each time a new Migration resumes from the checkpoints.
// The end is a destination equal to the source, document for document.
func TestSandboxKilledAtSeveralPointsResumesWithoutLossOrDuplicates(t *testing.T) {
	// Kept small: the last resume must catch up with its backlog on a busy 2-core
	// CI machine within await's limit.
	e := startE2E(t, 4000)
	e.startLoad(100)
	cp := newMemCheckpoints("e2e")
	points := []struct {
		name string
		at   func(Snapshot) bool
	}{
		{"starting", func(s Snapshot) bool { return s.State == Starting || s.State == Syncing }},
		{"copying", func(s Snapshot) bool {
			return anyShard(s, func(p ShardProgress) bool { return p.Phase == Copying && p.DocsCopied > 0 })
		}},
		{"building indexes", func(s Snapshot) bool {
			return anyShard(s, func(p ShardProgress) bool { return p.Phase == BuildingIndexes || p.Phase == CatchingUp })
		}},
		{"replaying", func(s Snapshot) bool {
			return !anyShard(s, func(p ShardProgress) bool { return p.Phase != CatchingUp && p.Phase != Synced })
		}},
	}
	var seen sync.Map
	for _, p := range points {
		m := e.migration(cp)
		r := run(m, StartOptions{WipeDestination: true})
		s := await(t, m, 3*time.Minute, "reached "+p.name, func(s Snapshot) bool { return p.at(s) || s.State == Ready })
		if err := r.kill(); !errors.Is(err, context.Canceled) {
			t.Fatalf("killed at %s: Run returned %v", p.name, err)
		}
		seen.Store(p.name, true)
		t.Logf("killed at %s: state %s, shards %s", p.name, s.State, phases(s))
	}
	m := e.migration(cp)
	r := run(m, StartOptions{})
	// The load runs until the last resume has read its way back into the replay on
	// every shard; then it stops, so that readiness depends on the resume catching
	// up, not on an overloaded machine outpacing the load.
	await(t, m, 3*time.Minute, "replaying after the last resume", func(s Snapshot) bool {
		return s.State == Ready || !anyShard(s, func(p ShardProgress) bool { return p.Phase != CatchingUp && p.Phase != Synced })
	})
	e.endLoad()
	await(t, m, 3*time.Minute, "ready after the last resume", isState(Ready))
	s := e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !s.Verification.OK() {
		t.Fatalf("verification after resumes: %+v", s.Verification)
	}
	n := e.sameData()
	t.Logf("%d documents equal on both sides after %d kills", n, len(points))
}

func anyShard(s Snapshot, f func(ShardProgress) bool) bool {
	for _, p := range s.Shards {
		if f(p) {
			return true
		}
	}
	return false
}

func phases(s Snapshot) string {
	var parts []string
	for _, p := range s.Shards {
		parts = append(parts, fmt.Sprintf("%s %s %d/%d", p.Name, p.Phase, p.DocsCopied, p.DocsTotal))
	}
	return strings.Join(parts, ", ")
}

// One shard is restarted while the other keeps syncing; the migration is then
// cancelled during the cutover, which leaves a staging copy: the data stays, equal
// to the source once the gap closed, with the index options and both balancers
// restored.
func TestSandboxShardRestartThenCancelLeavesAStagingCopy(t *testing.T) {
	e := startE2E(t, 2000)
	e.startLoad(100)
	m := e.migration(newMemCheckpoints("e2e"))
	r := run(m, StartOptions{WipeDestination: true})
	s := await(t, m, 3*time.Minute, "ready", isState(Ready))
	restarted, other := s.Shards[1].Name, s.Shards[0].Name
	m.mu.Lock()
	otherReplay := m.mu.shards[0].replayer
	m.mu.Unlock()
	if err := m.RestartShard(context.Background(), restarted); err != nil {
		t.Fatal(err)
	}
	await(t, m, 3*time.Minute, "copied the restarted shard again", func(s Snapshot) bool {
		return s.Shards[1].Phase == Synced && s.State == Ready
	})
	// Meanwhile the migration was not ready: the restarted shard was not in sync.
	if !slices.ContainsFunc(m.Snapshot().History, func(ev Event) bool {
		return ev.From == string(Ready) && ev.To == string(Syncing) && strings.Contains(ev.Reason, "shard "+restarted+" is not in sync")
	}) {
		t.Fatalf("the restart of %s did not make the migration syncing again: %+v", restarted, m.Snapshot().History)
	}
	m.mu.Lock()
	same := m.mu.shards[0].replayer == otherReplay
	m.mu.Unlock()
	if !same {
		t.Fatalf("shard %s's replay was restarted along with %s", other, restarted)
	}
	e.endLoad()
	e.startCutover(m)
	await(t, m, time.Minute, "closed the optime gap", func(s Snapshot) bool { return s.OptimeGapKnown && s.OptimeGap == 0 })
	v, err := m.Verify(context.Background())
	if err != nil || !v.OK() {
		t.Fatalf("verification on demand: %+v %v", v, err)
	}
	if err := m.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	s = m.Snapshot()
	if s.State != Cancelled || !strings.Contains(s.Reason, "staging copy 0:00 behind") {
		t.Fatalf("state %s reason %q", s.State, s.Reason)
	}
	if !e.balancerOn(e.srcC) || !e.balancerOn(e.dstC) {
		t.Fatal("balancers not restored after cancel")
	}
	n := e.sameData()
	e.sameIndexes()
	t.Logf("staging copy: %d documents, equal to the source", n)
}

// userNamespaces lists every collection and view outside admin, config and local, as
// "db.name", sorted.
func (e *e2e) userNamespaces(c *mongo.Client) []string {
	e.t.Helper()
	ctx := context.Background()
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, db := range dbs {
		if db == "admin" || db == "config" || db == "local" {
			continue
		}
		names, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, n := range names {
			out = append(out, db+"."+n)
		}
	}
	sort.Strings(out)
	return out
}

// DESIGN section 2: Shardlift's state lives in the local store; nothing of Shardlift's
// (no database, collection or marker document) is left on the destination, and
// nothing is written to the source but the balancer setting.
func TestNothingOfShardliftIsLeftOnTheDestinationNorWrittenToTheSource(t *testing.T) {
	e := startE2E(t, 500)
	before := e.userNamespaces(e.srcC)
	if len(before) == 0 {
		t.Fatal("the seeded source lists no namespaces: the test would prove nothing")
	}
	m := e.migration(newMemCheckpoints("e2e"))
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "ready", isState(Ready))
	if held := e.readMarker(); held == nil || held.MigrationID != "e2e" {
		t.Fatalf("while ready the destination's marker is %+v, want migration e2e's", held)
	}
	s := e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.State != Done {
		t.Fatalf("state %s", s.State)
	}
	if held := e.readMarker(); held != nil {
		t.Fatalf("the marker stays after done: %+v", held)
	}
	src, dst := e.userNamespaces(e.srcC), e.userNamespaces(e.dstC)
	if !slices.Equal(src, before) {
		t.Errorf("the source's namespaces changed during the migration:\n before %v\n after  %v", before, src)
	}
	if !slices.Equal(dst, src) {
		t.Errorf("the destination holds other namespaces than the source:\n source      %v\n destination %v", src, dst)
	}
	if n := e.sameData(); n == 0 {
		t.Fatal("no documents compared")
	}
}

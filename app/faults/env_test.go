package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/internal/repo"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
	"github.com/shardlift/shardlift/store"
)

// The suite's knobs, from the environment (the Makefile's `faults` target sets them).
const (
	// envLong selects the long form: more data, 20 kills, 30 s outages.
	envLong = "SHARDLIFT_FAULTS_LONG"
	// envParallel is how many scenarios run at once.
	envParallel = "SHARDLIFT_FAULTS_PARALLEL"
	// envSeed replays a run: every random choice of every scenario derives from it.
	envSeed = "SHARDLIFT_FAULTS_SEED"
	// envReport names a file the table is written to.
	envReport = "SHARDLIFT_FAULTS_REPORT"
)

// size is what differs between the short and the long form. Every scenario runs in
// both; the long form only has more data, more kills and longer outages.
type size struct {
	docs   int           // seeded documents
	rate   int           // load, writes per second
	outage time.Duration // how long a shard or router stays away
	kills  map[moment]int
}

var (
	short = size{docs: 3000, rate: 60, outage: 12 * time.Second,
		kills: map[moment]int{copying: 1, indexing: 1, catchingUp: 1, steady: 1, cuttingOver: 1, finalizing: 1}}
	long = size{docs: 20000, rate: 120, outage: 30 * time.Second,
		kills: map[moment]int{copying: 4, indexing: 3, catchingUp: 3, steady: 4, cuttingOver: 3, finalizing: 3}}
)

// suite is one run: the binary under test, the seed and the size.
type suite struct {
	bin  string
	seed uint64
	size size
	long bool
	// parallel is how many scenarios run at once (envParallel; 2 in the short
	// form, 1 in the long one). make test runs the engine's end-to-end tests beside
	// them on the same 2 cores: at 3, the clean-clone CI used 186% of the CPU for
	// 17 minutes and scenarios' replays starved (never ready again in 5 minutes).
	parallel int
}

// buildBinary builds shardlift once into dir: the migration runs as a child process
// so that a kill is a real SIGKILL.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "shardlift")
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goCmd, "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build shardlift: %v\n%s", err, out)
	}
	return bin
}

func newSuite(t *testing.T) *suite {
	s := &suite{size: short, parallel: 2}
	if os.Getenv(envLong) != "" {
		s.size, s.long, s.parallel = long, true, 1
	}
	if v := os.Getenv(envParallel); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: give how many scenarios may run at once (1 or more)", envParallel, v)
		}
		s.parallel = n
	}
	s.seed = uint64(time.Now().UnixNano())
	if v := os.Getenv(envSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: give the seed a failed run printed", envSeed, v)
		}
		s.seed = n
	}
	s.bin = buildBinary(t, t.TempDir())
	return s
}

// env is one scenario's world: two sandboxes, a load on the source, and the child
// migration with its state file and API.
type env struct {
	t        *testing.T
	s        *suite
	ctx      context.Context
	rnd      *rand.Rand
	src, dst *sandbox.Cluster
	srcDir   string
	srcC     *mongo.Client
	dstC     *mongo.Client
	state    string
	log      *lockedLog
	extra    []string // more migrate flags
	srcQuery string   // options added to the source's connection string

	balancerBefore string
	stats          load.Stats
	stopLoad       context.CancelFunc
	loadDone       chan error
	m              *faults.Migrator
	kills          int
}

// lockedLog keeps every child's output, for the failure message.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newEnv starts both sandboxes (the source, with srcOpts, keeps its directory, so it
// can be started again with other options; the destination with dstOpts), seeds the
// source and records its balancer.
func (s *suite) newEnv(t *testing.T, stream uint64, srcOpts, dstOpts sandbox.Options) *env {
	t.Helper()
	e := &env{t: t, s: s, ctx: context.Background(), rnd: rand.New(rand.NewPCG(s.seed, stream)),
		srcDir: t.TempDir(), state: filepath.Join(t.TempDir(), "state.db"), log: &lockedLog{}}
	var err error
	srcOpts.Shards, srcOpts.Dir = 2, e.srcDir
	if e.src, err = sandbox.Start(e.ctx, "source", srcOpts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.src.Close() })
	dstOpts.Shards, dstOpts.Dir = 2, t.TempDir()
	if e.dst, err = sandbox.Start(e.ctx, "destination", dstOpts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.dst.Close() })
	e.srcC, e.dstC = connect(t, e.src.URI()), connect(t, e.dst.URI())
	if _, err := seed.Populate(e.ctx, e.srcC, s.size.docs, rand.New(rand.NewPCG(s.seed, stream+1000))); err != nil {
		t.Fatal(err)
	}
	e.balancerBefore = e.balancerMode()
	t.Cleanup(func() {
		if e.m != nil {
			e.m.Kill()
		}
		if t.Failed() {
			t.Logf("shardlift migrate output (last lines):\n%s", e.log.tail(60))
		}
	})
	return e
}

// restartSource stops the source and starts it again from its directory with opts,
// with a new client: the old one is disconnected while its cluster still answers. A
// client left connected across the restart took 30 s to disconnect at the scenario's
// end (its monitors waited on the stopped router).
func (e *env) restartSource(opts sandbox.Options) {
	e.t.Helper()
	if err := e.srcC.Disconnect(e.ctx); err != nil {
		e.t.Fatalf("disconnect from the source: %v", err)
	}
	if err := e.src.Close(); err != nil {
		e.t.Fatal(err)
	}
	opts.Dir = e.srcDir
	var err error
	if e.src, err = sandbox.Start(e.ctx, "source", opts); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.src.Close() })
	e.srcC = connect(e.t, e.src.URI())
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(context.Background(), options.Client().ApplyURI(uri).SetTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// balancerMode is the source balancer's mode ("full" or "off").
func (e *env) balancerMode() string {
	e.t.Helper()
	raw, err := e.srcC.Database("admin").RunCommand(e.ctx, bson.D{{Key: "balancerStatus", Value: 1}}).Raw()
	if err != nil {
		e.t.Fatalf("balancerStatus: %v", err)
	}
	mode, _ := raw.Lookup("mode").StringValueOK()
	return mode
}

// startLoad keeps the mixed write load going on the source until endLoad.
func (e *env) startLoad(rate int) {
	ctx, cancel := context.WithCancel(e.ctx)
	e.stopLoad, e.loadDone = cancel, make(chan error, 1)
	rnd := rand.New(rand.NewPCG(e.rnd.Uint64(), e.rnd.Uint64()))
	go func() { e.loadDone <- load.Run(ctx, e.srcC, rate, rnd, &e.stats) }()
	e.t.Cleanup(e.endLoad)
	// The load samples the collections before its first write: wait for it, so that
	// no fault begins before the load does.
	for start := e.stats.Total(); e.stats.Total() == start; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-e.loadDone:
			e.stopLoad = nil
			e.t.Fatalf("the load did not start: %v", err)
		default:
		}
	}
}

// endLoad stops the load and waits until no write lands on the source any more.
func (e *env) endLoad() {
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

// awaitQuietSource waits until every shard's newest oplog entry stays the same for a
// second: a write whose client gave up may still be running in the router.
func (e *env) awaitQuietSource() {
	e.t.Helper()
	var shards []*mongo.Client
	for _, sh := range e.src.Shards() {
		c, err := mongo.Connect(e.ctx, options.Client().ApplyURI("mongodb://"+sh.Addr+"/?directConnection=true").SetTimeout(30*time.Second))
		if err != nil {
			e.t.Fatalf("connect to %s: %v", sh.Name, err)
		}
		defer c.Disconnect(e.ctx)
		shards = append(shards, c)
	}
	if err := load.AwaitQuiet(e.ctx, shards, time.Second, time.Minute); err != nil {
		e.t.Fatal(err)
	}
}

// oplogEdge is the ts of a shard's oldest (dir 1) or newest (dir -1) oplog entry.
func (e *env) oplogEdge(addr string, dir int) (bson.RawValue, error) {
	c, err := mongo.Connect(e.ctx, options.Client().ApplyURI("mongodb://"+addr+"/?directConnection=true").SetTimeout(30*time.Second))
	if err != nil {
		return bson.RawValue{}, err
	}
	defer c.Disconnect(e.ctx)
	raw, err := c.Database("local").Collection("oplog.rs").FindOne(e.ctx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "$natural", Value: dir}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.RawValue{}, nil
	}
	if err != nil {
		return bson.RawValue{}, err
	}
	return raw.Lookup("ts"), nil
}

// start runs shardlift migrate with the scenario's state file and API.
func (e *env) start() *faults.Migrator {
	e.t.Helper()
	if e.m != nil {
		if _, exited := e.m.Exited(); !exited {
			e.t.Fatal("start: shardlift migrate is already running")
		}
	}
	source := e.src.URI()
	if e.srcQuery != "" {
		sep := "?"
		if strings.Contains(source, "?") {
			sep = "&"
		}
		source += sep + e.srcQuery
	}
	// A port chosen at each start, not once per scenario: between a kill and the
	// resume, another scenario's sandbox could take the old one ("bind: address
	// already in use" failed scenario 12 once).
	api := freeAddr(e.t)
	args := append([]string{"--source", source, "--destination", e.dst.URI(), "--state", e.state,
		"--api", api, "--wipe-destination", "--progress-every", "2s"}, e.extra...)
	fmt.Fprintf(e.log, "=== %s start\n", time.Now().Format("15:04:05.000"))
	m, err := faults.StartMigrator(e.s.bin, args, api, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
	return m
}

// kill is kill -9 of the running migration.
func (e *env) kill(why string) {
	e.m.Kill()
	e.kills++
	fmt.Fprintf(e.log, "=== %s killed (-9) %s\n", time.Now().Format("15:04:05.000"), why)
}

// storedState is the migration's state as the state file has it (the process is
// stopped): "" when there is none.
func (e *env) storedState() string {
	e.t.Helper()
	st, err := store.Open(e.state, store.Options{})
	if err != nil {
		e.t.Fatalf("open the state file: %v", err)
	}
	defer st.Close()
	all, err := st.Migrations()
	if err != nil {
		e.t.Fatal(err)
	}
	if len(all) == 0 {
		return ""
	}
	return all[0].State
}

// await polls the running migration's status until cond holds (limit only keeps a
// broken run from hanging the suite).
func (e *env) await(what string, limit time.Duration, cond func(faults.Status) bool) faults.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, limit)
	defer cancel()
	began := time.Now()
	s, err := e.m.Await(ctx, what, cond)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("waited %s until %s", time.Since(began).Round(time.Second), what)
	return s
}

func isState(states ...string) func(faults.Status) bool {
	return func(s faults.Status) bool {
		for _, st := range states {
			if s.State == st {
				return true
			}
		}
		return false
	}
}

// post makes one API action, failing the test when refused.
func (e *env) post(path string) faults.Status {
	e.t.Helper()
	s, err := e.m.API().Post(e.ctx, path)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	return s
}

// startCutover starts the cutover once every shard is in sync: under the load or
// after a fault a shard may fall behind, the migration is then syncing (the API
// answers 409 naming the shard) until it has caught up.
func (e *env) startCutover() {
	e.t.Helper()
	var err error
	e.await("the cutover started", 5*time.Minute, func(s faults.Status) bool {
		if s.State != "ready" && s.State != "syncing" {
			err = nil
			return true
		}
		_, err = e.m.API().Post(e.ctx, "/cutover/start")
		var refused *faults.APIError
		return !errors.As(err, &refused) || refused.Code != http.StatusConflict
	})
	if err != nil {
		e.t.Fatalf("POST /cutover/start: %v", err)
	}
}

// finish drives a running migration to done: the load stops, the cutover starts,
// the gap closes, I'm done; the process exits 0.
func (e *env) finish() {
	e.t.Helper()
	e.endLoad()
	s := e.await("ready or cutting over", 5*time.Minute, isState("ready", "cutting_over", "finalizing"))
	if s.State == "ready" {
		e.startCutover()
	}
	if s.State != "finalizing" {
		e.await("the optime gap closed", 5*time.Minute, func(s faults.Status) bool { return s.State == "cutting_over" && s.GapClosed() })
		e.post("/cutover/done")
	}
	e.awaitExit(0)
}

// awaitExit waits for the process to end with the given code.
func (e *env) awaitExit(want int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
	defer cancel()
	code, err := e.m.Wait(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if code != want {
		e.t.Fatalf("shardlift migrate exited with %d, want %d", code, want)
	}
}

// verify ends every scenario: the full comparison and the balancer as it was.
func (e *env) verify(row *faults.Row) {
	e.t.Helper()
	d, err := faults.Compare(e.ctx, e.srcC, e.dstC)
	if err != nil {
		e.t.Fatal(err)
	}
	row.Diff = d
	if !d.OK() {
		e.t.Errorf("the destination differs from the source: %d lost, %d duplicated, %d different, %d extra:\n%s",
			d.Lost, d.Duplicated, d.Different, d.Extra, strings.Join(d.Samples, "\n"))
	}
	if got := e.balancerMode(); got != e.balancerBefore {
		e.t.Errorf("the source balancer ends %q, it was %q before the migration", got, e.balancerBefore)
		row.Err = fmt.Errorf("the source balancer ends %q, it was %q", got, e.balancerBefore)
	}
}

// watch samples the status while a fault lasts, calling see with each one.
func (e *env) watch(d time.Duration, see func(faults.Status)) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if s, err := e.m.API().Status(e.ctx); err == nil {
			see(s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requireLogged fails the test unless a line of the migration's log file holds
// every one of parts.
func (e *env) requireLogged(parts ...string) {
	e.t.Helper()
	dir := diagnostics.LogDir(e.state)
	files, err := os.ReadDir(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			e.t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
				return
			}
		}
	}
	e.t.Errorf("no line of the migration's log (%s) says %q", dir, parts)
}

package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/units"
	"github.com/shardlift/shardlift/sandbox"
)

// Options size the run. The defaults are the sizes.
type Options struct {
	// Docs is the size of the copy's data set; the memory point copies 4x as many.
	Docs int
	// Backlog is the number of oplog entries replayed.
	Backlog int
	// LagFor is how long the load of the lag benchmark runs.
	LagFor time.Duration
	// Shards is the number of shards of each cluster.
	Shards int
	// DecodeTime is the decode benchmark's -benchtime.
	DecodeTime string
	// Only lists the figures to measure (1-16); empty means all. Figure 3 needs 2's
	// ceiling, and 5 the copy of 1: they run what they need.
	Only []int
	// Shardlift is the shardlift binary figure 6 runs `migrate` with.
	Shardlift string
	// MigrateDocs is figure 6's seed size, and MigrateFor how long it measures after
	// the copy.
	MigrateDocs int
	MigrateFor  time.Duration
	// MigrateLoad is figure 6's load in writes per second (300, the issue's): less
	// lets a loaded machine reach steady sync, to compare two runs side by side.
	MigrateLoad int
	// ProfileDir, when set, receives CPU profiles: the copy child's (copy.cpu), the
	// insert child's (insert.cpu), and this process's (the sandbox's FerretDB servers,
	// and the replay itself) while they run (servers-copy.cpu, servers-insert.cpu)
	// and during the replays (replay.cpu, direct.cpu).
	ProfileDir string
	// Log receives progress lines.
	Log io.Writer
}

// lastFigure is the highest figure number --only takes.
const lastFigure = 16

// DefaultOptions are the sizes of issue 8.
func DefaultOptions() Options {
	return Options{Docs: 200_000, Backlog: 100_000, LagFor: time.Minute, Shards: 3, DecodeTime: "1s",
		MigrateDocs: 20_000, MigrateFor: 3 * time.Minute, MigrateLoad: 300}
}

// Scaled shrinks (or grows) the data sizes and the lag's duration by f, for a quick
// look; the defaults meet the sizes only at 1.
func (o Options) Scaled(f float64) Options {
	o.Docs = max(int(float64(o.Docs)*f), 1000)
	o.Backlog = max(int(float64(o.Backlog)*f), 1000)
	o.LagFor = max(time.Duration(float64(o.LagFor)*f), 10*time.Second)
	o.MigrateDocs = max(int(float64(o.MigrateDocs)*f), 1000)
	o.MigrateFor = max(time.Duration(float64(o.MigrateFor)*f), time.Minute)
	return o
}

// Main is the command: `shardlift-bench [flags]`, or a copy/insert child.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == childArg {
		return childMain(ctx, args[1:], stdout, stderr)
	}
	o := DefaultOptions()
	f := flag.NewFlagSet("shardlift-bench", flag.ContinueOnError)
	f.SetOutput(stderr)
	f.Usage = func() {
		fmt.Fprint(stderr, "Usage: shardlift-bench [flags]\n\nMeasures Shardlift on local sandbox clusters (issue 8) and prints one table,\neach figure with its ceiling measured in the same run.\n\nFlags:\n")
		f.PrintDefaults()
	}
	scale := f.Float64("scale", 1, "multiply the data sizes and the lag's duration by `F` (1 = the issue's sizes)")
	only := f.String("only", "", "measure only these figures, such as `1,5` (default: all)")
	f.StringVar(&o.ProfileDir, "profile-dir", "", "write CPU profiles of the copy, the insert and the replays to `DIR`")
	f.StringVar(&o.Shardlift, "shardlift", "", "the shardlift `BINARY` figure 6 runs `migrate` with")
	f.IntVar(&o.MigrateLoad, "migrate-load", o.MigrateLoad, "figure 6's load in `writes/s`")
	f.DurationVar(&o.MigrateFor, "migrate-for", o.MigrateFor, "how long figure 6 measures after the copy (--scale changes it too)")
	f.StringVar(&o.DecodeTime, "decode-benchtime", o.DecodeTime, "the decode benchmark's -benchtime")
	if err := f.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *scale <= 0 {
		fmt.Fprintln(stderr, "shardlift-bench: --scale must be positive")
		return 2
	}
	if *scale != 1 {
		o = o.Scaled(*scale)
	}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > lastFigure {
			fmt.Fprintf(stderr, "shardlift-bench: --only %q: figures are numbered 1 to %d\n", *only, lastFigure)
			return 2
		}
		o.Only = append(o.Only, n)
	}
	o.Log = stderr
	t, err := Run(ctx, o)
	if t != nil {
		t.Print(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "shardlift-bench: %v\n", err)
		return 1
	}
	return 0
}

// Run measures the figures and returns the table (with what was measured before a
// failure, and the failure).
func Run(ctx context.Context, o Options) (*Table, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	want := func(n int) bool { return len(o.Only) == 0 || slices.Contains(o.Only, n) }
	r := &runner{o: o, t: &Table{Title: fmt.Sprintf("Shardlift benchmarks on sandbox clusters (%d shards each, FerretDB %s on SQLite), %d cores, %s",
		o.Shards, "v1.24.2", runtime.NumCPU(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))}}
	r.note("load average at the start: %s", loadAverage())
	err := r.run(ctx, want)
	// Figures are measured in the order they depend on each other, shown by number.
	slices.SortStableFunc(r.t.Rows, func(a, b Row) int { return figureNumber(a.Figure) - figureNumber(b.Figure) })
	r.note("load average at the end: %s", loadAverage())
	return r.t, err
}

type runner struct {
	o        Options
	t        *Table
	src, dst *sandbox.Cluster
	srcC     *mongo.Client
	dstC     *mongo.Client
	srcEnd   topology.Endpoint
	dstEnd   topology.Endpoint
	seeded   int
	// piped is figure 1's pipe, which figure 8 compares its own pipe with.
	piped childResult
}

func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.o.Log, "%s  "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
}

func (r *runner) note(format string, a ...any) {
	r.t.Notes = append(r.t.Notes, fmt.Sprintf(format, a...))
}

func (r *runner) run(ctx context.Context, want func(int) bool) error {
	if want(4) {
		if err := r.decode(ctx); err != nil {
			return err
		}
	}
	if want(6) {
		if err := r.migrateUnderLoad(ctx); err != nil {
			return err
		}
	}
	if want(7) {
		if err := r.placement(ctx); err != nil {
			return err
		}
	}
	if want(9) {
		if err := r.finalize(ctx); err != nil {
			return err
		}
	}
	if want(16) {
		if err := r.oplogWindow(ctx); err != nil {
			return err
		}
	}
	if want(11) {
		if err := r.movesWatch(ctx); err != nil {
			return err
		}
	}
	if want(12) {
		if err := r.replayAtLatencies(ctx); err != nil {
			return err
		}
	}
	if want(13) {
		if err := r.partitionedCopyFar(ctx); err != nil {
			return err
		}
	}
	if want(15) {
		if err := r.replayUniqueRestored(ctx); err != nil {
			return err
		}
	}
	if !want(1) && !want(2) && !want(3) && !want(5) && !want(8) && !want(10) && !want(14) {
		return nil
	}
	if err := r.start(ctx, 0); err != nil {
		return err
	}
	defer r.stop()
	var copyRes childResult
	if want(1) || want(5) || want(8) {
		var err error
		if copyRes, err = r.copy(ctx); err != nil {
			return err
		}
	}
	var ceiling, replayed float64
	if want(2) || want(3) || want(8) {
		var err error
		if ceiling, replayed, err = r.replay(ctx); err != nil {
			return err
		}
	}
	if want(8) {
		if err := r.latency(ctx, copyRes, replayed); err != nil {
			return err
		}
	}
	if want(3) {
		if err := r.lag(ctx, ceiling); err != nil {
			return err
		}
	}
	if want(5) {
		if err := r.memory(ctx, copyRes); err != nil {
			return err
		}
	}
	if want(10) {
		if err := r.partitionedCopy(ctx); err != nil {
			return err
		}
	}
	if want(14) {
		if err := r.bufferedReplay(ctx); err != nil {
			return err
		}
	}
	return nil
}

// start starts the two sandbox clusters in this process, latency away from their
// clients (sandbox.Options.Latency), and connects to them.
func (r *runner) start(ctx context.Context, latency time.Duration) error {
	log := slog.New(slog.NewTextHandler(r.o.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	if r.src, err = sandbox.Start(ctx, "source", sandbox.Options{Shards: r.o.Shards, Latency: latency, Logger: log.With("cluster", "source")}); err != nil {
		return fmt.Errorf("start the source sandbox: %w", err)
	}
	if r.dst, err = sandbox.Start(ctx, "destination", sandbox.Options{Shards: r.o.Shards, Latency: latency, Logger: log.With("cluster", "destination")}); err != nil {
		return fmt.Errorf("start the destination sandbox: %w", err)
	}
	r.srcEnd = topology.Endpoint{URI: r.src.URI(), Timeout: time.Minute}
	r.dstEnd = topology.Endpoint{URI: r.dst.URI(), Timeout: time.Minute}
	if r.srcC, err = topology.Connect(ctx, r.srcEnd); err != nil {
		return fmt.Errorf("connect to the source: %w", err)
	}
	if r.dstC, err = connectMajority(ctx, r.dstEnd); err != nil {
		return fmt.Errorf("connect to the destination: %w", err)
	}
	r.logf("sandbox: source %s, destination %s, data in %s and %s", r.src.URI(), r.dst.URI(), r.src.Dir(), r.dst.Dir())
	return nil
}

func (r *runner) stop() {
	ctx := context.Background()
	for _, c := range []*mongo.Client{r.srcC, r.dstC} {
		if c != nil {
			c.Disconnect(ctx)
		}
	}
	for _, c := range []*sandbox.Cluster{r.src, r.dst} {
		if c != nil {
			if err := c.Close(); err != nil {
				r.logf("stop a sandbox cluster: %v", err)
			}
		}
	}
}

// seed inserts the seed documents up to n into the source's bench.docs.
func (r *runner) seed(ctx context.Context, n int) error {
	if r.seeded == 0 {
		if err := shardHashed(ctx, r.srcC, benchDB, docsColl); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := insertDocs(ctx, r.srcC.Database(benchDB).Collection(docsColl), r.seeded, n, 8, benchDoc); err != nil {
		return fmt.Errorf("seed the source: %w", err)
	}
	r.logf("seeded the source with documents %d to %d in %v", r.seeded, n-1, time.Since(start).Round(time.Millisecond))
	r.seeded = n
	return nil
}

// dropDestination drops bench on the destination, for a child to prepare it again.
func (r *runner) dropDestination(ctx context.Context) error {
	if err := r.dstC.Database(benchDB).Drop(ctx); err != nil {
		return fmt.Errorf("drop %s on the destination: %w", benchDB, err)
	}
	return nil
}

func (r *runner) profile(name string) string {
	if r.o.ProfileDir == "" {
		return ""
	}
	return filepath.Join(r.o.ProfileDir, name)
}

// copy is figure 1: the ceiling first, then the copy, each in a child.
func (r *runner) copy(ctx context.Context) (childResult, error) {
	if err := r.seed(ctx, r.o.Docs); err != nil {
		return childResult{}, err
	}
	if err := r.dropDestination(ctx); err != nil {
		return childResult{}, err
	}
	r.logf("1. ceiling: plain parallel bulk insert of %d documents", r.o.Docs)
	stopProfile := r.startProfile("servers-insert.cpu")
	ins, err := runChildProcess(ctx, "insert", r.src.URI(), r.dst.URI(), r.o.Docs, r.profile("insert.cpu"), r.o.Log)
	stopProfile()
	if err != nil {
		return childResult{}, err
	}
	r.logf("   %s in %.1f s; %s", rate(ins.docsPerSec(), "docs/s"), ins.Seconds, ins.cpuShare())
	if err := r.dropDestination(ctx); err != nil {
		return childResult{}, err
	}
	r.logf("1. ceiling: plain driver pipe of the source shards' %d documents into the destination", r.o.Docs)
	stopProfile = r.startProfile("servers-pipe.cpu")
	pipe, err := runChildProcess(ctx, "pipe", r.src.URI(), r.dst.URI(), 0, r.profile("pipe.cpu"), r.o.Log)
	stopProfile()
	if err != nil {
		return childResult{}, err
	}
	r.logf("   %s in %.1f s; %s", rate(pipe.docsPerSec(), "docs/s"), pipe.Seconds, pipe.cpuShare())
	if pipe.Docs != int64(r.o.Docs) {
		return childResult{}, fmt.Errorf("the pipe wrote %d documents, the source holds %d", pipe.Docs, r.o.Docs)
	}
	r.piped = pipe
	if err := r.dropDestination(ctx); err != nil {
		return childResult{}, err
	}
	r.logf("1. Shardlift's copy (engine/initialsync) of %d documents", r.o.Docs)
	stopProfile = r.startProfile("servers-copy.cpu")
	cp, err := runChildProcess(ctx, "copy", r.src.URI(), r.dst.URI(), 0, r.profile("copy.cpu"), r.o.Log)
	stopProfile()
	if err != nil {
		return childResult{}, err
	}
	r.logf("   %s in %.1f s (first write after %.1f s), peak RSS %s; %s", rate(cp.docsPerSec(), "docs/s"), cp.Seconds, cp.FirstWrite, units.Bytes(cp.PeakRSS), cp.cpuShare())
	if cp.Docs != int64(r.o.Docs) {
		return childResult{}, fmt.Errorf("the copy wrote %d documents, the source holds %d", cp.Docs, r.o.Docs)
	}
	r.note("figure 1: the copy wrote its first document %.1f s after it started (the source's time to the first batch of a scan sorted by _id); CPU while the bulk insert ran: %s; while the pipe ran: %s; while the copy ran: %s", cp.FirstWrite, ins.cpuShare(), pipe.cpuShare(), cp.cpuShare())
	insCPU, pipeCPU, cpCPU := perDoc(ins.ServerCPU+ins.ChildCPU, ins.Docs), perDoc(pipe.ServerCPU+pipe.ChildCPU, pipe.Docs), perDoc(cp.ServerCPU+cp.ChildCPU, cp.Docs)
	r.note("figure 1: CPU per document (sandbox servers and client): bulk insert %.0f µs, pipe %.0f µs, copy %.0f µs; where the cores are the limit, the copy can reach at most %.2f of the pipe on this machine", insCPU, pipeCPU, cpCPU, Ratio(pipeCPU, cpCPU))
	ratio := Ratio(cp.docsPerSec(), pipe.docsPerSec())
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("1. initial sync, %s docs of 1 KiB, %d shards", thousands(cp.Docs), r.o.Shards),
		Shardlift: fmt.Sprintf("%s, %s", rate(cp.docsPerSec(), "docs/s"), units.Rate(cp.bytesPerSec())),
		Ceiling: fmt.Sprintf("%s, %s (driver pipe, %d conns); bulk insert alone %s", rate(pipe.docsPerSec(), "docs/s"), units.Rate(pipe.bytesPerSec()), pipe.Conns,
			rate(ins.docsPerSec(), "docs/s")),
		Ratio: ratio, Target: ">= 0.90", Verdict: AtLeast(ratio, 0.9),
	})
	return cp, nil
}

// replay is figure 2; it returns the ceiling and the replay's rate in entries/s.
func (r *runner) replay(ctx context.Context) (ceiling, got float64, err error) {
	b, err := makeBacklog(r.o.Backlog, r.o.Shards)
	if err != nil {
		return 0, 0, err
	}
	var forms []string
	for _, f := range backlogForms {
		forms = append(forms, fmt.Sprintf("%s %d", f.name, b.counts[f.name]))
	}
	r.note("backlog of figure 2: %s", strings.Join(forms, ", "))
	stopProfile := r.startProfile("direct.cpu")
	r.logf("2. ceiling: the backlog's %d entries as direct bulk writes", b.entries)
	direct, err := directBacklog(ctx, r.dstC, b)
	stopProfile()
	if err != nil {
		return 0, 0, err
	}
	ceiling = float64(b.entries) / direct.Seconds()
	r.logf("   %s in %v", rate(ceiling, "entries/s"), direct.Round(time.Millisecond))
	stopProfile = r.startProfile("replay.cpu")
	r.logf("2. Shardlift's replay (engine/replay) of the backlog")
	rep, err := replayBacklog(ctx, r.dstC, b, false)
	stopProfile()
	if err != nil {
		return 0, 0, err
	}
	got = float64(b.entries) / rep.Seconds()
	r.logf("   %s in %v", rate(got, "entries/s"), rep.Round(time.Millisecond))
	if err := r.dstC.Database(benchDB).Collection(backlogColl).Drop(ctx); err != nil {
		return 0, 0, err
	}
	ratio := Ratio(got, ceiling)
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("2. oplog replay, %s mixed entries, %d shards", thousands(int64(b.entries)), r.o.Shards),
		Shardlift: rate(got, "entries/s"),
		Ceiling:   fmt.Sprintf("%s (direct bulk, %d conns)", rate(ceiling, "entries/s"), r.o.Shards*defaultAppliers),
		Ratio:     ratio, Target: ">= 0.80", Verdict: AtLeast(ratio, 0.8),
	})
	return ceiling, got, nil
}

// startProfile profiles this process (the replay and the sandbox servers) into
// name under ProfileDir, until the returned function is called.
func (r *runner) startProfile(name string) func() {
	path := r.profile(name)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		r.logf("profile %s: %v", name, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		r.logf("profile %s: %v", name, err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// lag is figure 3, at half the replay ceiling.
func (r *runner) lag(ctx context.Context, ceiling float64) error {
	if r.seeded == 0 {
		if err := r.seed(ctx, r.o.Docs); err != nil {
			return err
		}
		if err := r.dropDestination(ctx); err != nil {
			return err
		}
		if _, err := runChildProcess(ctx, "copy", r.src.URI(), r.dst.URI(), 0, "", r.o.Log); err != nil {
			return err
		}
	}
	load := max(int(ceiling/2), 1)
	r.logf("3. lag: replay from the source oplogs under %d writes/s for %v", load, r.o.LagFor)
	res, err := measureLag(ctx, r.srcEnd, r.srcC, r.dstC, r.seeded, load, r.o.LagFor)
	if err != nil {
		return err
	}
	achieved := float64(res.writes) / res.elapsed.Seconds()
	r.logf("   median %v, worst %v over %d samples, load %.0f writes/s", res.median(), res.worst(), len(res.samples), achieved)
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("3. steady-state lag, load %s writes/s for %v", thousands(int64(math.Round(achieved))), r.o.LagFor.Round(time.Second)),
		Shardlift: fmt.Sprintf("median %s, worst %s", seconds(res.median()), seconds(res.worst())),
		Ceiling:   fmt.Sprintf("load asked: %s writes/s (half of 2's ceiling)", thousands(int64(load))),
		Ratio:     Ratio(achieved, float64(load)),
		Target:    "caught up",
		Verdict:   Met, // measureLag fails when the replay does not catch up
	})
	r.note("figure 3: lag sampled every %v (%d samples in %v: the age of the oldest unapplied source entry, to one period); Shardlift's own lag display (1 s resolution) showed at worst %v; ratio = load achieved / asked", lagSample, len(res.samples), res.elapsed.Round(time.Second), res.reported)
	return nil
}

// memory is figure 5: the copy of 4x the documents, next to the copy of figure 1.
func (r *runner) memory(ctx context.Context, small childResult) error {
	big := 4 * r.o.Docs
	if err := r.seed(ctx, big); err != nil {
		return err
	}
	if err := r.dropDestination(ctx); err != nil {
		return err
	}
	r.logf("5. Shardlift's copy of %d documents, for its peak RSS", big)
	cp, err := runChildProcess(ctx, "copy", r.src.URI(), r.dst.URI(), 0, "", r.o.Log)
	if err != nil {
		return err
	}
	r.logf("   %s in %.1f s, peak RSS %s", rate(cp.docsPerSec(), "docs/s"), cp.Seconds, units.Bytes(cp.PeakRSS))
	ratio := Ratio(float64(cp.PeakRSS), float64(small.PeakRSS))
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("5. peak RSS of the copying process, 4x: %s docs", thousands(cp.Docs)),
		Shardlift: fmt.Sprintf("%s (copy at %s)", units.Bytes(cp.PeakRSS), rate(cp.docsPerSec(), "docs/s")),
		Ceiling:   fmt.Sprintf("%s with %s docs", units.Bytes(small.PeakRSS), thousands(small.Docs)),
		Ratio:     ratio, Target: "<= 1.20 (flat)", Verdict: AtMost(ratio, 1.2),
	})
	return nil
}

// decode is figure 4.
func (r *runner) decode(ctx context.Context) error {
	r.logf("4. go test -bench %s -cpu 1 %s", decodeBenchmark, decodePackage)
	res, err := runDecodeBenchmark(ctx, r.o.DecodeTime, r.o.Log)
	if err != nil {
		return err
	}
	perSec := res.Metrics["entries/s"]
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("4. decode + filter + translate, 1 core (best of %d)", decodeRuns),
		Shardlift: fmt.Sprintf("%s, %.0f ns, %.0f B, %.0f allocs per entry", rate(perSec, "entries/s"), res.Metrics["ns/op"], res.Metrics["B/op"], res.Metrics["allocs/op"]),
		Ratio:     math.NaN(), Target: ">= 1,000,000 entries/s", Verdict: AtLeast(perSec, 1e6),
	})
	return nil
}

// perDoc is CPU time per document in microseconds.
func perDoc(cpu time.Duration, docs int64) float64 {
	if docs <= 0 {
		return math.NaN()
	}
	return float64(cpu.Microseconds()) / float64(docs)
}

// seconds formats a lag: "0.25 s".
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// loadAverage is the 1, 5 and 15 minute load averages, to tell a busy machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// figureNumber is the number a row's figure starts with ("10. copy ..." is 10), so
// that figure 10 comes after 9.
func figureNumber(figure string) int {
	n, _ := strconv.Atoi(strings.SplitN(figure, ".", 2)[0])
	return n
}

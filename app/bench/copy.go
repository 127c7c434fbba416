package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
)

// childArg is the first argument that makes this binary a copy or insert child.
const childArg = "bench-child"

// childResult is what a child prints on its last line of stdout, and what the
// parent adds from the child's rusage.
type childResult struct {
	Mode    string  `json:"mode"`
	Docs    int64   `json:"docs"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Conns   int     `json:"conns"`
	// FirstWrite is how long the copy ran before its first batch was written, in
	// seconds: the source's time to the first batch of a scan.
	FirstWrite float64 `json:"first_write"`
	// PeakRSS is the child's peak resident set size in bytes (VmHWM, which the child
	// reads itself: the rusage Maxrss of a child started by vfork+exec reports the
	// parent's peak, its address space before the exec).
	PeakRSS int64 `json:"peak_rss"`
	// ChildCPU is the child's CPU time, ServerCPU the CPU time of this process (the
	// sandbox's servers) while the child ran (both filled in by the parent).
	ChildCPU, ServerCPU time.Duration `json:"-"`
	Wall                time.Duration `json:"-"`
}

// cpuTime is a process's user plus system time.
func cpuTime(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return cpuTime(&ru)
}

// cpuShare says how busy the machine's cores were during the child's life: the
// child's and the servers' CPU time over the wall time.
func (r childResult) cpuShare() string {
	return fmt.Sprintf("copying process %.2f cores, sandbox servers %.2f cores (of %d)",
		r.ChildCPU.Seconds()/r.Wall.Seconds(), r.ServerCPU.Seconds()/r.Wall.Seconds(), runtime.NumCPU())
}

func (r childResult) docsPerSec() float64  { return float64(r.Docs) / r.Seconds }
func (r childResult) bytesPerSec() float64 { return float64(r.Bytes) / r.Seconds }

// runChildProcess runs this binary as a child in mode ("copy" or "insert") against
// the two clusters, with the extra child flags, and returns its result with its peak RSS.
func runChildProcess(ctx context.Context, mode, src, dst string, docs int, cpuProfile string, stderr io.Writer, extra ...string) (childResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return childResult{}, fmt.Errorf("find this program to start the %s child: %w", mode, err)
	}
	args := []string{childArg, "--mode", mode, "--source", src, "--destination", dst, "--docs", fmt.Sprint(docs)}
	if cpuProfile != "" {
		args = append(args, "--cpuprofile", cpuProfile)
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, exe, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, stderr
	cpu0, start := selfCPU(), time.Now()
	if err := cmd.Run(); err != nil {
		return childResult{}, fmt.Errorf("the %s child failed: %w", mode, err)
	}
	wall, serverCPU := time.Since(start), selfCPU()-cpu0
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	var res childResult
	if err := json.Unmarshal(lines[len(lines)-1], &res); err != nil {
		return childResult{}, fmt.Errorf("read the %s child's result %q: %w", mode, out.String(), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.ChildCPU = cpuTime(ru)
	}
	res.Wall, res.ServerCPU = wall, serverCPU
	return res, nil
}

// childMain is the child: it prepares the destination from the source's layout (as
// a migration's start does) and then, timed, copies the source with
// engine/initialsync ("copy"), pipes it with the plain driver ("pipe": pipeShards),
// or inserts the seed documents 0..docs-1 directly ("insert") over as many
// connections as the copy writes with.
func childMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := flag.NewFlagSet(childArg, flag.ContinueOnError)
	f.SetOutput(stderr)
	mode := f.String("mode", "copy", "copy, pipe or insert")
	src := f.String("source", "", "source mongos URI")
	dst := f.String("destination", "", "destination mongos URI")
	docs := f.Int("docs", 0, "insert: the number of seed documents")
	cpuProfile := f.String("cpuprofile", "", "write a CPU profile of the timed part to `FILE`")
	partitions := f.Int("partitions", 0, "copy: read every collection with `N` cursors, each its own _id range (0: the copier's defaults)")
	if err := f.Parse(args); err != nil {
		return 2
	}
	res, err := child(ctx, *mode, *src, *dst, *docs, *cpuProfile, *partitions)
	if err == nil {
		res.PeakRSS, err = peakRSS()
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench %s child: %v\n", *mode, err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintf(stderr, "bench %s child: %v\n", *mode, err)
		return 1
	}
	return 0
}

func child(ctx context.Context, mode, srcURI, dstURI string, docs int, cpuProfile string, partitions int) (childResult, error) {
	if mode != "copy" && mode != "pipe" && mode != "insert" {
		return childResult{}, fmt.Errorf("unknown mode %q (copy, pipe or insert)", mode)
	}
	srcEnd, dstEnd := topology.Endpoint{URI: srcURI, Timeout: time.Minute}, topology.Endpoint{URI: dstURI, Timeout: time.Minute}
	var srcTop, dstTop *topology.Cluster
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { srcTop, err = topology.Discover(gctx, srcEnd); return err })
	g.Go(func() (err error) { dstTop, err = topology.Discover(gctx, dstEnd); return err })
	if err := g.Wait(); err != nil {
		return childResult{}, fmt.Errorf("discover the clusters: %w", err)
	}
	plan, err := prepare.NewPlan(srcTop, dstTop)
	if err != nil {
		return childResult{}, err
	}
	dst, err := connectMajority(ctx, dstEnd)
	if err != nil {
		return childResult{}, fmt.Errorf("connect to the destination: %w", err)
	}
	defer dst.Disconnect(context.WithoutCancel(ctx))
	if err := prepare.Prepare(ctx, dst, plan, discardSink{}, nil, nil); err != nil {
		return childResult{}, err
	}
	var copiers []*initialsync.Copier
	var shardClients []*mongo.Client
	if mode == "copy" || mode == "pipe" {
		for _, sh := range srcTop.Shards {
			client, err := topology.Connect(ctx, srcEnd.ForHosts(sh.Hosts, sh.SetName))
			if err != nil {
				return childResult{}, fmt.Errorf("connect to source shard %s: %w", sh.Name, err)
			}
			defer client.Disconnect(context.WithoutCancel(ctx))
			shardClients = append(shardClients, client)
			if mode == "pipe" {
				continue
			}
			sp, ok := plan.Shard(sh.Name)
			if !ok {
				return childResult{}, fmt.Errorf("the plan has no shard %s", sh.Name)
			}
			cfg := initialsync.Config{
				Shard: sp, Source: initialsync.MongoSource(client, primitive.Timestamp{}), Destination: initialsync.MongoDestination(dst),
				Checkpoints: discardSink{}, Indexes: discardSink{},
			}
			if partitions > 0 {
				cfg.Partitions, cfg.PartitionDocs = partitions, 1 // every collection is split
			}
			c, err := initialsync.New(cfg)
			if err != nil {
				return childResult{}, err
			}
			copiers = append(copiers, c)
		}
	}
	conns := len(srcTop.Shards) * initialsync.DefaultWriters
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return childResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return childResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	res := childResult{Mode: mode, Conns: conns}
	start := time.Now()
	switch mode {
	case "copy":
		g, gctx := errgroup.WithContext(ctx)
		for _, c := range copiers {
			g.Go(func() error { return c.Copy(gctx) })
		}
		watchCtx, stopWatch := context.WithCancel(ctx)
		first := make(chan time.Duration, 1)
		go func() { first <- firstWrite(watchCtx, copiers, start) }()
		err := g.Wait()
		res.Seconds = time.Since(start).Seconds()
		stopWatch()
		res.FirstWrite = (<-first).Seconds()
		if err != nil {
			return childResult{}, err
		}
		for _, c := range copiers {
			s := c.Snapshot()
			res.Docs += s.Docs
			res.Bytes += s.Bytes
		}
	case "pipe":
		n, bytes, err := pipeShards(ctx, shardClients, dst.Database(benchDB).Collection(docsColl), initialsync.DefaultWriters)
		if err != nil {
			return childResult{}, err
		}
		res.Seconds = time.Since(start).Seconds()
		res.Docs, res.Bytes = n, bytes
	case "insert":
		coll := dst.Database(benchDB).Collection(docsColl)
		if err := insertDocs(ctx, coll, 0, docs, conns, benchDoc); err != nil {
			return childResult{}, err
		}
		res.Seconds = time.Since(start).Seconds()
		res.Docs, res.Bytes = int64(docs), int64(docs)*docBytes
	}
	return res, nil
}

// pipeShards is figure 1's ceiling: the plain driver pipe a copy on one machine
// can reach. Each source shard's bench.docs is read by one cursor, in natural
// order, in batches of the copy's size, and written by writers unordered
// insertMany calls to the destination's router: the copy's parallelism, without
// its order by _id, resumability, orphan filter or checkpoints.
func pipeShards(ctx context.Context, shards []*mongo.Client, dst *mongo.Collection, writers int) (docs, bytes int64, err error) {
	var nDocs, nBytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for _, client := range shards {
		batches := make(chan []any, writers)
		g.Go(func() error {
			defer close(batches)
			cur, err := client.Database(benchDB).Collection(docsColl).Find(gctx, bson.D{}, options.Find().SetBatchSize(initialsync.DefaultBatchDocs))
			if err != nil {
				return fmt.Errorf("pipe: read a source shard: %w", err)
			}
			defer cur.Close(context.WithoutCancel(gctx))
			var batch []any
			for cur.Next(gctx) {
				batch = append(batch, bson.Raw(slices.Clone(cur.Current)))
				nBytes.Add(int64(len(cur.Current)))
				if len(batch) == initialsync.DefaultBatchDocs {
					select {
					case batches <- batch:
					case <-gctx.Done():
						return gctx.Err()
					}
					batch = nil
				}
			}
			if err := cur.Err(); err != nil {
				return fmt.Errorf("pipe: read a source shard: %w", err)
			}
			if len(batch) > 0 {
				select {
				case batches <- batch:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
		for range writers {
			g.Go(func() error {
				for b := range batches {
					if _, err := dst.InsertMany(gctx, b, options.InsertMany().SetOrdered(false)); err != nil {
						return fmt.Errorf("pipe: insert into the destination: %w", err)
					}
					nDocs.Add(int64(len(b)))
				}
				return nil
			})
		}
	}
	err = g.Wait()
	return nDocs.Load(), nBytes.Load(), err
}

// firstWrite polls the copiers until one has written a document, and returns how
// long after start that was (the time until ctx ends if none did).
func firstWrite(ctx context.Context, copiers []*initialsync.Copier, start time.Time) time.Duration {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, c := range copiers {
			if c.Snapshot().Docs > 0 {
				return time.Since(start)
			}
		}
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-tick.C:
		}
	}
}

// connectMajority connects as the migration connects to its destination: writes
// acknowledged by a majority, the pool sized for the replay (replay.SizePool).
func connectMajority(ctx context.Context, e topology.Endpoint) (*mongo.Client, error) {
	return connectMajorityMonitored(ctx, e, nil)
}

// connectMajorityMonitored is connectMajority with a command monitor (nil: none).
func connectMajorityMonitored(ctx context.Context, e topology.Endpoint, monitor *event.CommandMonitor) (*mongo.Client, error) {
	opts, err := e.ClientOptions()
	if err != nil {
		return nil, err
	}
	opts.SetWriteConcern(writeconcern.Majority())
	replay.SizePool(opts)
	if monitor != nil {
		opts.SetMonitor(monitor)
	}
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := client.Ping(ctx, nil); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return client, nil
}

// discardSink takes the checkpoints and relaxed index records a benchmark does not keep.
type discardSink struct{}

func (discardSink) SaveCopyProgress(string, map[string]initialsync.PartitionProgress) error {
	return nil
}
func (discardSink) RelaxedIndex(string, bson.Raw) error      { return nil }
func (discardSink) RelaxedCollection(string, bson.Raw) error { return nil }

// peakRSS is this process's peak resident set size in bytes (VmHWM).
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read the peak RSS: %w", err)
	}
	return parseVmHWM(string(b))
}

// parseVmHWM reads the "VmHWM:   1234 kB" line of /proc/PID/status.
func parseVmHWM(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64) // read, not written
			if err != nil {
				return 0, fmt.Errorf("read the peak RSS from %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM line in /proc/self/status")
}

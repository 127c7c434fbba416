package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/internal/units"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/release"
	"github.com/shardlift/shardlift/sandbox/router"
	"github.com/shardlift/shardlift/sandbox/seed"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// sandboxLabel is printed first: the sandbox must never be mistaken for a database.
const sandboxLabel = "shardlift sandbox: a test and demo tool, not a database for production."

// statusEvery is how often the load's progress is reported.
const statusEvery = 10 * time.Second

const sandboxDescription = `Starts a source and a destination sandbox sharded cluster on 127.0.0.1 (FerretDB
servers behind a router that answers as mongos), each presenting a MongoDB release (3.6
to 8.0: hello, buildInfo, FCV, the config database's formats, the internal namespaces),
optionally seeds the source and keeps a write load on it, and prints the two connection
strings first on stdout:
  source: mongodb://...
  destination: mongodb://...
It runs until interrupted (Ctrl-C or SIGTERM), then stops both clusters. Without --dir
the data lives in a temporary folder that is removed at exit; with --dir it is kept, and
a later run with the same --dir serves the same data.`

// sandboxConfig is what the sandbox flags ask for.
type sandboxConfig struct {
	shards, destShards int
	docs, rate         int
	txnRate            int // cross-shard transactions per second (load.RunTxns)
	dir                string
	auth               *wire.Credentials
	x509               bool              // --auth x509
	plain              *wire.Credentials // --auth plain:USER:PASS
	tls                bool
	oplogSize          int64
	// version and destVersion are the MongoDB releases the clusters present ("":
	// as their --dir holds, else 7.0).
	version, destVersion string
	configShard          bool
	ids                  seed.IDs
	// members is each shard's replica set size; control is where the fault hooks'
	// HTTP API listens ("": nowhere).
	members          int
	control          string
	privateHostnames bool
	// chunks is how many chunks each seeded sharded collection gets (0: a few).
	chunks int
	// latency delays the routers' split and moveChunk as a real cluster's take.
	latency router.CommandLatency
	// network delays every reply of both clusters to their clients.
	network time.Duration
	// collections adds that many sharded collections to the seed.
	collections int
}

func runSandbox(ctx context.Context, s streams, args []string) int {
	f := newFlags("sandbox", "[flags]", sandboxDescription)
	shards := f.Int("shards", 2, "`N` shards in the source cluster")
	destShards := f.Int("dest-shards", 0, "`N` shards in the destination cluster (default: as --shards)")
	docs := f.Int("docs", 0, "seed the source with `N` documents, unless --dir already holds them")
	rate := f.Int("load", 0, "keep `OPS_PER_SEC` writes per second going to the source")
	txnRate := f.Int("txn-rate", 0, "keep `N` multi-document transactions per second going to the source's sharded collections (most span shards: prepared, then committed; one in five aborted); MongoDB 4.2 and later")
	dir := f.String("dir", "", "keep the data in `DIR` (source/ and destination/) instead of a temporary folder")
	auth := f.String("auth", "", "require on routers and shards the SCRAM-SHA-256 user `USER:PASS`, or plain:USER:PASS (a PLAIN/LDAP user on $external), or x509 (client certificates required, the CA issues the X.509 user's; implies --tls)")
	useTLS := f.Bool("tls", false, "serve TLS only, with a CA and certificates made under the data folder")
	idType := f.String("id-type", "objectid", "`TYPE` of the seeded and loaded documents' _ids: objectid, or number (ints, longs and doubles mixed, as counters and snowflake ids)")
	var oplog byteSize
	f.Var(&oplog, "oplog-size", "cap each shard's oplog at `BYTES`, such as 1048576 or 1MiB (default 64 MiB)")
	version := f.String("mongodb-version", release.Default.String(), "the MongoDB release the clusters present: `VERSION` is one of "+release.List())
	destVersion := f.String("dest-mongodb-version", "", "the release the destination presents, if not --mongodb-version's (`VERSION`)")
	configShard := f.Bool("config-shard", false, "make the config server of each MongoDB 8.0 cluster a shard too (shard \"config\")")
	members := f.Int("members", 3, "`N` members in each shard's replica set (1: a single-member set, the lightest)")
	control := f.String("control", "", "serve the failure-drill API (stepdown, rollback, lag, stop, start, and stopping the load) on `HOST:PORT`, such as 127.0.0.1:27100")
	privateHostnames := f.Bool("private-hostnames", false, "name the shards and config servers in listShards by names that do not resolve here, as a cluster behind its own DNS; prints host-map: FILE, for --host-map")
	chunks := f.Int("chunks", 0, "give each seeded sharded collection `N` chunks, owned by the shards in runs as on a balanced cluster (with --docs)")
	latency := f.String("command-latency", "off", "make split and moveChunk (and moveRange) on both routers take as long as on a real cluster: `SETTING` is realistic (moveChunk=1s,split=50ms), off, or a list such as moveChunk=2s,split=100ms")
	network := f.Duration("latency", 0, "delay every reply of both clusters to their clients by `D`, such as 40ms, as a network between this workstation and the clusters would (0: none)")
	collections := f.Int("collections", 0, "add `N` sharded collections (many.items_0001, ...) to the seed, together holding as many documents as inventory.items (with --docs)")
	if code, ok := f.parse(s, args); !ok {
		return code
	}
	if f.NArg() > 0 {
		return usageError(s, f.prog, "unexpected argument %q", f.Arg(0))
	}
	ids, err := seed.ParseIDs(*idType)
	if err != nil {
		return usageError(s, f.prog, "--id-type: %v", err)
	}
	cfg := sandboxConfig{shards: *shards, destShards: *destShards, docs: *docs, rate: *rate, txnRate: *txnRate, dir: *dir, tls: *useTLS, oplogSize: int64(oplog), configShard: *configShard, ids: ids,
		members: *members, control: *control, privateHostnames: *privateHostnames, chunks: *chunks, network: *network, collections: *collections}
	if cfg.latency, err = router.ParseCommandLatency(*latency); err != nil {
		return usageError(s, f.prog, "--command-latency: %v", err)
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	// Like the shard counts, the releases default to what a --dir holds.
	if set["mongodb-version"] {
		cfg.version = *version
	}
	cfg.destVersion = cfg.version
	if set["dest-mongodb-version"] {
		cfg.destVersion = *destVersion
	}
	for _, v := range []struct{ flag, value string }{{"mongodb-version", cfg.version}, {"dest-mongodb-version", cfg.destVersion}} {
		if v.value == "" {
			continue
		}
		if _, err := release.Parse(v.value); err != nil {
			return usageError(s, f.prog, "--%s %s: %v", v.flag, v.value, err)
		}
	}
	if cfg.configShard && !isRelease80(cfg.version) && !isRelease80(cfg.destVersion) {
		return usageError(s, f.prog, "--config-shard needs a MongoDB 8.0 cluster: add --mongodb-version 8.0 or --dest-mongodb-version 8.0")
	}
	switch {
	case set["shards"] && cfg.shards < 1:
		return usageError(s, f.prog, "--shards %d: a cluster needs at least 1 shard", cfg.shards)
	case set["dest-shards"] && cfg.destShards < 1:
		return usageError(s, f.prog, "--dest-shards %d: a cluster needs at least 1 shard", cfg.destShards)
	case cfg.docs < 0:
		return usageError(s, f.prog, "--docs %d: the document count cannot be negative", cfg.docs)
	case cfg.chunks < 0:
		return usageError(s, f.prog, "--chunks %d: the chunk count cannot be negative", cfg.chunks)
	case cfg.collections < 0:
		return usageError(s, f.prog, "--collections %d: the collection count cannot be negative", cfg.collections)
	case cfg.network < 0:
		return usageError(s, f.prog, "--latency %v: the delay cannot be negative", cfg.network)
	case cfg.rate < 0:
		return usageError(s, f.prog, "--load %d: the write rate cannot be negative", cfg.rate)
	case cfg.txnRate < 0:
		return usageError(s, f.prog, "--txn-rate %d: the transaction rate cannot be negative", cfg.txnRate)
	case cfg.txnRate > 0 && cfg.version != "" && !crossShardTransactions(cfg.version):
		return usageError(s, f.prog, "--txn-rate needs a MongoDB 4.2 or later source (transactions span shards from 4.2): add --mongodb-version 4.2 or later")
	case cfg.members < 1 || cfg.members > 7:
		return usageError(s, f.prog, "--members %d: a shard's replica set has 1 to 7 members here", cfg.members)
	}
	// A --dir that already holds clusters restarts them as they are: without an explicit
	// --shards the sandbox takes each cluster's shard count from its folder (0 = "as the
	// folder holds, else 2"); --dest-shards follows an explicit --shards.
	if !set["shards"] {
		cfg.shards = 0
	}
	if !set["dest-shards"] {
		cfg.destShards = cfg.shards
	}
	if *auth != "" {
		if err := cfg.setAuth(*auth); err != nil {
			return usageError(s, f.prog, "%v", err)
		}
	}
	s.err = &syncWriter{w: s.err}
	return sandboxMain(ctx, s, cfg)
}

// sandboxMain runs the sandbox until ctx ends.
//
//	data folder ─► start source, destination ─► seed the source (unless already seeded)
//	    ─► print URIs ─► load + status lines ... ctx done ─► stop load ─► close clusters
//	    ─► remove a temporary data folder
func sandboxMain(ctx context.Context, s streams, cfg sandboxConfig) (code int) {
	fmt.Fprintln(s.err, sandboxLabel)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(s.err, "shardlift sandbox: "+format+"\n", a...)
		return exitFail
	}
	root := cfg.dir
	if root == "" {
		tmp, err := os.MkdirTemp("", "shardlift-sandbox-")
		if err != nil {
			return fail("make a temporary data folder: %v", err)
		}
		root = tmp
		defer func() {
			if err := os.RemoveAll(tmp); err != nil {
				code = fail("remove the temporary data folder: %v", err)
			}
		}()
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return fail("make the data folder: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(name string, shards int, version string) (*sandbox.Cluster, error) {
		return sandbox.Start(ctx, name, sandbox.Options{
			Shards:           shards,
			Dir:              filepath.Join(root, name),
			Auth:             cfg.auth,
			X509:             cfg.x509,
			Plain:            cfg.plain,
			TLS:              cfg.tls,
			OplogSize:        cfg.oplogSize,
			MongoDBVersion:   version,
			ConfigShard:      cfg.configShard && isRelease80(version),
			PrivateHostnames: cfg.privateHostnames,
			Members:          cfg.members,
			CommandLatency:   cfg.latency,
			Latency:          cfg.network,
			Logger:           logger.With("cluster", name),
		})
	}
	closeCluster := func(name string, c *sandbox.Cluster) {
		if err := c.Close(); err != nil {
			code = fail("stop the %s cluster: %v", name, err)
		}
	}
	src, err := start("source", cfg.shards, cfg.version)
	if err != nil {
		return fail("start the source cluster: %v", err)
	}
	defer closeCluster("source", src)
	dst, err := start("destination", cfg.destShards, cfg.destVersion)
	if err != nil {
		return fail("start the destination cluster: %v", err)
	}
	defer closeCluster("destination", dst)

	client, err := src.Connect(ctx)
	if err != nil {
		return fail("connect to the source router: %v", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	if cfg.docs > 0 {
		if err := seedOnce(ctx, s, client, seed.Options{Docs: cfg.docs, IDs: cfg.ids, Chunks: cfg.chunks, Collections: cfg.collections}); err != nil {
			if ctx.Err() != nil && cfg.dir != "" {
				return fail("interrupted while seeding: %s holds part of the data set, and a restart on it will not seed again; remove it to start over", cfg.dir)
			}
			return fail("%v", err)
		}
	}

	var stats load.Stats
	var txnStats load.TxnStats
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadEnded := make(chan struct{})
	loading := cfg.rate > 0 || cfg.txnRate > 0
	// loadReport is the loads' counts, one line.
	loadReport := func() string {
		var parts []string
		if cfg.rate > 0 {
			parts = append(parts, stats.String())
		}
		if cfg.txnRate > 0 {
			parts = append(parts, txnStats.String())
		}
		return strings.Join(parts, "; ")
	}
	// endLoad stops the load and returns once its last write is answered.
	endLoad := func() string {
		stopLoad()
		<-loadEnded
		return loadReport()
	}
	if cfg.control != "" {
		h := controlHandler(map[string]*sandbox.Cluster{"source": src, "destination": dst}, loading, endLoad)
		addr, stopControl, err := serveControl(cfg.control, h, logger)
		if err != nil {
			return fail("--control %s: %v", cfg.control, err)
		}
		defer stopControl()
		cfg.control = addr
	}
	fmt.Fprintf(s.out, "source: %s\ndestination: %s\n", src.URI(), dst.URI())
	if cfg.control != "" {
		fmt.Fprintf(s.out, "control: http://%s/\n", cfg.control)
	}
	if cfg.privateHostnames {
		path := filepath.Join(root, "host-map.txt")
		if err := sandbox.WriteHostMap(path, src, dst); err != nil {
			return fail("write the host map: %v", err)
		}
		fmt.Fprintf(s.out, "host-map: %s\n", path)
	}
	if cfg.tls {
		// Each cluster has its own CA; the URIs name them too (tlsCAFile).
		fmt.Fprintf(s.out, "source ca: %s\ndestination ca: %s\n", src.CAFile(), dst.CAFile())
	}

	// loadDone has each load's end (an error when it could not start); it is closed,
	// and loadEnded with it, once every load ended.
	loadDone := make(chan error, 2)
	var loads sync.WaitGroup
	if cfg.rate > 0 {
		fmt.Fprintf(s.err, "load: %d writes/s on the source\n", cfg.rate)
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
		loads.Go(func() { loadDone <- load.RunIDs(loadCtx, client, cfg.rate, cfg.ids, rnd, &stats) })
	}
	if cfg.txnRate > 0 {
		fmt.Fprintf(s.err, "load: %d transactions/s on the source\n", cfg.txnRate)
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		loads.Go(func() { loadDone <- load.RunTxns(loadCtx, client, cfg.txnRate, cfg.ids, rnd, &txnStats) })
	}
	go func() {
		loads.Wait()
		close(loadDone)
		close(loadEnded)
	}()
	ticker := time.NewTicker(statusEvery)
	defer ticker.Stop()
	fmt.Fprintln(s.err, "running; press Ctrl-C to stop")
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case err, ok := <-loadDone:
			if !ok {
				loadDone = nil
				continue
			}
			if err != nil {
				return fail("%v", err)
			}
		case <-ticker.C:
			if loading {
				fmt.Fprintf(s.err, "load: %s\n", loadReport())
			}
		}
	}
	fmt.Fprintln(s.err, "stopping")
	stopLoad()
	<-loadEnded
	if loading {
		fmt.Fprintf(s.err, "load: %s\n", loadReport())
	}
	return exitOK
}

// controlHandler is the clusters' failure-drill API (sandbox.Control) and
// POST /load/stop, which stops the write load as the applications stop writing
// before a cutover, and answers once its last write is done, with its counts.
func controlHandler(clusters map[string]*sandbox.Cluster, loading bool, endLoad func() string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", sandbox.Control(clusters))
	mux.HandleFunc("POST /load/stop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !loading {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(map[string]string{"error": "no load runs: start the sandbox with --load OPS_PER_SEC for one"})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"action": "stop load", "load": endLoad()})
	})
	return mux
}

// serveControl serves the control API h on addr until stop is called; bound is the
// address it listens on (addr's port may be 0).
func serveControl(addr string, h http.Handler, logger *slog.Logger) (bound string, stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("control API stopped", "err", err)
		}
	}()
	return l.Addr().String(), func() { srv.Close() }, nil
}

// setAuth takes --auth: x509, plain:USER:PASS or USER:PASS (SCRAM).
func (cfg *sandboxConfig) setAuth(value string) error {
	if strings.EqualFold(value, "x509") {
		cfg.x509, cfg.tls = true, true
		return nil
	}
	rest, plain := strings.CutPrefix(value, "plain:")
	user, pass, ok := strings.Cut(rest, ":")
	if !ok || user == "" || pass == "" {
		return fmt.Errorf("--auth %s: want USER:PASS, plain:USER:PASS (both non-empty) or x509", maskAuth(value))
	}
	if plain {
		cfg.plain = &wire.Credentials{User: user, Password: pass}
	} else {
		cfg.auth = &wire.Credentials{User: user, Password: pass}
	}
	return nil
}

// maskAuth is an --auth value with its password masked.
func maskAuth(value string) string {
	if i := strings.LastIndex(value, ":"); i >= 0 {
		return value[:i+1] + "****"
	}
	return value
}

// isRelease80 reports whether a --mongodb-version value names 8.0.
func isRelease80(version string) bool {
	r, err := release.Parse(version)
	return err == nil && r == release.V80
}

func crossShardTransactions(version string) bool {
	r, err := release.Parse(version)
	return err == nil && r.CrossShardTransactions()
}

// seedOnce seeds the source unless it already holds the data set (a restart on kept data).
func seedOnce(ctx context.Context, s streams, client *mongo.Client, o seed.Options) error {
	present, err := seed.Present(ctx, client)
	if err != nil {
		return err
	}
	if present {
		fmt.Fprintln(s.err, "seed: the source already holds the data set; not seeding it again")
		return nil
	}
	fmt.Fprintf(s.err, "seed: inserting %d documents with %s _ids into the source\n", o.Docs, o.IDs)
	began := time.Now()
	sum, err := seed.PopulateWith(ctx, client, o, rand.New(rand.NewPCG(seed.Source[0], seed.Source[1])))
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "seed: %d documents (%s) in %d collections in %s\n",
		sum.Docs(), units.Bytes(sum.Bytes()), len(sum.Collections), time.Since(began).Round(time.Millisecond))
	return nil
}

// byteSize is a flag value in bytes that also takes units ("64MiB", "1 GB").
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprint(int64(*b)) }

func (b *byteSize) Set(v string) error {
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return fmt.Errorf("not a size in bytes: %w", err)
	}
	if n > 1<<62 {
		return fmt.Errorf("%s is too large", v)
	}
	*b = byteSize(n)
	return nil
}

// syncWriter serializes writes from the command, the load and the clusters' loggers.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

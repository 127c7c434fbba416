package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/units"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Figure 16 (issue 17) is a copy that outlasts a deliberately small oplog window
// and still ends verified. A real `shardlift migrate` child (its oplog buffer on,
// the default) migrates the seed data set of Options.Docs documents while the
// sandbox's mixed load writes on the source: windowQuietLoad writes/s before the
// migration, when each source shard's oplog is cut down to hold windowTarget of
// it (measured during a warm-up), more than the minute that the pre-migration
// check asks of a buffered shard's oplog (validate.BufferStartNeed); then, once
// the migration syncs, the applications' busy hour: windowLoad writes/s asked.
// On the sandbox the source's writes share the cores with the copy, and the
// writes it absorbs during the copy fall (15 of 50 writes/s asked, in a run at
// load 15): at an even load the window grew threefold during the copy. While the copy runs, each source shard's oplog is read
// directly every windowPoll (its oldest and newest entries): the window it held,
// and whether its oldest entry passed the migration's start (the entries at T0
// rolled off the source while the copy still needed them; only the buffer kept
// them). Then the load stops, the cutover runs to done (Shardlift's verification),
// and both clusters are compared document by document (faults.Compare).
//
// The row: the copy's time against the longest of the source shards' windows at
// the copy's end (ratio > 1, and every oplog rolled past the copy's start: the
// source no longer held what the replay starts from), the buffers' peak, and
// whether it ended verified.

// windowQuietLoad is figure 16's load in writes per second before the migration,
// and windowLoad its load once the migration syncs.
const (
	windowQuietLoad = 10
	windowLoad      = 50
)

// windowTarget is the oplog window figure 16 gives each source shard: the
// pre-migration check asks a buffered shard's oplog to hold a minute.
const windowTarget = 75 * time.Second

// windowSettle is how long figure 16 lets the load fill a cut oplog before it
// reads its window.
const windowSettle = 15 * time.Second

// windowWarmUp is how long the load runs before its oplog rate is measured, and
// windowMeasure how long that measurement takes.
const (
	windowWarmUp  = 15 * time.Second
	windowMeasure = 30 * time.Second
)

// windowPoll is how often figure 16 reads the status and the source's oplogs.
const windowPoll = 2 * time.Second

// minWindowOplog is the smallest oplog figure 16 gives a shard.
const minWindowOplog = 16 << 10

// oplogEdges is one read of a shard's oplog: its oldest and newest entries.
type oplogEdges struct {
	at            time.Time
	first, last   primitive.Timestamp
	used, maxSize int64
}

// window is the span of time the oplog held at the read.
func (e oplogEdges) window() time.Duration {
	if e.last.T < e.first.T {
		return 0
	}
	return time.Duration(e.last.T-e.first.T) * time.Second
}

// windowWatch gathers the reads of every source shard's oplog during a copy.
type windowWatch struct {
	start   time.Time             // the migration's start: T0 is read after it
	windows []time.Duration       // every window read during the copy, all shards
	rolled  map[string]time.Time  // when each shard's oldest entry first passed start
	last    map[string]oplogEdges // each shard's latest read
}

func newWindowWatch(start time.Time) *windowWatch {
	return &windowWatch{start: start, rolled: map[string]time.Time{}, last: map[string]oplogEdges{}}
}

// add records one read of shard's oplog.
func (w *windowWatch) add(shard string, e oplogEdges) {
	w.last[shard] = e
	w.windows = append(w.windows, e.window())
	if _, ok := w.rolled[shard]; !ok && int64(e.first.T) > w.start.Unix() {
		w.rolled[shard] = e.at
	}
}

// longest is the largest window read, and median the median one (0 for none).
func (w *windowWatch) longest() time.Duration {
	if len(w.windows) == 0 {
		return 0
	}
	return slices.Max(w.windows)
}

// atEnd is the longest of the shards' windows at their latest reads: at the
// copy's end, how far back the source's oplogs still reached.
func (w *windowWatch) atEnd() time.Duration {
	var d time.Duration
	for _, e := range w.last {
		d = max(d, e.window())
	}
	return d
}

func (w *windowWatch) median() time.Duration {
	if len(w.windows) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(w.windows))
	return s[len(s)/2]
}

// rolledPast is how many of the shards' oplogs no longer held the migration's
// start by their last read.
func (w *windowWatch) rolledPast() int { return len(w.rolled) }

// outlasted reports whether a copy of took outlasted the oplog windows: every
// shard's oplog (of shards) rolled past the copy's start while it ran, and the
// copy took longer than the window each held at its end. The windows read
// earlier may be longer (on the sandbox the source absorbs fewer writes once the
// copy shares its cores): they are shown, not judged.
func (w *windowWatch) outlasted(took time.Duration, shards int) bool {
	return len(w.last) == shards && took > w.atEnd() && w.rolledPast() == shards
}

// oplogWindow is figure 16.
func (r *runner) oplogWindow(ctx context.Context) error {
	if r.o.Shardlift == "" {
		return errors.New("figure 16 runs `shardlift migrate`: give the binary with --shardlift (make bench builds bin/shardlift)")
	}
	pair, err := startOwnPair(ctx, "window", sandbox.Options{Shards: r.o.Shards}, r.logf)
	if err != nil {
		return err
	}
	defer pair.stop(ctx, r.logf)
	dir, src, dst, srcC := pair.dir, pair.src, pair.dst, pair.srcC
	began := time.Now()
	if _, err := seed.Populate(ctx, srcC, r.o.Docs, rand.New(rand.NewPCG(0x5eed, 16))); err != nil {
		return err
	}
	r.logf("16. seeded the source with the seed data set of %d documents in %v", r.o.Docs, time.Since(began).Round(time.Second))

	shards := src.Shards()
	direct := make(map[string]*mongo.Client, len(shards))
	for _, sh := range shards {
		c, err := mongo.Connect(ctx, options.Client().ApplyURI("mongodb://"+sh.Addr+"/?directConnection=true").SetTimeout(30*time.Second))
		if err != nil {
			return fmt.Errorf("connect to source shard %s: %w", sh.Name, err)
		}
		defer c.Disconnect(context.WithoutCancel(ctx))
		direct[sh.Name] = c
	}

	// The quiet load, then the busy hour's extra writes beside it.
	var stats, busy load.Stats
	total := func() int64 { return stats.Total() + busy.Total() }
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 2)
	go func() { loadDone <- load.Run(loadCtx, srcC, windowQuietLoad, rand.New(rand.NewPCG(16, 61)), &stats) }()
	loads := 1
	busier := func() {
		loads++
		go func() {
			loadDone <- load.Run(loadCtx, srcC, windowLoad-windowQuietLoad, rand.New(rand.NewPCG(16, 62)), &busy)
		}()
	}
	endLoad := func() error {
		stopLoad()
		var errs []error
		for ; loads > 0; loads-- {
			errs = append(errs, <-loadDone)
		}
		return errors.Join(errs...)
	}
	defer endLoad()
	if err := sleepCtx(ctx, windowWarmUp); err != nil {
		return err
	}

	// Each shard's oplog cut down to windowTarget of the load, as measured.
	from := time.Now()
	fromWrites := total()
	if err := sleepCtx(ctx, windowMeasure); err != nil {
		return err
	}
	measured := time.Since(from)
	rate := float64(total()-fromWrites) / measured.Seconds()
	sizes := make(map[string]int64, len(shards))
	for _, sh := range shards {
		bytes, err := oplogBytesSince(ctx, direct[sh.Name], from)
		if err != nil {
			return fmt.Errorf("source shard %s: %w", sh.Name, err)
		}
		sizes[sh.Name] = max(int64(float64(bytes)/measured.Seconds()*windowTarget.Seconds()), minWindowOplog)
		if err := src.SetOplogSize(sh.Name, sizes[sh.Name]); err != nil {
			return err
		}
		r.logf("   shard %s: %s of oplog in %.0f s at %.0f writes/s: oplog cut to %s", sh.Name, units.Bytes(bytes), measured.Seconds(), rate, units.Bytes(sizes[sh.Name]))
	}
	// The oplog's cap counts its entries as the shard stores them, a little more
	// than their BSON: once the load has filled the smaller oplogs, each is sized
	// again by the window it then holds.
	for round := 0; round < 2; round++ {
		if err := sleepCtx(ctx, windowSettle); err != nil {
			return err
		}
		for _, sh := range shards {
			e, err := readOplogEdges(ctx, direct[sh.Name])
			if err != nil {
				return fmt.Errorf("source shard %s: %w", sh.Name, err)
			}
			r.logf("   shard %s: oplog window %v (%s of %s)", sh.Name, e.window(), units.Bytes(e.used), units.Bytes(e.maxSize))
			if round == 0 && e.window() > 0 {
				sizes[sh.Name] = max(int64(float64(sizes[sh.Name])*windowTarget.Seconds()/e.window().Seconds()), minWindowOplog)
				if err := src.SetOplogSize(sh.Name, sizes[sh.Name]); err != nil {
					return err
				}
				r.logf("   shard %s: oplog cut to %s", sh.Name, units.Bytes(sizes[sh.Name]))
			}
		}
	}

	api, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	m, err := faults.StartMigrator(r.o.Shardlift, []string{"--source", src.URI(), "--destination", dst.URI(),
		"--state", filepath.Join(dir, "state.db"), "--api", api, "--timeout", childTimeout}, api, r.o.Log)
	if err != nil {
		return err
	}
	defer m.Kill()
	// The copy starts once the migration syncs, after T0 was read: its time is
	// counted from the first status that shows it, and an oplog whose oldest entry
	// is newer than that no longer holds T0.
	var watch *windowWatch
	var start time.Time
	var startWrites int64
	var copyTook time.Duration
	var bufferPeak int64
	var last faults.Status
	tick := time.NewTicker(windowPoll)
	defer tick.Stop()
	for copyTook == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if code, exited := m.Exited(); exited {
			return fmt.Errorf("shardlift migrate exited with code %d during the copy (state %s: %s; its output is above)", code, last.State, last.Reason)
		}
		st, err := m.API().Status(ctx)
		if err != nil {
			continue // not listening yet, or busy
		}
		last = st
		if st.State == "failed" {
			return fmt.Errorf("the migration failed: %s", st.Reason)
		}
		if watch == nil {
			if st.State != "syncing" {
				continue
			}
			start, startWrites = time.Now(), total()
			watch = newWindowWatch(start)
			busier()
		}
		for _, sh := range shards {
			e, err := readOplogEdges(ctx, direct[sh.Name])
			if err != nil {
				r.logf("   read source shard %s's oplog: %v", sh.Name, err)
				continue
			}
			watch.add(sh.Name, e)
		}
		var buffered int64
		for _, sh := range st.Shards {
			if sh.Buffer != nil {
				buffered += sh.Buffer.Bytes
			}
		}
		bufferPeak = max(bufferPeak, buffered)
		if replaying(st) {
			copyTook = time.Since(start)
		}
	}
	during := float64(total()-startWrites) / copyTook.Seconds()
	r.logf("   copy ended after %.1f s (load %.0f writes/s meanwhile); oplog windows read on the source meanwhile: median %v, longest %v, at its end %v; %d of %d shards' oplogs rolled past the copy's start (after T0); buffers' peak %s",
		copyTook.Seconds(), during, watch.median(), watch.longest(), watch.atEnd(), watch.rolledPast(), len(shards), units.Bytes(bufferPeak))

	// Ready, then the applications stop and the cutover runs to done.
	if _, err := m.Await(ctx, "ready", func(s faults.Status) bool { return s.State == "ready" }); err != nil {
		return err
	}
	if err := endLoad(); err != nil {
		return fmt.Errorf("the load: %w", err)
	}
	r.logf("   ready; the load stopped after %d writes (%s; the busy hour's %s)", total(), stats.String(), busy.String())
	if _, err := m.API().Post(ctx, "/cutover/start"); err != nil {
		return fmt.Errorf("start the cutover: %w", err)
	}
	if _, err := m.Await(ctx, "the optime gap closed", faults.Status.GapClosed); err != nil {
		return err
	}
	st, err := m.API().Post(ctx, "/cutover/done")
	if err != nil {
		return fmt.Errorf("I'm done: %w", err)
	}
	verified := st.State == "done"
	r.logf("   after I'm done: %s (%s)", st.State, st.Reason)
	if _, err := m.Wait(ctx); err != nil {
		return err
	}
	dstC, err := topology.Connect(ctx, topology.Endpoint{URI: dst.URI(), Timeout: time.Minute})
	if err != nil {
		return fmt.Errorf("connect to the destination: %w", err)
	}
	defer dstC.Disconnect(context.WithoutCancel(ctx))
	d, err := faults.Compare(ctx, srcC, dstC)
	if err != nil {
		return err
	}
	r.logf("   own comparison: %d documents of %d namespaces, %d lost, %d duplicated, %d different, %d extra", d.Documents, d.Namespaces, d.Lost, d.Duplicated, d.Different, d.Extra)

	verdict := Missed
	if verified && d.OK() && watch.outlasted(copyTook, len(shards)) {
		verdict = Met
	}
	ver := "NO: " + st.State
	if verified {
		ver = "yes"
		if st.Verification != nil {
			ver = fmt.Sprintf("yes (%s documents)", thousands(st.Verification.Documents))
		}
	}
	own := "same documents"
	if !d.OK() {
		own = fmt.Sprintf("%d lost, %d duplicated, %d different, %d extra", d.Lost, d.Duplicated, d.Different, d.Extra)
	}
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("16. a copy outlasting the source's oplog window, seed data set of %s docs, %d shards, load %d then %d writes/s", thousands(int64(r.o.Docs)), len(shards), windowQuietLoad, windowLoad),
		Shardlift: fmt.Sprintf("copy %.0f s; buffers' peak %s; verified: %s; both clusters compared: %s", copyTook.Seconds(), units.Bytes(bufferPeak), ver, own),
		Ceiling:   fmt.Sprintf("oplog window %.0f s at the copy's end (the longest of the shards'; during the copy median %.0f s, longest %.0f s); %d of %d oplogs rolled past the copy's start", watch.atEnd().Seconds(), watch.median().Seconds(), watch.longest().Seconds(), watch.rolledPast(), len(shards)),
		Ratio:     Ratio(copyTook.Seconds(), watch.atEnd().Seconds()),
		Target:    "> 1, verified",
		Verdict:   verdict,
	})
	r.note("figure 16: each source shard's oplog cut to hold %v of the load before the migration (measured at %.0f writes/s); once the migration synced %d writes/s asked, %.0f writes/s absorbed during the copy; the oplog buffer (on by default) holds what the oplog loses; ratio = copy time / the longest of the source shards' oplog windows at the copy's end (each oplog read every %v during the copy)", windowTarget, rate, windowLoad, during, windowPoll)
	return nil
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readOplogEdges reads a shard's oldest and newest oplog entries and the oplog's
// size, on a direct connection.
func readOplogEdges(ctx context.Context, c *mongo.Client) (oplogEdges, error) {
	e := oplogEdges{at: time.Now()}
	coll := c.Database("local").Collection("oplog.rs")
	for _, end := range []struct {
		natural int
		ts      *primitive.Timestamp
	}{{1, &e.first}, {-1, &e.last}} {
		raw, err := coll.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: end.natural}}).SetProjection(bson.D{{Key: "ts", Value: 1}})).Raw()
		if err != nil {
			return e, fmt.Errorf("read the oplog: %w", err)
		}
		t, i, ok := raw.Lookup("ts").TimestampOK()
		if !ok {
			return e, fmt.Errorf("an oplog entry without a timestamp: %s", raw)
		}
		*end.ts = primitive.Timestamp{T: t, I: i}
	}
	var stats struct {
		Size    int64 `bson:"size"`
		MaxSize int64 `bson:"maxSize"`
	}
	if err := c.Database("local").RunCommand(ctx, bson.D{{Key: "collStats", Value: "oplog.rs"}}).Decode(&stats); err == nil {
		e.used, e.maxSize = stats.Size, stats.MaxSize
	}
	return e, nil
}

// oplogBytesSince sums the sizes of a shard's oplog entries written from t on.
func oplogBytesSince(ctx context.Context, c *mongo.Client, t time.Time) (int64, error) {
	cur, err := c.Database("local").Collection("oplog.rs").Find(ctx,
		bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: primitive.Timestamp{T: uint32(t.Unix())}}}}})
	if err != nil {
		return 0, fmt.Errorf("read the oplog: %w", err)
	}
	defer cur.Close(ctx)
	var n int64
	for cur.Next(ctx) {
		n += int64(len(cur.Current))
	}
	return n, cur.Err()
}

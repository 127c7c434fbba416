package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Figure 6 (issue 13) is what a user sees with
//
//	shardlift sandbox --mongodb-version 8.0 --docs 20000 --load 300 --id-type number
//	shardlift migrate --source ... --destination ... --api ...
//
// on two fresh 8.0 sandboxes of 2 shards: the sandbox command's own mixed load
// (package sandbox/load) on the numeric-_id seed, and a real `shardlift migrate`
// child. It reports, side by side, the load the source sustained (the sandbox command
// drops writes more than a second late, so a source falling behind shows as a lower
// rate), how long after the copy the migration became ready, and the lag every second
// of the window after the copy (the largest shard lag, as `shardlift status` shows it,
// 1 s resolution).

// migrateWarmUp is how long the load runs before the migration starts: the oplog
// check of validation measures the write rate, and a sandbox that has just been
// seeded would show the seed's burst.
const migrateWarmUp = 20 * time.Second

// migratePoll is how often the status and the load's counter are read.
const migratePoll = time.Second

// migrateResult is figure 6's outcome.
type migrateResult struct {
	copyEnded  time.Duration // from the migration's start to every shard replaying
	readyAfter time.Duration // from copyEnded to state ready; < 0 when never
	lags       []float64     // the largest shard lag, every poll after the copy
	readyLags  []float64     // the same, from the first poll that found it ready
	// rates are the load's writes per second over each window of loadWindow after the
	// copy; during is its rate while the copy ran.
	rates  []float64
	during float64
	total  float64 // over the whole window after the copy
	// verified is the continuous verification's progress at the end ("" when it
	// never ran): what it read while the lags were measured.
	verified string
}

// loadWindow is the span of each sustained-rate sample.
const loadWindow = 10 * time.Second

// migrateUnderLoad is figure 6.
func (r *runner) migrateUnderLoad(ctx context.Context) error {
	if r.o.Shardlift == "" {
		return errors.New("figure 6 runs `shardlift migrate`: give the binary with --shardlift (make bench builds bin/shardlift)")
	}
	docs := r.o.MigrateDocs
	r.logf("6. shardlift migrate of 8.0 sandboxes (2 shards, %d documents, numeric _ids) under the sandbox load of %d writes/s, %v after the copy", docs, r.o.MigrateLoad, r.o.MigrateFor)
	res, err := measureMigration(ctx, r.o.Shardlift, docs, r.o.MigrateLoad, r.o.MigrateFor, r.o.Log, r.logf)
	if err != nil {
		return err
	}
	median, worst := medianWorst(res.lags)
	readyMedian, readyWorst := medianWorst(res.readyLags)
	minRate := math.NaN()
	if len(res.rates) > 0 {
		minRate = slices.Min(res.rates)
	}
	ready := "never ready"
	if res.readyAfter >= 0 {
		ready = fmt.Sprintf("ready %.0f s after the copy", res.readyAfter.Seconds())
	}
	verified := "the continuous verification never ran"
	if res.verified != "" {
		verified = "the continuous verification compared " + res.verified
	}
	over := 0
	for _, l := range res.readyLags {
		if l >= 2 {
			over++
		}
	}
	r.logf("   copy ended %v after the start; %s; lag median %.0f s, worst %.0f s (once ready: %.0f s, %.0f s, 2 s or more in %d of %d polls); load %.0f writes/s (slowest %v: %.0f, during the copy %.0f); %s",
		res.copyEnded.Round(time.Second), ready, median, worst, readyMedian, readyWorst, over, len(res.readyLags), res.total, loadWindow, minRate, res.during, verified)
	ratio := Ratio(res.total, float64(r.o.MigrateLoad))
	met := res.readyAfter >= 0 && res.readyAfter <= time.Minute && readyWorst < 2 && ratio >= 0.95
	verdict := Missed
	if met {
		verdict = Met
	}
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("6. migrate 8.0, %s numeric-_id docs, sandbox load, %v", thousands(int64(docs)), r.o.MigrateFor.Round(time.Second)),
		Shardlift: fmt.Sprintf("%s; lag once ready: median %.0f s, worst %.0f s", ready, readyMedian, readyWorst),
		Ceiling:   fmt.Sprintf("load %.0f of %d writes/s asked (slowest %v: %.0f)", res.total, r.o.MigrateLoad, loadWindow, minRate),
		Ratio:     ratio,
		Target:    "ready <= 60 s, then lag < 2 s; load >= 0.95",
		Verdict:   verdict,
	})
	r.note("figure 6: `shardlift sandbox --mongodb-version 8.0 --docs N --load %d --id-type number` in this process, then `shardlift migrate` (child process), which copied, built indexes and replayed %v after it started, the load running %.0f writes/s meanwhile; lag = the largest shard lag of `shardlift status` (1 s resolution), read every %v: from the copy's end, median %.0f s, worst %.0f s; ratio = load achieved / asked after the copy",
		r.o.MigrateLoad, res.copyEnded.Round(time.Second), res.during, migratePoll, median, worst)
	return nil
}

// measureMigration runs figure 6 on its own clusters.
func measureMigration(ctx context.Context, bin string, docs, rate int, window time.Duration, log io.Writer, logf func(string, ...any)) (migrateResult, error) {
	res := migrateResult{readyAfter: -1}
	pair, err := startOwnPair(ctx, "migrate", sandbox.Options{Shards: 2, MongoDBVersion: "8.0"}, logf)
	if err != nil {
		return res, err
	}
	defer pair.stop(ctx, logf)
	dir, src, dst, client := pair.dir, pair.src, pair.dst, pair.srcC
	if _, err := seed.PopulateIDs(ctx, client, docs, rand.New(rand.NewPCG(0x5eed, 0x5ba1d)), seed.NumberIDs); err != nil {
		return res, err
	}

	var stats load.Stats
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	go func() {
		loadDone <- load.RunIDs(loadCtx, client, rate, seed.NumberIDs, rand.New(rand.NewPCG(6, 13)), &stats)
	}()
	defer func() {
		stopLoad()
		<-loadDone
	}()
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(migrateWarmUp):
	}

	api, err := freeLoopbackAddr()
	if err != nil {
		return res, err
	}
	m, err := faults.StartMigrator(bin, []string{"--source", src.URI(), "--destination", dst.URI(),
		"--state", filepath.Join(dir, "state.db"), "--api", api}, api, log)
	if err != nil {
		return res, err
	}
	defer m.Kill()
	return res, followMigration(ctx, m, &stats, window, &res)
}

// followMigration polls the migration until window after its copy, then cancels it.
func followMigration(ctx context.Context, m *faults.Migrator, stats *load.Stats, window time.Duration, res *migrateResult) error {
	start := time.Now()
	startWrites := stats.Total()
	var copyEnd time.Time
	var windowWrites, copyWrites int64
	tick := time.NewTicker(migratePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if code, exited := m.Exited(); exited {
			return fmt.Errorf("shardlift migrate exited with code %d before the measurement ended (its output is above)", code)
		}
		st, err := m.API().Status(ctx)
		if err != nil {
			continue // not listening yet, or busy
		}
		now, writes := time.Now(), stats.Total()
		if copyEnd.IsZero() {
			if !replaying(st) {
				continue
			}
			copyEnd, copyWrites, windowWrites = now, writes, writes
			res.copyEnded = now.Sub(start)
			res.during = float64(writes-startWrites) / res.copyEnded.Seconds()
		}
		if res.readyAfter < 0 && st.State == "ready" {
			res.readyAfter = now.Sub(copyEnd)
		}
		res.lags = append(res.lags, worstLag(st))
		if c := st.Continuous; c != nil {
			res.verified = fmt.Sprintf("%d of %d ranges", c.RangesCompared, c.Ranges)
		}
		if res.readyAfter >= 0 {
			res.readyLags = append(res.readyLags, worstLag(st))
		}
		if now.Sub(copyEnd) >= time.Duration(len(res.rates)+1)*loadWindow {
			res.rates = append(res.rates, float64(writes-windowWrites)/loadWindow.Seconds())
			windowWrites = writes
		}
		if now.Sub(copyEnd) >= window {
			res.total = float64(writes-copyWrites) / now.Sub(copyEnd).Seconds()
			if _, err := m.API().Post(ctx, "/cancel"); err != nil {
				return fmt.Errorf("cancel the migration: %w", err)
			}
			_, err := m.Wait(ctx)
			return err
		}
	}
}

// medianWorst returns the median and the largest of lags (0 for none).
func medianWorst(lags []float64) (median, worst float64) {
	if len(lags) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(lags))
	return s[len(s)/2], s[len(s)-1]
}

// replaying reports whether every shard has copied its data and replays its oplog.
func replaying(st faults.Status) bool {
	if len(st.Shards) == 0 {
		return false
	}
	for _, sh := range st.Shards {
		if sh.Phase != "catching_up" && sh.Phase != "synced" {
			return false
		}
	}
	return true
}

// worstLag is the largest known shard lag in seconds (once the copy has ended every
// shard replays, and knows its lag).
func worstLag(st faults.Status) float64 {
	worst := 0.0
	for _, sh := range st.Shards {
		if sh.LagSeconds != nil {
			worst = max(worst, *sh.LagSeconds)
		}
	}
	return worst
}

// freeLoopbackAddr is a loopback address with a port free a moment ago.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// longOnly are the scenarios the short form (make test) leaves out.
var longOnly = map[string]bool{
	"16-kill-continuous-verification": true, // reaching ready twice under the load takes minutes
	"17-index-build-killed":           true,
	"18-merge-killed":                 true,
	"19-move-primary-killed":          true,
	"20-move-range-killed":            true,
	"21-reshard-killed":               true,
	"22-kill-buffered-replay":         true, // in sync, a roll-over, a restart to sync again: over a minute
	"23-create-killed":                true,
	"24-out-killed":                   true,
}

// startFirst are the scenarios that took longest in the short form beside the
// engine's tests (2026-12-07, 2 cores at a load average of about 20: 585, 356, 341,
// 210 and 163 s; 13 took 117 s alone), slowest first: the suite runs scenarios two
// at a time, and one of these started last kept its worker busy long after the
// other had run out of work.
var startFirst = []string{"5-oplog-rollover", "8-prepared-transactions", "3-destination-away",
	"9-stepdown-during-copy", "13-kill-partitioned-copy", "1-crash-anywhere"}

// dispatchOrder is the order the workers take n scenarios in: startFirst's, then
// the others in the list's order. It returns fewer than n when startFirst names a
// scenario the list does not have.
func dispatchOrder(n int, name func(int) string) []int {
	var first, rest []int
	for i := range n {
		if slices.Contains(startFirst, name(i)) {
			first = append(first, i)
		} else {
			rest = append(rest, i)
		}
	}
	if len(first) != len(startFirst) {
		return nil
	}
	slices.SortStableFunc(first, func(a, b int) int {
		return slices.Index(startFirst, name(a)) - slices.Index(startFirst, name(b))
	})
	return append(first, rest...)
}

// TestFaultSuite runs every scenario of issue 9 on two sandboxes with a write load
// and a real `shardlift migrate` child process, and prints one line per scenario.
// Short form by default; SHARDLIFT_FAULTS_LONG=1 for the long one; SHARDLIFT_FAULTS_SEED
// replays a run (-run TestFaultSuite/<scenario> replays one scenario).
func TestFaultSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: starts sandbox clusters and shardlift child processes")
	}
	s := newSuite(t)
	form := "short"
	if s.long {
		form = "long"
	}
	t.Logf("fault suite, %s form, seed %d (replay: %s=%d)", form, s.seed, envSeed, s.seed)
	scenarios := []struct {
		name string
		run  func(*testing.T, *env, *faults.Row)
	}{
		{"1-crash-anywhere", crashAnywhere},
		{"2-source-shard-away", sourceShardAway},
		{"3-destination-away", destinationAway},
		{"4-source-router-restarts", sourceRouterRestarts},
		{"5-oplog-rollover", oplogRollover},
		{"6-cutover-under-pressure", cutoverUnderPressure},
		{"7-balancer-off-crash-cancel", balancerOffCrashCancel},
		{"7-balancer-on-expiry", balancerOnExpiry},
		{"8-prepared-transactions", preparedTransactions},
		{"9-stepdown-during-copy", stepdownDuringCopy},
		{"10-stepdown-rollback-steady", stepdownRollbackSteady},
		{"11-oplog-holes", oplogHoles},
		{"12-ddl-patterns", ddlPatterns},
		{"13-kill-partitioned-copy", killDuringPartitionedCopy},
		{"14-lagging-secondary-read", laggingSecondary},
		{"15-chunk-move-killed", chunkMoveKilled},
		{"16-kill-continuous-verification", killDuringContinuousVerification},
		{"17-index-build-killed", indexBuildKilled},
		{"18-merge-killed", mergeKilled},
		{"19-move-primary-killed", movePrimaryKilled},
		{"20-move-range-killed", moveRangeKilled},
		{"21-reshard-killed", reshardKilled},
		{"22-kill-buffered-replay", killDuringBufferedReplay},
		{"23-create-killed", createKilled},
		{"24-out-killed", outKilled},
	}
	// Scenarios run side by side (parallelScenarios at once, the slowest started
	// first: dispatchOrder): each has its own sandboxes, load and child process,
	// and spends most of its time waiting for what it checks, so that the suite's
	// time is not the sum of theirs. The table keeps the list's order.
	rows := make([]*faults.Row, len(scenarios))
	next := make(chan int)
	var workers sync.WaitGroup
	for range s.parallel {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range next {
				sc := scenarios[i]
				if longOnly[sc.name] && !s.long {
					continue // over a minute: make faults runs it
				}
				row := faults.Row{Scenario: sc.name, Seed: s.seed}
				started := false // false when -run filtered the scenario out
				ok := t.Run(sc.name, func(t *testing.T) {
					started = true
					began := time.Now()
					e := s.newEnv(t, uint64(i+1), sourceOptions[sc.name], destinationOptions[sc.name])
					sc.run(t, e, &row)
					row.Notes = strings.TrimPrefix(row.Notes+fmt.Sprintf("; %s in all", time.Since(began).Round(time.Second)), "; ")
				})
				if !started {
					continue
				}
				if !ok && row.Err == nil {
					row.Err = errors.New("the scenario failed: see the test log")
				}
				rows[i] = &row
			}
		}()
	}
	order := dispatchOrder(len(scenarios), func(i int) string { return scenarios[i].name })
	if len(order) != len(scenarios) {
		t.Fatalf("startFirst names a scenario the list does not have: %v", startFirst)
	}
	for _, i := range order {
		next <- i
	}
	close(next)
	workers.Wait()
	var table bytes.Buffer
	var ran []faults.Row
	for _, r := range rows {
		if r != nil {
			ran = append(ran, *r)
		}
	}
	if err := faults.WriteTable(&table, ran); err != nil {
		t.Fatal(err)
	}
	header := fmt.Sprintf("fault suite, %s form, seed %d\n", form, s.seed)
	t.Log("\n" + header + table.String())
	if path := os.Getenv(envReport); path != "" {
		if err := os.WriteFile(path, []byte(header+table.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// moment is where in its lifecycle a migration is, for the kills of scenario 1.
type moment int

const (
	startingUp moment = iota - 1
	copying
	indexing
	catchingUp
	steady
	cuttingOver
	finalizing
)

var momentNames = map[moment]string{startingUp: "start-up", copying: "copy", indexing: "index builds",
	catchingUp: "catch-up", steady: "steady sync", cuttingOver: "cutover", finalizing: "finalize"}

func momentOf(s faults.Status) moment {
	switch s.State {
	case "finalizing", "done":
		return finalizing
	case "cutting_over":
		return cuttingOver
	case "ready":
		return steady
	case "syncing":
		m := catchingUp
		for _, sh := range s.Shards {
			switch sh.Phase {
			case "pending", "clearing", "copying":
				return copying
			case "building_indexes":
				m = indexing
			}
		}
		return m
	}
	return startingUp
}

// destinationOptions are the destination sandboxes' options, by scenario.
var destinationOptions = map[string]sandbox.Options{
	// 2 ms between Shardlift and the destination: the replay keeps 4 batches in
	// flight per applier (1 ms or more away: see replay's farRoundTrip), so that the
	// kills land on pipelined batches in flight; nearer, it keeps one.
	"1-crash-anywhere": {Latency: 2 * time.Millisecond},
}

// 1. Crash anywhere: kill -9 at seeded random moments over copy, index builds,
// catch-up, steady sync, cutover and finalize, restarting with the same state file
// each time; it must resume and converge. The destination is a little away (see
// destinationOptions): the replay's batches are pipelined.
func crashAnywhere(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	maxDelay := map[moment]time.Duration{copying: 2 * time.Second, indexing: 300 * time.Millisecond, catchingUp: time.Second,
		steady: 3 * time.Second, cuttingOver: 2 * time.Second, finalizing: 300 * time.Millisecond}
	hit := map[moment]int{}
	var lastEnd time.Time
	done := false
	for _, target := range []moment{copying, indexing, catchingUp, steady, cuttingOver, finalizing} {
		for range e.s.size.kills[target] {
			if done {
				break
			}
			if e.m == nil || exited(e.m) {
				if st := e.storedState(); st == "done" {
					done = true
					break
				}
				e.start()
			}
			switch target {
			case cuttingOver:
				if s := e.await("ready for the cutover", 5*time.Minute, isState("ready", "cutting_over", "finalizing")); s.State == "ready" {
					e.endLoad()
					e.startCutover()
				}
			case finalizing:
				s, finished := e.awaitUnlessDone("cutting over or finalizing", isState("cutting_over", "finalizing"))
				if finished {
					done = true
					continue
				}
				if s.State == "cutting_over" {
					e.await("the optime gap closed", 5*time.Minute, func(s faults.Status) bool { return s.GapClosed() })
					go e.m.API().Post(e.ctx, "/cutover/done") // answered, or cut by the kill
				}
			}
			s, finished := e.awaitUnlessDone("reached "+momentNames[target], func(s faults.Status) bool { return momentOf(s) >= target })
			if finished {
				done = true
				continue
			}
			time.Sleep(time.Duration(e.rnd.Int64N(int64(maxDelay[target]))))
			if cur, err := e.m.API().Status(e.ctx); err == nil {
				s = cur
			}
			if code, ex := e.m.Exited(); ex {
				if code != 0 {
					t.Fatalf("shardlift migrate exited with %d before the kill at %s", code, momentNames[target])
				}
				done = true
				break
			}
			e.kill(fmt.Sprintf("aiming at %s, at %s", momentNames[target], s.Phases()))
			hit[momentOf(s)]++
			lastEnd = time.Now()
		}
	}
	if !done {
		if st := e.storedState(); st != "done" {
			e.start()
			e.finish()
		}
	}
	row.Converge = time.Since(lastEnd)
	var parts []string
	for m := startingUp; m <= finalizing; m++ {
		if hit[m] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", momentNames[m], hit[m]))
		}
	}
	row.Notes = fmt.Sprintf("%d kills: %s", e.kills, strings.Join(parts, ", "))
	t.Log(row.Notes)
	if e.kills < sum(e.s.size.kills)-e.s.size.kills[finalizing] {
		t.Errorf("only %d kills made", e.kills)
	}
	e.requireLogged("replay batches in flight per applier", "batches=4")
	e.verify(row)
}

// awaitUnlessDone is await, except that a migration that finishes meanwhile (the
// process exits 0 with the state file saying done: a resumed finalize is quick) is
// reported instead of failing the test.
func (e *env) awaitUnlessDone(what string, cond func(faults.Status) bool) (faults.Status, bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
	defer cancel()
	s, err := e.m.Await(ctx, what, cond)
	if err == nil {
		return s, false
	}
	if code, exited := e.m.Exited(); exited && code == 0 && e.storedState() == "done" {
		return s, true
	}
	e.t.Fatal(err)
	return s, false
}

func sum(m map[moment]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func exited(m *faults.Migrator) bool {
	_, ex := m.Exited()
	return ex
}

// outage keeps a fault for d while watching the named shard's row (all rows when
// shard is ""), and reports whether a row showed the problem.
func (e *env) outage(d time.Duration, shard string) (shown bool, rows []string) {
	e.watch(d, func(s faults.Status) {
		for _, sh := range s.Shards {
			if (shard == "" || sh.Name == shard) && (sh.Retrying != "" || sh.Error != "") {
				if !shown {
					msg := sh.Name + ": " + sh.Retrying + sh.Error
					if len(msg) > 140 {
						msg = msg[:140] + "..."
					}
					rows = append(rows, msg)
				}
				shown = true
			}
		}
	})
	return shown, rows
}

// neverFailed checks that no shard row is failed now: a transient fault must be
// retried, not turned into a Restart.
func (e *env) neverFailed(s faults.Status) {
	e.t.Helper()
	for _, sh := range s.Shards {
		if sh.Phase == "failed" {
			e.t.Fatalf("shard %s failed on a transient fault (it must retry and resume by itself): %s", sh.Name, sh.Error)
		}
	}
}

// 2. A source shard goes away for the outage during copy (stopped) and again during
// steady sync (made unreachable): its row shows the problem, and sync resumes when it
// returns, without a restart.
func sourceShardAway(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	shards := e.src.Shards()
	victim := shards[e.rnd.IntN(len(shards))].Name
	e.start()
	s := e.await("copying "+victim, 5*time.Minute, func(s faults.Status) bool {
		sh, ok := s.Shard(victim)
		return ok && (sh.Phase == "copying" && sh.DocsCopied > 0 || momentOf(s) > copying)
	})
	during := momentOf(s)
	if err := e.src.StopShard(victim); err != nil {
		t.Fatal(err)
	}
	shown, first := e.outage(e.s.size.outage, victim)
	e.neverFailed(e.status())
	if err := e.src.RestartShard(victim); err != nil {
		t.Fatal(err)
	}
	if !shown {
		t.Errorf("%s was stopped for %v during %s and its row never showed it", victim, e.s.size.outage, momentNames[during])
	}
	e.await("ready after the first outage", 5*time.Minute, isState("ready"))
	if err := e.src.SetShardFault(victim, wire.Blackhole); err != nil {
		t.Fatal(err)
	}
	shown2, second := e.outage(e.s.size.outage, victim)
	e.neverFailed(e.status())
	if err := e.src.SetShardFault(victim, wire.Healthy); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if !shown2 {
		t.Errorf("%s was unreachable for %v during steady sync and its row never showed it", victim, e.s.size.outage)
	}
	e.await("in sync after the second outage", 5*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		return s.State == "ready" && allSynced(s)
	})
	e.finish()
	row.Converge = time.Since(healed)
	row.Notes = fmt.Sprintf("%s stopped during %s, then unreachable during steady sync; rows showed %q and %q",
		victim, momentNames[during], strings.Join(first, ""), strings.Join(second, ""))
	t.Log(row.Notes)
	e.verify(row)
}

func allSynced(s faults.Status) bool {
	for _, sh := range s.Shards {
		if sh.Phase != "synced" {
			return false
		}
	}
	return len(s.Shards) > 0
}

func (e *env) status() faults.Status {
	e.t.Helper()
	s, err := e.m.API().Status(e.ctx)
	if err != nil {
		e.t.Fatalf("status: %v", err)
	}
	return s
}

// 3. The destination goes away: its router, then one of its shards (with a kill -9 of
// the migration while that shard is away, so a checkpoint that passed an unapplied
// entry would lose it): writes are retried, nothing is skipped.
func destinationAway(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	e.start()
	e.await("ready", 5*time.Minute, isState("ready"))
	if err := e.dst.SetRouterFault(wire.Refuse); err != nil {
		t.Fatal(err)
	}
	shown, first := e.outage(e.s.size.outage, "")
	e.neverFailed(e.status())
	if err := e.dst.SetRouterFault(wire.Healthy); err != nil {
		t.Fatal(err)
	}
	if !shown {
		t.Errorf("the destination router was away for %v and no row showed it", e.s.size.outage)
	}
	e.await("in sync after the router outage", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return allSynced(s) })
	shards := e.dst.Shards()
	victim := shards[e.rnd.IntN(len(shards))].Name
	if err := e.dst.StopShard(victim); err != nil {
		t.Fatal(err)
	}
	half := e.s.size.outage / 2
	shown2, second := e.outage(half, "")
	e.neverFailed(e.status())
	e.kill("while destination shard " + victim + " is away")
	time.Sleep(e.s.size.outage - half)
	if err := e.dst.RestartShard(victim); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if !shown2 {
		t.Errorf("destination shard %s was away and no row showed it", victim)
	}
	e.start()
	e.await("in sync after the shard outage", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return allSynced(s) })
	e.finish()
	row.Converge = time.Since(healed)
	row.Notes = fmt.Sprintf("destination router refused, then shard %s stopped with a kill -9 meanwhile; rows showed %q and %q",
		victim, strings.Join(first, ""), strings.Join(second, ""))
	t.Log(row.Notes)
	e.verify(row)
}

// 4. The source router restarts during start-up and during sync.
func sourceRouterRestarts(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	e.start()
	s := e.await("starting up", 5*time.Minute, func(faults.Status) bool { return true })
	if err := e.src.RestartRouter(); err != nil {
		t.Fatal(err)
	}
	first := momentNames[momentOf(s)]
	e.await("ready", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return s.State == "ready" })
	if err := e.src.RestartRouter(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	e.watch(time.Second, func(s faults.Status) { e.neverFailed(s) })
	e.await("in sync after the router restart", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return allSynced(s) })
	e.finish()
	row.Converge = time.Since(restarted)
	row.Notes = fmt.Sprintf("source router restarted during %s (state %s) and during steady sync", first, s.State)
	t.Log(row.Notes)
	e.verify(row)
}

// rolloverOplog is the source oplog size of scenario 5 after the restart: small enough
// for the writes below to roll a shard's oplog past its checkpoint, big enough for
// the other shard to keep syncing under the load.
const rolloverOplog = 512 << 10

// 5. Oplog roll-over: while the migration is stopped, the source restarts with small
// oplogs and one shard takes enough writes to roll past its checkpoint. On restart
// that shard fails with the plain message, the other keeps syncing, and its Restart
// recovers it.
func oplogRollover(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	e.start()
	e.await("ready", 5*time.Minute, isState("ready"))
	e.kill("at steady sync, before the roll-over")
	e.endLoad()
	shards := e.src.Shards()
	victim := shards[e.rnd.IntN(len(shards))]
	checkpointish, err := e.oplogEdge(victim.Addr, -1)
	if err != nil {
		t.Fatal(err)
	}
	e.restartSource(sandbox.Options{OplogSize: rolloverOplog})
	writes := e.rollPast(victim, checkpointish)
	e.startLoad(e.s.size.rate)
	e.start()
	s := e.await(victim.Name+" failed", 5*time.Minute, func(s faults.Status) bool {
		sh, _ := s.Shard(victim.Name)
		return sh.Phase == "failed"
	})
	sh, _ := s.Shard(victim.Name)
	if !strings.Contains(sh.Error, "oplog") {
		t.Errorf("%s failed without saying its oplog rolled over: %q", victim.Name, sh.Error)
	}
	others := func(s faults.Status) {
		for _, o := range s.Shards {
			if o.Name != victim.Name && o.Phase != "catching_up" && o.Phase != "synced" {
				t.Fatalf("shard %s is %s while %s restarts: the other shards must keep syncing", o.Name, o.Phase, victim.Name)
			}
		}
	}
	others(s)
	e.post("/shards/" + victim.Name + "/restart")
	restarted := time.Now()
	e.await("ready after the restart of "+victim.Name, 5*time.Minute, func(s faults.Status) bool {
		others(s)
		return s.State == "ready" && allSynced(s)
	})
	e.finish()
	row.Converge = time.Since(restarted)
	row.Notes = fmt.Sprintf("%s rolled past its checkpoint (%d writes, oplog %d KiB): %q; restarted", victim.Name, writes, rolloverOplog>>10, sh.Error)
	t.Log(row.Notes)
	e.verify(row)
}

// rollPast updates documents the shard owns, through the router, until the shard's
// oldest oplog entry is newer than ts. Each update also sets an 8 KiB field
// (rollPad, another value each time, so that no update repeats a value): the oplog
// fills with a few dozen writes, not the 1,700 $incs of a counter it took before
// (12.4 s against 0.3 s at load 17; each update is a collection scan in FerretDB).
func (e *env) rollPast(sh sandbox.ShardInfo, ts bson.RawValue) int {
	e.t.Helper()
	began := time.Now()
	direct, err := mongo.Connect(e.ctx, options.Client().ApplyURI("mongodb://"+sh.Addr+"/?directConnection=true"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer direct.Disconnect(e.ctx)
	pad := strings.Repeat("r", rollPadBytes)
	writes := 0
	for round := 0; round < 200; round++ {
		oldest, err := e.oplogEdge(sh.Addr, 1)
		if err != nil {
			e.t.Fatal(err)
		}
		if tsAfter(oldest, ts) {
			e.t.Logf("rolled %s's oplog past %v: %d writes in %s", sh.Name, ts, writes, time.Since(began).Round(time.Millisecond))
			return writes
		}
		for _, c := range seed.Collections() {
			if c.Key == nil {
				continue
			}
			cur, err := direct.Database(c.DB).Collection(c.Name).Find(e.ctx, bson.D{}, options.Find().SetLimit(rollBatch))
			if err != nil {
				e.t.Fatal(err)
			}
			var docs []bson.Raw
			if err := cur.All(e.ctx, &docs); err != nil {
				e.t.Fatal(err)
			}
			coll := e.srcC.Database(c.DB).Collection(c.Name)
			for _, d := range docs {
				key := bson.D{}
				for _, f := range c.KeyFields() {
					key = append(key, bson.E{Key: f, Value: d.Lookup(f)})
				}
				update := bson.D{{Key: "$inc", Value: bson.D{{Key: c.Counter, Value: 1}}}, {Key: "$set", Value: bson.D{{Key: "rollPad", Value: strconv.Itoa(writes) + pad}}}}
				if _, err := coll.UpdateOne(e.ctx, key, update); err != nil {
					e.t.Fatalf("update %s %v: %v", c.Namespace(), key, err)
				}
				writes++
			}
		}
	}
	e.t.Fatalf("%d writes did not roll %s's oplog past %v", writes, sh.Name, ts)
	return writes
}

// rollPadBytes and rollBatch size rollPast's writes: 8 KiB entries, and the oplog's
// edge read again after each rollBatch documents of each sharded seed collection.
const (
	rollPadBytes = 8 << 10
	rollBatch    = 8
)

func tsAfter(a, b bson.RawValue) bool {
	at, ai, ok1 := a.TimestampOK()
	bt, bi, ok2 := b.TimestampOK()
	return ok1 && ok2 && (at > bt || at == bt && ai > bi)
}

// 6. Cutover under pressure: the cutover starts while the load still runs, then the
// writes stop, the gap closes, and I'm done completes although the process is killed
// during finalize and restarted.
func cutoverUnderPressure(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(2 * e.s.size.rate)
	e.start()
	e.await("ready", 5*time.Minute, isState("ready"))
	e.startCutover()
	time.Sleep(2 * time.Second) // the applications take a moment to stop
	e.endLoad()
	e.await("the optime gap closed", 5*time.Minute, func(s faults.Status) bool { return s.GapClosed() })
	doneErr := make(chan error, 1)
	go func() { _, err := e.m.API().Post(e.ctx, "/cutover/done"); doneErr <- err }()
	e.await("finalizing", 5*time.Minute, isState("finalizing", "done"))
	time.Sleep(time.Duration(e.rnd.Int64N(int64(200 * time.Millisecond))))
	killed := !exited(e.m)
	e.kill("during finalize")
	restarted := time.Now()
	<-doneErr
	if st := e.storedState(); st != "done" {
		e.start()
		e.awaitExit(0)
	}
	if st := e.storedState(); st != "done" {
		t.Fatalf("after the restart the migration is %s, not done", st)
	}
	row.Converge = time.Since(restarted)
	row.Notes = fmt.Sprintf("cutover started under %d writes/s; killed during finalize: %v", 2*e.s.size.rate, killed)
	t.Log(row.Notes)
	e.verify(row)
}

// 7. The balancer ends as it was: stopped before the migration, it stays stopped
// through a crash and a cancel (the staging copy equals the source).
func balancerOffCrashCancel(t *testing.T, e *env, row *faults.Row) {
	if err := e.srcC.Database("admin").RunCommand(e.ctx, bson.D{{Key: "balancerStop", Value: 1}}).Err(); err != nil {
		t.Fatal(err)
	}
	e.balancerBefore = e.balancerMode()
	if e.balancerBefore != "off" {
		t.Fatalf("balancerStop left the mode %q", e.balancerBefore)
	}
	e.startLoad(e.s.size.rate)
	e.start()
	e.await("syncing", 5*time.Minute, isState("syncing", "ready"))
	e.kill("while syncing")
	restarted := time.Now()
	e.start()
	e.await("ready", 5*time.Minute, isState("ready"))
	e.startCutover()
	e.endLoad()
	e.await("the optime gap closed", 5*time.Minute, func(s faults.Status) bool { return s.GapClosed() })
	e.post("/cancel")
	e.awaitExit(0)
	row.Converge = time.Since(restarted)
	row.Notes = "balancer off before; killed while syncing, cancelled at gap 0"
	e.verify(row)
}

// expiryWindow is scenario 7's cutover window, short enough to run out in the test.
const expiryWindow = 12 * time.Second

// 7. The balancer ends as it was: running before, it runs again after the cutover
// window expires (syncing stops; what was applied stays).
func balancerOnExpiry(t *testing.T, e *env, row *faults.Row) {
	e.extra = []string{"--cutover-window", expiryWindow.String()}
	e.startLoad(e.s.size.rate)
	e.start()
	e.await("ready", 5*time.Minute, isState("ready"))
	stopped := time.Now()
	e.endLoad()
	e.await("in sync", expiryWindow, func(s faults.Status) bool { return allSynced(s) && s.GapClosed() && s.CaughtUp() })
	e.awaitExit(1)
	if !strings.Contains(e.log.String(), "expired") {
		t.Errorf("shardlift migrate did not say the window expired:\n%s", e.log.tail(20))
	}
	if st := e.storedState(); st != "expired" {
		t.Errorf("state %s after the window ran out, want expired", st)
	}
	row.Converge = time.Since(stopped)
	row.Notes = fmt.Sprintf("balancer on before; cutover window of %v expired", expiryWindow)
	e.verify(row)
}

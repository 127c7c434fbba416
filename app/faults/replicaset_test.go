package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/shard"
)

// The scenarios of issue 14: the source shards are replica sets of three members
// whose primary changes, whose unreplicated writes roll back, and whose oplog has
// holes (docs/correctness.md, docs/reliability.md).

// replicaSetMembers is the size of the source shards' replica sets in these scenarios
// (the suite's other scenarios keep the sandbox's one-member default, for CPU).
const replicaSetMembers = 3

// holeTime is how long every other write's oplog entry stays invisible in scenario
// 11: under the load a shard always has holes open, at T0 and during the tail.
const holeTime = 400 * time.Millisecond

// sourceOptions are the source sandbox's options by scenario (the suite fills in
// the shard count and the directory).
var sourceOptions = map[string]sandbox.Options{
	"9-stepdown-during-copy":      {Members: replicaSetMembers},
	"10-stepdown-rollback-steady": {Members: replicaSetMembers},
	"11-oplog-holes":              {Members: replicaSetMembers, OplogHoles: holeTime},
	// Under the long form's load, 64 MiB oplogs held under a minute of writes on the
	// loaded machine, and the pre-migration check refused to start 17, 18 and 23
	// (the copy measured at 228 KiB/s to 863 KiB/s).
	"16-kill-continuous-verification": {OplogSize: 256 << 20}, // the same: 3 of 6 runs refused (session 10)
	"17-index-build-killed":           {OplogSize: 256 << 20},
	"18-merge-killed":                 {OplogSize: 256 << 20},
	"19-move-primary-killed":          {OplogSize: 256 << 20},
	"20-move-range-killed":            {OplogSize: 256 << 20},
	"23-create-killed":                {OplogSize: 256 << 20},
	"24-out-killed":                   {OplogSize: 256 << 20},
}

// unreplicatedWrites is how many writes a shard's primary takes while its
// secondaries are held, before the stepdown rolls them back.
const unreplicatedWrites = 20

// 9. A source shard's primary steps down during the copy and the writes its
// secondaries had not replicated are rolled back: the copy (at read concern majority)
// never saw them, the driver follows the new primary, the copy and the replay resume.
func stepdownDuringCopy(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	victim := e.src.Shards()[e.rnd.IntN(len(e.src.Shards()))].Name
	e.holdSecondaries(victim)
	e.start()
	s := e.await("copying "+victim, 5*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		sh, ok := s.Shard(victim)
		return ok && (sh.Phase == "copying" && sh.DocsCopied > 0 || momentOf(s) > copying)
	})
	during := momentNames[momentOf(s)]
	held := e.awaitUnreplicated(victim, unreplicatedWrites)
	rep := e.stepDown(victim, true)
	stepped := time.Now()
	e.await("in sync after the stepdown", 5*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		return s.State == "ready" && allSynced(s)
	})
	e.finish()
	row.Converge = time.Since(stepped)
	row.Notes = fmt.Sprintf("%s stepped down during %s with %d unreplicated writes; %d entries rolled back, %s now primary",
		victim, during, held, rep.RolledBack, rep.NewPrimary)
	t.Log(row.Notes)
	e.verify(row)
}

// 10. During steady sync a source shard's secondaries stop replicating while the load
// goes on; its row says that the replay waits for the majority; its primary steps
// down and rolls back what they had not replicated. The destination must not keep
// the rolled-back writes, and the shard resumes on the new primary without a Restart.
func stepdownRollbackSteady(t *testing.T, e *env, row *faults.Row) {
	// The primary's tail is the one that meets unreplicated writes: with the default
	// (nearest) the tail may read a held secondary, which never holds them, and the
	// shard then just falls behind instead of waiting for the majority.
	e.extra = append(e.extra, "--source-read-preference", "primary")
	e.startLoad(e.s.size.rate)
	e.start()
	e.await("ready", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return s.State == "ready" && allSynced(s) })
	e.awaitUniqueRestored()
	victim := e.src.Shards()[e.rnd.IntN(len(e.src.Shards()))].Name
	e.holdSecondaries(victim)
	held := e.awaitUnreplicated(victim, unreplicatedWrites)
	s := e.await(victim+"'s row says it waits for the majority", 2*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		sh, _ := s.Shard(victim)
		return strings.Contains(sh.Waiting, "majority")
	})
	shown, _ := s.Shard(victim)
	rep := e.stepDown(victim, true)
	if rep.RolledBack == 0 {
		t.Fatalf("the stepdown of %s rolled nothing back (%+v): the scenario tests nothing", victim, rep)
	}
	stepped := time.Now()
	e.await("in sync after the rollback", 5*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		return s.State == "ready" && allSynced(s)
	})
	e.finish()
	row.Converge = time.Since(stepped)
	row.Notes = fmt.Sprintf("%s held with %d unreplicated writes (row: %q); stepped down, %d entries rolled back",
		victim, held, shown.Waiting, rep.RolledBack)
	t.Log(row.Notes)
	e.verify(row)
}

// 11. Oplog holes: every other write's entry on every source shard stays invisible
// for a moment while later ones are served, under the load, when T0 is taken and
// all through the tail. T0 and the replay must not pass a hole.
func oplogHoles(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	e.start()
	e.await("ready", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return s.State == "ready" && allSynced(s) })
	e.awaitUniqueRestored()
	synced := time.Now()
	// The tail with holes, under the load, for a few hundred more writes.
	more := e.stats.Total() + int64(4*e.s.size.rate)
	e.await("more writes tailed through holes", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return e.stats.Total() >= more })
	e.finish()
	row.Converge = time.Since(synced)
	row.Notes = fmt.Sprintf("every other entry hidden for %v under %d writes/s, at T0 and through the tail", holeTime, e.s.size.rate)
	t.Log(row.Notes)
	e.verify(row)
}

// awaitUniqueRestored waits until every unique index the sync relaxed is unique
// again on the destination while the sync runs: from then on the replay orders
// their namespaces' writes by them (replay.OrderedNamespaces), which a fault must
// not leave behind.
func (e *env) awaitUniqueRestored() {
	e.t.Helper()
	s := e.await("the unique indexes restored while syncing", 5*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		var restored, of int
		_, err := fmt.Sscanf(s.UniqueIndexes, "%d of %d unique indexes restored", &restored, &of)
		return err == nil && of > 0 && restored == of
	})
	e.t.Logf("unique indexes: %s", s.UniqueIndexes)
}

// holdSecondaries stops a source shard's secondaries from replicating: its majority
// commit point stays where it is while its primary takes writes.
func (e *env) holdSecondaries(shard string) {
	e.t.Helper()
	if err := e.src.SetReplicationLag(shard, -1, -1); err != nil {
		e.t.Fatal(err)
	}
}

// stepDown steps a source shard's primary down (rolling back what its secondaries
// lack, with rollback) and lets every member replicate again.
func (e *env) stepDown(shard string, rollback bool) shard.StepDownReport {
	e.t.Helper()
	rep, err := e.src.StepDown(shard, rollback)
	if err != nil {
		e.t.Fatalf("step %s down: %v", shard, err)
	}
	fmt.Fprintf(e.log, "=== %s %s stepped down: %+v\n", time.Now().Format("15:04:05.000"), shard, rep)
	if err := e.src.SetReplicationLag(shard, -1, 0); err != nil {
		e.t.Fatal(err)
	}
	return rep
}

// awaitUnreplicated waits until a source shard's primary holds at least n write
// entries past its majority commit point, and returns how many it holds.
func (e *env) awaitUnreplicated(shard string, n int) int {
	e.t.Helper()
	members, err := e.src.ShardMembers(shard)
	if err != nil {
		e.t.Fatal(err)
	}
	var primary string
	for _, m := range members {
		if m.State == "PRIMARY" {
			primary = m.Addr
		}
	}
	c, err := mongo.Connect(e.ctx, options.Client().ApplyURI("mongodb://"+primary+"/?directConnection=true").SetTimeout(30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Disconnect(e.ctx)
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	defer cancel()
	for {
		point, err := e.src.MajorityOpTime(shard)
		if err != nil {
			e.t.Fatal(err)
		}
		got, err := c.Database("local").Collection("oplog.rs").CountDocuments(ctx, bson.D{
			{Key: "ts", Value: bson.D{{Key: "$gt", Value: point.TS}}}, {Key: "op", Value: bson.D{{Key: "$ne", Value: "n"}}}})
		if err != nil {
			e.t.Fatalf("count %s's unreplicated entries: %v", shard, err)
		}
		if int(got) >= n {
			return int(got)
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("%s's primary took %d writes its secondaries lack in 2 minutes, want %d", shard, got, n)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
)

// A DBA moves data between the source's shards by hand while the migration runs
// (issue 15), with the balancer off. The first move lands after the migration read
// the source's chunk map and before the shards' T0 (the destination's Prepare is held
// there): on a code that copies the chunk map it planned with, the moved documents
// are skipped by both shards (gone from the donor; orphans on the recipient, whose
// replay starts after the move). The second lands during the sync: the move watcher
// must find it and copy both shards again. The destination ends equal to the source;
// a resharding, which the destination cannot follow, stops the migration.

// movesDB holds the collections the DBA moves: items sharded on {k: 1} in two
// chunks, both on the database's primary shard, and notes, unsharded.
const movesDB = "moves"

// startMovesE2E is a seeded source with the moves database, and a destination.
func startMovesE2E(t *testing.T) *e2e {
	e := startE2EShaped(t, 1000, "a move timed between the plan and T0", func(string, *sandbox.Options) {})
	ctx := context.Background()
	admin := e.srcC.Database("admin")
	if err := admin.RunCommand(ctx, bson.D{{Key: "shardCollection", Value: movesDB + ".items"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "split", Value: movesDB + ".items"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 500}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	items, notes := e.srcC.Database(movesDB).Collection("items"), e.srcC.Database(movesDB).Collection("notes")
	var docs, nts []any
	for i := range 1000 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}, {Key: "j", Value: i}, {Key: "v", Value: 0}})
		if i < 200 {
			nts = append(nts, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: 0}})
		}
	}
	if _, err := items.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := notes.InsertMany(ctx, nts); err != nil {
		t.Fatal(err)
	}
	return e
}

// movesShards are the moves database's primary shard and another one.
func (e *e2e) movesShards() (primary, other string) {
	e.t.Helper()
	var db struct {
		Primary string `bson:"primary"`
	}
	if err := e.srcC.Database("config").Collection("databases").FindOne(context.Background(), bson.D{{Key: "_id", Value: movesDB}}).Decode(&db); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range e.srcBox.Shards() {
		if s.Name != db.Primary {
			return db.Primary, s.Name
		}
	}
	e.t.Fatal("the source has one shard")
	return "", ""
}

// movesLoad inserts into and updates both moves collections until stopped.
type movesLoad struct {
	stop   context.CancelFunc
	done   sync.WaitGroup
	ended  sync.Once
	writes int
	err    error
}

func (e *e2e) startMovesLoad() *movesLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &movesLoad{stop: cancel}
	e.t.Cleanup(func() { l.end(e.t) }) // a failed test stops it too
	items, notes := e.srcC.Database(movesDB).Collection("items"), e.srcC.Database(movesDB).Collection("notes")
	r := rand.New(rand.NewPCG(1, 2))
	l.done.Go(func() {
		for n := 1000; ctx.Err() == nil; n++ {
			k := r.IntN(1000)
			var err error
			switch n % 3 {
			case 0:
				_, err = items.InsertOne(ctx, bson.D{{Key: "_id", Value: n}, {Key: "k", Value: k}, {Key: "j", Value: n}, {Key: "v", Value: 0}})
			case 1:
				_, err = items.UpdateOne(ctx, bson.D{{Key: "k", Value: k}, {Key: "_id", Value: k}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "v", Value: 1}}}})
			case 2:
				_, err = notes.UpdateOne(ctx, bson.D{{Key: "_id", Value: k % 200}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "v", Value: 1}}}})
			}
			if err != nil && ctx.Err() == nil {
				l.err = err
				return
			}
			l.writes++
			time.Sleep(20 * time.Millisecond)
		}
	})
	return l
}

func (l *movesLoad) end(t *testing.T) {
	l.ended.Do(func() {
		l.stop()
		l.done.Wait()
		if l.err != nil {
			t.Errorf("moves load: %v", l.err)
		}
		t.Logf("moves load: %d writes", l.writes)
	})
}

// runWithMoveBeforeT0 starts the migration with the destination's chunk commands
// held, waits until the migration has read the source's chunk map and is preparing
// the destination (it created moves.items there; chunk placement waits), runs the DBA's
// command on the source, checks that no shard recorded its T0 yet, and lets the
// preparation go on.
func (e *e2e) runWithMoveBeforeT0(m *Migration, cmd bson.D) *running {
	e.t.Helper()
	ctx := context.Background()
	release := e.dstBox.HoldChunkCommands()
	defer release()
	r := run(m, StartOptions{WipeDestination: true})
	await(e.t, m, 3*time.Minute, "preparing the destination", func(s Snapshot) bool {
		names, err := e.dstC.Database(movesDB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: "items"}})
		return err == nil && len(names) == 1
	})
	if err := e.srcC.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
		e.t.Fatalf("%s: %v", cmd[0].Key, err)
	}
	if s := m.Snapshot(); s.State != Starting || len(s.Shards) > 0 {
		e.t.Fatalf("the %s ended when the migration was %s (shards %s): it must land before the shards' T0", cmd[0].Key, s.State, phases(s))
	}
	e.t.Logf("%s done while the destination is being prepared", cmd[0].Key)
	return r
}

// sameMoves compares both moves collections document by document.
func (e *e2e) sameMoves() int {
	e.t.Helper()
	ctx := context.Background()
	total := 0
	for _, coll := range []string{"items", "notes"} {
		a, b := e.all(ctx, e.srcC, movesDB, coll), e.all(ctx, e.dstC, movesDB, coll)
		if len(a) != len(b) {
			e.t.Errorf("%s.%s: %d documents on the source, %d on the destination", movesDB, coll, len(a), len(b))
		}
		for i := range min(len(a), len(b)) {
			if !bytes.Equal(a[i], b[i]) {
				e.t.Errorf("%s.%s: document %d differs:\n source %s\n dest   %s", movesDB, coll, i, a[i], b[i])
				break
			}
		}
		total += len(a)
	}
	return total
}

// noted reports whether the migration's history has an event containing text.
func noted(s Snapshot, text string) bool {
	for _, ev := range s.History {
		if strings.Contains(ev.Reason, text) {
			return true
		}
	}
	return false
}

// runMove migrates under a load with a DBA's command landing between the plan and
// T0 (first) and another during the sync (second), and checks that the history
// names the second one (named: what only its changelog entry says, not the first
// one's), whose shards copy again, and that the destination ends equal to the source.
func runMove(t *testing.T, first, second func(primary, other string) bson.D, named func(primary, other string) string) {
	e := startMovesE2E(t)
	primary, other := e.movesShards()
	e.startLoad(50)
	ml := e.startMovesLoad()
	m := e.migration(newMemCheckpoints("e2e"))
	r := e.runWithMoveBeforeT0(m, first(primary, other))
	await(t, m, 4*time.Minute, "ready after the first move", isState(Ready))
	cmd := second(primary, other)
	if err := e.srcC.Database("admin").RunCommand(context.Background(), cmd).Err(); err != nil {
		t.Fatalf("%s during the sync: %v", cmd[0].Key, err)
	}
	want := named(primary, other)
	s := await(t, m, 4*time.Minute, "the move during the sync named: "+want, func(s Snapshot) bool { return noted(s, want) })
	for _, p := range s.Shards {
		t.Logf("shard %s: %s %s", p.Name, p.Phase, p.Moved)
	}
	await(t, m, 4*time.Minute, "ready after the second move", isState(Ready))
	ml.end(t)
	s = e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.State != Done || !s.Verification.OK() {
		t.Errorf("state %s, verification %+v", s.State, s.Verification)
	}
	n := e.sameMoves() + e.sameData()
	t.Logf("%d documents equal on both sides", n)
}

// A moveChunk lands between the plan and T0, then a moveRange during the sync (one
// test for both: each end-to-end run costs minutes on the shared machine).
func TestSandboxManualMoveChunkAndMoveRangeDuringTheMigrationLoseNothing(t *testing.T) {
	runMove(t, func(_, other string) bson.D {
		return bson.D{{Key: "moveChunk", Value: movesDB + ".items"}, {Key: "find", Value: bson.D{{Key: "k", Value: 600}}}, {Key: "to", Value: other}}
	}, func(_, other string) bson.D {
		return bson.D{{Key: "moveRange", Value: movesDB + ".items"}, {Key: "min", Value: bson.D{{Key: "k", Value: 200}}},
			{Key: "max", Value: bson.D{{Key: "k", Value: 300}}}, {Key: "toShard", Value: other}}
	}, func(string, string) string { return `a chunk of moves.items [{"k": {"$numberInt":"200"}}` })
}

func TestSandboxMovePrimaryDuringTheMigrationLosesNothing(t *testing.T) {
	runMove(t, func(_, other string) bson.D {
		return bson.D{{Key: "movePrimary", Value: movesDB}, {Key: "to", Value: other}}
	}, func(primary, _ string) bson.D {
		return bson.D{{Key: "movePrimary", Value: movesDB}, {Key: "to", Value: primary}}
	}, func(primary, other string) string {
		return fmt.Sprintf("the primary shard of database moves moved from %s to %s", other, primary)
	})
}

// A resharding cannot be followed: the migration stops, failed, with a message that
// names it and says what to do; nothing is skipped silently.
func TestSandboxReshardCollectionDuringTheMigrationStopsIt(t *testing.T) {
	e := startMovesE2E(t)
	e.startMovesLoad()
	m := e.migration(newMemCheckpoints("e2e"))
	r := e.runWithMoveBeforeT0(m, bson.D{{Key: "reshardCollection", Value: movesDB + ".items"}, {Key: "key", Value: bson.D{{Key: "j", Value: 1}}}})
	defer r.kill()
	end := time.Now().Add(4 * time.Minute)
	for m.State() != Failed {
		if time.Now().After(end) {
			t.Fatalf("the migration never stopped after the resharding: state %s, shards %s", m.State(), phases(m.Snapshot()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := m.Snapshot()
	for _, want := range []string{"moves.items was resharded", "Cancel this migration and start a new one"} {
		if !strings.Contains(s.Reason, want) {
			t.Errorf("reason %q does not say %q", s.Reason, want)
		}
	}
	t.Logf("stopped: %s", s.Reason)
}

// A move no metadata shows (issue 15's cross-check): a shard's oplog gets a
// fromMigrate insert into a range it did not own at its T0 while the chunk map and
// the changelog say nothing moved. Its replay skips the entry as a migration's; the
// shard must copy again with a message naming the range, not skip it silently. The
// inserted document is an orphan there (the router hides it): the destination
// still ends equal.
func TestSandboxAFromMigrateInsertNoMoveExplainsRestartsTheShardNamingTheRange(t *testing.T) {
	e := startMovesE2E(t)
	primary, other := e.movesShards()
	ctx := context.Background()
	// other holds moves.items' upper chunk; primary keeps [MinKey, 500).
	if err := e.srcC.Database("admin").RunCommand(ctx, bson.D{{Key: "moveChunk", Value: movesDB + ".items"}, {Key: "find", Value: bson.D{{Key: "k", Value: 600}}}, {Key: "to", Value: other}}).Err(); err != nil {
		t.Fatal(err)
	}
	e.startLoad(20)
	// No move will ever explain the insert: the default grace for a move's commit
	// (30 s on the real clock) only delays the restart this test waits for.
	m := e.migration(newMemCheckpoints("e2e"), func(c *Config) { c.MissedMoveGrace = time.Second })
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 4*time.Minute, "ready", isState(Ready))
	var addr string
	for _, s := range e.srcBox.Shards() {
		if s.Name == other {
			addr = s.Addr
		}
	}
	shard, err := topology.Connect(ctx, e.src.ForHosts([]string{addr}, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer shard.Disconnect(ctx)
	if err := shard.Database(movesDB).RunCommand(ctx, bson.D{{Key: "insert", Value: "items"},
		{Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: -1}, {Key: "k", Value: 100}, {Key: "j", Value: -1}, {Key: "v", Value: 0}}}},
		{Key: "fromMigrate", Value: true}}).Err(); err != nil {
		t.Fatal(err)
	}
	named := "fromMigrate inserts into moves.items [{\"k\": {\"$minKey\":1}}, "
	s := await(t, m, 4*time.Minute, "shard "+other+" copying again, naming the range", func(s Snapshot) bool { return noted(s, named) })
	for _, p := range s.Shards {
		if named := strings.Contains(p.Moved, named) && strings.Contains(p.Moved, "shard "+other+" did not own at its T0"); named != (p.Name == other) {
			t.Errorf("shard %s's row says moved %q", p.Name, p.Moved)
		}
	}
	t.Logf("primary %s, other %s: %s", primary, other, phases(s))
	await(t, m, 4*time.Minute, "ready again", isState(Ready))
	s = e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.State != Done || !s.Verification.OK() {
		t.Errorf("state %s, verification %+v", s.State, s.Verification)
	}
	t.Logf("%d documents equal on both sides", e.sameMoves()+e.sameData())
}

// A collection the plan listed, and Prepare created on the destination, is dropped
// on the source before the shards' T0: no replay reads the drop. The destination
// must not end with it, even empty, while the verification says every range
// matches (fault scenario 23 found it: an application dropping its collections
// every few seconds).
func TestSandboxACollectionDroppedBeforeT0IsNotLeftOnTheDestination(t *testing.T) {
	e := startMovesE2E(t)
	m := e.migration(newMemCheckpoints("e2e"))
	ctx := context.Background()
	release := e.dstBox.HoldChunkCommands()
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "preparing the destination", func(s Snapshot) bool {
		names, err := e.dstC.Database(movesDB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: "notes"}})
		return err == nil && len(names) == 1
	})
	if err := e.srcC.Database(movesDB).Collection("notes").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if s := m.Snapshot(); s.State != Starting || len(s.Shards) > 0 {
		t.Fatalf("the drop ended when the migration was %s (shards %s): it must land before the shards' T0", s.State, phases(s))
	}
	release()
	await(t, m, 4*time.Minute, "ready", isState(Ready))
	s := e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	names, err := e.dstC.Database(movesDB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: "notes"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Errorf("%s.notes, dropped on the source before T0, is still on the destination (state %s, verification %s)", movesDB, s.State, verificationText(s.Verification))
	}
	if s.State != Done || !s.Verification.OK() {
		t.Errorf("state %s, verification %+v", s.State, s.Verification)
	}
}

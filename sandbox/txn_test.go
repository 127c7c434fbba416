package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readconcern"
	"go.mongodb.org/mongo-driver/mongo/readpref"

	"github.com/shardlift/shardlift/sandbox/shard"
)

// txnCluster is two shards of 3 members with app.c split at k 50 between them, holding
// {k: 10} on shard0 and {k: 60} on shard1; each shard chains a transaction's entries
// every 2 operations.
func txnCluster(t *testing.T) (*Cluster, *mongo.Client) {
	t.Helper()
	return txnClusterOf(t, "")
}

// txnClusterOf is txnCluster presenting a MongoDB release ("": the default).
func txnClusterOf(t *testing.T, version string) (*Cluster, *mongo.Client) {
	t.Helper()
	c := startCluster(t, Options{Members: 3, TxnOpsPerEntry: 2, MongoDBVersion: version})
	cl := routerClient(t, c)
	run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "app"}, {Key: "primaryShard", Value: "source-shard0"}})
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.c"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	run(t, cl, "admin", bson.D{{Key: "split", Value: "app.c"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 50}}}})
	run(t, cl, "admin", bson.D{{Key: "moveChunk", Value: "app.c"}, {Key: "find", Value: bson.D{{Key: "k", Value: 75}}}, {Key: "to", Value: "source-shard1"}})
	if _, err := cl.Database("app").Collection("c").InsertMany(context.Background(), []any{
		bson.D{{Key: "_id", Value: 10}, {Key: "k", Value: 10}}, bson.D{{Key: "_id", Value: 60}, {Key: "k", Value: 60}},
	}); err != nil {
		t.Fatal(err)
	}
	return c, cl
}

// runTxn runs body on app.c in a transaction, in the background.
func runTxn(cl *mongo.Client, body func(sc mongo.SessionContext, coll *mongo.Collection) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		sess, err := cl.StartSession()
		if err != nil {
			done <- err
			return
		}
		defer sess.EndSession(ctx)
		coll := cl.Database("app").Collection("c")
		_, err = sess.WithTransaction(ctx, func(sc mongo.SessionContext) (any, error) { return nil, body(sc, coll) })
		done <- err
	}()
	return done
}

// crossShardTxn runs, in the background, a transaction writing on both shards: three
// operations on shard0 (a chain of two entries there) and two on shard1.
func crossShardTxn(cl *mongo.Client) <-chan error {
	return runTxn(cl, func(sc mongo.SessionContext, coll *mongo.Collection) error {
		if _, err := coll.UpdateOne(sc, bson.D{{Key: "_id", Value: 10}, {Key: "k", Value: 10}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}); err != nil {
			return err
		}
		if _, err := coll.InsertOne(sc, bson.D{{Key: "_id", Value: 20}, {Key: "k", Value: 20}}); err != nil {
			return err
		}
		if _, err := coll.InsertOne(sc, bson.D{{Key: "_id", Value: 30}, {Key: "k", Value: 30}}); err != nil {
			return err
		}
		if _, err := coll.DeleteOne(sc, bson.D{{Key: "_id", Value: 60}, {Key: "k", Value: 60}}); err != nil {
			return err
		}
		_, err := coll.InsertOne(sc, bson.D{{Key: "_id", Value: 70}, {Key: "k", Value: 70}})
		return err
	})
}

// awaitHeld waits until the router holds n prepared commits.
func awaitHeld(t *testing.T, c *Cluster, n int, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for c.HeldCommits() < n {
		select {
		case err := <-done:
			t.Fatalf("the transaction ended before its commit was held: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the transaction's commit was never held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// secondaries are a shard's secondary members.
func secondaries(t *testing.T, c *Cluster, shardName string) []shard.Member {
	t.Helper()
	ms, err := c.ShardMembers(shardName)
	if err != nil {
		t.Fatal(err)
	}
	var out []shard.Member
	for _, m := range ms {
		if m.State == "SECONDARY" {
			out = append(out, m)
		}
	}
	return out
}

// awaitApplied waits until member index of the shard applied the entry at ts.
func awaitApplied(t *testing.T, c *Cluster, shardName string, index int, ts primitive.Timestamp) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ms, err := c.ShardMembers(shardName)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Index == index && !m.Applied.TS.Before(ts) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %d of %s never applied %v", index, shardName, ts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// txnRecord reads a shard's config.transactions record at read concern majority, as
// the engine reads it (from the member at the majority commit point).
func txnRecord(t *testing.T, sc *mongo.Client, state string) bson.Raw {
	t.Helper()
	coll := sc.Database("config").Collection("transactions", options.Collection().SetReadConcern(readconcern.Majority()))
	deadline := time.Now().Add(time.Minute)
	for {
		for _, d := range findAll(t, coll, bson.D{{Key: "state", Value: state}}) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s transaction in config.transactions: %v", state, findAll(t, coll, bson.D{}))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// txnEntries are a shard's entries of transactions (those with lsid on admin.$cmd).
func txnEntries(t *testing.T, sc *mongo.Client) []bson.Raw {
	var out []bson.Raw
	for _, e := range oplog(t, sc, "admin.$cmd") {
		if _, err := e.LookupErr("lsid"); err == nil {
			out = append(out, e)
		}
	}
	return out
}

func TestCrossShardTransactionIsPreparedOnEachShardThenCommittedAtOneTimestamp(t *testing.T) {
	// 4.2 brought cross-shard transactions and writes the legacy envelope; 8.0 the last.
	for _, version := range []string{"4.2", "8.0"} {
		t.Run(version, func(t *testing.T) { crossShardTransactionPreparedThenCommitted(t, version) })
	}
}

func crossShardTransactionPreparedThenCommitted(t *testing.T, version string) {
	c, cl := txnClusterOf(t, version)
	coll := cl.Database("app").Collection("c")
	c.HoldCommits()
	done := crossShardTxn(cl)
	awaitHeld(t, c, 1, done)

	// Prepared: nothing visible yet, the chains logged, the records prepared.
	if n, _ := coll.CountDocuments(context.Background(), bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{20, 30, 70}}}}}); n != 0 {
		t.Errorf("%d documents of the prepared transaction are visible before its commit", n)
	}
	if got := findAll(t, coll, bson.D{{Key: "_id", Value: 10}}); len(got) != 1 || got[0].Lookup("x").Type != 0 {
		t.Errorf("the prepared update is visible before its commit: %v", got)
	}
	wantOps := map[string][]int{"source-shard0": {2, 1}, "source-shard1": {2}}
	var prepareTS []uint32
	for _, s := range c.Shards() {
		sc := shardClient(t, c, s)
		entries := txnEntries(t, sc)
		if len(entries) != len(wantOps[s.Name]) {
			t.Fatalf("%s: %d transaction entries while prepared, want %d: %v", s.Name, len(entries), len(wantOps[s.Name]), entries)
		}
		for i, e := range entries {
			if got := len(values(e.Lookup("o", "applyOps"))); got != wantOps[s.Name][i] {
				t.Errorf("%s entry %d holds %d operations, want %d", s.Name, i, got, wantOps[s.Name][i])
			}
			last := i == len(entries)-1
			if _, prep := e.Lookup("o", "prepare").BooleanOK(); prep != last {
				t.Errorf("%s entry %d: prepare marks only the last: %s", s.Name, i, e)
			}
			if _, partial := e.Lookup("o", "partialTxn").BooleanOK(); partial == last {
				t.Errorf("%s entry %d: partialTxn marks all but the last: %s", s.Name, i, e)
			}
			prev, _, _ := e.Lookup("prevOpTime", "ts").TimestampOK()
			if i == 0 && prev != 0 {
				t.Errorf("%s: the first entry's prevOpTime is not the null optime: %s", s.Name, e)
			}
			if i > 0 && !e.Lookup("prevOpTime", "ts").Equal(entries[i-1].Lookup("ts")) {
				t.Errorf("%s entry %d does not point to the one before it: %s", s.Name, i, e)
			}
		}
		rec := txnRecord(t, sc, "prepared")
		if !rec.Lookup("startOpTime", "ts").Equal(entries[0].Lookup("ts")) {
			t.Errorf("%s: startOpTime %v, want the first entry's ts %v", s.Name, rec.Lookup("startOpTime"), entries[0].Lookup("ts"))
		}
		if !rec.Lookup("lastWriteOpTime", "ts").Equal(entries[len(entries)-1].Lookup("ts")) {
			t.Errorf("%s: lastWriteOpTime %v, want the prepare entry's", s.Name, rec.Lookup("lastWriteOpTime"))
		}
		ts, i, _ := entries[len(entries)-1].Lookup("ts").TimestampOK()
		prepareTS = append(prepareTS, ts)
		// A secondary that applied the prepare shows nothing of it either.
		for _, m := range secondaries(t, c, s.Name) {
			awaitApplied(t, c, s.Name, m.Index, primitive.Timestamp{T: ts, I: i})
			mc := connect(t, options.Client().SetHosts([]string{m.Addr}).SetDirect(true).SetReadPreference(readpref.SecondaryPreferred()))
			if got := findAll(t, mc.Database("app").Collection("c"), bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{20, 30, 70}}}}}); len(got) != 0 {
				t.Errorf("secondary %s of %s shows the prepared transaction's documents: %v", m.Addr, s.Name, got)
			}
		}
	}

	c.ReleaseCommits(false)
	if err := <-done; err != nil {
		t.Fatalf("the transaction: %v", err)
	}
	if n, _ := coll.CountDocuments(context.Background(), bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{20, 30, 70}}}}}); n != 3 {
		t.Errorf("%d of the 3 inserted documents visible after the commit", n)
	}
	if n, _ := coll.CountDocuments(context.Background(), bson.D{{Key: "_id", Value: 60}}); n != 0 {
		t.Error("the deleted document is still there after the commit")
	}
	var commitTS []bson.RawValue
	for _, s := range c.Shards() {
		sc := shardClient(t, c, s)
		entries := txnEntries(t, sc)
		commit := entries[len(entries)-1]
		if commit.Lookup("o", "commitTransaction").Type == 0 || !commit.Lookup("prevOpTime", "ts").Equal(entries[len(entries)-2].Lookup("ts")) {
			t.Errorf("%s: the last entry is no commit pointing to the prepare: %s", s.Name, commit)
		}
		commitTS = append(commitTS, commit.Lookup("o", "commitTimestamp"))
		rec := txnRecord(t, sc, "committed")
		if rec.Lookup("startOpTime").Type != 0 {
			t.Errorf("%s: a committed record keeps startOpTime: %s", s.Name, rec)
		}
	}
	// Every secondary applies the transaction at its commit, whole.
	for _, s := range c.Shards() {
		for _, m := range secondaries(t, c, s.Name) {
			mc := connect(t, options.Client().SetHosts([]string{m.Addr}).SetDirect(true).SetReadPreference(readpref.SecondaryPreferred()))
			mcoll := mc.Database("app").Collection("c")
			want := map[string][]any{"source-shard0": {10, 20, 30}, "source-shard1": {70}}[s.Name]
			deadline := time.Now().Add(time.Minute)
			for {
				got := findAll(t, mcoll, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
				var gotIDs []any
				x := int64(0)
				for _, d := range got {
					gotIDs = append(gotIDs, int(d.Lookup("_id").AsInt64()))
					if d.Lookup("_id").AsInt64() == 10 {
						x, _ = d.Lookup("x").AsInt64OK()
					}
				}
				if fmt.Sprint(gotIDs) == fmt.Sprint(want) && (s.Name != "source-shard0" || x == 1) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("secondary %s of %s holds %v, want %v with x: 1 on 10", m.Addr, s.Name, got, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	if !commitTS[0].Equal(commitTS[1]) {
		t.Errorf("the shards committed at different timestamps: %v", commitTS)
	}
	if ts, _, _ := commitTS[0].TimestampOK(); ts < max(prepareTS[0], prepareTS[1]) {
		t.Errorf("commitTimestamp %v before a prepareTimestamp %v", commitTS[0], prepareTS)
	}
}

// A participant whose statements changed nothing (a delete that matched no document)
// is prepared all the same, and logs what MongoDB logs then (op_observer_impl.cpp,
// "Log an empty 'prepare' oplog entry"): {applyOps: [], prepare: true}, which its
// config.transactions record starts at and its commit points to. Without it the
// commit's prevOpTime was the null optime and no record showed the transaction open,
// so a replay from T0 met a commit of a transaction it never saw (fault scenario 8).
func TestAParticipantThatChangedNothingLogsAnEmptyPrepare(t *testing.T) {
	c, cl := txnCluster(t)
	c.HoldCommits()
	t.Cleanup(func() { c.ReleaseCommits(true) }) // a failure leaves no commit held: the cluster closes
	done := runTxn(cl, func(sc mongo.SessionContext, coll *mongo.Collection) error {
		if _, err := coll.InsertOne(sc, bson.D{{Key: "_id", Value: 20}, {Key: "k", Value: 20}}); err != nil {
			return err
		}
		_, err := coll.DeleteOne(sc, bson.D{{Key: "_id", Value: 65}, {Key: "k", Value: 65}}) // none on shard1
		return err
	})
	awaitHeld(t, c, 1, done)
	s1 := c.Shards()[1]
	sc := shardClient(t, c, s1)
	entries := txnEntries(t, sc)
	if len(entries) != 1 {
		t.Fatalf("%s logged %d transaction entries while prepared, want the empty prepare: %v", s1.Name, len(entries), entries)
	}
	prepare := entries[0]
	if ops := values(prepare.Lookup("o", "applyOps")); prepare.Lookup("o", "applyOps").Type != bson.TypeArray || len(ops) != 0 {
		t.Errorf("the prepare is not an empty applyOps: %s", prepare)
	}
	if p, _ := prepare.Lookup("o", "prepare").BooleanOK(); !p {
		t.Errorf("the entry is not marked prepare: %s", prepare)
	}
	if rec := txnRecord(t, sc, "prepared"); !rec.Lookup("startOpTime", "ts").Equal(prepare.Lookup("ts")) {
		t.Errorf("the prepared record's startOpTime %v, want the empty prepare's ts %v", rec.Lookup("startOpTime"), prepare.Lookup("ts"))
	}
	c.ReleaseCommits(false)
	if err := <-done; err != nil {
		t.Fatalf("the transaction: %v", err)
	}
	entries = txnEntries(t, sc)
	if commit := entries[len(entries)-1]; commit.Lookup("o", "commitTransaction").Type == 0 || !commit.Lookup("prevOpTime", "ts").Equal(prepare.Lookup("ts")) {
		t.Errorf("the commit does not point to the empty prepare: %s", commit)
	}
}

// A coordinator that aborts a prepared transaction answers NoSuchTransaction, labelled
// TransientTransactionError: each shard logs abortTransaction for it, and the driver's
// withTransaction runs the transaction again, under a new txnNumber, which commits.
func TestTransactionAbortedWhilePreparedLogsAbortAndTheDriverRunsItAgain(t *testing.T) {
	c, cl := txnCluster(t)
	c.HoldCommits()
	done := crossShardTxn(cl)
	awaitHeld(t, c, 1, done)
	c.ReleaseCommits(true)
	if err := <-done; err != nil {
		t.Fatalf("the transaction run again after the abort: %v", err)
	}
	if n, _ := cl.Database("app").Collection("c").CountDocuments(context.Background(), bson.D{}); n != 4 {
		t.Errorf("%d documents after the second run's commit, want 4 (10, 20, 30, 70)", n)
	}
	for _, s := range c.Shards() {
		sc := shardClient(t, c, s)
		var kinds []string
		var aborted, committed int64
		for _, e := range txnEntries(t, sc) {
			o := e.Lookup("o").Document()
			switch first := o.Index(0).Key(); first {
			case "abortTransaction":
				aborted = e.Lookup("txnNumber").Int64()
				kinds = append(kinds, first)
			case "commitTransaction":
				committed = e.Lookup("txnNumber").Int64()
				kinds = append(kinds, first)
			}
		}
		if len(kinds) != 2 || kinds[0] != "abortTransaction" || kinds[1] != "commitTransaction" || committed <= aborted {
			t.Errorf("%s: ends %v (txnNumber %d aborted, %d committed), want the abort of the first run then the commit of a later one", s.Name, kinds, aborted, committed)
		}
		txnRecord(t, sc, "committed")
	}
}

func TestSingleShardTransactionCommitsAsOneApplyOps(t *testing.T) {
	c, cl := txnCluster(t)
	sess, err := cl.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(context.Background())
	coll := cl.Database("app").Collection("c")
	if _, err := sess.WithTransaction(context.Background(), func(sc mongo.SessionContext) (any, error) {
		_, err := coll.InsertOne(sc, bson.D{{Key: "_id", Value: 20}, {Key: "k", Value: 20}})
		return nil, err
	}); err != nil {
		t.Fatal(err)
	}
	sc := shardClient(t, c, c.Shards()[0])
	entries := txnEntries(t, sc)
	if len(entries) != 1 || entries[0].Lookup("o", "prepare").Type != 0 || len(values(entries[0].Lookup("o", "applyOps"))) != 1 {
		t.Fatalf("a single-shard transaction's entries: %v, want one unprepared applyOps", entries)
	}
	txnRecord(t, sc, "committed")
}

// A prepare answers once it is majority-committed: one a rollback removes was never
// acknowledged (its vote fails), so no coordinator commits a transaction a shard lost.
func TestPrepareIsAcknowledgedOnlyOnceMajorityCommitted(t *testing.T) {
	c, cl := txnCluster(t)
	sh := c.Shards()[0]
	sess, err := cl.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(context.Background())
	// A transaction's write reaches shard0; its prepare is then sent as the
	// coordinator does, with shard0's secondaries held.
	sc := mongo.NewSessionContext(context.Background(), sess)
	if err := sess.StartTransaction(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Database("app").Collection("c").InsertOne(sc, bson.D{{Key: "_id", Value: 20}, {Key: "k", Value: 20}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReplicationLag(sh.Name, -1, -1); err != nil {
		t.Fatal(err)
	}
	lsid := sess.ID()
	txnNumber := sess.(mongo.XSession).ClientSession().TxnNumber
	direct := shardClient(t, c, sh)
	voted := make(chan error, 1)
	go func() {
		_, err := direct.Database("admin").RunCommand(context.Background(), bson.D{{Key: "prepareTransaction", Value: 1},
			{Key: "_sandboxLsid", Value: lsid}, {Key: "txnNumber", Value: txnNumber}, {Key: "autocommit", Value: false}}).Raw()
		voted <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for len(txnEntries(t, direct)) == 0 {
		select {
		case err := <-voted:
			t.Fatalf("the prepare answered before its entry appeared: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the prepare entry never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.StepDown(sh.Name, true); err != nil {
		t.Fatal(err)
	}
	if err := <-voted; err == nil {
		t.Fatal("the prepare was acknowledged before its entry was majority-committed, and then rolled back")
	}
	if err := c.SetReplicationLag(sh.Name, -1, 0); err != nil {
		t.Fatal(err)
	}
}

// A primary elected while a transaction is prepared takes it over: the coordinator's
// commit completes there, whole.
func TestNewPrimaryTakesOverAPreparedTransaction(t *testing.T) {
	c, cl := txnCluster(t)
	c.HoldCommits()
	done := crossShardTxn(cl)
	awaitHeld(t, c, 1, done)
	if _, err := c.StepDown(c.Shards()[0].Name, false); err != nil {
		t.Fatal(err)
	}
	c.ReleaseCommits(false)
	if err := <-done; err != nil {
		t.Fatalf("the commit after the stepdown: %v", err)
	}
	coll := cl.Database("app").Collection("c")
	if got := findAll(t, coll, bson.D{{Key: "_id", Value: 10}}); len(got) != 1 || got[0].Lookup("x").Type == 0 {
		t.Errorf("the transaction's update on the new primary: %v", got)
	}
	if n, _ := coll.CountDocuments(context.Background(), bson.D{}); n != 4 {
		t.Errorf("%d documents after the commit, want 4 (10, 20, 30, 70)", n)
	}
	txnRecord(t, shardClient(t, c, c.Shards()[0]), "committed")
}

// A commit rolled back with its primary leaves the transaction prepared on the new
// primary; the coordinator's retry commits it there, and the rolled-back member ends
// with the committed documents.
func TestRolledBackCommitIsCommittedAgainOnTheNewPrimary(t *testing.T) {
	c, cl := txnCluster(t)
	sh := c.Shards()[0]
	c.HoldCommits()
	done := crossShardTxn(cl)
	awaitHeld(t, c, 1, done)
	if err := c.SetReplicationLag(sh.Name, -1, -1); err != nil {
		t.Fatal(err)
	}
	direct := shardClient(t, c, sh)
	c.ReleaseCommits(false)
	deadline := time.Now().Add(time.Minute)
	for {
		entries := txnEntries(t, direct)
		if entries[len(entries)-1].Lookup("o", "commitTransaction").Type != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the commit entry never appeared on the primary")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rep, err := c.StepDown(sh.Name, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RolledBack == 0 {
		t.Fatalf("the stepdown rolled nothing back: %+v", rep)
	}
	// Rolled back and still held, the old primary shows the transaction as the new
	// primary has it: prepared, its inserts not there.
	old := connect(t, options.Client().SetHosts([]string{rep.OldPrimary}).SetDirect(true).SetReadPreference(readpref.SecondaryPreferred()))
	if got := findAll(t, old.Database("app").Collection("c"), bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{20, 30}}}}}); len(got) != 0 {
		t.Errorf("the rolled-back member keeps the writes of the commit it rolled back: %v", got)
	}
	if err := c.SetReplicationLag(sh.Name, -1, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the transaction whose commit was rolled back: %v", err)
	}
	coll := cl.Database("app").Collection("c")
	if n, _ := coll.CountDocuments(context.Background(), bson.D{}); n != 4 {
		t.Errorf("%d documents after the commit, want 4 (10, 20, 30, 70)", n)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		got := findAll(t, old.Database("app").Collection("c"), bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{10, 20, 30}}}}})
		if len(got) == 3 && got[0].Lookup("x").Type != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rolled-back member holds %v, want 10 (with x), 20 and 30", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A 4.0 cluster runs no transaction through mongos (4.0 has them on replica sets only).
func TestTransactionsThroughA40RouterAreRefused(t *testing.T) {
	c := startCluster(t, Options{MongoDBVersion: "4.0"})
	cl := routerClient(t, c)
	sess, err := cl.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(context.Background())
	_, err = sess.WithTransaction(context.Background(), func(sc mongo.SessionContext) (any, error) {
		return cl.Database("app").Collection("c").InsertOne(sc, bson.D{{Key: "_id", Value: 1}})
	})
	if err == nil || !strings.Contains(err.Error(), "4.2") {
		t.Fatalf("a transaction through a 4.0 router: %v, want a refusal naming 4.2", err)
	}
}

// Two transactions writing one document: the second fails with a WriteConflict that
// drivers retry (TransientTransactionError), as on mongos.
func TestWriteConflictBetweenTransactionsIsTransient(t *testing.T) {
	_, cl := txnCluster(t)
	ctx := context.Background()
	coll := cl.Database("app").Collection("c")
	first, err := cl.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer first.EndSession(ctx)
	second, err := cl.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer second.EndSession(ctx)
	inc := bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}
	key := bson.D{{Key: "_id", Value: 10}, {Key: "k", Value: 10}}
	if err := first.StartTransaction(); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(mongo.NewSessionContext(ctx, first), key, inc); err != nil {
		t.Fatal(err)
	}
	if err := second.StartTransaction(); err != nil {
		t.Fatal(err)
	}
	_, err = coll.UpdateOne(mongo.NewSessionContext(ctx, second), key, inc)
	var le mongo.LabeledError
	if commandCode(err) != 112 || !errors.As(err, &le) || !le.HasErrorLabel("TransientTransactionError") {
		t.Fatalf("the second transaction's write: %v, want a WriteConflict labelled TransientTransactionError", err)
	}
	second.AbortTransaction(ctx)
	if err := first.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := findAll(t, coll, key); len(got) != 1 || got[0].Lookup("n").AsInt64() != 1 {
		t.Errorf("after the first transaction's commit: %v, want n: 1", got)
	}
}

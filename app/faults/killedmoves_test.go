package faults_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox/router"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Scenarios 17 to 21 (issue 15): a DBA's DDL or move lands while shardlift is
// killed (-9) in the middle of the migration; the resumed migration ends with
// nothing lost or duplicated and its own verification passing, or, for a
// resharding the destination cannot follow, stops with a message naming it.
// They take a minute or more each (most of it starting the sandboxes and copying),
// so they run only in the long form (make faults).

// dbaCommand is what a DBA runs during the migration, and what it must leave.
type dbaCommand struct {
	what string                                  // in words, for the notes and messages
	run  func(ctx context.Context, e *env) error // the command, on the source
	left func(t *testing.T, e *env)              // checks what it leaves on the destination (nil: Compare's check is enough)
	// named, for a move, is what a shard's row must say while it copies again
	// ("" for a DDL, which moves nothing).
	named string
	// midway is where shardlift is killed, in the middle of applying the command.
	midway midway
}

// midway is a moment in the middle of shardlift's work on a pattern: a command it
// sends the destination for it (a DDL handed over, a restarted shard's clear), held
// in flight by the destination (sandbox HoldCommands, as a slow server) so that the
// kill lands while shardlift waits for the answer; and, where the command alone
// does not say it, what the status must show at that moment.
type midway struct {
	what   string // in words: "the create of db.merged handed to the destination"
	hold   router.CommandHold
	status func(faults.Status) bool // nil: the held command is enough
}

// killMidway kills shardlift (-9) once the destination holds a command of mid's
// and the status shows mid's moment, and checks that the command was still
// unanswered after the kill (the kill landed in the middle, not after it); the held
// command is then interrupted, done nothing, as a server ends an operation whose
// client died: the resumed migration must apply it again. release was made by
// e.holdMidway before the pattern started.
func (e *env) killMidway(mid midway, release func(abort bool)) {
	e.t.Helper()
	var held []router.HeldCommand
	e.await(mid.what, 5*time.Minute, func(s faults.Status) bool {
		held = e.dst.HeldCommands()
		return len(held) > 0 && (mid.status == nil || mid.status(s))
	})
	why := fmt.Sprintf("in the middle: %s (held: %s %.300s)", mid.what, held[0].Command, held[0].Body)
	e.kill(why)
	e.t.Log("killed (-9) " + why)
	after := e.dst.HeldCommands()
	release(true)
	if len(after) == 0 {
		e.t.Fatalf("the kill did not land in the middle: the destination no longer held %s once shardlift was killed", mid.hold)
	}
}

// holdMidway starts holding mid's commands on the destination.
func (e *env) holdMidway(mid midway) func(abort bool) {
	release := e.dst.HoldCommands(mid.hold)
	e.t.Cleanup(func() { release(true) })
	return release
}

// killedDuring starts the migration under the load, waits for a shard past its T0
// (copying or catching up) or for the migration ready (the seed chooses), runs the
// DBA's command and kills shardlift (-9) in the middle of its work on it
// (killMidway), waits for the command to end, resumes, and drives the migration to
// done.
func (e *env) killedDuring(row *faults.Row, cmd dbaCommand) {
	e.t.Helper()
	e.startLoad(e.s.size.rate)
	e.start()
	s := e.awaitKillMoment()
	release := e.holdMidway(cmd.midway)
	done := make(chan error, 1)
	go func() {
		// A DBA's command may run for minutes on a loaded machine: longer than the
		// test clients' minute.
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Minute)
		defer cancel()
		done <- cmd.run(ctx, e)
	}()
	e.killMidway(cmd.midway, release)
	if err := <-done; err != nil {
		e.t.Fatalf("%s: %v", cmd.what, err)
	}
	resumed := time.Now()
	e.start()
	moved := ""
	seen := func(s faults.Status) {
		for _, sh := range s.Shards {
			if moved == "" && sh.Moved != "" {
				moved = sh.Name + ": " + sh.Moved
			}
		}
		e.neverFailed(s)
	}
	if cmd.named != "" {
		// Resumed ready, the migration reads in sync until its first look for
		// moves restarts the shards the move touched.
		e.await("a shard's row naming "+cmd.what, 5*time.Minute, func(s faults.Status) bool {
			seen(s)
			return strings.Contains(moved, cmd.named)
		})
	}
	// A kill during a restart's clear makes the resumed migration clear and copy
	// those shards again in full: minutes on a loaded machine.
	e.await("in sync after "+cmd.what, 10*time.Minute, func(s faults.Status) bool {
		seen(s)
		return s.State == "ready" && allSynced(s)
	})
	e.finish()
	row.Converge = time.Since(resumed)
	row.Notes = fmt.Sprintf("after %s, killed while %s; resumed", momentNames[momentOf(s)], cmd.midway.what)
	if moved != "" {
		row.Notes += fmt.Sprintf("; rows said %q", moved)
	}
	e.t.Log(row.Notes)
	e.verify(row)
	if cmd.left != nil {
		cmd.left(e.t, e)
	}
}

// clearing is a status with shard's restart clearing ns on the destination.
func clearing(ns string) func(faults.Status) bool {
	return func(s faults.Status) bool {
		return slices.ContainsFunc(s.Shards, func(sh faults.Shard) bool {
			return sh.Phase == "clearing" && sh.Clearing != nil && sh.Clearing.Namespace == ns
		})
	}
}

// awaitKillMoment waits, as the seed chooses, for a shard past its T0 or for the
// migration ready.
func (e *env) awaitKillMoment() faults.Status {
	e.t.Helper()
	if e.rnd.IntN(2) == 0 {
		return e.await("ready", 5*time.Minute, isState("ready"))
	}
	return e.await("a shard past its T0", 5*time.Minute, func(s faults.Status) bool {
		return slices.ContainsFunc(s.Shards, func(sh faults.Shard) bool { return sh.Phase != "pending" })
	})
}

// largestCollection is the seed's collection with the most documents.
func (e *env) largestCollection() seed.Collection {
	e.t.Helper()
	largest, most := seed.Collection{}, int64(-1)
	for _, c := range seed.Collections() {
		n, err := e.srcC.Database(c.DB).Collection(c.Name).EstimatedDocumentCount(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if n > most {
			largest, most = c, n
		}
	}
	return largest
}

// 17. A DBA builds an index on the largest collection.
func indexBuildKilled(t *testing.T, e *env, row *faults.Row) {
	c := e.largestCollection()
	e.killedDuring(row, dbaCommand{
		what: "an index build on " + c.Namespace(),
		midway: midway{what: "the build of dba_1 on " + c.Namespace() + " was handed to the destination",
			hold: router.CommandHold{Command: "createIndexes", NS: c.Namespace(), Value: "dba_1"}},
		run: func(ctx context.Context, e *env) error {
			return e.srcC.Database(c.DB).RunCommand(ctx, bson.D{{Key: "createIndexes", Value: c.Name},
				{Key: "indexes", Value: bson.A{bson.D{{Key: "key", Value: bson.D{{Key: "dba", Value: 1}}}, {Key: "name", Value: "dba_1"}}}}}).Err()
		},
		left: func(t *testing.T, e *env) {
			var names []string
			specs, err := e.dstC.Database(c.DB).Collection(c.Name).Indexes().ListSpecifications(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range specs {
				names = append(names, s.Name)
			}
			if !slices.Contains(names, "dba_1") {
				t.Errorf("the index dba_1 built on the source's %s is not on the destination (it has %v)", c.Namespace(), names)
			}
		},
	})
}

// 18. An application's $merge fills a new collection from the largest one (its
// first 500 documents: the sandbox's $merge upserts one by one).
func mergeKilled(t *testing.T, e *env, row *faults.Row) {
	c := e.largestCollection()
	e.killedDuring(row, dbaCommand{
		what: "a $merge from " + c.Namespace() + " into the new " + c.DB + ".merged",
		midway: midway{what: "the create of " + c.DB + ".merged was handed to the destination",
			hold: router.CommandHold{Command: "create", NS: c.DB + ".merged"}},
		run: func(ctx context.Context, e *env) error {
			cur, err := e.srcC.Database(c.DB).Collection(c.Name).Aggregate(ctx,
				bson.A{bson.D{{Key: "$limit", Value: 500}}, bson.D{{Key: "$merge", Value: bson.D{{Key: "into", Value: "merged"}}}}})
			if err != nil {
				return err
			}
			return cur.Close(ctx)
		},
		left: func(t *testing.T, e *env) {
			n, err := e.dstC.Database(c.DB).Collection("merged").CountDocuments(e.ctx, bson.D{})
			if err != nil || n == 0 {
				t.Errorf("%s.merged on the destination: %d documents, %v", c.DB, n, err)
			}
		},
	})
}

// 19. A DBA moves the primary shard of the database of the seed's unsharded
// collection (its collection moves with it).
func movePrimaryKilled(t *testing.T, e *env, row *faults.Row) {
	var db, ns string
	for _, c := range seed.Collections() {
		if len(c.Key) == 0 {
			db, ns = c.DB, c.Namespace()
			break
		}
	}
	if db == "" {
		t.Fatal("the seed has no unsharded collection")
	}
	var d struct {
		Primary string `bson:"primary"`
	}
	if err := e.srcC.Database("config").Collection("databases").FindOne(e.ctx, bson.D{{Key: "_id", Value: db}}).Decode(&d); err != nil {
		t.Fatalf("config.databases %s: %v", db, err)
	}
	to := ""
	for _, s := range e.src.Shards() {
		if s.Name != d.Primary {
			to = s.Name
		}
	}
	e.killedDuring(row, dbaCommand{
		what:  fmt.Sprintf("a movePrimary of %s from %s to %s", db, d.Primary, to),
		named: "the primary shard of database " + db + " moved",
		midway: midway{what: "the move was seen and a restarted shard's clear of " + ns + " was handed to the destination",
			hold: router.CommandHold{Command: "delete", NS: ns}, status: clearing(ns)},
		run: func(ctx context.Context, e *env) error {
			return e.srcC.Database("admin").RunCommand(ctx, bson.D{{Key: "movePrimary", Value: db}, {Key: "to", Value: to}}).Err()
		},
	})
}

// 20. A DBA moves a range of shop.orders to the other shard (moveRange, the
// balancer off).
func moveRangeKilled(t *testing.T, e *env, row *faults.Row) {
	ch := e.chunkToMove("shop.orders")
	e.killedDuring(row, dbaCommand{
		what:  fmt.Sprintf("a moveRange of %s [%s, %s) from %s to %s", ch.ns, ch.min, ch.max, ch.from, ch.to),
		named: "a chunk of " + ch.ns,
		midway: midway{what: "the move was seen and a restarted shard's clear of " + ch.ns + " was handed to the destination",
			hold: router.CommandHold{Command: "delete", NS: ch.ns}, status: clearing(ch.ns)},
		run: func(ctx context.Context, e *env) error {
			return e.srcC.Database("admin").RunCommand(ctx, bson.D{{Key: "moveRange", Value: ch.ns},
				{Key: "min", Value: ch.min}, {Key: "max", Value: ch.max}, {Key: "toShard", Value: ch.to}}).Err()
		},
	})
}

// 21. A DBA reshards shop.orders: the destination cannot follow a new shard key,
// so the resumed migration must stop, failed, with a message naming the
// resharding and saying what to do; it must not go on copying the old chunks.
func reshardKilled(t *testing.T, e *env, row *faults.Row) {
	const ns = "shop.orders"
	e.startLoad(e.s.size.rate)
	e.start()
	s := e.awaitKillMoment()
	done := make(chan error, 1)
	go func() {
		done <- e.srcC.Database("admin").RunCommand(context.Background(), bson.D{{Key: "reshardCollection", Value: ns},
			{Key: "key", Value: bson.D{{Key: "_id", Value: 1}}}}).Err()
	}()
	e.kill(fmt.Sprintf("while a reshardCollection of %s runs, at %s", ns, s.Phases()))
	if err := <-done; err != nil {
		t.Fatalf("reshardCollection: %v", err)
	}
	resumed := time.Now()
	e.start()
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
	defer cancel()
	reason := ""
	st, err := e.m.Await(ctx, "failed", isState("failed"))
	switch {
	case err == nil:
		reason = st.Reason
	default:
		if _, exited := e.m.Exited(); !exited {
			t.Fatal(err)
		}
		// It ended before a status showed it: its last words say why.
		reason = e.log.tail(20)
	}
	e.m.Kill()
	e.endLoad()
	for _, want := range []string{ns + " was resharded", "Cancel this migration and start a new one"} {
		if !strings.Contains(reason, want) {
			t.Errorf("the migration did not stop naming the resharding: %q lacks %q", reason, want)
		}
	}
	if got := e.storedState(); got != "failed" {
		t.Errorf("the state file says %q, want failed", got)
	}
	row.Converge = time.Since(resumed)
	row.Notes = fmt.Sprintf("killed during %s while %s was resharded; resumed, stopped: %.120s", momentNames[momentOf(s)], ns, reason)
	t.Log(row.Notes)
}

package faults_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox/router"
)

// Scenarios 23 and 24 (issue 15): an application's everyday DDL on every shard's
// databases, and shardlift killed (-9) while the destination has one of them in
// hand and has not answered (killMidway). The resumed migration applies it again
// and ends equal, document for document, collection for collection.

// killedInApp runs the load and app, kills shardlift in the middle of mid (on the
// database of the last source shard), resumes, waits for three more rounds in sync,
// and drives the migration to done.
func (e *env) killedInApp(row *faults.Row, round func(a *ddlApp, ctx context.Context, db string, n int) error, mid func(db string) midway) {
	e.t.Helper()
	e.startLoad(e.s.size.rate)
	app := e.startApp(round, 2*time.Second)
	e.start()
	s := e.awaitKillMoment()
	m := mid(app.dbs[len(app.dbs)-1])
	e.killMidway(m, e.holdMidway(m))
	resumed := time.Now()
	e.start()
	from := app.rounds.Load()
	e.await("in sync, 3 rounds after the restart", 5*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		return app.rounds.Load() >= from+3 && s.State == "ready" && allSynced(s)
	})
	app.end()
	e.finish()
	row.Converge = time.Since(resumed)
	row.Notes = fmt.Sprintf("after %s, killed while %s; resumed; %d rounds in %d databases", momentNames[momentOf(s)], m.what, app.rounds.Load(), len(app.dbs))
	e.t.Log(row.Notes)
	e.verify(row)
	for _, db := range app.dbs {
		e.sameCollections(db)
	}
}

// sameCollections checks that db has the same collections on both clusters: none
// lost, no temporary collection of $out left behind (Compare sees only documents).
func (e *env) sameCollections(db string) {
	e.t.Helper()
	names := func(side string, list func() ([]string, error)) []string {
		n, err := list()
		if err != nil {
			e.t.Fatalf("list the collections of %s on the %s: %v", db, side, err)
		}
		slices.Sort(n)
		return n
	}
	src := names("source", func() ([]string, error) { return e.srcC.Database(db).ListCollectionNames(e.ctx, bson.D{}) })
	dst := names("destination", func() ([]string, error) { return e.dstC.Database(db).ListCollectionNames(e.ctx, bson.D{}) })
	if !slices.Equal(src, dst) {
		e.t.Errorf("the collections of %s differ: the source has %v, the destination %v", db, src, dst)
	}
}

// 23. An application creates a collection every 2 s in every shard's database,
// writes to it and drops the one of two rounds before; shardlift is killed while
// the destination has one of those creates in hand.
func createKilled(t *testing.T, e *env, row *faults.Row) {
	e.killedInApp(row, (*ddlApp).createRound, func(db string) midway {
		return midway{what: "the create of a collection of " + db + " was handed to the destination",
			hold: router.CommandHold{Command: "create", NS: db}}
	})
}

// 24. An application replaces a report with $out every 2 s in every shard's
// database (a temporary collection filled, then renamed over the report with
// dropTarget); shardlift is killed while the destination has the rename in hand.
func outKilled(t *testing.T, e *env, row *faults.Row) {
	e.killedInApp(row, (*ddlApp).outRound, func(db string) midway {
		return midway{what: "the rename of $out's temporary collection over " + db + ".report was handed to the destination",
			hold: router.CommandHold{Command: "renameCollection", NS: db, Value: db + ".report"}}
	})
}

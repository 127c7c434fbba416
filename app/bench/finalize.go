package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// Figure 9 (issue 17) is the finalize of a migration of the seed's data set of
// Options.Docs documents (its ranged, hashed and unique keys, secondary, unique and
// TTL indexes), twice at the same time, each on new clusters: a real `shardlift
// migrate` child copies and replays until ready, 100 documents of each collection
// are updated (the applications' last writes), the cutover starts, and I'm done
// (POST /cutover/done) is timed until the migration is done: it stops the sync,
// restores what was relaxed (the unique indexes), restores the balancers and
// verifies. Before: `--continuous-verify=false`, the finalize compares every
// document of every collection; its ceiling is one read of every document on
// both clusters at once, what a verification that reads everything costs at
// least. After: the continuous verification compared every namespace while the
// migration was ready (the cutover starts once it says so, as a DBA would
// wait), and the finalize rechecks only what changed since; its figure is
// compared with the before.
func (r *runner) finalize(ctx context.Context) error {
	if r.o.Shardlift == "" {
		return errors.New("figure 9 runs `shardlift migrate`: give the binary with --shardlift (make bench builds bin/shardlift)")
	}
	// Both at once, each on its own clusters: a machine whose load drifts weighs on
	// both alike (at 200,000 documents each takes the better part of an hour on a
	// loaded machine, one after the other twice that).
	var before, after finalizeResult
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { before, err = r.finalizeOnce(gctx, false); return err })
	g.Go(func() (err error) { after, err = r.finalizeOnce(gctx, true); return err })
	if err := g.Wait(); err != nil {
		return err
	}
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("9. finalize (I'm done), seed data set of %s docs, %d shards, verifying everything (before)", thousands(int64(r.o.Docs)), r.o.Shards),
		Shardlift: fmt.Sprintf("%.1f s", before.took.Seconds()),
		Ceiling:   fmt.Sprintf("%.1f s (one read of every document on both clusters)", before.read.Seconds()),
		Ratio:     Ratio(before.took.Seconds(), before.read.Seconds()),
		Target:    "not growing with the data",
		Verdict:   Missed, // it reads every document
	}, Row{
		Figure:    fmt.Sprintf("9. finalize (I'm done), the same, after the continuous verification (after): %s", after.reuse),
		Shardlift: fmt.Sprintf("%.1f s", after.took.Seconds()),
		Ceiling:   fmt.Sprintf("%.1f s (before)", before.took.Seconds()),
		Ratio:     Ratio(after.took.Seconds(), before.took.Seconds()),
		Target:    "not growing with the data",
		Verdict:   after.verdict,
	})
	r.note("figure 9: load average at I'm done: %s (before), %s (after)", before.load, after.load)
	r.note("figure 9: the finalize stops the sync, restores the relaxed unique indexes and the balancers, then verifies; before, every document of every collection (--continuous-verify=false; ratio = finalize / one read of both clusters); after, only what changed since the continuous verification compared it while the migration was ready (ratio = after / before); 'not growing with the data' is met when the finalize compared no namespace whole")
	return nil
}

// childTimeout is the `--timeout` of the migrations figures 9 and 16 run on the
// seed data set: their metadata commands' bound. At 200,000 documents on a loaded
// machine the sandbox's listDatabases took more than the default 10 s (FerretDB
// sizes every database, walking its SQLite pages, even for nameOnly, and the
// router asks the shards one after the other), where a mongod answers nameOnly
// from its catalog.
const childTimeout = "1m"

// finalizeResult is one finalize of figure 9.
type finalizeResult struct {
	took, read time.Duration
	reuse      string
	verdict    Verdict
	load       string // the load average at I'm done
}

func (r *runner) finalizeOnce(ctx context.Context, continuous bool) (finalizeResult, error) {
	var res finalizeResult
	label := "before, --continuous-verify=false"
	if continuous {
		label = "after, continuous verification"
	}
	// Oplogs large enough that validation, measuring the seed's burst, finds them
	// outlasting the copy.
	pair, err := startOwnPair(ctx, "finalize", sandbox.Options{Shards: r.o.Shards, OplogSize: 2 << 30}, r.logf)
	if err != nil {
		return res, err
	}
	defer pair.stop(ctx, r.logf)
	dir, src, dst, srcC := pair.dir, pair.src, pair.dst, pair.srcC
	began := time.Now()
	if _, err := seed.Populate(ctx, srcC, r.o.Docs, rand.New(rand.NewPCG(0x5eed, 9))); err != nil {
		return res, err
	}
	r.logf("9 (%s). seeded the source with the seed data set of %d documents in %v", label, r.o.Docs, time.Since(began).Round(time.Second))

	api, err := freeLoopbackAddr()
	if err != nil {
		return res, err
	}
	m, err := faults.StartMigrator(r.o.Shardlift, []string{"--source", src.URI(), "--destination", dst.URI(),
		"--state", filepath.Join(dir, "state.db"), "--api", api, "--timeout", childTimeout, fmt.Sprintf("--continuous-verify=%v", continuous)}, api, r.o.Log)
	if err != nil {
		return res, err
	}
	defer m.Kill()
	if _, err := m.Await(ctx, "ready", func(s faults.Status) bool { return s.State == "ready" }); err != nil {
		return res, err
	}
	if continuous {
		began = time.Now()
		if _, err := m.Await(ctx, "the continuous verification compared every namespace", faults.Status.Verified); err != nil {
			return res, err
		}
		r.logf("9 (%s). every namespace compared %.1f s after ready", label, time.Since(began).Seconds())
	}
	// Every shard in sync, the relaxed unique indexes are made unique while the
	// sync runs; a DBA starts the cutover once the status says so.
	began = time.Now()
	st, err := m.Await(ctx, "the unique indexes restored while syncing", func(s faults.Status) bool {
		return strings.Contains(s.UniqueIndexes, "restored on the destination while syncing")
	})
	if err != nil {
		return res, err
	}
	r.logf("9 (%s). %s, %.1f s after ready", label, st.UniqueIndexes, time.Since(began).Seconds())
	// The applications' last writes before they stop: the same in both runs.
	if err := incrementSome(ctx, srcC, finalizeWritesPerCollection); err != nil {
		return res, err
	}
	if _, err := m.API().Post(ctx, "/cutover/start"); err != nil {
		return res, fmt.Errorf("start the cutover: %w", err)
	}
	if _, err := m.Await(ctx, "the optime gap closed", faults.Status.GapClosed); err != nil {
		return res, err
	}
	res.load = loadAverage()
	r.logf("9 (%s). I'm done: the finalize of %d documents (load average %s)", label, r.o.Docs, res.load)
	began = time.Now()
	st, err = m.API().Post(ctx, "/cutover/done")
	if err != nil {
		return res, fmt.Errorf("I'm done: %w", err)
	}
	res.took = time.Since(began)
	if st.State != "done" {
		return res, fmt.Errorf("after I'm done the migration is %s: %s", st.State, st.Reason)
	}
	r.logf("9 (%s). done in %.1f s: %s", label, res.took.Seconds(), st.Reason)
	res.verdict = Missed
	switch v := st.Verification; {
	case v == nil || v.Continuous == nil:
		res.reuse = "the finalize compared everything"
	default:
		c := v.Continuous
		res.reuse = fmt.Sprintf("%d namespaces reused, %d documents rechecked, %d compared whole, %d ranges compared", c.NamespacesReused, c.DocumentsRechecked, c.NamespacesCompared, c.RangesCompared)
		if c.NamespacesCompared == 0 && c.RangesCompared == 0 {
			res.verdict = Met
		}
	}
	r.logf("9 (%s). verification: %s", label, res.reuse)
	if _, err := m.Wait(ctx); err != nil {
		return res, err
	}

	dstC, err := topology.Connect(ctx, topology.Endpoint{URI: dst.URI(), Timeout: time.Minute})
	if err != nil {
		return res, fmt.Errorf("connect to the destination: %w", err)
	}
	defer dstC.Disconnect(context.WithoutCancel(ctx))
	began = time.Now()
	var srcDocs, dstDocs int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { srcDocs, err = readEverything(gctx, srcC); return err })
	g.Go(func() (err error) { dstDocs, err = readEverything(gctx, dstC); return err })
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.read = time.Since(began)
	if srcDocs != int64(r.o.Docs) || dstDocs != srcDocs {
		return res, fmt.Errorf("after the migration the source holds %d documents, the destination %d; want %d on both", srcDocs, dstDocs, r.o.Docs)
	}
	r.logf("9 (%s). one read of both clusters' %d documents: %.1f s", label, srcDocs, res.read.Seconds())
	return res, nil
}

// finalizeWritesPerCollection is how many documents of each seed collection
// figure 9 updates between ready and the cutover.
const finalizeWritesPerCollection = 100

// incrementSome increments the counter of the first n documents of every seed
// collection, one update each, through the source's router.
func incrementSome(ctx context.Context, client *mongo.Client, n int) error {
	for _, c := range seed.Collections() {
		coll := client.Database(c.DB).Collection(c.Name)
		cur, err := coll.Find(ctx, bson.D{}, options.Find().SetLimit(int64(n)))
		if err != nil {
			return fmt.Errorf("read %s: %w", c.Namespace(), err)
		}
		var docs []bson.Raw
		for cur.Next(ctx) {
			docs = append(docs, append(bson.Raw(nil), cur.Current...))
		}
		err = cur.Err()
		cur.Close(ctx)
		if err != nil {
			return fmt.Errorf("read %s: %w", c.Namespace(), err)
		}
		for _, doc := range docs {
			filter := bson.D{{Key: "_id", Value: doc.Lookup("_id")}}
			for _, f := range c.KeyFields() {
				if f != "_id" {
					filter = append(filter, bson.E{Key: f, Value: doc.Lookup(strings.Split(f, ".")...)})
				}
			}
			if _, err := coll.UpdateOne(ctx, filter, bson.D{{Key: "$inc", Value: bson.D{{Key: c.Counter, Value: 1}}}}); err != nil {
				return fmt.Errorf("update %s: %w", c.Namespace(), err)
			}
		}
	}
	return nil
}

// readEverything reads every document of every user collection through client's
// router and returns how many there were.
func readEverything(ctx context.Context, client *mongo.Client) (int64, error) {
	dbs, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, db := range dbs {
		if !namespaces.UserDatabase(db) {
			continue
		}
		colls, err := client.Database(db).ListCollectionNames(ctx, bson.D{{Key: "type", Value: "collection"}})
		if err != nil {
			return 0, err
		}
		for _, name := range colls {
			if !namespaces.Migrated(db, name) {
				continue
			}
			cur, err := client.Database(db).Collection(name).Find(ctx, bson.D{})
			if err != nil {
				return 0, fmt.Errorf("read %s.%s: %w", db, name, err)
			}
			for cur.Next(ctx) {
				n++
			}
			err = cur.Err()
			cur.Close(ctx)
			if err != nil {
				return 0, fmt.Errorf("read %s.%s: %w", db, name, err)
			}
		}
	}
	return n, nil
}

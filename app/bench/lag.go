package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox/load"
)

// lagSample is how often the lag is sampled.
const lagSample = 250 * time.Millisecond

// lagResult is the steady-state lag benchmark's outcome.
type lagResult struct {
	samples []time.Duration
	// reported is the worst Progress.Lag Shardlift itself showed (1 s resolution).
	reported time.Duration
	// writes is the number of writes the load completed, in elapsed.
	writes  int64
	elapsed time.Duration
}

func (r lagResult) median() time.Duration {
	if len(r.samples) == 0 {
		return 0
	}
	s := slices.Clone(r.samples)
	slices.Sort(s)
	return s[len(s)/2]
}

func (r lagResult) worst() time.Duration {
	if len(r.samples) == 0 {
		return 0
	}
	return slices.Max(r.samples)
}

// observation is a source shard's newest oplog entry at one moment.
type observation struct {
	at     time.Time
	newest primitive.Timestamp
}

// lagOf is how long the oldest entry after applied has been on the source, from
// the observations of the shard's newest entry (oldest first): zero when nothing
// observed is unapplied. It is exact to one sampling period.
func lagOf(obs []observation, applied primitive.Timestamp, now time.Time) time.Duration {
	for _, o := range obs {
		if o.newest.After(applied) {
			return now.Sub(o.at)
		}
	}
	return 0
}

// measureLag replays every source shard's oplog from its newest entry into the
// destination, as a migration does once its copy is done, while a load of rate
// writes per second runs on bench.docs through the source mongos for dur; every
// lagSample it reads each shard's newest entry and the replay's resume point.
// After the load it waits for the replay to catch up and checks that both sides
// hold as many documents.
func measureLag(ctx context.Context, srcEnd topology.Endpoint, src, dst *mongo.Client, seeded, rate int, dur time.Duration) (lagResult, error) {
	top, err := topology.Discover(ctx, srcEnd)
	if err != nil {
		return lagResult{}, fmt.Errorf("discover the source: %w", err)
	}
	var names []string
	clients := map[string]*mongo.Client{}
	for _, sh := range top.Shards {
		c, err := topology.Connect(ctx, srcEnd.ForHosts(sh.Hosts, sh.SetName))
		if err != nil {
			return lagResult{}, fmt.Errorf("connect to source shard %s: %w", sh.Name, err)
		}
		defer c.Disconnect(context.WithoutCancel(ctx))
		clients[sh.Name] = c
		names = append(names, sh.Name)
	}
	ddl := replay.NewDDLOnce(names, replay.NewMongoDDL(dst, nil), nil)
	shards := map[string]*replay.Shard{}
	for _, name := range names {
		t0, err := initialsync.RecordT0(ctx, clients[name])
		if err != nil {
			return lagResult{}, fmt.Errorf("shard %s: %w", name, err)
		}
		s, err := replay.New(replay.Config{
			Shard: name, Source: replay.NewMongoSource(clients[name], replay.MongoSourceOptions{}),
			Destination: replay.NewMongoDestination(dst), DDL: ddl,
			Resume: t0, ConsistencyPoint: t0, Translator: keyIsID,
		})
		if err != nil {
			return lagResult{}, err
		}
		shards[name] = s
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var runs errgroup.Group
	runs.Go(func() error { return ddl.Run(runCtx) })
	failed := make(chan error, len(shards))
	for _, s := range shards {
		runs.Go(func() error {
			err := s.Run(runCtx)
			if err != nil && runCtx.Err() == nil {
				failed <- err
			}
			return nil
		})
	}
	stopAll := func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, s := range shards {
			s.Stop(stopCtx)
		}
		stopRun()
		runs.Wait()
	}
	defer stopAll()

	var res lagResult
	obs := map[string][]observation{}
	sample := func() (time.Duration, error) {
		// The shards are asked at once, so that a busy one does not stretch the period.
		newest := make([]primitive.Timestamp, len(names))
		seen := make([]time.Time, len(names))
		var ask errgroup.Group
		for i, name := range names {
			ask.Go(func() error {
				ts, err := initialsync.RecordT0(ctx, clients[name])
				if err != nil {
					return fmt.Errorf("shard %s: %w", name, err)
				}
				newest[i], seen[i] = ts, time.Now()
				return nil
			})
		}
		if err := ask.Wait(); err != nil {
			return 0, err
		}
		var worst time.Duration
		for i, name := range names {
			now := seen[i]
			if h := obs[name]; len(h) == 0 || newest[i].After(h[len(h)-1].newest) {
				obs[name] = append(h, observation{now, newest[i]})
			}
			p := shards[name].Snapshot()
			if p.Err != nil {
				return 0, p.Err
			}
			res.reported = max(res.reported, p.Lag)
			// Observations every entry of which is applied are no longer needed.
			h := obs[name]
			k := 0
			for k < len(h)-1 && !h[k].newest.After(p.Applied) {
				k++
			}
			obs[name] = h[k:]
			worst = max(worst, lagOf(obs[name], p.Applied, now))
		}
		return worst, nil
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, dur)
	var writes atomic.Int64
	loadDone := make(chan error, 1)
	loadRunning := true
	start := time.Now()
	go func() { loadDone <- runLoad(loadCtx, src, seeded, rate, &writes) }()
	defer func() {
		// On an early return, the load stops before the replays do.
		stopLoad()
		if loadRunning {
			<-loadDone
		}
	}()
	tick := time.NewTicker(lagSample)
	defer tick.Stop()
	var loadErr error
sampling:
	for {
		select {
		case loadErr = <-loadDone:
			loadRunning = false
			break sampling
		case err := <-failed:
			return lagResult{}, fmt.Errorf("replay failed under load: %w", err)
		case <-tick.C:
			l, err := sample()
			if err != nil {
				return lagResult{}, err
			}
			res.samples = append(res.samples, l)
		}
	}
	res.elapsed, res.writes = time.Since(start), writes.Load()
	if loadErr != nil && !errors.Is(loadErr, context.DeadlineExceeded) {
		return lagResult{}, fmt.Errorf("the source load failed: %w", loadErr)
	}
	// Catch up, then compare the document counts.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l, err := sample()
		if err != nil {
			return lagResult{}, err
		}
		if l == 0 {
			break
		}
		if time.Now().After(deadline) {
			return lagResult{}, fmt.Errorf("the replay did not catch up within 2 minutes after the load (lag %v)", l)
		}
		select {
		case <-ctx.Done():
			return lagResult{}, ctx.Err()
		case <-time.After(lagSample):
		}
	}
	return res, sameCount(ctx, src, dst)
}

// sameCount checks that bench.docs holds as many documents on both sides.
func sameCount(ctx context.Context, src, dst *mongo.Client) error {
	var n [2]int64
	for i, c := range []*mongo.Client{src, dst} {
		var err error
		if n[i], err = c.Database(benchDB).Collection(docsColl).CountDocuments(ctx, bson.D{}); err != nil {
			return fmt.Errorf("count %s.%s: %w", benchDB, docsColl, err)
		}
	}
	if n[0] != n[1] {
		return fmt.Errorf("after the replay caught up, %s.%s holds %d documents on the source and %d on the destination", benchDB, docsColl, n[0], n[1])
	}
	return nil
}

// loadWorkers bounds the load's writes in flight.
const loadWorkers = 16

// runLoad writes to bench.docs through the source mongos at rate writes per second
// until ctx ends: 30% inserts of new 1 KiB documents, 50% updates ($set and $inc)
// of seeded documents, 20% deletes of others. A write the workers cannot take in
// time is dropped, so the achieved rate (writes) can be lower than asked.
func runLoad(ctx context.Context, src *mongo.Client, seeded, rate int, writes *atomic.Int64) error {
	coll := src.Database(benchDB).Collection(docsColl)
	jobs := make(chan int, rate)
	g, gctx := errgroup.WithContext(ctx)
	// A write under way when the load ends is let finish: cancelled in flight, the
	// server may still apply it after the replay was found caught up, and the counts
	// then differ by a write the replay never had the chance to see (the tiny run
	// once found 1,051 documents on the destination against 1,050: a delete that
	// landed on the source after the check).
	wctx, abandon := load.AfterGrace(gctx)
	defer abandon()
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(4, 2))
	inserted, deleted := 0, 0
	for range loadWorkers {
		g.Go(func() error {
			for kind := range jobs {
				if gctx.Err() != nil {
					continue // the load ended: what is queued is not sent
				}
				var err error
				switch {
				case kind < 30:
					mu.Lock()
					n := inserted
					inserted++
					mu.Unlock()
					_, err = coll.InsertOne(wctx, docOfSize(objectID(idLoad, n), n, docBytes))
				case kind < 80:
					mu.Lock()
					n := r.IntN(max(seeded/2, 1))
					mu.Unlock()
					_, err = coll.UpdateOne(wctx, bson.D{{Key: "_id", Value: objectID(idSeed, n)}},
						bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "touched"}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
				default:
					mu.Lock()
					n := seeded - 1 - deleted
					deleted++
					mu.Unlock()
					_, err = coll.DeleteOne(wctx, bson.D{{Key: "_id", Value: objectID(idSeed, n)}})
				}
				if err != nil {
					return err
				}
				writes.Add(1)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		const step = 10 * time.Millisecond
		tick := time.NewTicker(step)
		defer tick.Stop()
		start := time.Now()
		sent := 0
		for {
			select {
			case <-gctx.Done():
				return nil
			case now := <-tick.C:
				due := int(now.Sub(start).Seconds() * float64(rate))
				for ; sent < due; sent++ {
					mu.Lock()
					kind := r.IntN(100)
					mu.Unlock()
					select {
					case jobs <- kind:
					default: // the workers are behind: the write is dropped
					}
				}
			}
		}
	})
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

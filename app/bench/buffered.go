package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/oplogbuf"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/internal/units"
)

// bufferedColl is the collection figure 14's writes go to.
const bufferedColl = "buffered"

// sourceOplog is one source shard's oplog with the range figure 14 replays.
type sourceOplog struct {
	name       string
	client     *mongo.Client
	from, last primitive.Timestamp
}

// bufferedReplay is figure 14: the same oplog range of every source shard replayed
// straight from the source's oplog, and from an oplog buffer the fetcher filled
// first (as it does while the copy runs); the ratio is the buffered replay's rate
// over the direct one's.
func (r *runner) bufferedReplay(ctx context.Context) error {
	n := r.o.Backlog
	r.logf("14. %d inserts into the source's oplogs (bench.%s, hashed _id)", n, bufferedColl)
	for _, c := range []*mongo.Client{r.srcC, r.dstC} {
		if err := c.Database(benchDB).Collection(bufferedColl).Drop(ctx); err != nil {
			return err
		}
		if err := shardHashed(ctx, c, benchDB, bufferedColl); err != nil {
			return err
		}
	}
	shards, err := r.sourceShards(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range shards {
			s.client.Disconnect(context.WithoutCancel(ctx))
		}
	}()
	for i := range shards {
		if shards[i].from, err = initialsync.RecordT0(ctx, shards[i].client); err != nil {
			return err
		}
	}
	if err := insertBuffered(ctx, r.srcC, n); err != nil {
		return err
	}
	for i := range shards {
		if shards[i].last, err = initialsync.RecordT0(ctx, shards[i].client); err != nil {
			return err
		}
	}

	dir, err := os.MkdirTemp("", "shardlift-bench-buffer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r.logf("14. fetch into the oplog buffers (%s)", dir)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	fetchers, fetch, bytes, err := fetchRange(fetchCtx, shards, dir)
	if err != nil {
		return err
	}
	r.logf("    %s of oplog in %v", units.Bytes(bytes), fetch.Round(time.Millisecond))

	// Each replay twice, in the order buffered, direct, direct, buffered, and the
	// mean of each kept: a load that drifts steadily over the four runs weighs on
	// both alike.
	sources := map[bool]func(sourceOplog) (replay.Source, error){
		false: func(s sourceOplog) (replay.Source, error) {
			return replay.NewMongoSource(s.client, replay.MongoSourceOptions{}), nil
		},
		true: func(s sourceOplog) (replay.Source, error) { return fetchers[s.name].Source(), nil },
	}
	sum := map[bool]time.Duration{}
	var runs []string
	for _, buffered := range []bool{true, false, false, true} {
		what := "straight from the source oplogs"
		if buffered {
			what = "from the oplog buffers"
		}
		r.logf("14. replay %s", what)
		d, err := replayRange(ctx, r.dstC, shards, n, sources[buffered])
		if err != nil {
			return err
		}
		r.logf("    %s in %v", rate(float64(n)/d.Seconds(), "inserts/s"), d.Round(time.Millisecond))
		runs = append(runs, fmt.Sprintf("%s %v", what, d.Round(time.Millisecond)))
		sum[buffered] += d
	}
	directRate, bufferedRate := float64(2*n)/sum[false].Seconds(), float64(2*n)/sum[true].Seconds()
	r.note("figure 14 (the mean of 2 runs each): %s", strings.Join(runs, ", "))
	r.note("figure 14: %d inserts over %d shards; the fetch buffered %s of oplog at %s (%s)", n, len(shards), units.Bytes(bytes),
		units.Rate(float64(bytes)/fetch.Seconds()), rate(float64(n)/fetch.Seconds(), "entries/s"))
	ratio := Ratio(bufferedRate, directRate)
	r.t.Rows = append(r.t.Rows, Row{
		Figure:    fmt.Sprintf("14. oplog replay from the buffer, %s inserts, %d shards", thousands(int64(n)), len(shards)),
		Shardlift: rate(bufferedRate, "inserts/s"),
		Ceiling:   rate(directRate, "inserts/s") + " (from the source oplogs)",
		Ratio:     ratio, Target: ">= 0.90", Verdict: AtLeast(ratio, 0.9),
	})
	for _, c := range []*mongo.Client{r.srcC, r.dstC} {
		if err := c.Database(benchDB).Collection(bufferedColl).Drop(ctx); err != nil {
			return err
		}
	}
	return nil
}

// sourceShards connects to every source shard.
func (r *runner) sourceShards(ctx context.Context) ([]sourceOplog, error) {
	var out []sourceOplog
	for _, sh := range r.src.Shards() {
		c, err := mongo.Connect(ctx, options.Client().ApplyURI("mongodb://"+sh.Addr+"/?directConnection=true"))
		if err != nil {
			return nil, fmt.Errorf("connect to source shard %s: %w", sh.Name, err)
		}
		out = append(out, sourceOplog{name: sh.Name, client: c})
	}
	return out, nil
}

// insertBuffered inserts n documents of ~1 KiB through the source mongos, 8
// batches of 500 at a time.
func insertBuffered(ctx context.Context, src *mongo.Client, n int) error {
	coll := src.Database(benchDB).Collection(bufferedColl)
	pad := strings.Repeat("x", 1000)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for start := 0; start < n; start += 500 {
		g.Go(func() error {
			var docs []any
			for i := start; i < min(start+500, n); i++ {
				docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: pad}})
			}
			_, err := coll.InsertMany(gctx, docs)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("insert figure 14's documents: %w", err)
	}
	return nil
}

// replayRange replays every shard's range from the source source gives it, until
// each has applied its last entry, and checks the destination holds n documents.
func replayRange(ctx context.Context, dst *mongo.Client, shards []sourceOplog, n int, source func(sourceOplog) (replay.Source, error)) (time.Duration, error) {
	if err := dst.Database(benchDB).Collection(bufferedColl).Drop(ctx); err != nil {
		return 0, err
	}
	if err := shardHashed(ctx, dst, benchDB, bufferedColl); err != nil {
		return 0, err
	}
	var names []string
	for _, s := range shards {
		names = append(names, s.name)
	}
	ddl := replay.NewDDLOnce(names, replay.NewMongoDDL(dst, nil), nil)
	runs := map[string]*replay.Shard{}
	for _, s := range shards {
		src, err := source(s)
		if err != nil {
			return 0, err
		}
		rp, err := replay.New(replay.Config{Shard: s.name, Source: src, Destination: replay.NewMongoDestination(dst), DDL: ddl,
			Resume: s.from, T0: s.from, ConsistencyPoint: s.from, Translator: keyIsID})
		if err != nil {
			return 0, err
		}
		runs[s.name] = rp
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var g errgroup.Group
	g.Go(func() error { return ddl.Run(runCtx) })
	start := time.Now()
	for _, rp := range runs {
		g.Go(func() error { return rp.Run(runCtx) })
	}
	var elapsed time.Duration
	for {
		done := true
		for _, s := range shards {
			p := runs[s.name].Snapshot()
			if p.Err != nil {
				stop()
				g.Wait()
				return 0, p.Err
			}
			done = done && !p.Applied.Before(s.last)
		}
		if done {
			elapsed = time.Since(start)
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	for _, rp := range runs {
		rp.Stop(ctx)
	}
	stop()
	g.Wait()
	got, err := dst.Database(benchDB).Collection(bufferedColl).CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	if got != int64(n) {
		return 0, fmt.Errorf("figure 14: the destination holds %d documents after the replay, want %d", got, n)
	}
	return elapsed, nil
}

// fetchRange fetches every shard's range into an oplog buffer under dir and
// returns the fetchers (still running, until ctx ends), the time it took and the
// bytes buffered.
func fetchRange(ctx context.Context, shards []sourceOplog, dir string) (map[string]*replay.Fetcher, time.Duration, int64, error) {
	fetchers := map[string]*replay.Fetcher{}
	start := time.Now()
	for _, s := range shards {
		store, _, err := oplogbuf.Open(filepath.Join(dir, s.name), oplogbuf.Options{})
		if err != nil {
			return nil, 0, 0, err
		}
		f, err := replay.NewFetcher(replay.FetcherConfig{Shard: s.name, Source: replay.NewMongoSource(s.client, replay.MongoSourceOptions{}), Store: store, From: replay.OpTime{TS: s.from}})
		if err != nil {
			return nil, 0, 0, err
		}
		fetchers[s.name] = f
		go f.Run(ctx)
	}
	var bytes int64
	for {
		done := true
		bytes = 0
		for _, s := range shards {
			p := fetchers[s.name].Snapshot()
			if p.Err != nil {
				return nil, 0, 0, p.Err
			}
			done = done && !p.Fetched.Before(s.last)
			bytes += p.Bytes
		}
		if done {
			return fetchers, time.Since(start), bytes, nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

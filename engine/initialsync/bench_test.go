package initialsync_test

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
)

// benchDocs is the size of the benchmark's collection (SHARDLIFT_BENCH_DOCS overrides it).
func benchDocs() int {
	if n, err := strconv.Atoi(os.Getenv("SHARDLIFT_BENCH_DOCS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// benchDoc is document i of the benchmark: about 1 KiB.
func benchDoc(i int) bson.Raw {
	raw, _ := bson.Marshal(bson.D{
		{Key: "_id", Value: int64(i)}, {Key: "n", Value: i}, {Key: "at", Value: time.Unix(int64(i), 0).UTC()},
		{Key: "pad", Value: strings.Repeat(strconv.Itoa(i%10), 960)},
	})
	return raw
}

// insertAll inserts benchDoc(0..n-1) with conns goroutines in unordered batches of 1000.
func insertAll(ctx context.Context, coll *mongo.Collection, n, conns int) error {
	g, ctx := errgroup.WithContext(ctx)
	next := make(chan int)
	g.Go(func() error {
		defer close(next)
		for start := 0; start < n; start += 1000 {
			select {
			case next <- start:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range conns {
		g.Go(func() error {
			for start := range next {
				batch := make([]any, 0, 1000)
				for i := start; i < min(start+1000, n); i++ {
					batch = append(batch, benchDoc(i))
				}
				if _, err := coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// resetPeakRSS returns free memory to the system and clears the kernel's peak
// resident set size of this process (VmHWM), so that peakRSS measures one phase.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is VmHWM in MiB, or -1 when unknown.
func peakRSS() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err == nil {
				return float64(kb) / 1024
			}
		}
	}
	return -1
}

// BenchmarkCopyVersusBulkInsert copies a 1 KiB-document collection hashed over three
// shards (one copier per shard, Writers connections each) and then inserts the same
// documents into the same destination with a plain parallel bulk insert over as many
// connections. It reports both rates and the peak RSS of each phase (with an
// in-process sandbox, the RSS includes its FerretDB servers: point
// SHARDLIFT_TEST_SOURCE_URI and SHARDLIFT_TEST_DESTINATION_URI at a sandbox run by
// `shardlift sandbox` to measure the copier alone).
func BenchmarkCopyVersusBulkInsert(b *testing.B) {
	const shards = 3
	n := benchDocs()
	e := startEnv(b, shards)
	ctx := context.Background()
	db := e.testDB(b, "bench")
	run(b, e.srcC, bson.D{{Key: "enableSharding", Value: db}})
	run(b, e.srcC, bson.D{{Key: "shardCollection", Value: db + ".docs"}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}})
	if err := insertAll(ctx, e.srcC.Database(db).Collection("docs"), n, 8); err != nil {
		b.Fatal(err)
	}
	p := e.plan(b)
	conns := shards * initialsync.DefaultWriters

	var copyRate, copyRSS float64
	for b.Loop() {
		b.StopTimer()
		e.dstC.Database(db).Drop(ctx)
		if err := prepare.Prepare(ctx, e.dstC, p, newMemory(), nil, nil); err != nil {
			b.Fatal(err)
		}
		clients := map[string]*mongo.Client{}
		for _, s := range p.Shards {
			clients[s.Source] = e.shardClient(b, s.Source)
		}
		b.StartTimer()
		resetPeakRSS()
		start := time.Now()
		var g errgroup.Group
		mem := newMemory()
		for _, s := range p.Shards {
			g.Go(func() error {
				sp, _ := p.Shard(s.Source)
				c, err := initialsync.New(initialsync.Config{
					Shard: sp, Source: initialsync.MongoSource(clients[s.Source], primitive.Timestamp{}), Destination: initialsync.MongoDestination(e.dstC),
					Checkpoints: mem, Indexes: mem,
				})
				if err != nil {
					return err
				}
				return c.Copy(ctx)
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		copyRate = float64(n) / time.Since(start).Seconds()
		copyRSS = peakRSS()
	}
	b.StopTimer()
	if got, err := e.dstC.Database(db).Collection("docs").CountDocuments(ctx, bson.D{}); err != nil || got != int64(n) {
		b.Fatalf("the copy left %d documents (%v), want %d", got, err, n)
	}

	e.dstC.Database(db).Drop(ctx)
	if err := prepare.Prepare(ctx, e.dstC, p, newMemory(), nil, nil); err != nil {
		b.Fatal(err)
	}
	resetPeakRSS()
	start := time.Now()
	if err := insertAll(ctx, e.dstC.Database(db).Collection("docs"), n, conns); err != nil {
		b.Fatal(err)
	}
	insertRate := float64(n) / time.Since(start).Seconds()
	insertRSS := peakRSS()

	b.ReportMetric(copyRate, "copy-docs/s")
	b.ReportMetric(insertRate, "bulk-insert-docs/s")
	b.ReportMetric(copyRSS, "copy-peak-RSS-MiB")
	b.ReportMetric(insertRSS, "bulk-insert-peak-RSS-MiB")
	b.Log(fmt.Sprintf("%d documents of 1 KiB over %d shards: copy %.0f docs/s (peak RSS %.0f MiB), parallel bulk insert over %d connections %.0f docs/s (peak RSS %.0f MiB)",
		n, shards, copyRate, copyRSS, conns, insertRate, insertRSS))
}

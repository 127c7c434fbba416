package load_test

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// BenchmarkMixedLoad measures the sandbox's own cost of the mixed load: a source of 2
// shards presenting 8.0, seeded with 20,000 documents, takes the load at a rate it
// cannot reach (1,000 writes/s asked) for one second per iteration:
//
//	go test ./sandbox/load -run '^$' -bench MixedLoad -benchtime 45x
//
// writes/s is what the cluster sustained; cpu-ms/write is this process's CPU time (the
// router, the shard fronts, their FerretDB servers and the load's client) per write,
// which a busy machine changes less than the rate. The load's sampling of document
// keys, before its first write, is left out.
func BenchmarkMixedLoad(b *testing.B) {
	for _, ids := range []seed.IDs{seed.ObjectIDs, seed.NumberIDs} {
		b.Run("ids="+ids.String(), func(b *testing.B) { benchMixedLoad(b, ids) })
	}
}

func benchMixedLoad(b *testing.B, ids seed.IDs) {
	c, err := sandbox.Start(b.Context(), "source", sandbox.Options{Shards: 2, Dir: b.TempDir(), MongoDBVersion: "8.0"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	client, err := mongo.Connect(b.Context(), options.Client().ApplyURI(c.URI()))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	if _, err := seed.PopulateIDs(b.Context(), client, 20_000, rand.New(rand.NewPCG(1, 2)), ids); err != nil {
		b.Fatal(err)
	}
	var stats load.Stats
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- load.RunIDs(ctx, client, 1000, ids, rand.New(rand.NewPCG(3, 4)), &stats) }()
	defer func() {
		cancel()
		<-done
	}()
	// The load first samples the collections' keys: measure once writes flow.
	for stats.Total() == 0 && stats.Errors() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	writes0, cpu0 := stats.Total(), cpuTime()
	b.ResetTimer()
	time.Sleep(time.Duration(b.N) * time.Second)
	b.StopTimer()
	if stats.Errors() > 0 {
		b.Fatalf("%d writes failed; last: %v", stats.Errors(), stats.LastError())
	}
	writes := float64(stats.Total() - writes0)
	b.ReportMetric(writes/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/writes, "cpu-ms/write")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

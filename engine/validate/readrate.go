package validate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/topology"
)

// How a source shard's read rate is measured: its largest collection is read in _id
// order through the copy's own reader (initialsync.MongoSource, on a connection to
// the shard as the copy makes it) for ReadSampleTime from its first document, or
// ReadSampleBytes, whichever comes first. The rate counts the wait for the first
// batch too, as the copy waits for it: a server that sorts a collection before its
// first batch (FerretDB) makes every scan pay that. ReadSampleLimit bounds the whole.
const (
	ReadSampleTime  = 1500 * time.Millisecond
	ReadSampleBytes = 64 << 20
	ReadSampleLimit = 30 * time.Second
)

// ReadRate is what a timed read of one source shard measured.
type ReadRate struct {
	// NS is the collection read; Bytes and Docs what the read returned in Elapsed.
	NS      string
	Bytes   int64
	Docs    int64
	Elapsed time.Duration
	// Err is why the shard could not be read (nothing else is then known).
	Err error
}

// BytesPerSecond is the measured rate, 0 when nothing was read.
func (r ReadRate) BytesPerSecond() float64 {
	if r.Err != nil || r.Bytes <= 0 || r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Elapsed.Seconds()
}

// measureReadRates reads every source shard that holds data for a moment, all at
// once as the copy does, and returns each one's rate by shard name. A shard holding
// no collection is not read. Each is read on the members the copy will read (its
// preference in reads).
func measureReadRates(ctx context.Context, e topology.Endpoint, src *topology.Cluster, reads topology.ShardReads) map[string]ReadRate {
	shares, _ := shardShares(src)
	out := make(map[string]ReadRate, len(src.Shards))
	results := make([]ReadRate, len(src.Shards))
	var g errgroup.Group
	for i, sh := range src.Shards {
		largest, ok := largestShare(shares[sh.Name])
		if !ok {
			continue
		}
		g.Go(func() error {
			results[i] = measureReadRate(ctx, e.ForHosts(sh.Hosts, sh.SetName), largest.ns, reads.Of(sh.Name))
			return nil
		})
	}
	_ = g.Wait()
	for i, sh := range src.Shards {
		if results[i].NS != "" {
			out[sh.Name] = results[i]
		}
	}
	return out
}

// measureReadRate reads one collection of a shard from its start, in _id order.
func measureReadRate(ctx context.Context, e topology.Endpoint, ns topology.Namespace, reads topology.ReadPreference) ReadRate {
	r := ReadRate{NS: ns.Name()}
	client, err := topology.Connect(ctx, e)
	if err != nil {
		r.Err = err
		return r
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(dctx)
	}()
	ctx, cancel := context.WithTimeout(ctx, ReadSampleLimit)
	defer cancel()
	start := time.Now()
	// As the copy reads: in _id order, compared bytewise under a default collation.
	simple := false
	if len(ns.Options) > 0 {
		_, err := ns.Options.LookupErr("collation")
		simple = err == nil
	}
	cur, err := initialsync.MongoSourceReading(client, primitive.Timestamp{}, reads).Find(ctx, ns.DB, ns.Collection, bson.D{}, initialsync.ByID, simple)
	if err != nil {
		r.Err = fmt.Errorf("read %s: %w", r.NS, err)
		return r
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var first time.Time
	for cur.Next(ctx) {
		if r.Docs == 0 {
			first = time.Now()
		}
		r.Docs++
		r.Bytes += int64(len(cur.Current()))
		if r.Bytes >= ReadSampleBytes || time.Since(first) >= ReadSampleTime {
			break
		}
	}
	r.Elapsed = time.Since(start)
	if err := cur.Err(); err != nil && !(errors.Is(err, context.DeadlineExceeded) && r.Docs > 0) {
		r.Err = fmt.Errorf("read %s: %w", r.NS, err)
	}
	return r
}

package sandbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// BenchmarkTargetedWritesThroughRouter measures update and delete rates through the
// router as a collection grows, per _id type, for the README's numbers:
//
//	go test ./sandbox -run '^$' -bench TargetedWrites -benchtime 500x
//
// The collection is sharded on k (two chunks, one per shard). "dockey" writes filter on
// the document key {_id, k}, as the load generator and a migration's appliers do; "id"
// writes filter on _id alone, which the router first finds on its shard. Every _id type
// is looked up by index (sandbox/shard/keyed.go); string and ObjectId ones by FerretDB
// itself, the others by the shard front.
func BenchmarkTargetedWritesThroughRouter(b *testing.B) {
	for _, kind := range benchIDKinds {
		for _, size := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("id=%s/docs=%d", kind.name, size), func(b *testing.B) {
				benchTargetedWrites(b, size, kind.id)
			})
		}
	}
}

// benchIDKinds are the _id types applications use, each with its i-th _id.
var benchIDKinds = []struct {
	name string
	id   func(i int) any
}{
	{"objectid", func(i int) any { return oid(i) }},
	{"string", func(i int) any { return fmt.Sprintf("user-%08d", i) }},
	{"int", func(i int) any { return int32(i) }},
	{"long", func(i int) any { return int64(1_700_000_000_000+i) << 22 }},
	{"double", func(i int) any { return float64(i) + 0.5 }},
	{"date", func(i int) any { return primitive.DateTime(1_700_000_000_000 + int64(i)) }},
	{"uuid", func(i int) any {
		data := make([]byte, 16)
		binary.BigEndian.PutUint64(data[8:], uint64(i)*0x9e3779b97f4a7c15)
		return primitive.Binary{Subtype: 4, Data: data}
	}},
	{"compound", func(i int) any { return bson.D{{Key: "tenant", Value: int32(i % 7)}, {Key: "seq", Value: int64(i)}} }},
}

func benchTargetedWrites(b *testing.B, size int, id func(int) any) {
	c := startCluster(b, Options{})
	cl := routerClient(b, c)
	ctx := context.Background()
	run(b, cl, "admin", bson.D{{Key: "enableSharding", Value: "bench"}, {Key: "primaryShard", Value: "source-shard0"}})
	run(b, cl, "admin", bson.D{{Key: "shardCollection", Value: "bench.c"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	run(b, cl, "admin", bson.D{{Key: "split", Value: "bench.c"}, {Key: "middle", Value: bson.D{{Key: "k", Value: size / 2}}}})
	run(b, cl, "admin", bson.D{{Key: "moveChunk", Value: "bench.c"}, {Key: "find", Value: bson.D{{Key: "k", Value: size / 2}}}, {Key: "to", Value: "source-shard1"}})
	coll := cl.Database("bench").Collection("c")
	pad := strings.Repeat("x", 200)
	for start := 0; start < size; start += 1000 {
		batch := make([]any, 0, 1000)
		for i := start; i < start+1000 && i < size; i++ {
			batch = append(batch, bson.D{{Key: "_id", Value: id(i)}, {Key: "k", Value: i}, {Key: "n", Value: 0}, {Key: "pad", Value: pad}})
		}
		if _, err := coll.InsertMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	// Spread the writes over the whole key range with a stride.
	pick := func(i int) int { return (i * 7919) % size }
	inc := bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}
	b.Run("update-dockey", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := pick(i)
			if res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id(k)}, {Key: "k", Value: k}}, inc); err != nil || res.MatchedCount != 1 {
				b.Fatal(res, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
	b.Run("update-id", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id(pick(i))}}, inc); err != nil || res.MatchedCount != 1 {
				b.Fatal(res, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
	next := 0
	b.Run("delete-dockey", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := pick(next)
			next++
			if res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id(k)}, {Key: "k", Value: k}}); err != nil || res.DeletedCount != 1 {
				b.Fatal(res, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
	})
	b.Run("delete-id", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := pick(next)
			next++
			if res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id(k)}}); err != nil || res.DeletedCount != 1 {
				b.Fatal(res, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
	})
}

// oid is a deterministic ObjectId for document i.
func oid(i int) primitive.ObjectID {
	var id primitive.ObjectID
	copy(id[:], "bench\x00\x00\x00")
	binary.BigEndian.PutUint32(id[8:], uint32(i))
	return id
}

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
// router as a collection grows, for the README's numbers:
//
//	go test ./sandbox -run '^$' -bench TargetedWrites -benchtime 2000x
//
// The collection is sharded on k (two chunks, one per shard) and its _ids are
// ObjectIds, the common case (FerretDB looks up only string and ObjectId _ids
// without a scan). "dockey" writes filter on the document key {_id, k}, as the load
// generator and a migration's appliers do; "id" writes filter on _id alone, which
// the router first finds on its shard.
func BenchmarkTargetedWritesThroughRouter(b *testing.B) {
	for _, size := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("docs=%d", size), func(b *testing.B) {
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
					batch = append(batch, bson.D{{Key: "_id", Value: oid(i)}, {Key: "k", Value: i}, {Key: "n", Value: 0}, {Key: "pad", Value: pad}})
				}
				if _, err := coll.InsertMany(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			// Spread the writes over the whole key range with a stride.
			pick := func(i int) int { return (i * 7919) % size }
			b.Run("update-dockey", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					id := pick(i)
					if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid(id)}, {Key: "k", Value: id}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
			})
			b.Run("update-id", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid(pick(i))}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
			})
			next := 0
			b.Run("delete-dockey", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					id := pick(next)
					next++
					if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: oid(id)}, {Key: "k", Value: id}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
			})
			b.Run("delete-id", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					id := pick(next)
					next++
					if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: oid(id)}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
			})
		})
	}
}

// oid is a deterministic ObjectId for document i.
func oid(i int) primitive.ObjectID {
	var id primitive.ObjectID
	copy(id[:], "bench\x00\x00\x00")
	binary.BigEndian.PutUint32(id[8:], uint32(i))
	return id
}

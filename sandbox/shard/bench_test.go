package shard

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// BenchmarkTargetedWrites measures updates and deletes by _id plus shard key against
// collections of growing size: they must stay flat, because the front reads and writes
// each document through a lone {_id} filter, the only one FerretDB does not answer
// with a full scan. Run with: go test -run x -bench TargetedWrites ./sandbox/shard
func BenchmarkTargetedWrites(b *testing.B) {
	for _, size := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("docs=%d", size), func(b *testing.B) {
			f := startFront(b, Config{})
			c := connect(b, f)
			ctx := context.Background()
			if err := c.Database("bench").RunCommand(ctx, bson.D{
				{Key: "_sandboxSetCollection", Value: "c"}, {Key: "key", Value: bson.D{{Key: "sk", Value: 1}}},
				{Key: "uuid", Value: primitive.Binary{Subtype: 4, Data: make([]byte, 16)}},
			}).Err(); err != nil {
				b.Fatal(err)
			}
			coll := c.Database("bench").Collection("c")
			ids := make([]primitive.ObjectID, size)
			batch := make([]any, 0, 1000)
			for i := range ids {
				ids[i] = primitive.NewObjectID()
				batch = append(batch, bson.D{{Key: "_id", Value: ids[i]}, {Key: "sk", Value: i % 97}, {Key: "n", Value: 0}, {Key: "pad", Value: "0123456789abcdef0123456789abcdef"}})
				if len(batch) == cap(batch) || i == len(ids)-1 {
					if _, err := coll.InsertMany(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			key := func(i int) bson.D {
				return bson.D{{Key: "_id", Value: ids[i]}, {Key: "sk", Value: i % 97}}
			}
			b.Run("update", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := coll.UpdateOne(ctx, key(i%size), bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
			})
			next := 0
			b.Run("delete", func(b *testing.B) {
				if next+b.N > size {
					b.Skipf("only %d documents left to delete", size-next)
				}
				for i := 0; i < b.N; i++ {
					res, err := coll.DeleteOne(ctx, key(next))
					if err != nil || res.DeletedCount != 1 {
						b.Fatal(res, err)
					}
					next++
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
			})
		})
	}
}

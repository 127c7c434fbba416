package shard

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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

// BenchmarkSecondaryApply measures how fast a secondary applies its primary's updates
// in a collection of 5,000 documents, by _id type: FerretDB finds ObjectIds and
// strings through its index and anything else by a full scan, so the secondary must
// take the keyed path for the others (numeric _ids: 1.4 updates/s without it, 23 with
// it, ObjectIds 42, on a loaded 2-core machine; the set's majority point fell minutes
// behind a 40 writes/s load).
// Run with: go test -run x -bench SecondaryApply ./sandbox/shard
func BenchmarkSecondaryApply(b *testing.B) {
	for _, idType := range []string{"objectid", "number"} {
		b.Run("id="+idType, func(b *testing.B) {
			f := startFront(b, Config{Members: 3})
			p, s := connectMember(b, f, 0), connectMember(b, f, 1)
			ctx := context.Background()
			coll := p.Database("bench").Collection("c")
			const size = 5000
			ids := make([]any, size)
			docs := make([]any, size)
			for i := range ids {
				ids[i] = any(i * 7)
				if idType == "objectid" {
					ids[i] = primitive.NewObjectID()
				}
				docs[i] = bson.D{{Key: "_id", Value: ids[i]}, {Key: "pad", Value: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789"}}
			}
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: ids[(i*997)%size]}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: i}}}}); err != nil {
					b.Fatal(err)
				}
			}
			last := lastTS(b, p)
			for lastTS(b, s).Compare(last) < 0 {
				time.Sleep(10 * time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}

// BenchmarkUpdateCommandOfExistingDocuments measures one unordered update command of
// 500 $set statements, each by _id, of documents that exist, by _id type (ObjectIds
// FerretDB looks up itself; ints the front looks up). It reports the median time of
// a command. Run with: go test -run x -bench UpdateCommandOf -benchtime 5x ./sandbox/shard
func BenchmarkUpdateCommandOfExistingDocuments(b *testing.B) {
	for _, idType := range []string{"objectid", "int"} {
		b.Run("id="+idType, func(b *testing.B) {
			f := startFront(b, Config{})
			db := connect(b, f).Database("bench")
			ctx := context.Background()
			const size = 500
			ids := make([]any, size)
			docs := make([]any, size)
			for i := range ids {
				ids[i] = int32(i * 7)
				if idType == "objectid" {
					ids[i] = primitive.NewObjectID()
				}
				docs[i] = bson.D{{Key: "_id", Value: ids[i]}, {Key: "n", Value: int32(0)}, {Key: "pad", Value: "0123456789abcdef0123456789abcdef"}}
			}
			if _, err := db.Collection("c").InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
			var times []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				updates := make(bson.A, size)
				for j, id := range ids {
					updates[j] = bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id}}}, {Key: "u", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int32(i + 1)}}}}}}
				}
				start := time.Now()
				var res bson.Raw
				err := db.RunCommand(ctx, bson.D{{Key: "update", Value: "c"}, {Key: "updates", Value: updates}, {Key: "ordered", Value: false}}).Decode(&res)
				times = append(times, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if n, _ := res.Lookup("nModified").AsInt64OK(); n != size {
					b.Fatalf("nModified %d of %d: %s", n, size, res)
				}
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms/command")
		})
	}
}

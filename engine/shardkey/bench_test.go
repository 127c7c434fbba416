package shardkey

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// benchDocs returns n documents of about 400 bytes, shaped like a users
// collection: an ObjectId, a numeric user id, a nested region and some payload.
func benchDocs(b *testing.B, n int) [][]byte {
	docs := make([][]byte, n)
	for i := range docs {
		docs[i] = mustMarshal(b, bson.D{
			{Key: "_id", Value: primitive.NewObjectID()},
			{Key: "userId", Value: int64(i * 7919)},
			{Key: "name", Value: fmt.Sprintf("user-%06d", i)},
			{Key: "address", Value: bson.D{{Key: "country", Value: []string{"de", "fr", "us", "jp"}[i%4]}, {Key: "zip", Value: i % 1000}}},
			{Key: "tags", Value: bson.A{"a", "b"}},
			{Key: "bio", Value: strings.Repeat("x", 300)},
		})
	}
	return docs
}

// hashedChunks splits the hash space into n equal chunks over four shards, as
// a hashed collection with numInitialChunks would be.
func hashedChunks(b *testing.B, p *Pattern, field string, n int) []Chunk {
	bound := func(i int) Key {
		switch i {
		case 0:
			return p.GlobalMin()
		case n:
			return p.GlobalMax()
		}
		step := uint64(math.MaxUint64 / uint64(n))
		return key(b, bson.D{{Key: field, Value: int64(math.MinInt64 + int64(uint64(i)*step))}})
	}
	chunks := make([]Chunk, n)
	for i := range chunks {
		chunks[i] = Chunk{Min: bound(i), Max: bound(i + 1), Shard: fmt.Sprintf("shard%d", i%4)}
	}
	return chunks
}

// rangeChunks splits {address.country: 1, userId: 1} into n chunks.
func rangeChunks(b *testing.B, p *Pattern, n int) []Chunk {
	bound := func(i int) Key {
		switch i {
		case 0:
			return p.GlobalMin()
		case n:
			return p.GlobalMax()
		}
		return key(b, bson.D{
			{Key: "address.country", Value: []string{"de", "fr", "jp", "us"}[i*4/n]},
			{Key: "userId", Value: int64(i % (n / 4) * 1000)},
		})
	}
	chunks := make([]Chunk, n)
	for i := range chunks {
		chunks[i] = Chunk{Min: bound(i), Max: bound(i + 1), Shard: fmt.Sprintf("shard%d", i%4)}
	}
	return chunks
}

// BenchmarkExtractHashOwner measures the per-document work of routing and of
// orphan filtering: extract the shard key (hashing it when the key is hashed),
// find the owning chunk among 1024, and test a shard's ranges.
func BenchmarkExtractHashOwner(b *testing.B) {
	docs := benchDocs(b, 1024)
	hashed := mustPattern(b, bson.D{{Key: "userId", Value: "hashed"}})
	ranged := mustPattern(b, bson.D{{Key: "address.country", Value: 1}, {Key: "userId", Value: 1}})
	for _, c := range []struct {
		name   string
		p      *Pattern
		chunks []Chunk
	}{
		{"hashed", hashed, hashedChunks(b, hashed, "userId", 1024)},
		{"compound-range", ranged, rangeChunks(b, ranged, 1024)},
	} {
		m := mustChunkMap(b, c.chunks)
		owned := m.Ranges("shard1")
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 128)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k, err := c.p.AppendKey(buf[:0], docs[i%len(docs)])
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := m.Owner(k); !ok {
					b.Fatalf("no owner for %s", k)
				}
				owned.Contains(k)
			}
		})
	}
}

func BenchmarkHash64(b *testing.B) {
	for _, c := range []struct {
		name string
		v    any
	}{
		{"int64", int64(123456789)},
		{"ObjectId", primitive.NewObjectID()},
		{"string", "user@example.com"},
	} {
		v := rawValue(b, c.v)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Hash64(v)
			}
		})
	}
}

func BenchmarkCompare(b *testing.B) {
	for _, c := range []struct {
		name string
		a, b any
	}{
		{"int64", int64(5), int64(6)},
		{"int-double", int32(5), 5.5},
		{"string", "user-000123", "user-000124"},
		{"decimal-double", primitive.NewDecimal128(0x3040000000000000, 15), 1.25},
		{"object", bson.D{{Key: "a", Value: 1}, {Key: "b", Value: "x"}}, bson.D{{Key: "a", Value: 1}, {Key: "b", Value: "y"}}},
	} {
		va, vb := rawValue(b, c.a), rawValue(b, c.b)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Compare(va, vb)
			}
		})
	}
}

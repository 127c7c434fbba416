package sandbox

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/seed"
)

// collStats' size and dbStats' dataSize are MongoDB's: the BSON size of the documents,
// what a copy reads. FerretDB's own figures count SQLite pages of JSON, 2 to 3 times
// more, which made every size estimate of a migration shrink as the copy went.
func TestSizesAreTheDocumentsBSONSize(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, Options{Shards: 2})
	client := routerClient(t, c)
	sum, err := seed.Populate(ctx, client, 3000, rand.New(rand.NewPCG(19, 19)))
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want int64) {
		t.Helper()
		if got < want*85/100 || got > want*115/100 {
			t.Errorf("%s = %d bytes, want the BSON size %d within 15%%", what, got, want)
		}
	}
	var total int64
	for _, cs := range sum.Collections {
		db, coll, _ := strings.Cut(cs.Namespace, ".")
		var stats struct {
			Size int64 `bson:"size"`
		}
		if err := client.Database(db).RunCommand(ctx, bson.D{{Key: "collStats", Value: coll}}).Decode(&stats); err != nil {
			t.Fatalf("collStats %s: %v", cs.Namespace, err)
		}
		near("collStats size of "+cs.Namespace, stats.Size, cs.Bytes)
		total += stats.Size
	}
	var dataSize int64
	for _, s := range c.Shards() {
		sc := shardClient(t, c, s)
		for _, db := range dbsOf(sum) {
			var stats struct {
				DataSize int64 `bson:"dataSize"`
			}
			if err := sc.Database(db).RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Decode(&stats); err != nil {
				t.Fatalf("dbStats %s on %s: %v", db, s.Name, err)
			}
			dataSize += stats.DataSize
		}
	}
	near("dbStats dataSize summed over the shards", dataSize, sum.Bytes())
	near("collStats sizes summed", total, sum.Bytes())
}

func dbsOf(sum seed.Summary) []string {
	var out []string
	for _, c := range sum.Collections {
		db, _, _ := strings.Cut(c.Namespace, ".")
		if !slices.Contains(out, db) {
			out = append(out, db)
		}
	}
	return out
}

package sandbox

import (
	"context"
	"fmt"
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

// $collStats through the router is a 7.0 mongos's: one document per shard holding
// the collection, with the shard, the member that answered, and the figures asked
// for, the same as the collStats command's per shard; mongosh's db.coll.stats()
// reads it and adds the shards' figures up. What the sandbox does not keep
// (latency statistics) is refused, not answered with zeros.
func TestCollStatsStageGivesEachShardsFigures(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, Options{Shards: 2})
	client := routerClient(t, c)
	sum, err := seed.Populate(ctx, client, 2000, rand.New(rand.NewPCG(23, 23)))
	if err != nil {
		t.Fatal(err)
	}
	largest := slices.MaxFunc(sum.Collections, func(a, b seed.Count) int { return a.Docs - b.Docs })
	db, coll, _ := strings.Cut(largest.Namespace, ".")
	var legacy struct {
		Sharded bool                             `bson:"sharded"`
		Shards  map[string]struct{ Count int64 } `bson:"shards"`
	}
	if err := client.Database(db).RunCommand(ctx, bson.D{{Key: "collStats", Value: coll}}).Decode(&legacy); err != nil {
		t.Fatal(err)
	}
	if !legacy.Sharded || len(legacy.Shards) != 2 {
		t.Fatalf("%s: want a collection sharded over both shards, collStats says %+v", largest.Namespace, legacy)
	}
	cur, err := client.Database(db).Collection(coll).Aggregate(ctx, bson.A{
		bson.D{{Key: "$collStats", Value: bson.D{{Key: "storageStats", Value: bson.D{}}, {Key: "count", Value: bson.D{}}}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "shard", Value: 1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		NS           string `bson:"ns"`
		Shard        string `bson:"shard"`
		Host         string `bson:"host"`
		Count        int64  `bson:"count"`
		StorageStats struct {
			Count int64 `bson:"count"`
			Size  int64 `bson:"size"`
		} `bson:"storageStats"`
	}
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d documents, want one per shard: %+v", len(got), got)
	}
	var count int64
	for i, s := range c.Shards() {
		g := got[i]
		_, members, _ := strings.Cut(s.Host, "/")
		if g.NS != largest.Namespace || g.Shard != s.Name || !slices.Contains(strings.Split(members, ","), g.Host) ||
			g.Count != legacy.Shards[s.Name].Count || g.StorageStats.Count != g.Count || g.StorageStats.Size == 0 {
			t.Fatalf("shard %s (%s), collStats %+v: %+v", s.Name, s.Host, legacy.Shards[s.Name], g)
		}
		count += g.Count
	}
	if count != int64(largest.Docs) {
		t.Fatalf("the shards count %d documents of %s, want %d", count, largest.Namespace, largest.Docs)
	}
	for _, bad := range []bson.A{
		{bson.D{{Key: "$collStats", Value: bson.D{{Key: "latencyStats", Value: bson.D{}}}}}},
		{bson.D{{Key: "$match", Value: bson.D{}}}, bson.D{{Key: "$collStats", Value: bson.D{}}}},
	} {
		if _, err := client.Database(db).Collection(coll).Aggregate(ctx, bad); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}

	bin := mongoshFor(t, "7.0")
	out, err := mongoshRun(bin, t.TempDir(), c.URI(), `const s = db.getSiblingDB("`+db+`").`+coll+`.stats(); print("### stats"); print(s.sharded, s.count, Object.keys(s.shards).sort().join(","));`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range c.Shards() {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	if want := fmt.Sprintf("true %d %s", largest.Docs, strings.Join(names, ",")); strings.TrimSpace(section(out, "stats")) != want {
		t.Fatalf("mongosh's db.coll.stats() printed %q, want %q", section(out, "stats"), want)
	}
}

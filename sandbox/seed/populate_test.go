package seed_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"

	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// cluster is a sharded cluster under test: a sandbox, or the real cluster named by
// SHARDLIFT_TEST_SOURCE_URI (which must not hold the data set yet).
type cluster struct {
	uri    string
	client *mongo.Client
	shards map[string]string // shard name -> host:port of one member
}

func startCluster(t *testing.T, shards int) cluster {
	t.Helper()
	uri := os.Getenv("SHARDLIFT_TEST_SOURCE_URI")
	if uri == "" {
		c, err := sandbox.Start(t.Context(), "source", sandbox.Options{Shards: shards, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		})
		uri = c.URI()
	}
	cl := cluster{uri: uri, client: connect(t, options.Client().ApplyURI(uri)), shards: map[string]string{}}
	var reply struct {
		Shards []struct {
			ID   string `bson:"_id"`
			Host string `bson:"host"`
		} `bson:"shards"`
	}
	if err := cl.client.Database("admin").RunCommand(t.Context(), bson.D{{Key: "listShards", Value: 1}}).Decode(&reply); err != nil {
		t.Fatalf("listShards: %v", err)
	}
	for _, s := range reply.Shards {
		_, hosts, _ := strings.Cut(s.Host, "/")
		cl.shards[s.ID], _, _ = strings.Cut(hosts, ",")
	}
	return cl
}

// shard connects to one shard directly, bypassing the router.
func (cl cluster) shard(t *testing.T, name string) *mongo.Client {
	t.Helper()
	return connect(t, options.Client().ApplyURI(cl.uri).SetHosts([]string{cl.shards[name]}).
		SetDirect(true).SetReadPreference(readpref.PrimaryPreferred()))
}

func connect(t *testing.T, opts *options.ClientOptions) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(t.Context(), opts.SetServerSelectionTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func TestPopulateSpreadsEveryShardedCollectionOverEveryShard(t *testing.T) {
	cl := startCluster(t, 3)
	ctx := t.Context()
	if present, err := seed.Present(ctx, cl.client); err != nil || present {
		if err == nil {
			t.Skip("the cluster already holds the seed data set")
		}
		t.Fatalf("Present before seeding: %v", err)
	}
	const docs = 1500
	sum, err := seed.Populate(ctx, cl.client, docs, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Docs() != docs || sum.Bytes() < docs*200 {
		t.Fatalf("summary: %d documents, %d bytes; want %d documents of 200 bytes or more", sum.Docs(), sum.Bytes(), docs)
	}
	if present, err := seed.Present(ctx, cl.client); err != nil || !present {
		t.Fatalf("Present after seeding = %v, %v", present, err)
	}
	dbs, err := cl.client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range seed.Collections() {
		ns := c.Namespace()
		if !slices.Contains(dbs, c.DB) {
			t.Errorf("listDatabases %v lacks %s", dbs, c.DB)
		}
		if sum.Collections[i].Namespace != ns {
			t.Fatalf("summary entry %d is %s, want %s", i, sum.Collections[i].Namespace, ns)
		}
		coll := cl.client.Database(c.DB).Collection(c.Name)
		n, err := coll.CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatalf("count %s: %v", ns, err)
		}
		if int(n) != sum.Collections[i].Docs || n == 0 {
			t.Errorf("%s holds %d documents through the router, summary says %d", ns, n, sum.Collections[i].Docs)
		}
		checkIndexes(t, coll, c)
		perShard := map[string]int64{}
		var onShards int64
		for name := range cl.shards {
			k, err := cl.shard(t, name).Database(c.DB).Collection(c.Name).CountDocuments(ctx, bson.D{})
			if err != nil {
				t.Fatalf("count %s on shard %s: %v", ns, name, err)
			}
			perShard[name] = k
			onShards += k
		}
		t.Logf("%s: %d documents, per shard %v", ns, n, perShard)
		if onShards != n {
			t.Errorf("%s: the shards hold %d documents in all (%v), the router counts %d", ns, onShards, perShard, n)
		}
		for name, k := range perShard {
			if c.Key != nil && k == 0 {
				t.Errorf("sharded %s has no document on shard %s: %v", ns, name, perShard)
			}
			if c.Key == nil && k != 0 && k != n {
				t.Errorf("unsharded %s is spread over several shards: %v", ns, perShard)
			}
		}
		if c.Key != nil {
			checkShardingMetadata(t, cl, c)
		}
	}
}

func checkIndexes(t *testing.T, coll *mongo.Collection, c seed.Collection) {
	t.Helper()
	cur, err := coll.Indexes().List(t.Context())
	if err != nil {
		t.Fatalf("listIndexes %s: %v", c.Namespace(), err)
	}
	var specs []struct {
		Name   string `bson:"name"`
		Unique bool   `bson:"unique"`
		TTL    *int32 `bson:"expireAfterSeconds"`
	}
	if err := cur.All(t.Context(), &specs); err != nil {
		t.Fatal(err)
	}
	for _, want := range c.Indexes {
		i := slices.IndexFunc(specs, func(s struct {
			Name   string `bson:"name"`
			Unique bool   `bson:"unique"`
			TTL    *int32 `bson:"expireAfterSeconds"`
		}) bool {
			return s.Name == want.Name
		})
		if i < 0 {
			t.Errorf("%s lacks index %s: %+v", c.Namespace(), want.Name, specs)
			continue
		}
		got := specs[i]
		if got.Unique != want.Unique || (got.TTL != nil) != (want.TTL >= 0) || (got.TTL != nil && *got.TTL != want.TTL) {
			t.Errorf("%s index %s: unique %v ttl %v, want unique %v ttl %d", c.Namespace(), want.Name, got.Unique, got.TTL, want.Unique, want.TTL)
		}
	}
}

// checkShardingMetadata reads config.collections and config.chunks through the router.
func checkShardingMetadata(t *testing.T, cl cluster, c seed.Collection) {
	t.Helper()
	ctx := t.Context()
	config := cl.client.Database("config")
	var meta struct {
		Key    bson.D        `bson:"key"`
		Unique bool          `bson:"unique"`
		UUID   bson.RawValue `bson:"uuid"`
	}
	if err := config.Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: c.Namespace()}}).Decode(&meta); err != nil {
		t.Fatalf("config.collections %s: %v", c.Namespace(), err)
	}
	want, _ := bson.Marshal(c.Key)
	got, _ := bson.Marshal(meta.Key)
	if !slices.Equal(want, got) || meta.Unique != c.Unique {
		t.Errorf("config.collections %s: key %v unique %v, want %v unique %v", c.Namespace(), meta.Key, meta.Unique, c.Key, c.Unique)
	}
	cur, err := config.Collection("chunks").Find(ctx, bson.D{{Key: "uuid", Value: meta.UUID}})
	if err != nil {
		t.Fatal(err)
	}
	var chunks []struct {
		Shard string `bson:"shard"`
	}
	if err := cur.All(ctx, &chunks); err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	for _, ch := range chunks {
		owners[ch.Shard]++
	}
	for name := range cl.shards {
		if owners[name] == 0 {
			t.Errorf("%s: shard %s owns no chunk (%d chunks: %v)", c.Namespace(), name, len(chunks), owners)
		}
	}
}

// The many-collections option (issue 17) adds sharded collections shaped as
// inventory.items, which together hold about as many documents as it, each sharded
// and spread over the shards; the documents add up to the count asked for.
func TestPopulateWithManyCollections(t *testing.T) {
	if os.Getenv("SHARDLIFT_TEST_SOURCE_URI") != "" {
		t.Skip("adds collections to the cluster: sandbox only")
	}
	cl := startCluster(t, 2)
	ctx := t.Context()
	const docs, many = 1200, 12
	sum, err := seed.PopulateWith(ctx, cl.client, seed.Options{Docs: docs, Collections: many}, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Docs() != docs || len(sum.Collections) != len(seed.Collections())+many {
		t.Fatalf("summary: %d documents in %d collections, want %d in %d", sum.Docs(), len(sum.Collections), docs, len(seed.Collections())+many)
	}
	extra, items := 0, 0
	for _, c := range sum.Collections {
		switch {
		case strings.HasPrefix(c.Namespace, "many.items_"):
			extra += c.Docs
		case c.Namespace == "inventory.items":
			items = c.Docs
		}
	}
	if extra < items*9/10 || extra > items*11/10 {
		t.Errorf("the %d extra collections hold %d documents, inventory.items %d: want about as many", many, extra, items)
	}
	n, err := cl.client.Database("config").Collection("collections").CountDocuments(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^many\\.items_"}}}})
	if err != nil || n != many {
		t.Errorf("config.collections lists %d sharded extra collections (%v), want %d", n, err, many)
	}
}

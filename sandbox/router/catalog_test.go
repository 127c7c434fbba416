package router

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

func testShards(n int) []Shard {
	out := make([]Shard, n)
	for i := range out {
		out[i] = Shard{Name: "s-shard" + string(rune('0'+i)), Addr: "127.0.0.1:1"}
	}
	return out
}

// MongoDB's documentation shows these bounds for a hashed key sharded on two
// shards (four chunks) and, in sh.status() output, on six shards (twelve).
func TestHashedInitialChunksMatchMongoDB(t *testing.T) {
	four := hashedSplitPoints(4)
	want4 := []int64{-4611686018427387902, 0, 4611686018427387902}
	if !equalInts(four, want4) {
		t.Errorf("4 chunks: split points %v, want %v", four, want4)
	}
	twelve := hashedSplitPoints(12)
	want12 := []int64{-7686143364045646500, -6148914691236517200, -4611686018427387900, -3074457345618258600,
		-1537228672809129300, 0, 1537228672809129300, 3074457345618258600, 4611686018427387900,
		6148914691236517200, 7686143364045646500}
	if !equalInts(twelve, want12) {
		t.Errorf("12 chunks: split points %v, want %v", twelve, want12)
	}

	p, err := shardkey.NewPattern(bson.D{{Key: "x", Value: "hashed"}})
	if err != nil {
		t.Fatal(err)
	}
	chunks := initialChunks(p, []string{"a", "b"}, "b", true, 0)
	shards := []string{}
	for _, c := range chunks {
		shards = append(shards, c.Shard)
	}
	if want := []string{"a", "a", "b", "b"}; !equalStrings(shards, want) {
		t.Errorf("hashed chunks placed on %v, want two contiguous chunks per shard %v", shards, want)
	}
	if v := bson.Raw(chunks[0].Min).Lookup("x"); v.Type != bsontype.MinKey {
		t.Errorf("first chunk starts at %v, want MinKey", v)
	}
	if v := bson.Raw(chunks[1].Min).Lookup("x"); v.Type != bsontype.Int64 || v.Int64() != -4611686018427387902 {
		t.Errorf("second chunk starts at %v, want NumberLong(-4611686018427387902)", v)
	}

	ranged, _ := shardkey.NewPattern(bson.D{{Key: "x", Value: 1}})
	if got := initialChunks(ranged, []string{"a", "b"}, "b", true, 0); len(got) != 1 || got[0].Shard != "b" {
		t.Errorf("a ranged key starts with one chunk on the primary, got %+v", got)
	}
	if got := initialChunks(p, []string{"a", "b"}, "b", false, 0); len(got) != 1 || got[0].Shard != "b" {
		t.Errorf("a non-empty collection starts with one chunk on the primary, got %+v", got)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewDatabasesGoToTheShardWithFewestDatabases(t *testing.T) {
	cat, err := OpenCatalog(filepath.Join(t.TempDir(), "catalog.bson"), testShards(3), wire.Identity{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.EnsureDatabase("pinned", "s-shard0"); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{"s-shard0": 1}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		d, err := cat.EnsureDatabase(name, "")
		if err != nil {
			t.Fatal(err)
		}
		for s, n := range count {
			if n < count[d.Primary] {
				t.Fatalf("database %s went to %s (%d databases) while %s had %d", name, d.Primary, count[d.Primary], s, n)
			}
		}
		count[d.Primary]++
	}
	if count["s-shard0"] != 2 || count["s-shard1"] != 2 || count["s-shard2"] != 2 {
		t.Fatalf("databases per shard: %v, want 2 each", count)
	}
}

func TestCatalogSurvivesReopenWithMinKeyMaxKeyBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.bson")
	shards := testShards(2)
	cat, err := OpenCatalog(path, shards, wire.Identity{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.EnableSharding("db", "s-shard0"); err != nil {
		t.Fatal(err)
	}
	p, _ := shardkey.NewPattern(bson.D{{Key: "k", Value: 1}})
	chunks := initialChunks(p, []string{"s-shard0", "s-shard1"}, "s-shard0", true, 0)
	if _, err := cat.AddCollection(CollectionDoc{ID: "db.c", UUID: newUUID(), Key: p.Raw()}, chunks); err != nil {
		t.Fatal(err)
	}
	at := shardkey.Key(rawDoc(bson.D{{Key: "k", Value: 100}}))
	if err := cat.SplitChunk("db.c", at); err != nil {
		t.Fatal(err)
	}
	if err := cat.MoveChunk("db.c", bson.Raw(at), "s-shard1"); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetBalancer(false); err != nil {
		t.Fatal(err)
	}

	again, err := OpenCatalog(path, shards, wire.Identity{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, ok := again.Route("db.c")
	if !ok || !rt.Sharded() || len(rt.Chunks) != 2 {
		t.Fatalf("after reopening, db.c routes as %+v", rt)
	}
	if got := bson.Raw(rt.Chunks[0].Min).Lookup("k").Type; got != bsontype.MinKey {
		t.Errorf("first bound is %v, want MinKey", got)
	}
	if got := bson.Raw(rt.Chunks[1].Max).Lookup("k").Type; got != bsontype.MaxKey {
		t.Errorf("last bound is %v, want MaxKey", got)
	}
	if rt.Chunks[0].Shard != "s-shard0" || rt.Chunks[1].Shard != "s-shard1" {
		t.Errorf("chunk owners %s, %s; want s-shard0, s-shard1", rt.Chunks[0].Shard, rt.Chunks[1].Shard)
	}
	if rt.Chunks[1].Lastmod.T != 2 {
		t.Errorf("the moved chunk's lastmod is %v, want major version 2", rt.Chunks[1].Lastmod)
	}
	if owner, _ := rt.Map.Owner(shardkey.Key(rawDoc(bson.D{{Key: "k", Value: 150}}))); owner != "s-shard1" {
		t.Errorf("k=150 routes to %s, want s-shard1", owner)
	}
	if b := again.Balancer(); !b.Stopped || b.Mode != "off" {
		t.Errorf("balancer after reopen: %+v", b)
	}
	if d, _ := again.Database("db"); !d.Partitioned || d.Primary != "s-shard0" {
		t.Errorf("database after reopen: %+v", d)
	}
	docs := again.ConfigServerDocs("config", "chunks", nil)
	docs = slices.DeleteFunc(docs, func(d bson.Raw) bool { return !bytes.Equal(d.Lookup("uuid").Value, rawValue(rt.Coll.UUID).Value) })
	if len(docs) != 2 || docs[0].Lookup("uuid").Type != bsontype.Binary || docs[0].Lookup("history").Type != bsontype.Array {
		t.Errorf("config.chunks documents: %v", docs)
	}
}

// Chunk _ids until 4.2 as MongoDB's documentation and real clusters show them.
func TestChunkNamesAreMongoDBs(t *testing.T) {
	for want, min := range map[string]bson.D{
		`mydb.foo-a_"cat"`:                   {{Key: "a", Value: "cat"}},
		"config.system.sessions-_id_MinKey":  {{Key: "_id", Value: primitive.MinKey{}}},
		"test.user-_id_-4611686018427387902": {{Key: "_id", Value: int64(-4611686018427387902)}},
		"db.c-a_1b_MaxKey":                   {{Key: "a", Value: int32(1)}, {Key: "b", Value: primitive.MaxKey{}}},
	} {
		ns := want[:strings.Index(want, "-")]
		if got := chunkName(ns, rawDoc(min)); got != want {
			t.Errorf("chunkName(%s, %v) = %q, want %q", ns, min, got, want)
		}
	}
}

func TestChangelogKeepsItsLatestEntries(t *testing.T) {
	cat, err := OpenCatalog(filepath.Join(t.TempDir(), "catalog.bson"), testShards(2), wire.Identity{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cat.mu.Lock()
	for i := range changelogCap + 50 {
		cat.logChangeLocked("split", "db.c", bson.D{{Key: "i", Value: i}})
	}
	log := cat.mu.changelog
	cat.mu.Unlock()
	if len(log) != changelogCap || bson.Raw(log[len(log)-1].Details).Lookup("i").Int32() != changelogCap+49 {
		t.Errorf("changelog holds %d entries, the last %s", len(log), log[len(log)-1].Details)
	}
	if log[0].What != "split" {
		t.Errorf("the oldest entries (addShard) were not the ones dropped: %s", log[0].What)
	}
}

// The catalog file's chunks, encoded by hand for speed, are what the driver encodes,
// with and without a history.
func TestChunkListEncodesAsTheDriverDoes(t *testing.T) {
	withHistory := ChunkDoc{ID: primitive.NewObjectID(), UUID: newUUID(), Min: rawDoc(bson.D{{Key: "k", Value: primitive.MinKey{}}}),
		Max: rawDoc(bson.D{{Key: "k", Value: 5}}), Shard: "s-shard0", Lastmod: primitive.Timestamp{T: 3, I: 4},
		OnCurrentShardSince: primitive.Timestamp{T: 9}, History: []ChunkHistory{{ValidAfter: primitive.Timestamp{T: 9}, Shard: "s-shard0"}, {Shard: "s-shard1"}}}
	without := withHistory
	without.History = nil
	for _, chunks := range [][]ChunkDoc{{withHistory, without}, {}, nil} {
		want, err := bson.Marshal(struct {
			Chunks []ChunkDoc `bson:"chunks"`
		}{chunks})
		if err != nil {
			t.Fatal(err)
		}
		got, err := bson.Marshal(struct {
			Chunks chunkList `bson:"chunks"`
		}{chunks})
		if err != nil {
			t.Fatal(err)
		}
		if chunks == nil {
			// nil encodes as an empty array, which decodes the same.
			want, _ = bson.Marshal(struct {
				Chunks []ChunkDoc `bson:"chunks"`
			}{[]ChunkDoc{}})
		}
		if !bytes.Equal(got, want) {
			t.Errorf("chunks %v encode as\n%s\nwant\n%s", chunks, bson.Raw(got), bson.Raw(want))
		}
		var back struct {
			Chunks chunkList `bson:"chunks"`
		}
		if err := bson.Unmarshal(got, &back); err != nil || len(back.Chunks) != len(chunks) {
			t.Errorf("decoded %d chunks (%v), want %d", len(back.Chunks), err, len(chunks))
		}
	}
}

package sandbox

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
)

// Point 1 of the sandbox's requirements: the router answers as mongos.

func TestRouterAnswersHelloListShardsAndBalancerAsMongos(t *testing.T) {
	c := startCluster(t, Options{Shards: 3})
	cl := routerClient(t, c)

	hello := run(t, cl, "admin", bson.D{{Key: "hello", Value: 1}})
	if msg := hello.Lookup("msg").StringValue(); msg != "isdbgrid" {
		t.Errorf("hello msg = %q, want isdbgrid", msg)
	}
	if v := hello.Lookup("setName"); v.Type != 0 {
		t.Errorf("a mongos has no setName, got %v", v)
	}
	legacy := run(t, cl, "admin", bson.D{{Key: "isMaster", Value: 1}})
	if !legacy.Lookup("ismaster").Boolean() || legacy.Lookup("msg").StringValue() != "isdbgrid" {
		t.Errorf("isMaster = %v", legacy)
	}

	var shards struct {
		Shards []struct {
			ID    string `bson:"_id"`
			Host  string `bson:"host"`
			State int32  `bson:"state"`
		} `bson:"shards"`
	}
	if err := bson.Unmarshal(run(t, cl, "admin", bson.D{{Key: "listShards", Value: 1}}), &shards); err != nil {
		t.Fatal(err)
	}
	if len(shards.Shards) != 3 {
		t.Fatalf("listShards gave %d shards, want 3", len(shards.Shards))
	}
	for i, s := range shards.Shards {
		want := c.Shards()[i]
		if s.ID != want.Name || s.Host != want.Name+"/"+want.Addr || s.State != 1 || s.ID != fmt.Sprintf("source-shard%d", i) {
			t.Errorf("listShards[%d] = %+v, want %s/%s", i, s, want.Name, want.Addr)
		}
	}

	status := func() (string, bool) {
		r := run(t, cl, "admin", bson.D{{Key: "balancerStatus", Value: 1}})
		return r.Lookup("mode").StringValue(), r.Lookup("inBalancerRound").Boolean()
	}
	if mode, _ := status(); mode != "full" {
		t.Errorf("a new cluster's balancer mode is %q, want full", mode)
	}
	run(t, cl, "admin", bson.D{{Key: "balancerStop", Value: 1}})
	if mode, round := status(); mode != "off" || round {
		t.Errorf("after balancerStop: mode %q, inBalancerRound %v", mode, round)
	}
	var setting struct {
		Stopped bool   `bson:"stopped"`
		Mode    string `bson:"mode"`
	}
	if err := cl.Database("config").Collection("settings").FindOne(context.Background(), bson.D{{Key: "_id", Value: "balancer"}}).Decode(&setting); err != nil {
		t.Fatal(err)
	}
	if !setting.Stopped || setting.Mode != "off" {
		t.Errorf("config.settings balancer after stop = %+v", setting)
	}
	run(t, cl, "admin", bson.D{{Key: "balancerStart", Value: 1}})
	if mode, _ := status(); mode != "full" {
		t.Errorf("after balancerStart: mode %q", mode)
	}

	ss := run(t, cl, "admin", bson.D{{Key: "serverStatus", Value: 1}})
	if p := ss.Lookup("process").StringValue(); p != "mongos" {
		t.Errorf("serverStatus process = %q", p)
	}
	cfg := ss.Lookup("sharding", "configsvrConnectionString").StringValue()
	if cfg != "cfgRS/"+c.ConfigAddr() {
		t.Errorf("configsvrConnectionString = %q, want cfgRS/%s", cfg, c.ConfigAddr())
	}
	sm := run(t, cl, "admin", bson.D{{Key: "getShardMap", Value: 1}})
	if got := sm.Lookup("map", "config").StringValue(); got != cfg {
		t.Errorf("getShardMap config = %q, want %q", got, cfg)
	}
	if got := sm.Lookup("map", "source-shard1").StringValue(); got != c.Shards()[1].Host {
		t.Errorf("getShardMap source-shard1 = %q", got)
	}

	// The config server endpoint answers as a CSRS primary and serves the catalog.
	cs := connect(t, options.Client().SetHosts([]string{c.ConfigAddr()}).SetDirect(true))
	ch := run(t, cs, "admin", bson.D{{Key: "hello", Value: 1}})
	if ch.Lookup("setName").StringValue() != "cfgRS" || ch.Lookup("configsvr").Int32() != 2 || !ch.Lookup("isWritablePrimary").Boolean() {
		t.Errorf("config server hello = %v", ch)
	}
	if n, err := cs.Database("config").Collection("shards").CountDocuments(context.Background(), bson.D{}); err != nil || n != 3 {
		t.Errorf("config server's config.shards: %d documents, %v", n, err)
	}
}

func TestLegacyConfigServerStringOption(t *testing.T) {
	c := startCluster(t, Options{LegacyConfigServers: true})
	cl := routerClient(t, c)
	cfg := run(t, cl, "admin", bson.D{{Key: "serverStatus", Value: 1}}).Lookup("sharding", "configsvrConnectionString").StringValue()
	hosts := strings.Split(cfg, ",")
	if strings.Contains(cfg, "/") || len(hosts) != 3 {
		t.Fatalf("legacy config string = %q, want three bare host:port", cfg)
	}
	for _, h := range hosts {
		cs := connect(t, options.Client().SetHosts([]string{h}).SetDirect(true))
		if r := run(t, cs, "admin", bson.D{{Key: "hello", Value: 1}}); r.Lookup("setName").Type != 0 {
			t.Errorf("legacy config server %s reports a replica set: %v", h, r)
		}
	}
}

func TestShardCollectionRangedHashedUnique(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "app"}})
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.ranged"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "unique", Value: true}})
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.hashed"}, {Key: "key", Value: bson.D{{Key: "h", Value: "hashed"}}}})

	var db struct {
		Primary     string `bson:"primary"`
		Partitioned bool   `bson:"partitioned"`
	}
	if err := cl.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: "app"}}).Decode(&db); err != nil {
		t.Fatal(err)
	}
	// 7.0 keeps the field but no longer sets it (deprecated since 6.0, SERVER-60926).
	if db.Partitioned || db.Primary == "" {
		t.Errorf("config.databases app = %+v", db)
	}
	var coll struct {
		Key    bson.Raw `bson:"key"`
		Unique bool     `bson:"unique"`
		UUID   bson.RawValue
	}
	raw, err := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "app.ranged"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if err := bson.Unmarshal(raw, &coll); err != nil {
		t.Fatal(err)
	}
	if coll.Key.String() != `{"k": {"$numberInt":"1"}}` || !coll.Unique || raw.Lookup("uuid").Type != bsontype.Binary {
		t.Errorf("config.collections app.ranged = %s", raw)
	}

	_, ranged := chunkMap(t, cl, "app.ranged")
	if ranged.Len() != 1 || ranged.Shards()[0] != db.Primary {
		t.Errorf("a ranged collection starts with one chunk on the primary %s: %d chunks on %v", db.Primary, ranged.Len(), ranged.Shards())
	}
	_, hashed := chunkMap(t, cl, "app.hashed")
	if hashed.Len() != 4 || len(hashed.Shards()) != 2 {
		t.Errorf("a hashed collection on 2 shards starts with 4 chunks on both: %d chunks on %v", hashed.Len(), hashed.Shards())
	}

	// The unique shard key is enforced; its index is listed on the primary.
	rc := cl.Database("app").Collection("ranged")
	if _, err := rc.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}, {Key: "k", Value: 5}}); commandCode(err) != 11000 {
		t.Errorf("a duplicate unique shard key: got %v, want E11000", err)
	}
	found := false
	for _, ix := range findAllIndexes(t, rc) {
		if ix.Lookup("name").StringValue() == "k_1" && ix.Lookup("unique").Type == bsontype.Boolean && ix.Lookup("unique").Boolean() {
			found = true
		}
	}
	if !found {
		t.Errorf("listIndexes on app.ranged lacks the unique k_1 index")
	}

	// Hashed placement uses MongoDB's own hash: each document is on the shard whose
	// chunk holds Hash64(h).
	hc := cl.Database("app").Collection("hashed")
	var docs []any
	for i := range 200 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "h", Value: fmt.Sprintf("user-%d", i)}})
	}
	if _, err := hc.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	assertPlacement(t, c, cl, "app", "hashed", 200)
}

func findAllIndexes(t *testing.T, coll *mongo.Collection) []bson.Raw {
	t.Helper()
	cur, err := coll.Indexes().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	for cur.Next(context.Background()) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	return out
}

// assertPlacement reads every shard directly and checks that each document of a
// sharded collection lives on the shard owning its chunk, and that there are want
// documents in all.
func assertPlacement(t *testing.T, c *Cluster, cl *mongo.Client, db, coll string, want int) {
	t.Helper()
	p, m := chunkMap(t, cl, db+"."+coll)
	total := 0
	perShard := map[string]int{}
	for _, s := range c.Shards() {
		sc := shardClient(t, c, s)
		for _, d := range findAll(t, sc.Database(db).Collection(coll), bson.D{}) {
			key, err := p.Extract(d)
			if err != nil {
				t.Fatal(err)
			}
			owner, _ := m.Owner(key)
			if owner != s.Name {
				t.Errorf("document %v (key %s) is on %s but its chunk is on %s", d.Lookup("_id"), key, s.Name, owner)
			}
			total++
			perShard[s.Name]++
		}
	}
	if total != want {
		t.Errorf("%s.%s holds %d documents over the shards (%v), want %d", db, coll, total, perShard, want)
	}
}

func TestSplitAndMoveChunkMigrateWithFromMigrateEntries(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "app"}, {Key: "primaryShard", Value: "source-shard0"}})
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.c"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	coll := cl.Database("app").Collection("c")
	var docs []any
	for i := range 100 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("id%03d", i)}, {Key: "k", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	run(t, cl, "admin", bson.D{{Key: "split", Value: "app.c"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 50}}}})
	// find splits the chunk holding k=10 ([MinKey, 50)) at its median key.
	run(t, cl, "admin", bson.D{{Key: "split", Value: "app.c"}, {Key: "find", Value: bson.D{{Key: "k", Value: 10}}}})
	_, m := chunkMap(t, cl, "app.c")
	if m.Len() != 3 {
		t.Fatalf("after two splits: %d chunks, want 3", m.Len())
	}
	run(t, cl, "admin", bson.D{{Key: "moveChunk", Value: "app.c"}, {Key: "find", Value: bson.D{{Key: "k", Value: 75}}}, {Key: "to", Value: "source-shard1"}})
	assertPlacement(t, c, cl, "app", "c", 100)

	s0, s1 := shardClient(t, c, c.Shards()[0]), shardClient(t, c, c.Shards()[1])
	if n, _ := s1.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); n != 50 {
		t.Errorf("the recipient holds %d documents, want the 50 of the moved chunk", n)
	}
	ins, dels := 0, 0
	for _, e := range oplog(t, s1, "app.c") {
		if str(e.Lookup("op")) == "i" && e.Lookup("fromMigrate").Type == bsontype.Boolean && e.Lookup("fromMigrate").Boolean() {
			ins++
		}
	}
	for _, e := range oplog(t, s0, "app.c") {
		if str(e.Lookup("op")) == "d" && e.Lookup("fromMigrate").Type == bsontype.Boolean && e.Lookup("fromMigrate").Boolean() {
			dels++
		}
	}
	if ins != 50 || dels != 50 {
		t.Errorf("fromMigrate entries: %d inserts on the recipient, %d deletes on the donor; want 50 and 50", ins, dels)
	}
	// Reads and writes through the router still see every document once.
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 100 {
		t.Errorf("countDocuments after the move = %d, %v", n, err)
	}
	if res, err := coll.UpdateOne(ctx, bson.D{{Key: "k", Value: 80}}, bson.D{{Key: "$set", Value: bson.D{{Key: "moved", Value: true}}}}); err != nil || res.ModifiedCount != 1 {
		t.Errorf("update on the moved chunk: %+v, %v", res, err)
	}
}

func TestLeaveOrphansHidesThemFromRouterReadsButNotFromTheShard(t *testing.T) {
	c := startCluster(t, Options{LeaveOrphans: true})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "app"}, {Key: "primaryShard", Value: "source-shard0"}})
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.c"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	coll := cl.Database("app").Collection("c")
	var docs []any
	for i := range 40 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}, {Key: "even", Value: i%2 == 0}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	run(t, cl, "admin", bson.D{{Key: "split", Value: "app.c"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 20}}}})
	run(t, cl, "admin", bson.D{{Key: "moveChunk", Value: "app.c"}, {Key: "bounds", Value: bson.A{bson.D{{Key: "k", Value: 20}}, bson.D{{Key: "k", Value: primitive.MaxKey{}}}}}, {Key: "to", Value: "source-shard1"}})

	donor := shardClient(t, c, c.Shards()[0])
	if n, _ := donor.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); n != 40 {
		t.Fatalf("the donor holds %d documents, want 40 (20 owned + 20 orphans)", n)
	}
	if got := findAll(t, coll, bson.D{}); len(got) != 40 {
		t.Errorf("a router find returned %d documents, want 40 without orphans", len(got))
	}
	if got := findAll(t, coll, bson.D{{Key: "even", Value: true}}, options.Find().SetSort(bson.D{{Key: "k", Value: -1}})); len(got) != 20 || got[0].Lookup("k").Int32() != 38 {
		t.Errorf("a filtered, sorted router find returned %d documents", len(got))
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{{Key: "k", Value: bson.D{{Key: "$gte", Value: 0}}}}); n != 40 {
		t.Errorf("countDocuments = %d, want 40", n)
	}
	vals, err := coll.Distinct(ctx, "k", bson.D{})
	if err != nil || len(vals) != 40 {
		t.Errorf("distinct k: %d values, %v", len(vals), err)
	}
	// A targeted read goes to the owner only.
	if got := findAll(t, coll, bson.D{{Key: "k", Value: 25}}); len(got) != 1 {
		t.Errorf("a targeted read of k=25 returned %d documents", len(got))
	}
	// Moving the chunk back clears the orphans the recipient still had.
	run(t, cl, "admin", bson.D{{Key: "moveChunk", Value: "app.c"}, {Key: "find", Value: bson.D{{Key: "k", Value: 30}}}, {Key: "to", Value: "source-shard0"}})
	if got := findAll(t, coll, bson.D{}); len(got) != 40 {
		t.Errorf("after moving the chunk back, a router find returned %d documents", len(got))
	}
}

func TestConfigDatabaseReadableThroughRouterWithMinKeyMaxKey(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.c"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
	var chunk struct {
		Min   bson.Raw `bson:"min"`
		Max   bson.Raw `bson:"max"`
		Shard string   `bson:"shard"`
	}
	var coll struct{ UUID bson.RawValue }
	if err := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "app.c"}}).Decode(&coll); err != nil {
		t.Fatal(err)
	}
	if err := cl.Database("config").Collection("chunks").FindOne(ctx, bson.D{{Key: "uuid", Value: coll.UUID}}).Decode(&chunk); err != nil {
		t.Fatal(err)
	}
	if chunk.Min.Lookup("k").Type != bsontype.MinKey || chunk.Max.Lookup("k").Type != bsontype.MaxKey {
		t.Errorf("config.chunks bounds: %s .. %s", chunk.Min, chunk.Max)
	}
	cur, err := cl.Database("config").Collection("chunks").Aggregate(ctx, bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: "uuid", Value: coll.UUID}, {Key: "shard", Value: chunk.Shard}}}},
		bson.D{{Key: "$count", Value: "n"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var counts []bson.M
	if err := cur.All(ctx, &counts); err != nil || len(counts) != 1 || counts[0]["n"] != int32(1) {
		t.Errorf("aggregate on config.chunks = %v, %v", counts, err)
	}
	for _, coll := range []string{"shards", "databases", "collections", "chunks", "settings", "version"} {
		if n, err := cl.Database("config").Collection(coll).CountDocuments(ctx, bson.D{}); err != nil || n == 0 {
			t.Errorf("config.%s: %d documents, %v", coll, n, err)
		}
	}
	if n, err := cl.Database("config").Collection("migrations").CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("config.migrations: %d documents, %v; want none", n, err)
	}
	if _, err := cl.Database("config").Collection("chunks").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err == nil {
		t.Error("a write to config.chunks through the router was accepted")
	}
}

func TestQueriesWithoutShardKeyFanOutAndMergeSorted(t *testing.T) {
	c := startCluster(t, Options{Shards: 3})
	cl := routerClient(t, c)
	ctx := context.Background()
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.c"}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}})
	coll := cl.Database("app").Collection("c")
	var docs []any
	for i := range 300 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "n", Value: i % 10}, {Key: "s", Value: fmt.Sprintf("v%03d", 299-i)}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Shards() {
		if n, _ := shardClient(t, c, s).Database("app").Collection("c").CountDocuments(ctx, bson.D{}); n == 0 {
			t.Errorf("shard %s holds no documents of a hashed collection", s.Name)
		}
	}
	// Sorted, skipped, limited, projected, read in small batches with getMore.
	got := findAll(t, coll, bson.D{{Key: "n", Value: bson.D{{Key: "$in", Value: bson.A{1, 2}}}}},
		options.Find().SetSort(bson.D{{Key: "s", Value: 1}}).SetSkip(5).SetLimit(40).SetBatchSize(7).
			SetProjection(bson.D{{Key: "s", Value: 1}, {Key: "_id", Value: 0}}))
	if len(got) != 40 {
		t.Fatalf("got %d documents, want 40", len(got))
	}
	prev := ""
	for _, d := range got {
		s := str(d.Lookup("s"))
		if s <= prev {
			t.Fatalf("results out of order: %q after %q", s, prev)
		}
		if d.Lookup("_id").Type != 0 || d.Lookup("n").Type != 0 {
			t.Fatalf("projection not applied: %s", d)
		}
		prev = s
	}
	// 60 matching documents (i%10 in 1, 2) sorted by s = v(299-i): v007, v008, v017,
	// v018, v027, v028...; skip 5.
	if first := got[0].Lookup("s").StringValue(); first != "v028" {
		t.Errorf("first document after skip 5 = %q, want v028", first)
	}

	// A router cursor left open is continued by getMore and ended by killCursors.
	first := run(t, cl, "app", bson.D{{Key: "find", Value: "c"}, {Key: "batchSize", Value: 2}})
	id := first.Lookup("cursor", "id").Int64()
	if id == 0 {
		t.Fatal("a 300-document find with batchSize 2 closed its cursor")
	}
	more := run(t, cl, "app", bson.D{{Key: "getMore", Value: id}, {Key: "collection", Value: "c"}, {Key: "batchSize", Value: 3}})
	if n, _ := more.Lookup("cursor", "nextBatch").Array().Values(); len(n) != 3 {
		t.Errorf("getMore with batchSize 3 returned %d documents", len(n))
	}
	killed := run(t, cl, "app", bson.D{{Key: "killCursors", Value: "c"}, {Key: "cursors", Value: bson.A{id}}})
	if ids, _ := killed.Lookup("cursorsKilled").Array().Values(); len(ids) != 1 {
		t.Errorf("killCursors = %s", killed)
	}
	err := cl.Database("app").RunCommand(ctx, bson.D{{Key: "getMore", Value: id}, {Key: "collection", Value: "c"}}).Err()
	if commandCode(err) != 43 {
		t.Errorf("getMore on a killed cursor: %v, want CursorNotFound", err)
	}
}

func TestReadPreferenceDoesNotMatter(t *testing.T) {
	c := startCluster(t, Options{})
	cl := connect(t, options.Client().ApplyURI(c.URI()).SetReadPreference(readpref.SecondaryPreferred()))
	if _, err := cl.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "a", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := findAll(t, cl.Database("app").Collection("c"), bson.D{}); len(got) != 1 {
		t.Errorf("find with secondaryPreferred gave %d documents", len(got))
	}
}

// Validation lists the source's users and roles to re-create; the router must answer
// both commands as MongoDB does, or every sandbox validation ends with a warning.
func TestUsersInfoAndRolesInfoAnswerAsMongoDB(t *testing.T) {
	c := startCluster(t, Options{Shards: 2})
	cl := routerClient(t, c)
	for _, db := range []string{"admin", "shop"} {
		users := run(t, cl, db, bson.D{{Key: "usersInfo", Value: 1}})
		if _, ok := users.Lookup("users").ArrayOK(); !ok {
			t.Errorf("usersInfo on %s: no users array: %v", db, users)
		}
		roles := run(t, cl, db, bson.D{{Key: "rolesInfo", Value: 1}})
		if arr, ok := roles.Lookup("roles").ArrayOK(); !ok {
			t.Errorf("rolesInfo on %s: no roles array: %v", db, roles)
		} else if vals, _ := arr.Values(); len(vals) != 0 {
			t.Errorf("rolesInfo on %s lists built-in roles without showBuiltinRoles: %v", db, vals)
		}
	}
}

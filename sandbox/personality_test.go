package sandbox

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/release"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// What a real cluster of each release presents, checked through the Go driver on the
// router, a shard and the config server. The expected values are written out here
// from MongoDB's sources (see the README's table), not computed by package release.
var personalities = []struct {
	version        string
	maxWire        int32
	sessionsChunks int
}{
	{"3.6", 6, 1},
	{"4.0", 7, 1},
	{"4.2", 8, 1024},
	{"4.4", 9, 1024},
	{"5.0", 13, 1024},
	{"6.0", 17, 1024},
	{"7.0", 21, 1024},
	{"8.0", 25, 1},
}

func atLeast(v, min string) bool {
	r, _ := release.Parse(v)
	m, _ := release.Parse(min)
	return r.AtLeast(m)
}

func TestEveryPersonalityPresentsItsRelease(t *testing.T) {
	for _, p := range personalities {
		t.Run(p.version, func(t *testing.T) {
			c := startCluster(t, Options{MongoDBVersion: p.version})
			cl := routerClient(t, c)
			sc := shardClient(t, c, c.Shards()[0])
			cfg := connect(t, configClientOptions(c))
			ctx := context.Background()

			// hello, buildInfo, FCV on the router, a shard and the config server.
			hello := run(t, cl, "admin", bson.D{{Key: "hello", Value: 1}})
			if got := hello.Lookup("maxWireVersion").Int32(); got != p.maxWire {
				t.Errorf("maxWireVersion %d, want %d", got, p.maxWire)
			}
			if str(hello.Lookup("msg")) != "isdbgrid" || hello.Lookup("minWireVersion").Int32() != 0 {
				t.Errorf("router hello: %s", hello)
			}
			if has := hello.Lookup("topologyVersion").Type == bsontype.EmbeddedDocument; has != atLeast(p.version, "4.4") {
				t.Errorf("topologyVersion present: %v", has)
			}
			for _, node := range []*mongo.Client{cl, sc, cfg} {
				info := run(t, node, "admin", bson.D{{Key: "buildInfo", Value: 1}})
				version := str(info.Lookup("version"))
				if !strings.HasPrefix(version, p.version+".") {
					t.Errorf("buildInfo version %q", version)
				}
				arr, _ := info.Lookup("versionArray").Array().Values()
				if len(arr) != 4 || arr[0].Int32() != int32(version[0]-'0') {
					t.Errorf("versionArray %v for %s", arr, version)
				}
				if git, err := hex.DecodeString(str(info.Lookup("gitVersion"))); err != nil || len(git) != 20 {
					t.Errorf("gitVersion %q is not 40 hex digits", str(info.Lookup("gitVersion")))
				}
				fcv := run(t, node, "admin", bson.D{{Key: "getParameter", Value: 1}, {Key: "featureCompatibilityVersion", Value: 1}})
				if got := str(fcv.Lookup("featureCompatibilityVersion", "version")); got != p.version {
					t.Errorf("FCV %q, want %q", got, p.version)
				}
			}
			status := run(t, cl, "admin", bson.D{{Key: "serverStatus", Value: 1}})
			if str(status.Lookup("process")) != "mongos" || str(status.Lookup("sharding", "configsvrConnectionString")) != c.ConfigString() {
				t.Errorf("router serverStatus: process %v, sharding %v", status.Lookup("process"), status.Lookup("sharding"))
			}
			if s := run(t, sc, "admin", bson.D{{Key: "serverStatus", Value: 1}}); str(s.Lookup("process")) != "mongod" || str(s.Lookup("sharding", "configsvrConnectionString")) != c.ConfigString() {
				t.Errorf("shard serverStatus: %v %v", s.Lookup("process"), s.Lookup("sharding"))
			}

			// listDatabases: admin and config through the router, local on a shard too.
			routerDBs, _ := cl.ListDatabaseNames(ctx, bson.D{})
			shardDBs, _ := sc.ListDatabaseNames(ctx, bson.D{})
			if !slices.Contains(routerDBs, "admin") || !slices.Contains(routerDBs, "config") || slices.Contains(routerDBs, "local") {
				t.Errorf("router listDatabases %v", routerDBs)
			}
			for _, db := range []string{"admin", "config", "local"} {
				if !slices.Contains(shardDBs, db) {
					t.Errorf("shard listDatabases %v lacks %s", shardDBs, db)
				}
			}

			// A sharded user collection, to see the user metadata's formats.
			run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "app"}})
			run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.c"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
			config := cl.Database("config")
			db := findOne(t, config.Collection("databases"), bson.D{{Key: "_id", Value: "app"}})
			if has(db, "version") != atLeast(p.version, "4.0") || has(db, "version", "timestamp") != atLeast(p.version, "5.0") {
				t.Errorf("config.databases: %s", db)
			}
			if db.Lookup("partitioned").Boolean() != !atLeast(p.version, "6.0") {
				t.Errorf("config.databases partitioned after enableSharding: %s", db)
			}
			version := findOne(t, config.Collection("version"), bson.D{})
			if has(version, "currentVersion") == atLeast(p.version, "7.0") || version.Lookup("clusterId").Type != bsontype.ObjectID {
				t.Errorf("config.version: %s", version)
			}
			for _, s := range findAll(t, config.Collection("shards"), bson.D{}) {
				if has(s, "topologyTime") != atLeast(p.version, "5.0") {
					t.Errorf("config.shards: %s", s)
				}
			}

			// config.system.sessions, sharded on {_id: 1}, in config.collections and config.chunks.
			sessions := findOne(t, config.Collection("collections"), bson.D{{Key: "_id", Value: "config.system.sessions"}})
			if key := sessions.Lookup("key").Document(); key.String() != `{"_id": {"$numberInt":"1"}}` {
				t.Errorf("sessions key %s", key)
			}
			if has(sessions, "dropped") == atLeast(p.version, "5.0") || has(sessions, "timestamp") != atLeast(p.version, "5.0") {
				t.Errorf("config.collections format: %s", sessions)
			}
			chunkFilter := bson.D{{Key: "ns", Value: "config.system.sessions"}}
			if atLeast(p.version, "5.0") {
				chunkFilter = bson.D{{Key: "uuid", Value: sessions.Lookup("uuid")}}
			}
			chunks := findAll(t, config.Collection("chunks"), chunkFilter)
			if len(chunks) != p.sessionsChunks {
				t.Errorf("%d sessions chunks, want %d", len(chunks), p.sessionsChunks)
			}
			owners := map[string]int{}
			for _, ch := range chunks {
				owners[str(ch.Lookup("shard"))]++
			}
			if p.sessionsChunks > 1 && (len(owners) != 2 || owners[c.Shards()[0].Name] != 512) {
				t.Errorf("sessions chunks per shard: %v, want 512 each", owners)
			}
			ch := chunks[0]
			wantID := bsontype.String
			if atLeast(p.version, "4.4") {
				wantID = bsontype.ObjectID
			}
			if ch.Lookup("_id").Type != wantID || has(ch, "lastmodEpoch") == atLeast(p.version, "5.0") ||
				has(ch, "history") != atLeast(p.version, "4.0") || has(ch, "onCurrentShardSince") != atLeast(p.version, "7.0") {
				t.Errorf("config.chunks format: %s", ch)
			}
			if !atLeast(p.version, "4.4") && str(ch.Lookup("_id")) != "config.system.sessions-_id_MinKey" {
				t.Errorf("chunk _id %v, want config.system.sessions-_id_MinKey", ch.Lookup("_id"))
			}

			// Session records: through the router, and on the shards that own them.
			viaRouter := findAll(t, config.Collection("system.sessions"), bson.D{})
			onShards := 0
			for _, s := range c.Shards() {
				onShards += len(findAll(t, shardClient(t, c, s).Database("config").Collection("system.sessions"), bson.D{}))
			}
			if len(viaRouter) == 0 || onShards != len(viaRouter) {
				t.Errorf("%d session records through the router, %d on the shards", len(viaRouter), onShards)
			}
			if id := viaRouter[0].Lookup("_id"); id.Document().Lookup("id").Type != bsontype.Binary || viaRouter[0].Lookup("lastUse").Type != bsontype.DateTime {
				t.Errorf("session record %s", viaRouter[0])
			}

			// The shard's own config, admin and local collections.
			shardConfig, _ := sc.Database("config").ListCollectionNames(ctx, bson.D{})
			for name, want := range map[string]bool{
				"transactions": true, "cache.collections": true, "cache.chunks.config.system.sessions": true,
				"cache.databases": atLeast(p.version, "4.0"), "system.indexBuilds": atLeast(p.version, "4.4"),
				"image_collection": atLeast(p.version, "6.0"), "cache.chunks.app.c": true,
			} {
				if slices.Contains(shardConfig, name) != want {
					t.Errorf("shard config.%s listed: %v, want %v (%v)", name, !want, want, shardConfig)
				}
			}
			if n := len(findAll(t, sc.Database("config").Collection("cache.chunks.config.system.sessions"), bson.D{})); n != p.sessionsChunks {
				t.Errorf("the shard caches %d sessions chunks, want %d", n, p.sessionsChunks)
			}
			identity := findOne(t, sc.Database("admin").Collection("system.version"), bson.D{{Key: "_id", Value: "shardIdentity"}})
			if identity.Lookup("clusterId").ObjectID() != version.Lookup("clusterId").ObjectID() || str(identity.Lookup("shardName")) != c.Shards()[0].Name {
				t.Errorf("shardIdentity %s", identity)
			}
			if fcvDoc := findOne(t, sc.Database("admin").Collection("system.version"), bson.D{{Key: "_id", Value: "featureCompatibilityVersion"}}); str(fcvDoc.Lookup("version")) != p.version {
				t.Errorf("FCV document %s", fcvDoc)
			}
			if rs := findOne(t, sc.Database("local").Collection("system.replset"), bson.D{}); str(rs.Lookup("_id")) != c.Shards()[0].Name {
				t.Errorf("local.system.replset %s", rs)
			}
			if log := findAll(t, sc.Database("local").Collection("startup_log"), bson.D{}); len(log) != 1 || !strings.HasPrefix(str(log[0].Lookup("buildinfo", "version")), p.version+".") {
				t.Errorf("local.startup_log %v", log)
			}

			// The config server's collections.
			cfgConfig, _ := cfg.Database("config").ListCollectionNames(ctx, bson.D{})
			for name, want := range map[string]bool{
				"locks": !atLeast(p.version, "5.0"), "lockpings": !atLeast(p.version, "5.0"),
				"placementHistory": atLeast(p.version, "7.0"), "mongos": true, "changelog": true, "actionlog": true,
				"migrations": true, "tags": true, "version": true,
			} {
				if slices.Contains(cfgConfig, name) != want {
					t.Errorf("config server config.%s listed: %v, want %v", name, !want, want)
				}
			}
			if n, _ := config.Collection("changelog").CountDocuments(ctx, bson.D{{Key: "what", Value: "shardCollection.start"}, {Key: "ns", Value: "app.c"}}); n != 1 {
				t.Errorf("config.changelog has %d shardCollection.start entries for app.c", n)
			}
			if atLeast(p.version, "7.0") {
				placed := findOne(t, config.Collection("placementHistory"), bson.D{{Key: "nss", Value: "app.c"}})
				if shards, _ := placed.Lookup("shards").Array().Values(); len(shards) != 1 || placed.Lookup("uuid").Type != bsontype.Binary {
					t.Errorf("config.placementHistory %s", placed)
				}
			} else if !atLeast(p.version, "5.0") {
				if lock := findOne(t, config.Collection("locks"), bson.D{{Key: "_id", Value: "app.c"}}); lock.Lookup("state").Int32() != 0 {
					t.Errorf("config.locks %s", lock)
				}
			}
			specs, err := cfg.Database("config").Collection("chunks").Indexes().List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var spec bson.Raw
			for specs.Next(ctx) {
				if str(specs.Current.Lookup("name")) != "_id_" {
					spec = append(bson.Raw(nil), specs.Current...)
					break
				}
			}
			specs.Close(ctx)
			if has(spec, "ns") == atLeast(p.version, "4.4") || !strings.HasPrefix(str(spec.Lookup("name")), map[bool]string{true: "uuid_1", false: "ns_1"}[atLeast(p.version, "5.0")]) {
				t.Errorf("config.chunks index spec %s", spec)
			}
			member := findOne(t, sc.Database("local").Collection("system.replset"), bson.D{}).Lookup("members").Array().Index(0).Value().Document()
			if has(member, "secondaryDelaySecs") != atLeast(p.version, "5.0") || has(member, "slaveDelay") == atLeast(p.version, "5.0") {
				t.Errorf("replica set member %s", member)
			}
			// rs.status(): syncingTo until 4.2, wall times and majority counts from 4.2,
			// voting member counts and configTerm from 4.4.
			rsStatus := run(t, sc, "admin", bson.D{{Key: "replSetGetStatus", Value: 1}})
			self := rsStatus.Lookup("members").Array().Index(0).Value().Document()
			if has(rsStatus, "syncingTo") != !atLeast(p.version, "4.4") || has(self, "syncingTo") != !atLeast(p.version, "4.4") ||
				has(rsStatus, "optimes", "lastCommittedWallTime") != atLeast(p.version, "4.2") || has(rsStatus, "majorityVoteCount") != atLeast(p.version, "4.2") ||
				has(self, "lastAppliedWallTime") != atLeast(p.version, "4.2") ||
				has(rsStatus, "votingMembersCount") != atLeast(p.version, "4.4") || has(self, "configTerm") != atLeast(p.version, "4.4") ||
				str(self.Lookup("stateStr")) != "PRIMARY" || str(self.Lookup("syncSourceHost")) != "" || !has(self, "electionTime") {
				t.Errorf("replSetGetStatus %s", rsStatus)
			}
			if m := findOne(t, config.Collection("mongos"), bson.D{}); str(m.Lookup("_id")) != c.RouterAddr() || !strings.HasPrefix(str(m.Lookup("mongoVersion")), p.version) {
				t.Errorf("config.mongos %s", m)
			}
			if keys := findAll(t, cl.Database("admin").Collection("system.keys"), bson.D{{Key: "purpose", Value: "HMAC"}}); len(keys) != 2 {
				t.Errorf("admin.system.keys: %d keys", len(keys))
			}
		})
	}
}

func has(doc bson.Raw, path ...string) bool {
	_, err := doc.LookupErr(path...)
	return err == nil
}

func findOne(t testing.TB, coll *mongo.Collection, filter any) bson.Raw {
	t.Helper()
	raw, err := coll.FindOne(context.Background(), filter).Raw()
	if err != nil {
		t.Fatalf("findOne on %s %v: %v", coll.Name(), filter, err)
	}
	return raw
}

// An 8.0 shard of a cluster with two shards and authentication refuses operations on
// user data from a user without the directShardOperations role, with the error a real
// one sends; 7.0 only logged a warning. The router's own requests pass.
func TestDirectShardOperationsNeedTheirRoleOn80(t *testing.T) {
	creds := &wire.Credentials{User: "dba", Password: "s3cret"}
	for _, tc := range []struct {
		version string
		roles   []string
		refused bool
	}{
		{"8.0", nil, true},
		{"8.0", []string{"readWriteAnyDatabase", "clusterAdmin", "directShardOperations"}, false},
		{"7.0", nil, false},
	} {
		t.Run(tc.version+" "+strings.Join(tc.roles, ","), func(t *testing.T) {
			c := startCluster(t, Options{MongoDBVersion: tc.version, Auth: creds, Identity: wire.Identity{Roles: tc.roles}})
			cl := routerClient(t, c)
			ctx := context.Background()
			if _, err := cl.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "a", Value: 1}}); err != nil {
				t.Fatalf("insert through the router: %v", err)
			}
			var primary string
			for _, d := range findAll(t, cl.Database("config").Collection("databases"), bson.D{{Key: "_id", Value: "app"}}) {
				primary = str(d.Lookup("primary"))
			}
			var sc *mongo.Client
			for _, s := range c.Shards() {
				if s.Name == primary {
					sc = shardClient(t, c, s)
				}
			}
			_, err := sc.Database("app").Collection("c").Find(ctx, bson.D{})
			if !tc.refused {
				if err != nil {
					t.Errorf("a direct read was refused: %v", err)
				}
				return
			}
			var ce mongo.CommandError
			if !errors.As(err, &ce) || ce.Code != 13 || ce.Message != "You are connecting to a sharded cluster improperly by connecting directly to a shard. Please connect to the cluster via a router (mongos)." {
				t.Errorf("a direct read without the role: %v, want Unauthorized (13)", err)
			}
			if _, err := sc.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "a", Value: 2}}); commandCode(err) != 13 {
				t.Errorf("a direct write without the role: %v, want Unauthorized (13)", err)
			}
			// The internal databases stay readable, as on a real 8.0 shard.
			if got := findAll(t, sc.Database("local").Collection("oplog.rs"), bson.D{}); len(got) == 0 {
				t.Error("the oplog is not readable directly")
			}
			findOne(t, sc.Database("admin").Collection("system.version"), bson.D{{Key: "_id", Value: "shardIdentity"}})
			if n, err := cl.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
				t.Errorf("through the router: %d documents, %v", n, err)
			}
		})
	}
}

func TestUsersAreInTheConfigServersAdminDatabase(t *testing.T) {
	c := startCluster(t, Options{MongoDBVersion: "6.0", Auth: &wire.Credentials{User: "dba", Password: "s3cret"}})
	cl := routerClient(t, c)
	user := findOne(t, cl.Database("admin").Collection("system.users"), bson.D{{Key: "user", Value: "dba"}})
	if str(user.Lookup("_id")) != "admin.dba" || user.Lookup("credentials", "SCRAM-SHA-256", "iterationCount").Int32() != 15000 {
		t.Errorf("admin.system.users: %s", user)
	}
	if strings.Contains(user.String(), "s3cret") {
		t.Error("the user document shows the password")
	}
	schema := findOne(t, cl.Database("admin").Collection("system.version"), bson.D{{Key: "_id", Value: "authSchema"}})
	if schema.Lookup("currentVersion").Int32() != 5 {
		t.Errorf("authSchema %s", schema)
	}
	// Without authentication there is no user, nor system.users.
	plain := routerClient(t, startCluster(t, Options{MongoDBVersion: "6.0"}))
	names, _ := plain.Database("admin").ListCollectionNames(context.Background(), bson.D{})
	if slices.Contains(names, "system.users") || !slices.Contains(names, "system.version") {
		t.Errorf("admin without auth: %v", names)
	}
}

func TestAClusterKeepsItsRelease(t *testing.T) {
	dir := t.TempDir()
	c, err := Start(context.Background(), "source", Options{Dir: dir, MongoDBVersion: "4.2"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = Start(context.Background(), "source", Options{Dir: dir, MongoDBVersion: "6.0"})
	if err == nil || !strings.Contains(err.Error(), "holds a MongoDB 4.2 cluster") {
		t.Fatalf("restarting a 4.2 cluster as 6.0: %v", err)
	}
	if _, err := Start(context.Background(), "source", Options{MongoDBVersion: "4.8"}); err == nil || !strings.Contains(err.Error(), "3.6, 4.0, 4.2, 4.4, 5.0, 6.0, 7.0, 8.0") {
		t.Errorf("an unknown release: %v", err)
	}
	again := startCluster(t, Options{Dir: dir})
	info := run(t, routerClient(t, again), "admin", bson.D{{Key: "buildInfo", Value: 1}})
	if !strings.HasPrefix(str(info.Lookup("version")), "4.2.") {
		t.Errorf("restarted without a version, the cluster presents %s, not the 4.2 its directory holds", info.Lookup("version"))
	}
}

// An 8.0 config shard: the config server (replica set cfgRS) is shard "config" as
// well, holding user data beside the cluster's metadata.
func TestConfigShard(t *testing.T) {
	if _, err := Start(context.Background(), "source", Options{MongoDBVersion: "7.0", ConfigShard: true, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "needs MongoDB 8.0") {
		t.Fatalf("a 7.0 config shard: %v", err)
	}
	dir := t.TempDir()
	c := startCluster(t, Options{MongoDBVersion: "8.0", ConfigShard: true, Shards: 1, Dir: dir})
	cl := routerClient(t, c)
	ctx := context.Background()
	listed := run(t, cl, "admin", bson.D{{Key: "listShards", Value: 1}})
	shards, _ := listed.Lookup("shards").Array().Values()
	var hosts []string
	for _, s := range shards {
		hosts = append(hosts, str(s.Document().Lookup("_id"))+"="+str(s.Document().Lookup("host")))
	}
	if want := "config=cfgRS/" + c.ConfigAddr(); len(hosts) != 2 || !slices.Contains(hosts, want) {
		t.Errorf("listShards %v, want 2 shards with %s", hosts, want)
	}
	if got := str(run(t, cl, "admin", bson.D{{Key: "serverStatus", Value: 1}}).Lookup("sharding", "configsvrConnectionString")); got != "cfgRS/"+c.ConfigAddr() {
		t.Errorf("configsvrConnectionString %q", got)
	}
	shardMap := run(t, cl, "admin", bson.D{{Key: "getShardMap", Value: 1}}).Lookup("map").Document()
	if elems, _ := shardMap.Elements(); len(elems) != 2 || str(shardMap.Lookup("config")) != "cfgRS/"+c.ConfigAddr() {
		t.Errorf("getShardMap's map %s, want the user shard and config once", shardMap)
	}
	cfg := connect(t, configClientOptions(c))
	hello := run(t, cfg, "admin", bson.D{{Key: "hello", Value: 1}})
	if str(hello.Lookup("setName")) != "cfgRS" || hello.Lookup("configsvr").Int32() != 2 {
		t.Errorf("the config shard's hello: %s", hello)
	}
	run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "onconfig"}, {Key: "primaryShard", Value: "config"}})
	if _, err := cl.Database("onconfig").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "here"}}); err != nil {
		t.Fatal(err)
	}
	if got := findAll(t, cfg.Database("onconfig").Collection("c"), bson.D{}); len(got) != 1 {
		t.Errorf("the config shard holds %d documents of onconfig.c, want 1", len(got))
	}
	if n := len(findAll(t, cfg.Database("config").Collection("chunks"), bson.D{})); n == 0 {
		t.Error("the config shard does not serve config.chunks")
	}
	identity := findOne(t, cfg.Database("admin").Collection("system.version"), bson.D{{Key: "_id", Value: "shardIdentity"}})
	if str(identity.Lookup("shardName")) != "config" {
		t.Errorf("shardIdentity %s", identity)
	}
	cl.Disconnect(ctx)
	cfg.Disconnect(ctx)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	again := startCluster(t, Options{MongoDBVersion: "8.0", ConfigShard: true, Dir: dir})
	if n, err := routerClient(t, again).Database("onconfig").Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("after a restart: %d documents, %v", n, err)
	}
	if _, err := Start(ctx, "source", Options{MongoDBVersion: "8.0", Dir: dir}); err == nil || !strings.Contains(err.Error(), "config server is a shard") {
		t.Errorf("restarting a config-shard cluster without one: %v", err)
	}
}

// A 3.6 cluster authenticates with SCRAM-SHA-1 (MongoDB's, over the password digest),
// the only SCRAM it had; drivers pick it from the wire version.
func TestAuthOn36IsSCRAMSHA1(t *testing.T) {
	creds := &wire.Credentials{User: "dba", Password: "s3cret"}
	c := startCluster(t, Options{MongoDBVersion: "3.6", Auth: creds})
	cl := routerClient(t, c)
	ctx := context.Background()
	if _, err := cl.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "a", Value: 1}}); err != nil {
		t.Fatalf("a driver's default mechanism on 3.6: %v", err)
	}
	// A shard's internal namespaces answer an authenticated client. (How many
	// session records config.transactions holds by now depends on which shard took
	// the retryable insert and on the front's flush: not asserted.)
	findAll(t, shardClient(t, c, c.Shards()[0]).Database("config").Collection("transactions"), bson.D{})
	hello := run(t, cl, "admin", bson.D{{Key: "hello", Value: 1}, {Key: "saslSupportedMechs", Value: "admin.dba"}})
	if mechs, _ := hello.Lookup("saslSupportedMechs").Array().Values(); len(mechs) != 1 || mechs[0].StringValue() != "SCRAM-SHA-1" {
		t.Errorf("saslSupportedMechs %v", mechs)
	}
	if user := findOne(t, cl.Database("admin").Collection("system.users"), bson.D{}); user.Lookup("credentials", "SCRAM-SHA-1", "iterationCount").Int32() != 10000 {
		t.Errorf("admin.system.users %s", user)
	}
	sha256 := connect(t, options.Client().ApplyURI(c.URI()).SetAuth(options.Credential{AuthMechanism: "SCRAM-SHA-256", Username: "dba", Password: "s3cret"}).SetServerSelectionTimeout(2*time.Second))
	if err := sha256.Ping(ctx, nil); err == nil {
		t.Error("SCRAM-SHA-256 was accepted by a 3.6 cluster")
	}
	wrong := connect(t, options.Client().ApplyURI(c.URI()).SetAuth(options.Credential{Username: "dba", Password: "wrong"}).SetServerSelectionTimeout(2*time.Second))
	if err := wrong.Ping(ctx, nil); err == nil {
		t.Error("a wrong password was accepted")
	}
}

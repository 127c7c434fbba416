package sandbox

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// Zones through the router: addShardToZone, removeShardFromZone, updateZoneKeyRange,
// with MongoDB's checks and codes, kept in config.shards' tags and config.tags in the
// release's format ({ns, min} _ids until 4.2, ObjectIds from 4.4).
func TestZoneCommands(t *testing.T) {
	for _, version := range []string{"4.2", "7.0"} {
		t.Run(version, func(t *testing.T) {
			dir := t.TempDir()
			c := startCluster(t, Options{MongoDBVersion: version, Dir: dir})
			cl := routerClient(t, c)
			ctx := context.Background()
			s0, s1 := c.Shards()[0].Name, c.Shards()[1].Name
			admin := func(cmd bson.D) error { return cl.Database("admin").RunCommand(ctx, cmd).Err() }
			mustAdmin := func(cmd bson.D) {
				t.Helper()
				if err := admin(cmd); err != nil {
					t.Fatalf("%v: %v", cmd[0].Key, err)
				}
			}
			wantCode := func(err error, code int32, what string) {
				t.Helper()
				if commandCode(err) != code {
					t.Errorf("%s: %v, want code %d", what, err, code)
				}
			}
			run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.z"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
			run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.zz"}, {Key: "key", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: 1}}}})

			mustAdmin(bson.D{{Key: "addShardToZone", Value: s0}, {Key: "zone", Value: "A"}})
			mustAdmin(bson.D{{Key: "addShardToZone", Value: s0}, {Key: "zone", Value: "A"}})
			wantCode(admin(bson.D{{Key: "addShardToZone", Value: "nope"}, {Key: "zone", Value: "A"}}), 70, "an unknown shard")
			shard := findOne(t, cl.Database("config").Collection("shards"), bson.D{{Key: "_id", Value: s0}})
			if tags, _ := shard.Lookup("tags").Array().Values(); len(tags) != 1 || tags[0].StringValue() != "A" {
				t.Errorf("config.shards %s", shard)
			}

			rng := func(ns string, min, max bson.D, zone any) bson.D {
				return bson.D{{Key: "updateZoneKeyRange", Value: ns}, {Key: "min", Value: min}, {Key: "max", Value: max}, {Key: "zone", Value: zone}}
			}
			mustAdmin(rng("app.z", bson.D{{Key: "k", Value: 0}}, bson.D{{Key: "k", Value: 10}}, "A"))
			mustAdmin(rng("app.z", bson.D{{Key: "k", Value: 0}}, bson.D{{Key: "k", Value: 10}}, "A"))
			wantCode(admin(rng("app.z", bson.D{{Key: "k", Value: 5}}, bson.D{{Key: "k", Value: 20}}, "A")), 178, "an overlapping range")
			wantCode(admin(rng("app.z", bson.D{{Key: "k", Value: 20}}, bson.D{{Key: "k", Value: 30}}, "B")), 177, "an unknown zone")
			wantCode(admin(rng("app.z", bson.D{{Key: "x", Value: 20}}, bson.D{{Key: "x", Value: 30}}, "A")), 61, "bounds off the shard key")
			mustAdmin(rng("app.zz", bson.D{{Key: "a", Value: 1}}, bson.D{{Key: "a", Value: 5}}, "A"))

			tags := findAll(t, cl.Database("config").Collection("tags"), bson.D{{Key: "ns", Value: "app.z"}})
			if len(tags) != 1 || str(tags[0].Lookup("tag")) != "A" || tags[0].Lookup("min", "k").Int32() != 0 || tags[0].Lookup("max", "k").Int32() != 10 {
				t.Fatalf("config.tags for app.z: %v", tags)
			}
			id := tags[0].Lookup("_id")
			if version == "4.2" && (id.Type != bsontype.EmbeddedDocument || str(id.Document().Lookup("ns")) != "app.z") {
				t.Errorf("4.2 tag _id %v, want {ns, min}", id)
			}
			if version == "7.0" && id.Type != bsontype.ObjectID {
				t.Errorf("7.0 tag _id %v, want an ObjectId", id)
			}
			compound := findOne(t, cl.Database("config").Collection("tags"), bson.D{{Key: "ns", Value: "app.zz"}})
			if compound.Lookup("min", "b").Type != bsontype.MinKey || compound.Lookup("max", "b").Type != bsontype.MinKey {
				t.Errorf("a prefix range is not extended with MinKey: %s", compound)
			}

			wantCode(admin(bson.D{{Key: "removeShardFromZone", Value: s0}, {Key: "zone", Value: "A"}}), 163, "removing the zone's last shard while ranges use it")
			mustAdmin(bson.D{{Key: "addShardToZone", Value: s1}, {Key: "zone", Value: "A"}})
			mustAdmin(bson.D{{Key: "removeShardFromZone", Value: s0}, {Key: "zone", Value: "A"}})

			// The zones survive a restart of the cluster. (The client goes first: once a
			// 4.4+ driver's streaming monitor has seen the router go, Disconnect waits
			// for a server to end its sessions on.)
			cl.Disconnect(ctx)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			c = startCluster(t, Options{MongoDBVersion: version, Dir: dir})
			cl = routerClient(t, c)
			listed := run(t, cl, "admin", bson.D{{Key: "listShards", Value: 1}})
			shards, _ := listed.Lookup("shards").Array().Values()
			for _, s := range shards {
				tags, _ := s.Document().Lookup("tags").ArrayOK()
				vals, _ := tags.Values()
				name := str(s.Document().Lookup("_id"))
				if (name == s1) != (len(vals) == 1) {
					t.Errorf("after the restart, listShards shows %s with tags %v", name, vals)
				}
			}
			if err := cl.Database("admin").RunCommand(ctx, rng("app.z", bson.D{{Key: "k", Value: 0}}, bson.D{{Key: "k", Value: 10}}, nil)).Err(); err != nil {
				t.Fatal(err)
			}
			if n, _ := cl.Database("config").Collection("tags").CountDocuments(ctx, bson.D{{Key: "ns", Value: "app.z"}}); n != 0 {
				t.Errorf("the removed range stays: %d", n)
			}
			if err := cl.Database("app").Collection("zz").Drop(ctx); err != nil {
				t.Fatal(err)
			}
			if n, _ := cl.Database("config").Collection("tags").CountDocuments(ctx, bson.D{}); n != 0 {
				t.Errorf("a dropped collection keeps %d zone ranges", n)
			}
		})
	}
}

// sh.disableBalancing / sh.enableBalancing through the router: noBalance in the
// collection's config.collections document (written only when true until 4.4, always
// from 5.0); any other write to config.collections is refused with a message.
func TestDisableBalancingSetsNoBalance(t *testing.T) {
	for _, version := range []string{"4.2", "7.0"} {
		t.Run(version, func(t *testing.T) {
			c := startCluster(t, Options{MongoDBVersion: version, Dir: t.TempDir()})
			cl := routerClient(t, c)
			ctx := context.Background()
			run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.z"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}})
			colls := cl.Database("config").Collection("collections")
			noBalance := func() bson.RawValue {
				return findOne(t, colls, bson.D{{Key: "_id", Value: "app.z"}}).Lookup("noBalance")
			}
			set := func(ns string, on bool) (matched, modified int64) {
				t.Helper()
				res, err := colls.UpdateOne(ctx, bson.D{{Key: "_id", Value: ns}}, bson.D{{Key: "$set", Value: bson.D{{Key: "noBalance", Value: on}}}})
				if err != nil {
					t.Fatalf("noBalance %v on %s: %v", on, ns, err)
				}
				return res.MatchedCount, res.ModifiedCount
			}
			if v := noBalance(); v.Type != 0 && v.Boolean() {
				t.Fatalf("a new sharded collection has noBalance %s", v)
			}
			if n, m := set("app.z", true); n != 1 || m != 1 {
				t.Errorf("disableBalancing matched %d, modified %d, want 1 and 1", n, m)
			}
			if v, ok := noBalance().BooleanOK(); !ok || !v {
				t.Errorf("after disableBalancing noBalance is %s", noBalance())
			}
			if n, m := set("app.z", true); n != 1 || m != 0 {
				t.Errorf("disableBalancing again matched %d, modified %d, want 1 and 0", n, m)
			}
			if n, _ := set("app.unsharded", true); n != 0 {
				t.Errorf("disableBalancing of an unsharded collection matched %d", n)
			}
			set("app.z", false)
			if v := noBalance(); v.Type != 0 && v.Boolean() {
				t.Errorf("after enableBalancing noBalance is %s", v)
			}
			_, err := colls.UpdateOne(ctx, bson.D{{Key: "_id", Value: "app.z"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "key", Value: bson.D{{Key: "x", Value: 1}}}}}})
			if commandCode(err) != 20 || !strings.Contains(err.Error(), "noBalance") {
				t.Errorf("another write to config.collections: %v, want IllegalOperation naming what is taken", err)
			}
		})
	}
}

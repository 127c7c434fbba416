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
)

// formOf sums up the form of an oplog entry: its op, what kind of o it holds and the
// fields that tell versions apart.
func formOf(e bson.Raw) string {
	op := str(e.Lookup("op"))
	var f string
	switch op {
	case "i":
		f = "i"
		if e.Lookup("o2").Type != 0 {
			f += "+o2"
		}
	case "u":
		o := e.Lookup("o").Document()
		switch v, _ := o.Lookup("$v").AsInt64OK(); {
		case v == 2:
			f = "u$v2"
		case v == 1:
			f = "u$v1"
		case strings.HasPrefix(firstKey(o), "$"):
			f = "u$set"
		default:
			f = "u-replace"
		}
	case "d":
		f = "d"
	case "n":
		o := e.Lookup("o").Document()
		switch msg := o.Lookup("msg"); {
		case msg.Type == 0:
			f = "n:image"
		case msg.Type == bsontype.String:
			f = "n:" + strings.SplitN(str(msg), " ", 2)[0]
		default:
			f = "n:" + firstKey(msg.Document())
		}
	case "c":
		o := e.Lookup("o").Document()
		f = "c:" + firstKey(o)
		if ops := values(o.Lookup("applyOps")); len(ops) > 0 {
			f += fmt.Sprintf("[%s*%d]", str(ops[0].Document().Lookup("op")), len(ops))
		}
	}
	for _, k := range []string{"lsid", "fromMigrate", "multiOpType", "preImageOpTime", "postImageOpTime", "needsRetryImage"} {
		if e.Lookup(k).Type != 0 {
			f += "+" + k
		}
	}
	return f
}

func firstKey(d bson.Raw) string {
	elems, _ := d.Elements()
	if len(elems) == 0 {
		return ""
	}
	return elems[0].Key()
}

// shardOplog reads one shard's entries after a ts, without the periodic no-ops.
func shardOplog(t *testing.T, sc *mongo.Client, after primitive.Timestamp) []bson.Raw {
	t.Helper()
	return findAll(t, sc.Database("local").Collection("oplog.rs"), bson.D{
		{Key: "ts", Value: bson.D{{Key: "$gt", Value: after}}},
		{Key: "o.msg", Value: bson.D{{Key: "$ne", Value: "periodic noop"}}},
	})
}

func newestTS(t *testing.T, sc *mongo.Client) primitive.Timestamp {
	t.Helper()
	var e struct {
		TS primitive.Timestamp `bson:"ts"`
	}
	if err := sc.Database("local").Collection("oplog.rs").FindOne(context.Background(), bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e.TS
}

// Through the router with the Go driver (retryable writes on, its default), each write
// kind and each sharded DDL leaves on the shards the oplog forms of the MongoDB version
// the cluster presents.
func TestEachVersionLogsItsOwnOplogForms(t *testing.T) {
	type forms struct {
		shardCollection, insert, update, findAndModify, deleteMany, insertMany, createIndexes, refine string
		dropPrimary, dropOther                                                                        string
	}
	for _, c := range []struct {
		version string // a release, "3.6" to "8.0"
		want    forms
	}{
		{"3.6", forms{"c:createIndexes", "i+lsid", "u$v1+lsid", "n:image+lsid u$v1+lsid+postImageOpTime", "d d d", "i+lsid i+lsid i+lsid",
			"c:createIndexes", "", "c:drop", "c:drop"}},
		{"4.0", forms{"n:Creating c:createIndexes", "i+lsid", "u$v1+lsid", "n:image+lsid u$v1+lsid+postImageOpTime", "d d d", "i+lsid i+lsid i+lsid",
			"n:Creating c:createIndexes", "", "c:drop", "c:drop"}},
		{"4.2", forms{"n:Creating c:createIndexes", "i+lsid", "u$v1+lsid", "n:image+lsid u$v1+lsid+postImageOpTime", "d d d", "i+lsid i+lsid i+lsid",
			"n:Creating c:createIndexes", "", "c:drop", "c:drop"}},
		{"4.4", forms{"c:createIndexes", "i+lsid", "u$v1+lsid", "n:image+lsid u$v1+lsid+postImageOpTime", "d d d", "i+lsid i+lsid i+lsid",
			"c:startIndexBuild c:commitIndexBuild", "", "c:drop", "c:drop"}},
		{"5.0", forms{"c:createIndexes n:shardCollection", "i+lsid", "u$v2+lsid", "n:image+lsid u$v2+lsid+postImageOpTime", "d d d", "i+lsid i+lsid i+lsid",
			"c:startIndexBuild c:commitIndexBuild", "", "c:drop", "c:drop"}},
		{"6.0", forms{"c:createIndexes n:shardCollection", "i+o2+lsid", "u$v2+lsid", "u$v2+lsid+needsRetryImage", "d d d", "i+o2+lsid i+o2+lsid i+o2+lsid",
			"c:startIndexBuild c:commitIndexBuild", "", "c:drop", "c:drop+fromMigrate"}},
		{"7.0", forms{"c:createIndexes n:shardCollection", "i+o2+lsid", "u$v2+lsid", "u$v2+lsid+needsRetryImage", "c:applyOps[d*3]", "i+o2+lsid i+o2+lsid i+o2+lsid",
			"c:startIndexBuild c:commitIndexBuild", "n:Refine", "c:drop", "c:drop+fromMigrate"}},
		{"8.0", forms{"c:createIndexes n:shardCollection", "i+o2+lsid", "u$v2+lsid", "u$v2+lsid+needsRetryImage", "c:applyOps[d*3]", "c:applyOps[i*3]+lsid+multiOpType",
			"c:startIndexBuild c:commitIndexBuild", "n:Refine", "c:drop", "c:drop+fromMigrate"}},
	} {
		t.Run(c.version, func(t *testing.T) {
			cl := startCluster(t, Options{MongoDBVersion: c.version})
			router := routerClient(t, cl)
			ctx := context.Background()
			run(t, router, "admin", bson.D{{Key: "enableSharding", Value: "app"}})
			var primary, other *mongo.Client
			var db struct{ Primary string }
			if err := router.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: "app"}}).Decode(&db); err != nil {
				t.Fatal(err)
			}
			for _, s := range cl.Shards() {
				if s.Name == db.Primary {
					primary = shardClient(t, cl, s)
				} else {
					other = shardClient(t, cl, s)
				}
			}
			// step runs do and checks the forms of the entries it left on a shard, which it
			// returns.
			step := func(name string, sc *mongo.Client, want string, do func() error) []bson.Raw {
				t.Helper()
				before := newestTS(t, sc)
				if err := do(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var got []string
				var entries []bson.Raw
				for _, e := range shardOplog(t, sc, before) {
					if f := formOf(e); f != "c:create" { // the collection's creation is not the step's
						got = append(got, f)
						entries = append(entries, e)
					}
				}
				if g := strings.Join(got, " "); g != want {
					t.Errorf("%s: forms %q, want %q", name, g, want)
				}
				return entries
			}
			// lastNoop checks the o and o2 of the last no-op of a step.
			lastNoop := func(name string, entries []bson.Raw, o, o2 string) {
				t.Helper()
				if len(entries) == 0 {
					return
				}
				e := entries[len(entries)-1]
				if e.Lookup("ui").Type == 0 || e.Lookup("ns").StringValue() != "app.s" {
					t.Errorf("%s: the no-op %s names no collection (ns app.s, ui)", name, e)
				}
				for _, c := range []struct{ field, want string }{{"o", o}, {"o2", o2}} {
					var want bson.Raw
					if err := bson.UnmarshalExtJSON([]byte(c.want), false, &want); err != nil {
						t.Fatal(err)
					}
					if got := e.Lookup(c.field).Document(); got.String() != want.String() {
						t.Errorf("%s: the no-op's %s is %s, want %s", name, c.field, got, want)
					}
				}
			}
			coll := router.Database("app").Collection("s")
			plain := router.Database("app").Collection("plain")
			if _, err := plain.InsertOne(ctx, bson.D{{Key: "_id", Value: "seed"}}); err != nil {
				t.Fatal(err)
			}
			entries := step("shardCollection", primary, c.want.shardCollection, func() error {
				return router.Database("admin").RunCommand(ctx, bson.D{{Key: "shardCollection", Value: "app.s"}, {Key: "key", Value: bson.D{{Key: "sk", Value: 1}}}}).Err()
			})
			if strings.HasSuffix(c.want.shardCollection, "n:shardCollection") {
				initialChunks := `"numInitialChunks": {"$numberLong": "0"}, `
				if c.version == "8.0" {
					initialChunks = ""
				}
				lastNoop("shardCollection", entries, `{"msg": {"shardCollection": "app.s"}}`,
					`{"shardCollection": "app.s", "shardKey": {"sk": 1}, "unique": false, `+initialChunks+`"presplitHashedZones": false}`)
			}
			step("insert", primary, c.want.insert, func() error {
				_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "sk", Value: 1}, {Key: "n", Value: 0}, {Key: "sub", Value: bson.D{{Key: "a", Value: 1}}}})
				return err
			})
			step("update", primary, c.want.update, func() error {
				_, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "sk", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "sub.a", Value: 2}}}})
				return err
			})
			step("findAndModify", primary, c.want.findAndModify, func() error {
				return coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "sk", Value: 1}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}},
					options.FindOneAndUpdate().SetReturnDocument(options.After)).Err()
			})
			step("insertMany", primary, c.want.insertMany, func() error {
				_, err := plain.InsertMany(ctx, []any{bson.D{{Key: "g", Value: 1}}, bson.D{{Key: "g", Value: 1}}, bson.D{{Key: "g", Value: 1}}})
				return err
			})
			step("deleteMany", primary, c.want.deleteMany, func() error {
				_, err := plain.DeleteMany(ctx, bson.D{{Key: "g", Value: 1}})
				return err
			})
			step("createIndexes", primary, c.want.createIndexes, func() error {
				_, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "sk", Value: 1}, {Key: "x", Value: 1}}})
				return err
			})
			entries = step("refineCollectionShardKey", primary, c.want.refine, func() error {
				return router.Database("admin").RunCommand(ctx, bson.D{{Key: "refineCollectionShardKey", Value: "app.s"}, {Key: "key", Value: bson.D{{Key: "sk", Value: 1}, {Key: "x", Value: 1}}}}).Err()
			})
			lastNoop("refineCollectionShardKey", entries, `{"msg": "Refine shard key for collection app.s with { sk: 1, x: 1 }"}`,
				`{"refineCollectionShardKey": "app.s", "shardKey": {"sk": 1, "x": 1}, "oldShardKey": {"sk": 1}}`)
			// After the refinement the shards' document keys hold the new field.
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}, {Key: "sk", Value: 1}, {Key: "x", Value: "y"}}); err != nil {
				t.Fatal(err)
			}
			if del, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 2}, {Key: "sk", Value: 1}, {Key: "x", Value: "y"}}); err != nil || del.DeletedCount != 1 {
				t.Fatalf("delete by the refined key: %v %v", del, err)
			}
			if last := oplog(t, primary, "app.s"); len(last) == 0 || last[len(last)-1].Lookup("o").Document().String() != `{"_id": {"$numberInt":"2"},"sk": {"$numberInt":"1"},"x": "y"}` {
				t.Errorf("the delete's document key is %v, want {_id, sk, x}", last[len(last)-1].Lookup("o"))
			}

			// A hashed key puts the collection on both shards; its drop reaches both.
			run(t, router, "admin", bson.D{{Key: "shardCollection", Value: "app.h"}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}})
			beforeOther := newestTS(t, other)
			step("drop", primary, c.want.dropPrimary, func() error { return router.Database("app").Collection("h").Drop(ctx) })
			var got []string
			for _, e := range shardOplog(t, other, beforeOther) {
				got = append(got, formOf(e))
			}
			if g := strings.Join(got, " "); g != c.want.dropOther {
				t.Errorf("drop on the other shard: forms %q, want %q", g, c.want.dropOther)
			}
		})
	}
}

// A dropDatabase drops its sharded collections first on every shard, the shards other
// than the primary marking their copies fromMigrate from 6.0; a shard left without
// collections no longer holds the database and logs no dropDatabase.
func TestDropDatabaseDropsShardedCollectionsFirst(t *testing.T) {
	for _, c := range []struct{ version, other string }{
		{"4.4", "c:drop"},
		{"7.0", "c:drop+fromMigrate"},
	} {
		t.Run(c.version, func(t *testing.T) {
			cl := startCluster(t, Options{MongoDBVersion: c.version})
			router := routerClient(t, cl)
			run(t, router, "admin", bson.D{{Key: "shardCollection", Value: "gone.h"}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}})
			var db struct{ Primary string }
			if err := router.Database("config").Collection("databases").FindOne(context.Background(), bson.D{{Key: "_id", Value: "gone"}}).Decode(&db); err != nil {
				t.Fatal(err)
			}
			for _, s := range cl.Shards() {
				if s.Name == db.Primary {
					continue
				}
				other := shardClient(t, cl, s)
				before := newestTS(t, other)
				if err := router.Database("gone").Drop(context.Background()); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range shardOplog(t, other, before) {
					got = append(got, formOf(e))
				}
				if g := strings.Join(got, " "); g != c.other {
					t.Errorf("the other shard logged %q, want %q", g, c.other)
				}
			}
		})
	}
}

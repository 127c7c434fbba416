package sandbox

import (
	"context"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Point 2: CRUD through the router behaves as on mongos.

func shardedCollection(t *testing.T, c *Cluster, cl *mongo.Client, key bson.D) *mongo.Collection {
	t.Helper()
	run(t, cl, "admin", bson.D{{Key: "enableSharding", Value: "app"}, {Key: "primaryShard", Value: "source-shard0"}})
	run(t, cl, "admin", bson.D{{Key: "shardCollection", Value: "app.c"}, {Key: "key", Value: key}})
	return cl.Database("app").Collection("c")
}

// splitAndMove puts k >= 50 on the second shard.
func splitAndMove(t *testing.T, cl *mongo.Client) {
	t.Helper()
	run(t, cl, "admin", bson.D{{Key: "split", Value: "app.c"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 50}}}})
	run(t, cl, "admin", bson.D{{Key: "moveChunk", Value: "app.c"}, {Key: "find", Value: bson.D{{Key: "k", Value: 50}}}, {Key: "to", Value: "source-shard1"}})
}

func TestInsertWriteErrorsCarryTheClientsIndexes(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := shardedCollection(t, c, cl, bson.D{{Key: "k", Value: 1}})
	splitAndMove(t, cl)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "dup"}, {Key: "k", Value: 70}}); err != nil {
		t.Fatal(err)
	}
	// Ordered: docs 0 (shard0) and 1 (shard1) go in, 2 duplicates, 3 is never tried.
	_, err := coll.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "a"}, {Key: "k", Value: 1}},
		bson.D{{Key: "_id", Value: "b"}, {Key: "k", Value: 60}},
		bson.D{{Key: "_id", Value: "dup"}, {Key: "k", Value: 70}},
		bson.D{{Key: "_id", Value: "c"}, {Key: "k", Value: 2}},
	})
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 1 || bwe.WriteErrors[0].Index != 2 || bwe.WriteErrors[0].Code != 11000 {
		t.Fatalf("ordered insert with a duplicate at index 2: %v", err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 3 {
		t.Errorf("after the ordered insert: %d documents, want 3", n)
	}
	// Unordered: every statement is tried; both duplicates are reported.
	_, err = coll.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "a"}, {Key: "k", Value: 1}},
		bson.D{{Key: "_id", Value: "d"}, {Key: "k", Value: 3}},
		bson.D{{Key: "_id", Value: "dup"}, {Key: "k", Value: 70}},
		bson.D{{Key: "_id", Value: "e"}, {Key: "k", Value: 80}},
	}, options.InsertMany().SetOrdered(false))
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 2 || bwe.WriteErrors[0].Index != 0 || bwe.WriteErrors[1].Index != 2 {
		t.Fatalf("unordered insert with duplicates at 0 and 2: %v", err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 5 {
		t.Errorf("after the unordered insert: %d documents, want 5", n)
	}

	// A bulk write mixes the kinds and keeps the indexes.
	res, err := coll.BulkWrite(ctx, []mongo.WriteModel{
		mongo.NewInsertOneModel().SetDocument(bson.D{{Key: "_id", Value: "f"}, {Key: "k", Value: 90}}),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "k", Value: 90}}).SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}),
		mongo.NewUpdateManyModel().SetFilter(bson.D{}).SetUpdate(bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}),
		mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: "a"}}),
		mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "k", Value: 99}}).SetReplacement(bson.D{{Key: "k", Value: 99}, {Key: "r", Value: true}}).SetUpsert(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.InsertedCount != 1 || res.MatchedCount != 7 || res.ModifiedCount != 7 || res.DeletedCount != 1 || res.UpsertedCount != 1 {
		t.Errorf("bulk write result %+v", res)
	}
	assertPlacement(t, c, cl, "app", "c", 6)
}

func TestUpdatesDeletesAndUpsertsAsOnMongos(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := shardedCollection(t, c, cl, bson.D{{Key: "k", Value: 1}})
	splitAndMove(t, cl)
	var docs []any
	for i := range 100 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}, {Key: "g", Value: i % 4}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	// Targeted by the shard key, and by _id alone (found on its shard first).
	if res, err := coll.UpdateOne(ctx, bson.D{{Key: "k", Value: 70}}, bson.D{{Key: "$set", Value: bson.D{{Key: "t", Value: 1}}}}); err != nil || res.MatchedCount != 1 || res.ModifiedCount != 1 {
		t.Errorf("updateOne by shard key: %+v, %v", res, err)
	}
	if res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 71}}, bson.D{{Key: "$set", Value: bson.D{{Key: "t", Value: 1}}}}); err != nil || res.ModifiedCount != 1 {
		t.Errorf("updateOne by _id: %+v, %v", res, err)
	}
	if res, err := coll.UpdateOne(ctx, bson.D{{Key: "g", Value: 3}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "one", Value: 1}}}}); err != nil || res.ModifiedCount != 1 {
		t.Errorf("updateOne without shard key: %+v, %v", res, err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{{Key: "one", Value: 1}}); n != 1 {
		t.Errorf("updateOne without shard key changed %d documents, want 1", n)
	}
	if res, err := coll.UpdateMany(ctx, bson.D{{Key: "g", Value: 0}}, bson.D{{Key: "$set", Value: bson.D{{Key: "zero", Value: true}}}}); err != nil || res.MatchedCount != 25 || res.ModifiedCount != 25 {
		t.Errorf("updateMany across shards: %+v, %v", res, err)
	}

	// Upserts go to the shard owning the filter's shard key.
	res, err := coll.UpdateOne(ctx, bson.D{{Key: "k", Value: 500}}, bson.D{{Key: "$set", Value: bson.D{{Key: "new", Value: true}}}}, options.Update().SetUpsert(true))
	if err != nil || res.UpsertedCount != 1 || res.UpsertedID == nil {
		t.Fatalf("upsert: %+v, %v", res, err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "g", Value: 9}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}, options.Update().SetUpsert(true)); commandCode(err) != 61 {
		t.Errorf("an upsert without the shard key: %v, want ShardKeyNotFound", err)
	}

	// A shard key change moves the document between shards.
	if res, err := coll.UpdateOne(ctx, bson.D{{Key: "k", Value: 10}}, bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: 60}}}}); err != nil || res.ModifiedCount != 1 {
		t.Fatalf("shard key change: %+v, %v", res, err)
	}
	var moved bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: 10}}).Decode(&moved); err != nil || moved["k"] != int32(60) {
		t.Errorf("the moved document reads %v, %v", moved, err)
	}
	// As on MongoDB: a plain delete on the old shard, a plain insert on the new one.
	lastOp := func(s ShardInfo) bson.Raw {
		var last bson.Raw
		for _, e := range oplog(t, shardClient(t, c, s), "app.c") {
			if id, ok := e.Lookup("o", "_id").Int32OK(); ok && id == 10 {
				last = e
			}
		}
		return last
	}
	if d := lastOp(c.Shards()[0]); str(d.Lookup("op")) != "d" || d.Lookup("fromMigrate").Type != 0 {
		t.Errorf("the old shard's last entry for _id 10 is %v, want a plain delete", d)
	}
	if i := lastOp(c.Shards()[1]); str(i.Lookup("op")) != "i" || i.Lookup("fromMigrate").Type != 0 || i.Lookup("o", "k").Int32() != 60 {
		t.Errorf("the new shard's last entry for _id 10 is %v, want a plain insert of k: 60", i)
	}
	var after bson.M
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 11}}, bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: 61}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&after)
	if err != nil || after["k"] != int32(61) {
		t.Errorf("findOneAndUpdate moving a document: %v, %v", after, err)
	}
	assertPlacement(t, c, cl, "app", "c", 101)

	// Deletes: one by _id, many across shards.
	if res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 99}}); err != nil || res.DeletedCount != 1 {
		t.Errorf("deleteOne by _id: %+v, %v", res, err)
	}
	if res, err := coll.DeleteMany(ctx, bson.D{{Key: "g", Value: 1}}); err != nil || res.DeletedCount != 25 {
		t.Errorf("deleteMany across shards: %+v, %v", res, err)
	}
	if n, err := coll.EstimatedDocumentCount(ctx); err != nil || n != 75 {
		t.Errorf("estimatedDocumentCount = %d, %v; want 75", n, err)
	}
	var deleted bson.M
	if err := coll.FindOneAndDelete(ctx, bson.D{{Key: "k", Value: 500}}).Decode(&deleted); err != nil || deleted["new"] != true {
		t.Errorf("findOneAndDelete: %v, %v", deleted, err)
	}
	var replaced bson.M
	if err := coll.FindOneAndReplace(ctx, bson.D{{Key: "k", Value: 2}}, bson.D{{Key: "k", Value: 2}, {Key: "r", Value: 1}}).Decode(&replaced); err != nil || replaced["g"] != int32(2) {
		t.Errorf("findOneAndReplace: %v, %v", replaced, err)
	}
}

func TestCountsDistinctAndAggregateThroughRouter(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := shardedCollection(t, c, cl, bson.D{{Key: "k", Value: 1}})
	splitAndMove(t, cl)
	var docs []any
	for i := range 100 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "k", Value: i}, {Key: "g", Value: i % 4}, {Key: "tags", Value: bson.A{"t", i % 3}}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "g", Value: 2}}, options.Count().SetSkip(5).SetLimit(100)); err != nil || n != 20 {
		t.Errorf("countDocuments with skip = %d, %v; want 20", n, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "k", Value: 55}}); err != nil || n != 1 {
		t.Errorf("targeted countDocuments = %d, %v", n, err)
	}
	vals, err := coll.Distinct(ctx, "tags", bson.D{{Key: "k", Value: bson.D{{Key: "$lt", Value: 60}}}})
	if err != nil || len(vals) != 4 {
		t.Errorf("distinct tags = %v, %v; want 0, 1, 2, t", vals, err)
	}
	cur, err := coll.Aggregate(ctx, bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: "k", Value: bson.D{{Key: "$gte", Value: 40}}}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$g"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}, {Key: "sum", Value: bson.D{{Key: "$sum", Value: "$k"}}}}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "_id", Value: 1}}}},
		bson.D{{Key: "$skip", Value: 1}},
		bson.D{{Key: "$limit", Value: 2}},
		bson.D{{Key: "$project", Value: bson.D{{Key: "group", Value: "$_id"}, {Key: "n", Value: 1}, {Key: "_id", Value: 0}}}},
	}, options.Aggregate().SetBatchSize(1))
	if err != nil {
		t.Fatal(err)
	}
	var groups []bson.M
	if err := cur.All(ctx, &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0]["group"] != int32(1) || groups[0]["n"] != int32(15) || groups[1]["group"] != int32(2) {
		t.Errorf("aggregate = %v", groups)
	}
}

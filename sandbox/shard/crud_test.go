package shard

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func TestCRUDThroughTheFront(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("orders")

	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "o1"}, {Key: "qty", Value: 1}, {Key: "tags", Value: bson.A{"a"}}}); err != nil {
		t.Fatalf("insert one: %v", err)
	}
	many := []any{
		bson.D{{Key: "_id", Value: "o2"}, {Key: "qty", Value: 2}},
		bson.D{{Key: "_id", Value: "o3"}, {Key: "qty", Value: 3}},
		bson.D{{Key: "qty", Value: 4}}, // the front gives it an ObjectId
	}
	res, err := coll.InsertMany(ctx, many)
	if err != nil || len(res.InsertedIDs) != 3 {
		t.Fatalf("insert many: %v %v", res, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 4 {
		t.Fatalf("count = %d, %v; want 4", n, err)
	}

	// Targeted update with operators, by _id plus another field.
	ur, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "o1"}, {Key: "qty", Value: 1}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "qty", Value: 10}}}})
	if err != nil || ur.MatchedCount != 1 || ur.ModifiedCount != 1 {
		t.Fatalf("update one: %+v %v", ur, err)
	}
	// The rest of the filter must hold: no match when it does not.
	ur, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "o1"}, {Key: "qty", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}})
	if err != nil || ur.MatchedCount != 0 {
		t.Fatalf("update with a non-matching rest of filter: %+v %v", ur, err)
	}
	// Multi update by a non-_id filter; a no-op update matches without modifying.
	ur, err = coll.UpdateMany(ctx, bson.D{{Key: "qty", Value: bson.D{{Key: "$lt", Value: 5}}}}, bson.D{{Key: "$set", Value: bson.D{{Key: "small", Value: true}}}})
	if err != nil || ur.MatchedCount != 3 || ur.ModifiedCount != 3 {
		t.Fatalf("update many: %+v %v", ur, err)
	}
	ur, err = coll.UpdateMany(ctx, bson.D{{Key: "small", Value: true}}, bson.D{{Key: "$set", Value: bson.D{{Key: "small", Value: true}}}})
	if err != nil || ur.MatchedCount != 3 || ur.ModifiedCount != 0 {
		t.Fatalf("no-op update many: %+v %v", ur, err)
	}
	// Replacement.
	ur, err = coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "o2"}}, bson.D{{Key: "replaced", Value: true}})
	if err != nil || ur.ModifiedCount != 1 {
		t.Fatalf("replace: %+v %v", ur, err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "o2"}}).Decode(&got); err != nil || got["replaced"] != true || got["qty"] != nil {
		t.Fatalf("after replace: %v %v", got, err)
	}
	// Upserts: with operators (seeded from the filter's equalities) and by replacement.
	ur, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u1"}, {Key: "region", Value: "eu"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: 7}}}, {Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: true}}}},
		options.Update().SetUpsert(true))
	if err != nil || ur.UpsertedID != "u1" || ur.MatchedCount != 0 {
		t.Fatalf("upsert: %+v %v", ur, err)
	}
	got = nil
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "u1"}}).Decode(&got); err != nil ||
		got["region"] != "eu" || got["qty"] != int32(7) || got["created"] != true {
		t.Fatalf("upserted document: %v %v", got, err)
	}
	ur, err = coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "u2"}}, bson.D{{Key: "whole", Value: 1}}, options.Replace().SetUpsert(true))
	if err != nil || ur.UpsertedID != "u2" {
		t.Fatalf("replacement upsert: %+v %v", ur, err)
	}
	// An upsert that matches updates instead.
	ur, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: 8}}}}, options.Update().SetUpsert(true))
	if err != nil || ur.MatchedCount != 1 || ur.UpsertedID != nil {
		t.Fatalf("matching upsert: %+v %v", ur, err)
	}

	// findAndModify: update returning the new document, upsert, remove.
	var fam bson.M
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "o3"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "qty", Value: 1}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&fam)
	if err != nil || fam["qty"] != int32(4) {
		t.Fatalf("findAndModify update: %v %v", fam, err)
	}
	fam = nil
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "f1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 1}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&fam)
	if err != nil || fam["_id"] != "f1" || fam["v"] != int32(1) {
		t.Fatalf("findAndModify upsert: %v %v", fam, err)
	}
	fam = nil
	if err := coll.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: "f1"}}).Decode(&fam); err != nil || fam["v"] != int32(1) {
		t.Fatalf("findAndModify remove: %v %v", fam, err)
	}
	if err := coll.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: "f1"}}).Err(); err != mongo.ErrNoDocuments {
		t.Fatalf("findAndModify remove of a missing document: %v", err)
	}

	// Deletes: one by _id, many by filter.
	dr, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "u2"}})
	if err != nil || dr.DeletedCount != 1 {
		t.Fatalf("delete one: %+v %v", dr, err)
	}
	dr, err = coll.DeleteMany(ctx, bson.D{{Key: "small", Value: true}})
	if err != nil || dr.DeletedCount != 2 {
		t.Fatalf("delete many: %+v %v", dr, err)
	}
	// A filter naming a few _ids (fetched one by one), a missing one among them.
	ur, err = coll.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"o1", "o2", "gone", "o1"}}}}}, bson.D{{Key: "$set", Value: bson.D{{Key: "seen", Value: 1}}}})
	if err != nil || ur.MatchedCount != 2 || ur.ModifiedCount != 2 {
		t.Fatalf("update by a list of _ids: %+v %v", ur, err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 3 {
		t.Fatalf("documents left = %d, want 3 (o1, o2, u1)", n)
	}
}

func TestDuplicateKeysAndOrderedSemantics(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("db").Collection("users")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatalf("unique index: %v", err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "email", Value: "a@x"}}); err != nil {
		t.Fatal(err)
	}
	_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}})
	if commandCode(err) != 11000 {
		t.Fatalf("duplicate _id: want 11000, got %v", err)
	}
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}, {Key: "email", Value: "a@x"}})
	if commandCode(err) != 11000 {
		t.Fatalf("duplicate unique key on insert: want 11000, got %v", err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 3}, {Key: "email", Value: "c@x"}}); err != nil {
		t.Fatal(err)
	}
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 3}}, bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "a@x"}}}})
	if commandCode(err) != 11000 {
		t.Fatalf("duplicate unique key on update: want 11000, got %v", err)
	}

	// Ordered: stops at the first error. Unordered: goes on.
	docs := []any{bson.D{{Key: "_id", Value: 10}}, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 11}}}
	_, err = coll.InsertMany(ctx, docs)
	var bwe mongo.BulkWriteException
	if !asBulk(err, &bwe) || len(bwe.WriteErrors) != 1 || bwe.WriteErrors[0].Index != 1 {
		t.Fatalf("ordered insert: %v", err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: 11}}); n != 0 {
		t.Fatal("ordered insert went on past the error")
	}
	docs = []any{bson.D{{Key: "_id", Value: 20}}, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 21}}, bson.D{{Key: "_id", Value: 3}}}
	_, err = coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if !asBulk(err, &bwe) || len(bwe.WriteErrors) != 2 || bwe.WriteErrors[0].Index != 1 || bwe.WriteErrors[1].Index != 3 {
		t.Fatalf("unordered insert: %v", err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: 21}}); n != 1 {
		t.Fatal("unordered insert stopped at the error")
	}

	// Bulk updates: ordered stops at the failing statement, unordered does not.
	models := []mongo.WriteModel{
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: 20}}).SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: 1}}}}),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: 3}}).SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "a@x"}}}}),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: 21}}).SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: 1}}}}),
	}
	_, err = coll.BulkWrite(ctx, models)
	if !asBulk(err, &bwe) || bwe.WriteErrors[0].Index != 1 || bwe.WriteErrors[0].Code != 11000 {
		t.Fatalf("ordered bulk update: %v", err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{{Key: "k", Value: 1}}); n != 1 {
		t.Fatalf("ordered bulk update applied %d statements, want 1", n)
	}
	_, err = coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if !asBulk(err, &bwe) || len(bwe.WriteErrors) != 1 {
		t.Fatalf("unordered bulk update: %v", err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{{Key: "k", Value: 1}}); n != 2 {
		t.Fatalf("unordered bulk update applied %d statements, want 2", n)
	}
}

func asBulk(err error, out *mongo.BulkWriteException) bool {
	b, ok := err.(mongo.BulkWriteException)
	if ok {
		*out = b
	}
	return ok
}

func TestReadsPassThroughToFerretDB(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("shop").Collection("items")
	var docs []any
	for i := range 10 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "kind", Value: []string{"a", "b"}[i%2]}, {Key: "v", Value: i * 10}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	// find with a small batch size needs getMore, which reaches FerretDB's cursor
	// through any of the front's backend connections.
	cur, err := coll.Find(ctx, bson.D{{Key: "v", Value: bson.D{{Key: "$gte", Value: 20}}}},
		options.Find().SetSort(bson.D{{Key: "v", Value: -1}}).SetBatchSize(2).SetProjection(bson.D{{Key: "v", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var got []bson.M
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || got[0]["v"] != int32(90) || got[7]["v"] != int32(20) || got[0]["kind"] != nil {
		t.Fatalf("find: %v", got)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "kind", Value: "a"}}); err != nil || n != 5 {
		t.Fatalf("count: %d %v", n, err)
	}
	kinds, err := coll.Distinct(ctx, "kind", bson.D{})
	if err != nil || len(kinds) != 2 {
		t.Fatalf("distinct: %v %v", kinds, err)
	}
	agg, err := coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "kind", Value: "b"}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$kind"}, {Key: "total", Value: bson.D{{Key: "$sum", Value: "$v"}}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var groups []bson.M
	if err := agg.All(ctx, &groups); err != nil || len(groups) != 1 || groups[0]["total"] != int32(250) {
		t.Fatalf("aggregate: %v %v", groups, err)
	}
	var fam bson.M
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 3}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}},
		options.FindOneAndUpdate().SetProjection(bson.D{{Key: "x", Value: 1}}).SetReturnDocument(options.After)).Decode(&fam)
	if err != nil || len(fam) != 2 || fam["x"] != int32(1) {
		t.Fatalf("findAndModify with a projection: %v %v", fam, err)
	}
	names, err := c.Database("shop").ListCollectionNames(ctx, bson.D{})
	if err != nil || len(names) != 1 || names[0] != "items" {
		t.Fatalf("listCollections nameOnly: %v %v", names, err)
	}
}

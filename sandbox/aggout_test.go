package sandbox

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// primaryShard returns a client of the primary shard of db.
func primaryShard(t *testing.T, c *Cluster, cl *mongo.Client, db string) *mongo.Client {
	t.Helper()
	var d struct{ Primary string }
	if err := cl.Database("config").Collection("databases").FindOne(context.Background(), bson.D{{Key: "_id", Value: db}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Shards() {
		if s.Name == d.Primary {
			return shardClient(t, c, s)
		}
	}
	t.Fatalf("no shard %q", d.Primary)
	return nil
}

// $out over an existing collection shows in the primary shard's oplog as MongoDB
// logs it: create tmp.agg_out.<uuid>, the target's indexes on it, the inserts,
// and a renameCollection over the target whose dropTarget is the target's UUID.
func TestOutReplacesTheTargetAsAServerLogsIt(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	app := cl.Database("app")
	if _, err := app.Collection("orders").InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: 1}}, bson.D{{Key: "_id", Value: 2}, {Key: "v", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Collection("report").InsertOne(ctx, bson.D{{Key: "_id", Value: "old"}}); err != nil {
		t.Fatal(err)
	}
	run(t, cl, "app", bson.D{{Key: "createIndexes", Value: "report"}, {Key: "indexes", Value: bson.A{bson.D{{Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}}}}})
	sc := primaryShard(t, c, cl, "app")
	var oldUUID bson.RawValue
	for _, e := range oplog(t, sc, "app.report") {
		oldUUID = e.Lookup("ui")
	}

	cur, err := app.Collection("orders").Aggregate(ctx, bson.A{bson.D{{Key: "$match", Value: bson.D{{Key: "v", Value: bson.D{{Key: "$gte", Value: 2}}}}}}, bson.D{{Key: "$out", Value: "report"}}})
	if err != nil {
		t.Fatal(err)
	}
	cur.Close(ctx)

	got := findAll(t, app.Collection("report"), bson.D{})
	if len(got) != 1 || got[0].Lookup("_id").Int32() != 2 {
		t.Fatalf("report after $out = %v, want order 2 only", got)
	}
	names := map[string]bool{}
	for _, ix := range findAllIndexes(t, app.Collection("report")) {
		names[str(ix.Lookup("name"))] = true
	}
	if !names["v_1"] {
		t.Errorf("$out lost the target's index: %v", names)
	}
	colls, _ := app.ListCollectionNames(ctx, bson.D{})
	for _, n := range colls {
		if strings.HasPrefix(n, "tmp.agg_out.") {
			t.Errorf("temporary collection %s left behind", n)
		}
	}

	var steps []string
	var tmpUUID bson.RawValue
	for _, e := range oplog(t, sc, "") {
		ns := str(e.Lookup("ns"))
		o := e.Lookup("o").Document()
		switch {
		case ns == "app.$cmd" && strings.HasPrefix(str(o.Lookup("create")), "tmp.agg_out."):
			steps, tmpUUID = append(steps, "create"), e.Lookup("ui")
		case ns == "app.$cmd" && strings.HasPrefix(str(o.Lookup("createIndexes")), "tmp.agg_out."):
			steps = append(steps, "createIndexes")
		case strings.HasPrefix(ns, "app.tmp.agg_out.") && str(e.Lookup("op")) == "i":
			steps = append(steps, "insert")
		case ns == "app.$cmd" && strings.HasPrefix(str(o.Lookup("renameCollection")), "app.tmp.agg_out."):
			steps = append(steps, "rename")
			if str(o.Lookup("to")) != "app.report" || !o.Lookup("dropTarget").Equal(oldUUID) || !e.Lookup("ui").Equal(tmpUUID) {
				t.Errorf("rename entry %s: want to app.report, dropTarget the old report's UUID %v, ui the temporary collection's", e, oldUUID)
			}
		}
	}
	if strings.Join(steps, ",") != "create,createIndexes,insert,rename" {
		t.Errorf("$out logged %v, want create, createIndexes, insert, rename", steps)
	}
}

// $merge into a new collection creates it (a create entry) and upserts every
// result document by _id.
func TestMergeIntoANewCollectionCreatesIt(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	app := cl.Database("app")
	if _, err := app.Collection("orders").InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: 1}}, bson.D{{Key: "_id", Value: 2}, {Key: "v", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	cur, err := app.Collection("orders").Aggregate(ctx, bson.A{bson.D{{Key: "$merge", Value: bson.D{{Key: "into", Value: "totals"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	cur.Close(ctx)
	if got := findAll(t, app.Collection("totals"), bson.D{}); len(got) != 2 {
		t.Fatalf("totals after $merge = %v, want both orders", got)
	}
	created := false
	for _, e := range oplog(t, primaryShard(t, c, cl, "app"), "app.$cmd") {
		created = created || str(e.Lookup("o", "create")) == "totals"
	}
	if !created {
		t.Error("no create entry for the collection $merge created")
	}
}

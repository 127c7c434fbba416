package cutover_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/cutover"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/sandbox"
)

// destination is a sandbox cluster, or the real cluster SHARDLIFT_TEST_DESTINATION_URI
// names (only a database of this test's own is written).
func destination(t *testing.T) (*mongo.Client, string) {
	t.Helper()
	ctx := context.Background()
	uri := os.Getenv("SHARDLIFT_TEST_DESTINATION_URI")
	if uri == "" {
		if testing.Short() {
			t.Skip("integration test: starts a sandbox cluster (or set SHARDLIFT_TEST_DESTINATION_URI)")
		}
		c, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: 1, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		uri = c.URI()
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("sl_cutover_%04x", rand.IntN(1<<16))
	t.Cleanup(func() {
		client.Database(db).Drop(context.Background())
		client.Disconnect(context.Background())
	})
	return client, db
}

func spec(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildRelaxed builds an index as the sync does and returns the original to restore.
func buildRelaxed(t *testing.T, c *mongo.Client, db, coll string, original bson.Raw) {
	t.Helper()
	relaxed, _, err := oplog.RelaxIndexForSync(original)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Database(db).RunCommand(context.Background(), bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: bson.A{relaxed}}}).Err(); err != nil {
		t.Fatal(err)
	}
}

func indexSpec(t *testing.T, c *mongo.Client, db, coll, name string) bson.Raw {
	t.Helper()
	cur, err := c.Database(db).Collection(coll).Indexes().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(context.Background())
	for cur.Next(context.Background()) {
		if n, _ := cur.Current.Lookup("name").StringValueOK(); n == name {
			return append(bson.Raw(nil), cur.Current...)
		}
	}
	t.Fatalf("no index %s on %s.%s", name, db, coll)
	return nil
}

func TestRestoreIndexMakesTheRelaxedUniqueIndexUniqueAgain(t *testing.T) {
	c, db := destination(t)
	ctx := context.Background()
	users := c.Database(db).Collection("users")
	for i := range 50 {
		if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "email", Value: fmt.Sprintf("u%d@example.com", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	original := spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}})
	buildRelaxed(t, c, db, "users", original)
	if indexSpec(t, c, db, "users", "email_1").Lookup("unique").Type != 0 {
		t.Fatal("the relaxed index is unique")
	}
	for range 2 { // a second restore finds it done
		if err := cutover.RestoreIndex(ctx, c, db+".users", original); err != nil {
			t.Fatal(err)
		}
	}
	if u, _ := indexSpec(t, c, db, "users", "email_1").Lookup("unique").BooleanOK(); !u {
		t.Fatalf("index after restore: %s", indexSpec(t, c, db, "users", "email_1"))
	}
	if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: 99}, {Key: "email", Value: "u1@example.com"}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("a duplicate email after the restore: %v", err)
	}
}

func TestRestoreIndexRestoresTheTTL(t *testing.T) {
	c, db := destination(t)
	ctx := context.Background()
	if _, err := c.Database(db).Collection("sessions").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	original := spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "expireAt", Value: 1}}}, {Key: "name", Value: "expireAt_1"}, {Key: "expireAfterSeconds", Value: int32(3600)}})
	buildRelaxed(t, c, db, "sessions", original)
	if err := cutover.RestoreIndex(ctx, c, db+".sessions", original); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := indexSpec(t, c, db, "sessions", "expireAt_1").Lookup("expireAfterSeconds").AsInt64OK(); ttl != 3600 {
		t.Fatalf("index after restore: %s", indexSpec(t, c, db, "sessions", "expireAt_1"))
	}
}

func TestRestoreIndexLeavesAGoneOrReplacedIndexAlone(t *testing.T) {
	c, db := destination(t)
	ctx := context.Background()
	coll := c.Database(db).Collection("items")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "sku", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	original := spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "sku", Value: 1}}}, {Key: "name", Value: "sku_1"}, {Key: "unique", Value: true}})
	if err := cutover.RestoreIndex(ctx, c, db+".items", original); err != nil {
		t.Fatalf("an index dropped during the sync: %v", err)
	}
	if err := cutover.RestoreIndex(ctx, c, db+".gone", original); err != nil {
		t.Fatalf("a collection dropped during the sync: %v", err)
	}
	// Same name, another key: the source dropped the index and made another.
	other := spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "sku", Value: -1}}}, {Key: "name", Value: "sku_1"}})
	if err := c.Database(db).RunCommand(ctx, bson.D{{Key: "createIndexes", Value: "items"}, {Key: "indexes", Value: bson.A{other}}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cutover.RestoreIndex(ctx, c, db+".items", original); err != nil {
		t.Fatal(err)
	}
	if indexSpec(t, c, db, "items", "sku_1").Lookup("unique").Type != 0 {
		t.Fatal("the restore changed another index of the same name")
	}
}

func TestRestoreIndexOverDuplicatesSaysWhatIsWrong(t *testing.T) {
	c, db := destination(t)
	ctx := context.Background()
	coll := c.Database(db).Collection("users")
	for i := range 2 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "email", Value: "same@example.com"}}); err != nil {
			t.Fatal(err)
		}
	}
	original := spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}})
	buildRelaxed(t, c, db, "users", original)
	err := cutover.RestoreIndex(ctx, c, db+".users", original)
	if err == nil || !strings.Contains(err.Error(), "email_1") {
		t.Fatalf("restore over duplicates: %v", err)
	}
	if indexSpec(t, c, db, "users", "email_1").Lookup("unique").Type != 0 {
		t.Fatal("the failed restore left a unique index over duplicates")
	}
	t.Logf("%v", err)
}

func TestRestoreOptionsAppliesAWithheldIndexChange(t *testing.T) {
	c, db := destination(t)
	ctx := context.Background()
	if _, err := c.Database(db).Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "email", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	plain := spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}})
	buildRelaxed(t, c, db, "users", plain)
	// The source ran collMod {index: {name: "email_1", unique: true}} during the sync.
	_, withheld, err := oplog.RelaxCollectionOptionsForSync(spec(t, bson.D{{Key: "index", Value: bson.D{{Key: "name", Value: "email_1"}, {Key: "unique", Value: true}}}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cutover.RestoreOptions(ctx, c, db+".users", withheld); err != nil {
		t.Fatal(err)
	}
	if u, _ := indexSpec(t, c, db, "users", "email_1").Lookup("unique").BooleanOK(); !u {
		t.Fatalf("index after restore: %s", indexSpec(t, c, db, "users", "email_1"))
	}
}

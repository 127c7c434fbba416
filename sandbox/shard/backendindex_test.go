package shard

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// listedIndexes lists a collection's indexes by name.
func listedIndexes(t *testing.T, coll *mongo.Collection) []string {
	t.Helper()
	specs, err := coll.Indexes().ListSpecifications(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	return names
}

// createIndex builds one index with createIndexes.
func createIndex(db *mongo.Database, coll string, specs ...bson.D) error {
	list := bson.A{}
	for _, s := range specs {
		list = append(list, s)
	}
	return db.RunCommand(context.Background(), bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: list}}).Err()
}

func tokenIndex(unique bool) bson.D {
	return bson.D{{Key: "key", Value: bson.D{{Key: "token", Value: 1}}}, {Key: "name", Value: "token_1"}, {Key: "unique", Value: unique}}
}

// A createIndexes of several indexes one of which cannot be built builds none of
// them, as MongoDB's does: FerretDB left the unique token_1 it had built before
// dup_1 failed in SQLite, unlisted, refusing a duplicate token; building token_1
// again then failed ("index ..._token_1 already exists"), as I'm done's rebuild of
// a relaxed unique index did once in make test.
func TestAFailedCreateIndexesLeavesNoIndexBehind(t *testing.T) {
	f := startFront(t, Config{})
	db := connect(t, f).Database("app")
	coll := db.Collection("sessions")
	ctx := context.Background()
	var docs []any
	for i := range 20 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "token", Value: i}, {Key: "dup", Value: 1}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	dup := bson.D{{Key: "key", Value: bson.D{{Key: "dup", Value: 1}}}, {Key: "name", Value: "dup_1"}, {Key: "unique", Value: true}}
	if err := createIndex(db, "sessions", tokenIndex(true), dup); commandCode(err) != 11000 {
		t.Fatalf("createIndexes of a unique index over duplicates: %v, want DuplicateKey", err)
	}
	if names := listedIndexes(t, coll); len(names) != 1 {
		t.Errorf("after the failed createIndexes the collection lists %v, want _id_ alone", names)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 100}, {Key: "token", Value: 5}}); err != nil {
		t.Errorf("a duplicate token with no unique index listed: %v", err)
	}
	for round := range 3 {
		if err := createIndex(db, "sessions", tokenIndex(false)); err != nil {
			t.Fatalf("round %d: build token_1: %v", round, err)
		}
		if err := db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: "sessions"}, {Key: "index", Value: "token_1"}}).Err(); err != nil {
			t.Fatalf("round %d: drop token_1: %v", round, err)
		}
	}
}

// An index FerretDB built in SQLite but never recorded (its build cut short by a
// stop, before the restart) does not stop the next build of that name.
func TestAnIndexLeftHalfBuiltIsBuiltAgain(t *testing.T) {
	f := startFront(t, Config{})
	db := connect(t, f).Database("app")
	coll := db.Collection("sessions")
	ctx := context.Background()
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}, {Key: "token", Value: 1}}, bson.D{{Key: "_id", Value: 2}, {Key: "token", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	be := f.mu.nodes[0].be
	f.mu.RUnlock()
	conn, table, err := be.files.table(ctx, "app", "sessions")
	if err != nil || table == "" {
		t.Fatalf("the table of app.sessions: %q, %v", table, err)
	}
	// What FerretDB's build leaves when its metadata is not written.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (_ferretdb_sjson->'token')`, table+"_token_1", table)); err != nil {
		t.Fatal(err)
	}
	if err := createIndex(db, "sessions", tokenIndex(false)); err != nil {
		t.Fatalf("build token_1 over a half-built one: %v", err)
	}
	if names := listedIndexes(t, coll); len(names) != 2 || names[1] != "token_1" {
		t.Errorf("the collection lists %v, want _id_ and token_1", names)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 3}, {Key: "token", Value: 1}}); err != nil {
		t.Errorf("a duplicate token under the non-unique token_1: %v", err)
	}
}

// FerretDB runs SQL on a pool of SQLite connections, each with its own copy of the
// schema, refreshed only when it next runs a statement: a connection held by a
// cursor while another dropped an index still has the index, and a build of the
// same name on it failed ("index ..._token_1 already exists"), where MongoDB
// builds it. (On 4.2 a build reads nothing before it: from 4.4 the count of a
// two-phase build ran on that connection first, refreshing it.)
func TestAnIndexDroppedWhileACursorIsOpenIsBuiltAgain(t *testing.T) {
	f := startFront(t, Config{Identity: wire.Identity{Version: "4.2.25"}})
	db := connect(t, f).Database("app")
	coll := db.Collection("sessions")
	ctx := context.Background()
	var docs []any
	for i := range 300 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprint(i)}, {Key: "token", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if err := createIndex(db, "sessions", tokenIndex(round%2 == 0)); err != nil {
			t.Fatalf("round %d: build token_1: %v", round, err)
		}
		cur, err := coll.Find(ctx, bson.D{}, options.Find().SetBatchSize(2))
		if err != nil {
			t.Fatal(err)
		}
		if !cur.Next(ctx) {
			t.Fatalf("round %d: the cursor: %v", round, cur.Err())
		}
		if err := db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: "sessions"}, {Key: "index", Value: "token_1"}}).Err(); err != nil {
			t.Fatalf("round %d: drop token_1: %v", round, err)
		}
		if err := cur.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := createIndex(db, "sessions", tokenIndex(true)); err != nil {
		t.Fatalf("build token_1 after the drops: %v", err)
	}
}

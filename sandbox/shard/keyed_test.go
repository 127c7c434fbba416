package shard

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// idKinds are the _id types applications use, each with a way to make the i-th _id.
var idKinds = []struct {
	name string
	id   func(i int) any
}{
	{"int", func(i int) any { return int32(i) }},
	{"long", func(i int) any { return int64(i) << 40 }},
	{"double", func(i int) any { return float64(i) + 0.5 }},
	{"string", func(i int) any { return fmt.Sprintf("id-<%d>&é", i) }},
	{"objectid", func(i int) any {
		var id primitive.ObjectID
		id[11] = byte(i)
		return id
	}},
	{"date", func(i int) any { return primitive.NewDateTimeFromTime(time.Date(1960+i, 1, 1, 0, 0, 0, 0, time.UTC)) }},
	{"uuid", func(i int) any { return primitive.Binary{Subtype: 4, Data: []byte(fmt.Sprintf("uuid-%011d", i))} }},
	{"compound", func(i int) any {
		return bson.D{{Key: "tenant", Value: "t1"}, {Key: "seq", Value: int64(i)}, {Key: "at", Value: 2.25}}
	}},
}

// shardSQL opens the SQLite file FerretDB keeps for db in the front's directory and
// returns it with the table of db.coll.
func shardSQL(t *testing.T, dir, db, coll string) (*sql.DB, string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "data", db+".sqlite")+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var table string
	if err := conn.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table); err != nil {
		t.Fatalf("table of %s.%s: %v", db, coll, err)
	}
	return conn, table
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of q, its steps joined by "; ".
func queryPlan(t *testing.T, conn *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := conn.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// poisonAllBut replaces the stored text of every document of the table whose k is not
// keep with one FerretDB cannot decode (it has no schema) but whose _id text is intact,
// so unique indexes still hold. A write that reads any of them (a scan) fails; one that
// goes straight to its document by index succeeds.
func poisonAllBut(t *testing.T, conn *sql.DB, table string, keep int) {
	t.Helper()
	q := fmt.Sprintf(`UPDATE %q SET _ferretdb_sjson = json_object('_id', json(_ferretdb_sjson->'$._id'), 'poisoned', 1) WHERE _ferretdb_sjson->>'$.k' != ?`, table)
	res, err := conn.Exec(q, keep)
	if err != nil {
		t.Fatalf("poison: %v", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatal("poisoned no document")
	}
}

// TestTargetedWritesAreIndexLookupsForEveryIDType proves, per _id type, that updates,
// replacements, findAndModify and deletes by {_id} and by {_id, shard key} read only
// their own document: every other document is made unreadable first.
func TestTargetedWritesAreIndexLookupsForEveryIDType(t *testing.T) {
	for _, kind := range idKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir := t.TempDir()
			f := startFront(t, Config{Dir: dir})
			c := connect(t, f)
			ctx := context.Background()
			coll := c.Database("app").Collection("c")
			const docs, target = 40, 17
			batch := make([]any, docs)
			for i := range docs {
				batch[i] = bson.D{{Key: "_id", Value: kind.id(i)}, {Key: "k", Value: i}, {Key: "n", Value: 0}}
			}
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			conn, table := shardSQL(t, dir, "app", "c")
			poisonAllBut(t, conn, table, target)
			id := kind.id(target)
			byID := bson.D{{Key: "_id", Value: id}}
			byKey := bson.D{{Key: "_id", Value: id}, {Key: "k", Value: target}}
			inc := bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}

			for _, filter := range []bson.D{byID, byKey} {
				res, err := coll.UpdateOne(ctx, filter, inc)
				if err != nil || res.MatchedCount != 1 || res.ModifiedCount != 1 {
					t.Fatalf("update by %v: %+v, %v", filter, res, err)
				}
			}
			// The rest of the filter is checked: a wrong shard key value matches nothing.
			res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "k", Value: target + 1}}, inc)
			if err != nil || res.MatchedCount != 0 {
				t.Fatalf("update by _id and a wrong k: %+v, %v", res, err)
			}
			var after bson.M
			for _, filter := range []bson.D{byID, byKey} {
				if err := coll.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "n", Value: 1}})).Decode(&after); err != nil || after["n"] != int32(2) || len(after) != 2 {
					t.Fatalf("find by %v: %v, %v; want _id and n 2", filter, after, err)
				}
			}
			err = coll.FindOneAndUpdate(ctx, byKey, inc, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&after)
			if err != nil || after["n"] != int32(3) {
				t.Fatalf("findAndModify: %v, %v; want n 3", after, err)
			}
			res, err = coll.ReplaceOne(ctx, byKey, bson.D{{Key: "k", Value: target}, {Key: "n", Value: 10}})
			if err != nil || res.ModifiedCount != 1 {
				t.Fatalf("replace: %+v, %v", res, err)
			}
			err = coll.FindOneAndUpdate(ctx, byID, inc, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&after)
			if err != nil || after["n"] != int32(11) {
				t.Fatalf("findAndModify after replace: %v, %v; want n 11", after, err)
			}
			del, err := coll.DeleteOne(ctx, byKey)
			if err != nil || del.DeletedCount != 1 {
				t.Fatalf("delete: %+v, %v", del, err)
			}
			del, err = coll.DeleteOne(ctx, byID)
			if err != nil || del.DeletedCount != 0 {
				t.Fatalf("delete again: %+v, %v", del, err)
			}
		})
	}
}

// TestKeyedLookupsFollowMongoDBEquality: numbers of different types that are equal name
// one _id, and a value of another type that FerretDB stores with the same text (the
// date 42 and the int 42) does not match.
func TestKeyedLookupsFollowMongoDBEquality(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("eq")
	big := int64(1) << 62 // a double prints it as 4611686018427388000
	docs := []any{
		bson.D{{Key: "_id", Value: int32(7)}, {Key: "k", Value: 1}},
		bson.D{{Key: "_id", Value: big}, {Key: "k", Value: 2}},
		bson.D{{Key: "_id", Value: primitive.DateTime(42)}, {Key: "k", Value: 3}},
		bson.D{{Key: "_id", Value: bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: big}}}, {Key: "k", Value: 4}},
		bson.D{{Key: "_id", Value: "other"}, {Key: "k", Value: 5}},
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}
	for _, tc := range []struct {
		id   any
		want int64
	}{
		{7.0, 1}, {int64(7), 1}, {float64(big), 1}, {int32(42), 0}, {int64(42), 0},
		{bson.D{{Key: "a", Value: 1.0}, {Key: "b", Value: float64(big)}}, 1},
		{bson.D{{Key: "b", Value: big}, {Key: "a", Value: int32(1)}}, 0},
		{math.Copysign(0, -1), 0},
	} {
		res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: tc.id}}, set)
		if err != nil || res.MatchedCount != tc.want {
			t.Errorf("update {_id: %v (%T)}: %+v, %v; want %d matched", tc.id, tc.id, res, err, tc.want)
		}
	}
	del, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: float64(big)}})
	if err != nil || del.DeletedCount != 1 {
		t.Fatalf("delete the long 2^62 by the double: %+v, %v", del, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 4 {
		t.Fatalf("count = %d, %v; want 4", n, err)
	}
}

// TestIDKeysAreFerretDBsText: the text the front computes for an _id is the text
// FerretDB stored for it, for awkward values of every type.
func TestIDKeysAreFerretDBsText(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("texts")
	ids := []any{
		int32(math.MinInt32), int32(-1), int64(math.MaxInt64), int64(math.MinInt64), int64(1) << 53,
		0.1, -2.5e-9, 1e21, 123456789.125, -1e300,
		"", `quote " back \ slash`, "<tag>&amp;", "é日本\u2028", "\x01ctl",
		primitive.NewObjectID(), primitive.DateTime(-86_400_000), primitive.DateTime(0),
		primitive.Binary{Subtype: 4, Data: []byte("0123456789abcdef")}, primitive.Binary{Subtype: 0, Data: []byte{0xff, 0, 1}},
		true, primitive.Null{},
		bson.D{{Key: "a", Value: bson.A{int32(1), "x", bson.D{{Key: "<", Value: 0.5}}}}, {Key: "", Value: false}},
	}
	for i, id := range ids {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "k", Value: i}}); err != nil {
			t.Fatalf("insert _id %v: %v", id, err)
		}
	}
	conn, table := shardSQL(t, dir, "app", "texts")
	for i, id := range ids {
		t.Run(fmt.Sprintf("%d-%T", i, id), func(t *testing.T) {
			typ, data, err := bson.MarshalValue(id)
			if err != nil {
				t.Fatal(err)
			}
			keys, ok := idKeys(bson.RawValue{Type: typ, Value: data})
			if !ok {
				t.Fatalf("no keyed form for %v", id)
			}
			var k int
			err = conn.QueryRow(fmt.Sprintf(`SELECT _ferretdb_sjson->>'$.k' FROM %q WHERE %s = json(?)`, table, idColumn), keys[0]).Scan(&k)
			if err != nil || k != i {
				var stored string
				conn.QueryRow(fmt.Sprintf(`SELECT %s FROM %q WHERE _ferretdb_sjson->>'$.k' = ?`, idColumn, table), i).Scan(&stored)
				t.Fatalf("text %s finds k=%d, %v; FerretDB stored %s", keys[0], k, err, stored)
			}
		})
	}
}

// TestKeyedSQLSearchesTheIDIndex: the statements the front issues find rows through the
// _id index, not by scanning the table.
func TestKeyedSQLSearchesTheIDIndex(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	if _, err := c.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	conn, table := shardSQL(t, dir, "app", "c")
	for _, q := range []string{lookupSQL(table, 1), lookupSQL(table, 3), deleteSQL(table)} {
		args := make([]any, strings.Count(q, "?"))
		for i := range args {
			args[i] = "1"
		}
		joined := queryPlan(t, conn, q, args...)
		if !strings.Contains(joined, "USING INDEX "+table+"_shardlift_id") || strings.Contains(joined, "SCAN") {
			t.Errorf("%s\nplan: %s; want a search of the _id index", q, joined)
		}
	}
}

// TestFrontsSQLiteConnectionsSyncAsFerretDB checks the front's own connections to the
// SQLite files (its keyed lookups and writes, and the workbench's) commit with the
// synchronous setting of the FerretDB sharing those files: SQLite's default (full)
// would sync the write-ahead log at every keyed write.
func TestFrontsSQLiteConnectionsSyncAsFerretDB(t *testing.T) {
	f := startFront(t, Config{})
	coll := connect(t, f).Database("app").Collection("c")
	ctx := context.Background()
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	// A keyed update opens both: the shard's file and the workbench's.
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	be := f.mu.nodes[0].be
	f.mu.RUnlock()
	for _, c := range []struct {
		files *sqlFiles
		db    string
		want  int // PRAGMA synchronous: 0 off, 1 normal, 2 full
	}{{be.files, "app", 1}, {be.bench.files, workbenchDB, 0}} {
		conn, err := c.files.open(c.db)
		if err != nil || conn == nil {
			t.Fatalf("open %s: %v", c.db, err)
		}
		var got int
		if err := conn.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("the front's connection to %s has synchronous=%d, want %d", c.db, got, c.want)
		}
	}
}

// TestAnUpdatedRowDecodesAsFerretDBReadsIt checks the text an update on the workbench
// writes decodes (decodeRow) as exactly the document the update answered and FerretDB
// reads from that text (values FerretDB stores in odd ways included).
func TestAnUpdatedRowDecodesAsFerretDBReadsIt(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	coll := connect(t, f).Database("app").Collection("c")
	ctx := context.Background()
	doc := bson.D{{Key: "_id", Value: int64(7)}, {Key: "n", Value: int32(1)}, {Key: "arr", Value: bson.A{1, "x", 2.5}}}
	if _, err := coll.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	be := f.mu.nodes[0].be
	f.mu.RUnlock()
	w := be.bench
	conn, table := shardSQL(t, dir, "app", "c")
	var text string
	if err := conn.QueryRow(fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q`, table)).Scan(&text); err != nil {
		t.Fatal(err)
	}
	updates := []bson.D{
		{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}},
		{{Key: "$set", Value: bson.D{{Key: "z", Value: math.Copysign(0, -1)}, {Key: "d", Value: primitive.NewDateTimeFromTime(time.UnixMilli(1700000000123))}}}},
		{{Key: "$set", Value: bson.D{{Key: "big", Value: int64(1) << 60}, {Key: "f", Value: 1e300}, {Key: "s", Value: "é\x00"}}}},
		{{Key: "$pop", Value: bson.D{{Key: "arr", Value: -1}}}},
		{{Key: "$unset", Value: bson.D{{Key: "n", Value: ""}}}},
	}
	for _, u := range updates {
		raw, _ := bson.Marshal(u)
		post, out, err := w.apply(ctx, text, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: raw}, bson.RawValue{})
		if err != nil {
			t.Fatalf("apply %v: %v", u, err)
		}
		decoded, err := decodeRow("app", "c", out)
		if err != nil {
			t.Fatal(err)
		}
		// What FerretDB itself reads from that text.
		if err := w.put(ctx, out); err != nil {
			t.Fatal(err)
		}
		var read bson.Raw
		if err := w.client.Database(workbenchDB).Collection(workbenchColl).FindOne(ctx, bson.D{}).Decode(&read); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(decoded, read) || !bytes.Equal(post, read) {
			t.Errorf("after %v: decoded %s, the update answered %s, FerretDB reads %s", u, decoded, post, read)
		}
		text = out
	}
}

// TestKeyedUpdateRereadsARowThatChangedSinceItsLookup checks the row a lookup read is
// rewritten only while it still holds what was read: an update applies to the stored
// document, not to a copy read earlier.
func TestKeyedUpdateRereadsARowThatChangedSinceItsLookup(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	coll := connect(t, f).Database("app").Collection("c")
	ctx := context.Background()
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(3)}, {Key: "n", Value: int32(1)}}); err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	n := f.mu.nodes[0]
	f.mu.RUnlock()
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	id := bson.RawValue{Type: bson.TypeInt64, Value: bsoncore.AppendInt64(nil, 3)}
	docs, err := n.be.fetchByID(ctx, "app", "c", id)
	if err != nil || len(docs) != 1 {
		t.Fatalf("fetch: %v, %v", docs, err)
	}
	// The row changes after the lookup (FerretDB's own write: n becomes 5).
	conn, table := shardSQL(t, dir, "app", "c")
	if _, err := conn.Exec(fmt.Sprintf(`UPDATE %q SET _ferretdb_sjson = json_set(_ferretdb_sjson, '$.n', 5)`, table)); err != nil {
		t.Fatal(err)
	}
	inc, _ := bson.Marshal(bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
	post, err := n.be.modifyByID(ctx, "app", "c", id, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: inc}, bson.RawValue{})
	if err != nil {
		t.Fatal(err)
	}
	if got := post.Lookup("n").Int32(); got != 6 {
		t.Errorf("the update made n %d, want 6 (5 stored, plus 1)", got)
	}
	var stored string
	if err := conn.QueryRow(fmt.Sprintf(`SELECT _ferretdb_sjson->>'$.n' FROM %q`, table)).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != "6" {
		t.Errorf("stored n is %s, want 6", stored)
	}
}

// A find that pins string or ObjectId _ids runs without the write lock (FerretDB
// looks them up): its lookups must leave the rows the write lock holder kept for its
// next rewrite alone. They cleared them, and a find of {_id: {$in: [ObjectIds]}} beside
// updates by numeric _id ended the process ("concurrent map writes", fault suite).
func TestAFindByObjectIDLeavesTheWritersFetchedRowsAlone(t *testing.T) {
	f := startFront(t, Config{})
	coll := connect(t, f).Database("app").Collection("c")
	ctx := context.Background()
	oid := primitive.NewObjectID()
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: int64(3)}}, bson.D{{Key: "_id", Value: oid}}}); err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	n := f.mu.nodes[0]
	f.mu.RUnlock()
	n.writeMu.Lock()
	numeric := bson.RawValue{Type: bson.TypeInt64, Value: bsoncore.AppendInt64(nil, 3)}
	if docs, err := n.be.fetchByID(ctx, "app", "c", numeric); err != nil || len(docs) != 1 {
		t.Fatalf("fetch 3: %v, %v", docs, err)
	}
	kept := len(n.be.fetched)
	n.writeMu.Unlock()
	if kept != 1 {
		t.Fatalf("the writer's lookup kept %d rows, want 1", kept)
	}

	// The reader's lookup, as keyedFind makes it: no write lock.
	byOID := bson.RawValue{Type: bson.TypeObjectID, Value: oid[:]}
	if docs, err := n.be.fetchByID(ctx, "app", "c", byOID); err != nil || len(docs) != 1 {
		t.Fatalf("fetch %v: %v, %v", oid, docs, err)
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	if len(n.be.fetched) != 1 {
		t.Fatalf("a lookup FerretDB answered changed the writer's kept rows: %d left, want 1", len(n.be.fetched))
	}
}

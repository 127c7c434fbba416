package shard

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// versionFront starts a shard presenting a MongoDB version and connects to it without
// retryable writes (so that its entries carry no session fields).
func versionFront(t *testing.T, version, fcv string) *mongo.Client {
	t.Helper()
	f := startFront(t, Config{Identity: wire.Identity{Version: version, FCV: fcv}})
	return connect(t, f, options.Client().SetRetryWrites(false))
}

// keys lists a document's field names.
func keys(doc bson.Raw) string {
	elems, _ := doc.Elements()
	var out []string
	for _, e := range elems {
		out = append(out, e.Key())
	}
	return strings.Join(out, ",")
}

// Every entry is laid out as the version lays it out: 3.6 to 4.2 put ts, t, h, v first
// and o last; 4.4 and later put op, ns, ui, o first and the optime after them.
func TestEntriesTakeTheEnvelopeOfTheirVersion(t *testing.T) {
	for _, c := range []struct {
		version, fcv, keys string
		hash               bool
	}{
		{"3.6.23", "3.6", "ts,t,h,v,op,ns,ui,wall,o", true},
		{"3.6.23", "3.4", "ts,t,h,v,op,ns,wall,o", true},
		{"4.0.28", "4.0", "ts,t,h,v,op,ns,ui,wall,o", true},
		{"4.2.25", "4.2", "ts,t,h,v,op,ns,ui,wall,o", false},
		{"4.4.29", "4.4", "op,ns,ui,o,ts,t,wall,v", false},
		{"5.0.31", "5.0", "op,ns,ui,o,ts,t,wall,v", false},
		{"6.0.20", "6.0", "op,ns,ui,o,o2,ts,t,v,wall", false},
		{"8.0.4", "8.0", "op,ns,ui,o,o2,ts,t,v,wall", false},
	} {
		t.Run(c.version+"/fcv"+c.fcv, func(t *testing.T) {
			cl := versionFront(t, c.version, c.fcv)
			ctx := context.Background()
			if _, err := cl.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
				t.Fatal(err)
			}
			before := lastTS(t, cl)
			if _, err := cl.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
				t.Fatal(err)
			}
			got := entriesAfter(t, cl, before)
			if len(got) != 1 {
				t.Fatalf("got %d entries, want 1", len(got))
			}
			if k := keys(got[0]); k != c.keys {
				t.Errorf("fields %s, want %s", k, c.keys)
			}
			if c.hash {
				if h, ok := got[0].Lookup("h").Int64OK(); !ok || h == 0 {
					t.Errorf("h = %v, want a random int64", got[0].Lookup("h"))
				}
			}
			wantV := bsontype.Int64
			if strings.HasPrefix(c.keys, "ts") {
				wantV = bsontype.Int32
			}
			if typ := got[0].Lookup("v").Type; typ != wantV {
				t.Errorf("v is %s, want %s", typ, wantV)
			}
		})
	}
}

// The DDL of DESIGN section 2 in each version's forms: the _id index spec of create,
// the index build entries, dropIndexes' spec, collMod's old values, rename's dropTarget
// and the record counts of drop and rename.
func TestDDLTakesTheFormsOfItsVersion(t *testing.T) {
	type want struct {
		create, insertO2, buildNonEmpty, buildEmpty, dropIndexO2, collModO2, rename, renameDropO2, dropO2 string
	}
	idIndex := `{"v": 2, "key": {"_id": 1}, "name": "_id_"}`
	idIndexNS := func(coll string) string {
		return `{"v": 2, "key": {"_id": 1}, "name": "_id_", "ns": "app.` + coll + `"}`
	}
	legacyCreate := `c:{"create": "c1", "idIndex": ` + idIndexNS("c1") + `}`
	note := `n:{"msg": "Creating indexes. Coll: app.c1"}`
	cmd := `c:{"createIndexes": "c1", "v": 2, "key": {"a": 1}, "name": "a_1"}`
	twoPhase := `c:{"startIndexBuild": "c1", "indexBuildUUID": *, "indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1"}]}` +
		` c:{"commitIndexBuild": "c1", "indexBuildUUID": *, "indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1"}]}`
	ttl := `c:{"createIndexes": "c2", "v": 2, "key": {"t": 1}, "name": "t_1", "expireAfterSeconds": 60}`
	ttlNS := `i:{"v": 2, "key": {"t": 1}, "name": "t_1", "ns": "app.c2", "expireAfterSeconds": 60}`
	uuid := `{"uuid": *}`
	for _, c := range []struct {
		version, fcv string
		want
	}{
		{"3.6.23", "3.4", want{legacyCreate, "", `i:{"v": 2, "key": {"a": 1}, "name": "a_1", "ns": "app.c1"}`, ttlNS,
			`{"v": 2, "key": {"a": 1}, "name": "a_1", "ns": "app.c1"}`, `{"collectionOptions_old": {}, "expireAfterSeconds_old": 60}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false, "dropTarget": false}`, "", ""}},
		{"3.6.23", "3.6", want{legacyCreate, "", cmd, ttl,
			`{"v": 2, "key": {"a": 1}, "name": "a_1", "ns": "app.c1"}`, `{"collectionOptions_old": ` + uuid + `, "expireAfterSeconds_old": 60}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false, "dropTarget": false}`, "", ""}},
		{"4.0.28", "4.0", want{legacyCreate, "", note + " " + cmd, `n:{"msg": "Creating indexes. Coll: app.c2"} ` + ttl,
			`{"v": 2, "key": {"a": 1}, "name": "a_1", "ns": "app.c1"}`, `{"collectionOptions_old": ` + uuid + `, "expireAfterSeconds_old": 60}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false}`, "", ""}},
		{"4.2.25", "4.2", want{legacyCreate, "", note + " " + cmd, `n:{"msg": "Creating indexes. Coll: app.c2"} ` + ttl,
			`{"v": 2, "key": {"a": 1}, "name": "a_1", "ns": "app.c1"}`, `{"collectionOptions_old": ` + uuid + `, "expireAfterSeconds_old": 60}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false}`, `{"numRecords": 0}`, `{"numRecords": 1}`}},
		{"4.4.29", "4.2", want{`c:{"create": "c1", "idIndex": ` + idIndex + `}`, "", note + " " + cmd, `n:{"msg": "Creating indexes. Coll: app.c2"} ` + ttl,
			`{"v": 2, "key": {"a": 1}, "name": "a_1"}`, `{"collectionOptions_old": ` + uuid + `, "expireAfterSeconds_old": 60}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false}`, `{"numRecords": 0}`, `{"numRecords": 1}`}},
		{"4.4.29", "4.4", want{`c:{"create": "c1", "idIndex": ` + idIndex + `}`, "", twoPhase, ttl,
			`{"v": 2, "key": {"a": 1}, "name": "a_1"}`, `{"collectionOptions_old": ` + uuid + `, "expireAfterSeconds_old": 60}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false}`, `{"numRecords": 0}`, `{"numRecords": 1}`}},
		{"6.0.20", "6.0", want{`c:{"create": "c1", "idIndex": ` + idIndex + `}`, `{"_id": 1}`, twoPhase, ttl,
			`{"v": 2, "key": {"a": 1}, "name": "a_1"}`, `{"collectionOptions_old": ` + uuid + `, "indexOptions_old": {"expireAfterSeconds": 60}}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false}`, `{"numRecords": 0}`, `{"numRecords": 1}`}},
		{"8.0.4", "8.0", want{`c:{"create": "c1", "idIndex": ` + idIndex + `}`, `{"_id": 1}`, twoPhase, ttl,
			`{"v": 2, "key": {"a": 1}, "name": "a_1"}`, `{"collectionOptions_old": ` + uuid + `, "indexOptions_old": {"expireAfterSeconds": 60}}`,
			`{"renameCollection": "app.c2", "to": "app.c3", "stayTemp": false}`, `{"numRecords": 0}`, `{"numRecords": 1}`}},
	} {
		t.Run(c.version+"/fcv"+c.fcv, func(t *testing.T) {
			cl := versionFront(t, c.version, c.fcv)
			ctx := context.Background()
			db := cl.Database("app")
			step := func(name string, run func() error, want string) {
				t.Helper()
				before := lastTS(t, cl)
				if err := run(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				expectForms(t, name, entriesAfterWithNoops(t, cl, before), want)
			}
			step("create", func() error { return db.CreateCollection(ctx, "c1") }, c.create)
			step("insert", func() error {
				_, err := db.Collection("c1").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}})
				return err
			}, `i:{"_id": 1, "a": 1}`+o2Part(c.insertO2))
			step("createIndexes on documents", func() error {
				_, err := db.Collection("c1").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "a", Value: 1}}})
				return err
			}, c.buildNonEmpty)
			step("createIndexes on a new collection", func() error {
				_, err := db.Collection("c2").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "t", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(60)})
				return err
			}, strings.Replace(c.create, "c1", "c2", -1)+" "+c.buildEmpty)
			step("dropIndexes", func() error {
				_, err := db.Collection("c1").Indexes().DropOne(ctx, "a_1")
				return err
			}, `c:{"dropIndexes": "c1", "index": "a_1"}`+o2Part(c.dropIndexO2))
			step("collMod", func() error {
				return db.RunCommand(ctx, bson.D{{Key: "collMod", Value: "c2"}, {Key: "index", Value: bson.D{{Key: "name", Value: "t_1"}, {Key: "expireAfterSeconds", Value: 120}}}}).Err()
			}, `c:{"collMod": "c2", "index": {"name": "t_1", "expireAfterSeconds": {"$numberLong": "120"}}}`+o2Part(c.collModO2))
			step("renameCollection", func() error {
				return cl.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "app.c2"}, {Key: "to", Value: "app.c3"}}).Err()
			}, `c:`+c.rename)
			dropTarget := `"dropTarget": *`
			step("renameCollection over a target", func() error {
				return cl.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "app.c1"}, {Key: "to", Value: "app.c3"}, {Key: "dropTarget", Value: true}}).Err()
			}, `c:{"renameCollection": "app.c1", "to": "app.c3", "stayTemp": false, `+dropTarget+`}`+o2Part(c.renameDropO2))
			step("drop", func() error { return db.Collection("c3").Drop(ctx) }, `c:{"drop": "c3"}`+o2Part(c.dropO2))
		})
	}
}

// o2Part is the o2 of an expected entry in expectForms' notation.
func o2Part(o2 string) string {
	if o2 == "" {
		return ""
	}
	return "+" + o2
}

// entriesAfterWithNoops is entriesAfter with the no-ops MongoDB writes for a command,
// not the periodic ones.
func entriesAfterWithNoops(t *testing.T, c *mongo.Client, after primitive.Timestamp) []bson.Raw {
	t.Helper()
	ctx := context.Background()
	cur, err := oplogColl(c).Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: after}}}, {Key: "o.msg", Value: bson.D{{Key: "$ne", Value: "periodic noop"}}}})
	if err != nil {
		t.Fatalf("read oplog: %v", err)
	}
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("read oplog: %v", err)
	}
	return out
}

// expectForms checks entries against a space-separated list of op:o[+o2] in extended
// JSON, where * matches any value (a UUID, a build's UUID).
func expectForms(t *testing.T, step string, got []bson.Raw, want string) {
	t.Helper()
	var wants []string
	for _, w := range splitForms(want) {
		wants = append(wants, w)
	}
	if len(got) != len(wants) {
		for _, g := range got {
			t.Logf("%s: got %s", step, g)
		}
		t.Fatalf("%s: got %d entries, want %d (%s)", step, len(got), len(wants), want)
	}
	for i, w := range wants {
		op, rest, _ := strings.Cut(w, ":")
		o, o2, _ := strings.Cut(rest, "+")
		if g := got[i].Lookup("op").StringValue(); g != op {
			t.Errorf("%s: entry %d is op %s, want %s", step, i, g, op)
			continue
		}
		if !matchDoc(t, got[i].Lookup("o").Document(), o) {
			t.Errorf("%s: entry %d o = %s, want %s", step, i, got[i].Lookup("o"), o)
		}
		gotO2, has := got[i].Lookup("o2").DocumentOK()
		switch {
		case o2 == "" && has:
			t.Errorf("%s: entry %d has o2 %s, want none", step, i, gotO2)
		case o2 != "" && (!has || !matchDoc(t, gotO2, o2)):
			t.Errorf("%s: entry %d o2 = %s, want %s", step, i, gotO2, o2)
		}
	}
}

// splitForms splits "op:{...}+{...} op:{...}" at the spaces between entries.
func splitForms(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ' ':
			if depth == 0 {
				if strings.TrimSpace(s[start:i]) != "" {
					out = append(out, strings.TrimSpace(s[start:i]))
				}
				start = i + 1
			}
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		out = append(out, strings.TrimSpace(s[start:]))
	}
	return out
}

// matchDoc compares a document with extended JSON in which a * value matches anything.
func matchDoc(t *testing.T, got bson.Raw, want string) bool {
	t.Helper()
	w := ext(t, strings.ReplaceAll(want, "*", `"*"`))
	return matchRaw(got, w)
}

func matchRaw(got, want bson.Raw) bool {
	ge, _ := got.Elements()
	we, _ := want.Elements()
	if len(ge) != len(we) {
		return false
	}
	for i := range we {
		if ge[i].Key() != we[i].Key() {
			return false
		}
		gv, wv := ge[i].Value(), we[i].Value()
		if s, ok := wv.StringValueOK(); ok && s == "*" {
			continue
		}
		if gd, ok := gv.DocumentOK(); ok {
			if wd, ok := wv.DocumentOK(); ok && gv.Type == wv.Type {
				if !matchRaw(gd, wd) {
					return false
				}
				continue
			}
		}
		if gv.Type != wv.Type || !bytes.Equal(gv.Value, wv.Value) {
			return false
		}
	}
	return true
}

// A two-phase build that fails (a unique index over duplicates) is logged as its start
// and its abort, with the cause MongoDB serializes; before 4.4 only the no-op remains.
func TestFailedIndexBuildIsLoggedAsItsVersionDoes(t *testing.T) {
	for _, c := range []struct{ version, want string }{
		{"4.2.25", `n:{"msg": "Creating indexes. Coll: app.dup"}`},
		{"7.0.14", `c:{"startIndexBuild": "dup", "indexBuildUUID": *, "indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1", "unique": true}]}` +
			` c:{"abortIndexBuild": "dup", "indexBuildUUID": *, "indexes": [{"v": 2, "key": {"a": 1}, "name": "a_1", "unique": true}], "cause": {"ok": false, "code": 11000, "codeName": "DuplicateKey", "errmsg": *}}`},
	} {
		t.Run(c.version, func(t *testing.T) {
			cl := versionFront(t, c.version, c.version[:3])
			ctx := context.Background()
			coll := cl.Database("app").Collection("dup")
			if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: 1}}, bson.D{{Key: "_id", Value: 2}, {Key: "a", Value: 1}}}); err != nil {
				t.Fatal(err)
			}
			before := lastTS(t, cl)
			_, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "a", Value: 1}}, Options: options.Index().SetUnique(true)})
			if commandCode(err) != 11000 {
				t.Fatalf("unique index over duplicates: %v, want a DuplicateKey error", err)
			}
			expectForms(t, "failed build", entriesAfterWithNoops(t, cl, before), c.want)
		})
	}
}

// From 6.1 a multi-document delete logs its deletes in applyOps batches of up to 100,
// without lsid, a batch of one as a plain delete; 6.0 logs one delete per document.
func TestMultiDeletesAreBatchedFrom61(t *testing.T) {
	for _, c := range []struct {
		version string
		want    []int // inner deletes of each entry; 0: a plain delete
	}{
		{"6.0.20", []int{0, 0, 0}},
		{"7.0.14", []int{3}},
		{"8.0.4", []int{100, 50}},
	} {
		t.Run(c.version, func(t *testing.T) {
			cl := versionFront(t, c.version, c.version[:3])
			ctx := context.Background()
			coll := cl.Database("app").Collection("del")
			total := 0
			for _, k := range c.want {
				total += max(k, 1)
			}
			docs := make([]any, total)
			for i := range docs {
				docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "g", Value: 1}}
			}
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				t.Fatal(err)
			}
			before := lastTS(t, cl)
			if res, err := coll.DeleteMany(ctx, bson.D{{Key: "g", Value: 1}}); err != nil || res.DeletedCount != int64(total) {
				t.Fatalf("deleteMany: %v %v", res, err)
			}
			got := entriesAfter(t, cl, before)
			if len(got) != len(c.want) {
				t.Fatalf("got %d entries, want %d", len(got), len(c.want))
			}
			for i, k := range c.want {
				e := got[i]
				if e.Lookup("lsid").Type != 0 || e.Lookup("txnNumber").Type != 0 {
					t.Errorf("entry %d carries session fields: %s", i, e)
				}
				if k == 0 {
					if e.Lookup("op").StringValue() != "d" {
						t.Errorf("entry %d: %s, want a delete", i, e)
					}
					continue
				}
				ops := values(e.Lookup("o", "applyOps"))
				if e.Lookup("ns").StringValue() != "admin.$cmd" || len(ops) != k {
					t.Fatalf("entry %d: %s, want an applyOps of %d deletes", i, e, k)
				}
				if want := ext(t, `{"op": "d", "ns": "app.del", "ui": "*", "o": {"_id": 0}}`); i == 0 && !matchRaw(document(ops[0]), want) {
					t.Errorf("first inner delete %s, want the form %s", document(ops[0]), want)
				}
			}
			// deleteOne is never batched.
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}, {Key: "g", Value: 2}}); err != nil {
				t.Fatal(err)
			}
			before = lastTS(t, cl)
			if _, err := coll.DeleteMany(ctx, bson.D{{Key: "g", Value: 2}}); err != nil {
				t.Fatal(err)
			}
			if got := entriesAfter(t, cl, before); len(got) != 1 || got[0].Lookup("op").StringValue() != "d" {
				t.Errorf("a multi-delete of one document logged %v, want one plain delete", got)
			}
		})
	}
}

// 8.0 logs an insert of several documents as applyOps entries of up to 64 inserts marked
// multiOpType 1; a retryable one carries the session on the applyOps, the stmtIds inside
// and prevOpTime chaining the entries.
func TestInsertsAreVectoredIn80(t *testing.T) {
	f := startFront(t, Config{Identity: wire.Identity{Version: "8.0.4", FCV: "8.0"}})
	cl := connect(t, f) // retryable
	ctx := context.Background()
	coll := cl.Database("app").Collection("vec")
	docs := make([]any, 70)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}}
	}
	if err := cl.Database("app").CreateCollection(ctx, "vec"); err != nil {
		t.Fatal(err)
	}
	before := lastTS(t, cl)
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	got := entriesAfter(t, cl, before)
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2 applyOps", len(got))
	}
	var prev primitive.Timestamp
	for i, e := range got {
		if mt, _ := e.Lookup("multiOpType").Int32OK(); mt != 1 || e.Lookup("lsid").Type == 0 {
			t.Errorf("entry %d: %s, want multiOpType 1 and the session", i, e)
		}
		ops := values(e.Lookup("o", "applyOps"))
		if want := []int{64, 6}[i]; len(ops) != want {
			t.Errorf("entry %d holds %d inserts, want %d", i, len(ops), want)
		}
		if id, _ := document(ops[0]).Lookup("stmtId").Int32OK(); id != int32(64*i) {
			t.Errorf("entry %d: first stmtId %d, want %d", i, id, 64*i)
		}
		_, _, _, p, _ := sessionOf(t, e)
		if p != prev {
			t.Errorf("entry %d: prevOpTime %v, want %v", i, p, prev)
		}
		ts, ti, _ := e.Lookup("ts").TimestampOK()
		prev = primitive.Timestamp{T: ts, I: ti}
	}
}

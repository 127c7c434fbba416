package shard

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/sjson"
)

// inProcBase is the document the in-process oracle updates: fields of most types,
// nested documents and arrays, an int32 at its maximum.
func inProcBase() bson.D {
	oid, _ := primitive.ObjectIDFromHex("65a1b2c3d4e5f60718293a4b")
	return bson.D{
		{Key: "_id", Value: int64(7)},
		{Key: "a", Value: int32(1)},
		{Key: "b", Value: "x"},
		{Key: "n", Value: bson.D{{Key: "c", Value: int32(math.MaxInt32)}, {Key: "d", Value: 1.5}, {Key: "e", Value: bson.D{{Key: "f", Value: "deep"}}}}},
		{Key: "arr", Value: bson.A{int32(1), "two", bson.D{{Key: "x", Value: int32(1)}}}},
		{Key: "l", Value: int64(5)},
		{Key: "dt", Value: primitive.DateTime(1700000000123)},
		{Key: "nul", Value: nil},
		{Key: "bin", Value: primitive.Binary{Subtype: 4, Data: []byte("0123456789abcdef")}},
		{Key: "oid", Value: oid},
		{Key: "t", Value: true},
		{Key: "s", Value: "é😀 <&> \"q\"\n"},
		{Key: "lmax", Value: int64(math.MaxInt64)},
	}
}

type inProcCase struct {
	name   string
	update bson.D
	// mongo, when set, is MongoDB's result where FerretDB's differs: the in-process
	// update must give it.
	mongo bson.D
}

// set, unset... build update documents.
func op(name string, fields ...any) bson.D {
	d := bson.D{}
	for i := 0; i+1 < len(fields); i += 2 {
		d = append(d, bson.E{Key: fields[i].(string), Value: fields[i+1]})
	}
	return bson.D{{Key: name, Value: d}}
}

// inProcSame are updates the in-process path must apply exactly as FerretDB does
// (post-image and row text, byte for byte).
var inProcSame = []inProcCase{
	{name: "set existing", update: op("$set", "a", int32(2))},
	{name: "set same value (no-op)", update: op("$set", "a", int32(1), "b", "x")},
	{name: "set int to double", update: op("$set", "a", 1.0)},
	{name: "set long to int", update: op("$set", "l", int32(5))},
	{name: "set string", update: op("$set", "a", "str", "s", "new é")},
	{name: "set new fields (appended sorted)", update: op("$set", "z", int32(1), "y", int32(2), "m", bson.D{{Key: "k", Value: int32(1)}}, "B", nil)},
	{name: "set nested new and existing", update: op("$set", "n.e.g", int32(5), "n.new", true, "q.r.s", int32(1), "n.d", 2.5)},
	{name: "set documents and arrays", update: op("$set", "arr2", bson.A{}, "doc2", bson.D{}, "a", bson.A{int32(1), bson.D{{Key: "b", Value: int32(2)}}, bson.A{}}[:2], "n.e", bson.D{{Key: "h", Value: bson.A{"x", nil}}})},
	{name: "set every type", update: op("$set", "v1", primitive.Timestamp{T: 5, I: 6}, "v2", primitive.Regex{Pattern: "^a", Options: "i"}, "v3", primitive.DateTime(-5), "v4", primitive.Binary{Subtype: 0x80, Data: []byte{1}}, "v5", 1e300, "v6", 5e-324, "v7", int64(math.MinInt64))},
	{name: "set odd names", update: op("$set", "é😀", int32(1), "sp ace", int32(2), "<&>", int32(3), "n.q\"uote", int32(4), "n.back\\slash", int32(5))},
	{name: "set a value over an array", update: op("$set", "arr", "now a string")},
	{name: "unset", update: op("$unset", "b", "", "missing", int32(1), "n.e.f", int32(1), "n.nope.x", int32(1))},
	{name: "unset missing (no-op)", update: op("$unset", "missing", "", "n.missing", "")},
	{name: "unset through a scalar (no-op)", update: op("$unset", "a.b", "")},
	{name: "inc int", update: op("$inc", "a", int32(1))},
	{name: "inc int32 overflow to long", update: op("$inc", "n.c", int32(1))},
	{name: "inc long", update: op("$inc", "l", int32(-10))},
	{name: "inc double", update: op("$inc", "n.d", int32(1), "a", 1.5)},
	{name: "inc int by long", update: op("$inc", "a", int64(1))},
	{name: "inc missing", update: op("$inc", "new", int64(5), "n.new", 2.5)},
	{name: "inc by zero (no-op)", update: op("$inc", "a", int32(0), "l", int64(0))},
	{name: "mul", update: op("$mul", "a", int32(3), "n.d", int32(2), "l", 0.5)},
	{name: "mul int32 overflow to long", update: op("$mul", "n.c", int32(2))},
	{name: "mul missing", update: op("$mul", "m1", int32(2), "m2", int64(2), "m3", 2.5)},
	{name: "min lower", update: op("$min", "a", int32(0), "dt", primitive.DateTime(5))},
	{name: "min higher (no-op)", update: op("$min", "a", int32(5), "b", "y")},
	{name: "min across types", update: op("$min", "a", nil, "b", int32(3))},
	{name: "min missing", update: op("$min", "new", int32(3))},
	{name: "min equal other type (no-op)", update: op("$min", "a", 1.0, "l", int32(5))},
	{name: "max higher", update: op("$max", "a", int64(5), "b", "y")},
	{name: "max across types", update: op("$max", "a", "str", "t", primitive.DateTime(0))},
	{name: "max lower (no-op)", update: op("$max", "n.d", int32(1))},
	{name: "several operators", update: append(append(op("$set", "b", "y", "new", int32(1)), op("$inc", "a", int32(1))...), op("$unset", "t", "")...)},
	{name: "replacement", update: bson.D{{Key: "x", Value: int32(1)}, {Key: "y", Value: bson.D{{Key: "z", Value: "w"}}}}},
	{name: "replacement with the same _id", update: bson.D{{Key: "_id", Value: int64(7)}, {Key: "x", Value: bson.A{}}}},
	{name: "replacement with the same fields (no-op)", update: inProcBase()[1:]},
	// MongoDB's replacement sets an empty timestamp among the first two fields to the
	// current time; FerretDB stores it as is, and so does modify (as it did before).
	{name: "replacement with an empty timestamp", update: bson.D{{Key: "ts", Value: primitive.Timestamp{}}}},
	{name: "set an empty timestamp", update: op("$set", "ts", primitive.Timestamp{})},
}

// inProcMongo are updates where FerretDB v1.24.2 differs from MongoDB: the in-process
// path gives MongoDB's documented result.
var inProcMongo = []inProcCase{
	{
		// MongoDB orders an update's paths part by part (SERVER-3370): "p" < "p-q".
		// FerretDB sorts whole paths ("p-q" < "p.x") and appends p-q first.
		name:   "new fields in MongoDB's path order",
		update: op("$set", "p-q", int32(1), "p.x", int32(2)),
		mongo:  append(inProcBase(), bson.E{Key: "p", Value: bson.D{{Key: "x", Value: int32(2)}}}, bson.E{Key: "p-q", Value: int32(1)}),
	},
}

// inProcFallback are updates the in-process path must leave to FerretDB.
var inProcFallback = []inProcCase{
	{name: "push", update: op("$push", "arr", int32(1))},
	{name: "rename", update: op("$rename", "b", "c")},
	{name: "setOnInsert", update: op("$setOnInsert", "z", int32(1))},
	{name: "bit", update: op("$bit", "a", bson.D{{Key: "and", Value: int32(1)}})},
	{name: "unknown operator", update: op("$nope", "a", int32(1))},
	{name: "conflicting paths", update: op("$set", "n", int32(1), "n.c", int32(2))},
	{name: "conflicting operators", update: append(op("$set", "a", int32(1)), op("$inc", "a", int32(1))...)},
	{name: "array index", update: op("$set", "arr.0", int32(5))},
	{name: "positional", update: op("$set", "arr.$", int32(5))},
	{name: "all positional", update: op("$set", "arr.$[]", int32(5))},
	{name: "set _id", update: op("$set", "_id", int64(7))},
	{name: "set _id part", update: op("$set", "_id.x", int64(7))},
	{name: "empty path part", update: op("$set", "n..c", int32(1))},
	{name: "set -0.0", update: op("$set", "a", math.Copysign(0, -1))},
	{name: "mul to -0.0", update: op("$mul", "n.d", math.Copysign(0, -1))},
	{name: "set NaN", update: op("$set", "a", math.NaN())},
	{name: "mul to infinity", update: op("$mul", "n.d", math.MaxFloat64)},
	{name: "set decimal", update: op("$set", "a", primitive.NewDecimal128(0, 1))},
	{name: "set a nested $ name", update: op("$set", "a", bson.D{{Key: "$x", Value: int32(1)}})},
	{name: "set a nested dotted name", update: op("$set", "a", bson.D{{Key: "x.y", Value: int32(1)}})},
	{name: "set an array in an array", update: op("$set", "a", bson.A{bson.A{int32(1)}})},
	{name: "set a top-level name with a quote", update: op("$set", "q\"uote", int32(1))},
	{name: "set invalid UTF-8", update: op("$set", "a", "\xff")},
	{name: "current timestamp", update: op("$currentDate", "cd", bson.D{{Key: "$type", Value: "timestamp"}})},
	{name: "current date of a bad spec", update: op("$currentDate", "cd", int32(1))},
	{name: "inc by a string", update: op("$inc", "a", "1")},
	{name: "inc long overflow", update: op("$inc", "lmax", int32(1))},
	{name: "inc a string", update: op("$inc", "b", int32(1))},
	{name: "set through a scalar", update: op("$set", "a.b", int32(1))},
	{name: "set through an array", update: op("$set", "arr.x", int32(1))},
	{name: "an operator twice", update: append(op("$set", "a", int32(5)), op("$set", "b", int32(6))...)},
	{name: "empty update", update: bson.D{}},
	{name: "empty operator", update: op("$set")},
	{name: "replacement that changes _id", update: bson.D{{Key: "_id", Value: int64(8)}}},
	{name: "replacement with an _id of another type", update: bson.D{{Key: "_id", Value: int32(7)}}},
	{name: "replacement with _id second", update: bson.D{{Key: "x", Value: int32(1)}, {Key: "_id", Value: int64(7)}}},
	{name: "replacement with an operator", update: bson.D{{Key: "x", Value: int32(1)}, {Key: "$set", Value: bson.D{}}}},
	{name: "replacement with a $ name", update: bson.D{{Key: "x", Value: bson.D{{Key: "$y", Value: int32(1)}}}}},
}

func rawValueOf(t *testing.T, d bson.D) bson.RawValue {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: b}
}

// TestInProcessUpdatesMatchFerretDB is the in-process update's oracle: for each
// update of inProcBase, the workbench (FerretDB's findAndModify on a copy of the row)
// and applyInProcess must give the same post-image and the same row text, byte for
// byte; where FerretDB is not MongoDB, applyInProcess gives MongoDB's result; and
// what modify cannot do as MongoDB does is left to FerretDB.
func TestInProcessUpdatesMatchFerretDB(t *testing.T) {
	f := startFront(t, Config{})
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	n.writeMu.Lock() // the workbench is the write lock holder's
	defer n.writeMu.Unlock()
	ctx := context.Background()
	base, _ := bson.Marshal(inProcBase())
	textBytes, err := sjson.Encode(nil, base)
	if err != nil {
		t.Fatal(err)
	}
	text := string(textBytes)
	id := bson.Raw(base).Lookup("_id")
	none := bson.RawValue{}

	for _, c := range inProcSame {
		u := rawValueOf(t, c.update)
		wbPost, wbText, err := n.be.bench.apply(ctx, text, u, none)
		if err != nil {
			t.Errorf("%s: FerretDB refuses %s: %v", c.name, bson.Raw(u.Value), err)
			continue
		}
		if !inProcessUpdate(u, none) {
			t.Errorf("%s: %s is left to FerretDB", c.name, bson.Raw(u.Value))
			continue
		}
		post, out, ok := applyInProcess(storedRow{text: text}, id, u)
		switch {
		case !ok:
			t.Errorf("%s: applyInProcess refuses %s", c.name, bson.Raw(u.Value))
		case !bytes.Equal(post, wbPost):
			t.Errorf("%s: %s\n in process %s\n FerretDB   %s", c.name, bson.Raw(u.Value), post, wbPost)
		case out != wbText:
			t.Errorf("%s: %s: texts differ\n in process %s\n FerretDB   %s", c.name, bson.Raw(u.Value), out, wbText)
		}
		if noop := bytes.Equal(wbPost, base); noop != containsNoOp(c.name) {
			t.Errorf("%s: no-op %v, the case says otherwise", c.name, noop)
		}
	}

	for _, c := range inProcMongo {
		u := rawValueOf(t, c.update)
		want, _ := bson.Marshal(c.mongo)
		wbPost, _, wbErr := n.be.bench.apply(ctx, text, u, none)
		if wbErr == nil && bytes.Equal(wbPost, want) {
			t.Errorf("%s: FerretDB now gives MongoDB's result %s: move the case to inProcSame", c.name, wbPost)
		}
		var got bson.Raw
		var out string
		ok := false
		if inProcessUpdate(u, none) {
			got, out, ok = applyInProcess(storedRow{text: text}, id, u)
		}
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: %s: in process %s (%v), MongoDB %s", c.name, bson.Raw(u.Value), got, ok, bson.Raw(want))
			continue
		}
		if back, err := sjson.Decode(nil, []byte(out)); err != nil || !bytes.Equal(back, want) {
			t.Errorf("%s: the text %s reads back as %s, %v", c.name, out, bson.Raw(back), err)
		}
	}

	for _, c := range inProcFallback {
		u := rawValueOf(t, c.update)
		if inProcessUpdate(u, none) {
			if post, _, ok := applyInProcess(storedRow{text: text}, id, u); ok {
				t.Errorf("%s: %s is applied in process: %s", c.name, bson.Raw(u.Value), post)
			}
		}
	}

	// $currentDate: the current date, from modify's clock or FerretDB's. Of a dotted
	// path MongoDB sets the nested field; FerretDB refuses it ("invalid key: n.e.f
	// (key must not contain '.' sign)": it sets a top-level field of that name).
	if _, _, err := n.be.bench.apply(ctx, text, rawValueOf(t, op("$currentDate", "n.e.f", true)), none); err == nil {
		t.Error("FerretDB now sets a dotted $currentDate path: compare it with the in-process result")
	}
	for _, spec := range []any{true, false, bson.D{{Key: "$type", Value: "date"}}} {
		u := rawValueOf(t, op("$currentDate", "cd", spec, "n.e.f", spec))
		before := time.Now().Add(-time.Millisecond)
		if !inProcessUpdate(u, none) {
			t.Errorf("$currentDate %v is left to FerretDB", spec)
			continue
		}
		post, out, ok := applyInProcess(storedRow{text: text}, id, u)
		after := time.Now().Add(time.Millisecond)
		if !ok {
			t.Errorf("$currentDate %v: applyInProcess refuses it", spec)
			continue
		}
		for _, path := range []string{"cd", "n.e.f"} {
			v, err := post.LookupErr(strings.Split(path, ".")...)
			if err != nil || v.Type != bson.TypeDateTime || v.Time().Before(before) || v.Time().After(after) {
				t.Errorf("$currentDate %v: %s is %v, want a date between %v and %v", spec, path, v, before, after)
			}
		}
		if back, err := sjson.Decode(nil, []byte(out)); err != nil || !bytes.Equal(back, post) {
			t.Errorf("$currentDate: the text %s reads back as %s, %v", out, bson.Raw(back), err)
		}
	}
}

func containsNoOp(name string) bool { return strings.Contains(name, "(no-op)") }

// TestKeyedUpdatesInProcessThroughTheCommand: an update command by _id of every keyed
// kind (numbers as the front looks them up, ObjectIds and strings as FerretDB did)
// answers n, nModified and write errors as before, logs one oplog entry per document
// changed (none for a no-op or a refused write), stores FerretDB's text of the result,
// and leaves a document whose update breaks a unique index as it was. A document
// updated again takes no workbench round trip at all.
func TestKeyedUpdatesInProcessThroughTheCommand(t *testing.T) {
	dir := t.TempDir()
	f := startFront(t, Config{Dir: dir})
	c := connect(t, f)
	ctx := context.Background()
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"long", "objectId", "string"} {
		t.Run(kind, func(t *testing.T) {
			db := c.Database("app")
			coll := db.Collection("c_" + kind)
			ids := make([]any, 4)
			for i := range ids {
				switch kind {
				case "long":
					ids[i] = int64(i) << 40
				case "objectId":
					ids[i] = primitive.NewObjectID()
				default:
					ids[i] = "id-<" + string(rune('a'+i)) + ">"
				}
			}
			for i := range 3 {
				if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: ids[i]}, {Key: "n", Value: int32(0)}, {Key: "u", Value: int32(i)}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "u", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
				t.Fatal(err)
			}
			run := func(round int32) (bson.Raw, []bson.Raw) {
				start := lastTS(t, c)
				res, err := db.RunCommand(ctx, bson.D{{Key: "update", Value: coll.Name()}, {Key: "ordered", Value: false}, {Key: "updates", Value: bson.A{
					bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: ids[0]}}}, {Key: "u", Value: op("$set", "n", round)}},
					bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: ids[1]}}}, {Key: "u", Value: op("$set", "n", int32(0))}},
					bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: ids[2]}}}, {Key: "u", Value: op("$set", "u", int32(0))}},
					bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: ids[3]}}}, {Key: "u", Value: op("$set", "n", int32(1))}},
				}}}).Raw()
				if len(res) == 0 { // a write error is an error, with its reply
					t.Fatal(err)
				}
				return res, entriesAfter(t, c, start)
			}
			check := func(round int32) {
				res, entries := run(round)
				nMatched, _ := res.Lookup("n").AsInt64OK()
				nModified, _ := res.Lookup("nModified").AsInt64OK()
				werrs, _ := res.Lookup("writeErrors").Array().Values()
				if nMatched != 2 || nModified != 1 || len(werrs) != 1 {
					t.Fatalf("round %d: reply %s, want n 2, nModified 1, one write error", round, res)
				}
				werr := werrs[0].Document()
				if werr.Lookup("index").Int32() != 2 || werr.Lookup("code").Int32() != 11000 {
					t.Errorf("round %d: write error %s, want index 2, code 11000", round, werr)
				}
				var logged []bson.Raw
				for _, e := range entries {
					if e.Lookup("op").StringValue() == "u" {
						logged = append(logged, e)
					}
				}
				if len(logged) != 1 || logged[0].Lookup("o2", "_id").Equal(bson.RawValue{}) {
					t.Fatalf("round %d: oplog entries %v, want one update of %v", round, entries, ids[0])
				}
				var docs []bson.Raw
				cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "u", Value: 1}}))
				if err != nil {
					t.Fatal(err)
				}
				if err := cur.All(ctx, &docs); err != nil {
					t.Fatal(err)
				}
				for i, d := range docs {
					want := bson.D{{Key: "_id", Value: ids[i]}, {Key: "n", Value: int32(0)}, {Key: "u", Value: int32(i)}}
					if i == 0 {
						want[1].Value = round
					}
					if wb, _ := bson.Marshal(want); !bytes.Equal(d, wb) {
						t.Errorf("round %d: stored %s, want %s", round, d, bson.Raw(wb))
					}
				}
				texts := storedRows(t, dir, "app", coll.Name())
				for _, d := range docs {
					text, err := sjson.Encode(nil, d)
					if err != nil || !slices.Contains(texts, string(text)) {
						t.Errorf("round %d: no row holds %s as FerretDB writes it (%v): %v", round, text, err, texts)
					}
				}
			}
			check(1)
			trips := n.be.bench.trips.Load()
			check(2)
			if kind == "long" {
				if more := n.be.bench.trips.Load() - trips; more != 0 {
					t.Errorf("updating documents again took %d workbench round trips, want none", more)
				}
			}
		})
	}
}

// TestInProcessUpdatesBesideReadersByObjectID: finds by ObjectId run without the
// write lock, through FerretDB, beside the in-process rewrites of the same row; each
// must see a whole document, before or after an update, never a mix or nothing.
func TestInProcessUpdatesBesideReadersByObjectID(t *testing.T) {
	f := startFront(t, Config{})
	coll := connect(t, f).Database("app").Collection("c")
	ctx := context.Background()
	oid := primitive.NewObjectID()
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: oid}, {Key: "n", Value: int32(0)}, {Key: "m", Value: int32(0)}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for last := int32(0); ; {
			select {
			case <-done:
				return
			default:
			}
			var d struct{ N, M int32 }
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
				errs <- err
				return
			}
			if d.N != d.M || d.N < last {
				errs <- fmt.Errorf("read n %d, m %d after n %d", d.N, d.M, last)
				return
			}
			last = d.N
		}
	}()
	for i := int32(1); i <= 200; i++ {
		res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, op("$set", "n", i, "m", i))
		if err != nil || res.ModifiedCount != 1 {
			t.Fatalf("update %d: %v, %v", i, res, err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Error(err)
	}
}

// An update that leaves a document as it was writes nothing: the row keeps its text
// and the collection's cached statistics (collStats, dbStats) stay valid, as a mongod
// neither logs nor writes a no-op.
func TestANoOpKeyedUpdateWritesNothing(t *testing.T) {
	f := startFront(t, Config{})
	coll := connect(t, f).Database("app").Collection("c")
	ctx := context.Background()
	n, err := f.primaryNode()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []any{int64(7), primitive.NewObjectID()} {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "n", Value: int32(1)}}); err != nil {
			t.Fatal(err)
		}
		gen := n.be.gens.ofCollection("app.c")
		before := gen()
		res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, op("$set", "n", int32(1)))
		if err != nil {
			t.Fatal(err)
		}
		if res.MatchedCount != 1 || res.ModifiedCount != 0 {
			t.Fatalf("_id %v: matched %d, modified %d; want 1 and 0", id, res.MatchedCount, res.ModifiedCount)
		}
		if after := gen(); after != before {
			t.Errorf("_id %v: a no-op update wrote to the collection (write generation %v -> %v)", id, before, after)
		}
	}
}

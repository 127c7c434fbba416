package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/internal/corpus"
	"github.com/shardlift/shardlift/sandbox"
)

// oplogEntry builds a raw oplog entry at Timestamp(sec, 1).
func oplogEntry(t *testing.T, sec uint32, op, ns string, fields ...bson.E) []byte {
	t.Helper()
	d := bson.D{{Key: "ts", Value: primitive.Timestamp{T: sec, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}}
	if op != "" {
		d = append(d, bson.E{Key: "op", Value: op})
	}
	d = append(d, bson.E{Key: "ns", Value: ns})
	d = append(d, fields...)
	d = append(d, bson.E{Key: "wall", Value: primitive.NewDateTimeFromTime(time.Unix(int64(sec), 0))})
	raw, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func writeOplogFile(t *testing.T, entries ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "oplog.bson")
	var all []byte
	for _, e := range entries {
		all = append(all, e...)
	}
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func entryO(v any) bson.E  { return bson.E{Key: "o", Value: v} }
func entryO2(v any) bson.E { return bson.E{Key: "o2", Value: v} }

// sampleOplog is a small oplog with every kind of entry the counts distinguish.
func sampleOplog(t *testing.T) [][]byte {
	id := func(i int) bson.D { return bson.D{{Key: "_id", Value: int32(i)}} }
	lsid := bson.D{{Key: "id", Value: primitive.Binary{Subtype: 4, Data: make([]byte, 16)}}}
	return [][]byte{
		oplogEntry(t, 1, "n", "", entryO(bson.D{{Key: "msg", Value: "periodic noop"}})),
		oplogEntry(t, 2, "c", "shop.$cmd", entryO(bson.D{{Key: "create", Value: "orders"}})),
		oplogEntry(t, 3, "i", "shop.orders", entryO(bson.D{{Key: "_id", Value: int32(1)}, {Key: "qty", Value: int32(5)}})),
		oplogEntry(t, 4, "i", "shop.orders", entryO(bson.D{{Key: "_id", Value: int32(2)}, {Key: "qty", Value: int32(7)}})),
		oplogEntry(t, 5, "u", "shop.orders", entryO(bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "qty", Value: int32(6)}}}}}}), entryO2(id(1))),
		oplogEntry(t, 6, "d", "shop.orders", entryO(id(2))),
		oplogEntry(t, 7, "i", "shop.orders", entryO(bson.D{{Key: "_id", Value: int32(3)}}), bson.E{Key: "fromMigrate", Value: true}),
		oplogEntry(t, 8, "i", "config.system.sessions", entryO(bson.D{{Key: "_id", Value: int32(9)}})),
		oplogEntry(t, 9, "c", "admin.$cmd", entryO(bson.D{{Key: "applyOps", Value: bson.A{
			bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "shop.orders"}, {Key: "o", Value: bson.D{{Key: "_id", Value: int32(4)}}}},
		}}, {Key: "partialTxn", Value: true}}), bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: int64(1)},
			bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{}}, {Key: "t", Value: int64(-1)}}}),
		oplogEntry(t, 10, "c", "admin.$cmd", entryO(bson.D{{Key: "abortTransaction", Value: int32(1)}}), bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: int64(1)},
			bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{T: 9, I: 1}}, {Key: "t", Value: int64(1)}}}),
	}
}

func TestReplayDryRunCountsAppliedAndSkippedByReason(t *testing.T) {
	path := writeOplogFile(t, sampleOplog(t)...)
	code, out, errOut := runCLI(t, "replay", "--oplog", path, "--dry-run")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"entries read: 10\n",
		"writes applied: 4 (inserts and replacements 2, updates 1, deletes 1)\n",
		"DDL applied: 1\n",
		"transactions committed: 0\n",
		"entries skipped: 4 (no-op 1, fromMigrate 1, internal namespace 1, aborted transaction 1)\n",
		"last entry applied: Timestamp(10, 1)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "nothing is written") {
		t.Errorf("stderr does not say it is a dry run: %q", errOut)
	}
}

func TestReplayMalformedEntryExitsOneWithItsTs(t *testing.T) {
	entries := sampleOplog(t)[:3]
	bad := oplogEntry(t, 42, "", "shop.orders", entryO(bson.D{{Key: "_id", Value: int32(5)}})) // no op
	path := writeOplogFile(t, append(entries, bad)...)
	code, out, errOut := runCLI(t, "replay", "--oplog", path, "--dry-run")
	if code != exitFail {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, errOut)
	}
	if !strings.Contains(errOut, "Timestamp(42, 1)") || !strings.Contains(errOut, `"op"`) {
		t.Errorf("stderr does not name the entry and its field: %q", errOut)
	}
	if !strings.Contains(out, "entries read:") {
		t.Errorf("no counts printed for what came before: %q", out)
	}

	t.Run("truncated file", func(t *testing.T) {
		full := sampleOplog(t)
		last := full[len(full)-1]
		path := writeOplogFile(t, full[0], full[1], last[:len(last)-3])
		code, _, errOut := runCLI(t, "replay", "--oplog", path, "--dry-run")
		if code != exitFail || !strings.Contains(errOut, "truncated") || !strings.Contains(errOut, "Timestamp(2, 1)") {
			t.Errorf("exit %d, stderr %q: want 1 and the truncated entry after Timestamp(2, 1)", code, errOut)
		}
	})
}

func TestReplayUsage(t *testing.T) {
	path := writeOplogFile(t, sampleOplog(t)...)
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"replay"}, "--oplog is required"},
		{[]string{"replay", "--oplog", path}, "--destination is required"},
		{[]string{"replay", "--oplog", path, "--destination", "localhost:99999"}, "from 1 to 65535"},
		{[]string{"replay", "--oplog", path, "--dry-run", "extra"}, `unexpected argument "extra"`},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.say) {
			t.Errorf("shardlift %v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.say)
		}
	}
	code, _, errOut := runCLI(t, "replay", "--oplog", filepath.Join(t.TempDir(), "missing.bson"), "--dry-run")
	if code != exitFail || !strings.Contains(errOut, "missing.bson") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

// Every oplog file of MongoDB's tools' tests goes through decoding, filtering and
// translation; the ones the tools assembled out of ts order are refused as such.
func TestReplayDryRunOfTheCorpus(t *testing.T) {
	dir := corpus.Dir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.bson"))
	if len(files) == 0 {
		t.Skipf("no .bson files in %s", dir)
	}
	for _, f := range files {
		code, out, errOut := runCLI(t, "replay", "--oplog", f, "--dry-run")
		switch {
		case code == exitOK && strings.Contains(out, "entries read: "):
		case code == exitFail && strings.Contains(errOut, "an oplog is in ts order, this file is not"):
		default:
			t.Errorf("%s: exit %d\n%s%s", filepath.Base(f), code, out, errOut)
		}
	}
}

func TestReplayIntoASandboxDestination(t *testing.T) {
	ctx := context.Background()
	dst, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: 2})
	if err != nil {
		t.Fatalf("start the sandbox: %v", err)
	}
	defer dst.Close()
	id := func(i int) bson.D { return bson.D{{Key: "_id", Value: int32(i)}} }
	cmd := func(sec uint32, c bson.D) []byte { return oplogEntry(t, sec, "c", "shop.$cmd", entryO(c)) }
	path := writeOplogFile(t,
		oplogEntry(t, 1, "n", "", entryO(bson.D{{Key: "msg", Value: "periodic noop"}})),
		cmd(2, bson.D{{Key: "create", Value: "orders"}}),
		cmd(3, bson.D{{Key: "createIndexes", Value: "orders"}, {Key: "v", Value: int32(2)},
			{Key: "key", Value: bson.D{{Key: "ref", Value: int32(1)}}}, {Key: "name", Value: "ref_1"}, {Key: "unique", Value: true}}),
		oplogEntry(t, 4, "i", "shop.orders", entryO(bson.D{{Key: "_id", Value: int32(1)}, {Key: "ref", Value: "a"}, {Key: "qty", Value: int32(5)}})),
		oplogEntry(t, 5, "i", "shop.orders", entryO(bson.D{{Key: "_id", Value: int32(2)}, {Key: "ref", Value: "b"}, {Key: "qty", Value: int32(7)}})),
		oplogEntry(t, 6, "u", "shop.orders", entryO(bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{
			{Key: "u", Value: bson.D{{Key: "qty", Value: int32(6)}}}, {Key: "i", Value: bson.D{{Key: "note", Value: "x"}}}}}}), entryO2(id(1))),
		oplogEntry(t, 7, "d", "shop.orders", entryO(id(2))),
		cmd(8, bson.D{{Key: "create", Value: "tmp"}}),
		oplogEntry(t, 9, "i", "shop.tmp", entryO(id(1))),
		cmd(10, bson.D{{Key: "renameCollection", Value: "shop.tmp"}, {Key: "to", Value: "shop.archive"}, {Key: "stayTemp", Value: false}}),
		cmd(11, bson.D{{Key: "create", Value: "scratch"}}),
		cmd(12, bson.D{{Key: "drop", Value: "scratch"}}),
	)
	code, out, errOut := runCLI(t, "replay", "--oplog", path, "--destination", dst.URI())
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// The update inserts a field: two statements (unset it, then set it), so 6 writes.
	for _, want := range []string{"writes applied: 6 ", "DDL applied: 6\n", "built relaxed, restore it: index on shop.orders"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(dst.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	shop := client.Database("shop")
	all := func(coll string) []string {
		cur, err := shop.Collection(coll).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []string
		for cur.Next(ctx) {
			docs = append(docs, cur.Current.String())
		}
		return docs
	}
	want, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(1)}, {Key: "ref", Value: "a"}, {Key: "qty", Value: int32(6)}, {Key: "note", Value: "x"}})
	if got := all("orders"); len(got) != 1 || got[0] != bson.Raw(want).String() {
		t.Errorf("shop.orders holds %v, want [%s]", got, bson.Raw(want))
	}
	if got := all("archive"); len(got) != 1 {
		t.Errorf("shop.archive holds %v, want the renamed document", got)
	}
	names, err := shop.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"tmp", "scratch"} {
		if slices.Contains(names, gone) {
			t.Errorf("shop.%s still exists: %v", gone, names)
		}
	}
	cur, err := shop.Collection("orders").Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for cur.Next(ctx) {
		if cur.Current.Lookup("name").StringValue() == "ref_1" {
			found = true
			if u, ok := cur.Current.Lookup("unique").BooleanOK(); ok && u {
				t.Errorf("index ref_1 built unique during the replay: %s", cur.Current)
			}
		}
	}
	if !found {
		t.Error("index ref_1 not built")
	}
}

func TestReplayIsStrictUnlessToldToTolerateIdempotencyErrors(t *testing.T) {
	// The destination already holds a later state of document 1 (its field a is a
	// number now); the file's update writes into a when it was a document.
	ctx := context.Background()
	dst, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: 1})
	if err != nil {
		t.Fatalf("start the sandbox: %v", err)
	}
	defer dst.Close()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(dst.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	orders := client.Database("shop").Collection("orders")
	if _, err := orders.InsertOne(ctx, bson.D{{Key: "_id", Value: int32(1)}, {Key: "a", Value: int32(5)}}); err != nil {
		t.Fatal(err)
	}
	path := writeOplogFile(t,
		oplogEntry(t, 1, "u", "shop.orders", entryO(bson.D{{Key: "$v", Value: int32(1)}, {Key: "$set", Value: bson.D{{Key: "a.b", Value: int32(1)}}}}),
			entryO2(bson.D{{Key: "_id", Value: int32(1)}})),
		oplogEntry(t, 2, "i", "shop.orders", entryO(bson.D{{Key: "_id", Value: int32(2)}})),
	)
	code, out, errOut := runCLI(t, "replay", "--oplog", path, "--destination", dst.URI())
	if code != exitFail || !strings.Contains(errOut, "Timestamp(1, 1)") || !strings.Contains(out, "idempotency errors tolerated: 0") {
		t.Fatalf("strict replay: exit %d\n%s%s\nwant exit 1 at the update of Timestamp(1, 1)", code, out, errOut)
	}
	if strings.Contains(out, "last entry applied") {
		t.Errorf("the strict replay counts the failed entry as applied:\n%s", out)
	}
	code, out, errOut = runCLI(t, "replay", "--oplog", path, "--destination", dst.URI(), "--tolerate-idempotency-errors")
	if code != exitOK || !strings.Contains(out, "idempotency errors tolerated: 1") {
		t.Fatalf("tolerant replay: exit %d\n%s%s", code, out, errOut)
	}
	if n, _ := orders.CountDocuments(ctx, bson.D{{Key: "_id", Value: int32(2)}}); n != 1 {
		t.Error("the tolerant replay did not apply the entry after the tolerated one")
	}
	_, help, _ := runCLI(t, "replay", "--help")
	if !strings.Contains(help, "strict") || !strings.Contains(help, "--tolerate-idempotency-errors") {
		t.Errorf("replay --help does not say it is strict and how to tolerate:\n%s", help)
	}
}

package replay_test

import (
	"context"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/sandbox"
)

func TestImageIsReadByIDAloneAndMatchedOnTheWholeDocumentKey(t *testing.T) {
	// A filter naming the shard key fields too makes FerretDB scan the collection for
	// every read (the cost grew with the data until replay fell behind); {_id: v} is
	// found by index on every server. The document key is then checked here.
	ctx := context.Background()
	client, commands := monitoredDestination(t)
	coll := client.Database("db").Collection("c")
	if _, err := coll.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: bson.D{{Key: "x", Value: 7}}}, {Key: "v", Value: "a"}},
		bson.D{{Key: "_id", Value: 2}, {Key: "k", Value: bson.D{{Key: "x", Value: 8}}}, {Key: "v", Value: "b"}},
	}); err != nil {
		t.Fatal(err)
	}
	dest := replay.NewMongoDestination(client)
	ns := oplog.Namespace{DB: "db", Coll: "c"}
	key := func(id, x int) bson.Raw {
		raw, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}, {Key: "k.x", Value: x}})
		return raw
	}
	cases := []struct {
		filter bson.Raw
		want   string // v of the document read, "" for none
	}{
		{key(1, 7), "a"},
		{key(2, 8), "b"},
		{key(1, 8), ""}, // _id 1 under another shard key value is another document
		{key(3, 7), ""},
	}
	for _, c := range cases {
		doc, err := dest.Image(ctx, ns, c.filter)
		if err != nil {
			t.Fatalf("Image(%s): %v", c.filter, err)
		}
		got := ""
		if doc != nil {
			got = doc.Lookup("v").StringValue()
		}
		if got != c.want {
			t.Errorf("Image(%s) read %q, want %q", c.filter, got, c.want)
		}
	}
	var filters []bson.Raw
	for _, cmd := range commands("find") {
		filters = append(filters, cmd.Lookup("filter").Document())
	}
	if len(filters) != len(cases) {
		t.Fatalf("%d finds for %d reads", len(filters), len(cases))
	}
	for i, f := range filters {
		elems, _ := f.Elements()
		if len(elems) != 1 || elems[0].Key() != "_id" || !elems[0].Value().Equal(cases[i].filter.Lookup("_id")) {
			t.Errorf("read %d queried %s, want {_id: %s} alone", i, f, cases[i].filter.Lookup("_id"))
		}
	}
}

// monitoredDestination starts a sandbox destination and connects to it; commands
// returns the commands of one name the client has sent so far.
func monitoredDestination(t *testing.T) (*mongo.Client, func(name string) []bson.Raw) {
	t.Helper()
	ctx := context.Background()
	dst, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: 2})
	if err != nil {
		t.Fatalf("start the sandbox: %v", err)
	}
	t.Cleanup(func() { dst.Close() })
	var mu sync.Mutex
	sent := map[string][]bson.Raw{}
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		sent[e.CommandName] = append(sent[e.CommandName], append(bson.Raw(nil), e.Command...))
		mu.Unlock()
	}}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(dst.URI()).SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client, func(name string) []bson.Raw {
		mu.Lock()
		defer mu.Unlock()
		return append([]bson.Raw(nil), sent[name]...)
	}
}

func TestReplayWritesBypassDocumentValidationAsTheCopyDoes(t *testing.T) {
	// A document the source accepted before its validator changed (or under
	// validationLevel moderate) must reach the destination all the same: the copy
	// inserts with bypassDocumentValidation, and so must every replayed write.
	ctx := context.Background()
	client, commands := monitoredDestination(t)
	ns := oplog.Namespace{DB: "db", Coll: "c"}
	raw := func(d bson.D) bson.Raw {
		b, _ := bson.Marshal(d)
		return b
	}
	id := func(i int) bson.Raw { return raw(bson.D{{Key: "_id", Value: i}}) }
	writes := []oplog.Write{
		{Kind: oplog.InsertReplace, NS: ns, Filter: id(1), Replacement: raw(bson.D{{Key: "_id", Value: 1}, {Key: "qty", Value: 1}}), Upsert: true},
		{Kind: oplog.Update, NS: ns, Filter: id(1), Update: raw(bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: 2}}}})},
		{Kind: oplog.Delete, NS: ns, Filter: id(2)},
	}
	if n, err := replay.NewMongoDestination(client).Write(ctx, ns, writes); err != nil || n != len(writes) {
		t.Fatalf("Write: %d applied, %v", n, err)
	}
	updates := commands("update")
	if len(updates) == 0 {
		t.Fatal("no update command was sent")
	}
	for _, cmd := range updates {
		if b, ok := cmd.Lookup("bypassDocumentValidation").BooleanOK(); !ok || !b {
			t.Errorf("update sent without bypassDocumentValidation: %s", cmd)
		}
	}
	var got struct {
		Qty int `bson:"qty"`
	}
	if err := client.Database("db").Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&got); err != nil || got.Qty != 2 {
		t.Fatalf("document after the writes: %+v, %v", got, err)
	}
}

func TestDestinationTellsItsDocumentsAndTheUpdateFormsItTakes(t *testing.T) {
	ctx := context.Background()
	client, _ := monitoredDestination(t)
	ns := oplog.Namespace{DB: "db", Coll: "c"}
	if _, err := client.Database("db").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: 5}}); err != nil {
		t.Fatal(err)
	}
	dest := replay.NewMongoDestination(client)
	id := func(v int) bson.RawValue {
		_, raw, _ := bson.MarshalValue(int32(v))
		return bson.RawValue{Type: bson.TypeInt32, Value: raw}
	}
	for v, want := range map[int]bool{1: true, 2: false} {
		if got, err := dest.HoldsID(ctx, ns, id(v)); err != nil || got != want {
			t.Errorf("HoldsID(%d) = %v, %v; want %v", v, got, err, want)
		}
	}
	set, _ := bson.Marshal(bson.D{{Key: "$set", Value: bson.D{{Key: "k.x", Value: 1}}}})
	if err := dest.AcceptsUpdate(ctx, ns, oplog.Write{Kind: oplog.Update, NS: ns, Update: set}); err != nil {
		t.Errorf("a $set update was refused: %v", err)
	}
	stage, _ := bson.Marshal(bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: bson.D{{Key: "$literal", Value: 1}}}}}})
	if err := dest.AcceptsUpdate(ctx, ns, oplog.Write{Kind: oplog.Update, NS: ns, Pipeline: []bson.Raw{stage}}); err == nil {
		t.Error("the sandbox (FerretDB) runs no pipeline updates, yet one was accepted")
	}
	var got bson.M
	if err := client.Database("db").Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&got); err != nil || got["k"] != int32(5) {
		t.Errorf("the checks changed the document: %v, %v", got, err)
	}
}

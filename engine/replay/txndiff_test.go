package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/internal/corpus"
	"github.com/shardlift/shardlift/sandbox"
)

// An update inside a transaction that only a pipeline reproduces reaches a
// destination without pipeline updates (the sandbox's FerretDB) as its diff, like a
// plain update does: the transactions are the corpus's authentic entries, with the
// inner $set turned into such a $v: 2 diff.
func TestPipelineUpdateInsideATransactionIsAppliedFromItsDiff(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sandbox cluster")
	}
	data, err := os.ReadFile(filepath.Join(corpus.Dir(t), "txn_oplog_entries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]struct {
		Ops []json.RawMessage `json:"ops"`
		NS  string            `json:"ns"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dst, err := sandbox.Start(ctx, "destination", sandbox.Options{Shards: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	client := connect(t, dst.URI())
	// The inserted fields are not in the order a $set would append them in.
	diff := bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{
		{Key: "u", Value: bson.D{{Key: "x", Value: 1}}},
		{Key: "i", Value: bson.D{{Key: "z", Value: 1}, {Key: "b", Value: 2}}},
	}}}
	want, _ := bson.Marshal(bson.D{{Key: "_id", Value: 0}, {Key: "x", Value: 1}, {Key: "z", Value: 1}, {Key: "b", Value: 2}})
	// An unprepared transaction, a prepared one with its commit, and a plain applyOps.
	for _, name := range []string{"small, unprepared", "small, prepared, committed", "applyops not transaction"} {
		c, ok := cases[name]
		if !ok {
			t.Fatalf("the corpus has no case %q", name)
		}
		var stream bytes.Buffer
		updates := 0
		for _, op := range c.Ops {
			var e bson.D
			if err := bson.UnmarshalExtJSON(op, true, &e); err != nil {
				t.Fatal(err)
			}
			updates += withDiffUpdates(e, diff)
			raw, err := bson.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			stream.Write(raw)
		}
		if updates != 1 {
			t.Fatalf("%s: %d inner updates rewritten, want 1", name, updates)
		}
		ddl := replay.NewDDLOnce([]string{"s0"}, replay.NewMongoDDL(client, nil), nil)
		dctx, stopDDL := context.WithCancel(ctx)
		ddlDone := make(chan struct{})
		go func() { defer close(ddlDone); ddl.Run(dctx) }()
		s, err := replay.New(replay.Config{Shard: "s0", Source: replay.NewReaderSource(&stream), Destination: replay.NewMongoDestination(client), DDL: ddl})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Run(ctx)
		stopDDL()
		<-ddlDone
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		db, coll, _ := bytes.Cut([]byte(c.NS), []byte("."))
		cur, err := client.Database(string(db)).Collection(string(coll)).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var got []bson.Raw
		for cur.Next(ctx) {
			got = append(got, bson.Raw(bytes.Clone(cur.Current)))
		}
		if len(got) != 1 || !bytes.Equal(got[0], want) {
			t.Errorf("%s: %s holds %v, want [%s]", name, c.NS, got, bson.Raw(want))
		}
	}
}

// withDiffUpdates replaces the o of every update inside an applyOps of e by diff, and
// returns how many it replaced.
func withDiffUpdates(e bson.D, diff bson.D) int {
	n := 0
	for i := range e {
		if e[i].Key != "o" {
			continue
		}
		o, ok := e[i].Value.(bson.D)
		if !ok {
			continue
		}
		for j := range o {
			ops, ok := o[j].Value.(bson.A)
			if o[j].Key != "applyOps" || !ok {
				continue
			}
			for _, op := range ops {
				inner, ok := op.(bson.D)
				if !ok || !isUpdate(inner) {
					continue
				}
				for k := range inner {
					if inner[k].Key == "o" {
						inner[k].Value = diff
						n++
					}
				}
			}
		}
	}
	return n
}

func isUpdate(op bson.D) bool {
	for _, f := range op {
		if f.Key == "op" && f.Value == "u" {
			return true
		}
	}
	return false
}

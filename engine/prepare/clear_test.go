package prepare_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// A shard's restart clears its ranges with one deleteMany per owned range of each
// ranged collection, without reading the collection, and deletes exactly what the
// shard owns: documents whose shard key is null, missing, or of another type than
// the chunk bounds' included (a query's $gt and $lt compare within one type).
func TestClearShardDeletesEachRangeWithOneCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts sandbox clusters")
	}
	ctx := context.Background()
	sb := seededPair(t, "8.0", seed.Options{Docs: 600, Chunks: 60}, rand.New(rand.NewPCG(3, 17)))
	dst, srcClient, plan := sb.dst, sb.srcClient, sb.plan
	client, _ := countingClient(t, dst.URI())
	if err := prepare.Prepare(ctx, client, plan, nil, nil, nil); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	// The destination holds the source's documents of the ranged collections, and
	// documents whose keys are of every type a shard key meets.
	odd := []any{nil, int32(-5), 7.5, "", "zzzz", primitive.NewObjectID(), true, time.Unix(1e9, 0), bson.D{{Key: "a", Value: 1}}, primitive.Timestamp{T: 5}}
	ranged := map[string]bool{}
	for _, c := range plan.Collections {
		if !c.Sharded || c.Pattern.IsHashed() {
			continue
		}
		ranged[c.NS()] = true
		raws, err := all(ctx, srcClient.Database(c.DB).Collection(c.Name))
		if err != nil {
			t.Fatal(err)
		}
		var docs []any
		for _, d := range raws {
			docs = append(docs, d)
		}
		fields := c.Pattern.Fields()
		for i, v := range odd {
			d := bson.D{{Key: "_id", Value: fmt.Sprintf("odd-%d", i)}}
			for _, f := range fields {
				if f != "_id" {
					d = append(d, bson.E{Key: f, Value: v})
				}
			}
			docs = append(docs, d)
		}
		docs = append(docs, bson.D{{Key: "_id", Value: "odd-missing"}})
		if _, err := client.Database(c.DB).Collection(c.Name).InsertMany(ctx, docs); err != nil {
			t.Fatalf("insert into %s: %v", c.NS(), err)
		}
	}
	if len(ranged) < 2 {
		t.Fatalf("the seed has %d ranged collections, want 2 or more", len(ranged))
	}
	for _, sp := range plan.Shards {
		counter := map[string]int{}
		opts, err := topology.Endpoint{URI: dst.URI(), Timeout: time.Minute}.ClientOptions()
		if err != nil {
			t.Fatal(err)
		}
		opts.SetMonitor(&event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
			coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
			counter[e.CommandName+" "+e.DatabaseName+"."+coll]++
		}})
		c, err := mongo.Connect(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		before := map[string][]bson.Raw{}
		for _, n := range sp.Namespaces {
			if ranged[n.NS()] {
				if before[n.NS()], err = all(ctx, client.Database(n.DB).Collection(n.Name)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := prepare.ClearShard(ctx, c, plan, sp.Source, nil); err != nil {
			t.Fatalf("ClearShard %s: %v", sp.Source, err)
		}
		c.Disconnect(ctx)
		for _, n := range sp.Namespaces {
			if !ranged[n.NS()] {
				continue
			}
			if got := counter["delete "+n.NS()]; got != n.Ranges.Len() {
				t.Errorf("%s of %s: %d delete commands for %d ranges", n.NS(), sp.Source, got, n.Ranges.Len())
			}
			if got := counter["find "+n.NS()] + counter["aggregate "+n.NS()]; got != 0 {
				t.Errorf("%s of %s: read %d times to clear it", n.NS(), sp.Source, got)
			}
			after, err := all(ctx, client.Database(n.DB).Collection(n.Name))
			if err != nil {
				t.Fatal(err)
			}
			left := map[string]bool{}
			for _, d := range after {
				left[d.Lookup("_id").String()] = true
			}
			for _, d := range before[n.NS()] {
				owned, _, err := n.Owns(d, nil)
				if err != nil {
					t.Fatal(err)
				}
				if id := d.Lookup("_id").String(); owned == left[id] {
					t.Errorf("%s, clearing %s: document %s (owned: %v) is there: %v", n.NS(), sp.Source, d, owned, left[id])
				}
			}
		}
	}
}

// all reads every document of a collection.
func all(ctx context.Context, c *mongo.Collection) ([]bson.Raw, error) {
	cur, err := c.Find(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, bson.Raw(append([]byte(nil), cur.Current...)))
	}
	return out, cur.Err()
}

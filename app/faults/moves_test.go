package faults_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/app/faults"
)

// movedChunk is a chunk of a source collection and the shard a DBA moves it to.
type movedChunk struct {
	ns       string
	min, max bson.Raw
	from, to string
}

// chunkToMove is the first chunk of ns (5.0+ config.chunks, keyed by uuid) and a
// shard that does not hold it.
func (e *env) chunkToMove(ns string) movedChunk {
	e.t.Helper()
	var coll struct {
		UUID primitive.Binary `bson:"uuid"`
	}
	if err := e.srcC.Database("config").Collection("collections").FindOne(e.ctx, bson.D{{Key: "_id", Value: ns}}).Decode(&coll); err != nil {
		e.t.Fatalf("config.collections %s: %v", ns, err)
	}
	var chunk struct {
		Min   bson.Raw `bson:"min"`
		Max   bson.Raw `bson:"max"`
		Shard string   `bson:"shard"`
	}
	if err := e.srcC.Database("config").Collection("chunks").FindOne(e.ctx, bson.D{{Key: "uuid", Value: coll.UUID}}).Decode(&chunk); err != nil {
		e.t.Fatalf("config.chunks of %s: %v", ns, err)
	}
	for _, s := range e.src.Shards() {
		if s.Name != chunk.Shard {
			return movedChunk{ns: ns, min: chunk.Min, max: chunk.Max, from: chunk.Shard, to: s.Name}
		}
	}
	e.t.Fatal("the source has one shard")
	return movedChunk{}
}

// 14. A DBA moves a chunk by hand (the balancer is off) while the migration copies:
// shardlift is killed (-9) while the moveChunk runs, the move finishes while it is
// down, and the resumed migration must find it (the shards it touched copy again,
// their rows say why) and end with nothing lost.
func chunkMoveKilled(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	ch := e.chunkToMove("shop.orders")
	e.start()
	// A shard that recorded its T0 saved what it owned then: the move changes it.
	s := e.await("a shard past its T0", 5*time.Minute, func(s faults.Status) bool {
		return slices.ContainsFunc(s.Shards, func(sh faults.Shard) bool { return sh.Phase != "pending" })
	})
	moved := make(chan error, 1)
	go func() {
		moved <- e.srcC.Database("admin").RunCommand(e.ctx, bson.D{{Key: "moveChunk", Value: ch.ns},
			{Key: "bounds", Value: bson.A{ch.min, ch.max}}, {Key: "to", Value: ch.to}}).Err()
	}()
	e.kill(fmt.Sprintf("while a moveChunk of %s [%s, %s) from %s to %s runs, at %s", ch.ns, ch.min, ch.max, ch.from, ch.to, s.Phases()))
	if err := <-moved; err != nil {
		t.Fatalf("moveChunk: %v", err)
	}
	resumed := time.Now()
	e.start()
	named := map[string]string{}
	e.await("in sync after the move", 5*time.Minute, func(s faults.Status) bool {
		for _, sh := range s.Shards {
			if sh.Moved != "" && named[sh.Name] == "" {
				named[sh.Name] = sh.Moved
			}
		}
		e.neverFailed(s)
		return s.State == "ready" && allSynced(s)
	})
	if named[ch.from] == "" || named[ch.to] == "" || !strings.Contains(named[ch.to], "shop.orders") {
		t.Errorf("the rows of %s and %s never named the move: %v", ch.from, ch.to, named)
	}
	e.finish()
	row.Converge = time.Since(resumed)
	row.Notes = fmt.Sprintf("killed during %s while moving a chunk of %s from %s to %s; resumed, rows said %q", momentNames[momentOf(s)], ch.ns, ch.from, ch.to, named[ch.to])
	t.Log(row.Notes)
	e.verify(row)
}

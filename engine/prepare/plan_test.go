package prepare

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
)

func raw(t testing.TB, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key(t testing.TB, field string, v any) shardkey.Key {
	return shardkey.Key(raw(t, bson.D{{Key: field, Value: v}}))
}

// clusters is a two-shard source and destination: app.users sharded on region
// (s0 owns [MinKey, "m"), s1 owns ["m", MaxKey)), app.logs capped and app.v a view
// in database app (primary s1), app.ts a time-series collection.
func clusters(t testing.TB) (*topology.Cluster, *topology.Cluster) {
	chunk := func(lo, hi any, shard string) topology.Chunk {
		return topology.Chunk{Min: raw(t, bson.D{{Key: "region", Value: lo}}), Max: raw(t, bson.D{{Key: "region", Value: hi}}), Shard: shard}
	}
	src := &topology.Cluster{
		Kind:   topology.KindMongos,
		Shards: []topology.Shard{{Name: "s0"}, {Name: "s1"}},
		Databases: []topology.Database{
			{Name: "app", Primary: "s1"}, {Name: "config", Primary: "config"},
		},
		Collections: []topology.Collection{{
			Namespace: "app.users", Key: bson.D{{Key: "region", Value: 1}}, Unique: true,
			Chunks: []topology.Chunk{chunk("m", primitive.MaxKey{}, "s1"), chunk(primitive.MinKey{}, "m", "s0")},
		}},
		Namespaces: []topology.Namespace{
			{DB: "app", Collection: "users", Type: "collection", Sharded: true, Count: 100, Size: 10000, SizeKnown: true, ShardSizes: map[string]int64{"s0": 4000, "s1": 6000}},
			{DB: "app", Collection: "logs", Type: "collection", Capped: true, Count: 10, Size: 500, SizeKnown: true,
				Options: raw(t, bson.D{{Key: "capped", Value: true}, {Key: "size", Value: 4096}})},
			{DB: "app", Collection: "v", Type: "view", Options: raw(t, bson.D{{Key: "viewOn", Value: "users"}, {Key: "pipeline", Value: bson.A{}}})},
			{DB: "app", Collection: "ts", Type: "timeseries"},
		},
	}
	dst := &topology.Cluster{Kind: topology.KindMongos, Shards: []topology.Shard{{Name: "d0"}, {Name: "d1"}}}
	return src, dst
}

func TestPlanPairsShardsAndAssignsEachNamespaceToItsOwners(t *testing.T) {
	src, dst := clusters(t)
	p, err := NewPlan(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if p.Twin("s0") != "d0" || p.Twin("s1") != "d1" {
		t.Fatalf("twins s0->%q s1->%q, want d0 and d1 (listShards order)", p.Twin("s0"), p.Twin("s1"))
	}
	if len(p.Databases) != 1 || p.Databases[0] != (Database{Name: "app", SourcePrimary: "s1", Primary: "d1"}) {
		t.Fatalf("databases %+v, want app with its primary s1 -> d1 (config left out)", p.Databases)
	}
	if len(p.Collections) != 4 {
		t.Fatalf("%d collections in the plan, want all 4 namespaces", len(p.Collections))
	}
	s0, _ := p.Shard("s0")
	s1, _ := p.Shard("s1")
	if len(s0.Namespaces) != 1 || s0.Namespaces[0].NS() != "app.users" || s0.Namespaces[0].Bytes != 4000 || s0.Namespaces[0].Docs != 40 {
		t.Fatalf("s0 plan %+v, want app.users with 4000 bytes and 40 docs", s0.Namespaces)
	}
	if len(s1.Namespaces) != 2 || s1.Namespaces[0].NS() != "app.users" || s1.Namespaces[1].NS() != "app.logs" || !s1.Namespaces[1].Capped {
		t.Fatalf("s1 plan %v, want app.users (6000 bytes) before capped app.logs (500 bytes)", s1.Namespaces)
	}
	if s1.Namespaces[1].Ranges != nil {
		t.Fatal("an unsharded collection got ranges: every document on its primary is owned")
	}
	users := s0.Namespaces[0]
	for _, c := range []struct {
		region any
		want   bool
	}{{"a", true}, {"l", true}, {"m", false}, {"z", false}, {5, true}, {primitive.NewObjectID(), false}} {
		owned, _, err := users.Owns(raw(t, bson.D{{Key: "_id", Value: 1}, {Key: "region", Value: c.region}}), nil)
		if err != nil || owned != c.want {
			t.Errorf("s0 owns region %v: %v (%v), want %v", c.region, owned, err, c.want)
		}
	}
	if !users.Unique || users.Chunks[0].Shard != "s0" {
		t.Fatalf("app.users lost its unique flag or its chunks are not sorted by min: %+v", users.Collection)
	}
}

func TestPlanRefusesWhatItCannotMigrateCompletely(t *testing.T) {
	for name, change := range map[string]func(src, dst *topology.Cluster){
		"shard counts differ": func(_, dst *topology.Cluster) { dst.Shards = dst.Shards[:1] },
		"chunks unreadable": func(src, _ *topology.Cluster) {
			src.Problems = append(src.Problems, topology.Problem{Part: topology.PartChunks, Err: errors.New("unauthorized")})
		},
		"chunks leave a gap": func(src, _ *topology.Cluster) { src.Collections[0].Chunks = src.Collections[0].Chunks[:1] },
		"database unknown": func(src, _ *topology.Cluster) {
			src.Namespaces = append(src.Namespaces, topology.Namespace{DB: "other", Collection: "c", Type: "collection"})
		},
		"chunk on an unknown shard": func(src, _ *topology.Cluster) { src.Collections[0].Chunks[0].Shard = "s9" },
	} {
		t.Run(name, func(t *testing.T) {
			src, dst := clusters(t)
			change(src, dst)
			if _, err := NewPlan(src, dst); err == nil {
				t.Fatal("NewPlan accepted it")
			}
		})
	}
}

func TestPrepareRefusesTimeSeriesNamingThem(t *testing.T) {
	src, dst := clusters(t)
	p, err := NewPlan(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	// Refused before any command is sent: the nil client is never used.
	err = Prepare(context.Background(), nil, p, nil, nil, nil)
	if !errors.Is(err, ErrUnsupportedNamespace) || !strings.Contains(err.Error(), "app.ts (timeseries)") {
		t.Fatalf("Prepare = %v, want a refusal naming app.ts", err)
	}
}

// Placement moves each range to the twin of its source owner: from 6.0 by
// moveRange on the destination's chunks as they are, before by splitting first.
func TestPlacementMovesEachRangeToTheTwin(t *testing.T) {
	hk := func(v any) shardkey.Key { return key(t, "h", v) }
	minK, maxK := hk(primitive.MinKey{}), hk(primitive.MaxKey{})
	src := []shardkey.Chunk{
		{Min: minK, Max: hk(int64(-100)), Shard: "s0"},
		{Min: hk(int64(-100)), Max: hk(int64(0)), Shard: "s1"},
		{Min: hk(int64(0)), Max: hk(int64(100)), Shard: "s0"},
		{Min: hk(int64(100)), Max: maxK, Shard: "s1"},
	}
	srcMap, err := shardkey.NewChunkMap(src)
	if err != nil {
		t.Fatal(err)
	}
	// What shardCollection made on an empty hashed collection: two chunks split at 0.
	dst := []shardkey.Chunk{{Min: minK, Max: hk(int64(0)), Shard: "d0"}, {Min: hk(int64(0)), Max: maxK, Shard: "d1"}}
	srcColl := &Collection{DB: "app", Name: "c", Chunks: src, chunkMap: srcMap}
	bounds := placementBounds(srcColl, nil)
	twin := map[string]string{"s0": "d0", "s1": "d1"}
	runs, err := ownerRuns(srcColl, bounds, func(s string) string { return twin[s] })
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 || runs[1].Shard != "d1" || runs[2].Shard != "d0" {
		t.Fatalf("runs %+v, want four, alternating d0 and d1", runs)
	}
	movesOn := func(dst []shardkey.Chunk) []move {
		var out []move
		for _, run := range runs {
			out = append(out, misplaced(run, dst)...)
		}
		return out
	}
	wantMoves := func(how string, moves []move) {
		t.Helper()
		if len(moves) != 2 || moves[0].To != "d1" || moves[0].From != "d0" || shardkey.CompareKeys(moves[0].Min, hk(int64(-100))) != 0 ||
			shardkey.CompareKeys(moves[0].Max, hk(int64(0))) != 0 || moves[1].To != "d0" || shardkey.CompareKeys(moves[1].Min, hk(int64(0))) != 0 ||
			shardkey.CompareKeys(moves[1].Max, hk(int64(100))) != 0 {
			t.Fatalf("%s: moves %+v, want [-100,0) d0->d1 and [0,100) d1->d0", how, moves)
		}
	}
	// From 6.0 moveRange moves the parts of the initial chunks as they are.
	wantMoves("moveRange", movesOn(dst))

	// Before, the destination is split first and each misplaced chunk moves.
	splits := missingSplits(bounds, dst)
	if len(splits) != 2 || shardkey.CompareKeys(splits[0], hk(int64(-100))) != 0 || shardkey.CompareKeys(splits[1], hk(int64(100))) != 0 {
		t.Fatalf("splits %v, want -100 and 100 (0 is a boundary already)", splits)
	}
	split := []shardkey.Chunk{
		{Min: minK, Max: hk(int64(-100)), Shard: "d0"},
		{Min: hk(int64(-100)), Max: hk(int64(0)), Shard: "d0"},
		{Min: hk(int64(0)), Max: hk(int64(100)), Shard: "d1"},
		{Min: hk(int64(100)), Max: maxK, Shard: "d1"},
	}
	if left := missingSplits(bounds, split); len(left) != 0 {
		t.Fatalf("splits still missing after splitting: %v", left)
	}
	wantMoves("moveChunk", movesOn(split))
	placed := []shardkey.Chunk{
		{Min: minK, Max: hk(int64(-100)), Shard: "d0"},
		{Min: hk(int64(-100)), Max: hk(int64(0)), Shard: "d1"},
		{Min: hk(int64(0)), Max: hk(int64(100)), Shard: "d0"},
		{Min: hk(int64(100)), Max: maxK, Shard: "d1"},
	}
	if left := movesOn(placed); len(left) != 0 {
		t.Fatalf("moves left once placed: %+v", left)
	}
}

// Placement splits the destination only where the source's owning shard changes
// (and at zone bounds): 1,000 source chunks in three runs cost two splits, and a
// zone range inside a run two more.
func TestPlacementSplitsOnlyWhereTheOwnerChanges(t *testing.T) {
	k := func(v any) shardkey.Key { return key(t, "sku", v) }
	var src []shardkey.Chunk
	for i := range 1000 {
		owner := "s0"
		if i >= 400 && i < 700 {
			owner = "s1"
		}
		lo, hi := k(int64(i)), k(int64(i+1))
		if i == 0 {
			lo = k(primitive.MinKey{})
		}
		if i == 999 {
			hi = k(primitive.MaxKey{})
		}
		src = append(src, shardkey.Chunk{Min: lo, Max: hi, Shard: owner})
	}
	c := &Collection{DB: "app", Name: "c", Chunks: src}
	zones := []topology.ZoneRange{
		{Namespace: "app.c", Min: bson.Raw(k(int64(100))), Max: bson.Raw(k(int64(200))), Zone: "z"},
		{Namespace: "app.other", Min: bson.Raw(k(int64(300))), Max: bson.Raw(k(int64(350))), Zone: "z"},
	}
	bounds := placementBounds(c, zones)
	want := []int64{100, 200, 400, 700}
	if len(bounds) != len(want) {
		t.Fatalf("bounds %v, want %v", bounds, want)
	}
	for i, w := range want {
		if shardkey.CompareKeys(bounds[i], k(w)) != 0 {
			t.Fatalf("bound %d is %s, want %d", i, bounds[i], w)
		}
	}
	dst := []shardkey.Chunk{{Min: k(primitive.MinKey{}), Max: k(primitive.MaxKey{}), Shard: "d0"}}
	if splits := missingSplits(bounds, dst); len(splits) != 4 {
		t.Fatalf("splits %v, want the 4 bounds", splits)
	}
}

func TestDefaultCollationComesFromListCollectionsOrConfigAndReachesTheDestination(t *testing.T) {
	fr := raw(t, bson.D{{Key: "locale", Value: "fr"}, {Key: "strength", Value: int32(2)}})
	src, dst := clusters(t)
	// app.users: its default collation in config.collections only (sharded after the
	// inventory listed it); app.notes: in listCollections' options.
	src.Collections[0].DefaultCollation = fr
	src.Namespaces[0].Options = nil
	src.Namespaces = append(src.Namespaces, topology.Namespace{DB: "app", Collection: "notes", Type: "collection",
		Options: raw(t, bson.D{{Key: "collation", Value: fr}})})
	p, err := NewPlan(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"app.users", "app.notes"} {
		c, _ := p.Collection(ns)
		if !bytes.Equal(c.DefaultCollation(), fr) {
			t.Errorf("%s: default collation %s, want %s", ns, c.DefaultCollation(), fr)
		}
		cmd, err := createCommand(c, c.Options)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range cmd {
			if e.Key == "collation" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: create %v, want it with the default collation once", ns, cmd)
		}
	}
	if c, _ := p.Collection("app.logs"); c.DefaultCollation() != nil {
		t.Errorf("app.logs has the default collation %s, want none", c.DefaultCollation())
	}
}

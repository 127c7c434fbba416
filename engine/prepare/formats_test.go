package prepare

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/fakemongos"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// The plan of what every version's metadata holds (internal/fakemongos.Cluster):
// MongoDB's own config.system.sessions and stored JavaScript are not in it, a
// dropped collection is not in it, 8.0's tracked unsharded collection is an
// unsharded collection on the shard that holds it, and each shard's zones and
// the zone ranges go with it.
func TestPlanOfEveryVersionsMetadata(t *testing.T) {
	for _, version := range fakemongos.Versions {
		t.Run(version, func(t *testing.T) {
			src, _ := discover(t, fakemongos.Cluster(version))
			dst, _ := discover(t, destination(version, "rs0", "rs1"))
			p, err := NewPlan(src, dst)
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			first, second := fakemongos.ShardNames(version)
			var nss []string
			for _, c := range p.Collections {
				nss = append(nss, c.NS())
			}
			want := []string{"shop.bigorders", "shop.customers", "shop.orders"}
			if version >= "8.0" {
				want = []string{"shop.bigorders", "shop.customers", "shop.events", "shop.orders"}
			}
			if !slices.Equal(nss, want) {
				t.Fatalf("plan collections %v, want %v", nss, want)
			}
			orders, _ := p.Collection("shop.orders")
			if !orders.Sharded || !orders.NoBalance || len(orders.Chunks) != 2 {
				t.Errorf("shop.orders: sharded %v, noBalance %v, %d chunks", orders.Sharded, orders.NoBalance, len(orders.Chunks))
			}
			if customers, _ := p.Collection("shop.customers"); customers.Sharded || customers.SourcePrimary != first {
				t.Errorf("shop.customers: sharded %v on %s, want unsharded on %s", customers.Sharded, customers.SourcePrimary, first)
			}
			if version >= "8.0" {
				events, _ := p.Collection("shop.events")
				if events.Sharded || events.SourcePrimary != second {
					t.Errorf("shop.events: sharded %v on %s, want unsharded on %s", events.Sharded, events.SourcePrimary, second)
				}
				sp, _ := p.Shard(second)
				if !slices.ContainsFunc(sp.Namespaces, func(n ShardNamespace) bool { return n.NS() == "shop.events" && n.Ranges == nil }) {
					t.Errorf("shard %s does not copy shop.events whole: %+v", second, sp.Namespaces)
				}
			}
			if p.Twin(first) != "rs0" || p.Twin(second) != "rs1" {
				t.Errorf("twins %s->%s, %s->%s", first, p.Twin(first), second, p.Twin(second))
			}
			if sp, _ := p.Shard(first); !slices.Equal(sp.Zones, []string{fakemongos.ZoneFirst}) {
				t.Errorf("zones of %s: %v", first, sp.Zones)
			}
			if len(p.Zones) != 2 || p.Zones[0].Namespace != "shop.orders" {
				t.Errorf("zone ranges %+v", p.Zones)
			}
		})
	}
}

// Whatever discovery hands it, the plan never holds MongoDB's own namespaces:
// config.system.sessions is sharded on every cluster since 3.6 and its database
// is in no config.databases.
func TestPlanLeavesOutInternalNamespaces(t *testing.T) {
	src, dst := clusters(t)
	sessions := topology.Collection{Namespace: "config.system.sessions", Key: bson.D{{Key: "_id", Value: 1}},
		Chunks: []topology.Chunk{{Min: raw(t, bson.D{{Key: "_id", Value: primitive.MinKey{}}}), Max: raw(t, bson.D{{Key: "_id", Value: primitive.MaxKey{}}}), Shard: "s0"}}}
	src.Collections = append(src.Collections, sessions)
	for _, ns := range []string{"config.transactions", "config.image_collection", "config.system.indexBuilds", "config.cache.collections",
		"admin.system.version", "admin.system.keys", "admin.system.users", "admin.system.roles", "local.oplog.rs", "app.system.profile", "app.system.js"} {
		db, coll := splitNS(ns)
		src.Namespaces = append(src.Namespaces, topology.Namespace{DB: db, Collection: coll, Type: "collection"})
	}
	src.Zones = append(src.Zones, topology.ZoneRange{Namespace: "config.system.sessions", Zone: "EU"})
	p, err := NewPlan(src, dst)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	for _, c := range p.Collections {
		if c.DB != "app" || c.Name == "system.profile" || c.Name == "system.js" {
			t.Errorf("the plan holds %s", c.NS())
		}
	}
	if len(p.Zones) != 0 {
		t.Errorf("zone ranges %+v", p.Zones)
	}
}

func splitNS(ns string) (string, string) { db, coll, _ := cutNS(ns); return db, coll }

// Prepare gives each twin its source shard's zones before anything else, the
// zone ranges of a sharded collection after shardCollection and before its
// chunks are placed, and keeps the balancer off a collection the source's leaves
// alone: noBalance in config.collections up to 8.0, configureCollectionBalancing
// from 8.1.
func TestPrepareCarriesZonesAndBalancing(t *testing.T) {
	for _, tc := range []struct{ source, destination string }{
		{"3.6.23", "3.6.23"}, {"4.4.29", "4.4.29"}, {"7.0.16", "8.0.4"}, {"8.0.4", "8.1.1"},
	} {
		t.Run(tc.source+"->"+tc.destination, func(t *testing.T) {
			src, _ := discover(t, fakemongos.Cluster(tc.source))
			fake := destination(tc.destination, "rs0", "rs1")
			dst, client := discover(t, fake)
			p, err := NewPlan(src, dst)
			if err != nil {
				t.Fatal(err)
			}
			if err := Prepare(context.Background(), client, p, nil, nil, nil); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			cmds := names(fake.Commands("addShardToZone", "enableSharding", "shardCollection", "updateZoneKeyRange", "split", "moveChunk", "moveRange", "configureCollectionBalancing"))
			at := func(name string) int { return slices.Index(cmds, name) }
			if at("addShardToZone") < 0 || at("addShardToZone") > at("shardCollection") || at("shardCollection") > at("updateZoneKeyRange") {
				t.Errorf("commands %v: want zones joined, then shardCollection and its zone ranges", cmds)
			}
			if topology.OlderThan(tc.destination, "6.0") {
				if at("updateZoneKeyRange") > at("split") || at("split") > at("moveChunk") || at("moveRange") >= 0 {
					t.Errorf("commands %v: before 6.0, want the zone ranges, then split and moveChunk", cmds)
				}
			} else if at("updateZoneKeyRange") > at("moveRange") || at("split") >= 0 || at("moveChunk") >= 0 {
				t.Errorf("commands %v: from 6.0, want the zone ranges, then moveRange alone", cmds)
			}
			for _, sh := range fake.Shards {
				want := map[string]string{"rs0": fakemongos.ZoneFirst, "rs1": fakemongos.ZoneSecond}[sh[0].Value.(string)]
				if got := sh[len(sh)-1]; got.Key != "tags" || got.Value.(bson.A)[0] != want {
					t.Errorf("destination shard %v, want it in zone %s", sh, want)
				}
			}
			if tags := fake.Config("tags"); len(tags) != 2 {
				t.Errorf("destination config.tags %v, want the two ranges of shop.orders", tags)
			}
			var onSecond int
			for _, ch := range fake.Config("chunks") {
				if ch[3].Value == "rs1" {
					onSecond++
				}
			}
			if onSecond != 1 {
				t.Errorf("destination chunks %v, want [1000, MaxKey) on rs1", fake.Config("chunks"))
			}
			noBalance := false
			for _, c := range fake.Config("collections") {
				for _, e := range c {
					noBalance = noBalance || e.Key == "noBalance" && e.Value == true
				}
			}
			if !topology.OlderThan(tc.destination, "8.1") {
				cfg := fake.Commands("configureCollectionBalancing")
				if len(cfg) != 1 || cfg[0].Lookup("enableBalancing").Boolean() || noBalance {
					t.Errorf("8.1: configureCollectionBalancing %v, config.collections noBalance %v", cfg, noBalance)
				}
			} else if !noBalance {
				t.Errorf("destination config.collections %v, want noBalance on shop.orders", fake.Config("collections"))
			}

			// Again, as after an interruption: nothing is assigned twice.
			before := len(fake.Commands("updateZoneKeyRange"))
			if err := Prepare(context.Background(), client, p, nil, nil, nil); err != nil {
				t.Fatalf("Prepare again: %v", err)
			}
			if n := len(fake.Commands("updateZoneKeyRange")); n != before {
				t.Errorf("the second Prepare assigned %d zone ranges again", n-before)
			}
		})
	}
}

// Prepare places several collections at once, and never more than
// PlacementParallel: with eight collections each needing a move, the destination
// sees moves of different collections in flight together.
func TestPrepareMovesSeveralCollectionsAtOnce(t *testing.T) {
	src, _ := clusters(t)
	chunk := func(lo, hi any, shard string) topology.Chunk {
		return topology.Chunk{Min: raw(t, bson.D{{Key: "region", Value: lo}}), Max: raw(t, bson.D{{Key: "region", Value: hi}}), Shard: shard}
	}
	src.Namespaces = nil
	src.Collections = nil
	for i := range 8 {
		name := fmt.Sprintf("c%d", i)
		src.Namespaces = append(src.Namespaces, topology.Namespace{DB: "app", Collection: name, Type: "collection", Sharded: true})
		src.Collections = append(src.Collections, topology.Collection{Namespace: "app." + name, Key: bson.D{{Key: "region", Value: 1}},
			Chunks: []topology.Chunk{chunk(primitive.MinKey{}, "m", "s0"), chunk("m", primitive.MaxKey{}, "s1")}})
	}
	fake := destination("8.0.4", "d0", "d1")
	inner := fake.Handle
	var mu sync.Mutex
	inFlight, most := 0, 0
	together := make(chan struct{})
	closeTogether := sync.OnceFunc(func() { close(together) })
	fake.Handle = func(m *fakemongos.Mongos, cmd *wire.Command) (bson.Raw, bool) {
		if cmd.Name == "moveRange" {
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			if inFlight == 2 {
				closeTogether()
			}
			mu.Unlock()
			// Wait for a second move to arrive (bounded, so that serial moves end
			// the test rather than hang it).
			select {
			case <-together:
			case <-time.After(30 * time.Second):
			}
			defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		}
		return inner(m, cmd)
	}
	dst, client := discover(t, fake)
	p, err := NewPlan(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := Prepare(context.Background(), client, p, nil, nil, nil); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if n := len(fake.Commands("moveRange")); n != 8 {
		t.Fatalf("%d moveRange commands, want one per collection", n)
	}
	if most < 2 || most > PlacementParallel {
		t.Errorf("at most %d moves in flight, want 2 to %d", most, PlacementParallel)
	}
}

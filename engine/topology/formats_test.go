package topology_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/fakemongos"
)

// Discovery of the metadata every version writes (internal/fakemongos.Cluster):
// config.chunks keyed by ns until 4.4 and by uuid from 5.0, dropped collections
// until 4.4, 8.0's tracked unsharded collections and config shard, zones, and
// MongoDB's own sharded config.system.sessions, which must not reach the plan.
func TestDiscoverReadsTheMetadataOfEveryVersion(t *testing.T) {
	for _, version := range fakemongos.Versions {
		t.Run(version, func(t *testing.T) {
			uri := fakemongos.Start(t, fakemongos.Cluster(version))
			c, err := topology.Discover(context.Background(), topology.Endpoint{URI: uri, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			for _, part := range []string{topology.PartShards, topology.PartDatabases, topology.PartCollections, topology.PartChunks, topology.PartZones, topology.PartInventory} {
				if p := c.ProblemsWith(part); len(p) > 0 {
					t.Fatalf("%s: %v", part, p)
				}
			}
			first, second := fakemongos.ShardNames(version)
			if len(c.Shards) != 2 || c.Shards[0].Name != first || c.Shards[1].Name != second {
				t.Fatalf("shards %+v, want %s and %s", c.Shards, first, second)
			}
			if !slices.Equal(c.Shards[0].Zones, []string{fakemongos.ZoneFirst}) || !slices.Equal(c.Shards[1].Zones, []string{fakemongos.ZoneSecond}) {
				t.Errorf("shard zones %v, %v", c.Shards[0].Zones, c.Shards[1].Zones)
			}
			if len(c.Databases) != 1 || c.Databases[0].Name != "shop" || c.Databases[0].Primary != first {
				t.Errorf("databases %+v, want shop on %s", c.Databases, first)
			}

			var names []string
			for _, coll := range c.Collections {
				names = append(names, coll.Namespace)
			}
			want := []string{"shop.orders"}
			if version >= "8.0" {
				want = append(want, "shop.events")
			}
			if !slices.Equal(names, want) {
				t.Fatalf("collections %v, want %v (config.system.sessions is MongoDB's, shop.old is dropped)", names, want)
			}
			orders := c.Collections[0]
			if !orders.Sharded() || !orders.NoBalance || len(orders.Chunks) != 2 || len(orders.ChunksOn(first)) != 1 || len(orders.ChunksOn(second)) != 1 {
				t.Errorf("shop.orders: sharded %v, chunks %+v", orders.Sharded(), orders.Chunks)
			}
			if version >= "8.0" {
				events := c.Collections[1]
				if events.Sharded() || !events.Unsplittable || len(events.ChunksOn(second)) != 1 {
					t.Errorf("shop.events %+v: want a tracked unsharded collection on %s", events, second)
				}
			}

			if len(c.Zones) != 2 || c.Zones[0].Namespace != "shop.orders" || c.Zones[0].Zone != fakemongos.ZoneFirst || c.Zones[1].Zone != fakemongos.ZoneSecond ||
				c.Zones[0].Max.Lookup("customerId").Int32() != fakemongos.SplitAt {
				t.Errorf("zones %+v", c.Zones)
			}

			listed := map[string]topology.Namespace{}
			for _, n := range c.Namespaces {
				listed[n.Name()] = n
			}
			for _, ns := range []string{"shop.orders", "shop.customers", "shop.bigorders", "shop.system.js"} {
				if _, ok := listed[ns]; !ok {
					t.Errorf("inventory lacks %s: %v", ns, c.Namespaces)
				}
			}
			for _, ns := range []string{"shop.system.profile", "shop.system.views", "config.system.sessions"} {
				if _, ok := listed[ns]; ok {
					t.Errorf("inventory lists %s, MongoDB's own", ns)
				}
			}
			if !listed["shop.orders"].Sharded || listed["shop.customers"].Sharded {
				t.Errorf("sharded flags: orders %v, customers %v", listed["shop.orders"].Sharded, listed["shop.customers"].Sharded)
			}
			if n, ok := listed["shop.events"]; ok && n.Sharded {
				t.Error("shop.events, a tracked unsharded collection, is marked sharded")
			}
		})
	}
}

// A malformed zone range is reported like any malformed metadata.
func TestMalformedZoneRangeIsReported(t *testing.T) {
	m := fakemongos.Cluster("7.0.16")
	tags := m.Config("tags")
	tags[0] = tags[0][:3] // no max, no tag
	m.SetConfig("tags", tags)
	_, err := topology.Discover(context.Background(), topology.Endpoint{URI: fakemongos.Start(t, m), Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "config.tags") {
		t.Errorf("Discover: %v, want an error naming config.tags", err)
	}
}

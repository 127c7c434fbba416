package fakemongos

import (
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
)

// Versions are the MongoDB releases whose metadata formats Cluster writes.
var Versions = []string{"3.6.23", "4.0.28", "4.2.25", "4.4.29", "5.0.30", "6.0.20", "7.0.16", "8.0.4"}

// What Cluster holds, in every version:
//
//	shards     two: shard01 (zone EU) and shard02 (zone US); from 8.0 the
//	           first is the config shard, named "config"
//	shop       primary on the first shard; shop.orders sharded on {customerId: 1}
//	           with chunks [MinKey, 1000) on the first shard and [1000, MaxKey)
//	           on the second, zone ranges over the same bounds (EU, US), and the
//	           balancer kept off it (noBalance);
//	           shop.customers unsharded; the view shop.bigorders; stored
//	           JavaScript (system.js) and a profile (system.profile)
//	config.system.sessions  sharded on {_id: 1}, one chunk on the first shard
//	until 4.4  shop.old, dropped (dropped: true) with its chunk left behind
//	8.0        shop.events, a tracked unsharded collection (unsplittable) whose
//	           one chunk is on the second shard, not on shop's primary
const (
	ZoneFirst, ZoneSecond = "EU", "US"
	SplitAt               = 1000
)

// ShardNames are the two shards' names of Cluster(version).
func ShardNames(version string) (first, second string) {
	if atLeast(version, 8, 0) {
		return "config", "shard02"
	}
	return "shard01", "shard02"
}

// Cluster returns a mongos serving the metadata of Layout as version writes it
// (src/mongo/s/catalog/type_shard.cpp, type_database.idl, type_collection.idl,
// type_chunk.cpp and type_tags.cpp of each release).
func Cluster(version string) *Mongos {
	first, second := ShardNames(version)
	epoch := primitive.NewObjectIDFromTimestamp(time.Unix(1700000000, 0))
	created := primitive.Timestamp{T: 1700000000, I: 1}
	when := primitive.NewDateTimeFromTime(time.Unix(1700000000, 0))
	m := &Mongos{Version: version, ConfigDocs: map[string][]bson.D{}}

	shard := func(name, host, zone string) bson.D {
		d := bson.D{{Key: "_id", Value: name}, {Key: "host", Value: host}, {Key: "state", Value: int32(1)}}
		if atLeast(version, 5, 0) {
			d = append(d, bson.E{Key: "topologyTime", Value: created})
		}
		return append(d, bson.E{Key: "tags", Value: bson.A{zone}})
	}
	firstHost := "shard01/127.0.0.1:1"
	if first == "config" {
		firstHost = "csRS/127.0.0.1:1" // the config servers themselves
	}
	m.Shards = []bson.D{shard(first, firstHost, ZoneFirst), shard(second, "shard02/127.0.0.1:2", ZoneSecond)}

	db := bson.D{{Key: "_id", Value: "shop"}, {Key: "primary", Value: first}}
	if !atLeast(version, 6, 0) {
		db = append(db, bson.E{Key: "partitioned", Value: true})
	}
	if atLeast(version, 4, 0) {
		v := bson.D{{Key: "uuid", Value: uuid(9)}, {Key: "lastMod", Value: int32(1)}}
		if atLeast(version, 5, 0) {
			v = append(v, bson.E{Key: "timestamp", Value: created})
		}
		db = append(db, bson.E{Key: "version", Value: v})
	}
	m.ConfigDocs["databases"] = []bson.D{db}

	collection := func(ns string, key bson.D, id byte) bson.D {
		d := bson.D{{Key: "_id", Value: ns}, {Key: "lastmodEpoch", Value: epoch}, {Key: "lastmod", Value: when}}
		if atLeast(version, 5, 0) {
			d = append(d, bson.E{Key: "timestamp", Value: created})
		} else {
			d = append(d, bson.E{Key: "dropped", Value: false})
		}
		return append(d, bson.E{Key: "key", Value: key}, bson.E{Key: "unique", Value: false}, bson.E{Key: "uuid", Value: uuid(id)})
	}
	var n int
	chunk := func(ns string, id byte, field string, lo, hi any, on string) bson.D {
		n++
		d := bson.D{}
		if atLeast(version, 5, 0) {
			d = append(d, bson.E{Key: "_id", Value: primitive.NewObjectIDFromTimestamp(time.Unix(int64(1700000000+n), 0))}, bson.E{Key: "uuid", Value: uuid(id)})
		} else {
			d = append(d, bson.E{Key: "_id", Value: fmt.Sprintf("%s-%s_%v", ns, field, boundName(lo))}, bson.E{Key: "ns", Value: ns})
		}
		d = append(d, bson.E{Key: "min", Value: bson.D{{Key: field, Value: lo}}}, bson.E{Key: "max", Value: bson.D{{Key: field, Value: hi}}},
			bson.E{Key: "shard", Value: on}, bson.E{Key: "lastmod", Value: primitive.Timestamp{T: 1, I: uint32(n)}})
		if !atLeast(version, 5, 0) {
			d = append(d, bson.E{Key: "lastmodEpoch", Value: epoch})
		}
		if atLeast(version, 7, 0) {
			d = append(d, bson.E{Key: "onCurrentShardSince", Value: created})
		}
		if atLeast(version, 4, 0) {
			d = append(d, bson.E{Key: "history", Value: bson.A{bson.D{{Key: "validAfter", Value: created}, {Key: "shard", Value: on}}}})
		}
		return d
	}
	min, max := primitive.MinKey{}, primitive.MaxKey{}
	colls := []bson.D{
		collection("config.system.sessions", bson.D{{Key: "_id", Value: int32(1)}}, 1),
		append(collection("shop.orders", bson.D{{Key: "customerId", Value: int32(1)}}, 2), bson.E{Key: "noBalance", Value: true}),
	}
	chunks := []bson.D{
		chunk("config.system.sessions", 1, "_id", min, max, first),
		chunk("shop.orders", 2, "customerId", min, SplitAt, first),
		chunk("shop.orders", 2, "customerId", SplitAt, max, second),
	}
	if !atLeast(version, 5, 0) {
		old := collection("shop.old", bson.D{{Key: "k", Value: int32(1)}}, 3)
		old[3].Value = true // dropped: true, its chunk left behind
		colls = append(colls, old)
		chunks = append(chunks, chunk("shop.old", 3, "k", min, max, second))
	}
	if atLeast(version, 8, 0) {
		events := collection("shop.events", bson.D{{Key: "_id", Value: int32(1)}}, 4)
		colls = append(colls, append(events, bson.E{Key: "unsplittable", Value: true}))
		chunks = append(chunks, chunk("shop.events", 4, "_id", min, max, second))
	}
	m.ConfigDocs["collections"] = colls
	m.ConfigDocs["chunks"] = chunks

	tag := func(lo, hi any, zone string) bson.D {
		d := bson.D{}
		if atLeast(version, 5, 0) {
			d = append(d, bson.E{Key: "_id", Value: primitive.NewObjectIDFromTimestamp(time.Unix(1700000100, 0))})
		} else {
			d = append(d, bson.E{Key: "_id", Value: bson.D{{Key: "ns", Value: "shop.orders"}, {Key: "min", Value: bson.D{{Key: "customerId", Value: lo}}}}})
		}
		return append(d, bson.E{Key: "ns", Value: "shop.orders"}, bson.E{Key: "min", Value: bson.D{{Key: "customerId", Value: lo}}},
			bson.E{Key: "max", Value: bson.D{{Key: "customerId", Value: hi}}}, bson.E{Key: "tag", Value: zone})
	}
	m.ConfigDocs["tags"] = []bson.D{tag(min, SplitAt, ZoneFirst), tag(SplitAt, max, ZoneSecond)}
	m.ConfigDocs["settings"] = []bson.D{{{Key: "_id", Value: "balancer"}, {Key: "mode", Value: "off"}, {Key: "stopped", Value: true}}}

	shop := []Collection{
		{Name: "orders"}, {Name: "customers"}, {Name: "system.js"}, {Name: "system.profile"},
		{Name: "bigorders", Type: "view", Options: bson.D{{Key: "viewOn", Value: "orders"}, {Key: "pipeline", Value: bson.A{}}}},
		{Name: "system.views"},
	}
	if atLeast(version, 8, 0) {
		shop = append(shop, Collection{Name: "events"})
	}
	m.Databases = map[string][]Collection{"shop": shop}
	return m
}

// EmptyCluster is a mongos of version with two shards, no database and no zone:
// a destination.
func EmptyCluster(version string, shards ...string) *Mongos {
	m := &Mongos{Version: version, ConfigDocs: map[string][]bson.D{"databases": nil, "collections": nil, "chunks": nil, "tags": nil}}
	for i, name := range shards {
		m.Shards = append(m.Shards, bson.D{{Key: "_id", Value: name}, {Key: "host", Value: fmt.Sprintf("%s/127.0.0.1:%d", name, 11+i)}, {Key: "state", Value: int32(1)}})
	}
	m.Databases = map[string][]Collection{}
	return m
}

func uuid(b byte) primitive.Binary {
	d := make([]byte, 16)
	for i := range d {
		d[i] = b
	}
	return primitive.Binary{Subtype: 4, Data: d}
}

func boundName(v any) string {
	switch v.(type) {
	case primitive.MinKey:
		return "MinKey"
	case primitive.MaxKey:
		return "MaxKey"
	}
	return fmt.Sprint(v)
}

func atLeast(version string, major, minor int) bool {
	return !topology.OlderThan(version, fmt.Sprintf("%d.%d", major, minor))
}

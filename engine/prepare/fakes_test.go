package prepare

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/fakemongos"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// discover reads a fake mongos as the engine does.
func discover(t *testing.T, m *fakemongos.Mongos) (*topology.Cluster, *mongo.Client) {
	t.Helper()
	e := topology.Endpoint{URI: fakemongos.Start(t, m), Timeout: 2 * time.Second}
	c, err := topology.Discover(context.Background(), e)
	if err != nil {
		t.Fatalf("discover %s: %v", m.Version, err)
	}
	client, err := topology.Connect(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return c, client
}

// destination is an empty fake mongos of version that carries out, on its
// config documents, the commands Prepare sends: enableSharding, create,
// shardCollection, split, moveChunk, moveRange, addShardToZone, updateZoneKeyRange (and,
// through the fake itself, noBalance updates of config.collections).
func destination(version string, shards ...string) *fakemongos.Mongos {
	m := fakemongos.EmptyCluster(version, shards...)
	var mu sync.Mutex // Prepare places collections in parallel: one command at a time here
	m.Handle = func(m *fakemongos.Mongos, cmd *wire.Command) (bson.Raw, bool) {
		mu.Lock()
		defer mu.Unlock()
		str := func(k string) string { s, _ := cmd.Lookup(k).StringValueOK(); return s }
		switch cmd.Name {
		case "enableSharding":
			primary := str("primaryShard")
			if primary == "" {
				primary = shards[0]
			}
			m.SetConfig("databases", append(m.Config("databases"), bson.D{{Key: "_id", Value: str("enableSharding")}, {Key: "primary", Value: primary}}))
		case "create", "addShardToZone", "configureCollectionBalancing":
			if cmd.Name == "addShardToZone" {
				docs := m.Shards
				for i, d := range docs {
					if d[0].Value == str("addShardToZone") {
						docs[i] = append(d, bson.E{Key: "tags", Value: bson.A{str("zone")}})
					}
				}
			}
		case "shardCollection":
			ns := str("shardCollection")
			if slices.ContainsFunc(m.Config("collections"), func(c bson.D) bool { return c[0].Value == ns }) {
				break // already sharded: as 4.4+ answers the same key again
			}
			key := cmd.Lookup("key").Document()
			elems, _ := key.Elements()
			lo, hi := bson.D{}, bson.D{}
			for _, e := range elems {
				lo, hi = append(lo, bson.E{Key: e.Key(), Value: primitive.MinKey{}}), append(hi, bson.E{Key: e.Key(), Value: primitive.MaxKey{}})
			}
			db, _, _ := cutNS(ns)
			primary := shards[0]
			for _, d := range m.Config("databases") {
				if d[0].Value == db {
					primary = d[1].Value.(string)
				}
			}
			m.SetConfig("collections", append(m.Config("collections"), bson.D{{Key: "_id", Value: ns}, {Key: "key", Value: key}, {Key: "unique", Value: false}}))
			m.SetConfig("chunks", append(m.Config("chunks"), bson.D{{Key: "ns", Value: ns}, {Key: "min", Value: lo}, {Key: "max", Value: hi}, {Key: "shard", Value: primary}}))
		case "split":
			ns, middle := str("split"), cmd.Lookup("middle").Document()
			var chunks []bson.D
			for _, ch := range m.Config("chunks") {
				lo, hi := marshal(ch, "min"), marshal(ch, "max")
				if ch[0].Value == ns && shardkey.CompareKeys(lo, shardkey.Key(middle)) < 0 && shardkey.CompareKeys(shardkey.Key(middle), hi) < 0 {
					left, right := slices.Clone(ch), slices.Clone(ch)
					left[2].Value, right[1].Value = bson.Raw(middle), bson.Raw(middle)
					chunks = append(chunks, left, right)
					continue
				}
				chunks = append(chunks, ch)
			}
			m.SetConfig("chunks", chunks)
		case "moveChunk":
			bounds, _ := cmd.Lookup("bounds").Array().Values()
			chunks := m.Config("chunks")
			for i, ch := range chunks {
				if ch[0].Value == str("moveChunk") && shardkey.CompareKeys(marshal(ch, "min"), shardkey.Key(bounds[0].Document())) == 0 {
					chunks[i][3].Value = str("to")
				}
			}
			m.SetConfig("chunks", chunks)
		case "moveRange":
			// Only the form Prepare sends: min and max within one chunk, which is
			// split at whichever is not its own bound.
			ns, lo, hi := str("moveRange"), shardkey.Key(cmd.Lookup("min").Document()), shardkey.Key(cmd.Lookup("max").Document())
			var chunks []bson.D
			for _, ch := range m.Config("chunks") {
				cmin, cmax := marshal(ch, "min"), marshal(ch, "max")
				if ch[0].Value != ns || shardkey.CompareKeys(cmin, lo) > 0 || shardkey.CompareKeys(hi, cmax) > 0 {
					chunks = append(chunks, ch)
					continue
				}
				piece := func(a, b shardkey.Key, shard string) bson.D {
					p := slices.Clone(ch)
					p[1].Value, p[2].Value, p[3].Value = bson.Raw(a), bson.Raw(b), shard
					return p
				}
				if shardkey.CompareKeys(cmin, lo) < 0 {
					chunks = append(chunks, piece(cmin, lo, ch[3].Value.(string)))
				}
				chunks = append(chunks, piece(lo, hi, str("toShard")))
				if shardkey.CompareKeys(hi, cmax) < 0 {
					chunks = append(chunks, piece(hi, cmax, ch[3].Value.(string)))
				}
			}
			m.SetConfig("chunks", chunks)
		case "refineCollectionShardKey":
			colls := m.Config("collections")
			for i, c := range colls {
				if c[0].Value == str("refineCollectionShardKey") {
					colls[i][1].Value = cmd.Lookup("key").Document()
				}
			}
			m.SetConfig("collections", colls)
		case "updateZoneKeyRange":
			m.SetConfig("tags", append(m.Config("tags"), bson.D{{Key: "ns", Value: str("updateZoneKeyRange")},
				{Key: "min", Value: cmd.Lookup("min").Document()}, {Key: "max", Value: cmd.Lookup("max").Document()}, {Key: "tag", Value: str("zone")}}))
		default:
			return nil, false
		}
		return wire.OK(), true
	}
	return m
}

func cutNS(ns string) (string, string, bool) {
	for i := range ns {
		if ns[i] == '.' {
			return ns[:i], ns[i+1:], true
		}
	}
	return ns, "", false
}

func marshal(d bson.D, field string) shardkey.Key {
	for _, e := range d {
		if e.Key == field {
			switch v := e.Value.(type) {
			case bson.Raw:
				return shardkey.Key(v)
			default:
				b, _ := bson.Marshal(v)
				return shardkey.Key(b)
			}
		}
	}
	return nil
}

// names are the command names of docs.
func names(docs []bson.Raw) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		elems, _ := d.Elements()
		out[i] = elems[0].Key()
	}
	return out
}

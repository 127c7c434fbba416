package topology

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

func raws(t *testing.T, docs ...bson.D) []bson.Raw {
	t.Helper()
	out := make([]bson.Raw, len(docs))
	for i, d := range docs {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

var (
	uuidA = primitive.Binary{Subtype: 4, Data: []byte("aaaaaaaaaaaaaaaa")}
	uuidB = primitive.Binary{Subtype: 4, Data: []byte("bbbbbbbbbbbbbbbb")}
)

func bound(v any) bson.D { return bson.D{{Key: "k", Value: v}} }

func TestChunksAreReadKeyedByNamespaceUntil44(t *testing.T) {
	colls, err := parseCollections(raws(t,
		bson.D{{Key: "_id", Value: "app.orders"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "unique", Value: true}, {Key: "lastmodEpoch", Value: primitive.NewObjectID()}},
		bson.D{{Key: "_id", Value: "app.old"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "dropped", Value: true}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(colls) != 1 || colls[0].Namespace != "app.orders" || !colls[0].Unique {
		t.Fatalf("collections = %+v; want app.orders only (app.old is dropped)", colls)
	}
	err = attachChunks(colls, raws(t,
		bson.D{{Key: "_id", Value: "app.orders-k_MinKey"}, {Key: "ns", Value: "app.orders"}, {Key: "min", Value: bound(primitive.MinKey{})}, {Key: "max", Value: bound(0)}, {Key: "shard", Value: "s0"}},
		bson.D{{Key: "_id", Value: "app.orders-k_0"}, {Key: "ns", Value: "app.orders"}, {Key: "min", Value: bound(0)}, {Key: "max", Value: bound(primitive.MaxKey{})}, {Key: "shard", Value: "s1"}},
		bson.D{{Key: "_id", Value: "app.old-k_MinKey"}, {Key: "ns", Value: "app.old"}, {Key: "min", Value: bound(primitive.MinKey{})}, {Key: "max", Value: bound(primitive.MaxKey{})}, {Key: "shard", Value: "s0"}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(colls[0].Chunks); got != 2 {
		t.Fatalf("app.orders has %d chunks, want 2", got)
	}
	if on := colls[0].ChunksOn("s1"); len(on) != 1 || on[0].Min.Lookup("k").Int32() != 0 {
		t.Errorf("ChunksOn(s1) = %v", on)
	}
}

func TestChunksAreReadKeyedByUUIDFrom50(t *testing.T) {
	colls, err := parseCollections(raws(t,
		bson.D{{Key: "_id", Value: "app.a"}, {Key: "key", Value: bson.D{{Key: "k", Value: "hashed"}}}, {Key: "uuid", Value: uuidA}, {Key: "timestamp", Value: primitive.Timestamp{T: 1}}},
		bson.D{{Key: "_id", Value: "app.b"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "uuid", Value: uuidB}},
	))
	if err != nil {
		t.Fatal(err)
	}
	err = attachChunks(colls, raws(t,
		bson.D{{Key: "_id", Value: primitive.NewObjectID()}, {Key: "uuid", Value: uuidA}, {Key: "min", Value: bound(primitive.MinKey{})}, {Key: "max", Value: bound(int64(0))}, {Key: "shard", Value: "s0"}, {Key: "history", Value: bson.A{}}},
		bson.D{{Key: "_id", Value: primitive.NewObjectID()}, {Key: "uuid", Value: uuidA}, {Key: "min", Value: bound(int64(0))}, {Key: "max", Value: bound(primitive.MaxKey{})}, {Key: "shard", Value: "s1"}},
		bson.D{{Key: "_id", Value: primitive.NewObjectID()}, {Key: "uuid", Value: uuidB}, {Key: "min", Value: bound(primitive.MinKey{})}, {Key: "max", Value: bound(primitive.MaxKey{})}, {Key: "shard", Value: "s1"}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(colls[0].Chunks) != 2 || len(colls[1].Chunks) != 1 {
		t.Fatalf("chunks per collection = %d, %d; want 2, 1", len(colls[0].Chunks), len(colls[1].Chunks))
	}
	if string(colls[0].UUID.Data) != string(uuidA.Data) || colls[0].Key[0].Value != "hashed" {
		t.Errorf("app.a = %+v", colls[0])
	}
}

func TestChunkWithoutABoundIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chunk bson.D
		want  string
	}{
		{"no max", bson.D{{Key: "_id", Value: "c1"}, {Key: "ns", Value: "app.orders"}, {Key: "min", Value: bound(0)}, {Key: "shard", Value: "s0"}}, "no max bound"},
		{"no min", bson.D{{Key: "_id", Value: "c1"}, {Key: "ns", Value: "app.orders"}, {Key: "max", Value: bound(0)}, {Key: "shard", Value: "s0"}}, "no min bound"},
		{"bound not a document", bson.D{{Key: "_id", Value: "c1"}, {Key: "ns", Value: "app.orders"}, {Key: "min", Value: 5}, {Key: "max", Value: bound(0)}, {Key: "shard", Value: "s0"}}, "not a document"},
		{"bound of another width", bson.D{{Key: "_id", Value: "c1"}, {Key: "ns", Value: "app.orders"}, {Key: "min", Value: bson.D{}}, {Key: "max", Value: bound(0)}, {Key: "shard", Value: "s0"}}, "one value per shard key field"},
		{"no shard", bson.D{{Key: "_id", Value: "c1"}, {Key: "ns", Value: "app.orders"}, {Key: "min", Value: bound(0)}, {Key: "max", Value: bound(1)}}, "names no shard"},
		{"no collection", bson.D{{Key: "_id", Value: "c1"}, {Key: "min", Value: bound(0)}, {Key: "max", Value: bound(1)}, {Key: "shard", Value: "s0"}}, "neither ns nor uuid"},
	} {
		colls, err := parseCollections(raws(t, bson.D{{Key: "_id", Value: "app.orders"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}}))
		if err != nil {
			t.Fatal(err)
		}
		err = attachChunks(colls, raws(t, tc.chunk))
		if !errors.Is(err, ErrMetadata) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"c1"`) {
			t.Errorf("%s: error %v; want ErrMetadata naming chunk \"c1\" and %q", tc.name, err, tc.want)
		}
	}
}

func TestCollectionWithoutKeyOrChunksIsAnError(t *testing.T) {
	_, err := parseCollections(raws(t, bson.D{{Key: "_id", Value: "app.nokey"}}))
	if !errors.Is(err, ErrMetadata) || !strings.Contains(err.Error(), "app.nokey") {
		t.Errorf("collection without key: %v", err)
	}
	colls, _ := parseCollections(raws(t, bson.D{{Key: "_id", Value: "app.lonely"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}}))
	if err := attachChunks(colls, nil); !errors.Is(err, ErrMetadata) || !strings.Contains(err.Error(), "app.lonely") {
		t.Errorf("collection without chunks: %v", err)
	}
}

func TestListShardsReplyWithABadHostStringNamesIt(t *testing.T) {
	reply := raws(t, bson.D{{Key: "shards", Value: bson.A{
		bson.D{{Key: "_id", Value: "s0"}, {Key: "host", Value: "s0/h1:27018,h2:27018"}, {Key: "state", Value: 1}},
		bson.D{{Key: "_id", Value: "s1"}, {Key: "host", Value: "s1/h3"}, {Key: "draining", Value: true}},
	}}, {Key: "ok", Value: 1}})[0]
	shards, err := parseShards(reply)
	if !errors.Is(err, ErrMetadata) || !strings.Contains(err.Error(), `"s1/h3"`) || !strings.Contains(err.Error(), "shard s1") {
		t.Errorf("error %v; want ErrMetadata naming shard s1 and its host string", err)
	}
	if len(shards) != 1 || shards[0].Name != "s0" || shards[0].SetName != "s0" || len(shards[0].Hosts) != 2 {
		t.Errorf("shards = %+v; want s0 with two hosts", shards)
	}
}

func TestBalancerFromSettings(t *testing.T) {
	for _, tc := range []struct {
		docs    []bson.Raw
		mode    string
		enabled bool
	}{
		{nil, "full", true},
		{raws(t, bson.D{{Key: "_id", Value: "balancer"}, {Key: "stopped", Value: true}}), "off", false},
		{raws(t, bson.D{{Key: "_id", Value: "balancer"}, {Key: "mode", Value: "off"}}), "off", false},
		{raws(t, bson.D{{Key: "_id", Value: "balancer"}, {Key: "stopped", Value: false}, {Key: "mode", Value: "full"}}), "full", true},
	} {
		b := balancerFromSettings(tc.docs)
		if b.Mode != tc.mode || b.Enabled != tc.enabled || b.From != "config.settings" {
			t.Errorf("balancerFromSettings(%v) = %+v; want mode %s enabled %v", tc.docs, b, tc.mode, tc.enabled)
		}
	}
}

func TestUsersNeverKeepCredentials(t *testing.T) {
	reply := raws(t, bson.D{{Key: "users", Value: bson.A{bson.D{
		{Key: "_id", Value: "admin.app"}, {Key: "user", Value: "app"}, {Key: "db", Value: "admin"},
		{Key: "credentials", Value: bson.D{{Key: "SCRAM-SHA-256", Value: bson.D{{Key: "storedKey", Value: "c2VjcmV0"}, {Key: "serverKey", Value: "c2VjcmV0"}}}}},
		{Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: "shop"}}}},
		{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}},
	}}}})[0]
	users := parseUsers(reply)
	if len(users) != 1 || users[0].Name != "app" || users[0].DB != "admin" || len(users[0].Roles) != 1 || users[0].Roles[0].String() != "readWrite@shop" {
		t.Fatalf("users = %+v", users)
	}
	if dump := fmt.Sprintf("%+v", users); strings.Contains(dump, "c2VjcmV0") || strings.Contains(dump, "SCRAM") {
		t.Errorf("users keep credential data: %s", dump)
	}
}

func TestOplogCapacityScalesAWindowThatIsNotFull(t *testing.T) {
	o := Oplog{First: primitive.Timestamp{T: 1000}, Last: primitive.Timestamp{T: 1600}}
	if o.Window() != 10*time.Minute || o.Capacity() != 10*time.Minute {
		t.Fatalf("window %v capacity %v; want 10m both when the size is unknown", o.Window(), o.Capacity())
	}
	o.UsedBytes, o.MaxBytes = 100, 1000
	if o.Capacity() != 100*time.Minute {
		t.Errorf("a tenth full oplog with a 10 min window holds %v, want 100m", o.Capacity())
	}
	o.UsedBytes = 1000
	if o.Capacity() != 10*time.Minute {
		t.Errorf("a full oplog holds %v, want its window", o.Capacity())
	}
	// A new cluster: every entry within one second, the oplog far from full.
	o = Oplog{First: primitive.Timestamp{T: 1000}, Last: primitive.Timestamp{T: 1000, I: 900}, UsedBytes: 100 << 10, MaxBytes: 64 << 20}
	if o.Capacity() != 655360*time.Millisecond {
		t.Errorf("an oplog written within a second, 0.16%% full, holds %v, want 1 s scaled to its size (10m55s)", o.Capacity())
	}
	o.UsedBytes = o.MaxBytes
	if o.Capacity() != 0 {
		t.Errorf("a full oplog written within a second holds %v, want 0", o.Capacity())
	}
}

func TestDefaultCollationIsReadFromConfigCollections(t *testing.T) {
	colls, err := parseCollections(raws(t,
		bson.D{{Key: "_id", Value: "app.a"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}},
			{Key: "defaultCollation", Value: bson.D{{Key: "locale", Value: "fr"}, {Key: "strength", Value: int32(2)}}}},
		bson.D{{Key: "_id", Value: "app.b"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}},
		bson.D{{Key: "_id", Value: "app.c"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}, {Key: "defaultCollation", Value: bson.D{}}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if locale, _ := colls[0].DefaultCollation.Lookup("locale").StringValueOK(); locale != "fr" {
		t.Errorf("app.a default collation %s, want the French one", colls[0].DefaultCollation)
	}
	if colls[1].DefaultCollation != nil || colls[2].DefaultCollation != nil {
		t.Errorf("default collations %s and %s, want none (the simple collation)", colls[1].DefaultCollation, colls[2].DefaultCollation)
	}
}

func TestTwinsPairConfigShardsAndTheRestInOrder(t *testing.T) {
	shards := func(names ...string) []Shard {
		out := make([]Shard, len(names))
		for i, n := range names {
			out[i] = Shard{Name: n}
		}
		return out
	}
	for _, tc := range []struct {
		src, dst []string
		want     map[string]string
	}{
		{[]string{"a", "b"}, []string{"x", "y"}, map[string]string{"a": "x", "b": "y"}},
		// 8.0 config shards on both sides pair, wherever listShards puts them.
		{[]string{"config", "a", "b"}, []string{"x", "y", "config"}, map[string]string{"config": "config", "a": "x", "b": "y"}},
		{[]string{"a", "config"}, []string{"config", "x"}, map[string]string{"config": "config", "a": "x"}},
		// A config shard on one side only is a shard like the others.
		{[]string{"config", "a"}, []string{"x", "y"}, map[string]string{"config": "x", "a": "y"}},
		{[]string{"a", "b"}, []string{"config", "y"}, map[string]string{"a": "config", "b": "y"}},
	} {
		got, err := Twins(shards(tc.src...), shards(tc.dst...))
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Twins(%v, %v) = %v, %v; want %v", tc.src, tc.dst, got, err, tc.want)
		}
	}
	if _, err := Twins(shards("a", "b"), shards("x")); err == nil || !strings.Contains(err.Error(), "2 shards and the destination 1") {
		t.Errorf("Twins of 2 and 1 shards: %v", err)
	}
}

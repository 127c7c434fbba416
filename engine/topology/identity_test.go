package topology

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

func TestCompareFindsTheSameServerWrittenTwoWays(t *testing.T) {
	a := Identity{ClusterID: primitive.ObjectID{1}, Routers: normalHosts([]string{"Mongos.Example.com"}),
		Shards: shardHosts([]Shard{{Name: "s0", Hosts: []string{"DB0.example.com:27018"}}})}
	b := Identity{ClusterID: primitive.ObjectID{2}, Routers: normalHosts([]string{"mongos.example.com:27017"}),
		Shards: shardHosts([]Shard{{Name: "d0", Hosts: []string{"db0.example.com:27018", "db9:27018"}}})}
	o := Compare(a, b)
	if o.SameClusterID || len(o.Hosts) != 2 {
		t.Fatalf("overlap %+v", o)
	}
	want := "db0.example.com:27018 is the source's shard s0 member and the destination's shard d0 member; mongos.example.com:27017 is the source's mongos and the destination's mongos"
	if got := o.Describe(); got != want {
		t.Fatalf("describe:\n %s\nwant\n %s", got, want)
	}
	b.Routers, b.Shards = []string{"other:27017"}, nil
	if o := Compare(a, b); o.Any() {
		t.Fatalf("two clusters share %s", o.Describe())
	}
	// An unknown clusterId is no evidence of one cluster.
	if o := Compare(Identity{}, Identity{}); o.Any() {
		t.Fatal("two unknown identities compare as one cluster")
	}
	if s := a.String(); !strings.Contains(s, "cluster "+a.ClusterID.Hex()) || !strings.Contains(s, "mongos mongos.example.com:27017") || !strings.Contains(s, "shards s0") {
		t.Fatalf("String: %s", s)
	}
}

package prepare

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
)

// ownershipAfter is what shard owns in the clusters' source after change.
func ownershipAfter(t *testing.T, shard string, change func(src *topology.Cluster)) Ownership {
	t.Helper()
	src, _ := clusters(t)
	if change != nil {
		change(src)
	}
	o, err := OwnershipOf(src.Databases, src.Collections, shard)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func regionChunk(t *testing.T, lo, hi any, shard string) topology.Chunk {
	return topology.Chunk{Min: raw(t, bson.D{{Key: "region", Value: lo}}), Max: raw(t, bson.D{{Key: "region", Value: hi}}), Shard: shard}
}

// A split changes no ownership; a chunk moved, a primary moved, or a collection
// resharded is a change for every shard it touched, and names what moved.
func TestChangesFindTheMovesThatTouchAShard(t *testing.T) {
	split := func(src *topology.Cluster) {
		src.Collections[0].Chunks = []topology.Chunk{regionChunk(t, primitive.MinKey{}, "f", "s0"), regionChunk(t, "f", "m", "s0"), regionChunk(t, "m", primitive.MaxKey{}, "s1")}
	}
	moved := func(src *topology.Cluster) {
		src.Collections[0].Chunks = []topology.Chunk{regionChunk(t, primitive.MinKey{}, "f", "s0"), regionChunk(t, "f", "m", "s1"), regionChunk(t, "m", primitive.MaxKey{}, "s1")}
	}
	primary := func(src *topology.Cluster) { src.Databases[0].Primary = "s0" }
	resharded := func(src *topology.Cluster) {
		c := &src.Collections[0]
		c.UUID = primitive.Binary{Subtype: 4, Data: []byte("0123456789abcdef")}
		c.Key = bson.D{{Key: "name", Value: 1}}
		c.Chunks = []topology.Chunk{{Min: raw(t, bson.D{{Key: "name", Value: primitive.MinKey{}}}), Max: raw(t, bson.D{{Key: "name", Value: primitive.MaxKey{}}}), Shard: "s1"}}
	}
	for _, tc := range []struct {
		name   string
		change func(*topology.Cluster)
		shard  string
		want   string // "" for no change
		reshrd bool
	}{
		{"split", split, "s0", "", false},
		{"nothing", nil, "s1", "", false},
		{"moved, donor", moved, "s0", "chunks of app.users moved", false},
		{"moved, recipient", moved, "s1", "chunks of app.users moved", false},
		{"primary, donor", primary, "s1", "primary shard of database app moved from s1 to s0", false},
		{"primary, recipient", primary, "s0", "primary shard of database app moved from s1 to s0", false},
		{"resharded", resharded, "s0", "app.users was resharded", true},
	} {
		was := ownershipAfter(t, tc.shard, nil)
		now := ownershipAfter(t, tc.shard, tc.change)
		got := Changes(tc.shard, was, now, nil)
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: changes %+v, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0].What, tc.want) || got[0].Resharded != tc.reshrd):
			t.Errorf("%s: changes %+v, want one saying %q (resharded %v)", tc.name, got, tc.want, tc.reshrd)
		}
	}
	// Dropped and created again under a new UUID with the same key: the replay's DDL,
	// unless the changelog shows a resharding (moveCollection keeps {_id: 1}).
	recreated := func(src *topology.Cluster) {
		src.Collections[0].UUID = primitive.Binary{Subtype: 4, Data: []byte("fedcba9876543210")}
	}
	was, now := ownershipAfter(t, "s0", nil), ownershipAfter(t, "s0", recreated)
	if got := Changes("s0", was, now, nil); len(got) != 0 {
		t.Errorf("recreated: %+v, want no change", got)
	}
	if got := Changes("s0", was, now, map[string]bool{"app.users": true}); len(got) != 1 || !got[0].Resharded {
		t.Errorf("resharded per the changelog: %+v, want the resharding", got)
	}
}

// A resumed copy takes the ranges the shard owned at its T0, not those of the chunk
// map it resumes with.
func TestShardAtCopiesWhatTheShardOwnedAtItsT0(t *testing.T) {
	src, dst := clusters(t)
	before, err := OwnershipOf(src.Databases, src.Collections, "s0")
	if err != nil {
		t.Fatal(err)
	}
	src.Collections[0].Chunks = []topology.Chunk{regionChunk(t, primitive.MinKey{}, "f", "s0"), regionChunk(t, "f", primitive.MaxKey{}, "s1")}
	plan, err := NewPlan(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := plan.ShardAt("s0", before)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.Namespaces) != 1 || sp.Namespaces[0].NS() != "app.users" {
		t.Fatalf("s0's namespaces at its T0: %+v", sp.Namespaces)
	}
	n := sp.Namespaces[0]
	for _, region := range []string{"a", "g", "l"} {
		if ok, _, err := n.Owns(raw(t, bson.D{{Key: "_id", Value: 1}, {Key: "region", Value: region}}), nil); err != nil || !ok {
			t.Errorf("region %q: owned %v (%v), want owned as at T0 ([MinKey, m))", region, ok, err)
		}
	}
	if ok, _, _ := n.Owns(raw(t, bson.D{{Key: "_id", Value: 1}, {Key: "region", Value: "x"}}), nil); ok {
		t.Error(`region "x" owned by s0, which never owned it`)
	}
	now, _ := plan.Shard("s0")
	if ok, _, _ := now.Namespaces[0].Owns(raw(t, bson.D{{Key: "_id", Value: 1}, {Key: "region", Value: "g"}}), nil); ok {
		t.Fatal("the chunk map of now still gives s0 region g: the test shows nothing")
	}
	// s1, primary of app, owns the unsharded capped app.logs by its database.
	sp1, err := plan.ShardAt("s1", ownershipAfter(t, "s1", nil))
	if err != nil {
		t.Fatal(err)
	}
	var nss []string
	for _, n := range sp1.Namespaces {
		nss = append(nss, n.NS())
	}
	if strings.Join(nss, ",") != "app.users,app.logs" {
		t.Errorf("s1's namespaces at its T0: %v", nss)
	}
}

package topology

import (
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func privilege(t *testing.T, doc bson.D) Privilege {
	t.Helper()
	raw, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePrivilege(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllowsFollowsMongoDBResourceMatching(t *testing.T) {
	anyDB := privilege(t, bson.D{{Key: "resource", Value: bson.D{{Key: "db", Value: ""}, {Key: "collection", Value: ""}}}, {Key: "actions", Value: bson.A{"find", "insert"}}})
	configDB := privilege(t, bson.D{{Key: "resource", Value: bson.D{{Key: "db", Value: "config"}, {Key: "collection", Value: ""}}}, {Key: "actions", Value: bson.A{"find"}}})
	settings := privilege(t, bson.D{{Key: "resource", Value: bson.D{{Key: "db", Value: "config"}, {Key: "collection", Value: "settings"}}}, {Key: "actions", Value: bson.A{"update"}}})
	anyUsers := privilege(t, bson.D{{Key: "resource", Value: bson.D{{Key: "db", Value: ""}, {Key: "collection", Value: "users"}}}, {Key: "actions", Value: bson.A{"remove"}}})
	cluster := privilege(t, bson.D{{Key: "resource", Value: bson.D{{Key: "cluster", Value: true}}}, {Key: "actions", Value: bson.A{"listShards"}}})
	buckets := privilege(t, bson.D{{Key: "resource", Value: bson.D{{Key: "db", Value: "app"}, {Key: "system_buckets", Value: ""}}}, {Key: "actions", Value: bson.A{"find"}}})
	a := Access{Known: true, Privileges: []Privilege{anyDB, configDB, settings, anyUsers, cluster, buckets}}

	for _, tc := range []struct {
		target  Resource
		actions []string
		want    bool
	}{
		{DatabaseResource("app"), []string{"find"}, true},
		{CollectionResource("app", "orders"), []string{"find", "insert"}, true},
		{CollectionResource("app", "orders"), []string{"update"}, false},
		{CollectionResource("app", "system.js"), []string{"find"}, false},  // system collections need their own grant
		{CollectionResource("local", "oplog.rs"), []string{"find"}, false}, // {db:""} does not reach local
		{CollectionResource("config", "chunks"), []string{"find"}, true},   // ... config needs its own grant, present here
		{CollectionResource("config", "chunks"), []string{"insert"}, false},
		{CollectionResource("config", "settings"), []string{"update"}, true},
		{CollectionResource("config", "shards"), []string{"update"}, false},
		{CollectionResource("shop", "users"), []string{"remove"}, true},
		{ClusterResource, []string{"listShards"}, true},
		{ClusterResource, []string{"find"}, false},
		{CollectionResource("app", "orders"), []string{"listShards"}, false}, // a cluster grant is not a collection grant
	} {
		if got := a.Allows(tc.target, tc.actions...); got != tc.want {
			t.Errorf("Allows(%v, %v) = %v, want %v", tc.target, tc.actions, got, tc.want)
		}
	}

	root := Access{Known: true, Privileges: []Privilege{privilege(t, bson.D{{Key: "resource", Value: bson.D{{Key: "anyResource", Value: true}}}, {Key: "actions", Value: bson.A{"anyAction"}}})}}
	for _, target := range []Resource{ClusterResource, CollectionResource("local", "oplog.rs"), CollectionResource("config", "settings"), DatabaseResource("app")} {
		if !root.Allows(target, "find", "update", "insert") {
			t.Errorf("anyResource/anyAction does not allow %v", target)
		}
	}
	if (Access{}).Allows(DatabaseResource("app"), "find") {
		t.Error("no privileges allowed a find")
	}
}

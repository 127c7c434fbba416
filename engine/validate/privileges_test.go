package validate

import (
	"strings"
	"testing"

	"github.com/shardlift/shardlift/engine/topology"
)

func TestDestinationPrivilegesAreCheckedBeforeAnythingChanges(t *testing.T) {
	// The Atlas procedure's roles (readWriteAnyDatabase and clusterAdmin) miss what
	// writes that bypass document validation and collMod need: dbAdminAnyDatabase.
	in := goodInput()
	in.Destination.Access.Privileges = append(clusterAdminPrivileges(),
		topology.Privilege{Resource: topology.Resource{}, Actions: []string{"find", "insert", "update", "remove", "listCollections",
			"createCollection", "createIndex", "dropCollection", "dropIndex", "renameCollectionSameDB"}})
	f := expect(t, Check(in), IDDestPrivileges, Failed, "bypassDocumentValidation on shop.carts, shop.orders", "collMod", "granted by dbAdminAnyDatabase", "nothing was changed")
	if strings.Contains(f.Detail, "splitChunk") || !strings.Contains(f.Fix, "dbAdminAnyDatabase") {
		t.Errorf("finding %+v", f)
	}

	// A user that can only read: every sharding command is named with clusterManager.
	in = goodInput()
	in.Destination.Access = readOnlyUser()
	f = expect(t, Check(in), IDDestPrivileges, Failed, "enableSharding on database shop, shop.orders", "splitChunk on shop.orders",
		"moveChunk", "clusterManager", "insert", "readWriteAnyDatabase", "config.settings")

	// On Atlas the fix is Atlas's own role.
	in.Destination.Endpoint = "mongodb+srv://cluster0.ab1cd.mongodb.net/"
	f = expect(t, Check(in), IDDestPrivileges, Failed)
	if !strings.Contains(f.Fix, "atlasAdmin") || !strings.Contains(f.Fix, "Atlas admin") {
		t.Errorf("Atlas fix %q", f.Fix)
	}

	// A destination holding data to wipe needs dropDatabase on it; zones may use
	// either enableSharding on the cluster or the config collections.
	in = goodInput()
	in.Destination.Namespaces = []topology.Namespace{{DB: "old", Collection: "things", Type: "collection"}}
	in.Destination.Access.Privileges = []topology.Privilege{
		{Resource: topology.Resource{}, Actions: []string{"find", "insert", "update", "remove", "createCollection", "createIndex", "dropCollection",
			"dropIndex", "renameCollectionSameDB", "bypassDocumentValidation", "collMod", "enableSharding", "splitChunk", "moveChunk"}},
		{Resource: topology.ClusterResource, Actions: []string{"listDatabases", "enableSharding"}},
		{Resource: topology.CollectionResource("config", "settings"), Actions: []string{"find", "update"}},
		{Resource: topology.DatabaseResource("config"), Actions: []string{"find"}},
	}
	f = expect(t, Check(in), IDDestPrivileges, Failed, "dropDatabase on database old", "wiping")
	if strings.Contains(f.Detail, "addShardToZone") {
		t.Errorf("enableSharding on the cluster allows the zone commands: %s", f.Detail)
	}
	in.Destination.Namespaces = nil
	expect(t, Check(in), IDDestPrivileges, Passed)

	in = goodInput()
	in.Destination.Access = topology.Access{Known: true}
	expect(t, Check(in), IDDestPrivileges, Passed, "does not enforce authentication")
	in.Destination.Access = topology.Access{}
	expect(t, Check(in), IDDestPrivileges, Failed, "could not be read")
}

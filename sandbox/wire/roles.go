package wire

import (
	"slices"

	"go.mongodb.org/mongo-driver/bson"
)

// grant is a privilege as connectionStatus lists it.
type grant struct {
	resource bson.D
	actions  []string
}

// Resources as MongoDB writes them in a privilege.
var (
	anyNormal  = bson.D{{Key: "db", Value: ""}, {Key: "collection", Value: ""}}
	clusterRes = bson.D{{Key: "cluster", Value: true}}
	configDB   = bson.D{{Key: "db", Value: "config"}, {Key: "collection", Value: ""}}
	localDB    = bson.D{{Key: "db", Value: "local"}, {Key: "collection", Value: ""}}
)

// Action sets of MongoDB's built-in roles (src/mongo/db/auth/builtin_roles.yml),
// reduced to the actions of the commands a migration and its tests run.
var (
	readActions      = []string{"changeStream", "collStats", "dbHash", "dbStats", "find", "killCursors", "listCollections", "listIndexes", "planCacheRead"}
	readWriteActions = slices.Concat(readActions, []string{"convertToCapped", "createCollection", "createIndex", "dropCollection",
		"dropIndex", "insert", "remove", "renameCollectionSameDB", "update"})
	dbAdminActions = []string{"bypassDocumentValidation", "collMod", "collStats", "compact", "convertToCapped", "createCollection",
		"dbStats", "dropCollection", "dropDatabase", "dropIndex", "createIndex", "listCollections", "listIndexes", "planCacheRead",
		"reIndex", "renameCollectionSameDB", "validate"}
	clusterManagerDBActions = []string{"clearJumboFlag", "splitChunk", "moveChunk", "enableSharding", "splitVector", "refineCollectionShardKey", "reshardCollection"}
	writeActions            = []string{"insert", "update", "remove"}
)

// builtinRoles are the privileges of the built-in roles the sandbox's user can hold,
// as connectionStatus with showPrivileges lists them: the database roles on any
// normal database (db "" and collection ""), which leaves out local and config;
// clusterManager's sharding actions on databases and collections, not on the
// cluster; clusterAdmin as clusterMonitor, hostManager and clusterManager together
// with dropDatabase.
var builtinRoles = map[string][]grant{
	"readAnyDatabase": {
		{anyNormal, readActions},
		{clusterRes, []string{"listDatabases"}},
	},
	"readWriteAnyDatabase": {
		{anyNormal, readWriteActions},
		{clusterRes, []string{"listDatabases"}},
	},
	"dbAdminAnyDatabase": {
		{anyNormal, dbAdminActions},
		{clusterRes, []string{"listDatabases", "applyOps"}},
	},
	"clusterMonitor": clusterMonitor,
	"clusterManager": clusterManager,
	"hostManager":    hostManager,
	"clusterAdmin":   slices.Concat(clusterMonitor, hostManager, clusterManager, []grant{{anyNormal, []string{"dropDatabase"}}}),
	"root":           {{bson.D{{Key: "anyResource", Value: true}}, []string{"anyAction"}}},
	// 8.0: direct operations on a shard's user data (src/mongo/db/auth/builtin_roles.yml).
	"directShardOperations": {{clusterRes, []string{"issueDirectShardOperations"}}},
}

var (
	clusterMonitor = []grant{
		{clusterRes, []string{"connPoolStats", "getCmdLineOpts", "getDefaultRWConcern", "getLog", "getParameter", "getShardMap", "hostInfo",
			"listDatabases", "listSessions", "listShards", "netstat", "replSetGetConfig", "replSetGetStatus", "serverStatus", "top", "inprog", "shardingState"}},
		{anyNormal, []string{"collStats", "dbStats", "getDatabaseVersion", "getShardVersion", "indexStats"}},
		{configDB, readActions},
		{localDB, readActions},
	}
	hostManager = []grant{
		{clusterRes, []string{"applicationMessage", "connPoolSync", "dropConnections", "logRotate", "setParameter", "shutdown", "flushRouterConfig",
			"fsync", "killAnyCursor", "killAnySession", "killop", "replSetResizeOplog", "resync"}},
		{anyNormal, []string{"killCursors"}},
	}
	clusterManager = []grant{
		{clusterRes, []string{"appendOplogNote", "applicationMessage", "replSetConfigure", "replSetGetConfig", "replSetGetStatus", "replSetStateChange",
			"resync", "addShard", "removeShard", "listSessions", "listShards", "flushRouterConfig", "cleanupOrphaned", "getDefaultRWConcern",
			"setDefaultRWConcern", "setFeatureCompatibilityVersion"}},
		{anyNormal, clusterManagerDBActions},
		{configDB, slices.Concat(readActions, clusterManagerDBActions, writeActions)},
		{localDB, slices.Concat(clusterManagerDBActions, writeActions)},
	}
)

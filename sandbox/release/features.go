package release

// What differs between releases, one predicate per difference, each with the MongoDB
// source (src/mongo/... in mongodb/mongo, or a ticket) it was read from. The README's
// sandbox table lists the same.

// ---- hello, buildInfo, serverStatus ----

// TopologyVersion: hello carries {processId, counter} and supports awaitable hello
// (4.4's streaming SDAM: src/mongo/rpc/topology_version.idl, src/mongo/db/repl/hello.idl).
func (r Release) TopologyVersion() bool { return r.AtLeast(V44) }

// StorageEngines is buildInfo's storageEngines of a community build: mmapv1 until 4.0,
// ephemeralForTest until 6.0, biggie in 4.2-5.0 (4.2's as a real 4.2.9
// local.startup_log records it).
func (r Release) StorageEngines() []string {
	switch {
	case !r.AtLeast(V42):
		return []string{"devnull", "ephemeralForTest", "mmapv1", "wiredTiger"}
	case !r.AtLeast(V60):
		return []string{"biggie", "devnull", "ephemeralForTest", "wiredTiger"}
	case !r.AtLeast(V70):
		return []string{"devnull", "ephemeralForTest", "wiredTiger"}
	}
	return []string{"devnull", "wiredTiger"}
}

// SCRAMSHA256 is offered from 4.0; 3.6 knows SCRAM-SHA-1 only.
func (r Release) SCRAMSHA256() bool { return r.AtLeast(V40) }

// MaxChunkSizeBytes is the default chunk size: 64 MiB, 128 MiB from 6.0
// (src/mongo/s/balancer_configuration.h).
func (r Release) MaxChunkSizeBytes() int64 {
	if r.AtLeast(V60) {
		return 128 << 20
	}
	return 64 << 20
}

// DirectShardOperationsEnforced: an authenticated user without the
// directShardOperations role may not run operations on user data directly on a shard
// of a cluster with two or more shards (SERVER-77073, src/mongo/db/direct_connection_util.cpp;
// 7.x only logged a warning).
func (r Release) DirectShardOperationsEnforced() bool { return r.AtLeast(V80) }

// ConfigShard: the config server can also hold data as shard "config" (8.0's
// transitionFromDedicatedConfigServer / --configShard).
func (r Release) ConfigShard() bool { return r.AtLeast(V80) }

// ---- replSetGetStatus (rs.status()) ----

// ReplStatusSyncingTo: syncingTo, the deprecated twin of syncSourceHost (3.6.6+,
// 4.0), at the top and on each member until 4.2; 4.4 dropped it.
func (r Release) ReplStatusSyncingTo() bool { return !r.AtLeast(V44) }

// ReplStatusWallTimes: from 4.2 the optimes carry their wall clock times
// (SERVER-40078, SERVER-40080), each member its lastAppliedWallTime and
// lastDurableWallTime (SERVER-54909, backported to 4.2), and the reply
// majorityVoteCount and writeMajorityCount (4.2.1).
func (r Release) ReplStatusWallTimes() bool { return r.AtLeast(V42) }

// ReplStatusVotingCounts: votingMembersCount and writableVotingMembersCount
// (SERVER-46274, 4.3.4), and each member's configTerm (4.4's term-aware reconfig).
func (r Release) ReplStatusVotingCounts() bool { return r.AtLeast(V44) }

// ---- config database formats (config server) ----

// DatabaseVersion: config.databases entries carry version {uuid, lastMod} from 4.0
// (SERVER-32983; setFeatureCompatibilityVersion 4.0 writes it for every database).
func (r Release) DatabaseVersion() bool { return r.AtLeast(V40) }

// DatabaseTimestamp: version.timestamp from 5.0 (src/mongo/s/database_version.idl).
func (r Release) DatabaseTimestamp() bool { return r.AtLeast(V50) }

// PartitionedByEnableSharding: enableSharding sets partitioned: true until 5.0; from
// 6.0 the field is deprecated and always false (SERVER-60926, type_database.idl).
func (r Release) PartitionedByEnableSharding() bool { return !r.AtLeast(V60) }

// ChunkHistory: config.chunks (and config.cache.chunks.*) entries carry history
// [{validAfter, shard}] from 4.0 (ShardingCatalogManager::upgradeChunksHistory).
func (r Release) ChunkHistory() bool { return r.AtLeast(V40) }

// ChunksByUUID: config.chunks is keyed by the collection's uuid instead of ns, with
// no lastmodEpoch, from 5.0 (src/mongo/s/catalog/type_chunk.cpp).
func (r Release) ChunksByUUID() bool { return r.AtLeast(V50) }

// ChunkObjectIDs: chunk _ids are ObjectIds from 4.4; before, "<ns>-<field>_<value>"
// strings (ChunkType::genID).
func (r Release) ChunkObjectIDs() bool { return r.AtLeast(V44) }

// OnCurrentShardSince: chunks record since when they are on their shard, from 7.0
// (ChunkType::onCurrentShardSince, for config.placementHistory).
func (r Release) OnCurrentShardSince() bool { return r.AtLeast(V70) }

// CollectionDropped: config.collections entries carry dropped: false, and lastmod is
// the initial collection version read as a date ("a historical oddity",
// ShardingCatalogManager::shardCollection), until 4.4; from 5.0 they carry timestamp
// and lastmod is the creation date (src/mongo/s/catalog/type_collection.idl).
func (r Release) CollectionDropped() bool { return !r.AtLeast(V50) }

// CollectionTimestamp: see CollectionDropped.
func (r Release) CollectionTimestamp() bool { return r.AtLeast(V50) }

// ConfigVersionLegacyFields: config.version keeps minCompatibleVersion 5 and
// currentVersion 6 until 6.0; 7.0 writes only {_id, clusterId} (SERVER-68888, SERVER-68889).
func (r Release) ConfigVersionLegacyFields() bool { return !r.AtLeast(V70) }

// TagObjectIDs: config.tags _ids are ObjectIds from 4.4; before, {ns, min}
// (ShardingCatalogManager::assignKeyRangeToZone).
func (r Release) TagObjectIDs() bool { return r.AtLeast(V44) }

// TopologyTime: config.shards entries carry topologyTime from 5.0 (type_shard.idl).
func (r Release) TopologyTime() bool { return r.AtLeast(V50) }

// DistLocks: config.locks and config.lockpings (the distributed lock manager) until
// 4.4; 5.0 replaced them with the DDL coordinators.
func (r Release) DistLocks() bool { return !r.AtLeast(V50) }

// PlacementHistory: config.placementHistory from 7.0 (type_namespace_placement.idl).
func (r Release) PlacementHistory() bool { return r.AtLeast(V70) }

// SessionsChunks is how many chunks config.system.sessions has once the balancer has
// run: one until 4.2.7; from 4.2.7 and 4.4 the balancer splits it into
// minNumChunksForSessionsCollection (1024) chunks spread evenly over the shards
// (SERVER-45624, balancer_chunk_selection_policy_impl.cpp); 7.1 stopped that
// (SERVER-78657), so 8.0 keeps the one chunk it was created with.
func (r Release) SessionsChunks() int {
	if r.AtLeast(V42) && !r.AtLeast(V80) {
		return 1024
	}
	return 1
}

// SessionsChunkSettings: 6.0 creates config.system.sessions with maxChunkSizeBytes
// 200000 and noAutoSplit (SERVER-66078, SERVER-67346); 7.0 dropped noAutoSplit.
func (r Release) SessionsChunkSettings() (maxChunkSizeBytes bool, noAutoSplit bool) {
	return r.AtLeast(V60), r == V60
}

// ---- shard-local namespaces ----

// IndexBuilds: config.system.indexBuilds, the two-phase index builds' record, from 4.4.
func (r Release) IndexBuilds() bool { return r.AtLeast(V44) }

// ImageCollection: config.image_collection, created at step-up for retryable
// findAndModify images, from 6.0 (MongoDSessionCatalog::onStepUp).
func (r Release) ImageCollection() bool { return r.AtLeast(V60) }

// CrossShardTransactions: a transaction through mongos may write on several shards,
// each of which prepares it before the commit (two-phase commit), from 4.2; 4.0 runs
// transactions on replica sets only.
func (r Release) CrossShardTransactions() bool { return r.AtLeast(V42) }

// TransactionsParentIndex: config.transactions has the parent_lsid partial index for
// internal sessions from 6.0 (MongoDSessionCatalog::getConfigTxnPartialIndexSpec).
func (r Release) TransactionsParentIndex() bool { return r.AtLeast(V60) }

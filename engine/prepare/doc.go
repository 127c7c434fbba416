// Package prepare does everything that happens before the first document is
// copied, and the one destructive step of a shard restart:
//
//	source mongos ── StopBalancer ─► balancer off, no migration in flight (wasOn kept)
//	      │                            ... migration ...  RestoreBalancer(wasOn)
//	      ▼
//	topology.Cluster (source) + topology.Cluster (destination)
//	      │ NewPlan: each source shard ─► its twin (topology.Twins: listShards order,
//	      │          8.0 config shards paired); per source shard the namespaces it
//	      │          owns data in, with key pattern, owned ranges (shardkey.Ranges
//	      │          from config.chunks), estimates, capped flag; its zones and the
//	      │          zone ranges. MongoDB's own namespaces (engine/namespaces) never
//	      │          enter it; 8.0 tracked unsharded collections are unsharded ones
//	      ▼
//	Plan ─┬─► Prepare(destination mongos):
//	      │     refuse kinds the engine does not migrate (time-series, ...)
//	      │     databases with their primary on the twin shard (enableSharding
//	      │       primaryShard, else movePrimary); each twin in its shard's zones
//	      │     collections with their options (capped, collation, validator,
//	      │       clusteredIndex; a clustered TTL relaxed, the original to a sink), views
//	      │     up to PlacementParallel collections at once: shardCollection (same
//	      │       key, same unique flag), its zone ranges, each range where the
//	      │       owning shard changes (and at zone bounds) moved to the twin of its
//	      │       source shard (moveRange 6.0+; split + moveChunk before), noBalance
//	      │       kept; the Placement progress reported after each range
//	      ├─► initialsync: the copy of each shard consumes its ShardPlan
//	      └─► ClearShard(destination, shard): delete what one source shard owns
//	            (a deleteMany per owned range, rangeFilter; a scan for hashed keys;
//	            its unsharded collections) before that shard is copied again
//
// HasUserData and Wipe guard and clear a destination before Prepare; PlaceMarker
// marks the destination as held by one migration (refusing a second one) and
// RemoveMarker unmarks it when that migration ends. Nothing is ever written to the
// source but the balancer setting.
package prepare

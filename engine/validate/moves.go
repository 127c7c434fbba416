package validate

import "fmt"

// IDManualMoves is the warning about the chunk and collection moves a DBA must not
// make while the migration runs.
const IDManualMoves = "source.manual-moves"

// manualMoves warns, always, what must not happen on the source during the
// migration: the balancer is stopped, and no data may be moved between shards by
// hand. Shardlift watches for it (the shards a move touched copy again; a
// resharding stops the migration), but a move costs a copy, or the migration.
func (c *checker) manualMoves() {
	const id, title = IDManualMoves, "No chunk or collection moves during the migration"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	balancer := "it is off now and stays off"
	if c.in.Source.Balancer.Enabled {
		balancer = fmt.Sprintf("it is %s now: Shardlift stops it at the start and turns it back on at the end", c.in.Source.Balancer.Mode)
	}
	c.add(Finding{ID: id, Status: Warning, Title: title,
		Detail: "Shardlift stops the source balancer for the migration (" + balancer + "). Until the cutover, nobody may move data between the source's shards: " +
			"no moveChunk, moveRange, mergeChunks with a move, movePrimary, reshardCollection, refineCollectionShardKey, moveCollection or unshardCollection, and no sh.startBalancer().",
		Fix: "Tell the DBAs and stop any script that moves chunks or primaries. If one moves anyway, Shardlift finds it: the shards it touched copy again from the start " +
			"(hours on a large shard); a resharding, moveCollection or unshardCollection stops the migration, which must then start again."})
}

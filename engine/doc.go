// Package engine is Shardlift's sync engine: it knows nothing of Fyne or bbolt.
//
//	validate ─► start (balancer off, destination prepared) ─► per shard, in parallel:
//	    initial sync (copy owned documents) ─► index builds ─► replay (tail the oplog)
//	─► ready (72 h timer) ─► cutover (optime gap to 0) ─► finalize ─► done
//
// This root package holds the lifecycle's vocabulary (State, Phase, Event, Snapshot)
// shared by the UI, the CLI and the store, and Migration, which drives one migration
// through it (migration.go draws its steps). The stages live in the sub-packages; the
// lifecycle reaches them through Clusters (parts.go), whose real implementation is
// mongo.go and whose fakes test every transition and refusal. The engine declares
// what it needs from storage (Checkpoints) and the app implements it on the store.
package engine

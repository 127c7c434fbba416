// Package engine is Shardlift's sync engine: it knows nothing of Fyne or bbolt.
//
//	validate ─► start (balancer off, destination prepared) ─► per shard, in parallel:
//	    initial sync (copy owned documents) ─► index builds ─► replay (tail the oplog)
//	─► ready (72 h timer) ─► cutover (optime gap to 0) ─► finalize ─► done
//
// This root package holds the lifecycle's vocabulary (State, Phase, Event) shared by
// the UI, the CLI and the store; the stages live in the sub-packages.
package engine

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
//
// Source shards are replica sets whose primary changes: docs/correctness.md holds
// the rules that keep a shard's sync to what its majority committed (the majority
// bound of the replay, T0 at the majority commit point and the copy at read concern
// majority, the replay's start for the transactions open at T0, the resume check
// of the checkpoint's term), on top of DESIGN.md section 2's.
package engine

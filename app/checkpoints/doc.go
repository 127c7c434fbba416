// Package checkpoints keeps one migration's engine state in the state file: it
// implements engine.Checkpoints over store.
//
//	engine ─► Checkpoints (New(st, id)) ─┬─ engine.Record ─► store.Migration (+ extras)
//	                                     └─ engine.ShardCheckpoint ─► store.ShardCheckpoint (+ extras)
//	state file (store) ─► Load ─► engine.Record, []engine.ShardCheckpoint ─► resume
//
// The CLI's migrate command and the desktop app's bridge both run the engine over it.
package checkpoints

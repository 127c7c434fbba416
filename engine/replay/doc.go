// Package replay applies one shard's oplog to the destination.
//
//	tailer ─► decode/filter ─► dispatch by document key ─► appliers (bulk, idempotent)
//	                │                                          │
//	                └──── Watermark.Dispatch ◄── Applied ──────┘──► checkpoint = Floor()
//
// The Watermark is the resume point: the newest ts at and before which everything is
// applied, which is the minimum over appliers, never the maximum.
package replay

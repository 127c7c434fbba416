// Package replay applies one shard's oplog to the destination.
//
//	Source.Tail ─► tailer ─► dispatcher ──────────────────────► K appliers ─► Destination
//	(from the      │          oplog.Decode, Translator.Process      (bulk writes,   (mongos)
//	 resume point, │          (filter, transactions, translate)     cut by count,
//	 first entry   │          PartitionKey(write) % K               bytes, updates;
//	 = resume)     │          bytes taken from the queue budget     each batch sent
//	               │                                                in rounds: one
//	               │                                                write per document
//	               │                                                per round, deletes
//	               │                                                beside the rest;
//	               │                                                up to Pipeline full
//	               │                                                batches in flight,
//	               │                                                a document in one)
//	               │              │                                      │
//	               │              ├─ DDL: waits for the writes queued to │
//	               │              │  its namespaces (the others go on),  │
//	               │              │  then DDLApplier (once for all       │
//	               │              │  shards); later writes to its        │
//	               │              │  namespaces wait, the rest go on     │
//	               │              └─ Watermark.Dispatch / Skip ◄─────────┘ Applied(ticket)
//	               └─ newest source ts (and Source.Newest every 2 s) ─► lag
//	  every second: Checkpointer.SaveApplied(Watermark.Floor())
//	  as it moves:  DDLApplier.Position(position, held scopes)
//
// The Watermark is the resume point: the newest ts at and before which everything is
// applied, which is the minimum over appliers, never the maximum. The entries of an
// open transaction hold it until the transaction's commit is applied. A second
// Watermark, the position other shards' DDL wait for, leaves aside the entries
// parked behind the shard's own DDL, reported apart by namespace (heldScopes).
//
// The tailer hands on only what the shard's majority committed (Source.Majority):
// entries past the majority commit point wait, one batch, until it moves, so no
// entry a failover can roll back is ever applied. A replay that starts at T0 reads
// from the first entry of the oldest transaction open at T0 (Config.TxnStart) and
// uses only the transactions' entries up to T0. A resume checks that the entry at
// the resume point is still the one applied (its ts and term): else the source
// rolled back and the shard fails with a *RollbackError. See docs/correctness.md.
//
// A Fetcher (buffer.go) runs the same tailer from the replay's first entry on,
// while the shard's copy runs, into an oplogbuf.Store on local disk; the replay
// then reads Fetcher.Source, the buffer, so a copy longer than the oplog window
// loses nothing. Entries in the buffer were majority-committed when fetched.
//
// A transient fault (network, step-down, shutdown) ends the run; the Shard starts a
// new one from the resume point after a backoff. An oplog that no longer holds the
// resume point fails the shard with a *GapError: nothing continues from a gap.
//
// DDL and the cluster: on a sharded source one DDL appears in the oplog of every
// shard it concerns. DDLOnce (the DDLApplier of a migration) matches the copies by
// their key (collection UUID included) and applies each once, when every replaying
// shard has applied what precedes it, through a DDLExecutor (MongoDDL: unique and TTL indexes relaxed for
// the sync, originals kept by a RelaxedSink). A collection the source shards (or
// whose key it refines) during the sync is sharded on the destination with the same
// key: from the primary shard's no-op where the release writes one (oplog/sharding.go),
// and on every version
// from ShardKeyWatch, the metadata watcher, which schedules it with DDLOnce for once
// every shard has replayed past the moment it noticed.
package replay

// Package bench measures Shardlift on sandbox clusters, each figure side by side
// with a ceiling measured in the same run on the same clusters, and prints one table
// (`make bench`).
//
//	Run ─► sandbox source + destination (3 shards each, in this process, FerretDB)
//	  ─► seed the source: bench.docs, N documents of ~1 KiB, hashed _id over 3 shards
//	  1. child "insert": plain parallel bulk insert of the same N documents ─► ceiling
//	     child "copy":   engine/initialsync, one copier per shard, as a migration ─► docs/s, MiB/s
//	  2. backlog of mixed oplog entries (one stream per shard) ─► engine/replay (3 shards)
//	     the same writes translated once, sent directly as ordered bulks ─► ceiling
//	  3. replay tailing the real source oplogs, while a write load of half the replay
//	     ceiling runs on the source for a minute ─► lag samples ─► median, worst
//	  4. go test -bench DecodeTranslate -cpu 1 ./engine/oplog ─► entries/s, allocs
//	  5. seed the source up to 4N documents, child "copy" again ─► peak RSS of both copies
//	  then, each on clusters of its own (--only N picks figures):
//	  6. a `shardlift migrate` child under the sandbox's load ─► load held, time to ready, lag
//	  7. Prepare's placement of 100,000 chunks at realistic command latency ─► commands, time
//	  8. figures 1 and 2 again at 40 ms added latency ─► ratios to 1 and 2
//	  9. finalize (I'm done to done), with and without the continuous verification
//	 10. one collection copied by 1 cursor and by 8 _id ranges per shard (13: at 40 ms)
//	 11. the move watcher's look at 50,000 chunks
//	 12. figure 2's replay into a destination that only acknowledges, 0 to 80 ms away
//	 14. the replay from the oplog buffer against the same from the source oplogs
//	 15. the catch-up rate with a unique index restored while syncing
//	 16. a copy that outlasts a small oplog window and still ends verified
//	  ─► Table.Print
//
// The copy and its ceiling run in child processes (this binary again, with a hidden
// mode) so that the peak resident set size of the migrating process is measured
// alone, without the FerretDB servers: the parent reads the child's rusage Maxrss.
// Timings are wall-clock on a machine that may be shared; the ratios compare runs
// made minutes apart on the same clusters.
package bench

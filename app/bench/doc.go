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
//	  ─► Table.Print
//
// The copy and its ceiling run in child processes (this binary again, with a hidden
// mode) so that the peak resident set size of the migrating process is measured
// alone, without the FerretDB servers: the parent reads the child's rusage Maxrss.
// Timings are wall-clock on a machine that may be shared; the ratios compare runs
// made minutes apart on the same clusters.
package bench

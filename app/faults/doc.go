// Package faults is the reliability suite's tooling (issue 9): it drives a real
// `shardlift migrate` child process through faults and proves that nothing was lost.
//
//	test process: source + destination sandboxes, a mixed write load on the source
//	      │  fault hooks: stop/isolate a shard, restart a router, shrink an oplog
//	      ▼
//	Migrator: `shardlift migrate --api ADDR --state FILE` as a child process
//	      │  (Kill is a real SIGKILL; Start again resumes from the same state file)
//	      ▼
//	API: GET /status, POST /cutover/start, /cutover/done, /cancel, /shards/{name}/restart
//	      ▼
//	Compare: every namespace of both clusters, every document, exact BSON
//	      ─► Row: documents compared, lost, duplicated, different, extra; time to converge
//	      ─► Table: one line per scenario and a total line (`make faults`)
//
// The scenarios themselves are the package's tests.
package faults

// Package oplog turns a shard's MongoDB oplog entries into destination writes
// and DDL: decoding, filtering, transaction buffering and translation. It does
// no I/O; the tailer that reads local.oplog.rs and the bulk writers that apply
// Writes through mongos live elsewhere and use the values defined here.
//
//	raw bson.Raw ──Decode──► Entry ──Translator.Process──► []Item ─┬─ ItemWrite ──PartitionKey──► applier n
//	                 │                 │                            ├─ ItemDDL ──DDLKey─────► once, after the
//	                 │                 ├─ filter: fromMigrate,      │                         namespace drained
//	                 │                 │  no-ops, admin/config/     └─ ItemPosition (nothing to apply, ts done)
//	                 │                 │  local, system.*
//	                 │                 ├─ transactions: applyOps, partialTxn chains,
//	                 │                 │  prepare/commit/abort, buffered by (lsid, txnNumber)
//	                 │                 └─ updates: replacement, $v:1 $set/$unset,
//	                 │                    $v:2 diff → $set/$unset or a pipeline
//	                 └─ malformed entry: error (ErrMalformed), never skipped
//
// The rules this package keeps (DESIGN.md, section 2, "Correctness rules"):
//
//   - Every write is targeted by the full document key (_id and shard key
//     fields) and is idempotent: inserts and replacements are replace-upserts,
//     deletes are deleteOne by key, updates are updateOne by key with operators
//     or a pipeline that reproduce the source's document byte for byte
//     (ApplyDiff is the reference for $v:2 diffs; see update.go for when plain
//     operators suffice).
//   - fromMigrate entries, no-ops and the admin, config and local databases and
//     system.* collections are skipped, but still advance the position. The
//     exceptions: applyOps, commitTransaction and abortTransaction commands
//     (wherever they are) carry user writes, whose inner operations are
//     filtered one by one; writes to <db>.system.views are view definitions
//     and become view DDL, and inserts into <db>.system.indexes (3.6 at FCV
//     3.4) are index builds.
//   - Transactions are applied only when they commit, each operation with the
//     commit entry's ts; aborted ones are dropped. While one is open, its first
//     ts is a floor for checkpoints (Translator.OpenTxnFloor).
//   - DDL is returned as values: the engine applies each once for the whole
//     cluster (copies matched by DDLKey, which holds the collection UUID) with
//     unique and TTL indexes relaxed for the duration
//     of the sync (RelaxIndexForSync, RelaxCollectionOptionsForSync).
//
// Entries and the Items translated from them alias the raw bytes given to
// Decode (transaction operations are copied while buffered).
package oplog

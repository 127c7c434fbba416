// Package initialsync copies the documents one source shard owns into the
// destination, resumably, and then builds that shard's indexes there.
//
//	T0 (the shard's majority commit point, engine.StartPoint) saved by the caller
//	before anything is copied; MongoSource's finds read at read concern majority,
//	afterClusterTime T0 (docs/correctness.md)
//
//	Copier.Copy: namespaces of the ShardPlan, largest first, Config.Namespaces at once
//	  per namespace (one partition, scanned in _id order, or capped: natural order)
//	  shard primary ─find─► scanner ─┬─ orphan (shard key outside the owned ranges): counted, skipped
//	                                  └─ batch (≤ BatchDocs, ≤ BatchBytes; a bigger document alone)
//	                                       │ budget.acquire(bytes), first come first served: the queues
//	                                       ▼   of every namespace of the shard hold at most QueueBytes
//	                          Config.Writers writers ─► unordered insertMany (capped: one ordered
//	                                       │            writer), bypassDocumentValidation, _id
//	                                       │            duplicates ignored (a duplicate naming no index
//	                                       │            is looked up by _id), transient errors retried
//	                                       ▼
//	                          tracker.complete(batch) ─► durable prefix: last _id, docs, bytes
//	                                       │
//	  checkpoint loop (≤ once per CheckpointEvery, and at the end) ─► CheckpointSink.SaveCopyProgress
//
//	RecordT0(shard) (its newest entry) when Copy returns: the consistency point
//	Copier.BuildIndexes: listIndexes on the shard ─► oplog.RelaxIndexForSync ─►
//	  original to IndexSink ─► createIndexes on the destination, once per namespace
//
// Resume: a partition restarts after the last _id whose batch and every earlier
// batch are durable. MongoDB's range operators only match values of the bound's
// own type class, so the resumed scan does not ask for {_id: {$gt: last}}, which
// would lose every document whose _id is of a later type (a string after a
// number, an ObjectId after a string); it asks for {_id: {$not: {$lte: last}}},
// which matches every other class too, and drops here, in MongoDB's order
// (shardkey.Compare), the few documents of earlier classes already copied.
// Batches written after the checkpoint before an interruption are written again:
// their duplicate-key errors on _id are expected and ignored.
//
// Memory: besides the QueueBytes of batches waiting or being written, each
// namespace being copied holds the batch it is cutting (at most BatchBytes plus one
// document) and the driver's cursor batch; nothing grows with the data size.
package initialsync

// Package initialsync copies the documents one source shard owns into the
// destination, resumably, and then builds that shard's indexes there.
//
//	T0 (the shard's majority commit point, engine.StartPoint) saved by the caller
//	before anything is copied; MongoSource's finds read at read concern majority,
//	afterClusterTime T0 (docs/correctness.md)
//
//	Copier.Copy: namespaces of the ShardPlan, largest first, Config.Namespaces at once
//	  per namespace: one partition scanned in _id order (capped: natural order), or,
//	  from PartitionBytes or PartitionDocs on the shard, Partitions _id ranges
//	  ($sample's quantiles), each with its own scanner, Partitions at once
//	  shard primary ─find─► scanner(s) ─┬─ orphan (shard key outside the owned ranges): counted, skipped
//	                                  └─ batch (≤ BatchDocs, ≤ BatchBytes; a bigger document alone)
//	                                       │ budget.acquire(bytes), first come first served: the queues
//	                                       ▼   of every namespace of the shard hold at most QueueBytes
//	                          Config.Writers writers ─► unordered insertMany (capped: one ordered
//	                                       │            writer), bypassDocumentValidation, _id
//	                                       │            duplicates ignored (a duplicate naming no index
//	                                       │            is looked up by _id), transient errors retried
//	                                       ▼
//	                          tracker.complete(batch) ─► durable prefix per partition: last _id, docs, bytes
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
// Partitions: a namespace copied in ranges is saved as "db.coll$i" for range i,
// with its bounds (Min included, Max excluded; the first range open below, the
// last open above, so that every type class is in one range); a saved namespace
// keeps the ranges it was split into, and a checkpoint written before partitions
// existed ("db.coll", no bounds) resumes as one partition. Each range is scanned
// with find's min and max on the hinted _id index, never with $gte/$lt: those
// bracket by type, so {$gte: 5, $lt: "b"} matches no document at all (no value
// is both a number and a string), and no filter of the two reaches the objects
// and binaries between a string and an ObjectId; index bounds follow MongoDB's order across types, as
// shardkey.Compare does, which the scanner checks on every _id it reads (out of its
// range: the partition fails rather than copy twice). A range resumes at min =
// its last durable _id, that one document skipped.
//
// Why $sample for the bounds: it needs only the read privilege and exists on every
// version from 3.2; with a sample under 5% of a collection of more than 100
// documents (a split namespace draws Partitions*32 from at least PartitionDocs or
// PartitionBytes) MongoDB draws it with a random cursor (storage-engine random
// seeks; pipeline_d.cpp, createRandomCursorExecutor), so it costs about the sample,
// not the collection. splitVector (db/s/split_vector_command.cpp, present 3.6 to
// 8.0) gives bounds by size exactly but walks the whole _id index before the copy
// starts (on a 2 TB collection, minutes of I/O), runs only on the primary, and
// needs the splitVector action (clusterManager), an internal command MongoDB marks
// deprecated. An index key walk is the same full walk done by the client. Sample
// quantiles give ranges of about equal document counts (a repeated sample is kept
// once); an unsampled namespace is copied whole. Not split: capped collections
// (natural order) and collections with a default collation (their _id index is
// in collation order, which the bytewise checks here do not follow).
//
// Memory: besides the QueueBytes of batches waiting or being written, each
// namespace being copied holds the batch it is cutting (at most BatchBytes plus one
// document) and the driver's cursor batch; nothing grows with the data size.
package initialsync

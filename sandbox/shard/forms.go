package shard

import "github.com/shardlift/shardlift/sandbox/wire"

// forms are the oplog forms of the MongoDB version (and feature compatibility version)
// a shard presents. MongoDB's own sources are the reference (op_observer_impl,
// repl/oplog.cpp, update/, index_builds_coordinator, batched_write_context); each field
// names the versions that write the form.
type forms struct {
	// legacyEnvelope: 3.6 to 4.2 build an entry as ts, t, h, v (int32), op, ns, ui,
	// fromMigrate, o2, wall, lsid, txnNumber, stmtId, prevOpTime, pre/postImageOpTime
	// and o last; 4.4 and later follow the IDL: lsid, txnNumber, op, ns, ui, o, o2,
	// stmtId, ts, t, v (int64), wall, prevOpTime, ...
	legacyEnvelope bool
	// hash is h: random before 4.2, 0 in 4.2, absent from 4.4.
	randomHash, zeroHash bool
	// wallBeforeV: 4.4 and 5.x write wall before v, 6.0 and later v before wall.
	wallBeforeV bool
	// uuids: collections have UUIDs (ui on entries) from FCV 3.6.
	uuids  bool
	update updateForm
	index  indexForm
	// specNS: index specs carry their ns before 4.4 (create's idIndex, dropIndexes' o2,
	// system.indexes inserts); createIndexes entries strip it.
	specNS bool
	// insertKey: inserts carry the document key in o2 from 6.0.
	insertKey bool
	// dropCounts: drop, and a rename that drops its target, carry o2 {numRecords} from 4.2.
	dropCounts bool
	// renameFlag: 3.6 always writes dropTarget (false, or the dropped target's UUID);
	// later versions write it only when a target was dropped.
	renameFlag bool
	// indexOptionsOld: collMod's o2 holds indexOptions_old {...} from 6.0; before, flat
	// expireAfterSeconds_old and (4.4+) hidden_old.
	indexOptionsOld bool
	// imageCollection: from 5.1 a retryable findAndModify stores its pre- or post-image in
	// config.image_collection and marks the entry needsRetryImage; before, a no-op entry
	// holds the image and the entry points to it (preImageOpTime / postImageOpTime).
	imageCollection bool
	// imageNoopLinked: 4.4 and 5.0 give the image no-op the same prevOpTime as the write.
	imageNoopLinked bool
	// batchedDeletes: from 6.1 a multi-document delete logs batches of up to 100 deletes
	// as one applyOps without lsid (a batch of one as a plain delete).
	batchedDeletes bool
	// vectoredInserts: from 8.0 an insert of several documents logs one applyOps with
	// multiOpType 1 per batch of up to 64.
	vectoredInserts bool
}

// updateForm is how an update entry's o describes the change.
type updateForm uint8

const (
	// modifierNoV: $set / $unset without $v (3.6 at FCV 3.4, the old update system).
	modifierNoV updateForm = iota
	// modifierV1: {$v: 1, $set, $unset} (3.6 at FCV 3.6 to 4.4; 5.0 at FCV 4.4).
	modifierV1
	// diffV2: {$v: 2, diff} (5.0 at FCV 5.0 and later).
	diffV2
)

// indexForm is how a createIndexes command is logged.
type indexForm uint8

const (
	// indexSystemInsert: an insert of the spec into <db>.system.indexes (FCV 3.4).
	indexSystemInsert indexForm = iota
	// indexCommand: one createIndexes entry per index, the spec inline (3.6).
	indexCommand
	// indexNoteThenCommand: a no-op {msg: "Creating indexes. Coll: <ns>"}, then one
	// createIndexes entry per index (4.0 and 4.2, and 4.4 at FCV 4.2).
	indexNoteThenCommand
	// indexTwoPhase: startIndexBuild then commitIndexBuild (or abortIndexBuild) with an
	// indexBuildUUID on a collection holding documents; createIndexes entries on an empty
	// one (4.4 at FCV 4.4 and later).
	indexTwoPhase
)

func formsOf(id wire.Identity) forms {
	f := forms{
		legacyEnvelope:  !id.AtLeast(4, 4),
		randomHash:      !id.AtLeast(4, 2),
		zeroHash:        id.AtLeast(4, 2) && !id.AtLeast(4, 4),
		wallBeforeV:     id.AtLeast(4, 4) && !id.AtLeast(6, 0),
		uuids:           id.FCVAtLeast(3, 6),
		specNS:          !id.AtLeast(4, 4),
		insertKey:       id.AtLeast(6, 0),
		dropCounts:      id.AtLeast(4, 2),
		renameFlag:      !id.AtLeast(4, 0),
		indexOptionsOld: id.AtLeast(6, 0),
		imageCollection: id.AtLeast(5, 1),
		imageNoopLinked: id.AtLeast(4, 4),
		batchedDeletes:  id.AtLeast(6, 1),
		vectoredInserts: id.AtLeast(8, 0),
	}
	switch {
	case !id.FCVAtLeast(3, 6):
		f.update = modifierNoV
	case id.AtLeast(5, 0) && id.FCVAtLeast(5, 0):
		f.update = diffV2
	default:
		f.update = modifierV1
	}
	switch {
	case !f.uuids:
		f.index = indexSystemInsert
	case id.AtLeast(4, 4) && id.FCVAtLeast(4, 4):
		f.index = indexTwoPhase
	case id.AtLeast(4, 0):
		f.index = indexNoteThenCommand
	default:
		f.index = indexCommand
	}
	return f
}

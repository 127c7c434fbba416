package engine

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/verify"
)

// Clusters is everything the lifecycle does to the source and the destination. The
// real one (NewMongoClusters) wires engine/topology, validate, prepare, initialsync,
// replay, cutover and verify; the lifecycle's tests fake it, so that every refusal
// and every transition is tested without a server.
type Clusters interface {
	// Validate runs every pre-migration check and returns what discovery found; a
	// *ValidationError lists the checks that failed.
	Validate(ctx context.Context) (Inventory, error)
	// Discover reads both clusters again without judging them, and plans the
	// migration from what it found (call it with the source balancer stopped).
	Discover(ctx context.Context) (Inventory, error)
	// Identify reads both clusters' identities (clusterId, shards, mongos).
	Identify(ctx context.Context) (src, dst topology.Identity, err error)
	// DestinationMarker reads the destination's marker: nil when no migration holds it.
	DestinationMarker(ctx context.Context) (*topology.Marker, error)
	// PlaceMarker marks the destination as held by this migration. When another
	// migration's marker is there, nothing is written and that marker is returned.
	PlaceMarker(ctx context.Context, m topology.Marker) (held *topology.Marker, err error)
	// RemoveMarker removes the destination's marker when it is this migration's,
	// leaving nothing of Shardlift's there; it returns the marker it found (nil
	// when none), which another migration's stays.
	RemoveMarker(ctx context.Context) (found *topology.Marker, err error)
	// DestinationData lists the destination's user databases that hold a collection.
	DestinationData(ctx context.Context) ([]string, error)
	// WipeDestination drops every user database of the destination, calling
	// dropped with each; it refuses a destination another migration holds.
	WipeDestination(ctx context.Context, dropped func(db string)) error
	// StopSourceBalancer stops the source balancer and waits until no chunk moves;
	// wasOn is its state as found.
	StopSourceBalancer(ctx context.Context) (wasOn bool, err error)
	// RestoreSourceBalancer starts the source balancer again when it was on.
	RestoreSourceBalancer(ctx context.Context, wasOn bool) error
	// SetDestinationBalancer stops (during the sync, so that chunks stay on the twin
	// shards) or starts the destination's balancer.
	SetDestinationBalancer(ctx context.Context, on bool) error
	// PrepareDestination creates databases, collections and chunks as the plan of
	// the last Discover says; originals of relaxed options go to the RelaxSink.
	// placed is told how far the placement of the sharded collections is, from
	// the start and after each range (one call at a time).
	PrepareDestination(ctx context.Context, placed func(Placement)) error
	// ClearShard deletes from the destination what one source shard owns, telling
	// progress (never nil) where it is as it goes.
	ClearShard(ctx context.Context, shard string, progress func(ClearProgress)) error
	// Restore re-applies one relaxed original on the destination; restoring one
	// already restored, or of a namespace or index gone since, does nothing.
	Restore(ctx context.Context, r Relaxed) error
	// Newest is the ts of the newest entry of a source shard's oplog.
	Newest(ctx context.Context, shard string) (primitive.Timestamp, error)
	// WritesAfter reads a source shard's oplog after ts (finalize: the entry its
	// replay applied last) and counts the writes to migrated namespaces there.
	WritesAfter(ctx context.Context, shard string, ts primitive.Timestamp) (LateWrites, error)
	// StartPoint reads where a source shard's copy and replay start: T0 at its
	// majority commit point, and where the replay must read from to see every
	// transaction open at T0 (docs/correctness.md).
	StartPoint(ctx context.Context, shard string) (StartPoint, error)
	// Ownership reads what a source shard owns in the source's chunk map now:
	// read before and after its T0, and saved with it, its copy takes exactly
	// that. A collection resharded since the plan is a *ReshardedError.
	Ownership(ctx context.Context, shard string) (prepare.Ownership, error)
	// NewCopier prepares one shard's copy from its saved progress: it reads what
	// the shard's majority committed, as of t0 or later, of what the shard owned
	// at t0 (own).
	NewCopier(ctx context.Context, shard string, t0 primitive.Timestamp, own prepare.Ownership, saved map[string]initialsync.PartitionProgress, sink initialsync.CheckpointSink) (Copier, error)
	// Moves compares what each shard owned at its T0 (owned) with the source's
	// chunk map now and returns every chunk or collection move between them (nil
	// when nothing moved). When something moved it plans again from the chunk map
	// of now, for the shards that copy again.
	Moves(ctx context.Context, owned map[string]prepare.Ownership) ([]prepare.Change, error)
	// OplogSource is a source shard's oplog, as the replay reads it without a
	// buffer (and the buffer's fetcher reads it).
	OplogSource(shard string) (replay.Source, error)
	// NewReplayer prepares one shard's oplog replay, starting after from.Resume.
	// ddlApplied are the DDL entries after resume that the shard read before and
	// whose DDL is applied; sink keeps the replay's checkpoints.
	NewReplayer(shard string, from ReplayStart, ddlApplied []replay.DDLCopy, sink ReplaySink) (Replayer, error)
	// RunDDL applies the DDL the shards' replays meet until ctx ends.
	RunDDL(ctx context.Context) error
	// ReleaseDDL tells the DDL applier that a shard whose replay stopped (failed or
	// restarting) holds nobody's DDL.
	ReleaseDDL(shard string)
	// Verify compares source and destination, namespace by namespace and range by
	// range; progress is called as namespaces finish.
	Verify(ctx context.Context, progress func(done, total int)) (*Verification, error)
	// BuildIndex builds on the destination an index the source has (spec as the
	// source lists it); an index of that name already there is left as it is.
	BuildIndex(ctx context.Context, ns string, spec bson.Raw) error
	// IndexDifferences compares every migrated collection's indexes on both
	// clusters (a fresh discovery of both): the finalize's check that the
	// destination holds each index as the source does, relaxed ones restored, and
	// no collection the source does not have (an empty one passes the document
	// comparison).
	IndexDifferences(ctx context.Context) ([]IndexDifference, error)
	// VerifyPlan lists, from a fresh discovery of both clusters, the namespaces
	// Verify compares; VerifySides reads them (the continuous verification).
	VerifyPlan(ctx context.Context) ([]verify.Namespace, error)
	VerifySides() (src, dst verify.Side)
	// OplogAfter reads up to limit entries of a source shard's oplog after ts, and
	// whether more follow; ErrOplogRolledPast when the oplog no longer holds ts.
	OplogAfter(ctx context.Context, shard string, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error)
	// DestinationShards lists the destination's shards; DestinationNewest and
	// DestinationOplogAfter read their oplogs as Newest and OplogAfter read the
	// source's (the continuous verification rechecks what changed on either side).
	DestinationShards(ctx context.Context) ([]string, error)
	DestinationNewest(ctx context.Context, shard string) (primitive.Timestamp, error)
	DestinationOplogAfter(ctx context.Context, shard string, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error)
	// Close releases the connections.
	Close(ctx context.Context) error
}

// StartPoint is where a shard's copy and replay start.
type StartPoint struct {
	// T0 is the shard's majority commit point when its copy starts: the copy
	// holds every write up to it and none a failover can roll back; the replay
	// applies the entries after it. T0Term is its term (0 when unknown), which
	// the replay checks (replay.Config.T0Term).
	T0     primitive.Timestamp
	T0Term int64
	// TxnStart, when not zero, is before T0: the first entry of the oldest
	// transaction that may be open at T0, where the replay starts reading.
	TxnStart primitive.Timestamp
}

// ReplayStart is where a shard's replay starts, from its checkpoint (see
// replay.Config).
type ReplayStart struct {
	// Resume is the entry the replay starts after, with its term when known: the
	// checkpoint's, or T0 when none was saved.
	Resume replay.OpTime
	// T0, T0Term and TxnStart are the shard's StartPoint; ConsistencyPoint is
	// where its copy ended.
	T0, TxnStart, ConsistencyPoint primitive.Timestamp
	T0Term                         int64
	// FromMigrate, when set, receives each fromMigrate insert the replay reads
	// after T0 (replay.Config.FromMigrate): the move watcher's cross-check.
	FromMigrate func(ns string, doc bson.Raw)
	// Buffered, when not nil, is the shard's oplog buffer, which the replay reads
	// instead of the source's oplog (see Config.OplogBufferDir).
	Buffered replay.Source
	// Ordered are the namespaces applied in oplog order (replay.Config.Ordered).
	Ordered *replay.OrderedNamespaces
}

// Connector opens the Clusters of a migration; it is called once per Run (and by a
// Cancel when no Run is active). relaxed receives the originals of what the sync
// relaxes on the destination.
type Connector func(ctx context.Context, cfg Config, relaxed RelaxSink) (Clusters, error)

// Inventory is what discovery found that the lifecycle needs.
type Inventory struct {
	// Shards are the source shards in listShards order.
	Shards []string
	// BalancerOn is the source balancer's state as discovery saw it.
	BalancerOn bool
	// Users are the source's users and user-defined roles.
	Users []User
	// Estimates are what each source shard's copy is expected to move, from the
	// source's collection statistics: the shard's totals until its copy starts.
	Estimates map[string]Estimate
}

// Estimate is a shard's expected copy: documents and bytes it owns.
type Estimate struct {
	Docs, Bytes int64
}

// Copier is one shard's copy (*initialsync.Copier).
type Copier interface {
	Copy(ctx context.Context) error
	BuildIndexes(ctx context.Context) error
	Snapshot() initialsync.Progress
}

// Replayer is one shard's oplog replay (*replay.Shard).
type Replayer interface {
	// Run replays until Stop (nil), a failure, or the end of ctx.
	Run(ctx context.Context) error
	// Stop stops reading, applies what was read, saves a final checkpoint and
	// waits for Run to return.
	Stop(ctx context.Context) error
	// Checkpoint saves the resume point now: everything applied so far.
	Checkpoint() error
	Snapshot() replay.Progress
}

// ReplaySink keeps one shard's replay checkpoints: its resume point, and the DDL
// it read that is applied.
type ReplaySink interface {
	replay.Checkpointer
	replay.DDLLog
}

// Placement is how far Prepare has placed the destination's sharded collections:
// collections, and ranges (runs of source chunks on one shard), placed of total.
type Placement = prepare.Placement

// RelaxSink receives the originals of everything the sync relaxes on the
// destination, from every stage that relaxes something: Prepare (collection
// options), the copy's index builds and the replay's DDL.
type RelaxSink interface {
	prepare.RelaxSink
	initialsync.IndexSink
	replay.RelaxedSink
}

var (
	_ Copier   = (*initialsync.Copier)(nil)
	_ Replayer = (*replay.Shard)(nil)
)

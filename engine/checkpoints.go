package engine

import (
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
)

// Checkpoints keeps a migration's state durably: the engine declares it, the app
// implements it on the store. Everything a restart needs to resume goes through it;
// the destination holds nothing of Shardlift's but its marker, and that only while
// the migration runs (topology.MarkerDatabase).
//
// The engine calls AppendEvent and SaveRecord from one goroutine at a time, and
// SaveShard from one goroutine at a time per shard (shards save concurrently).
type Checkpoints interface {
	// Load returns the migration's record and the checkpoints of its shards, in any
	// order. A migration that never started has State Draft (or Validated) and no
	// shard checkpoint.
	Load() (Record, []ShardCheckpoint, error)
	// AppendEvent records an event of the migration itself (Shard is "") and makes
	// ev.To its state, in one write.
	AppendEvent(ev Event) error
	// SaveRecord saves everything of the record but State and History.
	SaveRecord(r Record) error
	// SaveShard replaces one shard's checkpoint, whole.
	SaveShard(cp ShardCheckpoint) error
}

// Record is a migration's durable state, apart from its shards' checkpoints.
type Record struct {
	ID      string
	State   State
	History []Event // the migration's own events, oldest first
	// SourceIdentity and DestinationIdentity are the clusters this migration runs
	// between, recorded when it starts (or, in a state file older than them, when
	// it first resumes): a Run on other clusters is refused.
	SourceIdentity, DestinationIdentity *topology.Identity
	// BalancerWasOn is the source balancer's state before the migration stopped it,
	// nil until recorded (which happens before it is stopped).
	BalancerWasOn *bool
	// TimerDeadline is when the cutover window closes; zero before ready.
	TimerDeadline time.Time
	// Relaxed are the originals of what the sync relaxed on the destination, to be
	// restored when the migration finishes, is cancelled or expires.
	Relaxed      []Relaxed
	Verification *Verification
	// Continuous is the continuous verification's progress (continuous.go).
	Continuous *ContinuousState
	// Users are the source's users and roles, as discovery last found them.
	Users []User
	// Summary is set when the migration ends (done, cancelled or expired).
	Summary *Summary
	// Cancelling is the cancel the user asked for, recorded before its clean-up
	// begins: a restart finishes that cancel instead of syncing again. nil until
	// Cancel is called.
	Cancelling *CancelRequest
}

// CancelRequest is a cancel recorded before its clean-up (stop syncing, restore
// what the sync relaxed, restore both balancers) and before the migration is
// recorded cancelled.
type CancelRequest struct {
	At time.Time
	// From is the state the migration was cancelled in.
	From State
	// OptimeGap is how far the destination was behind when syncing stopped.
	OptimeGap time.Duration
}

// RelaxedKind says what a Relaxed original is.
type RelaxedKind string

const (
	// RelaxedIndex is an index specification built non-unique or with a huge TTL.
	RelaxedIndex RelaxedKind = "index"
	// RelaxedOptions are collection options withheld during the sync (collMod or
	// create options: a clustered collection's expireAfterSeconds, an index's
	// unique or TTL change).
	RelaxedOptions RelaxedKind = "options"
)

// Relaxed is one original the sync relaxed on a destination namespace.
type Relaxed struct {
	NS       string // "db.collection"
	Kind     RelaxedKind
	Original bson.Raw
	// InOrder: the replays apply the writes of NS in oplog order, because this
	// index's unique option is being (or was) restored while the sync runs; set
	// before the destination's index changes, so a resume orders NS from its
	// first write. UniqueRestored: the destination's index is unique again (the
	// finalize restores only what else is relaxed in it: its TTL).
	InOrder, UniqueRestored bool
}

// Summary is what remains of a migration once it ended.
type Summary struct {
	FinishedAt       time.Time
	Documents, Bytes int64
	// OptimeGap is how far the destination was behind when syncing stopped (the
	// staging copy's age when cancelled during the cutover).
	OptimeGap time.Duration
	// Verification is the verification's outcome in one line ("" when none ran).
	Verification string
	// UsersToRecreate are the source's users and roles ("name@db"), not migrated.
	UsersToRecreate []string
	// Notes say what the DBA must know (writes after the cutover were not copied).
	Notes []string
	// Shards say where each shard's sync stopped (cancelled or expired): what a
	// staging copy holds of it.
	Shards []ShardPosition
}

// ShardPosition is where one shard's sync stopped.
type ShardPosition struct {
	Shard string
	Phase Phase
	// AppliedUpTo is the source time up to which every entry of the shard is applied
	// on the destination (zero when none was).
	AppliedUpTo time.Time
	// Consistent says the shard's data on the destination is the source shard as it
	// was at AppliedUpTo: false while its copy was incomplete, its replay had not
	// reached the copy's consistency point, or it had failed (the entries after
	// AppliedUpTo were never applied).
	Consistent bool
	// Text says it in words ("shard rs0: applied up to 2026-03-01 10:20:11 UTC").
	Text string
}

// ShardCheckpoint is one source shard's resume point.
type ShardCheckpoint struct {
	Shard string
	Phase Phase
	// T0 is the shard's majority commit point when its copy started: replay
	// starts after it. ConsistencyPoint is the newest entry when the copy ended.
	T0, ConsistencyPoint primitive.Timestamp
	// T0Term is the term of the entry at T0, checked when the replay reads it (0:
	// unknown, in a state file older than it).
	T0Term int64
	// TxnStart, when not zero, is where the replay starts reading instead of after
	// T0: the first entry of the oldest transaction that may be open at T0.
	TxnStart primitive.Timestamp
	// Applied is the newest entry at and before which every entry is applied on the
	// destination (zero until the replay checkpoints once); AppliedTerm is that
	// entry's term, checked on resume (0: unknown, in a state file older than it).
	Applied     primitive.Timestamp
	AppliedTerm int64
	// Owned is what the shard owned when its copy started (the chunk map at T0):
	// its copy, resumed or not, takes exactly that; nil in a state file older than
	// it, and before T0.
	Owned *prepare.Ownership
	// Copied is the copy progress per partition (namespace).
	Copied map[string]initialsync.PartitionProgress
	// DDLApplied are the DDL entries after Applied that the shard read and whose
	// DDL is applied on the destination (from its copy or another shard's): read
	// again after a restart, they are not applied twice (see replay.DDLOnce).
	DDLApplied []replay.DDLCopy
	// Error is why the shard failed (Phase ShardFailed).
	Error string
	// Moved names the chunk or collection move that made the shard copy again,
	// until it is in sync again.
	Moved string
	// Buffered is the shard's oplog buffer as the checkpoint's save found it (zero
	// without one): a resumed migration shows it before its fetcher opens the buffer.
	Buffered BufferedOplog
	// History are the shard's phase changes, oldest first.
	History []Event
}

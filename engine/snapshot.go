package engine

import "time"

// Snapshot is a migration's progress at one moment: an immutable value, copied out
// under a short lock and cheap to take many times a second. The UI and the headless
// API read nothing else.
type Snapshot struct {
	ID    string
	Name  string // "source hosts -> destination hosts", for lists
	State State
	// Reason explains the current state when it needs explaining (why it failed or
	// expired, that a shard fell behind again while ready).
	Reason    string
	StartedAt time.Time
	// DestinationURI is the connection string the applications will use after the
	// cutover, without a password.
	DestinationURI string

	Overall Progress
	Shards  []ShardProgress

	// OptimeGap is how far the destination is behind the source: the largest of the
	// shards' gaps (ShardProgress.Gap); GapShard is the shard furthest behind.
	OptimeGap time.Duration
	GapShard  string
	// LastSourceWrite is the source time of the newest write to user data the shards'
	// tails read (an insert, update, delete, DDL or transaction; not a no-op, a chunk
	// migration's entry or an internal namespace's), and SourceWriteAge how long ago
	// that was by this workstation's clock: during the cutover they show whether the
	// applications really stopped writing. Zero when no write was read since the
	// replays (re)started. While the optime gap is not 0 a newer write may not be
	// read yet.
	LastSourceWrite time.Time
	SourceWriteAge  time.Duration
	// TimerDeadline is when the cutover window closes; zero before the migration is ready.
	TimerDeadline time.Time

	History      []Event
	Verification *Verification
	// SourceUsers are the users and roles to re-create on the destination: Shardlift
	// does not migrate them (nor their credentials).
	SourceUsers []User
	// Summary is what remains once the migration ended (done, cancelled, expired).
	Summary *Summary
}

// Progress counts one shard's work, or all shards' together.
type Progress struct {
	DocsCopied, DocsTotal   int64
	BytesCopied, BytesTotal int64
	// CopyRate is documents copied per second and ApplyRate oplog entries applied per
	// second, both over the last few seconds.
	CopyRate, CopyBytesRate, ApplyRate float64
	// Lag is the newest source oplog entry's time minus the last applied entry's time.
	Lag time.Duration
	// CopyRemaining and CatchUpRemaining are estimates; zero when unknown or done.
	CopyRemaining, CatchUpRemaining time.Duration
}

// Fraction is the share of the copy done, from 0 to 1.
func (p Progress) Fraction() float64 {
	if p.BytesTotal > 0 {
		return clamp01(float64(p.BytesCopied) / float64(p.BytesTotal))
	}
	if p.DocsTotal > 0 {
		return clamp01(float64(p.DocsCopied) / float64(p.DocsTotal))
	}
	return 0
}

func clamp01(f float64) float64 {
	return min(max(f, 0), 1)
}

// ShardProgress is one shard's row of the per-shard view.
type ShardProgress struct {
	Name  string
	Phase Phase
	Progress
	// Error is why the shard failed, with what to do ("restart this shard"); empty
	// unless Phase is ShardFailed. Retrying says a transient fault is being retried;
	// Waiting, that a DDL waits for the other shards to pass it (the lag grows meanwhile).
	Error    string
	Retrying string
	Waiting  string
	// Gap is this shard's optime gap: its source's newest entry minus its last
	// applied one. A failed shard's keeps growing with the source's clock (with the
	// wall clock while its source does not answer); a shard still copying counts
	// from its T0. Zero once the migration ended.
	Gap time.Duration
	// AppliedUpTo is the source time up to which every entry of the shard is applied
	// on the destination; zero before its replay applied one.
	AppliedUpTo time.Time
}

// Verification is the result of comparing source and destination.
type Verification struct {
	At         time.Time
	Namespaces int
	Ranges     int
	Matched    int
	Documents  int64
	Mismatches []Mismatch
	// Overridden is set when the user chose to finish despite mismatches.
	Overridden bool
}

// OK reports whether every range matched.
func (v *Verification) OK() bool { return v != nil && len(v.Mismatches) == 0 }

// Mismatch is one range whose documents differ.
type Mismatch struct {
	Namespace   string
	Range       string // the chunk or _id range, as text
	SourceCount int64
	DestCount   int64
	// SampleIDs are a few _id values (as extended JSON) that differ.
	SampleIDs []string
}

// User is a source user or role the DBA must re-create on the destination.
type User struct {
	Name  string
	DB    string
	Roles []string // "role@db"
	// IsRole is set for a user-defined role rather than a user.
	IsRole bool
}

package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/verify"
)

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
	// SourceReads is the read preference the copy and the tails read the source's
	// shards with ("secondary (tags member:1)"), then each shard read otherwise
	// ("nearest; shard s1: primary"); "" when it is invalid.
	SourceReads string

	Overall Progress
	Shards  []ShardProgress

	// OptimeGap is how far the destination is behind the source: the largest of the
	// shards' gaps (ShardProgress.Gap); GapShard is the shard furthest behind. It is
	// known (OptimeGapKnown) once every shard that has not failed replays its oplog,
	// or when syncing stopped for good (the gap then is the one it stopped at):
	// before, a shard still copying has no applied entry to measure from.
	OptimeGap      time.Duration
	GapShard       string
	OptimeGapKnown bool
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

	// Placement is how far Prepare placed the destination's sharded collections on
	// their twin shards, from the start of Prepare on (nil before; it stays once
	// Prepare ended, complete, and is not known again after a resume).
	Placement *Placement
	// Continuous is the continuous verification's progress (nil before it starts:
	// once every shard replays).
	Continuous *ContinuousProgress
	// UniqueIndexes says how far the restore of the relaxed unique indexes while
	// the sync runs got ("" before it starts: once every shard is in sync).
	UniqueIndexes string

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
	// TotalsEstimated is set while DocsTotal and BytesTotal are estimates: some
	// namespace is still to be copied, and its total is the larger of the source's
	// estimate and what it copied so far. A total is never below what was copied.
	TotalsEstimated bool
	// CopyUnfinished is set while a shard has yet to finish its copy (waiting to
	// start, copying or building its indexes): its totals can be exact and all
	// copied while the copy still runs, and Fraction then stays below 1 too.
	CopyUnfinished bool
	// CopyRate is documents copied per second and ApplyRate oplog entries applied per
	// second, both over the last few seconds.
	CopyRate, CopyBytesRate, ApplyRate float64
	// Lag is the newest source oplog entry's time minus the last applied entry's
	// time. It is known (LagKnown) once the shard replays and has read the source's
	// newest entry; for all shards together, once every shard's is.
	Lag      time.Duration
	LagKnown bool
	// CopyRemaining and CatchUpRemaining are estimates; zero when unknown or done.
	CopyRemaining, CatchUpRemaining time.Duration
}

// Fraction is the share of the copy done, from 0 to 1: the bytes copied over their
// total, or the documents when no byte is counted. While the totals are estimates
// it stays below 1 (an estimate too low must not show a copy still running as
// complete), so it reads 1 exactly when the copy is done, in bytes and documents alike.
func (p Progress) Fraction() float64 {
	if p.BytesTotal > 0 {
		return p.share(p.BytesCopied, p.BytesTotal)
	}
	return p.share(p.DocsCopied, p.DocsTotal)
}

// maxEstimatedFraction is the most Fraction reads while the totals are estimates.
const maxEstimatedFraction = 0.999

func (p Progress) share(copied, total int64) float64 {
	if total <= 0 {
		// Nothing to copy: done once that is known.
		if p.TotalsEstimated {
			return 0
		}
		if p.CopyUnfinished {
			return maxEstimatedFraction
		}
		return 1
	}
	f := min(max(float64(copied)/float64(total), 0), 1)
	if p.TotalsEstimated || p.CopyUnfinished {
		f = min(f, maxEstimatedFraction)
	}
	return f
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
	// Moved names the chunk or collection move during the migration that made the
	// shard copy again, until it is in sync again.
	Moved string
	// Reads is the read preference the shard's copy and tail read it with (the
	// source's, or the shard's own: "secondary (tags dc:west)"); "" when invalid.
	Reads string
	// Gap is this shard's optime gap: its source's newest entry minus its last
	// applied one. A failed shard's keeps growing with the source's clock (with the
	// wall clock while its source does not answer); a shard still copying counts
	// from its T0. Zero once the migration ended.
	Gap time.Duration
	// AppliedUpTo is the source time up to which every entry of the shard is applied
	// on the destination; zero before its replay applied one.
	AppliedUpTo time.Time
	// Ranges are the namespaces the shard copies in _id ranges (several cursors at
	// once), each with its ranges copied and in all; empty outside the copy.
	Ranges []NamespaceRanges
	// Clearing is where the clear of a restarted shard's data on the destination
	// is, while Phase is Clearing.
	Clearing ClearProgress
	// Buffer is the shard's oplog buffer; nil when the migration reads the oplog
	// directly (Config.OplogBufferDir empty) or before its fetcher started.
	Buffer *OplogBuffer
}

// NamespaceRanges is a namespace copied in _id ranges: Done of its Total ranges
// are copied.
type NamespaceRanges struct {
	Namespace   string
	Done, Total int
}

// RangesText says in a line how far the shard's namespaces copied in ranges are
// ("shop.orders: 3 of 8 ranges copied"), "" when it copies none in ranges.
func (p ShardProgress) RangesText() string {
	parts := make([]string, len(p.Ranges))
	for i, r := range p.Ranges {
		parts[i] = fmt.Sprintf("%s: %d of %d ranges copied", r.Namespace, r.Done, r.Total)
	}
	return strings.Join(parts, ", ")
}

// ClearProgress is where the clear of a restarted shard's data on the destination
// is: the namespace it clears (empty before the first), and how many of its
// namespaces are cleared, of how many.
type ClearProgress struct {
	Namespace   string
	Done, Total int
}

// String is the clear's progress for people ("shop.orders, 0 of 1 namespaces
// cleared"), or "" before it reached its first namespace.
func (c ClearProgress) String() string {
	if c.Namespace == "" {
		return ""
	}
	return fmt.Sprintf("%s, %d of %d namespaces cleared", c.Namespace, c.Done, c.Total)
}

// OplogBuffer is a shard's oplog buffer: the bytes it holds on disk and may hold,
// and the source time up to which the oplog is fetched into it. Full: it is at its
// limit and fetching waits for the replay (the shard's oplog window matters again
// meanwhile).
type OplogBuffer struct {
	Bytes, Limit int64
	// Entries are those held that the replay has not applied yet (after its
	// checkpoint).
	Entries     int64
	FetchedUpTo time.Time
	Full        bool
}

// BufferedOplog is what a shard's oplog buffer holds: bytes on disk, and entries
// not applied yet.
type BufferedOplog struct {
	Bytes, Entries int64
}

// Verification is the result of comparing source and destination.
type Verification struct {
	At         time.Time
	Namespaces int
	Ranges     int
	Matched    int
	Documents  int64
	Mismatches []Mismatch
	// Late are the writes the source took after the sync stopped (latewrites.go):
	// the destination lacks them even where every range matched.
	Late []LateWrites
	// Indexes are the indexes the destination does not hold as the source does,
	// compared by the finalize once the relaxed ones are restored.
	Indexes []IndexDifference
	// Overridden is set when the user chose to finish despite mismatches.
	Overridden bool
	// Continuous is what a finalize's verification took from the continuous
	// one; nil when it compared everything.
	Continuous *ContinuousReuse
}

// OK reports whether every range matched and no write reached the source after
// the sync stopped.
func (v *Verification) OK() bool {
	return v != nil && len(v.Mismatches) == 0 && len(v.Late) == 0 && len(v.Indexes) == 0
}

// IndexDifference is an index the destination does not hold as the source does.
type IndexDifference = verify.IndexDifference

// indexDifferencesNamed is how many index differences Differences names.
const indexDifferencesNamed = 3

// Differences says in a line what keeps the verification from passing: the
// ranges that differ, each shard's late writes, then the indexes that differ
// (the first few named).
func (v *Verification) Differences() string {
	var parts []string
	if len(v.Mismatches) > 0 || (len(v.Late) == 0 && len(v.Indexes) == 0) {
		parts = append(parts, fmt.Sprintf("%d of %d ranges differ", len(v.Mismatches), v.Ranges))
	}
	for _, l := range v.Late {
		parts = append(parts, l.String())
	}
	if n := len(v.Indexes); n > 0 {
		var named []string
		for _, d := range v.Indexes[:min(n, indexDifferencesNamed)] {
			named = append(named, d.String())
		}
		if n > indexDifferencesNamed {
			named = append(named, fmt.Sprintf("and %d more", n-indexDifferencesNamed))
		}
		noun := "index difference"
		if slices.ContainsFunc(v.Indexes, func(d IndexDifference) bool { return d.Index == "" }) {
			noun = "collection or index difference"
		}
		if n > 1 {
			noun += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", n, noun, strings.Join(named, "; ")))
	}
	return strings.Join(parts, "; ")
}

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

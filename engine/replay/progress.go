package replay

import (
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

// SkipReason says why an entry needed no write.
type SkipReason uint8

const (
	SkipNoop        SkipReason = iota // op "n": periodic no-ops and other markers
	SkipFromMigrate                   // written by a chunk migration
	SkipInternal                      // MongoDB's own namespaces (engine/namespaces)
	SkipAbortedTxn                    // abortTransaction: the transaction's writes are dropped
	SkipIndexBuild                    // startIndexBuild/abortIndexBuild: the index comes with commitIndexBuild
	SkipNoChange                      // an update or transaction that changes nothing Shardlift applies
	SkipCopied                        // at or before T0, read for a transaction open at T0: its write is in the copy
	SkipDropped                       // a write to a collection dropped since (DDLApplier.Route)
	numSkipReasons
)

func (r SkipReason) String() string {
	switch r {
	case SkipNoop:
		return "no-op"
	case SkipFromMigrate:
		return "fromMigrate"
	case SkipInternal:
		return "internal namespace"
	case SkipAbortedTxn:
		return "aborted transaction"
	case SkipIndexBuild:
		return "index build bookkeeping"
	case SkipNoChange:
		return "no change"
	case SkipCopied:
		return "in the copy"
	case SkipDropped:
		return "collection dropped since"
	}
	return "unknown"
}

// Progress is one shard's replay at one moment: a value, safe to keep.
type Progress struct {
	Shard string
	// Inserts, Updates and Deletes count the writes applied, by destination
	// operation (inserts and replacement updates are both replace-upserts and count
	// as Inserts); DDL counts the DDL this shard waited on (applied once for all
	// shards); Transactions counts committed transactions.
	Inserts, Updates, Deletes, DDL, Transactions int64
	// Skipped counts the entries that needed no write, by SkipReason.
	Skipped [numSkipReasons]int64
	// Tolerated counts write errors tolerated before the consistency point.
	Tolerated int64
	// Pipeline is how many batches each applier keeps in flight at most, as last
	// chosen (see Config.Pipeline); zero before the first run.
	Pipeline int
	// SetAside counts the items set aside behind a DDL on the destination, read
	// again once it was applied (see run.setAside).
	SetAside int64
	// UniqueWaits counts the writes refused as a duplicate on a restored unique
	// index and sent again once every earlier write of their namespace was applied
	// (see OrderedNamespaces).
	UniqueWaits int64
	// Entries counts the oplog entries read; Bytes the bytes of the writes applied.
	Entries, Bytes int64
	// ApplyRate is writes applied per second over the last few seconds.
	ApplyRate float64
	// Applied is the resume point (every entry up to it is applied); Newest is the
	// newest entry the source has, as last seen.
	Applied, Newest primitive.Timestamp
	// Lag is Newest minus Applied, in the oplog's one-second resolution.
	Lag time.Duration
	// LastWrite is the newest entry read that writes user data (an insert, update,
	// delete, DDL or transaction; not a no-op, a chunk migration's entry or an
	// internal namespace's): during the cutover it shows whether the applications
	// still write to the source. Zero until this replay read one.
	LastWrite primitive.Timestamp
	// Committed is the source's majority commit point as last read: no entry past
	// it is applied. CommitWaits counts the times the entries read waited for it to
	// move (each a CommitPollEvery).
	Committed   primitive.Timestamp
	CommitWaits int64
	// QueuedBytes is what the appliers' queues hold now, PeakQueuedBytes the most
	// they held in the current run (both bounded by Config.QueueBytes).
	QueuedBytes, PeakQueuedBytes int64
	// Retrying describes a transient fault being retried ("retrying: <cause>"), empty
	// otherwise; Err is why the shard failed.
	Retrying string
	// Waiting says a DDL this shard read waits for the other shards to pass it, so
	// that it is applied once: writes to its namespaces wait with it, and the lag grows
	// meanwhile. Empty when no DDL waits.
	Waiting string
	Err     error
}

// SkippedTotal sums the skipped entries over every reason.
func (p Progress) SkippedTotal() int64 {
	var n int64
	for _, c := range p.Skipped {
		n += c
	}
	return n
}

// counters are bumped by the pipeline and read by Snapshot.
type counters struct {
	inserts, updates, deletes, ddl, txns atomic.Int64
	skipped                              [numSkipReasons]atomic.Int64
	tolerated, entries, bytes, queued    atomic.Int64
	setAside                             atomic.Int64
	newest, lastWrite, committed         atomic.Uint64 // timestamps, T<<32|I
	commitWaits, uniqueWaits             atomic.Int64
}

func packTS(ts primitive.Timestamp) uint64 { return uint64(ts.T)<<32 | uint64(ts.I) }

func unpackTS(v uint64) primitive.Timestamp {
	return primitive.Timestamp{T: uint32(v >> 32), I: uint32(v)}
}

// raiseTS stores ts in a if it is newer.
func raiseTS(a *atomic.Uint64, ts primitive.Timestamp) {
	v := packTS(ts)
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// rateWindow is how far back ApplyRate looks.
const rateWindow = 5

// rates keeps the last few per-second samples of writes applied.
type rates struct {
	mu struct {
		sync.Mutex
		samples [rateWindow + 1]sample
		n, next int
	}
}

type sample struct {
	at     time.Time
	writes int64
}

func (r *rates) add(at time.Time, writes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.samples[r.mu.next] = sample{at, writes}
	r.mu.next = (r.mu.next + 1) % len(r.mu.samples)
	r.mu.n = min(r.mu.n+1, len(r.mu.samples))
}

// rate is writes per second between the oldest and the newest sample.
func (r *rates) rate() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.n < 2 {
		return 0
	}
	newest := r.mu.samples[(r.mu.next+len(r.mu.samples)-1)%len(r.mu.samples)]
	oldest := r.mu.samples[(r.mu.next+len(r.mu.samples)-r.mu.n)%len(r.mu.samples)]
	d := newest.at.Sub(oldest.at).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(newest.writes-oldest.writes) / d
}

// Package validate runs the pre-migration checks on a source and a destination
// cluster and reports each as a finding a DBA can act on. It changes nothing on
// either cluster: it only discovers them (engine/topology), reads each source shard
// for a moment to measure how fast the copy will read it, and judges what it found.
//
//	source endpoint ──topology.Discover──┐ (concurrently)
//	destination endpoint ──Discover──────┤
//	                                     ▼
//	   each source shard: read its largest collection for ReadSampleTime ─► ReadRate
//	                                     ▼
//	   Check(source, destination, read rates) — pure: clusters in, findings out
//	                                     ▼
//	Report{Findings: [reachable, sharded, CSRS, members, read preference, privileges, two clusters
//	        (clusterId, servers), destination not held, shard count, versions, FCV,
//	        what cannot cross, destination empty, destination privileges, users,
//	        collection kinds, zones, oplog window],
//	       Source, Destination}
//
// Every check always yields a finding: one that cannot run because an earlier one
// failed says so (status "not run") instead of disappearing.
package validate

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
)

// Status is a finding's outcome.
type Status string

const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Warning Status = "warning"
	// NotRun is a check that could not run because a check it depends on failed.
	NotRun Status = "not run"
)

// Finding is one check's result.
type Finding struct {
	// ID names the check, stable across runs ("source.sharded").
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Title is what the check verifies ("Source is a sharded cluster").
	Title string `json:"title"`
	// Detail is the one-line finding ("the source is a replica set (rs0)").
	Detail string `json:"detail"`
	// Fix is what the DBA should do; empty when the check passed.
	Fix string `json:"fix,omitempty"`
}

// Report is the outcome of Run.
type Report struct {
	Findings []Finding
	// Source and Destination are the discovered clusters (nil when unreachable),
	// for the UI to show.
	Source, Destination *topology.Cluster
	Elapsed             time.Duration
}

// Passed is true when no check failed and none was left unrun.
func (r Report) Passed() bool {
	for _, f := range r.Findings {
		if f.Status == Failed || f.Status == NotRun {
			return false
		}
	}
	return true
}

// Count is how many findings have the status.
func (r Report) Count(s Status) int {
	n := 0
	for _, f := range r.Findings {
		if f.Status == s {
			n++
		}
	}
	return n
}

// Finding returns the finding with the ID.
func (r Report) Finding(id string) (Finding, bool) {
	for _, f := range r.Findings {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}

// Summary is one line: "12 passed, 1 failed, 2 warnings, 3 not run".
func (r Report) Summary() string {
	warnings := "warnings"
	if r.Count(Warning) == 1 {
		warnings = "warning"
	}
	return fmt.Sprintf("%d passed, %d failed, %d %s, %d not run",
		r.Count(Passed), r.Count(Failed), r.Count(Warning), warnings, r.Count(NotRun))
}

// Run discovers both clusters concurrently, measures how fast each source shard
// reads (a moment's read of its largest collection, as the copy reads), and checks
// them. Each discovery is bounded by its endpoint's Timeout per step; ctx bounds the
// whole.
func Run(ctx context.Context, source, destination topology.Endpoint) Report {
	return RunFor(ctx, source, destination, Options{OplogBuffer: replay.DefaultBufferLimit})
}

// Options are what the migration about to start does that the checks judge.
type Options struct {
	// MigrationID is the migration being started ("" when validating alone).
	MigrationID string
	// OplogBuffer is each shard's oplog buffer limit in bytes (0: the replay
	// reads the source's oplog directly, without a buffer).
	OplogBuffer int64
}

// RunFor is Run for the migration about to start (opts.MigrationID): its own
// marker on the destination (left by an interrupted start) does not fail the check
// that no other migration holds the destination, and the oplog window is judged
// with its oplog buffer (opts.OplogBuffer). Run assumes the default buffer.
func RunFor(ctx context.Context, source, destination topology.Endpoint, opts Options) Report {
	start := time.Now()
	var (
		in = Input{MigrationID: opts.MigrationID, OplogBuffer: opts.OplogBuffer}
		g  errgroup.Group
	)
	reads, err := source.ReadsByShard()
	in.Reads, in.ShardReads, in.ReadsErr = reads.Default, reads.Shards, err
	g.Go(func() error {
		in.Source, in.SourceErr = topology.Discover(ctx, source)
		return nil
	})
	g.Go(func() error {
		in.Destination, in.DestinationErr = topology.Discover(ctx, destination)
		return nil
	})
	_ = g.Wait()
	if in.Source != nil && in.Source.Kind == topology.KindMongos {
		if in.ReadsErr != nil {
			reads = topology.ShardReads{Default: topology.ReadPreference{Mode: "primary"}}
		}
		in.ReadRates = measureReadRates(ctx, source, in.Source, reads)
	}
	return Report{Findings: Check(in), Source: in.Source, Destination: in.Destination, Elapsed: time.Since(start)}
}

// Input is what discovery returned for both sides: a nil cluster with the
// connection error, or a cluster with a possible metadata error; and each source
// shard's measured read rate, by shard name.
type Input struct {
	Source, Destination       *topology.Cluster
	SourceErr, DestinationErr error
	// MigrationID is the migration being started ("" when validating alone).
	MigrationID string
	// OplogBuffer is each shard's oplog buffer limit (Options.OplogBuffer).
	OplogBuffer int64
	// ReadRates are the source shards' measured read rates, by shard name.
	ReadRates map[string]ReadRate
	// Reads is the source's read preference (Endpoint.Reads) and ShardReads each
	// shard's own where it has one (Endpoint.ReadsByShard), or ReadsErr why they
	// are invalid.
	Reads      topology.ReadPreference
	ShardReads map[string]topology.ReadPreference
	ReadsErr   error
}

package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
)

// Snapshot is the migration's progress now, composed from the stages' counters
// under a short lock; it does no I/O and may be called many times a second.
func (m *Migration) Snapshot() Snapshot {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{
		ID:             m.cfg.ID,
		Name:           m.cfg.Source.String() + " -> " + m.cfg.Destination.String(),
		State:          m.mu.state,
		Reason:         m.mu.reason,
		StartedAt:      m.mu.startedAt,
		DestinationURI: withoutPassword(m.cfg.Destination),
		TimerDeadline:  m.mu.deadline,
		History:        slices.Clone(m.mu.history),
		SourceUsers:    slices.Clone(m.mu.users),
	}
	if p := m.mu.placement; p != nil {
		c := *p
		s.Placement = &c
	}
	if cv := m.mu.continuous; cv != nil {
		s.Continuous = cv.progress()
	}
	s.UniqueIndexes = m.mu.uniqueText
	if v := m.mu.verification; v != nil {
		c := *v
		c.Mismatches = slices.Clone(v.Mismatches)
		s.Verification = &c
	}
	o := &s.Overall
	// Before the shards are known, neither are the totals nor the lag.
	o.TotalsEstimated = len(m.mu.shards) == 0
	o.LagKnown = len(m.mu.shards) > 0
	gapKnown := true
	if m.sourceReads.Default.Mode != "" {
		s.SourceReads = m.sourceReads.String()
	}
	for _, sh := range m.mu.shards {
		row := sh.progressLocked()
		if m.sourceReads.Default.Mode != "" {
			row.Reads = m.sourceReads.Of(row.Name).String()
		}
		s.Shards = append(s.Shards, row)
		o.DocsCopied += row.DocsCopied
		o.DocsTotal += row.DocsTotal
		o.BytesCopied += row.BytesCopied
		o.BytesTotal += row.BytesTotal
		o.TotalsEstimated = o.TotalsEstimated || row.TotalsEstimated
		o.CopyUnfinished = o.CopyUnfinished || row.CopyUnfinished
		o.CopyRate += row.CopyRate
		o.CopyBytesRate += row.CopyBytesRate
		o.ApplyRate += row.ApplyRate
		if row.LagKnown {
			o.Lag = max(o.Lag, row.Lag)
		} else {
			o.LagKnown = false
			gapKnown = gapKnown && row.Phase == ShardFailed
		}
		o.CopyRemaining = max(o.CopyRemaining, row.CopyRemaining)
		o.CatchUpRemaining = max(o.CatchUpRemaining, row.CatchUpRemaining)
	}
	if !o.LagKnown {
		o.Lag = 0
	}
	m.placeLocked(&s, now)
	switch s.State {
	case Done, Cancelled, Expired:
		s.OptimeGapKnown = true
	case Syncing, Ready, CuttingOver, Finalizing:
		s.OptimeGapKnown = gapKnown && len(s.Shards) > 0
	}
	if !s.OptimeGapKnown {
		// A shard still copying has no applied entry to measure a gap from.
		s.OptimeGap, s.GapShard = 0, ""
	}
	return s
}

// progressLocked is one shard's row. Called with Migration.mu held.
func (sh *shardState) progressLocked() ShardProgress {
	row := ShardProgress{Name: sh.name, Phase: sh.phase, Error: sh.err, Moved: sh.moved}
	row.CopyUnfinished = sh.phase == Pending || sh.phase == Copying || sh.phase == BuildingIndexes
	switch {
	case sh.copier != nil:
		// The copier knows each namespace's totals as it copies it.
		p := sh.copier.Snapshot()
		row.DocsCopied, row.BytesCopied = p.Docs, p.Bytes
		row.DocsTotal, row.BytesTotal, row.TotalsEstimated = p.DocsTotal, p.BytesTotal, p.Estimated
		if sh.phase == Copying || sh.phase == BuildingIndexes {
			row.Retrying = p.Retrying
		}
		if sh.phase == Copying {
			for _, r := range p.Ranges {
				row.Ranges = append(row.Ranges, NamespaceRanges(r))
			}
		}
	case sh.phase == CatchingUp || sh.phase == Synced:
		// Resumed past its copy: the checkpoint counts what it copied.
		row.DocsCopied, row.BytesCopied = sh.copiedDocs, sh.copiedBytes
		row.DocsTotal, row.BytesTotal = sh.copiedDocs, sh.copiedBytes
	default:
		// Waiting to copy (at the start or after a restart): the plan's estimate.
		row.DocsCopied, row.BytesCopied = sh.copiedDocs, sh.copiedBytes
		row.DocsTotal = max(sh.estimate.Docs, sh.copiedDocs, sh.expectedDocs)
		row.BytesTotal = max(sh.estimate.Bytes, sh.copiedBytes, sh.expectedBytes)
		row.TotalsEstimated = true
	}
	if row.DocsTotal == 0 && row.BytesTotal == 0 {
		// A restarted shard whose new copy has not counted yet: what it had copied.
		row.DocsTotal, row.BytesTotal = sh.expectedDocs, sh.expectedBytes
		row.TotalsEstimated = true
	}
	row.DocsTotal = max(row.DocsTotal, row.DocsCopied)
	row.BytesTotal = max(row.BytesTotal, row.BytesCopied)
	if sh.replayer != nil {
		p := sh.replayer.Snapshot()
		row.ApplyRate = p.ApplyRate
		// A replay that has not read the source's newest entry yet has no lag.
		if !p.Newest.IsZero() {
			row.Lag, row.LagKnown = p.Lag, true
		}
		if p.Retrying != "" {
			row.Retrying = p.Retrying
		}
		row.Waiting = p.Waiting
	}
	if sh.clearing != nil {
		row.Phase, row.Clearing = Clearing, *sh.clearing
	}
	sh.bufferRow(&row)
	if n := len(sh.samples); n >= 2 {
		first, last := sh.samples[0], sh.samples[n-1]
		if dt := last.at.Sub(first.at).Seconds(); dt >= 1 {
			row.CopyRate = float64(last.docs-first.docs) / dt
			row.CopyBytesRate = float64(last.bytes-first.bytes) / dt
			if first.lag > last.lag && last.lag > 0 {
				row.CatchUpRemaining = time.Duration(float64(last.lag) * dt / (first.lag - last.lag).Seconds())
			}
		}
	}
	if sh.phase == Copying {
		switch {
		case row.CopyBytesRate > 0 && row.BytesTotal > row.BytesCopied:
			row.CopyRemaining = time.Duration(float64(row.BytesTotal-row.BytesCopied) / row.CopyBytesRate * float64(time.Second))
		case row.CopyRate > 0 && row.DocsTotal > row.DocsCopied:
			row.CopyRemaining = time.Duration(float64(row.DocsTotal-row.DocsCopied) / row.CopyRate * float64(time.Second))
		}
	}
	return row
}

// withoutPassword is the destination's connection string for the applications:
// the URI without its password, or the hosts as a URI.
func withoutPassword(e topology.Endpoint) string {
	if e.URI == "" {
		if len(e.Hosts) == 0 {
			return ""
		}
		return "mongodb://" + strings.Join(e.Hosts, ",") + "/"
	}
	return strings.Replace(topology.MaskURI(e.URI), ":****@", "@", 1)
}

// sourceReads are the source's read preference and its shards' own (zero when they
// are invalid: starting the migration says why).
func sourceReads(e topology.Endpoint) topology.ShardReads {
	r, err := e.ReadsByShard()
	if err != nil {
		return topology.ShardReads{}
	}
	return r
}

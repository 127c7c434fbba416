package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/replay"
)

// Where each shard stands against its source: its optime gap (which never freezes
// while the migration syncs, a failed shard's included), how far it applied, the
// source's last write, and where it stopped once syncing stopped for good.

// watchEvery is how often the source shards of failed shards are asked for their
// newest entry: their replays, which did it, have stopped.
const watchEvery = 2 * time.Second

// watchFailed reads, every watchEvery, the newest oplog entry of the source shard
// of each failed shard, so that the shard's optime gap keeps growing with the
// source's clock; a source shard that does not answer is marked unreachable and
// its gap grows with the wall clock. It runs until ctx ends.
func (m *Migration) watchFailed(ctx context.Context, c Clusters) {
	for {
		t := m.clock.NewTimer(watchEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		for _, sh := range m.shardList() {
			m.mu.Lock()
			failed := sh.phase == ShardFailed
			m.mu.Unlock()
			if !failed {
				continue
			}
			qctx, cancel := context.WithTimeout(ctx, watchEvery)
			ts, err := c.Newest(qctx, sh.name)
			cancel()
			if ctx.Err() != nil {
				return
			}
			m.mu.Lock()
			if sh.phase == ShardFailed {
				sh.unreachable = err != nil
				if err == nil && sh.watched.Before(ts) {
					sh.watched = ts
				}
			}
			m.mu.Unlock()
		}
	}
}

// shardGapLocked is one shard's optime gap now: its source's newest entry minus its
// last applied one, at least a second while it is behind at all. Called with mu
// held.
func (m *Migration) shardGapLocked(sh *shardState, now time.Time) time.Duration {
	var p replay.Progress
	if sh.replayer != nil {
		p = sh.replayer.Snapshot()
	}
	switch {
	case sh.phase == ShardFailed && (sh.replayer != nil || !sh.applied.IsZero()):
		// Its replay stopped: the source's newest entry is what the watch last read.
		applied, newest := p.Applied, p.Newest
		if sh.replayer == nil {
			applied = sh.applied
		}
		if newest.Before(sh.watched) {
			newest = sh.watched
		}
		g := gapBetween(applied, newest)
		if sh.unreachable {
			g = max(g, sinceTS(now, applied))
		}
		return g
	case sh.replayer != nil:
		if p.Newest.IsZero() {
			return sinceTS(now, p.Applied)
		}
		return gapBetween(p.Applied, p.Newest)
	case !sh.applied.IsZero():
		return sinceTS(now, sh.applied) // resumed, its replay not started yet
	case !sh.t0.IsZero():
		return sinceTS(now, sh.t0)
	}
	return max(time.Second, now.Sub(m.mu.startedAt))
}

// sinceTS is the wall-clock time since ts, at least a second.
func sinceTS(now time.Time, ts primitive.Timestamp) time.Duration {
	return max(time.Second, now.Sub(tsTime(ts)))
}

func tsTime(ts primitive.Timestamp) time.Time { return time.Unix(int64(ts.T), 0).UTC() }

// liveGap is the optime gap now: the largest of the shards' gaps, and the shard
// furthest behind.
func (m *Migration) liveGap() (time.Duration, string) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gapLocked(now)
}

// gapLocked is liveGap with mu held.
func (m *Migration) gapLocked(now time.Time) (time.Duration, string) {
	var gap time.Duration
	var worst string
	for _, sh := range m.mu.shards {
		if g := m.shardGapLocked(sh, now); g > gap || worst == "" {
			gap, worst = g, sh.name
		}
	}
	return gap, worst
}

// appliedLocked is how far a shard applied: its replay's resume point, or its
// checkpoint's without a replay. Called with mu held.
func (sh *shardState) appliedLocked() primitive.Timestamp {
	if sh.replayer != nil {
		return sh.replayer.Snapshot().Applied
	}
	return sh.applied
}

// placeLocked fills in what Snapshot shows of the shards against their sources:
// each shard's gap and applied position, the optime gap (frozen once syncing
// stopped for good), the source's last write and the summary. s.Shards are the
// rows of m.mu.shards, in order. Called with mu held.
func (m *Migration) placeLocked(s *Snapshot, now time.Time) {
	live := false
	switch s.State {
	case Done, Cancelled, Expired:
		s.OptimeGap = m.mu.finalGap
	case Syncing, Ready, CuttingOver, Finalizing:
		live = true
	}
	var lastWrite primitive.Timestamp
	for i, sh := range m.mu.shards {
		row := &s.Shards[i]
		if applied := sh.appliedLocked(); !applied.IsZero() {
			row.AppliedUpTo = tsTime(applied)
		}
		if sh.replayer != nil {
			if w := sh.replayer.Snapshot().LastWrite; lastWrite.Before(w) {
				lastWrite = w
			}
		}
		if !live {
			continue
		}
		row.Gap = m.shardGapLocked(sh, now)
		if row.Gap > s.OptimeGap || s.GapShard == "" {
			s.OptimeGap, s.GapShard = row.Gap, sh.name
		}
	}
	if !lastWrite.IsZero() {
		s.LastSourceWrite = tsTime(lastWrite)
		s.SourceWriteAge = max(0, now.Sub(s.LastSourceWrite))
	}
	if sum := m.mu.summary; sum != nil {
		c := *sum
		s.Summary = &c
	}
}

// positions says where each shard's sync stands, for the summary once syncing
// stopped (cancel, expiry): how far it applied, and whether what it holds on the
// destination is a consistent copy of its source shard.
func (m *Migration) positions() []ShardPosition {
	var out []ShardPosition
	for _, sh := range m.shardList() {
		cp := sh.checkpoint()
		m.mu.Lock()
		phase, applied := sh.phase, sh.appliedLocked()
		m.mu.Unlock()
		p := ShardPosition{Shard: sh.name, Phase: phase}
		if !applied.IsZero() {
			p.AppliedUpTo = tsTime(applied)
		}
		at := p.AppliedUpTo.Format("2006-01-02 15:04:05 UTC")
		switch {
		case phase == ShardFailed && !applied.IsZero():
			p.Text = fmt.Sprintf("shard %s failed and stopped at %s: its source's entries after that were never applied (entries lost), so the copy of this shard is not a consistent staging copy", sh.name, at)
		case phase == ShardFailed:
			p.Text = fmt.Sprintf("shard %s failed during its copy: the copy of this shard is incomplete, not a consistent staging copy", sh.name)
		case phase != CatchingUp && phase != Synced:
			p.Text = fmt.Sprintf("shard %s was %s: the copy of this shard is incomplete, not a consistent staging copy", sh.name, strings.ReplaceAll(string(phase), "_", " "))
		case applied.Before(cp.ConsistencyPoint):
			p.Text = fmt.Sprintf("shard %s applied up to %s, before the end of its own copy (%s): the copy of this shard is not consistent yet, not a consistent staging copy",
				sh.name, at, tsTime(cp.ConsistencyPoint).Format("2006-01-02 15:04:05 UTC"))
		default:
			p.Consistent = true
			p.Text = fmt.Sprintf("shard %s applied every entry up to %s (source time)", sh.name, at)
		}
		out = append(out, p)
	}
	return out
}

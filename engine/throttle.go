package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/verify"
)

// The continuous verification's bound on what its reads take from the clusters
// while the replay runs (docs/correctness.md, "Continuous verification"):
//
//   - The replay has priority. Before a read, while a source shard's replay lags
//     (Config.ContinuousYieldLag or more), the cursor waits; once a shard is no
//     longer in sync, the comparison stops (errReplayFirst) and its range is
//     compared again by a later step, when every shard is back in sync.
//   - A duty cycle, by measured time: each cursor counts the time its reads take
//     (the server's answer to each batch, as the client sees it) and pauses so
//     that it reads at most a fraction duty of its time. A slower cluster (a busy
//     sandbox, a large document, a cold cache) makes the pauses longer by itself,
//     where a fixed rate of documents would take more of a slow cluster.

// errReplayFirst stops a comparison when a shard's replay is no longer in sync:
// the clusters are its replay's until then.
var errReplayFirst = errors.New("a shard's replay fell behind: the comparison stops and is taken up again once every shard is in sync")

const (
	// yieldPoll is how often a yielding cursor looks at the replays' lag again,
	// and the longest a cursor reads without looking.
	yieldPoll = 100 * time.Millisecond
	// minPause: a cursor pays its pauses once they add up to this, not after each
	// document.
	minPause = 20 * time.Millisecond
)

// readGovernor paces the continuous verification's cursors.
type readGovernor struct {
	// duty is the fraction of its time a cursor may spend reading (0 < duty <= 1).
	duty float64
	// yieldLag: a cursor waits while a replay's lag is at least this.
	yieldLag time.Duration
	// lag is the largest lag of the shards' replays; ok is false when a shard is
	// not in sync.
	lag   func() (lag time.Duration, ok bool)
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	// yielding counts the cursors waiting for a replay now (the progress says so).
	yielding atomic.Int32
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// yield waits while a replay lags; errReplayFirst once a shard is not in sync.
func (g *readGovernor) yield(ctx context.Context) error {
	waiting := false
	defer func() {
		if waiting {
			g.yielding.Add(-1)
		}
	}()
	for {
		lag, ok := g.lag()
		if !ok {
			return errReplayFirst
		}
		if lag < g.yieldLag {
			return nil
		}
		if !waiting {
			waiting = true
			g.yielding.Add(1)
		}
		if err := g.sleep(ctx, yieldPoll); err != nil {
			return err
		}
	}
}

// waiting reports whether a cursor waits for a replay now.
func (g *readGovernor) waiting() bool { return g != nil && g.yielding.Load() > 0 }

// govern returns s with its cursors paced by g.
func (g *readGovernor) govern(s verify.Side) verify.Side { return &governedSide{Side: s, g: g} }

// governedSide is a verify.Side whose cursors g paces.
type governedSide struct {
	verify.Side
	g *readGovernor
}

func (s *governedSide) open(ctx context.Context, open func() (verify.Cursor, error)) (verify.Cursor, error) {
	if err := s.g.yield(ctx); err != nil {
		return nil, err
	}
	start := s.g.now()
	c, err := open()
	if err != nil {
		return nil, err
	}
	gc := &governedCursor{Cursor: c, g: s.g, looked: start}
	gc.count(start)
	return gc, nil
}

func (s *governedSide) Scan(ctx context.Context, db, coll string, idOnly, simple bool) (verify.Cursor, error) {
	return s.open(ctx, func() (verify.Cursor, error) { return s.Side.Scan(ctx, db, coll, idOnly, simple) })
}

func (s *governedSide) Find(ctx context.Context, db, coll string, ids []bson.RawValue, simple bool) (verify.Cursor, error) {
	return s.open(ctx, func() (verify.Cursor, error) { return s.Side.Find(ctx, db, coll, ids, simple) })
}

func (s *governedSide) ScanRange(ctx context.Context, db, coll string, keyPattern bson.Raw, min, max []byte, simple bool) (verify.Cursor, error) {
	return s.open(ctx, func() (verify.Cursor, error) {
		return s.Side.ScanRange(ctx, db, coll, keyPattern, min, max, simple)
	})
}

// governedCursor pauses, before a read, for what its reads so far owe the duty
// cycle, and yields to the replay at least every yieldPoll.
type governedCursor struct {
	verify.Cursor
	g      *readGovernor
	owed   time.Duration // pause due, not yet taken
	looked time.Time     // when the replays' lag was last looked at
	err    error
}

// count adds to what the cursor owes for a read begun at start, ending now.
func (c *governedCursor) count(start time.Time) {
	read := c.g.now().Sub(start)
	c.owed += time.Duration(float64(read) * (1 - c.g.duty) / c.g.duty)
}

func (c *governedCursor) Next(ctx context.Context) bool {
	if c.err != nil {
		return false
	}
	if c.owed >= minPause {
		if c.err = c.g.sleep(ctx, c.owed); c.err != nil {
			return false
		}
		c.owed = 0
	}
	if now := c.g.now(); now.Sub(c.looked) >= yieldPoll {
		if c.err = c.g.yield(ctx); c.err != nil {
			return false
		}
		c.looked = c.g.now()
	}
	start := c.g.now()
	ok := c.Cursor.Next(ctx)
	c.count(start)
	return ok
}

func (c *governedCursor) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.Cursor.Err()
}

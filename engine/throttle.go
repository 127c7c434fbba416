package engine

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/verify"
)

// throttledSide is a verify.Side whose cursors hand on at most perSecond
// documents a second: the continuous verification's bound on what its scans
// take from the clusters while the replay runs.
type throttledSide struct {
	verify.Side
	perSecond int
	now       func() time.Time
	sleep     func(ctx context.Context, d time.Duration) error
}

func throttle(s verify.Side, perSecond int) verify.Side {
	return &throttledSide{Side: s, perSecond: perSecond, now: time.Now, sleep: sleepCtx}
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

func (s *throttledSide) Scan(ctx context.Context, db, coll string, idOnly, simple bool) (verify.Cursor, error) {
	c, err := s.Side.Scan(ctx, db, coll, idOnly, simple)
	if err != nil {
		return nil, err
	}
	return &throttledCursor{Cursor: c, s: s, start: s.now()}, nil
}

func (s *throttledSide) Find(ctx context.Context, db, coll string, ids []bson.RawValue, simple bool) (verify.Cursor, error) {
	c, err := s.Side.Find(ctx, db, coll, ids, simple)
	if err != nil {
		return nil, err
	}
	return &throttledCursor{Cursor: c, s: s, start: s.now()}, nil
}

func (s *throttledSide) ScanRange(ctx context.Context, db, coll string, keyPattern bson.Raw, min, max []byte, simple bool) (verify.Cursor, error) {
	c, err := s.Side.ScanRange(ctx, db, coll, keyPattern, min, max, simple)
	if err != nil {
		return nil, err
	}
	return &throttledCursor{Cursor: c, s: s, start: s.now()}, nil
}

// throttledCursor waits, every throttleEvery documents, until the documents
// handed on are no more than perSecond a second since the cursor opened.
type throttledCursor struct {
	verify.Cursor
	s     *throttledSide
	start time.Time
	n     int
	err   error
}

const throttleEvery = 100

func (c *throttledCursor) Next(ctx context.Context) bool {
	if c.n > 0 && c.n%throttleEvery == 0 {
		if wait := c.wait(); wait > 0 {
			if err := c.s.sleep(ctx, wait); err != nil {
				c.err = err
				return false
			}
		}
	}
	if !c.Cursor.Next(ctx) {
		return false
	}
	c.n++
	return true
}

// wait is how long the cursor must wait before its next document.
func (c *throttledCursor) wait() time.Duration {
	due := c.start.Add(time.Duration(c.n) * time.Second / time.Duration(c.s.perSecond))
	return due.Sub(c.s.now())
}

func (c *throttledCursor) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.Cursor.Err()
}

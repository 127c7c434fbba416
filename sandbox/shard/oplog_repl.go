package shard

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

// What a replica set needs of a member's oplog (replset.go): a secondary appends the
// primary's entries as they are, a rollback cuts the entries past the common point,
// and an election raises the term new entries carry.

// since returns up to max entries whose ts is after ts, oldest first, and whether ts
// itself is still held (false: the entries after it may have rolled off).
func (l *oplog) since(ts primitive.Timestamp, max int) ([]entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.mu.entries), func(i int) bool { return compareTS(l.mu.entries[i].ts, ts) > 0 })
	held := ts.IsZero() || (i > 0 && l.mu.entries[i-1].ts == ts)
	end := min(len(l.mu.entries), i+max)
	// A member replicates up to the first hole, as MongoDB's oplog readers stop at
	// the all-durable point.
	for j := i; j < end; j++ {
		if l.mu.entries[j].hole.open() {
			end = j
		}
	}
	return append([]entry(nil), l.mu.entries[i:end]...), held
}

// appendEntries appends entries another member wrote, keeping their ts and terms.
func (l *oplog) appendEntries(es []entry) error {
	if len(es) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return errors.New("the shard's oplog is closed")
	}
	var buf []byte
	for _, e := range es {
		if compareTS(e.ts, l.mu.last) <= 0 {
			return fmt.Errorf("replicated entry %v is not after the member's last %v", e.ts, l.mu.last)
		}
		l.mu.entries = append(l.mu.entries, e)
		l.mu.size += int64(len(e.raw))
		wall, _ := e.raw.Lookup("wall").DateTimeOK()
		l.mu.last, l.mu.wall = e.ts, time.UnixMilli(wall)
		if t, ok := e.raw.Lookup("t").AsInt64OK(); ok {
			l.mu.term = max(l.mu.term, t)
		}
		buf = append(buf, e.raw...)
	}
	return l.appendedLocked(buf)
}

// truncateAfter removes the entries after ts (a rollback's common point) and returns
// them, oldest first; the file is rewritten without them.
func (l *oplog) truncateAfter(ts primitive.Timestamp) ([]entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.mu.entries), func(i int) bool { return compareTS(l.mu.entries[i].ts, ts) > 0 })
	if i == 0 {
		return nil, fmt.Errorf("the common point %v is older than the member's oplog", ts)
	}
	cut := append([]entry(nil), l.mu.entries[i:]...)
	if len(cut) == 0 {
		return nil, nil
	}
	for _, e := range cut {
		l.mu.size -= int64(len(e.raw))
	}
	clear(l.mu.entries[i:])
	l.mu.entries = l.mu.entries[:i]
	last := l.mu.entries[i-1]
	wall, _ := last.raw.Lookup("wall").DateTimeOK()
	l.mu.last, l.mu.wall = last.ts, time.UnixMilli(wall)
	// compactLocked rewrites the file from the entries held; make it run.
	l.mu.dead = max(l.mu.dead, 1)
	return cut, l.compactLocked()
}

// opTime is the newest entry's ts, its term and wall time.
func (l *oplog) opTime() (primitive.Timestamp, int64, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, _ := l.lastTermLocked()
	return l.mu.last, t, l.mu.wall
}

func (l *oplog) lastTermLocked() (int64, bool) {
	if n := len(l.mu.entries); n > 0 {
		return l.mu.entries[n-1].raw.Lookup("t").AsInt64OK()
	}
	return l.mu.term, true
}

// term is the term new entries carry.
func (l *oplog) term() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.term
}

// setTerm makes new entries carry term t (an election won).
func (l *oplog) setTerm(t int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.term = t
}

// entryAfter is the ts of the entry following ts (zero if none).
func (l *oplog) entryAfter(ts primitive.Timestamp) primitive.Timestamp {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.mu.entries), func(i int) bool { return compareTS(l.mu.entries[i].ts, ts) > 0 })
	if i == len(l.mu.entries) {
		return primitive.Timestamp{}
	}
	return l.mu.entries[i].ts
}

// setSecondary makes the oplog refuse (or take again) the entries of writes.
func (l *oplog) setSecondary(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.secondary = on
}

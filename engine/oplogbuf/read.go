package oplogbuf

import (
	"errors"
	"fmt"
	"os"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Reader reads a Store's entries in order, from an entry on, as they are appended.
type Reader struct {
	s    *Store
	from primitive.Timestamp
	seq  uint64 // the segment being read (0: none yet)
	r    *recordReader
}

// Read returns a Reader of the entries with ts >= from.
func (s *Store) Read(from primitive.Timestamp) *Reader {
	return &Reader{s: s, from: from}
}

// Next returns the entries appended and not yet read, at most max of them and
// about maxBytes (at least one), each in its own buffer; none when there are none
// yet (wait for Store.Changed). A record that fails its checksum is ErrCorrupt.
func (c *Reader) Next(max int, maxBytes int64) ([]bson.Raw, error) {
	var out []bson.Raw
	var bytes int64
	for len(out) < max && (len(out) == 0 || bytes < maxBytes) {
		if c.r == nil || c.r.off == c.r.end {
			more, err := c.advance()
			if err != nil || !more {
				return out, err
			}
			continue
		}
		raw, err := c.r.next()
		if err != nil {
			return out, err
		}
		c.r.off = c.r.next0
		pos, err := positionOf(raw)
		if err != nil {
			return out, err
		}
		if pos.TS.Before(c.from) {
			continue
		}
		out = append(out, raw)
		bytes += int64(len(raw))
	}
	return out, nil
}

// advance makes the reader's end the segment's readable size, or moves it to the
// next segment once it has read its own; more is false when nothing is readable.
func (c *Reader) advance() (more bool, err error) {
	c.s.mu.Lock()
	var cur, next *segment
	if c.seq == 0 {
		// The first read: the last segment that starts at or before from.
		for i, g := range c.s.segs {
			if i == 0 || !g.first.TS.IsZero() && !c.from.Before(g.first.TS) {
				next = g
			}
		}
	} else {
		for i, g := range c.s.segs {
			if g.seq == c.seq {
				cur = g
				if i+1 < len(c.s.segs) {
					next = c.s.segs[i+1]
				}
				break
			}
		}
		if cur == nil {
			c.s.mu.Unlock()
			return false, errors.New("the oplog buffer lost the segment being read (it was cleared meanwhile)")
		}
	}
	var size int64
	if cur != nil {
		size = cur.size
	}
	var nextSize int64
	if next != nil {
		nextSize = next.size
	}
	dir := c.s.dir
	c.s.mu.Unlock()

	if cur != nil && c.r != nil && size > c.r.end {
		c.r.end = size
		return true, nil
	}
	if next == nil || nextSize == 0 {
		return false, nil
	}
	f, err := os.Open(next.path(dir))
	if err != nil {
		return false, fmt.Errorf("read the oplog buffer: %w", err)
	}
	c.closeFile()
	c.seq = next.seq
	c.r = &recordReader{f: f, end: nextSize}
	return true, nil
}

func (c *Reader) closeFile() {
	if c.r != nil {
		c.r.f.Close()
		c.r = nil
	}
}

// Close releases the reader's file.
func (c *Reader) Close() { c.closeFile() }

package shardkey

import (
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// Chunk is one config.chunks entry of a collection: the keys in [Min, Max)
// belong to Shard. Min and Max are the stored bound documents, e.g.
// {x: MinKey} and {x: NumberLong(-4611686018427387902)}.
type Chunk struct {
	Min, Max Key
	Shard    string
}

// Range is the half-open key interval [Min, Max).
type Range struct {
	Min, Max Key
}

// maxKeyWidth is how many key fields lookups decode without allocating.
const maxKeyWidth = 8

// ChunkMap is the routing table of one sharded collection: every chunk, sorted
// by min, covering the key space from {MinKey...} to {MaxKey...} without gaps or
// overlaps. It is immutable and safe for concurrent use.
type ChunkMap struct {
	width  int
	mins   []bsoncore.Value // chunk i's min bound is mins[i*width : (i+1)*width]
	max    []bsoncore.Value // the last chunk's max bound
	shards []string         // chunk i's shard
}

// NewChunkMap builds the routing table from all chunks of one collection, in
// any order. It copies the bounds. It fails, wrapping ErrInconsistentChunks,
// when there are no chunks, bounds differ in shape, a chunk is empty, chunks
// overlap or leave a gap, or the first min is not all MinKey or the last max
// not all MaxKey: the signs of config.chunks read mid-split or mid-migration.
func NewChunkMap(chunks []Chunk) (*ChunkMap, error) {
	if len(chunks) == 0 {
		return nil, fmt.Errorf("%w: no chunks (a sharded collection has at least one)", ErrInconsistentChunks)
	}
	ranges := make([]Range, len(chunks))
	for i, c := range chunks {
		ranges[i] = Range{Min: c.Min, Max: c.Max}
	}
	b, err := newBounds(ranges)
	if err != nil {
		return nil, err
	}
	w, n := b.width, len(chunks)
	order := b.sortedOrder()
	m := &ChunkMap{
		width:  w,
		mins:   make([]bsoncore.Value, 0, n*w),
		shards: make([]string, 0, n),
	}
	for k, i := range order {
		if k > 0 {
			prev := order[k-1]
			switch c := compareValueLists(b.max(prev), b.min(i)); {
			case c < 0:
				return nil, fmt.Errorf("%w: gap between chunk %s on shard %s and chunk %s on shard %s",
					ErrInconsistentChunks, rangeString(ranges[prev]), chunks[prev].Shard,
					rangeString(ranges[i]), chunks[i].Shard)
			case c > 0:
				return nil, fmt.Errorf("%w: chunk %s on shard %s overlaps chunk %s on shard %s",
					ErrInconsistentChunks, rangeString(ranges[prev]), chunks[prev].Shard,
					rangeString(ranges[i]), chunks[i].Shard)
			}
		}
		m.mins = append(m.mins, b.min(i)...)
		m.shards = append(m.shards, chunks[i].Shard)
	}
	first, last := order[0], order[n-1]
	if !allOfType(b.min(first), bsontype.MinKey) {
		return nil, fmt.Errorf("%w: the first chunk starts at %s, not at MinKey: chunks are missing",
			ErrInconsistentChunks, ranges[first].Min)
	}
	if !allOfType(b.max(last), bsontype.MaxKey) {
		return nil, fmt.Errorf("%w: the last chunk ends at %s, not at MaxKey: chunks are missing",
			ErrInconsistentChunks, ranges[last].Max)
	}
	m.max = b.max(last)
	return m, nil
}

// Len returns the number of chunks.
func (m *ChunkMap) Len() int { return len(m.shards) }

// Shards returns the names of the shards that own at least one chunk, sorted.
func (m *ChunkMap) Shards() []string {
	out := slices.Clone(m.shards)
	slices.Sort(out)
	return slices.Compact(out)
}

// Owner returns the shard whose chunk contains key: the last chunk whose min is
// <= key, found by binary search, provided key < its max. ok is false for a
// malformed key or one with a different number of fields than the bounds.
// Keys of up to 8 fields are looked up without allocating.
func (m *ChunkMap) Owner(key Key) (shard string, ok bool) {
	var stack [maxKeyWidth]bsoncore.Value
	vals, ok := keyValues(stack[:0], key)
	if !ok || len(vals) != m.width {
		return "", false
	}
	lo, hi := 0, len(m.shards)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if compareValueLists(m.min(mid), vals) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	i := lo - 1
	if i < 0 || (i == len(m.shards)-1 && compareValueLists(vals, m.max) >= 0) {
		return "", false
	}
	return m.shards[i], true
}

// Ranges returns the key ranges owned by one shard, adjacent chunks merged.
// A shard without chunks owns nothing.
func (m *ChunkMap) Ranges(shard string) *Ranges {
	r := &Ranges{width: m.width}
	for i, s := range m.shards {
		if s != shard {
			continue
		}
		maxBound := m.max
		if i+1 < len(m.shards) {
			maxBound = m.min(i + 1)
		}
		if n := len(r.bounds); n > 0 && i > 0 && m.shards[i-1] == shard {
			copy(r.bounds[n-m.width:], maxBound) // extend the previous range
			continue
		}
		r.bounds = append(r.bounds, m.min(i)...)
		r.bounds = append(r.bounds, maxBound...)
	}
	return r
}

func (m *ChunkMap) min(i int) []bsoncore.Value { return m.mins[i*m.width : (i+1)*m.width] }

// Ranges is a set of disjoint half-open key ranges, typically the chunks one
// shard owns in one collection: a document whose key is in none of them is an
// orphan on that shard. It is immutable and safe for concurrent use.
type Ranges struct {
	width  int
	bounds []bsoncore.Value // range i is [bounds[2i*w:(2i+1)*w], bounds[(2i+1)*w:(2i+2)*w])
}

// NewRanges builds a set from ranges in any order, merging adjacent ones. It
// copies the bounds. It fails, wrapping ErrInconsistentChunks, if bounds differ
// in shape, a range is empty, or two ranges overlap. No ranges is the empty set.
func NewRanges(ranges []Range) (*Ranges, error) {
	if len(ranges) == 0 {
		return &Ranges{}, nil
	}
	b, err := newBounds(ranges)
	if err != nil {
		return nil, err
	}
	r := &Ranges{width: b.width}
	order := b.sortedOrder()
	for k, i := range order {
		if k > 0 {
			prev := order[k-1]
			switch c := compareValueLists(b.max(prev), b.min(i)); {
			case c > 0:
				return nil, fmt.Errorf("%w: range %s overlaps range %s",
					ErrInconsistentChunks, rangeString(ranges[prev]), rangeString(ranges[i]))
			case c == 0:
				copy(r.bounds[len(r.bounds)-b.width:], b.max(i))
				continue
			}
		}
		r.bounds = append(r.bounds, b.min(i)...)
		r.bounds = append(r.bounds, b.max(i)...)
	}
	return r, nil
}

// Len returns the number of disjoint ranges after merging adjacent ones.
func (r *Ranges) Len() int {
	if r.width == 0 {
		return 0
	}
	return len(r.bounds) / (2 * r.width)
}

// Contains reports whether key lies in one of the ranges (min inclusive, max
// exclusive), by binary search. A malformed key, or one with a different
// number of fields than the bounds, is in none. Keys of up to 8 fields are
// checked without allocating.
func (r *Ranges) Contains(key Key) bool {
	var stack [maxKeyWidth]bsoncore.Value
	vals, ok := keyValues(stack[:0], key)
	if !ok || len(vals) != r.width || r.width == 0 {
		return false
	}
	lo, hi := 0, r.Len()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if compareValueLists(r.bound(2*mid), vals) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo > 0 && compareValueLists(vals, r.bound(2*(lo-1)+1)) < 0
}

func (r *Ranges) bound(i int) []bsoncore.Value { return r.bounds[i*r.width : (i+1)*r.width] }

// Range returns the values of range i's bounds, in key order (i < Len()). The
// slices are the set's own: read them, do not change them.
func (r *Ranges) Range(i int) (min, max []bsoncore.Value) { return r.bound(2 * i), r.bound(2*i + 1) }

// bounds holds decoded copies of ranges' bounds: range i's min is
// vals[2i*width:(2i+1)*width] and its max the next width values.
type bounds struct {
	width int
	vals  []bsoncore.Value
}

// newBounds copies and decodes ranges, checking that every bound is a
// well-formed key of the same width and that every range is non-empty.
func newBounds(ranges []Range) (*bounds, error) {
	size := 0
	for _, r := range ranges {
		size += len(r.Min) + len(r.Max)
	}
	// One arena for all bound bytes; sized up front so values never move.
	arena := make([]byte, 0, size)
	b := &bounds{width: -1}
	for _, r := range ranges {
		for _, k := range []Key{r.Min, r.Max} {
			start := len(arena)
			arena = append(arena, k...)
			before := len(b.vals)
			var ok bool
			if b.vals, ok = keyValues(b.vals, Key(arena[start:])); !ok {
				return nil, fmt.Errorf("%w: bound %x of range %s", ErrMalformedBSON, []byte(k), rangeString(r))
			}
			w := len(b.vals) - before
			if w == 0 {
				return nil, fmt.Errorf("%w: range %s has a bound without fields", ErrInconsistentChunks, rangeString(r))
			}
			if b.width < 0 {
				b.width = w
			}
			if w != b.width {
				return nil, fmt.Errorf("%w: bound %s has %d fields, other bounds have %d",
					ErrInconsistentChunks, k, w, b.width)
			}
		}
		i := len(b.vals)/(2*b.width) - 1
		if compareValueLists(b.min(i), b.max(i)) >= 0 {
			return nil, fmt.Errorf("%w: range %s is empty (min must be below max)", ErrInconsistentChunks, rangeString(r))
		}
	}
	return b, nil
}

func (b *bounds) min(i int) []bsoncore.Value { return b.vals[2*i*b.width : (2*i+1)*b.width] }
func (b *bounds) max(i int) []bsoncore.Value { return b.vals[(2*i+1)*b.width : (2*i+2)*b.width] }

// sortedOrder returns the range indexes ordered by min.
func (b *bounds) sortedOrder() []int {
	order := make([]int, len(b.vals)/(2*b.width))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return compareValueLists(b.min(i), b.min(j)) })
	return order
}

func allOfType(vals []bsoncore.Value, t bsontype.Type) bool {
	for _, v := range vals {
		if v.Type != t {
			return false
		}
	}
	return true
}

func rangeString(r Range) string { return "[" + r.Min.String() + ", " + r.Max.String() + ")" }

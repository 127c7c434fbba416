// Package verify compares the destination with the source, namespace by namespace
// and range by range, in bounded memory:
//
//	namespaces (Options.Parallel at once)
//	  ranges: a sharded collection's chunks (the source's), or for an unsharded one
//	          _id ranges of Options.BucketDocs documents cut on the source
//	          ({_id: 1} scan, sorted by _id)
//	  ┌─ source ─ scan sorted by _id ─► range of each document ─► per range: count, SHA-256 ─┐
//	  └─ destination ─ the same, in parallel ─────────────────────────────────────────────────┤
//	                                                                                          ▼
//	  compare per range: count and hash equal ─► matched
//	  else ─► second pass: merge both _id-sorted scans, documents of the differing ranges
//	          only ─► a sample of _ids missing on one side or different (exact BSON bytes)
//
// A document's range is found from its own shard key (hashed keys hashed as MongoDB
// does, engine/shardkey), never by a range query, so it is exact for every BSON type.
// Documents are compared byte for byte, field order included. Within a range, both
// sides see the documents in the same _id order, so the running hashes agree exactly
// when the documents do.
package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"
	"sort"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// Defaults of Options.
const (
	DefaultParallel   = 4
	DefaultBucketDocs = 10000
	DefaultSamples    = 5
)

// Namespace is one collection to compare.
type Namespace struct {
	DB, Coll string
	// Pattern and Chunks (sorted by Min, tiling the key space) describe a sharded
	// collection's ranges: the source's chunks. Nil for an unsharded collection.
	Pattern *shardkey.Pattern
	Chunks  []shardkey.Chunk
	// Collated is a collection with a default collation: its scans ask for the
	// simple collation, so that they come in the bytewise _id order the ranges and
	// the merge of both sides compare in.
	Collated bool
}

// Name is "db.collection".
func (n Namespace) Name() string { return n.DB + "." + n.Coll }

// Options tune Run.
type Options struct {
	// Parallel namespaces are compared at once.
	Parallel int
	// BucketDocs is the size of an unsharded collection's _id ranges.
	BucketDocs int
	// Samples is how many differing _ids are listed per mismatched range.
	Samples int
}

// Side reads one cluster, through its mongos.
type Side interface {
	// Scan streams a collection's documents sorted by _id; idOnly projects {_id: 1};
	// simpleCollation compares string _ids by their bytes, whatever the collection's
	// default collation. A collection that does not exist scans as empty.
	Scan(ctx context.Context, db, coll string, idOnly, simpleCollation bool) (Cursor, error)
	// Find streams the documents of the given _ids, sorted by _id as Scan sorts.
	Find(ctx context.Context, db, coll string, ids []bson.RawValue, simpleCollation bool) (Cursor, error)
	// ScanRange streams the documents whose key in the index keyPattern (a shard
	// key's) lies in [min, max), in the index's order (find's min and max, the
	// index hinted): CompareRange.
	ScanRange(ctx context.Context, db, coll string, keyPattern bson.Raw, min, max []byte, simpleCollation bool) (Cursor, error)
}

// Cursor iterates a scan. Current is valid until the next call to Next.
type Cursor interface {
	Next(ctx context.Context) bool
	Current() bson.Raw
	Err() error
	Close(ctx context.Context) error
}

// Mismatch is one range whose documents differ.
type Mismatch struct {
	Namespace   string
	Range       string
	SourceCount int64
	DestCount   int64
	// SampleIDs are differing _ids, as extended JSON; IDs are the same _ids as
	// they are (at most Options.Samples: fewer means every differing _id).
	SampleIDs []string
	IDs       []bson.RawValue
}

// Result is a comparison's outcome.
type Result struct {
	Namespaces int
	Ranges     int
	Matched    int
	// Documents counts the source's documents compared.
	Documents  int64
	Mismatches []Mismatch
}

// Run compares every namespace; progress (may be nil) is called as namespaces
// finish, one call at a time. An error means the comparison could not be made (a read failed), not
// that something differs.
func Run(ctx context.Context, src, dst Side, namespaces []Namespace, opts Options, progress func(done, total int)) (*Result, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.BucketDocs <= 0 {
		opts.BucketDocs = DefaultBucketDocs
	}
	if opts.Samples <= 0 {
		opts.Samples = DefaultSamples
	}
	results := make([]nsResult, len(namespaces))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	var mu sync.Mutex // serializes progress calls
	done := 0
	for i, n := range namespaces {
		g.Go(func() error {
			r, err := compare(gctx, src, dst, n, opts)
			if err != nil {
				return fmt.Errorf("verify %s: %w", n.Name(), err)
			}
			results[i] = r
			mu.Lock()
			defer mu.Unlock()
			done++
			if progress != nil {
				progress(done, len(namespaces))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := &Result{Namespaces: len(namespaces)}
	for _, r := range results {
		out.Ranges += r.ranges
		out.Matched += r.ranges - len(r.mismatches)
		out.Documents += r.docs
		out.Mismatches = append(out.Mismatches, r.mismatches...)
	}
	return out, nil
}

type nsResult struct {
	ranges     int
	docs       int64
	mismatches []Mismatch
}

// ranges places documents into a namespace's ranges.
type ranges interface {
	// locate returns the range of a document, or -1 when it has none (a shard key
	// with an array: MongoDB cannot place such a document either).
	locate(doc bson.Raw) int
	len() int
	describe(i int) string
	// clone returns ranges another goroutine may use.
	clone() ranges
}

// acc is one range's running count and hash on one side.
type acc struct {
	count int64
	h     hash.Hash
}

func compare(ctx context.Context, src, dst Side, n Namespace, opts Options) (nsResult, error) {
	var rs ranges
	if n.Pattern != nil {
		if len(n.Chunks) == 0 {
			return nsResult{}, fmt.Errorf("sharded collection without chunks")
		}
		rs = &chunkRanges{pattern: n.Pattern, chunks: n.Chunks}
	} else {
		ids, err := idBoundaries(ctx, src, n, opts.BucketDocs)
		if err != nil {
			return nsResult{}, err
		}
		rs = ids
	}
	var accs [2][]acc
	var g errgroup.Group
	for side, s := range []Side{src, dst} {
		g.Go(func() error {
			a, err := hashSide(ctx, s, n, rs.clone())
			accs[side] = a
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nsResult{}, err
	}
	res := nsResult{ranges: rs.len()}
	var differ []int
	for i := range rs.len() + 1 { // the last slot holds unplaceable documents
		a, b := accs[0][i], accs[1][i]
		res.docs += a.count
		if a.count == b.count && (a.count == 0 || string(a.h.Sum(nil)) == string(b.h.Sum(nil))) {
			continue
		}
		if i == rs.len() {
			res.ranges++ // unplaceable documents count as a range of their own
		}
		differ = append(differ, i)
		desc := "documents whose shard key has an array"
		if i < rs.len() {
			desc = rs.describe(i)
		}
		res.mismatches = append(res.mismatches, Mismatch{Namespace: n.Name(), Range: desc, SourceCount: a.count, DestCount: b.count})
	}
	if len(differ) == 0 {
		return res, nil
	}
	samples, err := sampleDifferences(ctx, src, dst, n, rs, differ, opts.Samples)
	if err != nil {
		return nsResult{}, err
	}
	for k, i := range differ {
		res.mismatches[k].IDs = samples[i]
		for _, id := range samples[i] {
			res.mismatches[k].SampleIDs = append(res.mismatches[k].SampleIDs, id.String())
		}
	}
	return res, nil
}

// hashSide scans one side and folds each document into its range's count and
// hash. The slot after the last range holds unplaceable documents.
func hashSide(ctx context.Context, s Side, n Namespace, rs ranges) ([]acc, error) {
	accs := make([]acc, rs.len()+1)
	cur, err := s.Scan(ctx, n.DB, n.Coll, false, n.Collated)
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var lenBuf [4]byte
	for cur.Next(ctx) {
		doc := cur.Current()
		i := rs.locate(doc)
		if i < 0 {
			i = rs.len()
		}
		a := &accs[i]
		if a.h == nil {
			a.h = sha256.New()
		}
		a.count++
		binary.LittleEndian.PutUint32(lenBuf[:], uint32(len(doc)))
		a.h.Write(lenBuf[:])
		a.h.Write(doc)
	}
	return accs, cur.Err()
}

// sampleDifferences merges both sides' _id-ordered scans and lists, for each range
// in differ, up to max _ids that are on one side only or differ.
func sampleDifferences(ctx context.Context, src, dst Side, n Namespace, rs ranges, differ []int, limit int) (map[int][]bson.RawValue, error) {
	wanted := map[int]bool{}
	for _, i := range differ {
		wanted[i] = true
	}
	out := map[int][]bson.RawValue{}
	note := func(doc bson.Raw) {
		i := rs.locate(doc)
		if i < 0 {
			i = rs.len()
		}
		if wanted[i] && len(out[i]) < limit {
			out[i] = append(out[i], cloneValue(doc.Lookup("_id")))
		}
	}
	full := func() bool {
		for _, i := range differ {
			if len(out[i]) < limit {
				return false
			}
		}
		return true
	}
	a, err := src.Scan(ctx, n.DB, n.Coll, false, n.Collated)
	if err != nil {
		return nil, err
	}
	defer a.Close(context.WithoutCancel(ctx))
	b, err := dst.Scan(ctx, n.DB, n.Coll, false, n.Collated)
	if err != nil {
		return nil, err
	}
	defer b.Close(context.WithoutCancel(ctx))
	return out, mergeDiffering(ctx, a, b, note, full)
}

// mergeDiffering walks two _id-sorted cursors together and calls note with each
// document on one side only, and the source's of each pair that differs, until
// both end or done says to stop.
func mergeDiffering(ctx context.Context, a, b Cursor, note func(bson.Raw), done func() bool) error {
	okA, okB := a.Next(ctx), b.Next(ctx)
	for (okA || okB) && !done() {
		switch {
		case !okB:
			note(a.Current())
			okA = a.Next(ctx)
		case !okA:
			note(b.Current())
			okB = b.Next(ctx)
		default:
			da, db := a.Current(), b.Current()
			switch c := compareIDs(da.Lookup("_id"), db.Lookup("_id")); {
			case c < 0:
				note(da)
				okA = a.Next(ctx)
			case c > 0:
				note(db)
				okB = b.Next(ctx)
			default:
				if string(da) != string(db) {
					note(da)
				}
				okA, okB = a.Next(ctx), b.Next(ctx)
			}
		}
	}
	if err := a.Err(); err != nil {
		return err
	}
	return b.Err()
}

// Recheck compares the documents of ids in n on both sides, now, and returns the
// _ids whose documents differ or are on one side only. It reads only those
// documents: what the continuous verification uses for a document written after
// its range was compared.
func Recheck(ctx context.Context, src, dst Side, n Namespace, ids []bson.RawValue) ([]bson.RawValue, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	a, err := src.Find(ctx, n.DB, n.Coll, ids, n.Collated)
	if err != nil {
		return nil, err
	}
	defer a.Close(context.WithoutCancel(ctx))
	b, err := dst.Find(ctx, n.DB, n.Coll, ids, n.Collated)
	if err != nil {
		return nil, err
	}
	defer b.Close(context.WithoutCancel(ctx))
	var differ []bson.RawValue
	note := func(doc bson.Raw) { differ = append(differ, cloneValue(doc.Lookup("_id"))) }
	if err := mergeDiffering(ctx, a, b, note, func() bool { return false }); err != nil {
		return nil, err
	}
	return differ, nil
}

func cloneValue(v bson.RawValue) bson.RawValue {
	return bson.RawValue{Type: v.Type, Value: slices.Clone(v.Value)}
}

func compareIDs(a, b bson.RawValue) int {
	return shardkey.Compare(bsoncore.Value{Type: a.Type, Data: a.Value}, bsoncore.Value{Type: b.Type, Data: b.Value})
}

// chunkRanges are a sharded collection's chunks.
type chunkRanges struct {
	pattern *shardkey.Pattern
	chunks  []shardkey.Chunk
	buf     []byte
}

func (c *chunkRanges) len() int { return len(c.chunks) }

func (c *chunkRanges) describe(i int) string {
	return "[" + c.chunks[i].Min.String() + ", " + c.chunks[i].Max.String() + ")"
}

func (c *chunkRanges) clone() ranges { return &chunkRanges{pattern: c.pattern, chunks: c.chunks} }

// locate is not safe for concurrent use (its key buffer): each goroutine uses a clone.
func (c *chunkRanges) locate(doc bson.Raw) int {
	key, err := c.pattern.AppendKey(c.buf[:0], doc)
	if err != nil {
		return -1
	}
	c.buf = key
	i := sort.Search(len(c.chunks), func(i int) bool { return shardkey.CompareKeys(c.chunks[i].Min, key) > 0 }) - 1
	return max(i, 0)
}

// idRanges are an unsharded collection's _id ranges: range i starts at starts[i]
// (the first at the smallest _id) and ends where the next starts.
type idRanges struct {
	starts []bson.RawValue
}

func (r *idRanges) clone() ranges { return r }

func (r *idRanges) len() int { return max(len(r.starts), 1) }

func (r *idRanges) describe(i int) string {
	if len(r.starts) == 0 {
		return "[all _id)"
	}
	lo := "_id " + r.starts[i].String()
	if i == 0 {
		lo = "_id MinKey"
	}
	hi := "_id MaxKey"
	if i+1 < len(r.starts) {
		hi = "_id " + r.starts[i+1].String()
	}
	return "[" + lo + ", " + hi + ")"
}

func (r *idRanges) locate(doc bson.Raw) int {
	id := doc.Lookup("_id")
	i := sort.Search(len(r.starts), func(i int) bool { return compareIDs(r.starts[i], id) > 0 }) - 1
	return max(i, 0)
}

// idBoundaries cuts the source's _ids into ranges of size documents.
func idBoundaries(ctx context.Context, src Side, n Namespace, size int) (*idRanges, error) {
	cur, err := src.Scan(ctx, n.DB, n.Coll, true, n.Collated)
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	r := &idRanges{}
	for i := 0; cur.Next(ctx); i++ {
		if i%size == 0 {
			id := cur.Current().Lookup("_id")
			r.starts = append(r.starts, bson.RawValue{Type: id.Type, Value: slices.Clone(id.Value)})
		}
	}
	return r, cur.Err()
}

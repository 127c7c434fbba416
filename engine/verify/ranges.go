package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"

	"go.mongodb.org/mongo-driver/bson"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// One range of a sharded collection, compared on its own (the continuous
// verification's unit): each side is scanned with find's min and max on the
// hinted shard key index (a hashed key's bounds are hash values, as its chunks'
// are), which a mongod walks from min to max without reading the rest of the
// collection. The index gives no _id order (documents of one key value come in
// each cluster's record order), so each side's documents are folded into an
// order-independent digest: their count and the sum, modulo 2^256, of each
// document's SHA-256. Every document a side returns is checked to lie in the
// range by its own shard key: a server that ignored the bounds fails the
// comparison rather than pass it.

// RangeResult is what CompareRange found.
type RangeResult struct {
	// Documents and DestDocuments count each side's documents in the range.
	Documents, DestDocuments int64
	// Differ are _ids whose documents differ or are on one side only (at most
	// the limit asked; More says there were more).
	Differ []bson.RawValue
	More   bool
}

// CompareRange compares the documents of n (sharded) whose shard key lies in r,
// and lists up to limit _ids that differ.
func CompareRange(ctx context.Context, src, dst Side, n Namespace, r shardkey.Range, limit int) (RangeResult, error) {
	if n.Pattern == nil {
		return RangeResult{}, fmt.Errorf("%s is not sharded: it has no shard key ranges", n.Name())
	}
	var digests [2]rangeDigest
	var g errgroup.Group
	for side, s := range []Side{src, dst} {
		g.Go(func() error {
			return scanRange(ctx, s, n, r, func(doc bson.Raw) { digests[side].add(doc) })
		})
	}
	if err := g.Wait(); err != nil {
		return RangeResult{}, err
	}
	res := RangeResult{Documents: digests[0].count, DestDocuments: digests[1].count}
	if digests[0] == digests[1] {
		return res, nil
	}
	// Second pass, for this range only: the source's documents by _id, then the
	// destination's against them.
	srcDocs := map[string]docEntry{}
	err := scanRange(ctx, src, n, r, func(doc bson.Raw) {
		id := doc.Lookup("_id")
		srcDocs[idString(id)] = docEntry{id: cloneValue(id), sum: sha256.Sum256(doc)}
	})
	if err != nil {
		return RangeResult{}, err
	}
	note := func(id bson.RawValue) {
		if len(res.Differ) < limit {
			res.Differ = append(res.Differ, cloneValue(id))
		} else {
			res.More = true
		}
	}
	err = scanRange(ctx, dst, n, r, func(doc bson.Raw) {
		id := doc.Lookup("_id")
		k := idString(id)
		if e, ok := srcDocs[k]; !ok || e.sum != sha256.Sum256(doc) {
			note(id)
		}
		delete(srcDocs, k)
	})
	if err != nil {
		return RangeResult{}, err
	}
	for _, e := range srcDocs {
		note(e.id)
	}
	return res, nil
}

type docEntry struct {
	id  bson.RawValue
	sum [sha256.Size]byte
}

func idString(id bson.RawValue) string { return string(rune(id.Type)) + string(id.Value) }

// scanRange calls each with every document of one side in r, checking that each
// lies there.
func scanRange(ctx context.Context, s Side, n Namespace, r shardkey.Range, each func(bson.Raw)) error {
	cur, err := s.ScanRange(ctx, n.DB, n.Coll, n.Pattern.Raw(), r.Min, r.Max, n.Collated)
	if err != nil {
		return err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var buf []byte
	for cur.Next(ctx) {
		doc := cur.Current()
		key, err := n.Pattern.AppendKey(buf[:0], doc)
		if err != nil || shardkey.CompareKeys(key, r.Min) < 0 || shardkey.CompareKeys(key, r.Max) >= 0 {
			return fmt.Errorf("the scan of %s in [%s, %s) returned _id %s, outside the range: the server did not apply find's min and max", n.Name(), r.Min, r.Max, doc.Lookup("_id"))
		}
		buf = key
		each(doc)
	}
	return cur.Err()
}

// rangeDigest is an order-independent digest of a multiset of documents.
type rangeDigest struct {
	count int64
	sum   [4]uint64 // little-endian limbs of a 256-bit sum
}

func (d *rangeDigest) add(doc bson.Raw) {
	h := sha256.Sum256(doc)
	d.count++
	var carry uint64
	for i := range d.sum {
		d.sum[i], carry = bits.Add64(d.sum[i], binary.LittleEndian.Uint64(h[8*i:]), carry)
	}
}

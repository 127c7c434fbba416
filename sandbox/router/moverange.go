package router

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// moveRange is 6.0's moveRange (src/mongo/s/request_types/move_range_request.idl):
// {moveRange: ns, toShard, min, max}, either bound optional but not both. The range
// must lie within one chunk: that chunk is split at whichever of min and max is not
// its own bound, and the range between them moves, as one migration. A missing max
// is the chunk's max, or the key before which the range's documents reach the chunk
// size when they would exceed it (a missing min likewise, scanning back from max).
func (r *Router) moveRange(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	if !r.cfg.Identity.AtLeast(6, 0) {
		return nil, wire.CommandNotFound(cmd.Name)
	}
	start := time.Now()
	ns, db, coll, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	to, ok := cmd.Lookup("toShard").StringValueOK()
	if !ok {
		return nil, &wire.Error{Code: 40414, Name: "IDLFailedToParse", Msg: "BSON field 'moveRange.toShard' is missing but a required field"}
	}
	recipient, err := r.backend(to)
	if err != nil {
		return nil, err
	}
	lo, hasMin := cmd.Lookup("min").DocumentOK()
	hi, hasMax := cmd.Lookup("max").DocumentOK()
	if !hasMin && !hasMax {
		return nil, wire.BadValue("moveRange needs min, max or both")
	}
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	rt, ok := r.cat.Route(ns)
	if !ok || !rt.Sharded() {
		return nil, notSharded(ns)
	}
	var minKey, maxKey shardkey.Key
	if hasMin {
		if minKey, err = boundKey(rt, lo); err != nil {
			return nil, err
		}
	}
	if hasMax {
		if maxKey, err = boundKey(rt, hi); err != nil {
			return nil, err
		}
	}
	i := rangeChunk(rt, minKey, maxKey)
	if i < 0 {
		return nil, wire.BadValue(fmt.Sprintf("the range [%s, %s) of %s is not within one chunk: moveRange moves a chunk or a part of one", lo, hi, ns))
	}
	ch := rt.Chunks[i]
	if !hasMin || !hasMax {
		if minKey, maxKey, err = r.chunkSizedRange(ctx, rt, ch, minKey, maxKey, db, coll); err != nil {
			return nil, err
		}
	}
	for _, at := range []shardkey.Key{minKey, maxKey} {
		if shardkey.CompareKeys(at, shardkey.Key(ch.Min)) > 0 && shardkey.CompareKeys(at, shardkey.Key(ch.Max)) < 0 {
			if err := r.cat.SplitChunk(ns, at); err != nil {
				return nil, err
			}
		}
	}
	if rt, ok = r.cat.Route(ns); !ok {
		return nil, notSharded(ns)
	}
	i = rt.ChunkFor(minKey)
	if err := r.moveChunkTo(ctx, rt, rt.Chunks[i], recipient, db, coll); err != nil {
		return nil, err
	}
	return wire.OK(bson.E{Key: "millis", Value: int32(time.Since(start).Milliseconds())}), nil
}

// rangeChunk is the chunk holding the range [min, max) (nil for a bound not given),
// -1 when none holds it whole. Given max alone, it is the chunk max ends or lies in.
func rangeChunk(rt *Routing, min, max shardkey.Key) int {
	i := -1
	if min != nil {
		i = rt.ChunkFor(min)
	} else {
		for j, ch := range rt.Chunks {
			if shardkey.CompareKeys(shardkey.Key(ch.Min), max) < 0 && shardkey.CompareKeys(max, shardkey.Key(ch.Max)) <= 0 {
				i = j
			}
		}
	}
	if i < 0 {
		return -1
	}
	ch := rt.Chunks[i]
	if max != nil && (shardkey.CompareKeys(max, shardkey.Key(ch.Max)) > 0 || shardkey.CompareKeys(max, shardkey.Key(ch.Min)) <= 0) {
		return -1
	}
	if min != nil && max != nil && shardkey.CompareKeys(min, max) >= 0 {
		return -1
	}
	return i
}

// chunkSizedRange completes a range given by one bound within chunk ch: up to the
// chunk's other bound, or to the key where the documents from the given bound reach
// the chunk size (the release's default).
func (r *Router) chunkSizedRange(ctx context.Context, rt *Routing, ch ChunkDoc, min, max shardkey.Key, db, coll string) (shardkey.Key, shardkey.Key, error) {
	donor, err := r.backend(ch.Shard)
	if err != nil {
		return nil, nil, err
	}
	docs, err := rangeDocs(ctx, rt, ch, donor, db, coll)
	if err != nil {
		return nil, nil, err
	}
	type sized struct {
		key  shardkey.Key
		size int
	}
	var keys []sized
	for _, d := range docs {
		k, err := rt.Pattern.Extract(d)
		if err != nil {
			continue
		}
		if (min != nil && shardkey.CompareKeys(k, min) < 0) || (max != nil && shardkey.CompareKeys(k, max) >= 0) {
			continue
		}
		keys = append(keys, sized{k, len(d)})
	}
	slices.SortFunc(keys, func(a, b sized) int { return shardkey.CompareKeys(a.key, b.key) })
	if min == nil {
		slices.Reverse(keys)
	}
	limit := r.cat.Release().MaxChunkSizeBytes()
	total := int64(0)
	for j, k := range keys {
		total += int64(k.size)
		if total < limit || j+1 == len(keys) || shardkey.CompareKeys(keys[j+1].key, k.key) == 0 {
			continue
		}
		if min == nil {
			return k.key, max, nil // the range starts at the last key that fits
		}
		return min, keys[j+1].key, nil
	}
	if min == nil {
		return shardkey.Key(ch.Min), max, nil
	}
	return min, shardkey.Key(ch.Max), nil
}

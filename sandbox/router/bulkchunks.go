package router

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// setChunks answers {_sandboxSetChunks: ns, splits: [key, ...], shards: [name, ...]}:
// the collection's chunks become [min, splits[0]) on shards[0], [splits[0],
// splits[1]) on shards[1], ... [splits[n-1], max) on shards[n], in one catalog change.
// It is the seed's bulk path to many chunks (a real cluster gets there by thousands
// of splits and migrations) and refuses a collection holding documents, whose
// placement the change would silently contradict: seed first, insert after.
func (r *Router) setChunks(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	ns, db, coll, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	splits, ok1 := cmd.Lookup("splits").ArrayOK()
	shards, ok2 := cmd.Lookup("shards").ArrayOK()
	if !ok1 || !ok2 {
		return nil, wire.BadValue("_sandboxSetChunks needs splits (shard key values, ascending) and shards (one more than splits)")
	}
	points, _ := splits.Values()
	owners, _ := shards.Values()
	if len(owners) != len(points)+1 {
		return nil, wire.BadValue(fmt.Sprintf("_sandboxSetChunks: %d splits make %d chunks, but %d shards are given", len(points), len(points)+1, len(owners)))
	}
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	rt, ok := r.cat.Route(ns)
	if !ok || !rt.Sharded() {
		return nil, notSharded(ns)
	}
	for _, b := range r.order {
		reply, err := b.run(ctx, db, bson.D{{Key: "count", Value: coll}})
		if err != nil && !isCode(err, codeNamespaceNotFound) {
			return nil, err
		}
		if n, _ := asInt64(reply.Lookup("n")); n > 0 {
			return nil, wire.BadValue(fmt.Sprintf("_sandboxSetChunks: %s holds %d documents on shard %s: set the chunks of an empty collection, then insert", ns, n, b.Name))
		}
	}
	chunks := make([]ChunkDoc, len(owners))
	lo := shardkey.Key(rt.Pattern.GlobalMin())
	for i, o := range owners {
		name, ok := o.StringValueOK()
		if !ok {
			return nil, wire.BadValue(fmt.Sprintf("_sandboxSetChunks: shard %d is not a shard name", i))
		}
		if _, err := r.backend(name); err != nil {
			return nil, err
		}
		hi := shardkey.Key(rt.Pattern.GlobalMax())
		if i < len(points) {
			doc, ok := points[i].DocumentOK()
			if !ok {
				return nil, wire.BadValue(fmt.Sprintf("_sandboxSetChunks: split %d is not a document", i))
			}
			if hi, err = boundKey(rt, doc); err != nil {
				return nil, err
			}
		}
		if shardkey.CompareKeys(lo, hi) >= 0 {
			return nil, wire.BadValue(fmt.Sprintf("_sandboxSetChunks: split %s does not follow %s: give the splits ascending, without repeats", hi, lo))
		}
		chunks[i] = ChunkDoc{Min: bson.Raw(lo), Max: bson.Raw(hi), Shard: name}
		lo = hi
	}
	primary, err := r.backend(rt.DB.Primary)
	if err != nil {
		return nil, err
	}
	for _, b := range r.order {
		if err := r.receiveCollection(ctx, rt, primary, b, db, coll); err != nil {
			return nil, err
		}
	}
	if err := r.cat.SetChunks(ns, chunks); err != nil {
		return nil, err
	}
	r.log.Info("chunks set", "ns", ns, "chunks", len(chunks))
	return wire.OK(bson.E{Key: "chunks", Value: int32(len(chunks))}), nil
}

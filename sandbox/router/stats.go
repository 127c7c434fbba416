package router

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// dbStats and collStats add up the shards' figures, as mongos does, and keep each
// shard's own reply under "raw" (dbStats) or "shards" (collStats).

// summedStats are the numeric fields that add up across shards.
var summedStats = []string{"collections", "views", "objects", "count", "dataSize", "size", "storageSize", "indexes", "indexSize", "totalIndexSize", "totalSize", "fileSize"}

func (r *Router) dbStats(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	return r.sumStats(ctx, cmd.DB, bson.D{{Key: "dbStats", Value: 1}}, r.order, "raw", bson.D{{Key: "db", Value: cmd.DB}})
}

func (r *Router) collStats(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	ns := cmd.DB + "." + coll
	rt, ok := r.cat.Route(ns)
	if !ok {
		return nil, wire.NamespaceNotFound("Collection [" + ns + "] not found.")
	}
	holders, err := r.holders(ctx, rt, cmd.DB, coll)
	if err != nil {
		return nil, err
	}
	if len(holders) == 0 {
		return nil, wire.NamespaceNotFound("Collection [" + ns + "] not found.")
	}
	head := bson.D{{Key: "ns", Value: ns}, {Key: "sharded", Value: rt.Sharded()}, {Key: "primary", Value: rt.DB.Primary}}
	return r.sumStats(ctx, cmd.DB, bson.D{{Key: "collStats", Value: coll}}, holders, "shards", head)
}

func (r *Router) sumStats(ctx context.Context, db string, cmd bson.D, targets []*backend, rawKey string, head bson.D) (bson.Raw, error) {
	sums := make([]float64, len(summedStats))
	seen := make([]bool, len(summedStats))
	raw := bson.D{}
	for _, b := range targets {
		reply, err := b.run(ctx, db, cmd)
		if err != nil {
			if isCode(err, codeNamespaceNotFound) {
				continue
			}
			return nil, err
		}
		raw = append(raw, bson.E{Key: b.Name, Value: reply})
		for i, f := range summedStats {
			v := reply.Lookup(f)
			switch v.Type {
			case bsontype.Int32, bsontype.Int64:
				n, _ := asInt64(v)
				sums[i] += float64(n)
				seen[i] = true
			case bsontype.Double:
				sums[i] += v.Double()
				seen[i] = true
			}
		}
	}
	out := head
	for i, f := range summedStats {
		if seen[i] {
			out = append(out, bson.E{Key: f, Value: int64(sums[i])})
		}
	}
	out = append(out, bson.E{Key: rawKey, Value: raw})
	return wire.OK(out...), nil
}

package shard

import (
	"context"
	"errors"
	"maps"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// MongoDB's collStats size and dbStats dataSize are the uncompressed BSON size of the
// documents (what a copy reads); FerretDB reports the SQLite pages holding their JSON
// instead, 2 to 3 times more. The front answers MongoDB's figure: the document count
// times the average BSON size of a sample, an estimate as MongoDB's own counters are.

// sizeSample is how many documents the average BSON size is measured on.
const sizeSample = 256

// userCollStats is collStats of a user collection: FerretDB's reply with MongoDB's
// size and avgObjSize, answered again while nothing was written to the collection.
func (n *node) userCollStats(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := collName(cmd)
	return relay(n.collStatsOf(ctx, cmd.DB, coll, stripped(cmd.Body)))
}

// collStatsOf runs a collStats command (body) of db.coll, or answers it as it did
// last if nothing was written to the collection since.
func (n *node) collStatsOf(ctx context.Context, db, coll string, body bson.Raw) (bson.Raw, error) {
	return n.be.gens.statsOnce("collStats "+db+" "+string(body), n.be.gens.ofCollection(db+"."+coll), func() (bson.Raw, error) {
		reply, err := n.be.run(ctx, db, body)
		if err != nil {
			return reply, err
		}
		count, _ := reply.Lookup("count").AsInt64OK()
		avg, err := n.averageSize(ctx, db, coll)
		if err != nil {
			return nil, err
		}
		return withInt64s(reply, map[string]int64{"size": count * avg, "avgObjSize": avg}), nil
	})
}

// dbStats is FerretDB's dbStats with MongoDB's dataSize and avgObjSize: the sum of
// the collections' sizes as collStats reports them; answered again while nothing was
// written to the database.
func (n *node) dbStats(ctx context.Context, cmd *wire.Command) bson.Raw {
	body := stripped(cmd.Body)
	return relay(n.be.gens.statsOnce("dbStats "+cmd.DB+" "+string(body), n.be.gens.ofDatabase(cmd.DB), func() (bson.Raw, error) {
		return n.computeDBStats(ctx, cmd.DB, body)
	}))
}

func (n *node) computeDBStats(ctx context.Context, db string, body bson.Raw) (bson.Raw, error) {
	reply, err := n.be.run(ctx, db, body)
	if err != nil {
		return reply, err
	}
	var objects, size int64
	for _, ci := range n.cat.inDB(db) {
		if !ci.Exists || ci.isView() {
			continue
		}
		coll := ci.NS[len(db)+1:]
		stats, err := n.collStatsOf(ctx, db, coll, mustMarshal(bson.D{{Key: "collStats", Value: coll}}))
		var refused *backendError
		if errors.As(err, &refused) {
			continue // dropped meanwhile
		}
		if err != nil {
			return nil, err
		}
		count, _ := stats.Lookup("count").AsInt64OK()
		avg, _ := stats.Lookup("avgObjSize").AsInt64OK()
		objects += count
		size += count * avg
	}
	avg := int64(0)
	if objects > 0 {
		avg = size / objects
	}
	return withInt64s(reply, map[string]int64{"dataSize": size, "avgObjSize": avg}), nil
}

// averageSize is the average BSON size of the collection's first documents in
// natural order (0 for an empty collection).
func (n *node) averageSize(ctx context.Context, db, coll string) (int64, error) {
	docs, err := n.be.find(ctx, db, coll, nil, nil, sizeSample)
	if err != nil || len(docs) == 0 {
		return 0, err
	}
	var total int64
	for _, d := range docs {
		total += int64(len(d))
	}
	return total / int64(len(docs)), nil
}

// withInt64s is the reply with the named fields set to int64 values, in place when
// the reply has them, else appended.
func withInt64s(reply bson.Raw, fields map[string]int64) bson.Raw {
	elems, _ := reply.Elements()
	idx, out := bsoncore.AppendDocumentStart(nil)
	seen := map[string]bool{}
	for _, e := range elems {
		if v, ok := fields[e.Key()]; ok {
			out = bsoncore.AppendInt64Element(out, e.Key(), v)
			seen[e.Key()] = true
			continue
		}
		out = append(out, e...)
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !seen[k] {
			out = bsoncore.AppendInt64Element(out, k, fields[k])
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

package shard

import (
	"context"
	"fmt"
	"math/rand/v2"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// maxSample bounds a $sample the front draws: it answers in one batch.
const maxSample = 10_000

// sample answers an aggregate that starts with {$sample: {size: n}}, which
// FerretDB does not implement, as MongoDB's random cursor does on a large
// collection: n documents drawn at random, a document possibly more than once.
// Each is one find at a random skip; the only stage taken after it is a $project.
func (n *node) sample(ctx context.Context, cmd *wire.Command, coll string, stages []bson.RawValue) bson.Raw {
	first, _ := stages[0].DocumentOK()
	spec, _ := first.Lookup("$sample").DocumentOK()
	size, ok := spec.Lookup("size").AsInt64OK()
	if !ok || size < 0 {
		return wire.ErrorReply(&wire.Error{Code: 28747, Name: "Location28747", Msg: "size argument to $sample must be a non-negative number"})
	}
	var projection bson.Raw
	for _, st := range stages[1:] {
		stage, _ := st.DocumentOK()
		p, isProject := stage.Lookup("$project").DocumentOK()
		if !isProject || projection != nil {
			return wire.ErrorReply(wire.BadValue("the sandbox's $sample takes at most one $project after it"))
		}
		projection = p
	}
	if size > maxSample {
		return wire.ErrorReply(wire.BadValue(fmt.Sprintf("the sandbox's $sample draws at most %d documents", maxSample)))
	}
	reply, err := n.be.run(ctx, cmd.DB, bson.D{{Key: "count", Value: coll}})
	if err != nil {
		return relay(nil, err)
	}
	total, _ := reply.Lookup("n").AsInt64OK()
	var docs []bson.Raw
	if total <= 0 {
		size = 0 // nothing to draw from an empty collection
	}
	for range size {
		find := bson.D{{Key: "find", Value: coll}, {Key: "skip", Value: rand.Int64N(total)}, {Key: "limit", Value: 1}, {Key: "singleBatch", Value: true}}
		if projection != nil {
			find = append(find, bson.E{Key: "projection", Value: projection})
		}
		reply, err := n.be.run(ctx, cmd.DB, find)
		if err != nil {
			return relay(nil, err)
		}
		batch := values(reply.Lookup("cursor", "firstBatch"))
		if len(batch) == 1 {
			docs = append(docs, batch[0].Document())
		}
	}
	return firstBatchReply(cmd.DB+"."+coll, docs)
}

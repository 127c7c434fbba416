package bench

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
)

// defaultAppliers is replay.Config's default number of appliers per shard.
const defaultAppliers = 4

// keyIsID is the translator configuration of a collection sharded on _id.
var keyIsID = oplog.Config{KeyFields: func(oplog.Namespace) []string { return []string{"_id"} }}

// resetBacklogColl drops bench.backlog on the destination and creates it again,
// empty and sharded on hashed _id.
func resetBacklogColl(ctx context.Context, dst *mongo.Client) error {
	if err := dst.Database(benchDB).Collection(backlogColl).Drop(ctx); err != nil {
		return fmt.Errorf("drop %s.%s on the destination: %w", benchDB, backlogColl, err)
	}
	return shardHashed(ctx, dst, benchDB, backlogColl)
}

// replayBacklog replays every stream with engine/replay, one replay.Shard per
// stream as a migration runs one per source shard, and returns the elapsed time.
// serial replays with the applier as it was before it wrote in rounds
// (replay.Config.SerialBulks), for figure 12's before-and-after.
func replayBacklog(ctx context.Context, dst *mongo.Client, b *backlog, serial bool) (time.Duration, error) {
	if err := resetBacklogColl(ctx, dst); err != nil {
		return 0, err
	}
	elapsed, err := replayStreams(ctx, dst, b, serial, nil)
	if err != nil {
		return 0, err
	}
	return elapsed, checkBacklogResult(ctx, dst, b)
}

// replayStreams is replayBacklog's timed part: the replay of every stream; ordered,
// when set, are the unique indexes restored on the destination (figure 15).
func replayStreams(ctx context.Context, dst *mongo.Client, b *backlog, serial bool, ordered *replay.OrderedNamespaces) (time.Duration, error) {
	return replayStreamsPipelined(ctx, dst, b, serial, ordered, 0)
}

// replayStreamsPipelined is replayStreams with replay.Config.Pipeline (0: the
// default), for figure 12's before-and-after.
func replayStreamsPipelined(ctx context.Context, dst *mongo.Client, b *backlog, serial bool, ordered *replay.OrderedNamespaces, pipeline int) (time.Duration, error) {
	names := make([]string, len(b.streams))
	for i := range names {
		names[i] = fmt.Sprintf("backlog-%d", i)
	}
	ddl := replay.NewDDLOnce(names, replay.NewMongoDDL(dst, nil), nil)
	shards := make([]*replay.Shard, len(names))
	for i, name := range names {
		s, err := replay.New(replay.Config{
			Shard: name, Source: replay.NewReaderSource(bytes.NewReader(b.streams[i])),
			Destination: replay.NewMongoDestination(dst), DDL: ddl, Translator: keyIsID, SerialBulks: serial, Ordered: ordered, Pipeline: pipeline,
		})
		if err != nil {
			return 0, err
		}
		shards[i] = s
	}
	ddlCtx, stopDDL := context.WithCancel(ctx)
	ddlDone := make(chan error, 1)
	go func() { ddlDone <- ddl.Run(ddlCtx) }()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range shards {
		g.Go(func() error { return s.Run(gctx) })
	}
	err := g.Wait()
	elapsed := time.Since(start)
	stopDDL()
	<-ddlDone
	if err != nil {
		return 0, fmt.Errorf("replay the backlog: %w", err)
	}
	return elapsed, nil
}

// directBacklog translates the backlog into driver write models once (not timed),
// then sends them straight to the destination as ordered bulk writes of at most 99
// statements (FerretDB's limit for updates), over as many connections as the
// replay's appliers, each document's writes on one connection in oplog order.
func directBacklog(ctx context.Context, dst *mongo.Client, b *backlog) (time.Duration, error) {
	if err := resetBacklogColl(ctx, dst); err != nil {
		return 0, err
	}
	conns := len(b.streams) * defaultAppliers
	parts := make([][]mongo.WriteModel, conns)
	for _, stream := range b.streams {
		entries, err := rawEntries(stream)
		if err != nil {
			return 0, err
		}
		tr := oplog.NewTranslator(keyIsID)
		var items []oplog.Item
		for _, raw := range entries {
			e, err := oplog.Decode(raw)
			if err != nil {
				return 0, err
			}
			if items, err = tr.Process(&e, items[:0]); err != nil {
				return 0, err
			}
			for _, it := range items {
				if it.Kind != oplog.ItemWrite {
					continue
				}
				m, err := model(it.Write)
				if err != nil {
					return 0, err
				}
				h := fnv.New32a()
				h.Write(it.Write.Filter.Lookup("_id").Value)
				p := h.Sum32() % uint32(conns)
				parts[p] = append(parts[p], m)
			}
		}
	}
	coll := dst.Database(benchDB).Collection(backlogColl)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, models := range parts {
		g.Go(func() error {
			for i := 0; i < len(models); i += 99 {
				if _, err := coll.BulkWrite(gctx, models[i:min(i+99, len(models))], options.BulkWrite().SetOrdered(true)); err != nil {
					return fmt.Errorf("direct bulk write: %w", err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	return elapsed, checkBacklogResult(ctx, dst, b)
}

// model is the driver model of a write, as a client would send it.
func model(w oplog.Write) (mongo.WriteModel, error) {
	switch w.Kind {
	case oplog.InsertReplace:
		return mongo.NewReplaceOneModel().SetFilter(w.Filter).SetReplacement(w.Replacement).SetUpsert(true), nil
	case oplog.Update:
		if w.Pipeline != nil {
			return nil, fmt.Errorf("the backlog translated into a pipeline update, which the sandbox cannot run: %s", w.Filter)
		}
		return mongo.NewUpdateOneModel().SetFilter(w.Filter).SetUpdate(w.Update), nil
	case oplog.Delete:
		return mongo.NewDeleteOneModel().SetFilter(w.Filter), nil
	}
	return nil, fmt.Errorf("unknown write kind %d", w.Kind)
}

// checkBacklogResult checks that the destination holds as many documents as the
// backlog leaves, so that a figure never comes from writes that did nothing.
func checkBacklogResult(ctx context.Context, dst *mongo.Client, b *backlog) error {
	n, err := dst.Database(benchDB).Collection(backlogColl).CountDocuments(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("count %s.%s: %w", benchDB, backlogColl, err)
	}
	if n != int64(b.live) {
		return fmt.Errorf("%s.%s holds %d documents after the backlog, want %d", benchDB, backlogColl, n, b.live)
	}
	return nil
}

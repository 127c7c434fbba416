package router

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// The catalog's side of a resharding a DBA makes by hand (reshardCollection).

// Reshard gives a sharded collection a new shard key, UUID and epoch, with every
// document in one chunk on shard home, as a committed reshardCollection leaves it
// (the real one spreads the chunks; which shards hold them does not matter to a
// migration that must stop). The coordinator's state transitions are logged as
// resharding.coordinator.transition entries.
func (c *Catalog) Reshard(ns string, key bson.Raw, uuid primitive.Binary, home string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.routing[ns]
	if !ok {
		return &wire.Error{Code: 118, Name: "NamespaceNotSharded", Msg: ns + " is not sharded"}
	}
	old := *r.Coll
	transition := func(state string) {
		c.logChangeLocked("resharding.coordinator.transition", ns, bson.D{
			{Key: "newState", Value: state}, {Key: "oldState", Value: ""}, {Key: "namespace", Value: ns},
			{Key: "collectionUUID", Value: old.UUID}, {Key: "reshardingUUID", Value: uuid},
		})
	}
	transition("initializing")
	transition("cloning")
	coll := old
	coll.Key, coll.UUID = slices.Clone(key), uuid
	coll.LastmodEpoch = primitive.NewObjectID()
	coll.Timestamp = c.nextTimestampLocked()
	coll.Lastmod = primitive.NewDateTimeFromTime(time.Now())
	pattern, err := shardkey.ParsePattern(key)
	if err != nil {
		return wire.BadValue(err.Error())
	}
	chunks := []ChunkDoc{{ID: primitive.NewObjectID(), UUID: uuid, Min: bson.Raw(pattern.GlobalMin()), Max: bson.Raw(pattern.GlobalMax()), Shard: home,
		Lastmod: primitive.Timestamp{T: 1}, OnCurrentShardSince: coll.Timestamp, History: []ChunkHistory{{ValidAfter: coll.Timestamp, Shard: home}}}}
	nr, err := c.newRoutingLocked(coll, chunks)
	if err != nil {
		return err
	}
	c.mu.routing[ns] = nr
	transition("committing")
	transition("done")
	c.placeLocked(ns, &coll.UUID, coll.Timestamp, []string{home})
	return c.saveLocked()
}

// reshardCollection gives a sharded collection a new shard key ({reshardCollection:
// ns, key}) as a committed resharding leaves it: a new UUID, epoch and key, every
// document on the database's primary shard in one chunk (moved there as fromMigrate
// inserts and deletes), and the coordinator's transitions in the changelog. 8.0's
// moveCollection and unshardCollection are reshardings too.
func (r *Router) reshardCollection(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	ns, db, coll, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	key, ok := cmd.Lookup("key").DocumentOK()
	if !ok {
		return nil, wire.BadValue("reshardCollection needs a key document")
	}
	pattern, err := shardkey.ParsePattern(key)
	if err != nil {
		return nil, wire.BadValue(err.Error())
	}
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	rt, ok := r.cat.Route(ns)
	if !ok || !rt.Sharded() {
		return nil, notSharded(ns)
	}
	home, err := r.backend(rt.DB.Primary)
	if err != nil {
		return nil, err
	}
	uuid := newUUID()
	for _, b := range r.order {
		if err := setCollection(ctx, b, db, coll, key, uuid); err != nil {
			return nil, err
		}
	}
	keyIndex := bson.D{{Key: "key", Value: key}, {Key: "name", Value: indexName(key)}}
	if err := r.ensureCollection(ctx, home, db, coll, []bson.Raw{rawDoc(keyIndex)}); err != nil {
		return nil, err
	}
	for _, b := range r.order {
		if b == home {
			continue
		}
		docs, err := b.all(ctx, db, bson.D{{Key: "find", Value: coll}})
		if err != nil {
			if isCode(err, codeNamespaceNotFound) {
				continue
			}
			return nil, err
		}
		if err := insertFromMigrate(ctx, home, db, coll, docs); err != nil {
			return nil, err
		}
		if err := deleteByID(ctx, b, db, coll, ids(docs), true); err != nil {
			return nil, err
		}
	}
	if err := r.cat.Reshard(ns, key, uuid, home.Name); err != nil {
		return nil, err
	}
	r.log.Info("collection resharded", "ns", ns, "key", pattern.Fields())
	return wire.OK(), nil
}

// insertFromMigrate inserts documents as a migration does (fromMigrate), in
// batches small enough for FerretDB.
func insertFromMigrate(ctx context.Context, b *backend, db, coll string, docs []bson.Raw) error {
	for start := 0; start < len(docs); start += migrationBatch {
		batch := docs[start:min(start+migrationBatch, len(docs))]
		arr := make(bson.A, len(batch))
		for i, d := range batch {
			arr[i] = d
		}
		reply, err := b.run(ctx, db, bson.D{
			{Key: "insert", Value: coll}, {Key: "documents", Value: arr}, {Key: "ordered", Value: true}, {Key: "fromMigrate", Value: true},
		})
		if err != nil {
			return err
		}
		if we := writeErrorsOf(reply); len(we) > 0 {
			return fmt.Errorf("copy to %s: %s", b.Name, we[0])
		}
	}
	return nil
}

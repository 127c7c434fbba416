package router

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// What the shards' oplogs record of sharded DDL, version by version, as the primary
// shard's DDL coordinators (5.0+) write it: a no-op for shardCollection (5.0+) and
// refineCollectionShardKey (6.1+), and a drop of a sharded collection (alone or in a
// dropDatabase) run on the other shards first, their copies marked fromMigrate from 6.0.

// dropOrder is the order in which a collection's drop reaches the shards: the primary
// first before 5.0, last from 5.0 (so that the collection can only be re-created after
// every shard dropped it).
func (r *Router) dropOrder(primary string) []*backend {
	out := r.primaryFirst(primary)
	if r.cfg.Identity.AtLeast(5, 0) {
		out = append(out[1:], out[0])
	}
	return out
}

// participantDrop is the drop a shard runs; from 6.0 a shard other than the primary
// marks its entry fromMigrate, so that only the primary's reports the drop.
func (r *Router) participantDrop(coll string, participant bool) bson.D {
	cmd := bson.D{{Key: "drop", Value: coll}}
	if participant && r.cfg.Identity.AtLeast(6, 0) {
		cmd = append(cmd, bson.E{Key: "fromMigrate", Value: true})
	}
	return cmd
}

// dropShardedCollections drops a database's sharded collections before the database
// itself, as the config server (before 5.0) and the drop database coordinator (5.0+) do:
// each on every shard, in dropOrder, the other shards' copies marked fromMigrate from
// 6.0. A shard left without collections holds no database any more, so its oplog shows
// no dropDatabase.
func (r *Router) dropShardedCollections(ctx context.Context, db string) error {
	d, ok := r.cat.Database(db)
	if !ok {
		return nil
	}
	for _, coll := range r.cat.ShardedCollections(db) {
		for _, b := range r.dropOrder(d.Primary) {
			if _, err := b.run(ctx, db, r.participantDrop(coll, b.Name != d.Primary)); err != nil && !isCode(err, codeNamespaceNotFound) {
				return err
			}
		}
	}
	return nil
}

// noteShardCollection writes on the primary shard the no-op 5.0 and later record a
// shardCollection with: o {msg: {shardCollection: ns}}, o2 {shardCollection: ns,
// shardKey, unique, numInitialChunks (until 7.x), presplitHashedZones}.
func (r *Router) noteShardCollection(ctx context.Context, primary *backend, db, coll string, key bson.Raw, unique bool, numChunks int64) error {
	if !r.cfg.Identity.AtLeast(5, 0) {
		return nil
	}
	ns := db + "." + coll
	o2 := bson.D{{Key: "shardCollection", Value: ns}, {Key: "shardKey", Value: key}, {Key: "unique", Value: unique}}
	if !r.cfg.Identity.AtLeast(8, 0) {
		o2 = append(o2, bson.E{Key: "numInitialChunks", Value: numChunks})
	}
	o2 = append(o2, bson.E{Key: "presplitHashedZones", Value: false})
	return noop(ctx, primary, db, coll, bson.D{{Key: "msg", Value: bson.D{{Key: "shardCollection", Value: ns}}}}, o2)
}

// noop asks a shard to write a sharding event's no-op (_sandboxNoop).
func noop(ctx context.Context, b *backend, db, coll string, o, o2 bson.D) error {
	if _, err := b.run(ctx, db, bson.D{{Key: "_sandboxNoop", Value: coll}, {Key: "o", Value: o}, {Key: "o2", Value: o2}}); err != nil {
		return fmt.Errorf("record the sharding event of %s.%s on shard %s: %w", db, coll, b.Name, err)
	}
	return nil
}

// refineCollectionShardKey extends a sharded collection's key with suffix fields: every
// chunk bound gets MinKey for them (MaxKey on the global maximum), every shard learns the
// new key (its entries' document keys hold the new fields from now on), and from 6.1 the
// primary shard records {msg: "Refine shard key ..."} / {refineCollectionShardKey: ns,
// shardKey, oldShardKey}.
func (r *Router) refineCollectionShardKey(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	ns, db, coll, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	newKey, ok := cmd.Lookup("key").DocumentOK()
	if !ok {
		return nil, wire.BadValue("refineCollectionShardKey needs a key document")
	}
	if _, err := shardkey.ParsePattern(newKey); err != nil {
		return nil, wire.BadValue(err.Error())
	}
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	rt, ok := r.cat.Route(ns)
	if !ok || !rt.Sharded() {
		return nil, notSharded(ns)
	}
	oldKey := bson.Raw(rt.Coll.Key)
	if !isKeyPrefix(oldKey, newKey) {
		return nil, &wire.Error{Code: 72, Name: "InvalidOptions", Msg: fmt.Sprintf(
			"refineCollectionShardKey: the new shard key %s must extend the current shard key %s", newKey, oldKey)}
	}
	primary, err := r.backend(rt.DB.Primary)
	if err != nil {
		return nil, err
	}
	indexes, err := primary.all(ctx, db, bson.D{{Key: "listIndexes", Value: coll}})
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(indexes, func(ix bson.Raw) bool {
		k, _ := ix.Lookup("key").DocumentOK()
		return isKeyPrefix(newKey, k)
	}) {
		return nil, &wire.Error{Code: 72, Name: "InvalidOptions", Msg: fmt.Sprintf(
			"refineCollectionShardKey: create an index that starts with the new shard key %s first", newKey)}
	}
	if err := r.cat.RefineShardKey(ns, newKey); err != nil {
		return nil, err
	}
	for _, b := range r.order {
		if err := setCollection(ctx, b, db, coll, newKey, rt.Coll.UUID); err != nil {
			return nil, err
		}
	}
	if r.cfg.Identity.AtLeast(6, 1) {
		err := noop(ctx, primary, db, coll,
			bson.D{{Key: "msg", Value: fmt.Sprintf("Refine shard key for collection %s with %s", ns, shellForm(newKey))}},
			bson.D{{Key: "refineCollectionShardKey", Value: ns}, {Key: "shardKey", Value: newKey}, {Key: "oldShardKey", Value: oldKey}})
		if err != nil {
			return nil, err
		}
	}
	return wire.OK(), nil
}

// isKeyPrefix reports whether key pattern a is a prefix of b: same fields, in order,
// with the same values.
func isKeyPrefix(a, b bson.Raw) bool {
	ea, _ := a.Elements()
	eb, _ := b.Elements()
	if len(ea) > len(eb) {
		return false
	}
	for i := range ea {
		if ea[i].Key() != eb[i].Key() || !sameIndexKey(bsoncoreDoc(ea[i]), bsoncoreDoc(eb[i])) {
			return false
		}
	}
	return true
}

// bsoncoreDoc wraps one element in a document.
func bsoncoreDoc(e bson.RawElement) bson.Raw {
	idx, b := bsoncore.AppendDocumentStart(nil)
	b = append(b, e...)
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// shellForm renders a key pattern as MongoDB's BSONObj::toString does: { a: 1, b: "hashed" }.
func shellForm(key bson.Raw) string {
	elems, _ := key.Elements()
	var buf bytes.Buffer
	buf.WriteString("{ ")
	for i, e := range elems {
		if i > 0 {
			buf.WriteString(", ")
		}
		buf.WriteString(e.Key() + ": ")
		v := e.Value()
		switch {
		case v.Type == bsontype.String:
			buf.WriteString(`"` + v.StringValue() + `"`)
		case v.Type == bsontype.Double && v.Double() == math.Trunc(v.Double()):
			fmt.Fprintf(&buf, "%.1f", v.Double())
		case v.Type == bsontype.Double:
			fmt.Fprintf(&buf, "%g", v.Double())
		default:
			n, _ := v.AsInt64OK()
			fmt.Fprintf(&buf, "%d", n)
		}
	}
	buf.WriteString(" }")
	return buf.String()
}

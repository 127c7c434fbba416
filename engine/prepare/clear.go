package prepare

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/topology"
)

// deleteBatch bounds the delete statements ClearShard sends in one bulk write:
// small enough for every destination (the sandbox's FerretDB stalls on bulks of
// 100 statements or more).
const deleteBatch = 99

// ClearShard deletes from the destination what one source shard owns, so that
// the shard can be copied again from a new T0 while the others keep syncing:
// the documents of its sharded collections whose shard key lies in its chunk
// ranges (hashed keys by hashed value, as the ranges hold them), and every
// document of the unsharded collections of the databases it is primary for.
// Indexes, options and the other shards' documents stay.
//
// A sharded collection's ranges go with one deleteMany each (rangeFilter), hinted
// on the shard key index where the destination takes a hint (4.4+). A hashed key,
// whose ranges hold hashes no query can compare, or a range bound of a type the
// filter does not bracket, is cleared by a scan instead (scanAndDelete).
//
// progress, when not nil, is told before each namespace which one it is (done
// namespaces of total), so that a clear lasting hours says where it is.
func ClearShard(ctx context.Context, client *mongo.Client, plan *Plan, shard string, progress func(done, total int, ns string)) error {
	sp, ok := plan.Shard(shard)
	if !ok {
		return fmt.Errorf("clear shard %s: the plan has no such source shard", shard)
	}
	for i := range sp.Namespaces {
		n := &sp.Namespaces[i]
		if progress != nil {
			progress(i, len(sp.Namespaces), n.NS())
		}
		var err error
		if n.Ranges == nil {
			err = EmptyCollection(ctx, client, n.Collection)
		} else {
			err = clearRanges(ctx, client, n, plan.DestinationVersion)
		}
		if err != nil {
			return fmt.Errorf("clear the data of shard %s on the destination: %w", shard, err)
		}
	}
	return nil
}

// EmptyCollection deletes every document of a destination collection, keeping
// its options and indexes. A capped collection, from which MongoDB may refuse
// deletes, is dropped and created again with the source's options instead (its
// indexes are built again after its copy).
func EmptyCollection(ctx context.Context, client *mongo.Client, c *Collection) error {
	coll := client.Database(c.DB).Collection(c.Name)
	if !c.Capped {
		if _, err := coll.DeleteMany(ctx, bson.D{}); err != nil {
			return fmt.Errorf("empty %s: %w", c.NS(), err)
		}
		return nil
	}
	if err := coll.Drop(ctx); err != nil && !mongoerr.HasCode(err, codeNamespaceNotFound) {
		return fmt.Errorf("empty capped %s (drop): %w", c.NS(), err)
	}
	if err := createCollection(ctx, client, c, nil); err != nil {
		return fmt.Errorf("empty capped %s (create again): %w", c.NS(), err)
	}
	return nil
}

// deleteHintFrom is the first release whose delete takes a hint.
const deleteHintFrom = "4.4"

// clearRanges deletes the documents of one sharded collection whose shard key
// lies in the shard's ranges: a deleteMany per range.
func clearRanges(ctx context.Context, client *mongo.Client, n *ShardNamespace, version string) error {
	if n.Pattern.IsHashed() {
		return scanAndDelete(ctx, client, n)
	}
	fields := n.Pattern.Fields()
	var filters []bson.D
	for i := range n.Ranges.Len() {
		lo, hi := n.Ranges.Range(i)
		f, none, ok := rangeFilter(fields, lo, hi)
		if !ok {
			return scanAndDelete(ctx, client, n)
		}
		if !none {
			filters = append(filters, f)
		}
	}
	opts := options.Delete()
	if n.DefaultCollation() != nil {
		opts.SetCollation(&options.Collation{Locale: "simple"}) // shard key order
	}
	if !topology.OlderThan(version, deleteHintFrom) {
		opts.SetHint(n.Key)
	}
	coll := client.Database(n.DB).Collection(n.Name)
	for _, f := range filters {
		if _, err := coll.DeleteMany(ctx, f, opts); err != nil {
			return fmt.Errorf("delete the range %v of %s: %w", f, n.NS(), err)
		}
	}
	return nil
}

// scanAndDelete deletes the documents of one sharded collection whose shard key
// lies in the shard's ranges by scanning the collection with a projection of _id
// and the shard key, checking each key against the ranges here (exact for hashed
// keys and every BSON type), and deleting the owned documents by their full
// document key.
func scanAndDelete(ctx context.Context, client *mongo.Client, n *ShardNamespace) error {
	fields := n.Pattern.Fields()
	proj := bson.D{{Key: "_id", Value: 1}}
	for _, f := range fields {
		if f != "_id" {
			proj = append(proj, bson.E{Key: f, Value: 1})
		}
	}
	coll := client.Database(n.DB).Collection(n.Name)
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(proj))
	if err != nil {
		return fmt.Errorf("scan %s: %w", n.NS(), err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var (
		batch []mongo.WriteModel
		buf   []byte
		owned bool
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := coll.BulkWrite(ctx, batch, options.BulkWrite().SetOrdered(false))
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("delete from %s: %w", n.NS(), err)
		}
		return nil
	}
	for cur.Next(ctx) {
		owned, buf, err = n.Owns(cur.Current, buf)
		if err != nil {
			return fmt.Errorf("%s: document %s: %w", n.NS(), cur.Current.Lookup("_id"), err)
		}
		if !owned {
			continue
		}
		batch = append(batch, mongo.NewDeleteOneModel().SetFilter(documentKey(cur.Current, fields)))
		if len(batch) == deleteBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("scan %s: %w", n.NS(), err)
	}
	return flush()
}

// documentKey is the filter {_id, <shard key fields>} that targets exactly one
// document through mongos. A missing shard key field is null, which also matches
// a missing field.
func documentKey(doc bson.Raw, fields []string) bson.D {
	key := bson.D{{Key: "_id", Value: doc.Lookup("_id")}}
	for _, f := range fields {
		if f == "_id" {
			continue
		}
		v, err := doc.LookupErr(strings.Split(f, ".")...)
		if err != nil {
			key = append(key, bson.E{Key: f, Value: nil})
			continue
		}
		key = append(key, bson.E{Key: f, Value: v})
	}
	return key
}

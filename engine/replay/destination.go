package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/oplog"
)

// Destination applies document writes.
type Destination interface {
	// Write applies writes, all to ns, as one bulk write: the writes to one document
	// in order; writes to different documents may be applied in any order. It returns
	// how many were applied; on error that is the index of the first write that
	// failed: the ones before it are applied, the ones after it may or may not be
	// (writing them again is harmless: every write of an oplog is idempotent, as long
	// as a document's writes keep their order).
	Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (applied int, err error)
}

// SizePool sets, on the options of a destination client that leave them unset
// (maxPoolSize, maxConnecting in the URI), a connection pool for the replay's bulk
// writes in flight: each shard's appliers (Config.Appliers, 4) keep up to
// 4 batches in flight (Config.Pipeline, for a destination 1 ms or more away), a round's deletes beside its other
// writes, so up to 32 write commands per shard at once, beside the copy's
// writers. The driver's defaults, 100 connections to a server made 2 at a time
// (each a round trip or more away), held the pipelined replay of 3 shards 40 ms
// away to the pool's pace (figure 12, docs/performance.md). A mongos takes
// thousands of connections; the replay's own bounds (appliers, Pipeline, the
// queue's bytes) keep the count of those in use.
func SizePool(opts *options.ClientOptions) {
	if opts.MaxPoolSize == nil {
		opts.SetMaxPoolSize(DestinationPoolSize)
	}
	if opts.MaxConnecting == nil {
		opts.SetMaxConnecting(destinationConnecting)
	}
}

// DestinationPoolSize is the destination client's maxPoolSize unless its URI sets
// one (SizePool).
const DestinationPoolSize = 512

const destinationConnecting = 16

// MongoDestination writes through a mongos (or any MongoDB-compatible server).
// Durability is the client's write concern: give the destination URI
// w=majority so that a checkpoint never covers a write a failover can lose.
type MongoDestination struct {
	client *mongo.Client
}

// NewMongoDestination writes through client.
func NewMongoDestination(client *mongo.Client) *MongoDestination {
	return &MongoDestination{client: client}
}

// Write maps each oplog.Write to its driver model (see oplog.Write) and runs one
// bulk write, bypassing document validation, unordered when no two writes touch one document: a mongos then sends
// each shard its part at once, where an ordered bulk goes shard by shard, in runs
// that end wherever the next write targets another shard.
func (d *MongoDestination) Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	models := make([]mongo.WriteModel, len(writes))
	for i := range writes {
		m, err := writeModel(&writes[i])
		if err != nil {
			return i, err
		}
		models[i] = m
	}
	coll := d.client.Database(ns.DB).Collection(ns.Coll)
	// Document validation is bypassed as the copy bypasses it: the source accepted
	// these documents (before its validator changed, or under a moderate level).
	_, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(sharesDocument(writes)).SetBypassDocumentValidation(true))
	if err == nil {
		return len(writes), nil
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 {
		first := bwe.WriteErrors[0]
		for _, we := range bwe.WriteErrors[1:] {
			if we.Index < first.Index {
				first = we
			}
		}
		return first.Index, err
	}
	return 0, err
}

// sharesDocument reports whether two of writes target the same document (by _id,
// which names one document at a time in a shard's oplog).
func sharesDocument(writes []oplog.Write) bool {
	seen := make(map[string]struct{}, len(writes))
	for i := range writes {
		k := docKey(writes[i].Filter)
		if _, dup := seen[k]; dup {
			return true
		}
		seen[k] = struct{}{}
	}
	return false
}

func writeModel(w *oplog.Write) (mongo.WriteModel, error) {
	switch w.Kind {
	case oplog.InsertReplace:
		return mongo.NewReplaceOneModel().SetFilter(w.Filter).SetReplacement(w.Replacement).SetUpsert(w.Upsert), nil
	case oplog.Update:
		if w.Pipeline != nil {
			return mongo.NewUpdateOneModel().SetFilter(w.Filter).SetUpdate(w.Pipeline), nil
		}
		return mongo.NewUpdateOneModel().SetFilter(w.Filter).SetUpdate(w.Update), nil
	case oplog.Delete:
		return mongo.NewDeleteOneModel().SetFilter(w.Filter), nil
	}
	return nil, fmt.Errorf("write to %s: unknown write kind %d", w.NS, w.Kind)
}

// ImageReader is implemented by destinations that can read one document, for
// servers that run no pipeline updates (FerretDB): once the destination refused one
// with NotImplemented, the applier turns each update the translator could only
// express as a pipeline into a replacement (no upsert) of the document it read with
// the update's $v: 2 diff applied, written in the same bulk write as its neighbours.
// Reading and replacing is safe because one applier owns every write to a document
// and nothing else writes to the destination during the sync.
type ImageReader interface {
	// Image returns the document matching filter (a document key: _id and the shard
	// key fields), or nil when none does.
	Image(ctx context.Context, ns oplog.Namespace, filter bson.Raw) (bson.Raw, error)
}

// IdempotencyChecker is implemented by destinations that can tell a write error
// an idempotent replay expects (see idempotencyCodes) from the destination refusing
// the write. A destination without it has none of those errors tolerated.
type IdempotencyChecker interface {
	// HoldsID reports whether ns holds a document with this _id, whatever its other
	// fields.
	HoldsID(ctx context.Context, ns oplog.Namespace, id bson.RawValue) (bool, error)
	// AcceptsUpdate runs w's update (an oplog.Update) against no document: nil when
	// the destination takes its form.
	AcceptsUpdate(ctx context.Context, ns oplog.Namespace, w oplog.Write) error
}

// HoldsID implements IdempotencyChecker.
func (d *MongoDestination) HoldsID(ctx context.Context, ns oplog.Namespace, id bson.RawValue) (bool, error) {
	n, err := d.client.Database(ns.DB).Collection(ns.Coll).CountDocuments(ctx, bson.D{{Key: "_id", Value: id}}, options.Count().SetLimit(1))
	return n > 0, err
}

// AcceptsUpdate implements IdempotencyChecker: the update goes to every document
// without an _id, which is none (a multi update, which mongos takes without the
// shard key and sends to every shard; the _id index answers it at once).
func (d *MongoDestination) AcceptsUpdate(ctx context.Context, ns oplog.Namespace, w oplog.Write) error {
	var update any = w.Update
	if w.Pipeline != nil {
		update = w.Pipeline
	}
	none := bson.D{{Key: "_id", Value: bson.D{{Key: "$exists", Value: false}}}}
	_, err := d.client.Database(ns.DB).Collection(ns.Coll).UpdateMany(ctx, none, update, options.Update().SetBypassDocumentValidation(true))
	return err
}

// errDiffMismatch: a diff does not fit the document it is applied to (the document
// is in a later state than the entry, which only happens before the consistency
// point).
var errDiffMismatch = errors.New("the update's diff does not fit the document")

// Image implements ImageReader. It queries by _id alone and checks the other fields
// of the document key itself: {_id: v} is the query every server answers from an
// index (FerretDB scans the whole collection for any other filter, which made each
// read cost as much as the collection is large), and a document whose shard key
// changed can exist under the same _id on two shards for a while.
func (d *MongoDestination) Image(ctx context.Context, ns oplog.Namespace, filter bson.Raw) (bson.Raw, error) {
	id, err := filter.LookupErr("_id")
	if err != nil {
		return nil, fmt.Errorf("read a document of %s: its document key %s has no _id", ns, filter)
	}
	coll := d.client.Database(ns.DB).Collection(ns.Coll)
	cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		if keyMatches(filter, cur.Current) {
			return append(bson.Raw(nil), cur.Current...), nil
		}
	}
	return nil, cur.Err()
}

// keyMatches reports whether doc has the document key filter names: each field
// other than _id (a dotted path) equal to doc's, a null matching a missing field.
func keyMatches(filter, doc bson.Raw) bool {
	elems, err := filter.Elements()
	if err != nil {
		return false
	}
	for _, e := range elems {
		if e.Key() == "_id" {
			continue
		}
		want := e.Value()
		got, err := doc.LookupErr(strings.Split(e.Key(), ".")...)
		if err != nil {
			if want.Type != bson.TypeNull {
				return false
			}
			continue
		}
		if !sameValue(want, got) {
			return false
		}
	}
	return true
}

// sameValue compares two values as a query's equality does for the types a shard
// key holds: numbers by value whatever their type, anything else by type and bytes.
func sameValue(a, b bson.RawValue) bool {
	if a.Type == b.Type {
		return bytes.Equal(a.Value, b.Value)
	}
	ai, aInt := intOf(a)
	bi, bInt := intOf(b)
	if aInt && bInt {
		return ai == bi
	}
	af, aNum := floatOf(a)
	bf, bNum := floatOf(b)
	return aNum && bNum && af == bf
}

func intOf(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), true
	case bson.TypeInt64:
		return v.Int64(), true
	}
	return 0, false
}

func floatOf(v bson.RawValue) (float64, bool) {
	if i, ok := intOf(v); ok {
		return float64(i), true
	}
	return v.DoubleOK()
}

// discard is the destination of a dry run: it applies nothing.
type discard struct{}

func (discard) Write(_ context.Context, _ oplog.Namespace, writes []oplog.Write) (int, error) {
	return len(writes), nil
}

// Discard returns a Destination that accepts every write and applies none, for dry
// runs: everything up to the destination (decoding, filtering, transactions,
// translation, dispatch) runs as for real.
func Discard() Destination { return discard{} }

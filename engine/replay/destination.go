package replay

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/oplog"
)

// Destination applies document writes.
type Destination interface {
	// Write applies writes, all to ns, in order, as one ordered bulk write. It returns
	// how many were applied; on error that is the index of the write that failed (the
	// ones before it are applied, the ones after it are not).
	Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (applied int, err error)
}

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
// ordered bulk write.
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
	_, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true))
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

func writeModel(w *oplog.Write) (mongo.WriteModel, error) {
	switch w.Kind {
	case oplog.InsertReplace:
		return mongo.NewReplaceOneModel().SetFilter(w.Filter).SetReplacement(w.Replacement).SetUpsert(true), nil
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

// DiffWriter is implemented by destinations that can apply a $v: 2 diff to a
// document by reading it and replacing it whole, for servers that run no pipeline
// updates (FerretDB): the applier falls back to it for the updates the translator
// could only express as a pipeline, once the destination refused one with
// NotImplemented. Reading and replacing is safe because one applier owns every
// write to a document and nothing else writes to the destination during the sync.
type DiffWriter interface {
	// WriteDiff applies diff to the document matching filter; no document is no
	// error (an update that matches nothing). A diff that does not fit the document
	// is an error wrapping errDiffMismatch.
	WriteDiff(ctx context.Context, ns oplog.Namespace, filter, diff bson.Raw) error
}

// errDiffMismatch: a diff does not fit the document it is applied to (the document
// is in a later state than the entry, which only happens before the consistency
// point).
var errDiffMismatch = errors.New("the update's diff does not fit the document")

// WriteDiff implements DiffWriter.
func (d *MongoDestination) WriteDiff(ctx context.Context, ns oplog.Namespace, filter, diff bson.Raw) error {
	coll := d.client.Database(ns.DB).Collection(ns.Coll)
	pre, err := coll.FindOne(ctx, filter).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return err
	}
	post, err := oplog.ApplyDiff(pre, diff)
	if err != nil {
		return fmt.Errorf("%w: %v", errDiffMismatch, err)
	}
	_, err = coll.ReplaceOne(ctx, filter, post)
	return err
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

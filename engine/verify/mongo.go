package verify

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/topology"
)

// MongoSide reads a cluster through a client connected to its mongos.
func MongoSide(client *mongo.Client) Side {
	return mongoSide{client: client, version: topology.NewServerVersion(client)}
}

type mongoSide struct {
	client  *mongo.Client
	version *topology.ServerVersion
}

func (s mongoSide) Scan(ctx context.Context, db, coll string, idOnly, simpleCollation bool) (Cursor, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if idOnly {
		opts.SetProjection(bson.D{{Key: "_id", Value: 1}})
	}
	return s.find(ctx, db, coll, bson.D{}, opts, simpleCollation)
}

func (s mongoSide) Find(ctx context.Context, db, coll string, ids []bson.RawValue, simpleCollation bool) (Cursor, error) {
	in := make(bson.A, len(ids))
	for i, id := range ids {
		in[i] = id
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}
	return s.find(ctx, db, coll, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}), simpleCollation)
}

func (s mongoSide) ScanRange(ctx context.Context, db, coll string, keyPattern bson.Raw, min, max []byte, simpleCollation bool) (Cursor, error) {
	return s.find(ctx, db, coll, bson.D{}, topology.InIndexBounds(options.Find(), keyPattern, min, max), simpleCollation)
}

func (s mongoSide) find(ctx context.Context, db, coll string, filter bson.D, opts *options.FindOptions, simpleCollation bool) (Cursor, error) {
	if simpleCollation {
		version, err := s.version.Get(ctx)
		if err != nil {
			return nil, err
		}
		topology.InSimpleCollation(opts, version)
	}
	cur, err := s.client.Database(db).Collection(coll).Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	return mongoCursor{cur}, nil
}

type mongoCursor struct{ c *mongo.Cursor }

func (m mongoCursor) Next(ctx context.Context) bool   { return m.c.Next(ctx) }
func (m mongoCursor) Current() bson.Raw               { return m.c.Current }
func (m mongoCursor) Err() error                      { return m.c.Err() }
func (m mongoCursor) Close(ctx context.Context) error { return m.c.Close(ctx) }

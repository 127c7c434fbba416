package initialsync

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
)

// RecordT0 returns the newest entry's ts in the shard's oplog (local.oplog.rs,
// $natural descending, limit 1), on a direct connection to the shard primary.
// Called before the copy it is T0, where the shard's oplog replay starts; called
// when the copy ends it is the consistency point, from which the destination
// holds a consistent image of the shard once replay passes it.
func RecordT0(ctx context.Context, shard *mongo.Client) (primitive.Timestamp, error) {
	raw, err := shard.Database("local").Collection("oplog.rs").FindOne(ctx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}}).SetProjection(bson.D{{Key: "ts", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return primitive.Timestamp{}, errors.New("read the newest oplog entry: local.oplog.rs is empty (is this server a replica set member?)")
	}
	if err != nil {
		return primitive.Timestamp{}, fmt.Errorf("read the newest oplog entry: %w", err)
	}
	t, i, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return primitive.Timestamp{}, fmt.Errorf("the newest oplog entry has no timestamp ts: %s", raw)
	}
	return primitive.Timestamp{T: t, I: i}, nil
}

// MongoSource reads a shard through a client connected to its replica set. Scans
// read what the set's majority committed, as of t0 or later (read concern majority
// with afterClusterTime t0, topology.MajorityReadsAfter): T0 is the shard's
// majority commit point, so every write up to it is in what a scan reads, and a
// scan never copies a write a failover can roll back (docs/correctness.md).
func MongoSource(shard *mongo.Client, t0 primitive.Timestamp) Source {
	return MongoSourceReading(shard, t0, topology.ReadPreference{Mode: "primary"})
}

// MongoSourceReading is MongoSource whose scans read the members reads chooses (the
// driver's server selection on the shard's replica set connection). Any member
// serves the same documents: a scan waits on it until its majority-committed
// snapshot reaches t0. The collections' indexes are read on the primary: a member
// behind it may not have an index created before T0 yet, and the replay, from T0,
// would not create it either.
func MongoSourceReading(shard *mongo.Client, t0 primitive.Timestamp, reads topology.ReadPreference) Source {
	return &mongoSource{client: shard, t0: t0, reads: reads, version: topology.NewServerVersion(shard)}
}

type mongoSource struct {
	client  *mongo.Client
	t0      primitive.Timestamp
	reads   topology.ReadPreference
	version *topology.ServerVersion
}

// scanBatch is the cursor batch size of a scan: servers that do not fill 16 MiB
// batches by default (FerretDB answers 101 documents at a time) are read in
// fewer round trips, and MongoDB's own batches stay far below 16 MiB.
const scanBatch = DefaultBatchDocs

// Find sorts by _id, or by $natural; simpleCollation is topology.InSimpleCollation.
func (s *mongoSource) Find(ctx context.Context, db, coll string, filter bson.D, order Order, simple bool) (Cursor, error) {
	sort := bson.D{{Key: "_id", Value: 1}}
	if order == Natural {
		sort = bson.D{{Key: "$natural", Value: 1}}
	}
	opts := options.Find().SetSort(sort).SetBatchSize(scanBatch)
	if simple {
		version, err := s.version.Get(ctx)
		if err != nil {
			return nil, err
		}
		topology.InSimpleCollation(opts, version)
	}
	return s.find(ctx, db, coll, filter, opts)
}

// FindRange bounds the scan with find's min and max on the hinted _id index
// (topology.InIndexBounds): index key bounds, in MongoDB's order across types,
// where a filter's $gte/$lt would match one type class only.
func (s *mongoSource) FindRange(ctx context.Context, db, coll string, min, max bson.RawValue) (Cursor, error) {
	idIndex := bson.D{{Key: "_id", Value: 1}}
	bound := func(v bson.RawValue) []byte {
		if v.Type == 0 {
			return nil
		}
		b, _ := bson.Marshal(bson.D{{Key: "_id", Value: v}})
		return b
	}
	hint, _ := bson.Marshal(idIndex)
	opts := topology.InIndexBounds(options.Find().SetSort(idIndex).SetBatchSize(scanBatch), hint, bound(min), bound(max))
	return s.find(ctx, db, coll, bson.D{}, opts)
}

// SampleIDs runs {$sample: {size: n}}: with n under 5% of a collection of more
// than 100 documents, MongoDB draws it with a random cursor (n random seeks),
// else it sorts the collection by random keys, which only small collections meet
// here (split only large ones).
func (s *mongoSource) SampleIDs(ctx context.Context, db, coll string, n int) ([]bson.RawValue, error) {
	cur, err := s.client.Database(db).Collection(coll).Aggregate(ctx, bson.A{
		bson.D{{Key: "$sample", Value: bson.D{{Key: "size", Value: n}}}},
		bson.D{{Key: "$project", Value: bson.D{{Key: "_id", Value: 1}}}},
	})
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var ids []bson.RawValue
	for cur.Next(ctx) {
		if id := cur.Current.Lookup("_id"); id.Type != 0 {
			ids = append(ids, cloneValue(id))
		}
	}
	return ids, cur.Err()
}

// find runs a scan at read concern majority after T0, in a session of its own.
func (s *mongoSource) find(ctx context.Context, db, coll string, filter bson.D, opts *options.FindOptions) (Cursor, error) {
	sess, err := topology.MajorityReadsAfter(s.client, s.t0)
	if err != nil {
		return nil, err
	}
	cur, err := s.client.Database(db).Collection(coll, topology.MajorityRead().SetReadPreference(s.reads.Driver())).Find(mongo.NewSessionContext(ctx, sess), filter, opts)
	if err != nil {
		sess.EndSession(context.WithoutCancel(ctx))
		return nil, topology.MajorityReadError(err)
	}
	return sessionCursor{mongoCursor{cur}, sess}, nil
}

// sessionCursor ends its session when it is closed.
type sessionCursor struct {
	mongoCursor
	sess mongo.Session
}

func (c sessionCursor) Close(ctx context.Context) error {
	err := c.mongoCursor.Close(ctx)
	c.sess.EndSession(ctx)
	return err
}

func (s *mongoSource) ListIndexes(ctx context.Context, db, coll string) ([]bson.Raw, error) {
	cur, err := s.client.Database(db).Collection(coll).Indexes().List(ctx)
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	return out, cur.Err()
}

type mongoCursor struct{ c *mongo.Cursor }

func (m mongoCursor) Next(ctx context.Context) bool   { return m.c.Next(ctx) }
func (m mongoCursor) Current() bson.Raw               { return m.c.Current }
func (m mongoCursor) Err() error                      { return m.c.Err() }
func (m mongoCursor) Close(ctx context.Context) error { return m.c.Close(ctx) }

// MongoDestination writes through a client connected to the destination's mongos.
func MongoDestination(mongos *mongo.Client) Destination { return mongoDestination{mongos} }

type mongoDestination struct{ client *mongo.Client }

func (d mongoDestination) Insert(ctx context.Context, db, coll string, docs []bson.Raw, ordered bool) error {
	list := make([]any, len(docs))
	for i, doc := range docs {
		list[i] = doc
	}
	_, err := d.client.Database(db).Collection(coll).InsertMany(ctx, list,
		options.InsertMany().SetOrdered(ordered).SetBypassDocumentValidation(true))
	return err
}

func (d mongoDestination) CreateIndexes(ctx context.Context, db, coll string, specs []bson.Raw) error {
	list := make(bson.A, len(specs))
	for i, s := range specs {
		list[i] = s
	}
	return d.client.Database(db).RunCommand(ctx, bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: list}}).Err()
}

func (d mongoDestination) Empty(ctx context.Context, c *prepare.Collection) error {
	return prepare.EmptyCollection(ctx, d.client, c)
}

func (d mongoDestination) ExistingIDs(ctx context.Context, db, coll string, ids []bson.RawValue) ([]bool, error) {
	cur, err := d.client.Database(db).Collection(coll).Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	present := make([]bool, len(ids))
	for cur.Next(ctx) {
		found := cur.Current.Lookup("_id")
		for i, id := range ids {
			if !present[i] && compareIDs(found, id) == 0 {
				present[i] = true
			}
		}
	}
	return present, cur.Err()
}

package shard

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// startFront starts a shard in a temporary directory (unless cfg.Dir is set) and closes
// it when the test ends.
func startFront(t testing.TB, cfg Config) *Front {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test-shard0"
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	f, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

// connect opens a direct driver connection to the front.
func connect(t testing.TB, f *Front, opts ...*options.ClientOptions) *mongo.Client {
	t.Helper()
	o := options.Client().ApplyURI("mongodb://" + f.Addr()).SetDirect(true).
		SetServerSelectionTimeout(5 * time.Second).SetConnectTimeout(5 * time.Second)
	c, err := mongo.Connect(context.Background(), append([]*options.ClientOptions{o}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func oplogColl(c *mongo.Client) *mongo.Collection {
	return c.Database("local").Collection("oplog.rs")
}

// entriesAfter returns the oplog entries with ts > after, in order, without no-ops.
func entriesAfter(t testing.TB, c *mongo.Client, after primitive.Timestamp) []bson.Raw {
	t.Helper()
	ctx := context.Background()
	cur, err := oplogColl(c).Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: after}}}, {Key: "op", Value: bson.D{{Key: "$ne", Value: "n"}}}})
	if err != nil {
		t.Fatalf("read oplog: %v", err)
	}
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("read oplog: %v", err)
	}
	return out
}

// lastTS is the newest oplog entry's ts.
func lastTS(t testing.TB, c *mongo.Client) primitive.Timestamp {
	t.Helper()
	var e struct {
		TS primitive.Timestamp `bson:"ts"`
	}
	err := oplogColl(c).FindOne(context.Background(), bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Decode(&e)
	if err != nil {
		t.Fatalf("newest oplog entry: %v", err)
	}
	return e.TS
}

func commandCode(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.WriteErrors) > 0 {
		return int32(we.WriteErrors[0].Code)
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 {
		return int32(bwe.WriteErrors[0].Code)
	}
	return 0
}

// ext parses relaxed extended JSON into a document.
func ext(t testing.TB, s string) bson.Raw {
	t.Helper()
	var r bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(s), false, &r); err != nil {
		t.Fatalf("bad extended JSON %s: %v", s, err)
	}
	return r
}

// without returns doc less the named top-level fields (to compare entries without ts,
// wall and ui).
func without(doc bson.Raw, keys ...string) bson.Raw {
	elems, _ := doc.Elements()
	d := bson.D{}
	for _, e := range elems {
		skip := false
		for _, k := range keys {
			skip = skip || e.Key() == k
		}
		if !skip {
			d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	b, _ := bson.Marshal(d)
	return b
}

package initialsync

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// BenchmarkWatchedCursorNext drives a watched cursor one document an op, the way
// the copy reads a shard: it measures what watching costs each document.
func BenchmarkWatchedCursorNext(b *testing.B) {
	doc := bson.Raw(bsonDoc(b))
	src := watchedSource{src: endlessSource{doc: doc}, w: newSourceWatch(time.Now)}
	cur, err := src.Find(context.Background(), "app", "c", nil, ByID, false)
	if err != nil {
		b.Fatal(err)
	}
	defer cur.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !cur.Next(ctx) {
			b.Fatal("the cursor ended")
		}
		_ = cur.Current()
	}
}

func bsonDoc(b *testing.B) []byte {
	raw, err := bson.Marshal(bson.D{{Key: "_id", Value: int64(1)}})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// endlessSource's cursors return the same document for ever, allocating nothing.
type endlessSource struct {
	Source
	doc bson.Raw
}

func (s endlessSource) Find(context.Context, string, string, bson.D, Order, bool) (Cursor, error) {
	return endlessCursor{doc: s.doc}, nil
}

type endlessCursor struct{ doc bson.Raw }

func (c endlessCursor) Next(context.Context) bool   { return true }
func (c endlessCursor) Current() bson.Raw           { return c.doc }
func (c endlessCursor) Err() error                  { return nil }
func (c endlessCursor) Close(context.Context) error { return nil }

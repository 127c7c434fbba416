package shard

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// TestFindMinMaxBoundAShardKeyIndex checks find's min and max on a hinted shard
// key index as a mongod walks it: whole keys compared in MongoDB's order (a
// compound key's trailing fields decide within one leading value, a missing field
// is null), min included, max excluded, across getMores; a hashed index's bounds
// are hashes.
func TestFindMinMaxBoundAShardKeyIndex(t *testing.T) {
	f := startFront(t, Config{})
	c := connect(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("keyed")
	var docs []any
	for i := range 40 {
		d := bson.D{{Key: "_id", Value: int32(i)}, {Key: "c", Value: int32(i / 4)}}
		if i >= 36 {
			d = bson.D{{Key: "_id", Value: int32(i)}} // no c: its key is null
		}
		docs = append(docs, d)
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	scan := func(hint, min, max bson.D) []int {
		t.Helper()
		opts := options.Find().SetHint(hint).SetBatchSize(3)
		if min != nil {
			opts.SetMin(min)
		}
		if max != nil {
			opts.SetMax(max)
		}
		cur, err := coll.Find(ctx, bson.D{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for cur.Next(ctx) {
			got = append(got, int(cur.Current.Lookup("_id").Int32()))
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	compound := bson.D{{Key: "c", Value: 1}, {Key: "_id", Value: 1}}
	key := func(c, id any) bson.D { return bson.D{{Key: "c", Value: c}, {Key: "_id", Value: id}} }
	for _, tc := range []struct {
		name     string
		min, max bson.D
		want     []int
	}{
		{"leading values", key(int32(2), primitive.MinKey{}), key(int32(4), primitive.MinKey{}), []int{8, 9, 10, 11, 12, 13, 14, 15}},
		{"within one leading value", key(int32(2), int32(9)), key(int32(3), int32(13)), []int{9, 10, 11, 12}},
		{"open below: null keys first", key(primitive.MinKey{}, primitive.MinKey{}), key(int32(1), primitive.MinKey{}), []int{0, 1, 2, 3, 36, 37, 38, 39}},
		{"to the end", key(int32(8), int32(34)), key(primitive.MaxKey{}, primitive.MaxKey{}), []int{34, 35}},
		{"from null", key(nil, int32(37)), key(int32(0), int32(2)), []int{0, 1, 37, 38, 39}},
	} {
		if got := scan(compound, tc.min, tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	hashed := bson.D{{Key: "_id", Value: "hashed"}}
	p, err := shardkey.NewPattern(hashed)
	if err != nil {
		t.Fatal(err)
	}
	var below []int
	for i := range 40 {
		if k, _ := p.Extract(mustMarshal(bson.D{{Key: "_id", Value: int32(i)}})); shardkey.CompareKeys(k, shardkey.Key(mustMarshal(bson.D{{Key: "_id", Value: int64(0)}}))) < 0 {
			below = append(below, i)
		}
	}
	if got := scan(hashed, bson.D{{Key: "_id", Value: primitive.MinKey{}}}, bson.D{{Key: "_id", Value: int64(0)}}); !slices.Equal(got, below) || len(below) == 0 || len(below) == 40 {
		t.Errorf("hashed below 0: %v, want %v", got, below)
	}
}

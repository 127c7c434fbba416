package shard

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// idValue is v marshaled as a BSON value.
func idValue(t *testing.T, v any) bsoncore.Value {
	t.Helper()
	typ, data, err := bson.MarshalValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return bsoncore.Value{Type: typ, Data: data}
}

// TestInSortedByIDIsIndexLookups: a find of {_id: {$in: [...]}} sorted by _id (the
// verification's recheck of the documents written since a comparison, in batches
// of 1,000) reads only the documents named, as a mongod walks its _id index, and
// answers them in _id order, up to its limit. Every other document is made
// unreadable first: FerretDB's scan of the collection would fail on them.
func TestInSortedByIDIsIndexLookups(t *testing.T) {
	for _, kind := range idKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir := t.TempDir()
			f := startFront(t, Config{Dir: dir})
			c := connect(t, f)
			ctx := context.Background()
			coll := c.Database("app").Collection("c")
			const docs = 40
			batch := make([]any, docs)
			for i := range docs {
				batch[i] = bson.D{{Key: "_id", Value: kind.id(i)}, {Key: "k", Value: i}}
			}
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			keep := []int{29, 3, 17}
			conn, table := shardSQL(t, dir, "app", "c")
			q := fmt.Sprintf(`UPDATE %q SET _ferretdb_sjson = json_object('_id', json(_ferretdb_sjson->'$._id'), 'poisoned', 1) WHERE _ferretdb_sjson->>'$.k' NOT IN (3, 17, 29)`, table)
			if _, err := conn.Exec(q); err != nil {
				t.Fatalf("poison: %v", err)
			}
			in := bson.A{}
			for _, k := range keep {
				in = append(in, kind.id(k))
			}
			filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}
			// MongoDB's order of the kept _ids (strings order "id-<17>" first).
			asc := slices.Clone(keep)
			slices.SortFunc(asc, func(a, b int) int { return shardkey.Compare(idValue(t, kind.id(a)), idValue(t, kind.id(b))) })
			desc := slices.Clone(asc)
			slices.Reverse(desc)
			for _, tc := range []struct {
				dir   int
				limit int64
				want  []int
			}{
				{1, 0, asc},
				{-1, 0, desc},
				{1, 2, asc[:2]},
			} {
				opts := options.Find().SetSort(bson.D{{Key: "_id", Value: tc.dir}})
				if tc.limit > 0 {
					opts.SetLimit(tc.limit)
				}
				cur, err := coll.Find(ctx, filter, opts)
				if err != nil {
					t.Fatalf("find sorted %d, limit %d: %v", tc.dir, tc.limit, err)
				}
				var got []struct {
					K int32 `bson:"k"`
				}
				if err := cur.All(ctx, &got); err != nil {
					t.Fatalf("find sorted %d, limit %d: %v", tc.dir, tc.limit, err)
				}
				var ks []int
				for _, d := range got {
					ks = append(ks, int(d.K))
				}
				if !slices.Equal(ks, tc.want) {
					t.Errorf("find sorted %d, limit %d: k %v, want %v", tc.dir, tc.limit, ks, tc.want)
				}
			}
		})
	}
}

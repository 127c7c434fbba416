package verify

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// Each range of a ranged and of a hashed key is compared on its own: equal
// ranges match whatever order each side returns its documents in, and the range
// holding an altered, a missing and an extra document names exactly those _ids,
// while the other ranges still match.
func TestCompareRangeComparesOneRangeAndNamesWhatDiffers(t *testing.T) {
	src, dst, nss := twoSides(t)
	ctx := context.Background()
	for _, n := range nss[:2] {
		for _, ch := range n.Chunks {
			res, err := CompareRange(ctx, src, dst, n, shardkey.Range{Min: ch.Min, Max: ch.Max}, 10)
			if err != nil || len(res.Differ) != 0 || res.Documents == 0 {
				t.Fatalf("%s %s: %+v, %v", n.Name(), ch.Min, res, err)
			}
		}
	}
	dst.put("shop.orders", bson.D{{Key: "_id", Value: 150}, {Key: "k", Value: 150}, {Key: "v", Value: "altered"}})
	dst.remove("shop.orders", 151)
	dst.put("shop.orders", bson.D{{Key: "_id", Value: 1000}, {Key: "k", Value: 160}})
	orders := nss[0]
	var total int64
	for i, ch := range orders.Chunks {
		res, err := CompareRange(ctx, src, dst, orders, shardkey.Range{Min: ch.Min, Max: ch.Max}, 10)
		if err != nil {
			t.Fatal(err)
		}
		total += res.Documents
		var got []string
		for _, id := range res.Differ {
			got = append(got, id.String())
		}
		slices.Sort(got)
		want := []string(nil)
		if i == 1 {
			want = []string{`{"$numberInt":"1000"}`, `{"$numberInt":"150"}`, `{"$numberInt":"151"}`}
		}
		if !slices.Equal(got, want) || res.More {
			t.Fatalf("range %d: differ %v (more %v), want %v", i, got, res.More, want)
		}
	}
	if total != 300 {
		t.Fatalf("the ranges hold %d source documents, want 300", total)
	}
	if res, _ := CompareRange(ctx, src, dst, orders, shardkey.Range{Min: orders.Chunks[1].Min, Max: orders.Chunks[1].Max}, 2); len(res.Differ) != 2 || !res.More {
		t.Fatalf("limit 2: %+v", res)
	}
}

// A server that ignores find's min and max returns documents outside the range:
// the comparison fails instead of counting them in the range.
func TestCompareRangeFailsWhenTheServerIgnoresTheBounds(t *testing.T) {
	src, dst, nss := twoSides(t)
	src.ignoreBounds = true
	ch := nss[0].Chunks[1]
	_, err := CompareRange(context.Background(), src, dst, nss[0], shardkey.Range{Min: ch.Min, Max: ch.Max}, 10)
	if err == nil || !strings.Contains(err.Error(), "outside the range") {
		t.Fatalf("err %v", err)
	}
}

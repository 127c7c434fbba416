package validate

import (
	"math"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/topology"
)

// pair is the good pair with the source at one version and the destination at
// another (each at its own FCV).
func pair(src, dst string) Input {
	in := goodInput()
	setVersion(in.Source, src, topology.MajorVersion(src))
	setVersion(in.Destination, dst, topology.MajorVersion(dst))
	return in
}

func TestUpgradesFrom44PassDowngradesAndOlderUpgradesDoNot(t *testing.T) {
	for _, c := range []struct {
		src, dst string
		status   Status
		say      []string
	}{
		{"7.0.14", "7.0.2", Passed, []string{"both run MongoDB 7.0"}},
		{"4.4.29", "5.0.30", Passed, []string{"an upgrade from MongoDB 4.4 to 5.0"}},
		{"5.0.30", "7.0.14", Passed, []string{"an upgrade from MongoDB 5.0 to 7.0"}},
		{"6.0.19", "8.0.4", Passed, []string{"an upgrade from MongoDB 6.0 to 8.0"}},
		{"4.2.24", "7.0.14", Failed, []string{"source on 4.4 or newer", "4.2", "7.0"}},
		{"3.6.23", "4.0.28", Failed, []string{"source on 4.4 or newer"}},
		{"7.0.14", "6.0.19", Failed, []string{"downgrade", "source runs MongoDB 7.0 but the destination runs 6.0"}},
		{"3.4.24", "7.0.14", Failed, []string{"older than 3.6", "3.4.24"}},
	} {
		fs := Check(pair(c.src, c.dst))
		f := expect(t, fs, IDVersion, c.status, c.say...)
		if c.status == Failed && !strings.Contains(f.Fix, "MongoDB") && !strings.Contains(f.Fix, "Upgrade") {
			t.Errorf("%s to %s: fix %q names no version to use", c.src, c.dst, f.Fix)
		}
	}
	// An upgrade needs the destination's FCV at least the source's; the same major
	// version keeps needing the same FCV.
	expect(t, Check(pair("5.0.30", "7.0.14")), IDFCV, Passed, "5.0", "7.0")
	in := pair("5.0.30", "7.0.14")
	setVersion(in.Destination, "7.0.14", "4.4")
	expect(t, Check(in), IDFCV, Failed, "source's FCV is 5.0", "destination's is 4.4")
	in = pair("7.0.14", "7.0.14")
	setVersion(in.Source, "7.0.14", "6.0")
	expect(t, Check(in), IDFCV, Failed, "source's FCV is 6.0", "destination's is 7.0")
}

// withIndexes gives the source's shop.orders these index specifications.
func withIndexes(t *testing.T, in Input, specs ...bson.D) {
	t.Helper()
	for i := range in.Source.Namespaces {
		if in.Source.Namespaces[i].Name() == "shop.orders" {
			for _, s := range specs {
				raw, err := bson.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				in.Source.Namespaces[i].Indexes = append(in.Source.Namespaces[i].Indexes, raw)
			}
		}
	}
}

// withOptions gives the source's shop.carts these listCollections options.
func withOptions(t *testing.T, in Input, opts bson.D) {
	t.Helper()
	raw, err := bson.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in.Source.Namespaces {
		if in.Source.Namespaces[i].Name() == "shop.carts" {
			in.Source.Namespaces[i].Options = raw
		}
	}
}

func TestWhatCannotCrossToTheDestinationsVersionIsNamedWithItsFix(t *testing.T) {
	haystack := bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "pos", Value: "geoHaystack"}, {Key: "type", Value: int32(1)}}},
		{Key: "name", Value: "pos_geoHaystack_type_1"}, {Key: "bucketSize", Value: int32(1)}}
	nanTTL := bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "at", Value: int32(1)}}}, {Key: "name", Value: "at_1"},
		{Key: "expireAfterSeconds", Value: math.NaN()}}
	for _, c := range []struct {
		name     string
		src, dst string
		index    bson.D
		options  bson.D
		status   Status
		say, fix string
	}{
		{"geoHaystack into 5.0", "4.4.29", "5.0.30", haystack, nil, Failed, "shop.orders index pos_geoHaystack_type_1: a geoHaystack index", "2d index"},
		{"geoHaystack into 7.0", "4.4.29", "7.0.14", haystack, nil, Failed, "MongoDB 7.0 refuses", "$geoNear"},
		{"geoHaystack on 4.4", "4.4.29", "4.4.29", haystack, nil, Passed, "nothing of the source's", ""},
		{"NaN TTL into 5.0", "4.4.29", "5.0.30", nanTTL, nil, Failed, "index at_1: a TTL index with expireAfterSeconds NaN", "collMod"},
		{"NaN TTL between 5.0s", "5.0.30", "5.0.30", nanTTL, nil, Passed, "nothing of the source's", ""},
		{"recordPreImages into 7.0", "6.0.19", "7.0.14", nil, bson.D{{Key: "recordPreImages", Value: true}}, Failed, "shop.carts: the recordPreImages option", "changeStreamPreAndPostImages"},
		{"recordPreImages on 6.0", "6.0.19", "6.0.19", nil, bson.D{{Key: "recordPreImages", Value: true}}, Passed, "nothing of the source's", ""},
		{"no _id index", "4.4.29", "4.4.29", nil, bson.D{{Key: "autoIndexId", Value: false}}, Failed, "shop.carts: no _id index", "new collection"},
		{"6.x Queryable Encryption into 7.0", "6.0.19", "7.0.14", nil, bson.D{{Key: "encryptedFields", Value: bson.D{{Key: "fields", Value: bson.A{}}}}}, Failed, "Queryable Encryption", "7.0 drivers"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := pair(c.src, c.dst)
			if c.index != nil {
				withIndexes(t, in, c.index)
			}
			if c.options != nil {
				withOptions(t, in, c.options)
			}
			f := expect(t, Check(in), IDVersionCrossing, c.status, c.say)
			if !strings.Contains(f.Fix, c.fix) {
				t.Errorf("fix %q does not say %q", f.Fix, c.fix)
			}
		})
	}
}

func TestCrossingNamesTheLeftoversTheCopyLeavesOutAndWhatItCouldNotList(t *testing.T) {
	in := pair("4.4.29", "7.0.14")
	withIndexes(t, in,
		bson.D{{Key: "v", Value: int32(1)}, {Key: "key", Value: bson.D{{Key: "a", Value: int32(1)}}}, {Key: "name", Value: "a_1"}, {Key: "ns", Value: "shop.orders"}, {Key: "background", Value: true}},
		bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "b", Value: int32(1)}}}, {Key: "name", Value: "b_1"}, {Key: "ns", Value: "shop.orders"}})
	expect(t, Check(in), IDVersionCrossing, Passed, "2 indexes", "background on 1", "ns on 2", "v: 1 on 1")

	in.Source.Problems = append(in.Source.Problems, topology.Problem{Part: topology.PartIndexes + " of shop.carts", Err: &topology.Error{Kind: topology.ErrUnauthorized}})
	expect(t, Check(in), IDVersionCrossing, Warning, "shop.carts")

	in = pair("7.0.14", "6.0.19")
	expect(t, Check(in), IDVersionCrossing, NotRun)
}

func TestCollectionsWithADefaultCollationAreAWarningWithTheSortLimit(t *testing.T) {
	in := goodInput()
	expect(t, Check(in), IDCollations, Passed)
	withOptions(t, in, bson.D{{Key: "collation", Value: bson.D{{Key: "locale", Value: "fr"}}}})
	in.Source.Collections[0].DefaultCollation, _ = bson.Marshal(bson.D{{Key: "locale", Value: "de"}})
	expect(t, Check(in), IDCollations, Warning, "shop.carts", "shop.orders", "on disk")
	setVersion(in.Source, "4.2.24", "4.2")
	f := expect(t, Check(in), IDCollations, Warning, "32 MiB")
	if !strings.Contains(f.Fix, "internalQueryExecMaxBlockingSortBytes") {
		t.Errorf("fix %q", f.Fix)
	}
}

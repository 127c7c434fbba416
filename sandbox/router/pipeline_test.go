package router

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func docs(t *testing.T, ds ...bson.D) []bson.Raw {
	t.Helper()
	out := make([]bson.Raw, len(ds))
	for i, d := range ds {
		out[i] = rawDoc(d)
	}
	return out
}

func runPipeline(t *testing.T, in []bson.Raw, pipeline bson.A) []bson.M {
	t.Helper()
	raw := rawDoc(bson.D{{Key: "p", Value: pipeline}}).Lookup("p").Array()
	filter, stages, err := parsePipeline(raw)
	if err != nil {
		t.Fatal(err)
	}
	it, err := memoryFind(in, findQuery{filter: filter})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stages {
		if it, err = st(it); err != nil {
			t.Fatal(err)
		}
	}
	out, err := drain(context.Background(), it)
	if err != nil {
		t.Fatal(err)
	}
	res := make([]bson.M, len(out))
	for i, d := range out {
		if err := bson.Unmarshal(d, &res[i]); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func TestPipelineGroupSortLimitAsMongoDB(t *testing.T) {
	in := docs(t,
		bson.D{{Key: "_id", Value: 1}, {Key: "g", Value: "a"}, {Key: "n", Value: int32(2)}},
		bson.D{{Key: "_id", Value: 2}, {Key: "g", Value: "b"}, {Key: "n", Value: 2.5}},
		bson.D{{Key: "_id", Value: 3}, {Key: "g", Value: "a"}, {Key: "n", Value: int32(3)}},
		bson.D{{Key: "_id", Value: 4}, {Key: "g", Value: "c"}},
	)
	got := runPipeline(t, in, bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: 1}}}}}},
		bson.D{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: "$g"},
			{Key: "total", Value: bson.D{{Key: "$sum", Value: "$n"}}},
			{Key: "count", Value: bson.D{{Key: "$sum", Value: 1}}},
			{Key: "max", Value: bson.D{{Key: "$max", Value: "$n"}}},
		}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "_id", Value: -1}}}},
		bson.D{{Key: "$limit", Value: 2}},
	})
	if len(got) != 2 {
		t.Fatalf("got %v, want 2 groups", got)
	}
	if got[0]["_id"] != "c" || got[0]["total"] != int32(0) || got[0]["count"] != int32(1) || got[0]["max"] != nil {
		t.Errorf("group c = %v", got[0])
	}
	if got[1]["_id"] != "b" || got[1]["total"] != 2.5 || got[1]["max"] != 2.5 {
		t.Errorf("group b = %v", got[1])
	}
}

func TestCountDocumentsPipelineShape(t *testing.T) {
	in := docs(t, bson.D{{Key: "a", Value: 1}}, bson.D{{Key: "a", Value: 2}}, bson.D{{Key: "a", Value: 2}})
	// The pipeline the Go driver's CountDocuments sends.
	got := runPipeline(t, in, bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: "a", Value: 2}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: 1}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if len(got) != 1 || got[0]["n"] != int32(2) {
		t.Fatalf("count pipeline gave %v, want n: 2", got)
	}
	if got := runPipeline(t, in, bson.A{bson.D{{Key: "$match", Value: bson.D{{Key: "a", Value: 9}}}}, bson.D{{Key: "$count", Value: "n"}}}); len(got) != 0 {
		t.Fatalf("$count of nothing gave %v, want no document", got)
	}
}

func TestProjectionInclusionExclusionAndNestedPaths(t *testing.T) {
	doc := rawDoc(bson.D{{Key: "_id", Value: 1}, {Key: "a", Value: bson.D{{Key: "b", Value: 1}, {Key: "c", Value: 2}}},
		{Key: "arr", Value: bson.A{bson.D{{Key: "x", Value: 1}, {Key: "y", Value: 2}}, 5}}, {Key: "z", Value: 3}})
	cases := []struct {
		spec bson.D
		want string
	}{
		{bson.D{{Key: "a.b", Value: 1}}, `{"_id": {"$numberInt":"1"},"a": {"b": {"$numberInt":"1"}}}`},
		{bson.D{{Key: "a.b", Value: 0}, {Key: "_id", Value: 0}, {Key: "arr", Value: 0}}, `{"a": {"c": {"$numberInt":"2"}},"z": {"$numberInt":"3"}}`},
		{bson.D{{Key: "arr.x", Value: 1}, {Key: "_id", Value: false}}, `{"arr": [{"x": {"$numberInt":"1"}}]}`},
		{bson.D{{Key: "_id", Value: 0}}, `{"a": {"b": {"$numberInt":"1"},"c": {"$numberInt":"2"}},"arr": [{"x": {"$numberInt":"1"},"y": {"$numberInt":"2"}},{"$numberInt":"5"}],"z": {"$numberInt":"3"}}`},
	}
	for _, c := range cases {
		p, err := parseProjection(rawDoc(c.spec), false)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.apply(doc).String(); got != c.want {
			t.Errorf("projection %v:\n got %s\nwant %s", c.spec, got, c.want)
		}
	}
	if _, err := parseProjection(rawDoc(bson.D{{Key: "a", Value: 1}, {Key: "z", Value: 0}}), false); err == nil {
		t.Error("a projection mixing inclusion and exclusion was accepted")
	}
}

// sh.status() summarises migrations with a computed _id and $ifNull, and chunks per
// shard with a projection renaming the group key.
func TestProjectComputedIDAndIfNull(t *testing.T) {
	in := docs(t,
		bson.D{{Key: "_id", Value: 1}, {Key: "what", Value: "moveChunk.from"}, {Key: "details", Value: bson.D{{Key: "note", Value: "success"}}}},
		bson.D{{Key: "_id", Value: 2}, {Key: "what", Value: "moveChunk.from"}, {Key: "details", Value: bson.D{{Key: "errmsg", Value: "boom"}, {Key: "from", Value: "s0"}}}},
		bson.D{{Key: "_id", Value: 3}, {Key: "what", Value: "moveChunk.from"}, {Key: "details", Value: bson.D{{Key: "note", Value: "success"}}}},
	)
	got := runPipeline(t, in, bson.A{
		bson.D{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{{Key: "msg", Value: "$details.errmsg"}, {Key: "from", Value: "$details.from"}}},
			{Key: "count", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
		bson.D{{Key: "$project", Value: bson.D{
			{Key: "_id", Value: bson.D{{Key: "$ifNull", Value: bson.A{"$_id.msg", "Success"}}}},
			{Key: "from", Value: "$_id.from"},
			{Key: "count", Value: "$count"},
		}}},
	})
	want := []bson.M{{"_id": "Success", "count": int32(2)}, {"_id": "boom", "from": "s0", "count": int32(1)}}
	if len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	doc := rawDoc(bson.D{{Key: "_id", Value: "s0"}, {Key: "cnt", Value: 4}})
	p, err := parseProjection(rawDoc(bson.D{{Key: "_id", Value: 0}, {Key: "shard", Value: "$_id"}, {Key: "nChunks", Value: "$cnt"}}), true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.apply(doc).String(), `{"shard": "s0","nChunks": {"$numberInt":"4"}}`; got != want {
		t.Errorf("renaming projection gave %s, want %s", got, want)
	}
	p, err = parseProjection(rawDoc(bson.D{{Key: "n", Value: 1}, {Key: "_id", Value: bson.D{{Key: "$ifNull", Value: bson.A{"$gone", nil, "$n"}}}}}), true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.apply(rawDoc(bson.D{{Key: "_id", Value: 9}, {Key: "n", Value: 4}})).String(), `{"_id": {"$numberInt":"4"},"n": {"$numberInt":"4"}}`; got != want {
		t.Errorf("a computed _id gave %s, want %s first and alone", got, want)
	}
	for _, bad := range []bson.D{
		{{Key: "x", Value: bson.D{{Key: "$ifNull", Value: bson.A{"$a"}}}}},
		{{Key: "x", Value: bson.D{{Key: "$toUpper", Value: "$a"}}}},
		{{Key: "a", Value: 0}, {Key: "_id", Value: "$a"}},
	} {
		if _, err := parseProjection(rawDoc(bad), true); err == nil {
			t.Errorf("$project %v was accepted", bad)
		}
	}
}

func TestSortMergeOrderMissingAndArrays(t *testing.T) {
	spec, err := parseSort(rawDoc(bson.D{{Key: "v", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	missing := rawDoc(bson.D{{Key: "_id", Value: 1}})
	str := rawDoc(bson.D{{Key: "v", Value: "a"}})
	num := rawDoc(bson.D{{Key: "v", Value: 5}})
	arr := rawDoc(bson.D{{Key: "v", Value: bson.A{9, 1}}})
	if spec.compare(missing, num) >= 0 || spec.compare(num, str) >= 0 {
		t.Error("want missing < number < string")
	}
	if spec.compare(arr, num) >= 0 {
		t.Error("an array sorts ascending by its smallest element: [9, 1] before 5")
	}
}

func TestTouchesPathsNamesTheFieldsAnUpdateChanges(t *testing.T) {
	u := rawDoc(bson.D{
		{Key: "$set", Value: bson.D{{Key: "k", Value: int32(5)}, {Key: "b.c", Value: true}}},
		{Key: "$rename", Value: bson.D{{Key: "old", Value: "new"}}},
	})
	if !touchesPaths(rawValue(u), []string{"k"}) || touchesPaths(rawValue(rawDoc(bson.D{{Key: "$set", Value: bson.D{{Key: "kk", Value: 1}}}})), []string{"k"}) {
		t.Error("touchesPaths misreads which fields an update changes")
	}
}

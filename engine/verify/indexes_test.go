package verify

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func spec(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	raw, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// What the finalize's index comparison reports: an index whose unique flag or TTL
// the destination lacks (a relaxed index never restored), one missing, an extra
// one that is unique or TTL, a key in another order; and what it must not: the
// versions and leftovers each release writes its own way, numbers of another type,
// flags given as false, an extra index that only serves queries (x_1: the shard key
// index a destination builds when the source serves its key with a longer one).
func TestCompareIndexes(t *testing.T) {
	id := bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "name", Value: "_id_"}}
	src := []bson.Raw{
		spec(t, id),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}, {Key: "unique", Value: true}}),
		spec(t, bson.D{{Key: "v", Value: 1}, {Key: "key", Value: bson.D{{Key: "at", Value: 1}}}, {Key: "name", Value: "at_1"}, {Key: "expireAfterSeconds", Value: int32(3600)}, {Key: "ns", Value: "a.b"}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: -1}}}, {Key: "name", Value: "ab"}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "t", Value: "text"}}}, {Key: "name", Value: "t_text"}, {Key: "textIndexVersion", Value: 2},
			{Key: "collation", Value: bson.D{{Key: "locale", Value: "fr"}, {Key: "version", Value: "57.1"}}}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "gone", Value: 1}}}, {Key: "name", Value: "gone_1"}}),
	}
	same := []bson.Raw{
		spec(t, id),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "v", Value: 1.0}}}, {Key: "name", Value: "v_1"}, {Key: "unique", Value: true}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "at", Value: int64(1)}}}, {Key: "name", Value: "at_1"}, {Key: "expireAfterSeconds", Value: int64(3600)}, {Key: "sparse", Value: false}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: -1}}}, {Key: "name", Value: "ab"}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "t", Value: "text"}}}, {Key: "name", Value: "t_text"}, {Key: "textIndexVersion", Value: 3},
			{Key: "collation", Value: bson.D{{Key: "locale", Value: "fr"}, {Key: "version", Value: "72.1"}}}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "gone", Value: 1}}}, {Key: "name", Value: "gone_1"}}),
	}
	if d := CompareIndexes("a.b", src, same); len(d) != 0 {
		t.Fatalf("the same indexes written by two releases: %v", d)
	}
	differ := []bson.Raw{
		spec(t, id),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "at", Value: 1}}}, {Key: "name", Value: "at_1"}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "b", Value: -1}, {Key: "a", Value: 1}}}, {Key: "name", Value: "ab"}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "t", Value: "text"}}}, {Key: "name", Value: "t_text"},
			{Key: "collation", Value: bson.D{{Key: "locale", Value: "de"}}}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "name", Value: "x_1"}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "y", Value: 1}}}, {Key: "name", Value: "y_1"}, {Key: "unique", Value: true}}),
		spec(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "z", Value: 1}}}, {Key: "name", Value: "z_1"}, {Key: "expireAfterSeconds", Value: int32(60)}}),
	}
	var got []string
	for _, d := range CompareIndexes("a.b", src, differ) {
		got = append(got, d.String())
	}
	want := []string{
		`a.b index ab: key {"a":1,"b":-1} on the source, {"b":-1,"a":1} on the destination`,
		`a.b index at_1: expireAfterSeconds 3600 on the source, none on the destination`,
		`a.b index gone_1: missing on the destination`,
		`a.b index t_text: collation {"locale":"fr"} on the source, {"locale":"de"} on the destination`,
		`a.b index v_1: unique on the source, not on the destination`,
		`a.b index y_1: only on the destination, unique: it refuses writes the source takes`,
		`a.b index z_1: only on the destination, TTL: it deletes documents the source keeps`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Only the indexes held as the sync relaxes them are restorable from the
	// source's specification: v_1 (unique) and at_1 (TTL).
	var relaxed []string
	for _, d := range CompareIndexes("a.b", src, differ) {
		if d.Relaxed {
			relaxed = append(relaxed, d.Index)
			if name, _ := d.Source.Lookup("name").StringValueOK(); name != d.Index {
				t.Errorf("%s: source spec %s", d.Index, d.Source)
			}
		}
	}
	if strings.Join(relaxed, ",") != "at_1,v_1" {
		t.Errorf("relaxed: %v, want at_1 and v_1", relaxed)
	}
}

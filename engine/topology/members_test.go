package topology

import (
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// replSetGetStatus's members, as 3.6 to 8.0 report them: an optime {ts, t} (a bare
// Timestamp under 3.6's protocol version 0), health 1 or 0, and arbiters without
// data, which are left out.
func TestMemberOpTimesReadReplSetGetStatus(t *testing.T) {
	st, err := bson.Marshal(bson.D{{Key: "set", Value: "rs0"}, {Key: "members", Value: bson.A{
		bson.D{{Key: "_id", Value: 0}, {Key: "name", Value: "a:1"}, {Key: "health", Value: 1.0}, {Key: "stateStr", Value: "PRIMARY"},
			{Key: "optime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{T: 20, I: 3}}, {Key: "t", Value: int64(4)}}}},
		bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: "b:1"}, {Key: "health", Value: 1.0}, {Key: "stateStr", Value: "SECONDARY"},
			{Key: "optime", Value: primitive.Timestamp{T: 14, I: 1}}},
		bson.D{{Key: "_id", Value: 2}, {Key: "name", Value: "c:1"}, {Key: "health", Value: 0.0}, {Key: "stateStr", Value: "(not reachable/healthy)"},
			{Key: "optime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{}}, {Key: "t", Value: int64(-1)}}}},
		bson.D{{Key: "_id", Value: 3}, {Key: "name", Value: "d:1"}, {Key: "health", Value: 1.0}, {Key: "stateStr", Value: "ARBITER"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := memberOpTimesOf(st)
	if err != nil {
		t.Fatal(err)
	}
	want := []MemberOpTime{
		{Name: "a:1", State: "PRIMARY", Reachable: true, TS: primitive.Timestamp{T: 20, I: 3}},
		{Name: "b:1", State: "SECONDARY", Reachable: true, TS: primitive.Timestamp{T: 14, I: 1}},
		{Name: "c:1", State: "(not reachable/healthy)"},
	}
	if len(got) != len(want) {
		t.Fatalf("members %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("member %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if b := got[1].Behind(got[0].TS); b.Seconds() != 6 {
		t.Errorf("b:1 is %v behind a:1, want 6s", b)
	}
}

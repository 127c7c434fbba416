package prepare

import (
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// A fromMigrate insert into a range the shard owned at T0 is no news; one into a
// range it did not own names that range, between the shard's neighbouring
// chunks; an unsharded collection's names the database's primary at T0; a
// collection or database created since T0 is the replay's DDL.
func TestUnownedNamesTheRangeAShardDidNotOwnAtT0(t *testing.T) {
	s0 := NewUnowned("s0", ownershipAfter(t, "s0", nil)) // app.users [MinKey, "m") on s0, ["m", MaxKey) on s1; app's primary s1
	s1 := NewUnowned("s1", ownershipAfter(t, "s1", nil))
	for _, tc := range []struct {
		u    *Unowned
		ns   string
		doc  bson.D
		want string
	}{
		{s0, "app.users", bson.D{{Key: "_id", Value: 1}, {Key: "region", Value: "c"}}, ""},
		{s0, "app.users", bson.D{{Key: "_id", Value: 2}, {Key: "region", Value: "x"}}, `app.users [{"region": "m"}, {"region": {"$maxKey":1}})`},
		{s1, "app.users", bson.D{{Key: "_id", Value: 3}, {Key: "region", Value: "c"}}, `app.users [{"region": {"$minKey":1}}, {"region": "m"})`},
		{s1, "app.users", bson.D{{Key: "_id", Value: 4}, {Key: "region", Value: "m"}}, ""},
		{s0, "app.logs", bson.D{{Key: "_id", Value: 5}}, "app.logs (unsharded; its database's primary shard at T0 was s1)"},
		{s1, "app.logs", bson.D{{Key: "_id", Value: 6}}, ""},
		{s0, "newdb.c", bson.D{{Key: "_id", Value: 7}}, ""},
	} {
		got, err := tc.u.Range(tc.ns, raw(t, tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s %v on shard %s: %q, want %q", tc.ns, tc.doc, tc.u.shard, got, tc.want)
		}
	}
}

package modify

import (
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func TestApplyUpdateOperators(t *testing.T) {
	pre := rawDoc(bson.D{{Key: "_id", Value: 7}, {Key: "k", Value: int32(1)}, {Key: "n", Value: bson.D{{Key: "c", Value: int32(2147483647)}}}, {Key: "old", Value: "x"}})
	u := rawDoc(bson.D{
		{Key: "$set", Value: bson.D{{Key: "k", Value: int32(5)}, {Key: "b.c", Value: true}}},
		{Key: "$inc", Value: bson.D{{Key: "n.c", Value: int32(1)}}},
		{Key: "$rename", Value: bson.D{{Key: "old", Value: "new"}}},
	})
	post, err := Apply(pre, u)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_id": {"$numberInt":"7"},"k": {"$numberInt":"5"},"n": {"c": {"$numberLong":"2147483648"}},"b": {"c": true},"new": "x"}`
	if post.String() != want {
		t.Errorf("post-image\n got %s\nwant %s", post, want)
	}
	repl, err := Apply(pre, rawDoc(bson.D{{Key: "k", Value: 9}}))
	if err != nil || repl.Lookup("_id").Int32() != 7 {
		t.Errorf("replacement keeps _id first: %s, %v", repl, err)
	}
	if _, err := Apply(pre, rawDoc(bson.D{{Key: "$push", Value: bson.D{{Key: "a", Value: 1}}}})); err == nil {
		t.Error("an array operator was accepted")
	}
}

// New fields are appended in MongoDB's order of the paths: part by part, and names
// that start with a digit (no leading zero) shorter first. Comparing whole path strings
// put "a-b" before "a" ('-' < '.') and "10" before "9".
func TestApplyAppendsNewFieldsInMongoDBsPathOrder(t *testing.T) {
	pre := rawDoc(bson.D{{Key: "_id", Value: 1}})
	u := rawDoc(bson.D{{Key: "$set", Value: bson.D{
		{Key: "a-b", Value: 1}, {Key: "a.x", Value: 2}, {Key: "d.10", Value: 3}, {Key: "d.9", Value: 4}, {Key: "d.09x", Value: 5}, {Key: "d.9y", Value: 6},
	}}})
	post, err := Apply(pre, u)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_id": {"$numberInt":"1"},"a": {"x": {"$numberInt":"2"}},"a-b": {"$numberInt":"1"},"d": {"09x": {"$numberInt":"5"},"9": {"$numberInt":"4"},"10": {"$numberInt":"3"},"9y": {"$numberInt":"6"}}}`
	if post.String() != want {
		t.Errorf("post-image\n got %s\nwant %s", post, want)
	}
}

package shard

import (
	"bytes"
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// 3.6 to 4.4 log a modifier update as $set / $unset by dotted path, in field order, with
// $v: 1 first (3.6 at FCV 3.4 without $v), and the logged operators rebuild the new
// document exactly when applied to the old one.
func TestModifierUpdatesLogTheV1Form(t *testing.T) {
	updates := []struct {
		name   string
		update bson.D
		o      string // without $v
	}{
		{"nested change", bson.D{{Key: "$set", Value: bson.D{{Key: "prof.city", Value: "Lyon"}}}},
			`{"$set": {"prof.city": "Lyon"}}`},
		{"array append", bson.D{{Key: "$push", Value: bson.D{{Key: "tags", Value: "d"}}}},
			`{"$set": {"tags.3": "d"}}`},
		{"array shrink", bson.D{{Key: "$pop", Value: bson.D{{Key: "tags", Value: 1}}}},
			`{"$set": {"tags": ["a", "b", "c"]}}`},
		{"unset and new fields, in name order", bson.D{{Key: "$set", Value: bson.D{{Key: "zeta", Value: 1}, {Key: "age", Value: 30}}}, {Key: "$unset", Value: bson.D{{Key: "name", Value: ""}}}},
			`{"$set": {"age": 30, "zeta": 1}, "$unset": {"name": true}}`},
		{"increment", bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 2}}}},
			`{"$set": {"n": 3}}`},
	}
	for _, v := range []struct {
		version, fcv string
		withV        bool
	}{
		{"3.6.23", "3.6", true},
		{"3.6.23", "3.4", false},
		{"4.0.28", "4.0", true},
		{"4.4.29", "4.4", true},
		{"5.0.31", "4.4", true},
	} {
		t.Run(v.version+"/fcv"+v.fcv, func(t *testing.T) {
			f := startFront(t, Config{Identity: wire.Identity{Version: v.version, FCV: v.fcv}})
			c := connect(t, f, options.Client().SetRetryWrites(false))
			ctx := context.Background()
			coll := c.Database("app").Collection("people")
			replay := c.Database("app").Collection("replay")
			doc := ext(t, `{"_id": 1, "name": "Ann", "n": 1, "prof": {"city": "Paris", "zip": "75001"}, "tags": ["a", "b", "c"]}`)
			if _, err := coll.InsertOne(ctx, doc); err != nil {
				t.Fatal(err)
			}
			for _, u := range updates {
				pre, _ := coll.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Raw()
				before := lastTS(t, c)
				if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, u.update); err != nil {
					t.Fatalf("%s: %v", u.name, err)
				}
				post, _ := coll.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Raw()
				entries := entriesAfter(t, c, before)
				if len(entries) != 1 {
					t.Fatalf("%s: got %d entries, want 1", u.name, len(entries))
				}
				o := entries[0].Lookup("o").Document()
				want := ext(t, u.o)
				if v.withV {
					want = ext(t, `{"$v": 1, `+u.o[1:])
				}
				if !bytes.Equal(o, want) {
					t.Errorf("%s: o = %s, want %s", u.name, o, want)
				}
				// The logged operators, applied to the old document, give the new one.
				if _, err := replay.DeleteMany(ctx, bson.D{}); err != nil {
					t.Fatal(err)
				}
				if _, err := replay.InsertOne(ctx, pre); err != nil {
					t.Fatal(err)
				}
				if _, err := replay.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, without(o, "$v")); err != nil {
					t.Fatalf("%s: apply %s: %v", u.name, o, err)
				}
				got, _ := replay.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Raw()
				if !bytes.Equal(got, post) {
					t.Errorf("%s: the entry applied to %s gives %s, want %s", u.name, pre, got, post)
				}
			}
		})
	}
}

// A change no $set can express (a field moved by a replacement-like rewrite) is logged as
// the whole new document rather than as operators that would rebuild something else.
func TestModifierFormFallsBackToTheWholeDocument(t *testing.T) {
	pre := ext(t, `{"_id": 1, "a": 1, "b": 2}`)
	for _, c := range []struct{ name, post string }{
		{"moved field", `{"_id": 1, "b": 2, "a": 1}`},
		{"new fields out of name order", `{"_id": 1, "a": 1, "b": 2, "z": 1, "c": 1}`},
	} {
		post := ext(t, c.post)
		if got := modifierEntryObject(pre, post, true); !bytes.Equal(got, post) {
			t.Errorf("%s: got %s, want the whole document %s", c.name, got, post)
		}
	}
	post := ext(t, `{"_id": 1, "a": 1, "b": 2, "c": 1, "z": 1}`)
	if got, want := modifierEntryObject(pre, post, true), ext(t, `{"$v": 1, "$set": {"c": 1, "z": 1}}`); !bytes.Equal(got, want) {
		t.Errorf("new fields in name order: got %s, want %s", got, want)
	}
}

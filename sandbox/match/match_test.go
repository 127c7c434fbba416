package match

import (
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func ext(t *testing.T, s string) bson.Raw {
	t.Helper()
	var r bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(s), false, &r); err != nil {
		t.Fatalf("bad extended JSON %s: %v", s, err)
	}
	return r
}

func TestMatchFollowsMongoDBSemantics(t *testing.T) {
	cases := []struct {
		filter, doc string
		want        bool
	}{
		// Equality, numbers across types, dotted paths.
		{`{"a": 1}`, `{"a": 1}`, true},
		{`{"a": 1}`, `{"a": {"$numberLong": "1"}}`, true},
		{`{"a": 1}`, `{"a": 1.0}`, true},
		{`{"a": 1}`, `{"a": "1"}`, false},
		{`{"a": {"$eq": 2}}`, `{"a": 1}`, false},
		{`{"a.b": 3}`, `{"a": {"b": 3}}`, true},
		{`{"a.b": 3}`, `{"a": {"c": 3}}`, false},
		{`{"a": {"b": 3}}`, `{"a": {"b": 3}}`, true},
		{`{"a": {"b": 3}}`, `{"a": {"b": 3, "c": 1}}`, false},
		// Arrays: membership, whole-array equality, documents inside arrays, indexes.
		{`{"tags": "x"}`, `{"tags": ["w", "x"]}`, true},
		{`{"tags": "z"}`, `{"tags": ["w", "x"]}`, false},
		{`{"tags": ["w", "x"]}`, `{"tags": ["w", "x"]}`, true},
		{`{"tags": ["x", "w"]}`, `{"tags": ["w", "x"]}`, false},
		{`{"a.b": 2}`, `{"a": [{"b": 1}, {"b": 2}]}`, true},
		{`{"a.1": "y"}`, `{"a": ["x", "y"]}`, true},
		{`{"a.0": "y"}`, `{"a": ["x", "y"]}`, false},
		// Null matches missing and null.
		{`{"a": null}`, `{"b": 1}`, true},
		{`{"a": null}`, `{"a": null}`, true},
		{`{"a": null}`, `{"a": 0}`, false},
		{`{"a.b": null}`, `{"a": [{"b": 1}, {"c": 1}]}`, true},
		// $ne, $in, $nin.
		{`{"a": {"$ne": 1}}`, `{"a": 2}`, true},
		{`{"a": {"$ne": 1}}`, `{"a": [1, 2]}`, false},
		{`{"a": {"$ne": 1}}`, `{}`, true},
		{`{"a": {"$in": [5, "x"]}}`, `{"a": "x"}`, true},
		{`{"a": {"$in": [5, null]}}`, `{}`, true},
		{`{"a": {"$nin": [5, 6]}}`, `{"a": 7}`, true},
		{`{"a": {"$nin": [5, 6]}}`, `{"a": [1, 6]}`, false},
		// Comparisons bracket by type: a number never matches a string operand.
		{`{"a": {"$gt": 5}}`, `{"a": 6}`, true},
		{`{"a": {"$gt": 5}}`, `{"a": "6"}`, false},
		{`{"a": {"$gt": 5}}`, `{"a": 5.5}`, true},
		{`{"a": {"$gte": 5, "$lt": 6}}`, `{"a": 5}`, true},
		{`{"a": {"$gte": 5, "$lt": 6}}`, `{"a": 6}`, false},
		{`{"a": {"$lt": "b"}}`, `{"a": "a"}`, true},
		{`{"a": {"$lt": "b"}}`, `{"a": 1}`, false},
		{`{"a": {"$gt": 5}}`, `{"a": [1, 9]}`, true},
		{`{"a": {"$gt": 5}}`, `{}`, false},
		{`{"a": {"$gt": {"$numberLong": "9007199254740992"}}}`, `{"a": 9007199254740993.0}`, false},
		{`{"a": {"$lt": {"$numberLong": "9007199254740993"}}}`, `{"a": 9007199254740992.0}`, true},
		{`{"d": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}}`, `{"d": {"$date": "2024-06-01T00:00:00Z"}}`, true},
		{`{"ts": {"$gt": {"$timestamp": {"t": 10, "i": 2}}}}`, `{"ts": {"$timestamp": {"t": 10, "i": 3}}}`, true},
		{`{"ts": {"$gt": {"$timestamp": {"t": 10, "i": 2}}}}`, `{"ts": {"$timestamp": {"t": 9, "i": 99}}}`, false},
		{`{"o": {"$gt": {"$oid": "000000000000000000000001"}}}`, `{"o": {"$oid": "000000000000000000000002"}}`, true},
		// $exists, $not.
		{`{"a": {"$exists": true}}`, `{"a": null}`, true},
		{`{"a": {"$exists": false}}`, `{"b": 1}`, true},
		{`{"a.b": {"$exists": true}}`, `{"a": [{"c": 1}]}`, false},
		{`{"a": {"$not": {"$gt": 5}}}`, `{"a": 3}`, true},
		{`{"a": {"$not": {"$gt": 5}}}`, `{"a": "x"}`, true},
		// Regular expressions: on strings and array elements, with options, in $in and $not.
		{`{"_id": {"$regularExpression": {"pattern": "^app\\.", "options": ""}}}`, `{"_id": "app.items"}`, true},
		{`{"_id": {"$regularExpression": {"pattern": "^app\\.", "options": ""}}}`, `{"_id": "apps.items"}`, false},
		{`{"a": {"$regex": "^X", "$options": "i"}}`, `{"a": ["q", "xy"]}`, true},
		{`{"a": {"$regex": "^X"}}`, `{"a": "xy"}`, false},
		{`{"a": {"$regex": "^x"}}`, `{"a": 1}`, false},
		{`{"a": {"$in": [5, {"$regularExpression": {"pattern": "b$", "options": ""}}]}}`, `{"a": "ab"}`, true},
		{`{"a": {"$not": {"$regularExpression": {"pattern": "b", "options": ""}}}}`, `{"a": "xyz"}`, true},
		{`{"a": {"$regularExpression": {"pattern": "b", "options": ""}}}`, `{"a": {"$regularExpression": {"pattern": "b", "options": ""}}}`, true},
		// Logical operators.
		{`{"$or": [{"a": 1}, {"b": 2}]}`, `{"b": 2}`, true},
		{`{"$and": [{"a": 1}, {"b": 2}]}`, `{"a": 1, "b": 3}`, false},
		{`{"$nor": [{"a": 1}, {"b": 2}]}`, `{"a": 3}`, true},
		{`{"$nor": [{"a": 1}, {"b": 2}]}`, `{"b": 2}`, false},
		{`{}`, `{"x": 1}`, true},
	}
	for _, c := range cases {
		m, err := Compile(ext(t, c.filter))
		if err != nil {
			t.Errorf("Compile(%s): %v", c.filter, err)
			continue
		}
		if got := m.Match(ext(t, c.doc)); got != c.want {
			t.Errorf("filter %s on %s: got %v, want %v", c.filter, c.doc, got, c.want)
		}
	}
}

func TestUnsupportedOperatorsAreReportedByName(t *testing.T) {
	for _, f := range []string{
		`{"a": {"$regex": "(?=x)"}}`,
		`{"a": {"$regularExpression": {"pattern": "x", "options": "x"}}}`,
		`{"a": {"$elemMatch": {"b": 1}}}`,
		`{"$where": "true"}`,
		`{"a": {"$size": 2}}`,
	} {
		_, err := Compile(ext(t, f))
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("Compile(%s) = %v, want ErrUnsupported", f, err)
		}
	}
	_, err := Compile(ext(t, `{"a": {"$elemMatch": {"b": 1}}}`))
	if err == nil || !strings.Contains(err.Error(), "$elemMatch") {
		t.Errorf("error does not name the operator: %v", err)
	}
}

func TestIDEqualityOnlyWhenTheFilterPinsID(t *testing.T) {
	cases := []struct {
		filter string
		pinned bool
		id     string
	}{
		{`{"_id": 7}`, true, `{"v": 7}`},
		{`{"_id": {"$eq": "k"}, "sk": 3}`, true, `{"v": "k"}`},
		{`{"sk": 3, "_id": {"$oid": "65a000000000000000000001"}}`, true, `{"v": {"$oid": "65a000000000000000000001"}}`},
		{`{"$and": [{"sk": 3}, {"_id": 9}]}`, true, `{"v": 9}`},
		{`{"_id": {"$in": [4]}}`, true, `{"v": 4}`},
		{`{"_id": {"$in": [4, 5]}}`, false, ``},
		{`{"_id": {"$gt": 4}}`, false, ``},
		{`{"$or": [{"_id": 1}]}`, false, ``},
		{`{"a": 1}`, false, ``},
	}
	for _, c := range cases {
		m, err := Compile(ext(t, c.filter))
		if err != nil {
			t.Fatalf("Compile(%s): %v", c.filter, err)
		}
		v, ok := m.IDEquality()
		if ok != c.pinned {
			t.Errorf("%s: pinned = %v, want %v", c.filter, ok, c.pinned)
			continue
		}
		if ok && !v.Equal(ext(t, c.id).Lookup("v")) {
			t.Errorf("%s: _id = %v", c.filter, v)
		}
	}
}

func TestEqualitiesListPinnedFieldsInOrder(t *testing.T) {
	m, err := Compile(ext(t, `{"sk": 3, "a.b": {"$eq": "x"}, "c": {"$gt": 1}, "$or": [{"d": 1}, {"e": 2}], "_id": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range m.Equalities() {
		paths = append(paths, e.Path)
	}
	if got := strings.Join(paths, ","); got != "sk,a.b,_id" {
		t.Fatalf("equalities = %s", got)
	}
}

func TestCompareOrdersAcrossTypeClasses(t *testing.T) {
	// MongoDB's canonical order: null < numbers < strings < objects < arrays < binData <
	// ObjectId < bool < date < timestamp.
	doc := ext(t, `{"v": [null, 1, "a", {"x": 1}, [1], {"$binary": {"base64": "AA==", "subType": "00"}},
		{"$oid": "000000000000000000000000"}, false, {"$date": "2020-01-01T00:00:00Z"}, {"$timestamp": {"t": 1, "i": 1}}]}`)
	vals, _ := doc.Lookup("v").Array().Values()
	for i := 1; i < len(vals); i++ {
		if compareValues(vals[i-1], vals[i]) >= 0 {
			t.Errorf("%v should sort before %v", vals[i-1], vals[i])
		}
	}
}

func TestIDValuesListTheCandidates(t *testing.T) {
	cases := []struct {
		filter string
		n      int
	}{
		{`{"_id": {"$in": [1, 2, 3]}, "x": 1}`, 3},
		{`{"$and": [{"_id": {"$in": [1, 2, 3]}}, {"_id": {"$in": [2, 3]}}]}`, 2},
		{`{"_id": 5, "y": {"$in": [1, 2]}}`, 1},
		{`{"_id": {"$nin": [1]}}`, -1},
		{`{"$or": [{"_id": {"$in": [1]}}]}`, -1},
	}
	for _, c := range cases {
		m, err := Compile(ext(t, c.filter))
		if err != nil {
			t.Fatal(err)
		}
		ids, ok := m.IDValues()
		if (c.n < 0) == ok || (ok && len(ids) != c.n) {
			t.Errorf("%s: IDValues = %v, %v; want %d values", c.filter, ids, ok, c.n)
		}
	}
}

package shard

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	engineoplog "github.com/shardlift/shardlift/engine/oplog"
)

func TestDiffMatchesMongoDBFormat(t *testing.T) {
	cases := []struct{ pre, post, diff string }{
		{`{"a": 1, "b": 2}`, `{"a": 1, "b": 2}`, ``},
		{`{"a": 1, "b": 2}`, `{"a": 1, "b": 3}`, `{"u": {"b": 3}}`},
		{`{"a": 1, "b": 2}`, `{"a": 1}`, `{"d": {"b": false}}`},
		{`{"a": 1}`, `{"a": 1, "c": [1]}`, `{"i": {"c": [1]}}`},
		// A field that moved is re-inserted at the end, as MongoDB's applier expects.
		{`{"a": 1, "b": 2, "c": 3}`, `{"b": 2, "a": 1, "c": 3}`, `{"i": {"a": 1, "c": 3}}`},
		{`{"x": {"p": "aaaaaaaaaa", "q": "bbbbbbbbbb"}}`, `{"x": {"p": "aaaaaaaaaa", "q": "c"}}`, `{"sx": {"u": {"q": "c"}}}`},
		// A sub-diff no smaller than the new value is logged as the value.
		{`{"x": {"p": 1}}`, `{"x": {"p": 2}}`, `{"u": {"x": {"p": 2}}}`},
		{`{"l": ["aaaaaaaa", "bbbbbbbb", "cccccccc"]}`, `{"l": ["aaaaaaaa", "bbbbbbbb"]}`, `{"sl": {"a": true, "l": 2}}`},
		{`{"l": [{"k": "aaaaaaaa", "v": 1}, {"k": "bbbbbbbb", "v": 2}]}`, `{"l": [{"k": "aaaaaaaa", "v": 1}, {"k": "bbbbbbbb", "v": 3}]}`,
			`{"sl": {"a": true, "s1": {"u": {"v": 3}}}}`},
	}
	for _, c := range cases {
		pre, post := ext(t, c.pre), ext(t, c.post)
		d := diffDoc(pre, post)
		if c.diff == "" {
			if d != nil {
				t.Errorf("%s -> %s: want no diff, got %s", c.pre, c.post, bson.Raw(d))
			}
			continue
		}
		if !bytes.Equal(d, ext(t, c.diff)) {
			t.Errorf("%s -> %s:\n got  %s\n want %s", c.pre, c.post, bson.Raw(d), ext(t, c.diff))
		}
		got, err := engineoplog.ApplyDiff(pre, bson.Raw(d))
		if err != nil || !bytes.Equal(got, post) {
			t.Errorf("%s -> %s: applying %s gives %s (%v)", c.pre, c.post, bson.Raw(d), got, err)
		}
	}
}

// TestDiffAlwaysRebuildsThePostImage mutates random documents at random and checks that
// the diff applied to the pre-image gives the post-image byte for byte (field order
// included), the rule an applier of these entries depends on.
func TestDiffAlwaysRebuildsThePostImage(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		pre := randomDoc(rng, 3)
		post := mutateDoc(rng, pre, 3)
		preRaw, _ := bson.Marshal(pre)
		postRaw, _ := bson.Marshal(post)
		o := updateEntryObject(preRaw, postRaw)
		if _, isDiff := bson.Raw(o).Lookup("$v").AsInt64OK(); !isDiff {
			if !bytes.Equal(preRaw, postRaw) {
				t.Fatalf("case %d: fell back to a replacement for %s -> %s", i, bson.Raw(preRaw), bson.Raw(postRaw))
			}
			continue
		}
		got, err := engineoplog.ApplyDiff(preRaw, bson.Raw(o).Lookup("diff").Document())
		if err != nil || !bytes.Equal(got, postRaw) {
			t.Fatalf("case %d: %s -> %s: diff %s gives %s (%v)", i, bson.Raw(preRaw), bson.Raw(postRaw), bson.Raw(o), got, err)
		}
	}
}

func randomValue(rng *rand.Rand, depth int) any {
	switch k := rng.Intn(6); {
	case k == 0 && depth > 0:
		return randomDoc(rng, depth-1)
	case k == 1 && depth > 0:
		n := rng.Intn(4)
		a := bson.A{}
		for range n {
			if rng.Intn(2) == 0 {
				a = append(a, randomDoc(rng, depth-1))
			} else {
				a = append(a, rng.Intn(5))
			}
		}
		return a
	case k == 2:
		return fmt.Sprintf("s%d", rng.Intn(5))
	case k == 3:
		return rng.Intn(2) == 0
	default:
		return int32(rng.Intn(5))
	}
}

func randomDoc(rng *rand.Rand, depth int) bson.D {
	n := rng.Intn(5)
	d := bson.D{}
	for j := range n {
		d = append(d, bson.E{Key: fmt.Sprintf("f%d", j), Value: randomValue(rng, depth)})
	}
	return d
}

func mutateDoc(rng *rand.Rand, d bson.D, depth int) bson.D {
	out := append(bson.D{}, d...)
	for range rng.Intn(4) {
		switch rng.Intn(5) {
		case 0:
			out = append(out, bson.E{Key: fmt.Sprintf("n%d", rng.Intn(3)), Value: randomValue(rng, depth)})
		case 1:
			if len(out) > 0 {
				i := rng.Intn(len(out))
				out = append(out[:i], out[i+1:]...)
			}
		case 2:
			if len(out) > 1 {
				i, j := rng.Intn(len(out)), rng.Intn(len(out))
				out[i], out[j] = out[j], out[i]
			}
		case 3:
			if len(out) > 0 {
				i := rng.Intn(len(out))
				switch v := out[i].Value.(type) {
				case bson.D:
					out[i].Value = mutateDoc(rng, v, depth-1)
				case bson.A:
					a := append(bson.A{}, v...)
					if len(a) > 0 && rng.Intn(2) == 0 {
						a = a[:rng.Intn(len(a))]
					} else {
						a = append(a, randomValue(rng, 0))
					}
					out[i].Value = a
				default:
					out[i].Value = randomValue(rng, depth)
				}
			}
		default:
			if len(out) > 0 {
				out[rng.Intn(len(out))].Value = randomValue(rng, depth)
			}
		}
	}
	return dedupe(out)
}

// dedupe keeps the first of fields with the same name (a mutation may add one twice).
func dedupe(d bson.D) bson.D {
	seen := map[string]bool{}
	out := bson.D{}
	for _, e := range d {
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	return out
}

package load

import (
	"math/rand/v2"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/seed"
)

// fakeTargets is a key sample of n documents per seed collection, as sample would read it.
func fakeTargets(r *rand.Rand, n int) []*target {
	var targets []*target
	for _, c := range seed.Collections() {
		t := &target{spec: c}
		for range n {
			t.keys = append(t.keys, c.NewKey(r, nil))
		}
		targets = append(targets, t)
	}
	return targets
}

// updatedPaths are the field paths an update document changes.
func updatedPaths(update bson.D) []string {
	var paths []string
	for _, op := range update {
		for _, e := range op.Value.(bson.D) {
			paths = append(paths, e.Key)
		}
	}
	return paths
}

func TestTargetedWritesNameTheWholeDocumentKeyAndNeverChangeIt(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := dispatcher{rnd: r, targets: fakeTargets(r, 50)}
	specs := map[string]seed.Collection{}
	for _, c := range seed.Collections() {
		specs[c.Namespace()] = c
	}
	seen := map[Kind]int{}
	for range 3000 {
		j := d.next()
		seen[j.kind]++
		spec := specs[j.ns]
		fields := spec.KeyFields()
		if j.kind == Insert {
			for i, f := range fields {
				if j.doc[i].Key != f {
					t.Fatalf("insert into %s: document %v does not carry its key fields %v", j.ns, j.doc, fields)
				}
			}
			continue
		}
		if len(j.filter) != len(fields) {
			t.Fatalf("%s on %s: filter %v is not the document key %v", j.kind, j.ns, j.filter, fields)
		}
		for i, f := range fields {
			if j.filter[i].Key != f {
				t.Fatalf("%s on %s: filter %v is not the document key %v", j.kind, j.ns, j.filter, fields)
			}
		}
		switch j.kind {
		case Replace:
			for i, e := range j.filter {
				if j.doc[i].Key != e.Key || j.doc[i].Value != e.Value {
					t.Fatalf("replace on %s: replacement %v changes the document key %v", j.ns, j.doc, j.filter)
				}
			}
		case Delete:
		default:
			for _, p := range updatedPaths(j.update) {
				for _, f := range fields {
					if p == f || strings.HasPrefix(p, f+".") {
						t.Fatalf("%s on %s: update %v changes key field %s", j.kind, j.ns, j.update, f)
					}
				}
			}
		}
	}
	for _, k := range Kinds {
		if seen[k] == 0 {
			t.Errorf("3000 draws made no %s", k)
		}
	}
}

func TestDeletedKeysAreNotTargetedAgain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	d := dispatcher{rnd: r, targets: fakeTargets(r, 20)}
	deleted := map[string]bool{}
	for range 2000 {
		j := d.next()
		if j.kind == Insert {
			continue
		}
		k := j.ns + " " + bsonString(j.filter)
		if deleted[k] {
			t.Fatalf("%s aims at %v after it was deleted", j.kind, j.filter)
		}
		if j.kind == Delete {
			deleted[k] = true
		}
	}
	if len(deleted) == 0 {
		t.Fatal("no delete drawn")
	}
}

func bsonString(d bson.D) string {
	raw, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return bson.Raw(raw).String()
}

func TestRunRefusesANonPositiveRate(t *testing.T) {
	if err := Run(t.Context(), nil, 0, rand.New(rand.NewPCG(1, 1)), &Stats{}); err == nil {
		t.Fatal("Run at 0 writes/s did not fail")
	}
}

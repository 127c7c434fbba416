package seed

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// generate draws n seeded documents of every collection.
func generate(r *rand.Rand, n int) map[string][]bson.Raw {
	colls := Collections()
	counts := share(colls, n*len(colls))
	out := map[string][]bson.Raw{}
	for _, c := range colls {
		for i := range n {
			raw, err := bson.Marshal(c.Document(r, c.seedKey(r, i, counts)))
			if err != nil {
				panic(err)
			}
			out[c.Namespace()] = append(out[c.Namespace()], raw)
		}
	}
	return out
}

// checkAccepted reports what in v FerretDB would reject (DESIGN section 5).
func checkAccepted(path string, v bson.RawValue, inArray bool) error {
	switch v.Type {
	case bsontype.String, bsontype.Int32, bsontype.Int64, bsontype.Boolean, bsontype.DateTime,
		bsontype.ObjectID, bsontype.Binary, bsontype.Null:
		return nil
	case bsontype.Double:
		f := v.Double()
		if f != f || f > 1e300 || f < -1e300 {
			return fmt.Errorf("%s: double %v", path, f)
		}
		return nil
	case bsontype.EmbeddedDocument:
		return checkDocument(path, v.Document())
	case bsontype.Array:
		if inArray {
			return fmt.Errorf("%s: nested array", path)
		}
		values, err := v.Array().Values()
		if err != nil {
			return err
		}
		for i, e := range values {
			if err := checkAccepted(fmt.Sprintf("%s.%d", path, i), e, true); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s: BSON type %s", path, v.Type)
}

func checkDocument(path string, d bson.Raw) error {
	elems, err := d.Elements()
	if err != nil {
		return err
	}
	for _, e := range elems {
		k := e.Key()
		if strings.Contains(k, ".") || strings.HasPrefix(k, "$") || k == "" {
			return fmt.Errorf("%s: key %q", path, k)
		}
		if err := checkAccepted(path+"."+k, e.Value(), false); err != nil {
			return err
		}
	}
	return nil
}

func TestDocumentsHoldOnlyWhatFerretDBAccepts(t *testing.T) {
	for ns, docs := range generate(rand.New(rand.NewPCG(1, 2)), 300) {
		for _, d := range docs {
			if err := checkDocument(ns, d); err != nil {
				t.Fatalf("%s document %v: %v", ns, d.Lookup("_id"), err)
			}
		}
	}
}

func TestDocumentSizesRangeFrom200BytesTo4KiB(t *testing.T) {
	small, large := 0, 0
	for ns, docs := range generate(rand.New(rand.NewPCG(3, 4)), 500) {
		for _, d := range docs {
			if len(d) < 190 || len(d) > 4400 {
				t.Errorf("%s document %v is %d bytes", ns, d.Lookup("_id"), len(d))
			}
			if len(d) < 400 {
				small++
			}
			if len(d) > 3000 {
				large++
			}
		}
	}
	if small == 0 || large == 0 {
		t.Errorf("sizes do not vary: %d documents under 400 bytes, %d over 3000", small, large)
	}
}

func TestSeedIsDeterministicFromTheRandomSource(t *testing.T) {
	a := generate(rand.New(rand.NewPCG(5, 6)), 50)
	b := generate(rand.New(rand.NewPCG(5, 6)), 50)
	c := generate(rand.New(rand.NewPCG(7, 8)), 50)
	differ := false
	for ns := range a {
		for i := range a[ns] {
			if !bytes.Equal(a[ns][i], b[ns][i]) {
				t.Fatalf("%s document %d differs between two draws from the same seed", ns, i)
			}
			differ = differ || !bytes.Equal(a[ns][i], c[ns][i])
		}
	}
	if !differ {
		t.Error("another seed drew the very same documents")
	}
}

func TestDocumentsStartWithTheirDocumentKey(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, c := range Collections() {
		for _, key := range []bson.D{c.seedKey(r, 7, share(Collections(), 100)), c.NewKey(r, nil)} {
			doc := c.Document(r, key)
			fields := c.KeyFields()
			if len(key) != len(fields) {
				t.Fatalf("%s: key %v does not have the fields %v", c.Namespace(), key, fields)
			}
			for i, f := range fields {
				if doc[i].Key != f || key[i].Key != f {
					t.Fatalf("%s: document %v does not start with its key fields %v", c.Namespace(), doc, fields)
				}
			}
		}
	}
}

func TestShareAddsUpToTheDocumentCount(t *testing.T) {
	for _, docs := range []int{0, 1, 7, 2000, 20001} {
		total := 0
		for _, n := range share(Collections(), docs) {
			total += n
		}
		if total != docs {
			t.Errorf("share(%d) hands out %d documents", docs, total)
		}
	}
}

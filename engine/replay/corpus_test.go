package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// corpusDir finds the MongoDB corpus: <repo root>/../shared/corpus/mongo-tools, the
// repo root being the directory holding go.mod.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the working directory: cannot locate the corpus")
		}
		dir = parent
	}
	corpus := filepath.Join(filepath.Dir(dir), "shared", "corpus", "mongo-tools")
	if _, err := os.Stat(corpus); err != nil {
		t.Skipf("MongoDB corpus not found at %s", corpus)
	}
	return corpus
}

// The transaction cases MongoDB's tools replay (common/txn testdata): applyOps,
// partial chains, prepared commits and aborts, each ending in a known postimage.
func TestTransactionCorpusConvergesToThePostimage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpusDir(t), "txn_oplog_entries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]struct {
		Ops       []json.RawMessage `json:"ops"`
		NS        string            `json:"ns"`
		Postimage []json.RawMessage `json:"postimage"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for name, c := range cases {
		if c.Postimage == nil {
			continue // a case for the tools' buffer alone (its entry has no ns)
		}
		t.Run(name, func(t *testing.T) {
			src := newFakeOplog()
			src.finite = true
			for _, op := range c.Ops {
				var raw bson.Raw
				if err := bson.UnmarshalExtJSON(op, true, &raw); err != nil {
					t.Fatal(err)
				}
				src.append(raw)
			}
			dest := newFakeDest()
			s := testShard(t, Config{Source: src, Destination: dest})
			if err := s.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var want, got []string
			for _, p := range c.Postimage {
				var d bson.D
				if err := bson.UnmarshalExtJSON(p, false, &d); err != nil {
					t.Fatal(err)
				}
				raw, _ := bson.Marshal(d)
				want = append(want, bson.Raw(raw).String())
			}
			for _, d := range dest.docs(c.NS) {
				raw, _ := bson.Marshal(d)
				got = append(got, bson.Raw(raw).String())
			}
			sort.Strings(want)
			sort.Strings(got)
			if !bytes.Equal([]byte(fmtList(got)), []byte(fmtList(want))) {
				t.Fatalf("%s holds\n  %s\nwant\n  %s", c.NS, fmtList(got), fmtList(want))
			}
			if p := s.Snapshot(); p.Applied.IsZero() {
				t.Errorf("resume point not advanced: %+v", p)
			}
		})
	}
}

func fmtList(l []string) string {
	var b bytes.Buffer
	for _, s := range l {
		b.WriteString(s)
		b.WriteString("\n  ")
	}
	return b.String()
}

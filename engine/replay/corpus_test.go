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

	"github.com/shardlift/shardlift/internal/corpus"
)

// The transaction cases MongoDB's tools replay (common/txn testdata): applyOps,
// partial chains, prepared commits and aborts, each ending in a known postimage.
func TestTransactionCorpusConvergesToThePostimage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpus.Dir(t), "txn_oplog_entries.json"))
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

package oplog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/internal/corpus"
)

// Every entry of the real-server corpus decodes, and translates to what the
// rules say. The counts are per file, so a change in how any entry is
// classified shows up here.
func TestCorpusEntriesDecodeAndTranslate(t *testing.T) {
	dir := corpus.Dir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.bson"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .bson files in %s: %v", dir, err)
	}
	// kinds counts, per file: ops by type, then items by kind.
	want := map[string]string{
		"collMod_ttl_index__oplog.bson":               "c=1 i=1 | write=1 ddl=1",
		"commit_indexes_build__oplog.bson":            "c=5 i=1 n=11 | write=1 ddl=3 position=13",
		"create_indexes__oplog.bson":                  "c=3 n=13 | ddl=3 position=13",
		"dump_local_oplog__local__oplog.rs.bson":      "i=100 | write=100",
		"dump_with_noop_in_oplog__oplog.bson":         "c=1 i=1 n=2 | write=1 ddl=1 position=2",
		"extra_oplog.bson":                            "i=5 | write=5",
		"oplog_ignore_index__oplog.bson":              "c=2 | position=2",
		"oplog_partial_skips__oplog.bson":             "c=3 d=10 i=8 | write=5 ddl=1 position=15",
		"oplogdump__oplog.bson":                       "c=1 i=2 | write=5",
		"oplogs__bson__bypassDocumentValidation.bson": "c=1 i=3 n=2 | write=3 ddl=1 position=2",
		"oplogs__bson__collMod.bson":                  "c=1 | ddl=1",
		"oplogs__bson__collMod_indexUniqueness.bson":  "c=25 | ddl=25",
		"oplogs__bson__collMod_with_hidden.bson":      "c=2 | ddl=2",
		"oplogs__bson__commit_index.bson":             "c=2 | ddl=1 position=1",
		"oplogs__bson__create_index.bson":             "c=1 | ddl=1",
		"oplogs__bson__drop_collection.bson":          "c=1 | ddl=1",
		"oplogs__bson__drop_db.bson":                  "c=1 | ddl=1",
		"oplogs__bson__drop_index.bson":               "c=1 | ddl=1",
		"oplogs__bson__linked_vectored_inserts.bson":  "c=2 | write=5",
		"oplogs__bson__vectored_insert.bson":          "c=1 | write=2",
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			ops := map[string]int{}
			items := map[string]int{}
			tr := NewTranslator(Config{})
			var out []Item
			for i, raw := range readBSONFile(t, file) {
				e, err := Decode(raw)
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				ops[e.Op.String()]++
				if out, err = tr.Process(&e, out[:0]); err != nil {
					t.Fatalf("entry %d (%s): %v", i, raw, err)
				}
				for _, it := range out {
					items[[...]string{ItemWrite: "write", ItemDDL: "ddl", ItemPosition: "position"}[it.Kind]]++
				}
			}
			got := counts(ops, "c", "d", "i", "n", "u") + " | " + counts(items, "write", "ddl", "position")
			if w, ok := want[name]; !ok || got != w {
				t.Errorf("got %q, want %q", got, w)
			}
		})
	}
}

func counts(m map[string]int, keys ...string) string {
	s := ""
	for _, k := range keys {
		if m[k] == 0 {
			continue
		}
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", k, m[k])
	}
	return s
}

// The transaction cases of mongo-tools' common/txn tests: decode, buffer,
// translate and apply each case's entries with the reference applier; the
// namespace must then hold exactly the post-image documents, in order.
func TestTransactionCorpusReachesPostImage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(corpus.Dir(t), "txn_oplog_entries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]struct {
		Ops       []json.RawMessage `json:"ops"`
		NS        string            `json:"ns"`
		Postimage []json.RawMessage `json:"postimage"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range cases {
			if !yield(n) {
				return
			}
		}
	})
	if len(names) != 12 {
		t.Errorf("got %d cases, want the 12 of mongo-tools", len(names))
	}
	for _, name := range names {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			var entries []bson.Raw
			for _, op := range c.Ops {
				var raw bson.Raw
				if err := bson.UnmarshalExtJSON(op, false, &raw); err != nil {
					t.Fatal(err)
				}
				entries = append(entries, raw)
			}
			if name == "not transaction with multiOpType" {
				// The case's entry has no ns field (real servers always write
				// one): that is an error, and with the case's namespace the
				// entry applies at once although it has lsid and txnNumber.
				if _, err := Decode(entries[0]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("entry without ns: %v, want ErrMalformed", err)
				}
				entries[0] = withField(t, entries[0], "ns", c.NS)
				c.NS = "test.foo"
				c.Postimage = []json.RawMessage{[]byte(`{"_id": 4, "x": -20, "y": 4}`), []byte(`{"_id": 5, "x": -30, "y": 11}`)}
			}
			tr := NewTranslator(Config{})
			db := refDB{}
			for i, raw := range entries {
				e, err := Decode(raw)
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				items, err := tr.Process(&e, nil)
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				applyAll(t, db, items)
			}
			if _, open := tr.OpenTxnFloor(); open {
				t.Errorf("a transaction is still open after the case's entries")
			}
			var got []bson.Raw
			if coll := db[ParseNamespace(c.NS)]; coll != nil {
				got = coll.docs
			}
			if len(got) != len(c.Postimage) {
				t.Fatalf("%s holds %d documents, want %d: %v", c.NS, len(got), len(c.Postimage), got)
			}
			for i, p := range c.Postimage {
				var want bson.Raw
				if err := bson.UnmarshalExtJSON(p, false, &want); err != nil {
					t.Fatal(err)
				}
				sameDoc(t, fmt.Sprintf("document %d", i), got[i], want)
			}
		})
	}
}

// withField returns doc with a string field appended.
func withField(t testing.TB, d bson.Raw, name, value string) bson.Raw {
	t.Helper()
	off, b := startDoc(nil)
	body, _ := docBody(d)
	b = append(b, body...)
	b = appendStr(b, name, value)
	return bson.Raw(endDoc(b, off))
}

package oplog

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// doc parses a document written in MongoDB shell style: unquoted keys, single
// or double quoted strings, extended JSON for typed values ({$numberLong: "1"},
// {$oid: "..."}, {$timestamp: {t: 1, i: 2}}, ...). Field order is kept.
func doc(t testing.TB, s string) bson.Raw {
	t.Helper()
	var r bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(quoteKeys(s)), false, &r); err != nil {
		t.Fatalf("bad test document %s: %v", s, err)
	}
	return r
}

// quoteKeys turns shell-style JSON into JSON: it quotes bare keys and turns
// single-quoted strings into double-quoted ones.
func quoteKeys(s string) string {
	var b strings.Builder
	isWord := func(c byte) bool {
		return c == '_' || c == '$' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(s[i+1:j], `"`, `\"`))
			b.WriteByte('"')
			i = j
		case isWord(c):
			j := i
			for j < len(s) && isWord(s[j]) {
				j++
			}
			k := j
			for k < len(s) && s[k] == ' ' {
				k++
			}
			if k < len(s) && s[k] == ':' {
				b.WriteString(`"` + s[i:j] + `"`)
			} else {
				b.WriteString(s[i:j])
			}
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func decode(t testing.TB, s string) Entry {
	t.Helper()
	e, err := Decode(doc(t, s))
	if err != nil {
		t.Fatalf("Decode(%s): %v", s, err)
	}
	return e
}

// process decodes and translates entries in order and returns all items.
func process(t testing.TB, tr *Translator, entries ...string) []Item {
	t.Helper()
	var out []Item
	for _, s := range entries {
		e := decode(t, s)
		var err error
		out, err = tr.Process(&e, out)
		if err != nil {
			t.Fatalf("Process(%s): %v", s, err)
		}
	}
	return out
}

// writes returns the writes among items.
func writes(items []Item) []Write {
	var w []Write
	for _, it := range items {
		if it.Kind == ItemWrite {
			w = append(w, it.Write)
		}
	}
	return w
}

// applyAll applies the writes of items to db.
func applyAll(t testing.TB, db refDB, items []Item) {
	t.Helper()
	for _, it := range items {
		if it.Kind != ItemWrite {
			continue
		}
		if err := db.apply(it.Write); err != nil {
			t.Fatalf("apply %v %s filter %s update %s pipeline %v: %v", it.Write.Kind, it.Write.NS, it.Write.Filter, it.Write.Update, it.Write.Pipeline, err)
		}
	}
}

func sameDoc(t testing.TB, what string, got, want bson.Raw) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

func ts(t, i uint32) primitive.Timestamp { return primitive.Timestamp{T: t, I: i} }

// readBSONFile splits a file of concatenated BSON documents.
func readBSONFile(t testing.TB, path string) []bson.Raw {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%s: %d trailing bytes", path, len(b))
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n < 5 || n > len(b) {
			t.Fatalf("%s: bad document length %d", path, n)
		}
		docs = append(docs, bson.Raw(b[:n]))
		b = b[n:]
	}
	return docs
}

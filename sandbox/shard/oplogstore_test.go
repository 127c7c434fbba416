package shard

import (
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

func allEntries(l *oplog) []bson.Raw {
	var out []bson.Raw
	base, _ := l.bounds()
	l.visit(base, false, false, func(raw bson.Raw) bool {
		out = append(out, raw)
		return true
	})
	return out
}

// TestOplogFileKeepsTheWindowAcrossReopen: entries that rolled off stay gone, the file
// is rewritten so it does not grow without bound, a torn last entry is dropped, and ts
// keeps increasing after a reopen.
func TestOplogFileKeepsTheWindowAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oplog.bson")
	const max = 64 << 10
	l, err := openOplog(path, max, formsOf(wire.Identity{Version: "7.0.42", FCV: "7.0"}))
	if err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, 1000)
	for i := 0; i < 5000; i++ {
		o, _ := bson.Marshal(bson.D{{Key: "i", Value: i}, {Key: "pad", Value: pad}})
		if err := l.append(draft{op: "n", o: o}); err != nil {
			t.Fatal(err)
		}
	}
	_, size, _ := l.stats()
	if size > max {
		t.Fatalf("oplog holds %d bytes, cap %d", size, max)
	}
	want := allEntries(l)
	last, _ := l.last()
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() > 2*max+(1<<20)+int64(len(want[0])) {
		t.Fatalf("oplog file is %d bytes for a %d-byte oplog: never rewritten", fi.Size(), max)
	}
	// A crash in the middle of an append leaves a torn entry at the end.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{200, 0, 0, 0, 3, 'x'})
	f.Close()

	l, err = openOplog(path, max, formsOf(wire.Identity{Version: "7.0.42", FCV: "7.0"}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	got := allEntries(l)
	if len(got) != len(want) {
		t.Fatalf("reopened oplog has %d entries, had %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Fatalf("entry %d differs after reopen", i)
		}
	}
	if err := l.append(noop("after reopen")); err != nil {
		t.Fatal(err)
	}
	if next, _ := l.last(); compareTS(next, last) <= 0 {
		t.Fatalf("ts went from %v to %v across a reopen", last, next)
	}
}

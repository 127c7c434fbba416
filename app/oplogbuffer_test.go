package app

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine"
)

func TestMigrateOplogBufferSizeRefusesBadValues(t *testing.T) {
	base := []string{"migrate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1", "--state", filepath.Join(t.TempDir(), "s.db")}
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"--oplog-buffer-size", "lots"}, `--oplog-buffer-size "lots": give a size of 64 MiB or more, such as 10GiB, or 0`},
		{[]string{"--oplog-buffer-size", "1MiB"}, `--oplog-buffer-size "1MiB": give a size of 64 MiB or more`},
	} {
		code, out, errOut := runCLI(t, append(base, c.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, c.say) {
			t.Errorf("shardlift %v: exit %d, stdout %q, stderr %q; want 2 saying %q", c.args, code, out, errOut, c.say)
		}
	}
}

func bufferedSnapshot(now time.Time) engine.Snapshot {
	return engine.Snapshot{
		State: engine.Syncing,
		Shards: []engine.ShardProgress{{Name: "rs0", Phase: engine.Copying, Waiting: "oplog buffer full (10 GiB): fetching waits for the replay",
			Buffer: &engine.OplogBuffer{Bytes: 10 << 30, Entries: 34_000_000, Limit: 10 << 30, FetchedUpTo: now.Add(-time.Minute), Full: true}}},
	}
}

func TestProgressLineShowsTheOplogBuffer(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	line := progressLine(bufferedSnapshot(now), now)
	want := "rs0 copying [buffered 10 GiB (34,000,000 entries) of 10 GiB, fetched to 08:59:00] (oplog buffer full (10 GiB): fetching waits for the replay)"
	if !strings.Contains(line, want) {
		t.Errorf("line %q lacks %q", line, want)
	}
}

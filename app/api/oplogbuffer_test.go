package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine"
)

func TestStatusShowsTheOplogBuffer(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	raw, err := json.Marshal(toStatus(engine.Snapshot{State: engine.Syncing, Shards: []engine.ShardProgress{{Name: "rs0", Phase: engine.Copying,
		Buffer: &engine.OplogBuffer{Bytes: 10 << 30, Entries: 34_000_000, Limit: 10 << 30, FetchedUpTo: now.Add(-time.Minute), Full: true}}}}))
	if err != nil {
		t.Fatal(err)
	}
	want := `"oplogBuffer":{"bytes":10737418240,"entries":34000000,"limit":10737418240,"fetchedUpTo":"2026-03-01T08:59:00Z","full":true}`
	if !strings.Contains(string(raw), want) {
		t.Errorf("status %s lacks %s", raw, want)
	}
}

package engine

import (
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine/oplogbuf"
	"github.com/shardlift/shardlift/engine/replay"
)

// The disk is shared with other programs: the bounds are checked against the free
// space read before and after each call.
func TestBufferLimitNeverTakesMoreThanTheFreeDisk(t *testing.T) {
	dir := t.TempDir()
	limit := func(configured, held int64, shards int) (got, freeMax int64) {
		before, ok := oplogbuf.FreeBytes(dir)
		if !ok {
			t.Skip("the free disk is unknown on this system")
		}
		got = bufferLimit(configured, held, dir, shards)
		after, _ := oplogbuf.FreeBytes(dir)
		return got, max(before, after)
	}
	if got, _ := limit(0, 0, 1); got > replay.DefaultBufferLimit {
		t.Errorf("default limit %d, above the default %d", got, int64(replay.DefaultBufferLimit))
	}
	huge := int64(1 << 60)
	if got, free := limit(huge, 0, 1); got > max(free*9/10, oplogbuf.DefaultSegmentBytes) {
		t.Errorf("a %d-byte limit became %d with %d bytes free: more than the disk holds", huge, got, free)
	}
	// Two shards share the disk; what a buffer holds already is its own.
	if got, free := limit(huge, 5<<20, 2); got > max(5<<20+free*9/10/2, oplogbuf.DefaultSegmentBytes) || got < 5<<20 {
		t.Errorf("limit %d for one of two shards holding 5 MiB, %d bytes free", got, free)
	}
	if got, _ := limit(oplogbuf.DefaultSegmentBytes, 0, 1); got != oplogbuf.DefaultSegmentBytes {
		t.Errorf("a limit of one segment became %d", got)
	}
}

// A resumed migration shows each shard's buffer as its last checkpoint saved it,
// before a fetcher opens the buffer again; a shard that saved none shows none.
func TestResumedShardShowsItsSavedBufferBeforeItsFetcher(t *testing.T) {
	h := newHarness(t, "rs0", "rs1")
	h.start(StartOptions{WipeDestination: true})
	h.ready()
	h.crash()
	h.cp.mu.Lock()
	saved := h.cp.shards["rs0"]
	saved.Buffered = BufferedOplog{Bytes: 1288490189, Entries: 340_000}
	h.cp.shards["rs0"] = saved
	h.cp.mu.Unlock()

	m := h.newMigration()
	for _, row := range m.Snapshot().Shards {
		switch row.Name {
		case "rs0":
			if row.Buffer == nil || row.Buffer.Bytes != 1288490189 || row.Buffer.Entries != 340_000 {
				t.Fatalf("rs0's buffer on resume %+v, want the saved 1288490189 bytes and 340,000 entries", row.Buffer)
			}
			if got, want := row.Buffer.Held(), "buffered 1.2 GiB (340,000 entries)"; got != want {
				t.Fatalf("rs0's buffer reads %q, want %q", got, want)
			}
		case "rs1":
			if row.Buffer != nil {
				t.Fatalf("rs1 saved no buffer, and its row shows %+v", row.Buffer)
			}
		}
	}
}

func TestBufferTextSaysWhatItHolds(t *testing.T) {
	var none *OplogBuffer
	if none.Held() != "" || (&OplogBuffer{Limit: 1 << 30}).Held() != "" {
		t.Fatal("an empty or absent buffer must say nothing on the shard row")
	}
	b := &OplogBuffer{Bytes: 5 << 20, Entries: 12_345, Limit: 10 << 30, FetchedUpTo: time.Date(2026, 12, 6, 22, 30, 5, 0, time.UTC)}
	if got, want := b.String(), "buffered 5.0 MiB (12,345 entries) of 10 GiB, fetched to 22:30:05"; got != want {
		t.Fatalf("CLI text %q, want %q", got, want)
	}
}

package engine

import (
	"testing"

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

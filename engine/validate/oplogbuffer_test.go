package validate

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
)

// slowCopyInput: shard1's copy and index builds need ~19 minutes of oplog (with the
// margin) while its oplog holds 10 minutes, written at 1 GiB per 10 minutes: about
// 1.9 GiB of oplog during the copy.
func slowCopyInput() Input {
	in := goodInput()
	in.Source.Namespaces[0].ShardSizes = map[string]int64{"src-shard0": 1 << 20, "src-shard1": 10 << 30}
	in.Source.Shards[1].DataBytes, in.Source.Shards[1].IndexBytes, in.Source.Shards[1].DataBytesKnown = 10<<30, 1<<30, true
	in.Source.Shards[1].Oplog = topology.Oplog{First: primitive.Timestamp{T: 1000}, Last: primitive.Timestamp{T: 1000 + 600}, UsedBytes: 1 << 30, MaxBytes: 1 << 30}
	return in
}

func TestBufferedOplogNeedsOnlyTheFetchStart(t *testing.T) {
	in := slowCopyInput()
	expect(t, Check(in), IDOplogWindow, Failed, "roll past T0") // without the buffer
	in.OplogBuffer = 10 << 30
	expect(t, Check(in), IDOplogWindow, Passed, "buffered on local disk from T0 on", "only the seconds from T0 to the fetch's start",
		"shard src-shard1: copying its 10 GiB", "about 1.9 GiB of oplog to buffer, within the 10 GiB buffer", "its oplog holds 10m0s")
}

func TestBufferSmallerThanTheCopysOplogWarns(t *testing.T) {
	in := slowCopyInput()
	in.OplogBuffer = 1 << 30 // full after 10 minutes; the oplog holds the remaining ~9
	expect(t, Check(in), IDOplogWindow, Warning, "would outgrow the oplog buffer (1.0 GiB per shard)",
		"more than the 1.0 GiB buffer: once it is full the oplog must hold the remaining 9m0s", "its oplog holds 10m0s")
}

func TestBufferAndOplogTooSmallTogetherFail(t *testing.T) {
	in := slowCopyInput()
	in.OplogBuffer = 256 << 20 // full after 2.5 minutes; the oplog would have to hold ~16 more
	f := expect(t, Check(in), IDOplogWindow, Failed, "what the oplog buffer (256 MiB per shard) has not fetched",
		"shard src-shard1's oplog holds 10m0s of writes", "once it is full the oplog must hold the remaining 16m0s")
	if !strings.Contains(f.Fix, "oplog buffer of 1.9 GiB or more (--oplog-buffer-size)") {
		t.Errorf("fix %q does not say how large a buffer would do", f.Fix)
	}
}

func TestBufferedOplogStillNeedsTheMinuteBeforeTheFetch(t *testing.T) {
	in := slowCopyInput()
	in.OplogBuffer = 10 << 30
	in.Source.Shards[1].Oplog = topology.Oplog{First: primitive.Timestamp{T: 1000}, Last: primitive.Timestamp{T: 1030}, UsedBytes: 1 << 20, MaxBytes: 1 << 20}
	expect(t, Check(in), IDOplogWindow, Failed, "shard src-shard1's oplog holds 30s of writes", "the oplog buffer's fetch starts from T0 within seconds, with 1m0s of margin")
}

// A copy that needs less than the buffer's minute is judged as without the buffer:
// the buffer never makes the check stricter (a new cluster's oplog spans seconds).
func TestBufferAsksNoMoreThanTheCopy(t *testing.T) {
	in := goodInput()
	in.Source.Shards[0].Oplog = topology.Oplog{First: primitive.Timestamp{T: 1000}, Last: primitive.Timestamp{T: 1030}, UsedBytes: 1 << 20, MaxBytes: 1 << 20}
	expect(t, Check(in), IDOplogWindow, Passed)
	in.OplogBuffer = 10 << 30
	expect(t, Check(in), IDOplogWindow, Passed, "buffered on local disk from T0 on")
}

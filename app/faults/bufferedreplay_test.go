package faults_test

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// bufferedReplayOplog is the victim shard's oplog while its replay is held: small
// enough that a few thousand updates roll it past the replay's position, large
// enough that the fetcher, a second or two behind under the load, keeps up.
const bufferedReplayOplog = 1 << 20

// killDuringBufferedReplay: once the migration is in sync, the destination's
// router refuses every connection, so the replay stops applying while the oplog
// fetcher goes on buffering; meanwhile one source shard's oplog shrinks to 1 MiB
// and takes updates until it no longer holds the entries after the replay's
// position. The process is killed there, with its replay reading entries that
// only the on-disk buffer still has (checked on the status before the kill and
// on the state file after it); the destination comes back, the oplog returns to
// its size, the migration restarts from its checkpoint and ends verified under
// the load: nothing lost or duplicated. Without the buffer (or with a buffer
// resumed from the wrong entry) the shard fails on the gap, or the comparison
// finds the writes the replay skipped.
func killDuringBufferedReplay(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	e.start()
	e.await("in sync", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return allSynced(s) })
	shards := e.src.Shards()
	victim := shards[e.rnd.IntN(len(shards))]
	if err := e.dst.SetRouterFault(wire.Refuse); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.dst.SetRouterFault(wire.Healthy) })
	if err := e.src.SetOplogSize(victim.Name, bufferedReplayOplog); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.src.SetOplogSize(victim.Name, 0) })
	// The replay's position, once the refusal holds it: an insert sent before the
	// refusal may still land, so it is read after the router refused a while.
	var applied time.Time
	e.await(victim.Name+"'s replay held by the refused destination", 2*time.Minute, func(s faults.Status) bool {
		e.neverFailed(s)
		sh, _ := s.Shard(victim.Name)
		if sh.AppliedUpTo == nil || sh.Retrying == "" {
			return false
		}
		applied = *sh.AppliedUpTo
		return true
	})
	writes := e.rollPast(victim, tsValue(primitive.Timestamp{T: uint32(applied.Unix()) + 1}))

	// Before the kill: the source shard's oplog starts after the replay's position,
	// and the buffer reaches past that start: the replay's next entries are on local
	// disk only.
	oldest, err := e.oplogEdge(victim.Addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	oldestT, _, _ := oldest.TimestampOK()
	s := e.status()
	e.neverFailed(s)
	sh, _ := s.Shard(victim.Name)
	switch {
	case sh.AppliedUpTo == nil || sh.AppliedUpTo.Unix() >= int64(oldestT):
		t.Fatalf("before the kill %s applied up to %v, and its source oplog starts at %v: the replay does not depend on the buffer", victim.Name, sh.AppliedUpTo, time.Unix(int64(oldestT), 0).UTC())
	case sh.Buffer == nil || sh.Buffer.FetchedUpTo == nil || sh.Buffer.FetchedUpTo.Unix() < int64(oldestT):
		t.Fatalf("before the kill %s's buffer %+v does not reach the source oplog's start %v", victim.Name, sh.Buffer, time.Unix(int64(oldestT), 0).UTC())
	}
	e.kill(fmt.Sprintf("during the buffered replay of %s: applied up to %s, its source oplog starts at %s, buffered to %s (%d bytes)",
		victim.Name, sh.AppliedUpTo.Format("15:04:05"), time.Unix(int64(oldestT), 0).UTC().Format("15:04:05"), sh.Buffer.FetchedUpTo.Format("15:04:05"), sh.Buffer.Bytes))
	checkpoint := e.appliedCheckpoint(victim.Name)
	if !tsBefore(checkpoint, oldest) {
		t.Fatalf("the state file resumes %s after %v, which its source oplog (from %v) still holds: the restart would not need the buffer", victim.Name, checkpoint, oldest)
	}

	if err := e.src.SetOplogSize(victim.Name, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.dst.SetRouterFault(wire.Healthy); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	e.start()
	e.await("in sync after the restart", 5*time.Minute, func(s faults.Status) bool { e.neverFailed(s); return allSynced(s) })
	e.finish()
	row.Converge = time.Since(restarted)
	cpT, cpI, _ := checkpoint.TimestampOK()
	row.Notes = fmt.Sprintf("%s's oplog rolled past its replay's checkpoint Timestamp(%d, %d) (%d updates into a 1 MiB oplog, destination refusing); killed with the entries from there in its buffer only; restarted from the checkpoint",
		victim.Name, cpT, cpI, writes)
	t.Log(row.Notes)
	e.verify(row)
}

// appliedCheckpoint is the replay position the state file holds for a shard (the
// process is stopped).
func (e *env) appliedCheckpoint(shard string) bson.RawValue {
	e.t.Helper()
	cps := e.savedCheckpoints()
	for _, cp := range cps {
		if cp.Shard == shard {
			return tsValue(cp.Applied)
		}
	}
	e.t.Fatalf("the state file holds no checkpoint of %s", shard)
	return bson.RawValue{}
}

func tsValue(ts primitive.Timestamp) bson.RawValue {
	_, v, err := bson.MarshalValue(ts)
	if err != nil {
		panic(err)
	}
	return bson.RawValue{Type: bson.TypeTimestamp, Value: v}
}

func tsBefore(a, b bson.RawValue) bool { return tsAfter(b, a) }

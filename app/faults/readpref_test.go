package faults_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
)

func init() { sourceOptions["14-lagging-secondary-read"] = sandbox.Options{Members: 3} }

// laggingSecondary is issue 14's scenario "a secondary held 30 s behind while
// Shardlift reads from it": every source shard is a 3-member replica set whose
// member 1 applies its primary's entries only once they are the size's outage old
// (30 s in the long form, 12 s in the short), and Shardlift reads member 1 alone
// (read preference secondary, readPreferenceTags member:1) from the start, under
// the write load, through the copy and the steady sync. The copy's reads wait for
// the member's majority-committed state to reach T0, the tail waits for the member
// to reach T0 and hands on only what the member's own commit point covers: nothing
// is lost although the member is behind T0 when the copy starts. Then the lag ends
// and the migration finishes; the full comparison must find no difference. The
// members' read counts show that the shards' primaries and other secondaries
// served no read of Shardlift's copy or tail.
func laggingSecondary(t *testing.T, e *env, row *faults.Row) {
	lag := e.s.size.outage
	for _, sh := range e.src.Shards() {
		if err := e.src.SetReplicationLag(sh.Name, 1, lag); err != nil {
			t.Fatal(err)
		}
	}
	e.srcQuery = "readPreferenceTags=member:1"
	e.extra = []string{"--source-read-preference", "secondary"}
	e.startLoad(e.s.size.rate)
	e.start()
	// The tail reads member 1: each shard replays as far behind as the member is.
	e.await(fmt.Sprintf("every shard replaying member 1, %s behind", lag), 5*time.Minute, func(s faults.Status) bool {
		for _, sh := range s.Shards {
			if sh.Error != "" {
				t.Fatalf("shard %s failed: %s", sh.Name, sh.Error)
			}
			if sh.LagSeconds == nil || *sh.LagSeconds < lag.Seconds()/2 {
				return false
			}
		}
		return len(s.Shards) > 0
	})
	for _, sh := range e.src.Shards() {
		reads, err := e.src.ShardReads(sh.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range reads {
			if read := r.Data > 0 && r.Oplog > 0; read != (i == 1) {
				t.Errorf("shard %s member %d served %d data reads and %d oplog reads; want the copy and the tail on member 1 only: %v", sh.Name, i, r.Data, r.Oplog, reads)
			}
		}
		if reads[0].Data+reads[0].Oplog+reads[2].Data+reads[2].Oplog > 0 {
			t.Errorf("shard %s: members other than 1 served Shardlift's reads: %v", sh.Name, reads)
		}
	}
	for _, sh := range e.src.Shards() {
		if err := e.src.SetReplicationLag(sh.Name, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	e.finish()
	e.verify(row)
	row.Notes = fmt.Sprintf("member 1 of each shard %s behind, read with secondary/member:1", lag)
}

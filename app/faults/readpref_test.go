package faults_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/shard"
)

func init() { sourceOptions["14-lagging-secondary-read"] = sandbox.Options{Members: 3} }

// laggingSecondary is issue 14's scenario "a secondary held 30 s behind while
// Shardlift reads from it": every source shard is a 3-member replica set whose
// member 1 applies its primary's entries only once they are 30 s old (6 s in the
// short form), and Shardlift reads member 1 alone (--source-read-preference
// secondary, readPreferenceTags=member:1 in the source's connection string) from
// the start, under the write load, through the copy and the steady sync. The
// copy's reads wait for the member's majority-committed state to reach T0, the tail
// waits for the member to reach T0 and hands on only what the member's own commit
// point covers: nothing is lost although the member is behind T0 when the copy
// starts. Then the lag ends and the migration finishes; the full comparison must
// find no difference. The members' read counts show that the shards' primaries and
// other secondaries served none of the copy's and the tail's reads.
func laggingSecondary(t *testing.T, e *env, row *faults.Row) {
	lag := 30 * time.Second // the issue's; the short form's is smaller, to stay short
	if !e.s.long {
		lag = 6 * time.Second
	}
	for _, sh := range e.src.Shards() {
		if err := e.src.SetReplicationLag(sh.Name, 1, lag); err != nil {
			t.Fatal(err)
		}
	}
	// The flag's mode overrides the connection string's; its tags stay.
	e.srcQuery = "readPreference=nearest&readPreferenceTags=member:1"
	e.extra = []string{"--source-read-preference", "secondary"}
	e.startLoad(e.s.size.rate)
	e.start()
	// Every shard's tail reads member 1 (it waits for the member to reach T0
	// first), as far behind as the member is.
	e.await(fmt.Sprintf("every shard's tail reading member 1, %s behind", lag), 5*time.Minute, func(s faults.Status) bool {
		for _, sh := range s.Shards {
			if sh.Error != "" {
				t.Fatalf("shard %s failed: %s", sh.Name, sh.Error)
			}
			reads, err := e.src.ShardReads(sh.Name)
			if err != nil {
				t.Fatal(err)
			}
			if sh.LagSeconds == nil || *sh.LagSeconds < lag.Seconds()/2 || reads[1].Oplog == 0 {
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
		if reads[1].Data == 0 || reads[0] != (shard.MemberReads{}) || reads[2] != (shard.MemberReads{}) {
			t.Errorf("shard %s: members served Shardlift's reads %v; want the copy and the tail on member 1 only", sh.Name, reads)
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

package engine

import (
	"testing"
	"time"

	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/shard"
)

// Each source shard is read where its own read preference says: on 3-member shards,
// shard A read from its member 1 (secondary;member:1) and shard B from its primary
// (the source's default here), the members' read counts show that member 1 alone
// served A's copy and tail, and the primary alone B's.
func TestEachShardIsReadWithItsOwnReadPreference(t *testing.T) {
	e := startE2EShaped(t, 1500, "counts each member's reads", func(side string, o *sandbox.Options) {
		if side == "source" {
			o.Members = 3
		}
	})
	shards := e.srcBox.Shards()
	a, b := shards[0].Name, shards[1].Name
	for _, name := range []string{a, b} {
		ms, err := e.srcBox.ShardMembers(name)
		if err != nil {
			t.Fatal(err)
		}
		if ms[0].State != "PRIMARY" {
			t.Fatalf("shard %s: member 0 is not the primary (%+v)", name, ms)
		}
	}
	e.src.ReadPreference = "primary"
	e.src.ShardReadPreferences = map[string]string{a: "secondary;member:1"}
	e.startLoad(20)
	m := e.migration(newMemCheckpoints("e2e-shardreads"))
	run := run(m, StartOptions{WipeDestination: true})
	defer run.kill()
	reads := func(name string) []shard.MemberReads {
		r, err := e.srcBox.ShardReads(name)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tailed := func(name string) bool {
		for _, r := range reads(name) {
			if r.Oplog > 0 {
				return true
			}
		}
		return false
	}
	// Ready, and each shard's tail has read an oplog (whichever member's).
	s := await(t, m, 3*time.Minute, "ready with both tails reading", func(s Snapshot) bool {
		return s.State == Ready && tailed(a) && tailed(b)
	})
	e.endLoad()
	if want := "primary; shard " + a + ": secondary (tags member:1)"; s.SourceReads != want {
		t.Errorf("snapshot reads %q, want %q", s.SourceReads, want)
	}
	for _, sh := range s.Shards {
		want := map[string]string{a: "secondary (tags member:1)", b: "primary"}[sh.Name]
		if sh.Reads != want {
			t.Errorf("snapshot: shard %s reads %q, want %q", sh.Name, sh.Reads, want)
		}
	}
	ra, rb := reads(a), reads(b)
	if ra[1].Data == 0 || ra[0] != (shard.MemberReads{}) || ra[2] != (shard.MemberReads{}) {
		t.Errorf("shard %s (secondary;member:1): members served %v; want the copy and the tail on member 1 only", a, ra)
	}
	if rb[0].Data == 0 || rb[1] != (shard.MemberReads{}) || rb[2] != (shard.MemberReads{}) {
		t.Errorf("shard %s (primary): members served %v; want the copy and the tail on member 0, the primary, only", b, rb)
	}
}

package validate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
)

// threeMembers is a shard of a primary and two secondaries, tagged dc:a, dc:b, dc:c,
// whose secondaries are behind1 and behind2 behind it.
func threeMembers(name string, behind1, behind2 time.Duration) topology.Shard {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	m := func(host, dc string, primary bool, behind time.Duration) topology.Member {
		return topology.Member{Node: topology.Node{Host: host}, SetName: name, Primary: primary, Secondary: !primary,
			Tags: map[string]string{"dc": dc}, LastWrite: now.Add(-behind)}
	}
	return topology.Shard{Name: name, SetName: name, Hosts: []string{name + "-a:27018", name + "-b:27018", name + "-c:27018"},
		Primary: name + "-a:27018", Members: []topology.Member{
			m(name+"-a:27018", "a", true, 0), m(name+"-b:27018", "b", false, behind1), m(name+"-c:27018", "c", false, behind2)}}
}

func withShards(shards ...topology.Shard) Input {
	in := goodInput()
	src := *in.Source
	src.Shards = shards
	in.Source = &src
	return in
}

func TestReadPreferencePassesWhenTheMembersItReadsAreCloseBehind(t *testing.T) {
	in := withShards(threeMembers("s0", time.Second, 2*time.Second), threeMembers("s1", 0, 0))
	in.Reads = topology.ReadPreference{Mode: "secondary"}
	expect(t, Check(in), IDSourceReadPreference, Passed, "secondary", "4 members", "2 shards", "2s behind")
}

func TestReadPreferenceWarnsAboutAMemberItReadsFarBehind(t *testing.T) {
	in := withShards(threeMembers("s0", time.Second, 30*time.Second))
	for _, mode := range []string{"secondary", "nearest", "secondaryPreferred"} {
		in.Reads = topology.ReadPreference{Mode: mode}
		expect(t, Check(in), IDSourceReadPreference, Warning, "shard s0 member s0-c:27018 is 30s behind its primary")
	}
	// The primary alone, or a staleness bound leaving it out, or tags naming
	// another member: nothing read is behind.
	for _, rp := range []topology.ReadPreference{{Mode: "primary"}, {Mode: "primaryPreferred"},
		{Mode: "secondary", MaxStaleness: 90 * time.Second / 4}, {Mode: "secondary", Tags: []map[string]string{{"dc": "b"}}}} {
		in.Reads = rp
		expect(t, Check(in), IDSourceReadPreference, Passed)
	}
}

func TestReadPreferenceFailsAShardWithNoMemberItReads(t *testing.T) {
	lone := threeMembers("s1", 0, 0)
	lone.Members[1].Err, lone.Members[2].Secondary = errors.New("connection refused"), false
	in := withShards(threeMembers("s0", 0, 0), lone)
	in.Reads = topology.ReadPreference{Mode: "secondary"}
	f := expect(t, Check(in), IDSourceReadPreference, Failed, "shard s1 has no member secondary reads",
		"s1-b:27018 unreachable", "s1-c:27018 neither primary nor secondary, tags dc:c")
	if want := "Choose the read preference primary or nearest"; f.Fix[:len(want)] != want {
		t.Errorf("fix %q", f.Fix)
	}
	in.Reads = topology.ReadPreference{Mode: "nearest", Tags: []map[string]string{{"dc": "x"}}}
	expect(t, Check(in), IDSourceReadPreference, Failed, "shard s0 has no member nearest (tags dc:x) reads")
	// secondaryPreferred falls back on the primary.
	in.Reads = topology.ReadPreference{Mode: "secondaryPreferred"}
	expect(t, Check(in), IDSourceReadPreference, Passed)
}

func TestReadPreferenceInvalidIsAFailureSayingWhatToChoose(t *testing.T) {
	in := goodInput()
	in.ReadsErr = errors.New(`read preference "fastest": use one of primary, primaryPreferred, secondary, secondaryPreferred, nearest`)
	expect(t, Check(in), IDSourceReadPreference, Failed, "fastest")
}

// The oplog window that counts is the one of the members the read preference reads
// (the tail follows one of them from T0): a secondary with a smaller oplog than
// its primary's fails the check by name, the smallest of those read decides, and
// reading the primary only leaves the secondaries' oplogs out.
func TestOplogWindowIsThatOfTheMembersTheReadPreferenceReads(t *testing.T) {
	sh := threeMembers("s0", time.Second, time.Second)
	// 10 GiB at 20 MiB/s and 1 GiB of indexes: the oplog must hold about 19 minutes.
	sh.DataBytes, sh.IndexBytes, sh.DataBytesKnown = 10<<30, 1<<30, true
	window := func(d time.Duration) topology.Oplog {
		return topology.Oplog{First: primitive.Timestamp{T: 1000}, Last: primitive.Timestamp{T: 1000 + uint32(d.Seconds())}, UsedBytes: 1 << 30, MaxBytes: 1 << 30}
	}
	sh.Oplog = window(time.Hour)
	sh.Members[0].Oplog, sh.Members[1].Oplog, sh.Members[2].Oplog = sh.Oplog, window(10*time.Minute), window(2*time.Hour)
	in := withShards(sh)
	in.ReadRates = map[string]ReadRate{"s0": measured("shop.orders", 20<<20)}

	in.Reads = topology.ReadPreference{Mode: "secondary", Tags: []map[string]string{{"dc": "b"}}}
	f := expect(t, Check(in), IDOplogWindow, Failed, "s0's oplog on member s0-b:27018 holds 10m0s of writes")
	if want := "Enlarge the oplog of shard s0 on member s0-b:27018 to hold at least 19m0s"; !strings.Contains(f.Fix, want) {
		t.Errorf("fix %q lacks %q", f.Fix, want)
	}
	in.Reads = topology.ReadPreference{Mode: "secondary"}
	expect(t, Check(in), IDOplogWindow, Failed, "s0's oplog on member s0-b:27018 holds 10m0s")
	in.Reads = topology.ReadPreference{Mode: "secondary", Tags: []map[string]string{{"dc": "c"}}}
	expect(t, Check(in), IDOplogWindow, Passed, "oplog on member s0-c:27018 holds 2h0m0s")
	in.Reads = topology.ReadPreference{Mode: "primary"}
	expect(t, Check(in), IDOplogWindow, Passed, "s0: copying its 10 GiB", "oplog holds 1h0m0s")
	in.Reads = topology.ReadPreference{Mode: "nearest"} // the primary, b or c: b is the shortest
	expect(t, Check(in), IDOplogWindow, Failed, "on member s0-b:27018 holds 10m0s")
}

// Each shard is judged with its own read preference where it has one: the warning
// names the shard whose chosen members are far behind, not the one read elsewhere.
func TestReadPreferenceJudgesEachShardWithItsOwn(t *testing.T) {
	in := withShards(threeMembers("s0", 30*time.Second, 30*time.Second), threeMembers("s1", 40*time.Second, 40*time.Second))
	in.Reads = topology.ReadPreference{Mode: "primary"}
	in.ShardReads = map[string]topology.ReadPreference{"s0": {Mode: "secondary", Tags: []map[string]string{{"dc": "b"}}}}
	f := expect(t, Check(in), IDSourceReadPreference, Warning, "shard s0 member s0-b:27018 is 30s behind its primary")
	if !strings.Contains(f.Fix, "--shard-read-preference") {
		t.Errorf("fix %q does not say how to choose for one shard", f.Fix)
	}
	if strings.Contains(f.Detail, "s1") || strings.Contains(f.Detail, "s0-c") {
		t.Errorf("names a member not read: %s", f.Detail)
	}
	in.ShardReads = map[string]topology.ReadPreference{"s1": {Mode: "secondary", Tags: []map[string]string{{"dc": "x"}}}}
	expect(t, Check(in), IDSourceReadPreference, Failed, "shard s1 has no member secondary (tags dc:x) reads")
	in.ShardReads = map[string]topology.ReadPreference{"s0": {Mode: "primary"}, "s1": {Mode: "primary"}}
	in.Reads = topology.ReadPreference{Mode: "secondary"}
	expect(t, Check(in), IDSourceReadPreference, Passed, "secondary; shard s0: primary; shard s1: primary: 2 members answered in 2 shards")
}

func TestReadPreferenceForAShardTheSourceLacksFailsNamingIt(t *testing.T) {
	in := withShards(threeMembers("s0", 0, 0), threeMembers("s1", 0, 0))
	in.ShardReads = map[string]topology.ReadPreference{"s9": {Mode: "primary"}}
	f := expect(t, Check(in), IDSourceReadPreference, Failed, "shard s9, which the source does not have (its shards: s0, s1)")
	if !strings.HasPrefix(f.Fix, "Correct the shard's name") {
		t.Errorf("fix %q", f.Fix)
	}
}

// The oplog window of a shard read otherwise is that of the members its own
// preference reads.
func TestOplogWindowIsThatOfTheMembersTheShardsOwnPreferenceReads(t *testing.T) {
	sh := threeMembers("s0", time.Second, time.Second)
	sh.DataBytes, sh.IndexBytes, sh.DataBytesKnown = 10<<30, 1<<30, true
	window := func(d time.Duration) topology.Oplog {
		return topology.Oplog{First: primitive.Timestamp{T: 1000}, Last: primitive.Timestamp{T: 1000 + uint32(d.Seconds())}, UsedBytes: 1 << 30, MaxBytes: 1 << 30}
	}
	sh.Oplog = window(time.Hour)
	sh.Members[0].Oplog, sh.Members[1].Oplog, sh.Members[2].Oplog = sh.Oplog, window(10*time.Minute), window(2*time.Hour)
	in := withShards(sh)
	in.ReadRates = map[string]ReadRate{"s0": measured("shop.orders", 20<<20)}
	in.Reads = topology.ReadPreference{Mode: "primary"}
	in.ShardReads = map[string]topology.ReadPreference{"s0": {Mode: "secondary", Tags: []map[string]string{{"dc": "b"}}}}
	expect(t, Check(in), IDOplogWindow, Failed, "s0's oplog on member s0-b:27018 holds 10m0s of writes")
}

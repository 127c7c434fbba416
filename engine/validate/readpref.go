package validate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
)

// MaxReadLag is how far behind its primary a member the read preference reads may
// be before validation warns: the copy waits on such a member until it reaches T0,
// and the sync stays as far behind.
const MaxReadLag = 10 * time.Second

// readPreference checks, for each source shard, the members its read preference
// reads (the source's, or the shard's own; docs/correctness.md, "Read
// preference"): every shard given its own must exist, at least one member must
// answer in the role the mode asks for and match the tags and staleness bound
// (else the copy and the tail of that shard cannot start), and each should be close
// behind the primary.
func (c *checker) readPreference() {
	const id, title = IDSourceReadPreference, "Source shard members the read preference reads are reachable and close behind"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	if c.in.ReadsErr != nil {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: c.in.ReadsErr.Error(),
			Fix: "Choose one of " + strings.Join(topology.ReadPreferenceModes, ", ") + " (for the source, and for each shard read otherwise), tags as NAME:VALUE pairs, and give maxStalenessSeconds of 90 or more in the source's connection string, or none."})
		return
	}
	src := c.in.Source
	if len(src.Shards) == 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the source's shards are unknown (listShards failed)",
			Fix: "Fix \"Source sharding metadata readable\" first."})
		return
	}
	reads := topology.ShardReads{Default: c.readsOf(""), Shards: c.in.ShardReads}
	if err := reads.Known(src.ShardNames()); err != nil {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: err.Error(),
			Fix: "Correct the shard's name in --shard-read-preference (or the API request's shardReadPreferences), or remove it: the form lists the source's shards."})
		return
	}
	var none, behind []string
	worst := time.Duration(0)
	read := 0
	for _, sh := range src.Shards {
		rp := c.readsOf(sh.Name)
		members := readMembers(sh, rp)
		if len(members) == 0 {
			none = append(none, fmt.Sprintf("shard %s has no member %s reads (%s)", sh.Name, rp, describeMembers(sh)))
			continue
		}
		read += len(members)
		for _, m := range members {
			lag, known := behindPrimary(sh, m)
			if !known {
				continue
			}
			worst = max(worst, lag)
			if lag > MaxReadLag {
				behind = append(behind, fmt.Sprintf("shard %s member %s is %s behind its primary", sh.Name, m.Host, lag.Round(time.Second)))
			}
		}
	}
	switch {
	case len(none) > 0:
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: list(none),
			Fix: "Choose the read preference primary or nearest for that shard (Read shards from, or --source-read-preference; one shard alone: its row in the form, or --shard-read-preference SHARD=MODE), fix the shard's secondaries (rs.status()), or change readPreferenceTags to tags its members have."})
	case len(behind) > 0:
		c.add(Finding{ID: id, Status: Warning, Title: title, Detail: list(behind),
			Fix: fmt.Sprintf("Reading a member far behind is safe (every read is majority-committed) but slow: the copy waits for it to reach the start point and the sync stays as far behind. Fix its replication, or choose primary or nearest for that shard (one shard alone: its row in the form, or --shard-read-preference SHARD=MODE), or give maxStalenessSeconds (90 or more) in the source's connection string to leave out members further behind than that; validation warns above %s.", MaxReadLag)})
	default:
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("%s: %s answered in %s, at most %s behind their primary",
			reads, plural(read, "member", "members"), plural(len(src.Shards), "shard", "shards"), worst.Round(time.Second))})
	}
}

// readsOf is the read preference of the named source shard: its own, else the
// source's, the default mode when none is given.
func (c *checker) readsOf(shard string) topology.ReadPreference {
	if rp, ok := c.in.ShardReads[shard]; ok {
		return rp
	}
	rp := c.in.Reads
	if rp.Mode == "" {
		rp.Mode = topology.DefaultReadPreference
	}
	return rp
}

// readMembers are the members of sh that rp reads, as the driver's server selection
// chooses among the members that answered: by role, staleness and tag sets (the
// first set some candidate matches).
func readMembers(sh topology.Shard, rp topology.ReadPreference) []topology.Member {
	var primary, secondaries []topology.Member
	for _, m := range sh.Members {
		switch {
		case m.Err != nil:
		case m.Primary:
			primary = append(primary, m)
		case m.Secondary:
			if lag, known := behindPrimary(sh, m); rp.MaxStaleness > 0 && known && lag > rp.MaxStaleness {
				continue
			}
			secondaries = append(secondaries, m)
		}
	}
	tagged := func(ms []topology.Member) []topology.Member {
		if len(rp.Tags) == 0 {
			return ms
		}
		for _, set := range rp.Tags {
			var out []topology.Member
			for _, m := range ms {
				if hasTags(m, set) {
					out = append(out, m)
				}
			}
			if len(out) > 0 {
				return out
			}
		}
		return nil
	}
	switch rp.Mode {
	case "", "primary":
		return primary
	case "primaryPreferred":
		if len(primary) > 0 {
			return primary
		}
		return tagged(secondaries)
	case "secondary":
		return tagged(secondaries)
	case "secondaryPreferred":
		if s := tagged(secondaries); len(s) > 0 {
			return s
		}
		return primary
	}
	return tagged(append(primary, secondaries...)) // nearest
}

func hasTags(m topology.Member, set map[string]string) bool {
	for k, v := range set {
		if m.Tags[k] != v {
			return false
		}
	}
	return true
}

// behindPrimary is how far m's newest entry is behind its primary's, by their wall
// times; known false when either is unknown (no primary answered).
func behindPrimary(sh topology.Shard, m topology.Member) (time.Duration, bool) {
	if m.Primary || m.LastWrite.IsZero() {
		return 0, !m.LastWrite.IsZero()
	}
	for _, p := range sh.Members {
		if p.Primary && p.Err == nil && !p.LastWrite.IsZero() {
			return max(0, p.LastWrite.Sub(m.LastWrite)), true
		}
	}
	return 0, false
}

// describeMembers lists a shard's members as the read preference sees them.
func describeMembers(sh topology.Shard) string {
	var out []string
	for _, m := range sh.Members {
		role := "neither primary nor secondary"
		switch {
		case m.Err != nil:
			role = "unreachable"
		case m.Primary:
			role = "primary"
		case m.Secondary:
			role = "secondary"
		}
		if len(m.Tags) > 0 {
			var tags []string
			for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
				tags = append(tags, k+":"+m.Tags[k])
			}
			role += ", tags " + strings.Join(tags, ",")
		}
		out = append(out, m.Host+" "+role)
	}
	return strings.Join(out, "; ")
}

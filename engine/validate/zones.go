package validate

import (
	"fmt"
	"slices"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
)

// zones checks that the destination's zones agree with what the migration gives
// it: each source shard's zones on its twin (topology.Twins) and the source's zone
// key ranges. A destination range that overlaps a source range of the same
// namespace differently fails (Prepare could not assign the source's); a zone
// membership or a range the source does not have is a warning: the data is
// migrated, but the destination's balancer will place it by those zones once the
// migration ends.
func (c *checker) zones() {
	const id, title = IDZones, "Destination zones agree with the source's"
	if c.blocked(id, title, IDShardCount, IDDestMetadata, IDSourceMetadata) {
		return
	}
	src, dst := c.in.Source, c.in.Destination // zones read on both (critical to the metadata checks)
	twins, err := topology.Twins(src.Shards, dst.Shards)
	if err != nil {
		c.add(Finding{ID: id, Status: NotRun, Title: title, Detail: err.Error(), Fix: "Fix the shard count first, then validate again."})
		return
	}
	var conflicts, extra []string
	for _, d := range dst.Zones {
		overlapping := false
		for _, s := range src.Zones {
			if s.Namespace != d.Namespace || !overlap(s, d) {
				continue
			}
			overlapping = true
			if !sameRange(s, d) {
				conflicts = append(conflicts, fmt.Sprintf("%s [%s, %s) is in zone %s on the destination, the source has [%s, %s) in zone %s",
					d.Namespace, d.Min, d.Max, d.Zone, s.Min, s.Max, s.Zone))
			}
		}
		if !overlapping {
			extra = append(extra, fmt.Sprintf("range %s [%s, %s) in zone %s", d.Namespace, d.Min, d.Max, d.Zone))
		}
	}
	zonesOf := map[string][]string{}
	for _, s := range src.Shards {
		zonesOf[twins[s.Name]] = s.Zones
	}
	for _, d := range dst.Shards {
		for _, z := range d.Zones {
			if !slices.Contains(zonesOf[d.Name], z) {
				extra = append(extra, fmt.Sprintf("shard %s in zone %s", d.Name, z))
			}
		}
	}
	switch {
	case len(conflicts) > 0:
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the destination's zone ranges conflict with the source's: " + list(conflicts),
			Fix: "Remove those ranges from the destination (sh.removeRangeFromZone), then validate again: Shardlift gives the destination the source's ranges."})
	case len(extra) > 0:
		c.add(Finding{ID: id, Status: Warning, Title: title, Detail: "the destination has zones the source does not: " + list(extra),
			Fix: "Remove them from the destination (sh.removeRangeFromZone, sh.removeShardFromZone) unless you mean its balancer to place the migrated data by them."})
	default:
		n := 0
		for _, s := range src.Shards {
			n += len(s.Zones)
		}
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("%s and %s go to the twin shards",
			plural(n, "shard zone membership", "shard zone memberships"), plural(len(src.Zones), "zone range", "zone ranges"))})
	}
}

// overlap reports whether two ranges of one namespace share a key.
func overlap(a, b topology.ZoneRange) bool {
	return shardkey.CompareKeys(shardkey.Key(a.Min), shardkey.Key(b.Max)) < 0 && shardkey.CompareKeys(shardkey.Key(b.Min), shardkey.Key(a.Max)) < 0
}

func sameRange(a, b topology.ZoneRange) bool {
	return a.Zone == b.Zone && shardkey.CompareKeys(shardkey.Key(a.Min), shardkey.Key(b.Min)) == 0 &&
		shardkey.CompareKeys(shardkey.Key(a.Max), shardkey.Key(b.Max)) == 0
}

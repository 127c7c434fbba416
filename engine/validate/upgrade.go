package validate

import (
	"fmt"

	"github.com/shardlift/shardlift/engine/topology"
)

// MinUpgradeSource is the oldest source Shardlift migrates into a destination of a
// newer major version. Older sources migrate into their own major version only.
const MinUpgradeSource = "4.4"

// versionPair judges a source and a destination of different major versions: an
// upgrade from MinUpgradeSource or newer passes (IDVersionCrossing then names what
// cannot cross); a downgrade, or an upgrade from an older source, is refused.
func versionPair(id, title, src, dst string) Finding {
	f := Finding{ID: id, Title: title, Status: Failed}
	switch {
	case topology.OlderThan(dst, src):
		f.Detail = fmt.Sprintf("the source runs MongoDB %s but the destination runs %s: a downgrade, which Shardlift refuses", src, dst)
		f.Fix = fmt.Sprintf("Use a destination running MongoDB %s (the source's major version) or a newer one.", src)
	case topology.OlderThan(src, MinUpgradeSource):
		f.Detail = fmt.Sprintf("the source runs MongoDB %s but the destination runs %s: migrating into a newer version needs a source on %s or newer",
			src, dst, MinUpgradeSource)
		f.Fix = fmt.Sprintf("Use a destination running MongoDB %s (the source's major version), or upgrade the source to %s or newer first.", src, MinUpgradeSource)
	default:
		f.Status = Passed
		f.Detail = fmt.Sprintf("an upgrade from MongoDB %s to %s, which Shardlift supports; %q names what cannot cross", src, dst, crossingTitle)
	}
	return f
}

// majors are the major versions ("7.0") of a cluster's shard and config server
// members, each with the members that run it.
func majors(cl *topology.Cluster) map[string][]string {
	return distinct(mongods(cl), func(n node) string { return topology.MajorVersion(n.version) })
}

// upgrade reports whether the source and the destination each run one major
// version, the destination's the newer: a migration that is also an upgrade.
func (c *checker) upgrade() bool {
	src, dst := majors(c.in.Source), majors(c.in.Destination)
	return len(src) == 1 && len(dst) == 1 && topology.OlderThan(only(src), only(dst))
}

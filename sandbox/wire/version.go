package wire

import (
	"strconv"
	"strings"
)

// AtLeast reports whether the identity's server version is major.minor or newer: the
// shard fronts and the router pick the oplog and metadata forms of that version.
func (id Identity) AtLeast(major, minor int) bool {
	return versionAtLeast(id.Version, major, minor)
}

// FCVAtLeast reports whether the feature compatibility version is major.minor or
// newer. Some forms follow the FCV rather than the binary (a 3.6 server at FCV 3.4
// writes 3.4's forms until the upgrade completes).
func (id Identity) FCVAtLeast(major, minor int) bool {
	return versionAtLeast(id.FCV, major, minor)
}

func versionAtLeast(version string, major, minor int) bool {
	ma, mi := majorMinor(version)
	return ma > major || ma == major && mi >= minor
}

// majorMinor reads "7.0.14" or "3.4" as (7, 0) or (3, 4); unreadable parts are 0.
// (release.Of clamps to the supported releases; an FCV of 3.4 must stay 3.4 here.)
func majorMinor(version string) (int, int) {
	parts := strings.SplitN(version, ".", 3)
	ma, _ := strconv.Atoi(parts[0])
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(parts[1])
	}
	return ma, mi
}

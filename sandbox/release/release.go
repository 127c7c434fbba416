// Package release is what each MongoDB release a sandbox cluster can impersonate
// presents to its clients: its version strings and wire version, and which
// sharding-metadata formats and internal namespaces it has. Every part of the sandbox
// (wire, shard fronts, router, config server) consults a Release instead of testing
// version numbers itself, so that the differences between releases live here, each
// with the MongoDB source it comes from.
//
//	"--mongodb-version 4.4" ─► Parse ─► Release{4, 4} ─┬─ wire: hello, buildInfo
//	                                                   ├─ router: config.* formats
//	                                                   └─ shard: admin, config, local
package release

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Release is a MongoDB major release ("7.0").
type Release struct {
	Major, Minor int
}

// The releases a sandbox cluster can present: the ones the Go driver v1 speaks to.
var (
	V36 = Release{3, 6}
	V40 = Release{4, 0}
	V42 = Release{4, 2}
	V44 = Release{4, 4}
	V50 = Release{5, 0}
	V60 = Release{6, 0}
	V70 = Release{7, 0}
	V80 = Release{8, 0}
)

// Supported lists them, oldest first.
var Supported = []Release{V36, V40, V42, V44, V50, V60, V70, V80}

// Default is the release a sandbox presents unless told otherwise.
var Default = V70

// patch is the patch release each presents: the last of its series (or a recent one
// for those still maintained), so that every backported feature (hello in 3.6.21+,
// the split sessions collection in 4.2.7+) is there, as on a kept-up-to-date cluster.
var patch = map[Release]int{V36: 23, V40: 28, V42: 25, V44: 29, V50: 31, V60: 20, V70: 14, V80: 4}

// Parse reads "7.0" (or "7.0.14", whose patch is ignored). Anything but a supported
// release is refused with the list of those that are.
func Parse(s string) (Release, error) {
	r, ok := parse(s)
	if !ok || patch[r] == 0 {
		return Release{}, fmt.Errorf("MongoDB version %q is not one the sandbox presents: use one of %s", s, List())
	}
	return r, nil
}

// Of is the release a full version string ("6.0.12") belongs to, for identities that
// report a version of their own. A version outside the supported ones (tests report
// 3.4 to provoke a refusal) takes the formats of the nearest supported release.
func Of(version string) Release {
	r, ok := parse(version)
	switch {
	case !ok:
		return Default
	case !r.AtLeast(V36):
		return V36
	case r.AtLeast(Release{8, 1}):
		return V80
	case patch[r] != 0:
		return r
	}
	// A rapid release (5.1, 6.2...) has the formats of the release before it.
	for i := len(Supported) - 1; i >= 0; i-- {
		if r.AtLeast(Supported[i]) {
			return Supported[i]
		}
	}
	return V36
}

func parse(s string) (Release, bool) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Release{}, false
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return Release{}, false
		}
		nums[i] = n
	}
	return Release{nums[0], nums[1]}, true
}

// List names the supported releases: "3.6, 4.0, ..., 8.0".
func List() string {
	names := make([]string, len(Supported))
	for i, r := range Supported {
		names[i] = r.String()
	}
	return strings.Join(names, ", ")
}

// String is "major.minor", which is also the release's featureCompatibilityVersion.
func (r Release) String() string { return fmt.Sprintf("%d.%d", r.Major, r.Minor) }

// AtLeast reports whether r is o or newer.
func (r Release) AtLeast(o Release) bool {
	return r.Major > o.Major || (r.Major == o.Major && r.Minor >= o.Minor)
}

// Version is the full version a server of this release reports ("7.0.14").
func (r Release) Version() string { return fmt.Sprintf("%s.%d", r, patch[r]) }

// FCV is the featureCompatibilityVersion of a cluster created on this release.
func (r Release) FCV() string { return r.String() }

// GitVersion stands in for buildInfo's gitVersion: 40 hex digits, as git's commit ids
// are, derived from the version. It is not the commit MongoDB built the release from.
func GitVersion(version string) string {
	sum := sha1.Sum([]byte("shardlift-sandbox " + version))
	return hex.EncodeToString(sum[:])
}

// MaxWireVersion is the wire version a server of the given version reports. MongoDB's
// src/mongo/db/wire_version.h numbers the releases up to 5.0 (3.6 SUPPORTS_OP_MSG = 6,
// 4.0 = 7, 4.2 = 8, 4.4 = 9, 5.0 WIRE_VERSION_50 = 13); from 5.1 it is derived from
// the number of releases since 4.0 (src/mongo/util/version/releases.yml), which makes
// 6.0 = 17, 7.0 = 21 and 8.0 = 25 (mongodb/specifications wireversion-featurelist).
// 3.2 (4) and 3.4 (5) are known so that tests can impersonate them.
func MaxWireVersion(version string) int32 {
	r, ok := parse(version)
	if !ok {
		return MaxWireVersion(Default.Version())
	}
	switch {
	case r.Major == 3 && r.Minor == 2:
		return 4
	case r.Major == 3 && r.Minor == 4:
		return 5
	case r.Major == 3 && r.Minor == 6:
		return 6
	case r.Major == 4 && r.Minor == 0:
		return 7
	case r.Major == 4 && r.Minor == 2:
		return 8
	case r.Major == 4 && r.Minor == 4:
		return 9
	case r.Major == 5 && r.Minor == 0:
		return 13
	case r.AtLeast(Release{5, 1}):
		// One wire version per release since 5.1: 5.1..5.3, 6.0..6.3, 7.0..7.3, 8.0...
		n := 14
		for m := 5; m < r.Major; m++ {
			n += releasesIn(m)
		}
		if r.Major == 5 {
			return int32(n + r.Minor - 1)
		}
		return int32(n + r.Minor)
	}
	return 0
}

// releasesIn is how many releases (x.0 to x.3 or 5.1 to 5.3) a major version had
// after 5.0, for the wire version count.
func releasesIn(major int) int {
	if major == 5 {
		return 3 // 5.1, 5.2, 5.3
	}
	return 4 // x.0 .. x.3
}

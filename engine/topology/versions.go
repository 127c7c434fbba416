package topology

import (
	"strconv"
	"strings"
)

// ParseMajorMinor reads the major and minor numbers of a MongoDB version ("7",
// "0" of "7.0.12"); ok is false for anything else.
func ParseMajorMinor(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	// Decimal digits only: Atoi would also take signs ("+7").
	for _, p := range parts[:2] {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return 0, 0, false
		}
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// CompareVersions orders two versions by major.minor (-1, 0, +1); ok is false when
// either is not a version.
func CompareVersions(a, b string) (cmp int, ok bool) {
	aMaj, aMin, ok1 := ParseMajorMinor(a)
	bMaj, bMin, ok2 := ParseMajorMinor(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case aMaj != bMaj:
		return sign(aMaj - bMaj), true
	case aMin != bMin:
		return sign(aMin - bMin), true
	}
	return 0, true
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// OlderThan reports whether version's major.minor is below min's; false when either
// is not a version.
func OlderThan(version, min string) bool {
	c, ok := CompareVersions(version, min)
	return ok && c < 0
}

// NeedsOplogReplay reports whether a find on the oplog of a server of this version
// must say oplogReplay to seek to its {ts: {$gte: ...}} bound: 3.6 to 4.2 otherwise
// scan the oplog from its oldest entry (hours on a large oplog); 4.4 and later seek
// by themselves and ignore the flag. An unknown version gets the flag, which every
// server from 3.6 to 8.0 accepts on a find of local.oplog.rs.
func NeedsOplogReplay(version string) bool {
	c, ok := CompareVersions(version, "4.4")
	return !ok || c < 0
}

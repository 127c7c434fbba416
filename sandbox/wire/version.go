package wire

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

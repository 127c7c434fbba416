package validate

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzServerVersions: whatever version strings the servers report, the version check
// runs without panicking and passes only two parsable major.minor versions, at least
// MinMajor, that are the same major version or an upgrade from MinUpgradeSource or
// newer: a version it cannot read is a failed check that shows it, never a silent
// pass, and a downgrade never passes.
func FuzzServerVersions(f *testing.F) {
	for _, v := range [][2]string{
		{"7.0.14", "7.0.14"}, {"6.0.1", "7.0.2"}, {"3.4.1", "3.4.1"}, {"garbage", "garbage"}, {"", ""},
		{"7", "7"}, {"7.x.1", "7.x.1"}, {"-1.0", "-1.0"}, {"99999999999999999999.0", "99999999999999999999.0"},
		{"8.0.0-rc1", "8.0.0-rc1"}, {" 7.0", " 7.0"},
	} {
		f.Add(v[0], v[1])
	}
	f.Fuzz(func(t *testing.T, srcVersion, dstVersion string) {
		in := goodInput()
		setVersion(in.Source, srcVersion, "7.0")
		setVersion(in.Destination, dstVersion, "7.0")
		var got *Finding
		for _, f := range Check(in) {
			if f.ID == IDVersion {
				got = &f
				break
			}
		}
		if got == nil {
			t.Fatal("no version finding")
		}
		if got.Status != Passed {
			if got.Detail == "" || got.Fix == "" {
				t.Fatalf("failed version check without detail or fix: %+v", got)
			}
			return
		}
		for _, v := range []string{srcVersion, dstVersion} {
			maj, min, ok := strictMajorMinor(v)
			if !ok {
				t.Fatalf("versions %q and %q passed, but %q is not a MongoDB version: %+v", srcVersion, dstVersion, v, got)
			}
			if maj < 3 || maj == 3 && min < 6 {
				t.Fatalf("version %q passed, older than %s", v, MinMajor)
			}
		}
		a1, a2, _ := strictMajorMinor(srcVersion)
		b1, b2, _ := strictMajorMinor(dstVersion)
		switch {
		case a1 == b1 && a2 == b2:
		case b1 < a1 || b1 == a1 && b2 < a2:
			t.Fatalf("the downgrade from %q to %q passed", srcVersion, dstVersion)
		case a1 < 4 || a1 == 4 && a2 < 4:
			t.Fatalf("the upgrade from %q (older than %s) to %q passed", srcVersion, MinUpgradeSource, dstVersion)
		}
	})
}

// strictMajorMinor reads "major.minor[.rest]" with non-negative decimal numbers only.
func strictMajorMinor(v string) (int, int, bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	var n [2]int
	for i, p := range parts[:2] {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return 0, 0, false
		}
		x, err := strconv.Atoi(p)
		if err != nil {
			return 0, 0, false
		}
		n[i] = x
	}
	return n[0], n[1], true
}

// A server that reports a version Shardlift cannot read ("garbage" on both sides used
// to pass as "both run MongoDB garbage") is a failed check naming it.
func TestUnreadableServerVersionIsRefusedNotPassed(t *testing.T) {
	in := goodInput()
	setVersion(in.Source, "garbage", "7.0")
	setVersion(in.Destination, "garbage", "7.0")
	expect(t, Check(in), IDVersion, Failed, `"garbage"`, "not a MongoDB version")
}

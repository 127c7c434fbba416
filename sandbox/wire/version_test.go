package wire

import "testing"

func TestIdentityComparesMajorAndMinor(t *testing.T) {
	id := Identity{Version: "4.2.25", FCV: "4.0"}
	for _, c := range []struct {
		major, minor int
		version, fcv bool
	}{
		{3, 6, true, true},
		{4, 0, true, true},
		{4, 2, true, false},
		{4, 4, false, false},
		{5, 0, false, false},
	} {
		if got := id.AtLeast(c.major, c.minor); got != c.version {
			t.Errorf("AtLeast(%d, %d) = %v, want %v", c.major, c.minor, got, c.version)
		}
		if got := id.FCVAtLeast(c.major, c.minor); got != c.fcv {
			t.Errorf("FCVAtLeast(%d, %d) = %v, want %v", c.major, c.minor, got, c.fcv)
		}
	}
	if !(Identity{Version: "10.0.1"}).AtLeast(8, 0) {
		t.Error("10.0 is not at least 8.0")
	}
}

package topology

import "testing"

func TestVersionsCompareByMajorAndMinor(t *testing.T) {
	for _, c := range []struct {
		a, b string
		cmp  int
		ok   bool
	}{
		{"4.4.29", "4.4", 0, true},
		{"4.2.24", "4.4.0", -1, true},
		{"10.0.1", "8.0.4", 1, true},
		{"6.3.1", "6.2", 1, true},
		{"7.0.0-rc1", "7.0", 0, true},
		{"garbage", "7.0", 0, false},
		{"+7.0", "7.0", 0, false},
		{"7", "7.0", 0, false},
	} {
		cmp, ok := CompareVersions(c.a, c.b)
		if cmp != c.cmp || ok != c.ok {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d, %v", c.a, c.b, cmp, ok, c.cmp, c.ok)
		}
	}
	if OlderThan("garbage", "3.6") || !OlderThan("3.4.24", "3.6") || OlderThan("3.6.0", "3.6") {
		t.Error("OlderThan")
	}
	for v, want := range map[string]bool{"4.2.24": false, "4.4.0": true, "8.0.4": true, "": false, "garbage": false} {
		if got := SortsOnDisk(v); got != want {
			t.Errorf("SortsOnDisk(%q) = %v, want %v", v, got, want)
		}
	}
	for v, want := range map[string]bool{"3.6.23": true, "4.0.28": true, "4.2.24": true, "4.4.0": false, "8.0.4": false, "": true} {
		if got := NeedsOplogReplay(v); got != want {
			t.Errorf("NeedsOplogReplay(%q) = %v, want %v", v, got, want)
		}
	}
}

package release

import (
	"strings"
	"testing"
)

func TestParseAcceptsTheSupportedReleasesOnly(t *testing.T) {
	for _, s := range []string{"3.6", "4.0", "4.2", "4.4", "5.0", "6.0", "7.0", "8.0", "7.0.14"} {
		if _, err := Parse(s); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "3.4", "5.1", "8.2", "7", "seven", "7.0.x", "9.0"} {
		_, err := Parse(s)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", s)
			continue
		}
		if !strings.Contains(err.Error(), "3.6, 4.0, 4.2, 4.4, 5.0, 6.0, 7.0, 8.0") {
			t.Errorf("Parse(%q): %v does not list the valid releases", s, err)
		}
	}
}

// The wire versions MongoDB's src/mongo/db/wire_version.h and the drivers'
// wireversion-featurelist give for each server release.
func TestMaxWireVersionIsMongoDBs(t *testing.T) {
	want := map[string]int32{
		"3.2.22": 4, "3.4.24": 5, "3.6.23": 6, "4.0.28": 7, "4.2.25": 8, "4.4.29": 9, "5.0.31": 13,
		"5.1.0": 14, "5.3.1": 16, "6.0.20": 17, "6.1.0": 18, "6.3.2": 20, "7.0.14": 21, "7.1.0": 22, "7.3.4": 24, "8.0.4": 25,
	}
	for v, w := range want {
		if got := MaxWireVersion(v); got != w {
			t.Errorf("MaxWireVersion(%s) = %d, want %d", v, got, w)
		}
	}
}

func TestOfMapsAnyVersionToTheFormatsItShows(t *testing.T) {
	for v, want := range map[string]Release{
		"7.0.14": V70, "6.2.1": V60, "3.4.24": V36, "8.3.0": V80, "garbage": Default, "5.0.31": V50,
	} {
		if got := Of(v); got != want {
			t.Errorf("Of(%q) = %s, want %s", v, got, want)
		}
	}
	for _, r := range Supported {
		if Of(r.Version()) != r || !strings.HasPrefix(r.Version(), r.String()+".") {
			t.Errorf("%s's version %s does not map back", r, r.Version())
		}
	}
}

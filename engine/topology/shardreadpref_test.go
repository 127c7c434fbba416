package topology

import (
	"strings"
	"testing"
)

func TestShardReadPreferenceOverridesModeAndTagsKeepsTheStalenessBound(t *testing.T) {
	e := Endpoint{URI: "mongodb://m1:27017/?readPreference=secondary&readPreferenceTags=dc:east&maxStalenessSeconds=120",
		ShardReadPreferences: map[string]string{"s1": "primary", "s2": "nearest;dc:west,rack:2;"}}
	r, err := e.ReadsByShard()
	if err != nil {
		t.Fatal(err)
	}
	for shard, want := range map[string]string{
		"s0": "secondary (tags dc:east; max staleness 2m0s)",
		"s1": "primary",
		"s2": "nearest (tags dc:west,rack:2 or ; max staleness 2m0s)",
	} {
		if got := r.Of(shard).String(); got != want {
			t.Errorf("shard %s reads %q, want %q", shard, got, want)
		}
	}
	if got := r.String(); got != "secondary (tags dc:east; max staleness 2m0s); shard s1: primary; shard s2: nearest (tags dc:west,rack:2 or ; max staleness 2m0s)" {
		t.Errorf("String %q", got)
	}
	if err := r.Known([]string{"s0", "s1"}); err == nil || !strings.Contains(err.Error(), "shard s2, which the source does not have (its shards: s0, s1): name one of its shards") {
		t.Errorf("s2 unknown: %v", err)
	}
	if err := r.Known([]string{"s0", "s1", "s2"}); err != nil {
		t.Errorf("all known: %v", err)
	}
	// A default of primary still gives a shard reading secondaries the URI's bound.
	e.ReadPreference = "primary"
	if r, err = e.ReadsByShard(); err != nil || r.Of("s2").MaxStaleness == 0 || r.Of("s0").String() != "primary" {
		t.Errorf("default primary: %v, %v", r, err)
	}
}

func TestShardReadPreferenceFlagValuesParsedOrRefusedSayingWhatToWrite(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want map[string]string // nil: refused
		say  string
	}{
		{in: []string{"s0=secondary"}, want: map[string]string{"s0": "secondary"}},
		{in: []string{"s0=SECONDARYPREFERRED;dc:east, rack:1;;", "s1=primary"},
			want: map[string]string{"s0": "secondaryPreferred;dc:east,rack:1;;", "s1": "primary"}},
		{in: []string{"s0=secondary", "s0=Secondary"}, want: map[string]string{"s0": "secondary"}},
		{in: []string{"s0=secondary", "s0=primary"}, say: "shard s0 is given twice, as secondary and primary"},
		{in: []string{"s0"}, say: `"s0" is not SHARD=MODE[;NAME:VALUE`},
		{in: []string{"=secondary"}, say: "is not SHARD="},
		{in: []string{"s0="}, say: "shard s0: \"\" names no mode: write MODE["},
		{in: []string{"s0=fastest"}, say: `shard s0: read preference "fastest": use one of primary, primaryPreferred, secondary, secondaryPreferred, nearest`},
		{in: []string{"s0=secondary;dc"}, say: `shard s0: tag "dc" in "secondary;dc" is not NAME:VALUE`},
		{in: []string{"s0=primary;dc:east"}, say: "mode primary reads the primary whatever its tags; drop the tags or choose another mode"},
	} {
		m := map[string]string{}
		var err error
		for _, v := range tc.in {
			if err = AddShardReadPreference(m, v); err != nil {
				break
			}
		}
		switch {
		case tc.want == nil && (err == nil || !strings.Contains(err.Error(), tc.say)):
			t.Errorf("%q: %v, want an error saying %q", tc.in, err, tc.say)
		case tc.want != nil && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != nil && !equalMaps(m, tc.want):
			t.Errorf("%q: %v, want %v", tc.in, m, tc.want)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

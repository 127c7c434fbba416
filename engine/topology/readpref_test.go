package topology

import (
	"strings"
	"testing"
	"time"
)

func TestReadPreferenceComesFromTheFlagElseTheURIElseNearest(t *testing.T) {
	for _, tc := range []struct {
		uri, flag, want string
	}{
		{"mongodb://m1:27017/", "", "nearest"},
		{"mongodb://m1:27017/?readPreference=secondary", "", "secondary"},
		{"mongodb://m1:27017/?readPreference=secondary&readPreferenceTags=dc:east,rack:1&readPreferenceTags=&maxStalenessSeconds=120", "",
			"secondary (tags dc:east,rack:1 or ; max staleness 2m0s)"},
		{"mongodb://m1:27017/?readPreference=secondary&readPreferenceTags=dc:east", "nearest", "nearest (tags dc:east)"},
		// Tags and a staleness bound mean nothing to the primary.
		{"mongodb://m1:27017/?readPreference=secondary&readPreferenceTags=dc:east&maxStalenessSeconds=120", "primary", "primary"},
	} {
		rp, err := Endpoint{URI: tc.uri, ReadPreference: tc.flag}.Reads()
		if err != nil || rp.String() != tc.want {
			t.Errorf("%s with %q: %q, %v; want %q", tc.uri, tc.flag, rp, err, tc.want)
		}
	}
	rp, err := Endpoint{Hosts: []string{"m1:27017"}, ReadPreference: "secondaryPreferred"}.Reads()
	if err != nil || rp.Mode != "secondaryPreferred" {
		t.Errorf("host list: %v, %v", rp, err)
	}
}

func TestReadPreferenceRefusedSaysWhatToGive(t *testing.T) {
	if m, err := ParseReadPreferenceMode("SECONDARY"); err != nil || m != "secondary" {
		t.Errorf("SECONDARY: %q, %v", m, err)
	}
	for _, tc := range []struct {
		e    Endpoint
		want string
	}{
		{Endpoint{Hosts: []string{"m1"}, ReadPreference: "fastest"}, "use one of primary, primaryPreferred, secondary, secondaryPreferred, nearest"},
		{Endpoint{URI: "mongodb://m1/?readPreference=secondary&maxStalenessSeconds=30"}, "needs at least 90"},
	} {
		_, err := tc.e.Reads()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.e, err, tc.want)
		}
	}
}

func TestEveryConnectionReadsThePrimaryWhateverTheURISays(t *testing.T) {
	opts, err := Endpoint{URI: "mongodb://m1:27017,m2:27017/?replicaSet=rs&readPreference=secondary&maxStalenessSeconds=120"}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if mode := opts.ReadPreference.Mode().String(); mode != "primary" {
		t.Errorf("the client reads %s", mode)
	}
	if rp := (ReadPreference{Mode: "secondary", MaxStaleness: 2 * time.Minute}).Driver(); rp.Mode().String() != "secondary" {
		t.Errorf("driver preference %v", rp)
	}
}

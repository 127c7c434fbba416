package app

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/store"
)

func TestShardReadPreferenceFlagsParsed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want map[string]string // shard -> its preference as the engine reads it
	}{
		{[]string{"--shard-read-preference", "s1=primary"},
			map[string]string{"s0": "nearest", "s1": "primary"}},
		{[]string{"--source-read-preference", "secondary", "--shard-read-preference", "s1=primary", "--shard-read-preference", "s2=Nearest;dc:west"},
			map[string]string{"s0": "secondary", "s1": "primary", "s2": "nearest (tags dc:west)"}},
		{nil, map[string]string{"s0": "nearest", "s1": "nearest"}},
	} {
		f := newFlags("validate", "", "")
		r := addReadPreferenceFlags(f)
		if err := f.Parse(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		src, err := r.withReadPreference(topology.Endpoint{URI: "mongodb://m:27017/"})
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		reads, err := src.ReadsByShard()
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		for shard, want := range tc.want {
			if got := reads.Of(shard).String(); got != want {
				t.Errorf("%q: shard %s reads %q, want %q", tc.args, shard, got, want)
			}
		}
	}
}

func TestShardReadPreferenceFlagRefusedSayingWhatToWrite(t *testing.T) {
	for _, tc := range []struct {
		value string
		say   []string
	}{
		{"s1", []string{"-shard-read-preference", `"s1" is not SHARD=MODE[;NAME:VALUE`}},
		{"s1=fastest", []string{"-shard-read-preference", "shard s1", `"fastest": use one of primary, primaryPreferred, secondary, secondaryPreferred, nearest`}},
		{"s1=secondary;dc", []string{"-shard-read-preference", `tag "dc"`, "is not NAME:VALUE"}},
		{"s1=primary;dc:east", []string{"-shard-read-preference", "drop the tags or choose another mode"}},
	} {
		code, out, errOut := runCLI(t, "validate", "--source", "a:1", "--destination", "mongodb://b:1", "--shard-read-preference", tc.value)
		if code != exitUsage || out != "" {
			t.Errorf("%s: exit %d stdout %q; want 2 and nothing on stdout", tc.value, code, out)
		}
		for _, s := range tc.say {
			if !strings.Contains(errOut, s) {
				t.Errorf("%s: stderr %q does not say %q", tc.value, errOut, s)
			}
		}
	}
	// The URI's staleness bound is checked with the shard's own mode too.
	code, _, errOut := runCLI(t, "validate", "--source", "mongodb://a:1/?maxStalenessSeconds=30", "--destination", "mongodb://b:1",
		"--source-read-preference", "primary", "--shard-read-preference", "s1=secondary")
	if code != exitUsage || !strings.Contains(errOut, "--shard-read-preference: shard s1: maxStalenessSeconds=30") {
		t.Errorf("exit %d: %q; want the bound refused for shard s1", code, errOut)
	}
}

func TestValidateHelpListsTheShardReadPreferenceFlag(t *testing.T) {
	_, out, _ := runCLI(t, "validate", "--help")
	if !strings.Contains(out, "--shard-read-preference SHARD=MODE[;TAGS]") {
		t.Errorf("help does not list --shard-read-preference:\n%s", out)
	}
}

// A resumed `migrate` reads each shard as its first run chose, unless
// --shard-read-preference chooses again, which the next resume keeps.
func TestMigrateResumeReadsEachShardAsTheFirstRunChose(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, dst := fakeCluster("a", 1), fakeCluster("b", 2)
	first := map[string]string{"s1": "primary", "s2": "secondary;dc:west"}
	src.endpoint.ShardReadPreferences = first
	src.settings = checkpoints.ConnSettings(src.endpoint, "")
	id, _, err := findOrCreateMigration(st, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	e, err := resumedReadPreference(st, id, topology.Endpoint{URI: "mongodb://a:27017/"})
	if err != nil || !maps.Equal(e.ShardReadPreferences, first) {
		t.Fatalf("resumed without the flag: %v, %v; want %v", e.ShardReadPreferences, err, first)
	}
	again := map[string]string{"s1": "secondary"}
	if e, err = resumedReadPreference(st, id, topology.Endpoint{URI: "mongodb://a:27017/", ShardReadPreferences: again}); err != nil || !maps.Equal(e.ShardReadPreferences, again) {
		t.Fatalf("resumed with --shard-read-preference s1=secondary: %v, %v", e.ShardReadPreferences, err)
	}
	if e, err = resumedReadPreference(st, id, topology.Endpoint{URI: "mongodb://a:27017/"}); err != nil || !maps.Equal(e.ShardReadPreferences, again) {
		t.Fatalf("the next resume: %v, %v; want %v kept", e.ShardReadPreferences, err, again)
	}
}

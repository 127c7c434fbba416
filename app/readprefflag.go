package app

import (
	"fmt"
	"strings"

	"github.com/shardlift/shardlift/engine/topology"
)

// readPreferenceUsage is --source-read-preference's help.
var readPreferenceUsage = "which members of each source shard the copy and the oplog tail read, `MODE`: " +
	strings.Join(topology.ReadPreferenceModes, ", ") + " (default: the source URI's readPreference, else " +
	topology.DefaultReadPreference + "); every read is majority-committed whichever member serves it"

// shardReadPreferenceUsage is --shard-read-preference's help.
var shardReadPreferenceUsage = "read source shard SHARD otherwise than --source-read-preference says, `SHARD=MODE[;TAGS]`: " +
	"the mode, then any tag sets (NAME:VALUE,... each, as readPreferenceTags), e.g. s1=primary or s2=secondary;dc:west " +
	"(repeat for each shard)"

// readPreferenceFlags are --source-read-preference and repeated --shard-read-preference.
type readPreferenceFlags struct {
	mode   *string
	shards shardReadPreferenceFlag
}

// addReadPreferenceFlags adds --source-read-preference and --shard-read-preference.
func addReadPreferenceFlags(f *flags) *readPreferenceFlags {
	r := &readPreferenceFlags{mode: f.String("source-read-preference", "", readPreferenceUsage)}
	f.Var(&r.shards, "shard-read-preference", shardReadPreferenceUsage)
	return r
}

// shardReadPreferenceFlag collects --shard-read-preference values, shard name -> spec.
type shardReadPreferenceFlag struct{ m map[string]string }

func (f *shardReadPreferenceFlag) String() string { return "" }
func (f *shardReadPreferenceFlag) Set(v string) error {
	if f.m == nil {
		f.m = map[string]string{}
	}
	return topology.AddShardReadPreference(f.m, v)
}

// withReadPreference sets src's read preference mode from the flag ("" leaves the
// URI's) and each shard's own, and checks the whole preference (modes, tags, the
// URI's tags and staleness).
func (r *readPreferenceFlags) withReadPreference(src topology.Endpoint) (topology.Endpoint, error) {
	if mode := *r.mode; mode != "" {
		m, err := topology.ParseReadPreferenceMode(mode)
		if err != nil {
			return src, fmt.Errorf("--source-read-preference: %v", err)
		}
		src.ReadPreference = m
	}
	if _, err := src.Reads(); err != nil {
		return src, fmt.Errorf("--source: %v", err)
	}
	if len(r.shards.m) > 0 {
		src.ShardReadPreferences = r.shards.m
		if _, err := src.ReadsByShard(); err != nil {
			return src, fmt.Errorf("--shard-read-preference: %v", err)
		}
	}
	return src, nil
}

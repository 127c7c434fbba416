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

// addReadPreferenceFlag adds --source-read-preference.
func addReadPreferenceFlag(f *flags) *string {
	return f.String("source-read-preference", "", readPreferenceUsage)
}

// withReadPreference sets src's read preference mode from the flag ("" leaves the
// URI's) and checks the whole preference (mode, the URI's tags and staleness).
func withReadPreference(src topology.Endpoint, mode string) (topology.Endpoint, error) {
	if mode != "" {
		m, err := topology.ParseReadPreferenceMode(mode)
		if err != nil {
			return src, fmt.Errorf("--source-read-preference: %v", err)
		}
		src.ReadPreference = m
	}
	if _, err := src.Reads(); err != nil {
		return src, fmt.Errorf("--source: %v", err)
	}
	return src, nil
}

package topology

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A DBA may read some source shards otherwise than the rest (docs/correctness.md,
// "Read preference"): a shard whose secondaries are in another region read from its
// primary, one under heavy load from its secondaries only.

// ShardReadPreferenceFormat is how a shard's own read preference is written, after
// SHARD= on the command line: the mode, then any tag sets in order of preference,
// each NAME:VALUE pairs as readPreferenceTags writes them (an empty set matches any
// member).
const ShardReadPreferenceFormat = "MODE[;NAME:VALUE,...[;...]], e.g. secondary;dc:west"

// ParseShardReadPreference reads one shard's preference (ShardReadPreferenceFormat):
// the mode in any case, and its tag sets. Tags with mode primary are refused: the
// primary is read whatever its tags.
func ParseShardReadPreference(spec string) (ReadPreference, error) {
	parts := strings.Split(spec, ";")
	if strings.TrimSpace(parts[0]) == "" {
		return ReadPreference{}, fmt.Errorf("%q names no mode: write %s", spec, ShardReadPreferenceFormat)
	}
	mode, err := ParseReadPreferenceMode(parts[0])
	if err != nil {
		return ReadPreference{}, err
	}
	rp := ReadPreference{Mode: mode}
	for _, set := range parts[1:] {
		tags := map[string]string{}
		for pair := range strings.SplitSeq(set, ",") {
			if strings.TrimSpace(pair) == "" && strings.TrimSpace(set) == "" {
				break // an empty set: any member
			}
			name, value, ok := strings.Cut(pair, ":")
			name, value = strings.TrimSpace(name), strings.TrimSpace(value)
			if !ok || name == "" || value == "" {
				return ReadPreference{}, fmt.Errorf("tag %q in %q is not NAME:VALUE: write %s", pair, spec, ShardReadPreferenceFormat)
			}
			tags[name] = value
		}
		rp.Tags = append(rp.Tags, tags)
	}
	if mode == "primary" && len(rp.Tags) > 0 {
		return ReadPreference{}, fmt.Errorf("%q: mode primary reads the primary whatever its tags; drop the tags or choose another mode", spec)
	}
	return rp, nil
}

// Spec is the preference's mode and tag sets as ShardReadPreferenceFormat writes them.
func (rp ReadPreference) Spec() string {
	parts := []string{rp.Mode}
	for _, set := range tagSets(rp.Tags) {
		var pairs []string
		for _, t := range set {
			pairs = append(pairs, t.Name+":"+t.Value)
		}
		parts = append(parts, strings.Join(pairs, ","))
	}
	return strings.Join(parts, ";")
}

// AddShardReadPreference adds SHARD=SPEC to m (shard name -> Spec), the spec checked
// and written as Spec writes it. A shard given twice differently is an error.
func AddShardReadPreference(m map[string]string, v string) error {
	shard, spec, ok := strings.Cut(v, "=")
	shard = strings.TrimSpace(shard)
	if !ok || shard == "" {
		return fmt.Errorf("%q is not SHARD=%s", v, ShardReadPreferenceFormat)
	}
	rp, err := ParseShardReadPreference(spec)
	if err != nil {
		return fmt.Errorf("shard %s: %v", shard, err)
	}
	if prev, dup := m[shard]; dup && prev != rp.Spec() {
		return fmt.Errorf("shard %s is given twice, as %s and %s", shard, prev, rp.Spec())
	}
	m[shard] = rp.Spec()
	return nil
}

// ShardReads are the read preferences of a source's shards: Default for each shard
// but those in Shards.
type ShardReads struct {
	Default ReadPreference
	Shards  map[string]ReadPreference
}

// Of is the read preference of the shard.
func (r ShardReads) Of(shard string) ReadPreference {
	if rp, ok := r.Shards[shard]; ok {
		return rp
	}
	return r.Default
}

// String is the default then each shard's own: "nearest; shard s1: primary".
func (r ShardReads) String() string {
	s := r.Default.String()
	for _, name := range slices.Sorted(maps.Keys(r.Shards)) {
		s += "; shard " + name + ": " + r.Shards[name].String()
	}
	return s
}

// Known checks that every shard given its own preference is among shards (the
// source's): one that is not is a typo or a shard removed since, and its reads
// would silently follow the default.
func (r ShardReads) Known(shards []string) error {
	var unknown []string
	for _, name := range slices.Sorted(maps.Keys(r.Shards)) {
		if !slices.Contains(shards, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return fmt.Errorf("a read preference is given for shard %s, which the source does not have (its shards: %s): name one of its shards, or leave the shard out",
		strings.Join(unknown, ", "), strings.Join(shards, ", "))
}

// ReadsByShard is the endpoint's read preference (Reads) and each shard's own
// (ShardReadPreferences) on top of it: the shard's mode and tag sets, the
// connection string's staleness bound, none of either for mode primary.
func (e Endpoint) ReadsByShard() (ShardReads, error) {
	def, err := e.Reads()
	if err != nil {
		return ShardReads{}, err
	}
	r := ShardReads{Default: def}
	stale := def.MaxStaleness // the connection string's, which Reads drops for mode primary
	if e.URI != "" {
		if cs, err := ParseURI(e.URI); err == nil {
			stale = cs.MaxStaleness
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.ShardReadPreferences)) {
		own, err := ParseShardReadPreference(e.ShardReadPreferences[name])
		if err != nil {
			return ShardReads{}, fmt.Errorf("shard %s: %v", name, err)
		}
		rp := ReadPreference{Mode: own.Mode, Tags: own.Tags, MaxStaleness: stale}
		if rp.Mode == "primary" {
			rp.MaxStaleness = 0
		}
		if _, err := rp.driver(); err != nil {
			return ShardReads{}, fmt.Errorf("shard %s: %v", name, err)
		}
		if r.Shards == nil {
			r.Shards = map[string]ReadPreference{}
		}
		r.Shards[name] = rp
	}
	return r, nil
}

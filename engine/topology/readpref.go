package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/tag"
)

// Which members of each source shard the copy and the oplog tail read
// (docs/correctness.md, "Read preference"). Every other read (T0, the majority
// commit point, config.transactions, the newest entry, the metadata, verification)
// goes to the primary or through the mongos, whatever the preference.

// ReadPreferenceModes are the modes, as MongoDB spells them.
var ReadPreferenceModes = []string{"primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"}

// DefaultReadPreference is the mode when neither the connection string nor the
// user chose one: the member with the lowest latency, primary or secondary. Every
// read Shardlift makes of a member is majority-committed (docs/correctness.md), so
// which member serves it changes its speed, never what it returns.
const DefaultReadPreference = "nearest"

// minMaxStaleness is the smallest maxStalenessSeconds MongoDB's drivers accept.
const minMaxStaleness = 90 * time.Second

// ReadPreference says which members of a source shard the copy and the tail read.
type ReadPreference struct {
	// Mode is one of ReadPreferenceModes.
	Mode string
	// Tags are tag sets in order of preference (readPreferenceTags): the first set
	// some eligible member matches chooses the members; an empty set matches any.
	Tags []map[string]string
	// MaxStaleness leaves out the secondaries further behind the primary than this
	// (maxStalenessSeconds); zero: no limit.
	MaxStaleness time.Duration
}

// ParseReadPreferenceMode returns the mode s names, in any case; "" is the default.
func ParseReadPreferenceMode(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultReadPreference, nil
	}
	for _, m := range ReadPreferenceModes {
		if strings.EqualFold(s, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("read preference %q: use one of %s", s, strings.Join(ReadPreferenceModes, ", "))
}

// Reads is the read preference of a source endpoint: its ReadPreference mode (from a
// flag or the form) else the connection string's readPreference, else the default,
// with the connection string's readPreferenceTags and maxStalenessSeconds. Tags and
// a staleness bound mean nothing to the primary: with mode primary they are dropped.
func (e Endpoint) Reads() (ReadPreference, error) {
	mode := e.ReadPreference
	var rp ReadPreference
	if e.URI != "" {
		cs, err := ParseURI(e.URI)
		if err != nil {
			return rp, err
		}
		rp.Mode, rp.Tags, rp.MaxStaleness = cs.ReadPreference, cs.ReadPreferenceTagSets, cs.MaxStaleness
	}
	if mode != "" {
		rp.Mode = mode
	}
	var err error
	if rp.Mode, err = ParseReadPreferenceMode(rp.Mode); err != nil {
		return ReadPreference{}, err
	}
	if rp.Mode == "primary" {
		rp.Tags, rp.MaxStaleness = nil, 0
	}
	if _, err := rp.driver(); err != nil {
		return ReadPreference{}, err
	}
	return rp, nil
}

// driver is the driver's read preference.
func (rp ReadPreference) driver() (*readpref.ReadPref, error) {
	mode, err := readpref.ModeFromString(rp.Mode)
	if err != nil {
		return nil, fmt.Errorf("read preference %q: use one of %s", rp.Mode, strings.Join(ReadPreferenceModes, ", "))
	}
	var opts []readpref.Option
	if len(rp.Tags) > 0 {
		opts = append(opts, readpref.WithTagSets(tagSets(rp.Tags)...))
	}
	if rp.MaxStaleness > 0 {
		if rp.MaxStaleness < minMaxStaleness {
			return nil, fmt.Errorf("maxStalenessSeconds=%d: MongoDB needs at least %d; raise it or leave it out", int(rp.MaxStaleness.Seconds()), int(minMaxStaleness.Seconds()))
		}
		opts = append(opts, readpref.WithMaxStaleness(rp.MaxStaleness))
	}
	p, err := readpref.New(mode, opts...)
	if err != nil {
		return nil, fmt.Errorf("read preference %s: %w", rp, err)
	}
	return p, nil
}

func tagSets(sets []map[string]string) []tag.Set {
	out := make([]tag.Set, len(sets))
	for i, set := range sets {
		keys := make([]string, 0, len(set))
		for k := range set {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out[i] = append(out[i], tag.Tag{Name: k, Value: set[k]})
		}
	}
	return out
}

// Driver is the driver's read preference (the mode alone when it is invalid, which
// ReadPreferenceOf has refused already).
func (rp ReadPreference) Driver() *readpref.ReadPref {
	p, err := rp.driver()
	if err != nil {
		return readpref.Primary()
	}
	return p
}

// IsPrimary says the preference reads the primary only.
func (rp ReadPreference) IsPrimary() bool { return rp.Mode == "" || rp.Mode == "primary" }

// String is the preference as a DBA reads it: "secondary (tags dc:east; max staleness 2m0s)".
func (rp ReadPreference) String() string {
	s := rp.Mode
	var more []string
	if len(rp.Tags) > 0 {
		var sets []string
		for _, set := range tagSets(rp.Tags) {
			var pairs []string
			for _, t := range set {
				pairs = append(pairs, t.Name+":"+t.Value) // as readPreferenceTags writes them
			}
			sets = append(sets, strings.Join(pairs, ","))
		}
		more = append(more, "tags "+strings.Join(sets, " or "))
	}
	if rp.MaxStaleness > 0 {
		more = append(more, "max staleness "+rp.MaxStaleness.String())
	}
	if len(more) > 0 {
		s += " (" + strings.Join(more, "; ") + ")"
	}
	return s
}

// ErrNoEligibleMember: no member of the shard is one the read preference reads.
var ErrNoEligibleMember = errors.New("no member of the shard matches the read preference")

// SelectMember returns the address (hello's me) of a member the preference reads,
// chosen by the driver's server selection on client (a replica set connection to
// the shard): the one the copy's reads would go to now.
func SelectMember(ctx context.Context, client *mongo.Client, rp ReadPreference) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	hello, err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}},
		options.RunCmd().SetReadPreference(rp.Driver())).Raw()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err) || strings.Contains(err.Error(), "server selection") {
			return "", fmt.Errorf("%w (%s): %v", ErrNoEligibleMember, rp, err)
		}
		return "", err
	}
	me := str(hello, "me")
	if me == "" {
		return "", errors.New("the shard's member does not say which it is (hello has no me): it is not a replica set member")
	}
	return me, nil
}

// MemberCommitPoint is the majority commit point as the member client reaches
// (directly) sees it, after checking that the member is still one rp reads: a
// member that has become primary (mode secondary), stepped down (mode primary) or
// is neither primary nor secondary (rolling back, recovering) is ErrMemberChanged.
// A member's own commit point is never past its newest entry nor on a branch of
// history it holds but the set does not (docs/correctness.md).
func MemberCommitPoint(ctx context.Context, client *mongo.Client, rp ReadPreference) (ts primitive.Timestamp, term int64, err error) {
	hello, err := helloOf(ctx, client, DefaultTimeout)
	if err != nil {
		return primitive.Timestamp{}, 0, fmt.Errorf("read the majority commit point (hello): %w", err)
	}
	if !rp.reads(hello) {
		return primitive.Timestamp{}, 0, fmt.Errorf("%w: %s is %s now, and the read preference is %s", ErrMemberChanged, str(hello, "me"), memberState(hello), rp.Mode)
	}
	return commitPointOf(hello, func() (bson.Raw, error) {
		return runCommand(ctx, client, DefaultTimeout, "admin", bson.D{{Key: "replSetGetStatus", Value: 1}})
	})
}

// ErrMemberChanged: the member being read is no longer one the read preference reads.
var ErrMemberChanged = errors.New("the member being read changed role")

func memberState(hello bson.Raw) string {
	switch {
	case isWritablePrimary(hello):
		return "the primary"
	case hello.Lookup("secondary").Boolean():
		return "a secondary"
	}
	return "neither primary nor secondary"
}

func isWritablePrimary(hello bson.Raw) bool {
	if v, ok := hello.Lookup("isWritablePrimary").BooleanOK(); ok {
		return v
	}
	return hello.Lookup("ismaster").Boolean()
}

// reads says whether the member whose hello this is may be read: the primary for
// mode primary, a secondary for mode secondary, either for the others.
func (rp ReadPreference) reads(hello bson.Raw) bool {
	primary, secondary := isWritablePrimary(hello), hello.Lookup("secondary").Boolean()
	switch rp.Mode {
	case "", "primary":
		return primary
	case "secondary":
		return secondary
	}
	return primary || secondary
}

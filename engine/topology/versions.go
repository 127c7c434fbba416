package topology

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// ServerVersion remembers the version of the server behind a client: buildInfo's
// ("7.0.12"), read on first use. Safe for concurrent use.
type ServerVersion struct {
	client  *mongo.Client
	mu      sync.Mutex
	version string
}

// NewServerVersion reads the version of the server behind client when first asked.
func NewServerVersion(client *mongo.Client) *ServerVersion {
	return &ServerVersion{client: client}
}

// Get returns the version, reading it if it is not known yet.
func (v *ServerVersion) Get(ctx context.Context) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.version != "" {
		return v.version, nil
	}
	reply, err := v.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		return "", fmt.Errorf("read the server's version (buildInfo): %w", err)
	}
	v.version = str(reply, "version")
	return v.version, nil
}

// ParseMajorMinor reads the major and minor numbers of a MongoDB version ("7",
// "0" of "7.0.12"); ok is false for anything else.
func ParseMajorMinor(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	// Decimal digits only: Atoi would also take signs ("+7").
	for _, p := range parts[:2] {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return 0, 0, false
		}
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// CompareVersions orders two versions by major.minor (-1, 0, +1); ok is false when
// either is not a version.
func CompareVersions(a, b string) (cmp int, ok bool) {
	aMaj, aMin, ok1 := ParseMajorMinor(a)
	bMaj, bMin, ok2 := ParseMajorMinor(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case aMaj != bMaj:
		return sign(aMaj - bMaj), true
	case aMin != bMin:
		return sign(aMin - bMin), true
	}
	return 0, true
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// OlderThan reports whether version's major.minor is below min's; false when either
// is not a version.
func OlderThan(version, min string) bool {
	c, ok := CompareVersions(version, min)
	return ok && c < 0
}

// SortsOnDisk reports whether a find on a server of this version takes
// allowDiskUse, for a sort no index serves: 4.4 and later do, older servers refuse
// the field (so does an unknown version here).
func SortsOnDisk(version string) bool {
	c, ok := CompareVersions(version, "4.4")
	return ok && c >= 0
}

// InSimpleCollation makes a find on a collection with a default collation compare
// strings by their bytes, in its filter and its sort, as Shardlift's own
// comparisons do. The collection's indexes use its default collation, so none can
// give a sort on strings: the server sorts, on disk where it can (version's).
func InSimpleCollation(opts *options.FindOptions, version string) *options.FindOptions {
	opts.SetCollation(&options.Collation{Locale: "simple"})
	if SortsOnDisk(version) {
		opts.SetAllowDiskUse(true)
	}
	return opts
}

// InIndexBounds bounds a find to the keys of one index in [min, max) (documents
// {field: value} naming the index's fields; nil leaves that end open) with find's
// min and max, the index hinted as 4.2 and later require (3.6 and 4.0 accept it).
// Index bounds follow MongoDB's order across types, where a filter's $gte and $lt
// match one type class only; a hashed index's bounds are hash values.
func InIndexBounds(opts *options.FindOptions, index bson.Raw, min, max []byte) *options.FindOptions {
	opts.SetHint(index)
	if min != nil {
		opts.SetMin(bson.Raw(min))
	}
	if max != nil {
		opts.SetMax(bson.Raw(max))
	}
	return opts
}

// NeedsOplogReplay reports whether a find on the oplog of a server of this version
// must say oplogReplay to seek to its {ts: {$gte: ...}} bound: 3.6 to 4.2 otherwise
// scan the oplog from its oldest entry (hours on a large oplog); 4.4 and later seek
// by themselves and ignore the flag. An unknown version gets the flag, which every
// server from 3.6 to 8.0 accepts on a find of local.oplog.rs.
func NeedsOplogReplay(version string) bool {
	c, ok := CompareVersions(version, "4.4")
	return !ok || c < 0
}

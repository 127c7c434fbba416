package topology

import (
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Kind is what answered at an endpoint.
type Kind string

const (
	// KindMongos is a sharded cluster's router (hello says msg: "isdbgrid").
	KindMongos Kind = "mongos"
	// KindReplicaSet is a replica set member (hello has setName).
	KindReplicaSet Kind = "replica set"
	// KindStandalone is a single mongod outside any replica set.
	KindStandalone Kind = "standalone"
)

// Cluster is what Discover found: plain values, safe to copy and show.
type Cluster struct {
	// Endpoint names what was discovered, with any password masked.
	Endpoint string
	Kind     Kind
	// SetName is the replica set name when Kind is KindReplicaSet.
	SetName string
	// Router is the server the endpoint reached: a mongos for a sharded cluster.
	Router Node
	// The rest is filled for a sharded cluster only.
	// Identity is the cluster's clusterId, shards and mongos addresses (the
	// clusterId stays zero when config.version could not be read: see Problems).
	Identity      Identity
	ConfigServers ConfigServers
	Shards        []Shard
	// Databases are config.databases: every database with its primary shard.
	Databases []Database
	// Collections are the user collections config.collections lists (dropped
	// ones and MongoDB's own skipped): the sharded collections, and from 8.0 the
	// tracked unsharded ones (Unsplittable).
	Collections []Collection
	// Zones are the zone key ranges of config.tags (MongoDB's own namespaces'
	// left out); each shard's zones are in Shard.Zones.
	Zones    []ZoneRange
	Balancer Balancer
	// Namespaces are the collections and views of every database but admin, config
	// and local, with their kind and size.
	Namespaces []Namespace
	// Users and Roles are the cluster's users and user-defined roles, without any
	// credentials: the migration does not carry them.
	Users []User
	Roles []Role
	// Access is what the connecting user may do on the router.
	Access Access
	// Marker is Shardlift's marker of a migration into this cluster, nil when none
	// holds it.
	Marker *Marker
	// Problems are the parts discovery could not read (a privilege missing, a command
	// the server lacks, a server that did not answer); the rest is still filled.
	Problems []Problem
	// Elapsed is how long discovery took.
	Elapsed time.Duration
}

// Node is one server's identity as discovery saw it.
type Node struct {
	// Host is host:port.
	Host string
	// Version is buildInfo's version, such as "7.0.12".
	Version string
	// FCV is the featureCompatibilityVersion, such as "7.0"; "" where the server does
	// not report it (mongos).
	FCV string
	// Err is why the node could not be reached or would not accept the credentials
	// (a classified *Error), nil when it answered.
	Err error
}

// MajorVersion is the major version as MongoDB counts it: the first two
// dot-separated numbers ("7.0" for "7.0.12").
func MajorVersion(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// Member is one server of a shard or of the config servers.
type Member struct {
	Node
	// SetName is the replica set the member says it belongs to ("" for a standalone).
	SetName string
	// Primary is true when the member answered as the writable primary, Secondary
	// when it answered as a secondary (neither: arbiter, recovering, rolling back).
	Primary, Secondary bool
	// Tags are the member's replica set tags (hello's tags), for readPreferenceTags.
	Tags map[string]string
	// LastWrite is the wall time of the member's newest oplog entry (hello's
	// lastWrite.lastWriteDate; zero when it does not say): a secondary's distance
	// behind its primary is the difference, as drivers measure staleness.
	LastWrite time.Time
	// Oplog is the member's own oplog (a secondary's can be smaller than its
	// primary's): read on every member that answered, for the oplog window of the
	// members the read preference reads; Err set when it could not be read.
	Oplog Oplog
}

// Shard is one shard of the cluster.
type Shard struct {
	// Name is the shard's _id in config.shards.
	Name string
	// SetName and Hosts come from the shard's host string "setName/h1:p,h2:p".
	SetName string
	Hosts   []string
	// Draining is true while the shard is being removed.
	Draining bool
	// Zones are the zones the shard belongs to (its tags in config.shards).
	Zones []string
	// Members are the probed hosts, in Hosts order.
	Members []Member
	// Primary is the host that answered as primary, "" when none did.
	Primary string
	// Version and FCV are the primary's (else the first member that answered).
	Version, FCV string
	// Oplog is the primary's oplog window.
	Oplog Oplog
	// DataBytes is the uncompressed size of the user data on the primary (dbStats
	// dataSize summed over its databases), and IndexBytes the size of its indexes
	// (dbStats indexSize), both known when DataBytesKnown.
	DataBytes, IndexBytes int64
	DataBytesKnown        bool
	// Access is what the connecting user may do on the primary.
	Access Access
}

// ConfigServers are the config servers as the router reports them.
type ConfigServers struct {
	// ConnString is "cfgRS/h1:p,..." for a replica set (CSRS) or a bare "h1:p,h2:p,h3:p"
	// for legacy mirrored config servers.
	ConnString string
	SetName    string
	Hosts      []string
	// Legacy is true for mirrored (SCCC) config servers, which Shardlift cannot use.
	Legacy  bool
	Members []Member
	// Version and FCV are the primary's (else the first member that answered).
	Version, FCV string
}

// Database is a config.databases entry.
type Database struct {
	Name string
	// Primary is the shard holding the database's unsharded collections.
	Primary     string
	Partitioned bool
}

// Collection is a collection from config.collections with its chunks.
type Collection struct {
	// Namespace is "db.collection".
	Namespace string
	// Key is the shard key pattern, such as {a: 1} or {h: "hashed"}.
	Key    bson.D
	Unique bool
	// UUID is the collection's UUID (binary subtype 4); empty before MongoDB 3.6.
	UUID      primitive.Binary
	NoBalance bool
	// DefaultCollation is config.collections' defaultCollation: the collection's
	// default collation, nil for the simple one.
	DefaultCollation bson.Raw
	// Unsplittable marks an 8.0 tracked unsharded collection: not sharded, it
	// lives whole on the shard of its one chunk (which need not be its
	// database's primary shard after a moveCollection).
	Unsplittable bool
	// Chunks are the collection's chunks in config.chunks order.
	Chunks []Chunk
}

// ChunksOn lists the chunks the named shard owns.
func (c Collection) ChunksOn(shard string) []Chunk {
	var out []Chunk
	for _, ch := range c.Chunks {
		if ch.Shard == shard {
			out = append(out, ch)
		}
	}
	return out
}

// Sharded reports whether the collection is sharded (not an 8.0 tracked
// unsharded collection).
func (c Collection) Sharded() bool { return !c.Unsplittable }

// ZoneRange is one zone key range of config.tags: the shard key range [Min, Max)
// of Namespace belongs to Zone.
type ZoneRange struct {
	Namespace string
	Min, Max  bson.Raw
	Zone      string
}

// Chunk is one chunk range [Min, Max) and its shard.
type Chunk struct {
	Min, Max bson.Raw
	Shard    string
}

// Balancer is the source's balancer state.
type Balancer struct {
	// Mode is "full", "off" or "autoSplitOnly" (balancerStatus), or derived from
	// config.settings (stopped: true is "off").
	Mode string
	// Enabled is true unless the mode is "off".
	Enabled bool
	// InRound is true while a balancing round runs (balancerStatus only).
	InRound bool
	// From names the source of the state: "balancerStatus" or "config.settings".
	From string
}

// Oplog is a shard primary's oplog window.
type Oplog struct {
	// First and Last are the oldest and newest entries' timestamps.
	First, Last primitive.Timestamp
	// UsedBytes and MaxBytes are the oplog's size and configured maximum (collStats);
	// zero when unknown.
	UsedBytes, MaxBytes int64
	// Err is why the oplog could not be read.
	Err error
}

// Window is the time between the oldest and the newest entry.
func (o Oplog) Window() time.Duration {
	if o.Last.T < o.First.T {
		return 0
	}
	return time.Duration(o.Last.T-o.First.T) * time.Second
}

// Capacity is how much time the oplog can hold at the write rate seen so far: the
// window itself once the oplog is full, else the window scaled to the configured
// size (an oplog that is a tenth full holds ten times its current window). A window
// under the timestamps' one-second resolution (a cluster just created, its entries
// all written within one second) is scaled as one second: the write rate of such a
// burst cannot be told, and zero would read as an oplog that holds nothing.
func (o Oplog) Capacity() time.Duration {
	w := o.Window()
	if o.UsedBytes <= 0 || o.MaxBytes <= o.UsedBytes {
		return w
	}
	return time.Duration(float64(max(w, time.Second)) * float64(o.MaxBytes) / float64(o.UsedBytes))
}

// Namespace is one collection or view of a user database.
type Namespace struct {
	DB, Collection string
	// Type is listCollections' type: "collection", "view", "timeseries", ...
	Type   string
	Capped bool
	// Options are listCollections' options, as the server returned them.
	Options bson.Raw
	// Indexes are listIndexes' specifications, as the server returned them (a
	// collection's only).
	Indexes []bson.Raw
	// Sharded is true for a collection in config.collections.
	Sharded bool
	// Count and Size (bytes, uncompressed) are known when SizeKnown; ShardSizes
	// splits Size by shard when the server said so.
	Count      int64
	Size       int64
	SizeKnown  bool
	ShardSizes map[string]int64
}

// Name is "db.collection".
func (n Namespace) Name() string { return n.DB + "." + n.Collection }

// User is a user of the cluster: where it is defined and its roles. Credentials are
// never read.
type User struct {
	Name, DB string
	Roles    []RoleRef
}

// Role is a user-defined role and the roles it inherits.
type Role struct {
	Name, DB string
	Roles    []RoleRef
}

// RoleRef names a role on a database.
type RoleRef struct {
	Role, DB string
}

func (r RoleRef) String() string { return r.Role + "@" + r.DB }

// Problem is a part of the cluster discovery could not read.
type Problem struct {
	// Part is one of the Part* names, with a suffix for a database or host.
	Part string
	Err  error
}

func (p Problem) Error() string { return fmt.Sprintf("%s: %v", p.Part, p.Err) }

// Parts of a discovery that can fail on their own.
const (
	PartShards        = "listShards"
	PartClusterID     = "config.version"
	PartMarker        = "Shardlift's marker"
	PartConfigServers = "config servers"
	PartDatabases     = "config.databases"
	PartCollections   = "config.collections"
	PartChunks        = "config.chunks"
	PartZones         = "config.tags"
	PartBalancer      = "balancer state"
	PartInventory     = "databases and collections"
	PartSizes         = "collection sizes"
	PartUsers         = "users"
	PartRoles         = "roles"
	PartAccess        = "privileges"
	PartIndexes       = "indexes"
)

// ShardNames are the names of the cluster's shards, in listShards order.
func (c *Cluster) ShardNames() []string {
	names := make([]string, len(c.Shards))
	for i, sh := range c.Shards {
		names[i] = sh.Name
	}
	return names
}

// ProblemsWith lists the problems of one part (a Part* name, or its prefix).
func (c *Cluster) ProblemsWith(part string) []Problem {
	var out []Problem
	for _, p := range c.Problems {
		if p.Part == part || strings.HasPrefix(p.Part, part+" ") {
			out = append(out, p)
		}
	}
	return out
}

// ConfigShard is the name MongoDB 8.0 gives a config server that also holds data
// (a config shard) in listShards.
const ConfigShard = "config"

// Twins pairs each source shard with its destination twin: a config shard with
// the destination's config shard when both clusters have one (it also serves
// the cluster's metadata, so it keeps the role it was sized for), every other
// source shard with the destination's remaining shards, both in listShards
// order. The shard counts must be equal.
func Twins(src, dst []Shard) (map[string]string, error) {
	if len(src) != len(dst) {
		return nil, fmt.Errorf("the source has %d shards and the destination %d: each source shard needs a destination twin (add or remove destination shards)", len(src), len(dst))
	}
	twins := make(map[string]string, len(src))
	taken := map[string]bool{}
	if hasShard(src, ConfigShard) && hasShard(dst, ConfigShard) {
		twins[ConfigShard], taken[ConfigShard] = ConfigShard, true
	}
	next := 0
	for _, s := range src {
		if _, done := twins[s.Name]; done {
			continue
		}
		for taken[dst[next].Name] {
			next++
		}
		twins[s.Name], taken[dst[next].Name] = dst[next].Name, true
		next++
	}
	return twins, nil
}

func hasShard(shards []Shard, name string) bool {
	for _, s := range shards {
		if s.Name == name {
			return true
		}
	}
	return false
}

package topology

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
)

// Identity is how Shardlift knows a sharded cluster: the clusterId its config
// servers generated once when the cluster was created (config.version), its shards
// as listShards reports them, and the mongos addresses it was reached through.
// Another mongos of the same cluster has the same clusterId; a cluster restored
// from another's config server backup has it too.
type Identity struct {
	ClusterID primitive.ObjectID
	Shards    []ShardHosts
	// Routers are the mongos host:port the endpoint names (see normalHost).
	Routers []string
}

// ShardHosts is one shard of an Identity: its name and its members' host:port
// (see normalHost).
type ShardHosts struct {
	Name  string
	Hosts []string
}

// String names the cluster in messages: "cluster 65f0c3a1... (mongos h:p; shards a, b)".
func (id Identity) String() string {
	s := "cluster " + id.ClusterID.Hex()
	if id.ClusterID.IsZero() {
		s = "a cluster of unknown clusterId"
	}
	var parts []string
	if len(id.Routers) > 0 {
		parts = append(parts, "mongos "+strings.Join(id.Routers, ","))
	}
	if len(id.Shards) > 0 {
		names := make([]string, len(id.Shards))
		for i, sh := range id.Shards {
			names[i] = sh.Name
		}
		parts = append(parts, "shards "+strings.Join(names, ", "))
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
}

// ReadIdentity connects to a mongos and reads the cluster's identity.
func ReadIdentity(ctx context.Context, e Endpoint) (Identity, error) {
	client, s, err := connect(ctx, e)
	if err != nil {
		return Identity{}, err
	}
	defer disconnect(ctx, client, e.timeout())
	return readIdentity(ctx, client, e.timeout(), s.hosts)
}

// IdentityOf reads the identity of the cluster behind client, a connection to e.
func IdentityOf(ctx context.Context, client *mongo.Client, e Endpoint) (Identity, error) {
	s, err := e.resolve()
	if err != nil {
		return Identity{}, err
	}
	return readIdentity(ctx, client, e.timeout(), s.hosts)
}

func readIdentity(ctx context.Context, client *mongo.Client, timeout time.Duration, routers []string) (Identity, error) {
	id := Identity{Routers: normalHosts(routers)}
	var err error
	if id.ClusterID, err = readClusterID(ctx, client, timeout); err != nil {
		return id, fmt.Errorf("read the cluster's identity (config.version): %w", err)
	}
	reply, err := runCommand(ctx, client, timeout, "admin", bson.D{{Key: "listShards", Value: 1}})
	if err != nil {
		return id, fmt.Errorf("read the cluster's shards (listShards): %w", err)
	}
	shards, err := parseShards(reply)
	if err != nil {
		return id, err
	}
	id.Shards = shardHosts(shards)
	return id, nil
}

// readClusterID reads the clusterId of config.version's one document, {_id: 1,
// clusterId: ObjectId} (MongoDB 3.6 to 6.x add minCompatibleVersion and
// currentVersion; 7.0 removed them).
func readClusterID(ctx context.Context, client *mongo.Client, timeout time.Duration) (primitive.ObjectID, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	doc, err := client.Database("config").Collection("version").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return primitive.ObjectID{}, &MetadataError{Where: "config.version", Reason: "it has no document {_id: 1}, which every sharded cluster's config servers write"}
	}
	if err != nil {
		return primitive.ObjectID{}, err
	}
	id, ok := doc.Lookup("clusterId").ObjectIDOK()
	if !ok || id.IsZero() {
		return primitive.ObjectID{}, &MetadataError{Where: "config.version", Reason: "its clusterId is missing or not an ObjectId"}
	}
	return id, nil
}

func shardHosts(shards []Shard) []ShardHosts {
	out := make([]ShardHosts, len(shards))
	for i, sh := range shards {
		out[i] = ShardHosts{Name: sh.Name, Hosts: normalHosts(sh.Hosts)}
	}
	return out
}

// normalHost is host:port as identities compare it: lowercased, with MongoDB's
// default port when none is given. Two names of one server (an IP address and a
// host name) still differ here; when they reach one cluster, its clusterId says so.
func normalHost(h string) string { return strings.ToLower(withPort(strings.TrimSpace(h))) }

func normalHosts(hosts []string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = normalHost(h)
	}
	return out
}

// SharedHost is a host:port two identities both name, with what it is on each side
// ("mongos", or "shard s0 member").
type SharedHost struct {
	Host, InA, InB string
}

// Overlap is what two identities have in common: nothing for two different clusters.
type Overlap struct {
	// SameClusterID: both have the same clusterId, so they are one cluster (or one
	// was restored from the other's config server backup).
	SameClusterID bool
	ClusterID     primitive.ObjectID
	// Hosts are the mongos and shard member addresses both name.
	Hosts []SharedHost
}

// Any reports whether the two identities share anything.
func (o Overlap) Any() bool { return o.SameClusterID || len(o.Hosts) > 0 }

// Compare finds what a and b share. An unknown (zero) clusterId matches nothing.
func Compare(a, b Identity) Overlap {
	o := Overlap{SameClusterID: !a.ClusterID.IsZero() && a.ClusterID == b.ClusterID, ClusterID: a.ClusterID}
	inA, inB := roles(a), roles(b)
	for _, host := range slices.Sorted(maps.Keys(inA)) {
		if rb, ok := inB[host]; ok {
			o.Hosts = append(o.Hosts, SharedHost{Host: host, InA: inA[host], InB: rb})
		}
	}
	return o
}

// roles maps every address of an identity to what it is there.
func roles(id Identity) map[string]string {
	out := map[string]string{}
	for _, sh := range id.Shards {
		for _, h := range sh.Hosts {
			out[h] = "shard " + sh.Name + " member"
		}
	}
	for _, h := range id.Routers {
		out[h] = "mongos"
	}
	return out
}

// Describe says in words what the source (a of Compare) and the destination (b)
// share.
func (o Overlap) Describe() string {
	var parts []string
	if o.SameClusterID {
		parts = append(parts, fmt.Sprintf("both have clusterId %s, so they are the same cluster (or one was restored from the other's config server backup)", o.ClusterID.Hex()))
	}
	for _, h := range o.Hosts {
		parts = append(parts, fmt.Sprintf("%s is the source's %s and the destination's %s", h.Host, h.InA, h.InB))
	}
	return strings.Join(parts, "; ")
}

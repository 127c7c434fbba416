package sysdb

import (
	"os"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/release"
)

// What every mongod (shard member or config server) keeps about itself in local and
// admin.

// Node describes a mongod for the documents it writes about itself.
type Node struct {
	Release release.Release
	// Host is host:port.
	Host string
	// Members are the replica set's members' host:port, by member id (nil: Host alone).
	Members []string
	// SetName is its replica set's name.
	SetName string
	// ClusterRole is "shardsvr" or "configsvr".
	ClusterRole string
	// ReplicaSetID identifies the replica set (settings.replicaSetId).
	ReplicaSetID primitive.ObjectID
	Started      time.Time
	BuildInfo    bson.D
}

// StartupLog is the local.startup_log entry a mongod writes when it starts
// (src/mongo/db/startup_warnings_mongod.cpp's logStartup: _id "<hostname>-<ms>").
func (n Node) StartupLog() bson.D {
	host, _ := os.Hostname()
	port := n.Host[strings.LastIndex(n.Host, ":")+1:]
	portNum, _ := strconv.Atoi(port)
	return bson.D{
		{Key: "_id", Value: host + "-" + strconv.FormatInt(n.Started.UnixMilli(), 10)},
		{Key: "hostname", Value: host},
		{Key: "startTime", Value: primitive.NewDateTimeFromTime(n.Started.Truncate(time.Second))},
		{Key: "startTimeLocal", Value: n.Started.Format("Mon Jan _2 15:04:05.000")},
		{Key: "cmdLine", Value: bson.D{
			{Key: "net", Value: bson.D{{Key: "bindIp", Value: "127.0.0.1"}, {Key: "port", Value: int32(portNum)}}},
			{Key: "replication", Value: bson.D{{Key: "replSet", Value: n.SetName}}},
			{Key: "sharding", Value: bson.D{{Key: "clusterRole", Value: n.ClusterRole}}},
		}},
		{Key: "pid", Value: int64(os.Getpid())},
		{Key: "buildinfo", Value: n.BuildInfo},
	}
}

// ReplSetConfig is the replica set's configuration, as replSetGetConfig
// returns it and local.system.replset stores it: term from 4.4, secondaryDelaySecs
// instead of slaveDelay from 5.0.
func (n Node) ReplSetConfig() bson.D {
	d := bson.D{{Key: "_id", Value: n.SetName}, {Key: "version", Value: int32(1)}}
	if n.Release.AtLeast(release.V44) {
		d = append(d, bson.E{Key: "term", Value: int64(1)})
	}
	if n.ClusterRole == "configsvr" {
		d = append(d, bson.E{Key: "configsvr", Value: true})
	}
	hosts := n.Members
	if len(hosts) == 0 {
		hosts = []string{n.Host}
	}
	var members bson.A
	for i, h := range hosts {
		member := bson.D{
			{Key: "_id", Value: int32(i)}, {Key: "host", Value: h},
			{Key: "arbiterOnly", Value: false}, {Key: "buildIndexes", Value: true},
			{Key: "hidden", Value: false}, {Key: "priority", Value: 1.0},
			{Key: "tags", Value: bson.D{}},
		}
		if n.Release.AtLeast(release.V50) {
			member = append(member, bson.E{Key: "secondaryDelaySecs", Value: int64(0)})
		} else {
			member = append(member, bson.E{Key: "slaveDelay", Value: int64(0)})
		}
		members = append(members, append(member, bson.E{Key: "votes", Value: int32(1)}))
	}
	return append(d,
		bson.E{Key: "protocolVersion", Value: int64(1)},
		bson.E{Key: "writeConcernMajorityJournalDefault", Value: true},
		bson.E{Key: "members", Value: members},
		bson.E{Key: "settings", Value: bson.D{
			{Key: "chainingAllowed", Value: true},
			{Key: "heartbeatIntervalMillis", Value: int32(2000)},
			{Key: "heartbeatTimeoutSecs", Value: int32(10)},
			{Key: "electionTimeoutMillis", Value: int32(10000)},
			{Key: "catchUpTimeoutMillis", Value: int32(-1)},
			{Key: "catchUpTakeoverDelayMillis", Value: int32(30000)},
			{Key: "getLastErrorModes", Value: bson.D{}},
			{Key: "getLastErrorDefaults", Value: bson.D{{Key: "w", Value: int32(1)}, {Key: "wtimeout", Value: int32(0)}}},
			{Key: "replicaSetId", Value: n.ReplicaSetID},
		}},
	)
}

// LocalCollections are the local database's collections besides the oplog:
// startup_log (capped, one entry per start recorded in startups) and system.replset.
// replset.election and replset.minvalid hold the replication state.
func (n Node) LocalCollections(startups []bson.Raw) []Collection {
	return []Collection{
		{DB: "local", Name: "startup_log", Options: bson.D{{Key: "capped", Value: true}, {Key: "size", Value: int64(10 << 20)}}, Docs: startups},
		{DB: "local", Name: "system.replset", Docs: []bson.Raw{Raw(n.ReplSetConfig())}},
		{DB: "local", Name: "replset.election", Docs: []bson.Raw{Raw(bson.D{
			{Key: "_id", Value: n.ReplicaSetID}, {Key: "term", Value: int64(1)}, {Key: "candidateIndex", Value: int32(0)}})}},
		{DB: "local", Name: "replset.minvalid", Docs: []bson.Raw{Raw(bson.D{
			{Key: "_id", Value: n.ReplicaSetID}, {Key: "t", Value: int64(-1)}, {Key: "ts", Value: primitive.Timestamp{}}})}},
	}
}

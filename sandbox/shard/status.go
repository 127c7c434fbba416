package shard

import (
	"os"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// What a one-member replica set's primary says about itself.

func opTime(n *node) (bson.D, time.Time) {
	ts, wall := n.oplog.last()
	return bson.D{{Key: "ts", Value: ts}, {Key: "t", Value: int64(1)}}, wall
}

func (n *node) hello(s *wire.Session, cmd *wire.Command) bson.Raw {
	d := n.front.cfg.Identity.Hello(s, cmd, n.topo)
	addr := n.front.Addr()
	op, wall := opTime(n)
	d = append(d,
		bson.E{Key: "hosts", Value: bson.A{addr}},
		bson.E{Key: "setName", Value: n.front.cfg.SetName},
		bson.E{Key: "setVersion", Value: int32(1)},
		bson.E{Key: "secondary", Value: false},
		bson.E{Key: "primary", Value: addr},
		bson.E{Key: "me", Value: addr},
		bson.E{Key: "electionId", Value: n.electionID},
		bson.E{Key: "lastWrite", Value: bson.D{
			{Key: "opTime", Value: op}, {Key: "lastWriteDate", Value: wall},
			{Key: "majorityOpTime", Value: op}, {Key: "majorityWriteDate", Value: wall},
		}},
	)
	if n.front.cfg.ConfigServer {
		d = append(d, bson.E{Key: "configsvr", Value: int32(2)})
	}
	return wire.OK(d...)
}

func adminOnly(cmd *wire.Command) bson.Raw {
	if cmd.DB == "admin" {
		return nil
	}
	return wire.ErrorReply(wire.Unauthorized(cmd.Name + " may only be run against the admin database."))
}

// replSetGetStatus is the one member's view, shaped as its release's reply.
func (n *node) replSetGetStatus(cmd *wire.Command) bson.Raw {
	if r := adminOnly(cmd); r != nil {
		return r
	}
	rel := n.front.cfg.Identity.Release()
	addr := n.front.Addr()
	op, wall := opTime(n)
	now := time.Now()
	out := bson.D{
		{Key: "set", Value: n.front.cfg.SetName},
		{Key: "date", Value: now},
		{Key: "myState", Value: int32(1)},
		{Key: "term", Value: int64(1)},
	}
	syncSource := bson.D{{Key: "syncSourceHost", Value: ""}, {Key: "syncSourceId", Value: int32(-1)}}
	if rel.ReplStatusSyncingTo() {
		syncSource = append(bson.D{{Key: "syncingTo", Value: ""}}, syncSource...)
	}
	out = append(out, syncSource...)
	out = append(out, bson.E{Key: "heartbeatIntervalMillis", Value: int64(2000)})
	if rel.ReplStatusWallTimes() {
		out = append(out, bson.E{Key: "majorityVoteCount", Value: int32(1)}, bson.E{Key: "writeMajorityCount", Value: int32(1)})
	}
	if rel.ReplStatusVotingCounts() {
		out = append(out, bson.E{Key: "votingMembersCount", Value: int32(1)}, bson.E{Key: "writableVotingMembersCount", Value: int32(1)})
	}
	optimes := bson.D{{Key: "lastCommittedOpTime", Value: op}}
	if rel.ReplStatusWallTimes() {
		optimes = append(optimes, bson.E{Key: "lastCommittedWallTime", Value: wall})
	}
	optimes = append(optimes, bson.E{Key: "readConcernMajorityOpTime", Value: op},
		bson.E{Key: "appliedOpTime", Value: op}, bson.E{Key: "durableOpTime", Value: op})
	if rel.ReplStatusWallTimes() {
		optimes = append(optimes, bson.E{Key: "lastAppliedWallTime", Value: wall}, bson.E{Key: "lastDurableWallTime", Value: wall})
	}
	member := bson.D{
		{Key: "_id", Value: int32(0)},
		{Key: "name", Value: addr},
		{Key: "health", Value: 1.0},
		{Key: "state", Value: int32(1)},
		{Key: "stateStr", Value: "PRIMARY"},
		{Key: "uptime", Value: int32(now.Sub(n.started).Seconds())},
		{Key: "optime", Value: op},
		{Key: "optimeDate", Value: wall},
	}
	if rel.ReplStatusWallTimes() {
		member = append(member, bson.E{Key: "lastAppliedWallTime", Value: wall}, bson.E{Key: "lastDurableWallTime", Value: wall})
	}
	member = append(member, syncSource...)
	member = append(member,
		bson.E{Key: "infoMessage", Value: ""},
		bson.E{Key: "electionTime", Value: n.electionTime()},
		bson.E{Key: "electionDate", Value: n.started},
		bson.E{Key: "configVersion", Value: int32(1)},
	)
	if rel.ReplStatusVotingCounts() {
		member = append(member, bson.E{Key: "configTerm", Value: int64(1)})
	}
	member = append(member, bson.E{Key: "self", Value: true}, bson.E{Key: "lastHeartbeatMessage", Value: ""})
	out = append(out, bson.E{Key: "optimes", Value: optimes}, bson.E{Key: "members", Value: bson.A{member}})
	return wire.OK(out...)
}

// electionTime is the optime of the member's election: when its front started.
func (n *node) electionTime() primitive.Timestamp {
	return primitive.Timestamp{T: uint32(n.started.Unix()), I: 1}
}

func (n *node) replSetGetConfig(cmd *wire.Command) bson.Raw {
	if r := adminOnly(cmd); r != nil {
		return r
	}
	return wire.OK(bson.E{Key: "config", Value: n.sysNode().ReplSetConfig()})
}

func (n *node) serverStatus() bson.Raw {
	addr := n.front.Addr()
	op, wall := opTime(n)
	now := time.Now()
	up := now.Sub(n.started)
	_, size, maxSize := n.oplog.stats()
	fields := bson.D{
		bson.E{Key: "host", Value: addr},
		bson.E{Key: "version", Value: n.front.cfg.Identity.Version},
		bson.E{Key: "process", Value: "mongod"},
		bson.E{Key: "pid", Value: int64(os.Getpid())},
		bson.E{Key: "uptime", Value: up.Seconds()},
		bson.E{Key: "uptimeMillis", Value: up.Milliseconds()},
		bson.E{Key: "uptimeEstimate", Value: int64(up.Seconds())},
		bson.E{Key: "localTime", Value: now},
		bson.E{Key: "repl", Value: bson.D{
			{Key: "hosts", Value: bson.A{addr}},
			{Key: "setName", Value: n.front.cfg.SetName},
			{Key: "setVersion", Value: int32(1)},
			{Key: "isWritablePrimary", Value: true},
			{Key: "secondary", Value: false},
			{Key: "primary", Value: addr},
			{Key: "me", Value: addr},
			{Key: "electionId", Value: n.electionID},
			{Key: "lastWrite", Value: bson.D{
				{Key: "opTime", Value: op}, {Key: "lastWriteDate", Value: wall},
				{Key: "majorityOpTime", Value: op}, {Key: "majorityWriteDate", Value: wall},
			}},
			{Key: "rbid", Value: int32(1)},
		}},
		bson.E{Key: "oplog", Value: bson.D{{Key: "sizeBytes", Value: size}, {Key: "maxSizeBytes", Value: maxSize}}},
		bson.E{Key: "storageEngine", Value: bson.D{{Key: "name", Value: "sandbox-ferretdb-sqlite"}, {Key: "persistent", Value: true}}},
	}
	if cl := n.front.cfg.Cluster; cl != nil {
		fields = append(fields, bson.E{Key: "sharding", Value: bson.D{
			{Key: "configsvrConnectionString", Value: cl.ConfigServers()},
			{Key: "lastSeenConfigServerOpTime", Value: bson.D{{Key: "ts", Value: primitive.Timestamp{T: uint32(now.Unix()), I: 1}}, {Key: "t", Value: int64(1)}}},
			{Key: "maxChunkSizeInBytes", Value: n.front.cfg.Identity.Release().MaxChunkSizeBytes()},
		}})
	}
	return wire.OK(fields...)
}

// appendOplogNote writes a no-op entry carrying the caller's data, as MongoDB does.
func (n *node) appendOplogNote(cmd *wire.Command) bson.Raw {
	if r := adminOnly(cmd); r != nil {
		return r
	}
	data, ok := cmd.Lookup("data").DocumentOK()
	if !ok {
		return wire.ErrorReply(wire.BadValue("appendOplogNote needs 'data' as a document"))
	}
	if err := n.oplog.append(draft{op: "n", o: data}); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK()
}

// shardingNoop answers the router's {_sandboxNoop: coll, o, o2}: the no-op a primary
// shard writes for a sharding event on db.coll (shardCollection from 5.0,
// refineCollectionShardKey from 6.1), with the collection's UUID.
func (n *node) shardingNoop(cmd *wire.Command) bson.Raw {
	coll, ok := collName(cmd)
	o, okO := cmd.Lookup("o").DocumentOK()
	o2, okO2 := cmd.Lookup("o2").DocumentOK()
	if !ok || !okO || !okO2 {
		return wire.ErrorReply(wire.BadValue("_sandboxNoop needs a collection name, o and o2"))
	}
	ns := cmd.DB + "." + coll
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	d := draft{op: "n", ns: ns, o: o, o2: o2}
	if ci, ok := n.cat.get(ns); ok {
		d.ui = ci.UUID.Data
	}
	if err := n.oplog.append(d); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK()
}

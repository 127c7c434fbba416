package shard

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// What a replica set member says about itself and its set (replset.go).

// addr is the member's address.
func (n *node) addr() string {
	if f := n.front; n.member < len(f.servers) {
		return f.servers[n.member].Addr()
	}
	return n.front.cfg.Addr
}

// name is how the set names the member (Front.NameMembers): its address unless told otherwise.
func (n *node) name() string { return n.front.memberName(n.addr()) }

// setView is what a member reports of its set: every member, the primary's address
// and the majority commit point.
type setView struct {
	nodes    []*node
	primary  string
	majority OpTime
}

func (n *node) setView() setView {
	nodes := n.peers
	v := setView{nodes: nodes}
	for _, m := range nodes {
		if m.primary.Load() {
			v.primary = m.name()
		}
	}
	v.majority, _ = majority(nodes)
	// A secondary's commit point is never past what it applied (MongoDB's
	// secondaries take the sync source's point no further than their last applied
	// entry): the entries it serves up to its point are committed ones.
	if own := n.opTime(); !n.primary.Load() && compareTS(own.TS, v.majority.TS) < 0 {
		v.majority = own
	}
	return v
}

func (n *node) hello(s *wire.Session, cmd *wire.Command) bson.Raw {
	d := n.front.cfg.Identity.Hello(s, cmd, n.topo)
	primary := n.primary.Load()
	d[0].Value = primary // isWritablePrimary / ismaster
	d = append(d, n.replFields()...)
	if n.front.cfg.ConfigServer {
		d = append(d, bson.E{Key: "configsvr", Value: int32(2)})
	}
	return wire.OK(d...)
}

// replFields are hello's replica set fields (after isWritablePrimary).
func (n *node) replFields() bson.D {
	v := n.setView()
	hosts := bson.A{}
	for _, m := range v.nodes {
		hosts = append(hosts, m.name())
	}
	primary := n.primary.Load()
	own := n.opTime()
	d := bson.D{
		{Key: "hosts", Value: hosts},
		{Key: "setName", Value: n.front.cfg.SetName},
		{Key: "setVersion", Value: int32(1)},
		{Key: "secondary", Value: !primary},
	}
	if v.primary != "" {
		d = append(d, bson.E{Key: "primary", Value: v.primary})
	}
	d = append(d, bson.E{Key: "me", Value: n.name()})
	// Each member is tagged with its index, for readPreferenceTags (member:1 reads
	// member 1 while it is a secondary).
	d = append(d, bson.E{Key: "tags", Value: bson.D{{Key: "member", Value: strconv.Itoa(n.member)}}})
	if primary {
		n.termMu.Lock()
		d = append(d, bson.E{Key: "electionId", Value: n.electionID})
		n.termMu.Unlock()
	}
	return append(d, bson.E{Key: "lastWrite", Value: bson.D{
		{Key: "opTime", Value: own.doc()}, {Key: "lastWriteDate", Value: own.Wall},
		{Key: "majorityOpTime", Value: v.majority.doc()}, {Key: "majorityWriteDate", Value: v.majority.Wall},
	}})
}

func adminOnly(cmd *wire.Command) bson.Raw {
	if cmd.DB == "admin" {
		return nil
	}
	return wire.ErrorReply(wire.Unauthorized(cmd.Name + " may only be run against the admin database."))
}

// replSetGetStatus is the member's view of its set, shaped as its release's reply.
func (n *node) replSetGetStatus(cmd *wire.Command) bson.Raw {
	if r := adminOnly(cmd); r != nil {
		return r
	}
	rel := n.front.cfg.Identity.Release()
	v := n.setView()
	own := n.opTime()
	now := time.Now()
	count := int32(len(v.nodes))
	primaryID := int32(-1)
	for _, m := range v.nodes {
		if m.primary.Load() {
			primaryID = int32(m.member)
		}
	}
	syncSource := func(m *node) bson.D {
		host, id := "", int32(-1)
		if !m.primary.Load() && primaryID >= 0 {
			host, id = v.primary, primaryID
		}
		d := bson.D{{Key: "syncSourceHost", Value: host}, {Key: "syncSourceId", Value: id}}
		if rel.ReplStatusSyncingTo() {
			d = append(bson.D{{Key: "syncingTo", Value: host}}, d...)
		}
		return d
	}
	out := bson.D{
		{Key: "set", Value: n.front.cfg.SetName},
		{Key: "date", Value: now},
		{Key: "myState", Value: stateCode(n)},
		{Key: "term", Value: n.oplog.term()},
	}
	out = append(out, syncSource(n)...)
	out = append(out, bson.E{Key: "heartbeatIntervalMillis", Value: int64(2000)})
	if rel.ReplStatusWallTimes() {
		out = append(out, bson.E{Key: "majorityVoteCount", Value: count/2 + 1}, bson.E{Key: "writeMajorityCount", Value: count/2 + 1})
	}
	if rel.ReplStatusVotingCounts() {
		out = append(out, bson.E{Key: "votingMembersCount", Value: count}, bson.E{Key: "writableVotingMembersCount", Value: count})
	}
	optimes := bson.D{{Key: "lastCommittedOpTime", Value: v.majority.doc()}}
	if rel.ReplStatusWallTimes() {
		optimes = append(optimes, bson.E{Key: "lastCommittedWallTime", Value: v.majority.Wall})
	}
	optimes = append(optimes, bson.E{Key: "readConcernMajorityOpTime", Value: v.majority.doc()},
		bson.E{Key: "appliedOpTime", Value: own.doc()}, bson.E{Key: "durableOpTime", Value: own.doc()})
	if rel.ReplStatusWallTimes() {
		optimes = append(optimes, bson.E{Key: "lastAppliedWallTime", Value: own.Wall}, bson.E{Key: "lastDurableWallTime", Value: own.Wall})
	}
	var members bson.A
	for _, m := range v.nodes {
		op := m.opTime()
		member := bson.D{
			{Key: "_id", Value: int32(m.member)},
			{Key: "name", Value: m.name()},
			{Key: "health", Value: 1.0},
			{Key: "state", Value: stateCode(m)},
			{Key: "stateStr", Value: m.stateStr()},
			{Key: "uptime", Value: int32(now.Sub(m.started).Seconds())},
			{Key: "optime", Value: op.doc()},
		}
		if m != n {
			member = append(member, bson.E{Key: "optimeDurable", Value: op.doc()})
		}
		member = append(member, bson.E{Key: "optimeDate", Value: op.Wall})
		if m != n {
			member = append(member, bson.E{Key: "optimeDurableDate", Value: op.Wall})
		}
		if rel.ReplStatusWallTimes() {
			member = append(member, bson.E{Key: "lastAppliedWallTime", Value: op.Wall}, bson.E{Key: "lastDurableWallTime", Value: op.Wall})
		}
		if m != n {
			member = append(member, bson.E{Key: "lastHeartbeat", Value: now}, bson.E{Key: "lastHeartbeatRecv", Value: now},
				bson.E{Key: "pingMs", Value: int64(0)}, bson.E{Key: "lastHeartbeatMessage", Value: ""})
		}
		member = append(member, syncSource(m)...)
		member = append(member, bson.E{Key: "infoMessage", Value: ""})
		if m.primary.Load() {
			member = append(member, bson.E{Key: "electionTime", Value: m.electionTime()}, bson.E{Key: "electionDate", Value: m.started})
		}
		member = append(member, bson.E{Key: "configVersion", Value: int32(1)})
		if rel.ReplStatusVotingCounts() {
			member = append(member, bson.E{Key: "configTerm", Value: int64(1)})
		}
		if m == n {
			member = append(member, bson.E{Key: "self", Value: true}, bson.E{Key: "lastHeartbeatMessage", Value: ""})
		}
		members = append(members, member)
	}
	out = append(out, bson.E{Key: "optimes", Value: optimes}, bson.E{Key: "members", Value: members})
	return wire.OK(out...)
}

// stateCode is a member's replica set state: 1 primary, 2 secondary.
func stateCode(n *node) int32 {
	if n.primary.Load() {
		return 1
	}
	return 2
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
	now := time.Now()
	up := now.Sub(n.started)
	_, size, maxSize := n.oplog.stats()
	fields := bson.D{
		bson.E{Key: "host", Value: n.name()},
		bson.E{Key: "version", Value: n.front.cfg.Identity.Version},
		bson.E{Key: "process", Value: "mongod"},
		bson.E{Key: "pid", Value: int64(os.Getpid())},
		bson.E{Key: "uptime", Value: up.Seconds()},
		bson.E{Key: "uptimeMillis", Value: up.Milliseconds()},
		bson.E{Key: "uptimeEstimate", Value: int64(up.Seconds())},
		bson.E{Key: "localTime", Value: now},
		bson.E{Key: "repl", Value: append(append(bson.D{{Key: "isWritablePrimary", Value: n.primary.Load()}}, n.replFields()...),
			bson.E{Key: "rbid", Value: n.front.set.rbid(n.member)})},
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
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	// With maxClusterTime (3.6 and later, what a primary runs for a read whose
	// afterClusterTime it has not reached), the note is written only when the
	// member's last entry is older.
	if t, i, ok := cmd.Lookup("maxClusterTime").TimestampOK(); ok {
		max := primitive.Timestamp{T: t, I: i}
		if last, _ := n.oplog.last(); !last.Before(max) {
			return wire.ErrorReply(&wire.Error{Code: 209, Name: "StaleClusterTime",
				Msg: fmt.Sprintf("Requested maxClusterTime %s is less or equal to the last primary OpTime: %s", logicalTime(max), logicalTime(last))})
		}
	} else if v := cmd.Lookup("maxClusterTime"); v.Type != 0 {
		return wire.ErrorReply(&wire.Error{Code: 14, Name: "TypeMismatch", Msg: "\"maxClusterTime\" had the wrong type. Expected timestamp, found " + v.Type.String()})
	}
	if err := n.oplog.append(draft{op: "n", o: data}); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK()
}

// logicalTime is how a server writes a cluster time in a message.
func logicalTime(ts primitive.Timestamp) string {
	return fmt.Sprintf("{ ts: Timestamp(%d, %d) }", ts.T, ts.I)
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

package shard

import (
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Cluster time, as a shard member of 3.6 and later keeps it: every reply carries the
// member's $clusterTime (its logical clock: the newest time it wrote or was told
// of), and a $clusterTime a client sends (gossips) moves the clock forward, so that
// the member's next entry is later than any time the client saw elsewhere in the
// cluster. The sandbox's clock is otherwise the wall clock (oplog.appendLocked). A
// real server signs the time with the cluster's keys (keyId 0 and a zero hash when
// it runs without auth); the sandbox sends the zero signature and accepts any.

// gossipIn moves the member's clock to the $clusterTime cmd carries.
func (n *node) gossipIn(cmd *wire.Command) {
	if t, i, ok := cmd.Body.Lookup("$clusterTime", "clusterTime").TimestampOK(); ok {
		n.oplog.advanceClock(primitive.Timestamp{T: t, I: i})
	}
}

// gossipOut adds the member's $clusterTime to a reply (not to the handshake's).
func (n *node) gossipOut(cmd *wire.Command, reply bson.Raw) bson.Raw {
	switch strings.ToLower(cmd.Name) {
	case "hello", "ismaster":
		return reply
	}
	if len(reply) < 5 || reply.Lookup("$clusterTime").Type != 0 {
		return reply
	}
	ts := n.oplog.clusterTime()
	sig := bsoncore.NewDocumentBuilder().AppendBinary("hash", 0, make([]byte, 20)).AppendInt64("keyId", 0).Build()
	ct := bsoncore.NewDocumentBuilder().AppendTimestamp("clusterTime", ts.T, ts.I).AppendDocument("signature", sig).Build()
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(reply)+96))
	out = append(out, reply[4:len(reply)-1]...)
	out = bsoncore.AppendDocumentElement(out, "$clusterTime", ct)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// advanceClock makes the next entry later than ts.
func (l *oplog) advanceClock(ts primitive.Timestamp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.clock.Before(ts) {
		l.mu.clock = ts
	}
}

// clusterTime is the member's logical clock: the newer of its last entry and the
// newest time gossiped to it.
func (l *oplog) clusterTime() primitive.Timestamp {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.last.Before(l.mu.clock) {
		return l.mu.clock
	}
	return l.mu.last
}

package shard

import (
	"strings"
	"sync/atomic"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// MemberReads counts the reads a member's clients sent it (the sandbox's router
// left out): finds and getMores of user data, and tailable finds and getMores of
// local.oplog.rs (a tail's reads; a find of the newest entry is not one). A majority read
// the member hands to another (readconcern.go) counts where the client sent it: the
// counts say which members a client chose to read.
type MemberReads struct {
	Data  int64 `json:"data"`
	Oplog int64 `json:"oplog"`
}

// readCounts are the members' MemberReads, by member index.
type readCounts []struct{ data, oplog atomic.Int64 }

// count counts cmd, sent to member by the client of s, when it is such a read.
func (c readCounts) count(member int, s *wire.Session, cmd *wire.Command) {
	if member >= len(c) || s.Internal() || s.AppName() == wire.RouterAppName {
		return
	}
	var coll string
	switch strings.ToLower(cmd.Name) {
	case "find":
		coll, _ = cmd.Lookup("find").StringValueOK()
	case "getmore":
		coll, _ = cmd.Lookup("collection").StringValueOK()
	default:
		return
	}
	switch {
	case cmd.DB == "local" && coll == "oplog.rs":
		if tailable, _ := cmd.Lookup("tailable").BooleanOK(); tailable || strings.EqualFold(cmd.Name, "getMore") {
			c[member].oplog.Add(1)
		}
	case cmd.DB != "local" && cmd.DB != "admin" && cmd.DB != "config":
		c[member].data.Add(1)
	}
}

// Reads are the reads each member's clients sent it since the shard started, by
// member index.
func (f *Front) Reads() []MemberReads {
	out := make([]MemberReads, len(f.reads))
	for i := range f.reads {
		out[i] = MemberReads{Data: f.reads[i].data.Load(), Oplog: f.reads[i].oplog.Load()}
	}
	return out
}

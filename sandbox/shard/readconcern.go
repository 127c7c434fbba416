package shard

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// What a member serves, by role and read concern (see replset.go): a secondary refuses
// writes, and reads unless the client allows secondaries (its $readPreference);
// reads wait for readConcern.afterClusterTime, and reads at level majority are served
// by the member holding the majority commit point, their cursors followed there.

// writeCommands change data or the oplog: only the primary takes them.
var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findandmodify": true, "create": true, "drop": true,
	"dropdatabase": true, "renamecollection": true, "createindexes": true, "dropindexes": true,
	"deleteindexes": true, "collmod": true, "_sandboxsetcollection": true, "_sandboxnoop": true,
	"appendoplognote": true, "preparetransaction": true, "committransaction": true, "aborttransaction": true,
}

// secondaryReads need the client's leave to run on a secondary.
var secondaryReads = map[string]bool{
	"find": true, "aggregate": true, "count": true, "distinct": true, "listcollections": true,
	"listindexes": true, "listdatabases": true, "collstats": true, "dbstats": true,
}

// concernedReads honour readConcern.
var concernedReads = map[string]bool{"find": true, "aggregate": true, "count": true, "distinct": true}

func notWritablePrimary() *wire.Error {
	return &wire.Error{Code: 10107, Name: "NotWritablePrimary", Msg: "not primary"}
}

// replGate answers what the member's role or the read concern decides: a refusal, a
// read served by another member, or nothing (ok false: the member runs the command).
func (n *node) replGate(s *wire.Session, cmd *wire.Command) (bson.Raw, bool) {
	name := strings.ToLower(cmd.Name)
	primary := n.primary.Load()
	switch {
	case writeCommands[name] && !primary:
		return n.topo.StateErrorReply(n.front.cfg.Identity, cmd, notWritablePrimary()), true
	case secondaryReads[name] && !primary && !secondaryOk(cmd):
		return n.topo.StateErrorReply(n.front.cfg.Identity, cmd, &wire.Error{Code: 13435, Name: "NotPrimaryNoSecondaryOk", Msg: "not primary and secondaryOk=false"}), true
	case name == "getmore" || name == "killcursors":
		return n.serveForwardedCursor(s, cmd)
	case concernedReads[name]:
		return n.readConcern(s, cmd)
	}
	return nil, false
}

// secondaryOk: the client's read preference allows a secondary (a legacy OP_QUERY
// command, the handshake, carries its leave in flags the sandbox does not see).
func secondaryOk(cmd *wire.Command) bool {
	if cmd.Legacy {
		return true
	}
	mode, ok := cmd.Body.Lookup("$readPreference", "mode").StringValueOK()
	return ok && mode != "primary"
}

// readConcern waits for afterClusterTime and sends a majority read to the member at the
// majority commit point.
func (n *node) readConcern(s *wire.Session, cmd *wire.Command) (bson.Raw, bool) {
	rc, _ := cmd.Lookup("readConcern").DocumentOK()
	level, _ := rc.Lookup("level").StringValueOK()
	var after primitive.Timestamp
	if t, i, ok := rc.Lookup("afterClusterTime").TimestampOK(); ok {
		after = primitive.Timestamp{T: t, I: i}
	}
	if cmd.DB == "local" || (level != "majority" && level != "snapshot" && after.IsZero()) {
		return nil, false
	}
	nodes := n.peers
	majorityRead := level == "majority" || level == "snapshot"
	reached := func() bool {
		if majorityRead {
			op, _ := majority(nodes)
			return compareTS(op.TS, after) >= 0
		}
		ts, _ := n.oplog.last()
		return compareTS(ts, after) >= 0
	}
	ctx := n.ctx
	if ms, ok := cmd.Lookup("maxTimeMS").AsInt64OK(); ok && ms > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		defer cancel()
	}
	if err := awaitCondition(ctx, nodes, reached); err != nil {
		return wire.ErrorReply(&wire.Error{Code: 50, Name: "MaxTimeMSExpired",
			Msg: fmt.Sprintf("waiting for the %s optime to reach afterClusterTime %v: %v", map[bool]string{true: "majority", false: "member's"}[majorityRead], after, err)}), true
	}
	if !majorityRead {
		return nil, false
	}
	op, at := majority(nodes)
	if at == n || n.opTime().TS == op.TS {
		return nil, false // n holds the majority-committed state itself
	}
	return n.front.forward(at, s, cmd, 0), true
}

// awaitCondition waits until cond holds, rechecking whenever a member's oplog changes.
func awaitCondition(ctx context.Context, nodes []*node, cond func() bool) error {
	for {
		cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
		for _, m := range nodes {
			ch, _ := m.oplog.changed()
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		if cond() {
			return nil
		}
		if i, _, _ := reflect.Select(cases); i == 0 {
			return ctx.Err()
		}
	}
}

// forwardedCursor is a cursor another member serves: its id there.
type forwardedCursor struct {
	at *node
	id int64
}

// forward runs cmd on member at and gives the client a cursor id of the set's own
// (the members' FerretDB servers number their cursors alike); clientID is the id
// the client holds for a getMore, 0 for a new cursor.
func (f *Front) forward(at *node, s *wire.Session, cmd *wire.Command, clientID int64) bson.Raw {
	reply := at.dispatch(s, cmd)
	var d bson.D
	if err := bson.Unmarshal(reply, &d); err != nil {
		return reply
	}
	for i, e := range d {
		cur, ok := e.Value.(bson.D)
		if e.Key != "cursor" || !ok {
			continue
		}
		for j, ce := range cur {
			if ce.Key != "id" {
				continue
			}
			id, _ := ce.Value.(int64)
			cur[j].Value = f.set.track(at, id, clientID)
		}
		d[i].Value = cur
	}
	out, err := bson.Marshal(d)
	if err != nil {
		return reply
	}
	return out
}

// track records (or, at id 0, forgets) the cursor id on member at that the client
// knows as clientID (0: a new cursor, given an id here), and returns the client's id.
func (s *replSet) track(at *node, id, clientID int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 {
		delete(s.cursors, clientID)
		return 0
	}
	if clientID == 0 {
		s.nextID++
		clientID = 1<<60 | s.nextID
	}
	s.cursors[clientID] = forwardedCursor{at: at, id: id}
	return clientID
}

// serveForwardedCursor serves getMore and killCursors on a cursor another member holds.
func (n *node) serveForwardedCursor(s *wire.Session, cmd *wire.Command) (bson.Raw, bool) {
	set := &n.front.set
	if strings.EqualFold(cmd.Name, "getMore") {
		id, _ := cmd.Lookup("getMore").AsInt64OK()
		set.mu.Lock()
		fc, ok := set.cursors[id]
		set.mu.Unlock()
		if !ok {
			return nil, false
		}
		body := replaceField(cmd.Body, "getMore", fc.id)
		return n.front.forward(fc.at, s, &wire.Command{Name: cmd.Name, DB: cmd.DB, Body: body}, id), true
	}
	ids, _ := cmd.Lookup("cursors").ArrayOK()
	vals, _ := ids.Values()
	set.mu.Lock()
	var mine []forwardedCursor
	var killed bson.A
	for _, v := range vals {
		id, _ := v.AsInt64OK()
		if fc, ok := set.cursors[id]; ok {
			mine = append(mine, fc)
			killed = append(killed, id)
			delete(set.cursors, id)
		}
	}
	set.mu.Unlock()
	if len(mine) == 0 {
		return nil, false
	}
	for _, fc := range mine {
		body := replaceField(cmd.Body, "cursors", bson.A{fc.id})
		fc.at.dispatch(s, &wire.Command{Name: cmd.Name, DB: cmd.DB, Body: body})
	}
	return wire.OK(bson.E{Key: "cursorsKilled", Value: killed}, bson.E{Key: "cursorsNotFound", Value: bson.A{}},
		bson.E{Key: "cursorsAlive", Value: bson.A{}}, bson.E{Key: "cursorsUnknown", Value: bson.A{}}), true
}

// replaceField is body with key's value replaced.
func replaceField(body bson.Raw, key string, v any) bson.Raw {
	var d bson.D
	if err := bson.Unmarshal(body, &d); err != nil {
		return body
	}
	for i := range d {
		if d[i].Key == key {
			d[i].Value = v
		}
	}
	return mustMarshal(d)
}

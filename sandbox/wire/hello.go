package wire

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/release"
)

// HelloBase is the part of a hello/isMaster reply every MongoDB server sends, for a
// server of the given version. Callers add their role: msg "isdbgrid" for a router,
// setName/hosts/isWritablePrimary for a replica-set primary. Sandbox nodes use
// Identity.Hello, which adds what depends on the connection.
func HelloBase(cmd *Command, version string) bson.D {
	primaryKey := "isWritablePrimary"
	if !strings.EqualFold(cmd.Name, "hello") {
		primaryKey = "ismaster"
	}
	d := bson.D{{Key: primaryKey, Value: true}}
	if ok, _ := cmd.Lookup("helloOk").BooleanOK(); ok {
		// Every release the sandbox presents has hello (3.6.21+, 4.0.21+, 4.2.10+,
		// 4.4.2+): it says so to a client that asks in its legacy handshake.
		d = append(d, bson.E{Key: "helloOk", Value: true})
	}
	return append(d,
		bson.E{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
		bson.E{Key: "maxMessageSizeBytes", Value: int32(maxMessageSize)},
		bson.E{Key: "maxWriteBatchSize", Value: int32(100000)},
		bson.E{Key: "localTime", Value: time.Now()},
		bson.E{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
		bson.E{Key: "minWireVersion", Value: int32(0)},
		bson.E{Key: "maxWireVersion", Value: release.MaxWireVersion(version)},
		bson.E{Key: "readOnly", Value: false},
	)
}

// Topology is a node incarnation's topologyVersion (4.4+): a process id that changes
// when the node restarts and a counter of its topology changes (a replica set member
// changing role: Changed).
type Topology struct {
	processID primitive.ObjectID
	counter   atomic.Int64
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced by Changed
}

// NewTopology starts a node incarnation's topology version.
func NewTopology() *Topology {
	return &Topology{processID: primitive.NewObjectID(), changed: make(chan struct{})}
}

// Changed counts a topology change and answers the hellos awaiting one.
func (t *Topology) Changed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counter.Add(1)
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Topology) changedChan() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

func (t *Topology) doc() bson.D {
	return bson.D{{Key: "processId", Value: t.processID}, {Key: "counter", Value: t.counter.Load()}}
}

// Hello is the hello/isMaster reply a sandbox node of this identity sends on session s,
// before its role's fields: HelloBase plus connectionId and, from 4.4, topologyVersion.
// The node calls Topology.Await first.
func (id Identity) Hello(s *Session, cmd *Command, topo *Topology) bson.D {
	rel := id.Release()
	d := HelloBase(cmd, id.Version)
	if rel.AtLeast(release.V42) && s != nil {
		d = append(d, bson.E{Key: "connectionId", Value: int32(s.ID)})
	}
	if rel.TopologyVersion() && topo != nil {
		d = append(d, bson.E{Key: "topologyVersion", Value: topo.doc()})
	}
	return d
}

// Await holds a 4.4+ node's awaitable hello (topologyVersion equal to the node's and
// maxAwaitTimeMS, the drivers' streaming monitor) for maxAwaitTimeMS, or until ctx
// ends, as MongoDB does while its topology does not change: answering at once would
// make the driver ask again in a tight loop. Any other hello returns at once.
func (topo *Topology) Await(ctx context.Context, id Identity, cmd *Command) {
	if !id.Release().TopologyVersion() {
		return
	}
	wait, ok := cmd.Lookup("maxAwaitTimeMS").AsInt64OK()
	tv, isDoc := cmd.Lookup("topologyVersion").DocumentOK()
	if !ok || !isDoc || wait <= 0 {
		return
	}
	pid, _ := tv.Lookup("processId").ObjectIDOK()
	counter, _ := tv.Lookup("counter").AsInt64OK()
	changed := topo.changedChan()
	if pid != topo.processID || counter != topo.counter.Load() {
		return
	}
	t := time.NewTimer(time.Duration(wait) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-changed:
	case <-ctx.Done():
	}
}

// StateErrorReply is the reply to a command refused for the node's replica set state
// ("not primary"...): from 4.4 it carries the node's topologyVersion, by which a driver
// tells a current error (it rechecks the node) from a stale one (it ignores it).
// A retryable write (the command has a txnNumber outside a transaction) refused so
// is labelled RetryableWriteError, as 4.4+ drivers expect before they retry it.
func (topo *Topology) StateErrorReply(id Identity, cmd *Command, err *Error) bson.Raw {
	d := bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: err.Msg}, {Key: "code", Value: err.Code}, {Key: "codeName", Value: err.Name}}
	_, inTxn := cmd.Lookup("autocommit").BooleanOK()
	if cmd.Lookup("txnNumber").Type != 0 && !inTxn {
		d = append(d, bson.E{Key: "errorLabels", Value: bson.A{"RetryableWriteError"}})
	}
	if id.Release().TopologyVersion() {
		d = append(d, bson.E{Key: "topologyVersion", Value: topo.doc()})
	}
	return Reply(d)
}

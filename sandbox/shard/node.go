package shard

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// node is one running incarnation of a shard, from Start or Restart to Stop: FerretDB,
// the oplog, the catalog and the cursors on the oplog.
type node struct {
	front   *Front
	ctx     context.Context // ends at Stop: aborts backend calls and cursor waits
	cancel  context.CancelFunc
	be      *backend
	oplog   *oplog
	cat     *catalog
	cursors *cursorRegistry[*oplogCursor]
	// idOrdered are the open cursors of finds sorted by _id, which the front
	// answers itself (idorder.go).
	idOrdered *cursorRegistry[*idOrderedCursor]
	// idScanRows counts the rows the _id index scans read (idscan.go).
	idScanRows atomic.Int64
	// upsertsTogether counts the replace-upserts inserted with others (upsertbatch.go).
	upsertsTogether atomic.Int64
	// keyBounded are the open cursors of finds bounded on a shard key index, by
	// id, with their bounds (keybounds.go).
	keyBounded sync.Map
	electionID primitive.ObjectID
	topo       *wire.Topology
	started    time.Time
	noopDone   chan struct{}

	// member is the node's index in its replica set; primary says whether it is the
	// set's primary now, and term ends the writes of its time as primary (replset.go).
	member   int
	primary  atomic.Bool
	termMu   sync.Mutex
	termCtx  context.Context
	termStop context.CancelFunc
	replDone chan struct{} // closed when a secondary's replication loop ends
	// peers are the set's members of this incarnation, n among them (set once by
	// openNodes, before the node serves).
	peers []*node

	// writeMu serializes every write of the shard, so that oplog order is apply order
	// and an entry becomes visible only after everything before it.
	writeMu sync.Mutex
	// sessions are the retryable writes' sessions by lsid (see sessions.go), under
	// writeMu, with those whose config.transactions record is due.
	sessions      map[string]*sessionRecord
	dirtySessions map[string]bool
	sessionsDone  chan struct{}
	// recordsMu serializes the writes of config.transactions (FerretDB's upsert is not
	// atomic: two at once for one _id both insert). It is taken after writeMu.
	recordsMu sync.Mutex
	// txns are the primary's open transactions by txnKeyOf, txnLocks the documents
	// they write (lockKey to txn key), txnChains the transactions whose entries the
	// member applied or read but not their end (txn.go, txn_apply.go), all under
	// writeMu; deferredTxnRecords, when set, collects config.transactions records
	// instead of writing them (rebuildTxns).
	txns               map[string]*shardTxn
	txnLocks           map[string]string
	txnChains          map[string]*txnChain
	deferredTxnRecords map[string]bson.D
}

// openNode opens member i of the shard's set in its directory; a secondary shares the
// set's catalog, cat (nil: the node loads it from the shard's directory).
func openNode(f *Front, i int, cat *catalog) (*node, error) {
	dir := f.memberDir(i)
	be, err := startBackend(dir, f.cfg.Logger)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{
		front:      f,
		ctx:        ctx,
		cancel:     cancel,
		be:         be,
		cursors:    newCursorRegistry[*oplogCursor](),
		idOrdered:  newCursorRegistry[*idOrderedCursor](),
		electionID: primitive.NewObjectID(),
		topo:       wire.NewTopology(),
		started:    time.Now(),
		noopDone:   make(chan struct{}),
		member:     i,
		replDone:   make(chan struct{}),

		sessionsDone: make(chan struct{}),
		txns:         map[string]*shardTxn{},
		txnLocks:     map[string]string{},
		txnChains:    map[string]*txnChain{},
	}
	fail := func(err error) (*node, error) {
		cancel()
		be.close()
		if n.oplog != nil {
			n.oplog.close()
		}
		return nil, err
	}
	if n.cat = cat; cat == nil {
		if n.cat, err = loadCatalog(filepath.Join(f.cfg.Dir, "catalog.bson")); err != nil {
			return fail(err)
		}
		if err := n.reconcile(); err != nil {
			return fail(err)
		}
	}
	if n.oplog, err = openOplogFile(filepath.Join(dir, "oplog.bson"), f.memberOplogSize(i), f.forms, cat == nil); err != nil {
		return fail(err)
	}
	n.oplog.setHoles(f.cfg.OplogHoles)
	n.rebuildSessions()
	go n.noops(f.cfg.NoopInterval)
	go n.flushSessions()
	f.logStartup(n.started)
	return n, nil
}

// reconcile brings the catalog in line with the collections FerretDB holds.
func (n *node) reconcile() error {
	reply, err := n.be.run(n.ctx, "admin", bson.D{{Key: "listDatabases", Value: 1}, {Key: "nameOnly", Value: true}})
	if err != nil {
		return fmt.Errorf("list the shard's databases: %w", err)
	}
	found := map[string]primitive.Binary{}
	dbs := values(reply.Lookup("databases"))
	for _, d := range dbs {
		db := str(document(d).Lookup("name"))
		r, err := n.be.run(n.ctx, db, bson.D{{Key: "listCollections", Value: 1}})
		if err != nil {
			return fmt.Errorf("list the collections of %s: %w", db, err)
		}
		colls, err := n.be.drain(n.ctx, db, r)
		if err != nil {
			return fmt.Errorf("list the collections of %s: %w", db, err)
		}
		for _, c := range colls {
			var uuid primitive.Binary
			if sub, data, ok := c.Lookup("info", "uuid").BinaryOK(); ok && sub == 4 {
				uuid = primitive.Binary{Subtype: 4, Data: data}
			}
			name := str(c.Lookup("name"))
			if err := n.be.ensureIDIndex(n.ctx, db, name); err != nil {
				return err
			}
			found[db+"."+name] = uuid
		}
	}
	return n.cat.reconcile(found)
}

// noops writes a periodic no-op whenever the oplog has been quiet for interval, as a
// replica-set primary does.
func (n *node) noops(interval time.Duration) {
	defer close(n.noopDone)
	for {
		_, wall := n.oplog.last()
		wait := min(time.Until(wall.Add(interval)), interval)
		if wait <= 0 && !n.primary.Load() {
			wait = interval // a secondary's no-ops come from its primary
		}
		if wait <= 0 {
			// Under the write lock, so that no entry follows a stepdown.
			n.writeMu.Lock()
			if n.primary.Load() {
				if err := n.oplog.append(noop("periodic noop")); err != nil {
					n.front.cfg.Logger.Error("periodic noop", "shard", n.front.cfg.Name, "err", err)
				}
			}
			n.writeMu.Unlock()
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// close ends the incarnation: cursors and waits are cancelled, FerretDB stops and
// releases its files, the oplog file is closed.
func (n *node) close() error {
	n.cancel()
	<-n.noopDone
	<-n.sessionsDone
	<-n.replDone
	n.cursors.clear()
	n.idOrdered.clear()
	errBe := n.be.close()
	errLog := n.oplog.close()
	if errBe != nil {
		return errBe
	}
	return errLog
}

// handle answers one command.
func (n *node) handle(s *wire.Session, cmd *wire.Command) bson.Raw {
	n.gossipIn(cmd)
	return n.gossipOut(cmd, n.serve(s, cmd))
}

// serve answers a command (handle without the cluster time's gossip).
func (n *node) serve(s *wire.Session, cmd *wire.Command) bson.Raw {
	if r, ok := n.front.cfg.Identity.AnswerCommon(s, cmd); ok {
		return r
	}
	if err := n.directShardCheck(s, cmd); err != nil {
		return wire.ErrorReply(err)
	}
	if r, ok := n.replGate(s, cmd); ok {
		return r
	}
	return n.dispatch(s, cmd)
}

// dispatch runs a command the member may serve (see replGate).
func (n *node) dispatch(s *wire.Session, cmd *wire.Command) bson.Raw {
	if r, ok := n.serveInternal(cmd); ok {
		return r
	}
	if writeCommands[strings.ToLower(cmd.Name)] {
		ctx := n.writeContext()
		reply := n.command(ctx, s, cmd)
		if ctx.Err() != nil && n.ctx.Err() == nil {
			// The member stepped down while the write waited for the write lock: it
			// changed nothing (see StepDown).
			return n.topo.StateErrorReply(n.front.cfg.Identity, cmd, &wire.Error{Code: 11602, Name: "InterruptedDueToReplStateChange",
				Msg: "operation was interrupted because the member stepped down"})
		}
		return reply
	}
	return n.command(n.ctx, s, cmd)
}

// command runs a command on the member's data.
func (n *node) command(ctx context.Context, s *wire.Session, cmd *wire.Command) bson.Raw {
	switch strings.ToLower(cmd.Name) {
	case "hello", "ismaster":
		return n.hello(s, cmd)
	case "replsetgetstatus":
		return n.replSetGetStatus(cmd)
	case "replsetgetrbid":
		return wire.OK(bson.E{Key: "rbid", Value: n.front.set.rbid(n.member)})
	case "replsetgetconfig":
		return n.replSetGetConfig(cmd)
	case "serverstatus":
		return n.serverStatus()
	case "appendoplognote":
		return n.appendOplogNote(cmd)
	case "replsetresizeoplog":
		return n.replSetResizeOplog(cmd)
	case "saslstart", "saslcontinue":
		// Only reached when the shard runs without credentials.
		return wire.ErrorReply(wire.AuthenticationFailed())
	case "insert", "update", "delete":
		if cmd.Lookup("autocommit").Type != 0 {
			return n.txnWrite(ctx, cmd)
		}
		switch strings.ToLower(cmd.Name) {
		case "insert":
			return n.insert(ctx, cmd)
		case "update":
			return n.update(ctx, cmd)
		}
		return n.delete(ctx, cmd)
	case "preparetransaction", "committransaction", "aborttransaction":
		return n.txnCommand(ctx, cmd)
	case "findandmodify":
		return n.findAndModify(ctx, cmd)
	case "create":
		return n.create(ctx, cmd)
	case "drop":
		return n.drop(ctx, cmd)
	case "dropdatabase":
		return n.dropDatabase(ctx, cmd)
	case "renamecollection":
		return n.renameCollection(ctx, cmd)
	case "createindexes":
		return n.createIndexes(ctx, cmd)
	case "dropindexes", "deleteindexes":
		return n.dropIndexes(ctx, cmd)
	case "collmod":
		return n.collMod(ctx, cmd)
	case "_sandboxsetcollection":
		return n.setCollection(cmd)
	case "_sandboxnoop":
		return n.shardingNoop(cmd)
	case "find":
		return n.find(ctx, cmd)
	case "getmore":
		return n.getMore(ctx, cmd)
	case "killcursors":
		return n.killCursors(ctx, cmd)
	case "count":
		return n.count(ctx, cmd)
	case "collstats":
		return n.collStats(ctx, cmd)
	case "dbstats":
		return n.dbStats(ctx, cmd)
	case "aggregate":
		return n.aggregate(ctx, cmd)
	case "listcollections":
		return n.listCollections(ctx, cmd)
	case "listindexes":
		return n.listIndexes(ctx, cmd)
	case "listdatabases":
		return n.listDatabases(ctx, cmd)
	}
	return n.passthrough(ctx, cmd)
}

// passthrough sends a command to FerretDB as it came, less its envelope.
func (n *node) passthrough(ctx context.Context, cmd *wire.Command) bson.Raw {
	return relay(n.be.run(ctx, cmd.DB, stripped(cmd.Body)))
}

// relay turns a backend answer into the reply for the client.
func relay(reply bson.Raw, err error) bson.Raw {
	if err == nil {
		return reply
	}
	if be, ok := err.(*backendError); ok {
		return be.reply
	}
	return wire.ErrorReply(&wire.Error{Code: 6, Name: "HostUnreachable", Msg: err.Error()})
}

// collName is the collection a command names in its first field.
func collName(cmd *wire.Command) (string, bool) {
	s, ok := cmd.Body.Lookup(cmd.Name).StringValueOK()
	return s, ok && s != ""
}

func isOplog(db, coll string) bool { return db == "local" && coll == "oplog.rs" }

package shard

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// A shard is a replica set of Config.Members members (1 unless told otherwise). Each
// member is a node of its own: its own address, FerretDB files (member 0 in the
// shard's directory, member i in Dir/member<i>) and oplog. The primary's front takes
// the writes and writes the oplog, as before; each secondary follows the primary's
// oplog in the same process, applying every entry to its own FerretDB and appending it
// to its own oplog (apply.go) once the entry is older than the member's lag. That
// keeps the members honest (a secondary's data and oplog are what it has applied, so
// a rollback, a lagging secondary or a majority read show real differences) at the
// cost of one more FerretDB write per entry per secondary, and two idle embedded
// FerretDB servers per member (data and the keyed writes' workbench): nothing runs
// while the oplog is quiet, since the appliers wait on the oplog's change signal.
// Measured on the 2-core test machine: 2 clusters x 2 shards x 3 members start in
// about 0.25 s (0.11 s with 1 member) and idle at under 1% of one core; 5,000 inserts
// through a router took 2.5 s to reach every member (0.6 s on 1-member shards), as
// secondaries apply runs of inserts as one FerretDB insert. Separate database names
// in one FerretDB would save the idle servers but not the writes, and would leak into
// listDatabases, dbStats and the catalog's reconciliation of every member.
//
// The majority commit point is the newest optime a majority of members hold; a
// secondary reports it no further than its own last entry. Reads at readConcern
// majority are served by the member the client sent them to when it holds exactly
// that point, else by one that does (on a 3-member set, the most advanced secondary,
// or the primary when they are level), see readconcern.go: FerretDB keeps no older
// snapshot for a member behind it to serve from. StepDown hands the primary role to the most advanced secondary: it
// first catches up (as MongoDB's stepDown waits for one), unless rollback is asked,
// in which case the old primary's entries beyond the new primary's last one are cut
// from its oplog and their documents refetched from the new primary, as MongoDB's
// refetch-based rollback does. The set's catalog (UUIDs, shard keys, views, indexes
// FerretDB cannot hold) is shared by its members: a rollback of DDL is refused.

// replSet is the set's state that outlives a node incarnation.
type replSet struct {
	mu      sync.Mutex
	primary int
	lags    []time.Duration // per member: how old an entry must be to be applied; <0 holds
	changed chan struct{}   // closed and replaced when roles or lags change
	// cursors are the majority reads' cursors served by another member, by the id the
	// client holds (readconcern.go).
	cursors map[int64]forwardedCursor
	nextID  int64
	// rbids are the members' rollback ids (replSetGetRBID): 1, plus one per rollback
	// the member went through; kept in replset.json, as a real member keeps its in
	// local.system.rollback.id, so that a restart does not reset them.
	rbids []int32
}

func (s *replSet) rbid(member int) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rbids[member]
}

func (s *replSet) init(members int, st replSetState) {
	s.lags = make([]time.Duration, members)
	s.rbids = make([]int32, members)
	for i := range s.rbids {
		s.rbids[i] = 1
		if i < len(st.RBIDs) && st.RBIDs[i] > 0 {
			s.rbids[i] = st.RBIDs[i]
		}
	}
	primary := st.Primary
	s.changed = make(chan struct{})
	s.cursors = map[int64]forwardedCursor{}
	if primary < 0 || primary >= members {
		primary = 0
	}
	s.primary = primary
}

func (s *replSet) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// watch is the current primary, the members' lags and a channel closed when either
// changes.
func (s *replSet) watch() (primary int, changed <-chan struct{}, lags []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.primary, s.changed, slices.Clone(s.lags)
}

// replSetState is Dir/replset.json: who is primary, where the secondaries listen and
// the members' rollback ids, so that a restart brings the same set back.
type replSetState struct {
	Primary int      `json:"primary"`
	Members []string `json:"members"`
	RBIDs   []int32  `json:"rbids,omitempty"`
}

func loadReplSetState(dir string) (replSetState, error) {
	var st replSetState
	data, err := os.ReadFile(filepath.Join(dir, "replset.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s/replset.json is damaged (%w): remove it to start the set with member 0 as primary", dir, err)
	}
	return st, nil
}

func (f *Front) saveReplSetState() error {
	f.set.mu.Lock()
	st := replSetState{Primary: f.set.primary, Members: f.MemberAddrs(), RBIDs: slices.Clone(f.set.rbids)}
	f.set.mu.Unlock()
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(f.cfg.Dir, ".replset.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("save the replica set's state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(f.cfg.Dir, "replset.json"))
}

// memberAddr is where member i (a secondary at start) listens.
func memberAddr(cfg Config, st replSetState, i int) string {
	switch {
	case i-1 < len(cfg.MemberAddrs) && cfg.MemberAddrs[i-1] != "":
		return cfg.MemberAddrs[i-1]
	case i < len(st.Members):
		return st.Members[i]
	}
	return "127.0.0.1:0"
}

// memberDir is member i's directory.
func (f *Front) memberDir(i int) string {
	if i == 0 {
		return f.cfg.Dir
	}
	return filepath.Join(f.cfg.Dir, "member"+strconv.Itoa(i))
}

// openNodes opens every member, the primary first (it loads the set's catalog), brings
// the secondaries level with it (see catchUp) and starts their replication.
func openNodes(f *Front) ([]*node, error) {
	f.set.mu.Lock()
	p := f.set.primary
	f.set.mu.Unlock()
	nodes := make([]*node, f.cfg.Members)
	fail := func(err error) ([]*node, error) {
		var open []*node
		for _, n := range nodes {
			if n != nil {
				open = append(open, n)
			}
		}
		closeNodes(open)
		return nil, err
	}
	var err error
	if nodes[p], err = openNode(f, p, nil); err != nil {
		return fail(err)
	}
	nodes[p].becomePrimary()
	nodes[p].takeOverPreparedTxns()
	for i := range nodes {
		if i == p {
			continue
		}
		if nodes[i], err = openNode(f, i, nodes[p].cat); err != nil {
			return fail(fmt.Errorf("member %d: %w", i, err))
		}
		nodes[i].becomeSecondary()
		if err := nodes[i].catchUp(nodes[p]); err != nil {
			return fail(fmt.Errorf("member %d: %w", i, err))
		}
	}
	for _, n := range nodes {
		n.peers = nodes
		go n.replicate(nodes)
	}
	return nodes, nil
}

func closeNodes(nodes []*node) error {
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.close())
	}
	return errors.Join(errs...)
}

// electionIDOf is the electionId of a primary elected in term, as MongoDB makes it
// (an ObjectId carrying the term, so that a newer primary's is greater).
func electionIDOf(term int64) primitive.ObjectID {
	var id primitive.ObjectID
	binary.BigEndian.PutUint32(id[:4], 0x7fffffff)
	binary.BigEndian.PutUint64(id[4:], uint64(term))
	return id
}

// becomePrimary makes n take writes: a new term context that a stepdown ends.
func (n *node) becomePrimary() {
	n.termMu.Lock()
	defer n.termMu.Unlock()
	n.termCtx, n.termStop = context.WithCancel(n.ctx)
	n.electionID = electionIDOf(n.oplog.term())
	n.oplog.setSecondary(false)
	n.primary.Store(true)
}

// becomeSecondary ends n's writes: those waiting for the write lock fail.
func (n *node) becomeSecondary() {
	n.termMu.Lock()
	defer n.termMu.Unlock()
	n.primary.Store(false)
	n.oplog.setSecondary(true)
	if n.termStop != nil {
		n.termStop()
	}
}

// writeContext is the context of a write on n: cancelled when n steps down.
func (n *node) writeContext() context.Context {
	n.termMu.Lock()
	defer n.termMu.Unlock()
	if n.termCtx == nil {
		return n.ctx
	}
	return n.termCtx
}

// replicationBatch is how many entries a secondary applies under one hold of its lock.
const replicationBatch = 256

// replicate applies the primary's entries while n is a secondary, each once it is as old
// as n's lag, until n stops.
func (n *node) replicate(nodes []*node) {
	defer close(n.replDone)
	for n.ctx.Err() == nil {
		primary, changed, lags := n.front.set.watch()
		var wait <-chan struct{}
		var timer *time.Timer
		if primary != n.member {
			src := nodes[primary]
			// Taken before reading: an entry appended after the read closes it. Taken
			// after, an entry appended between the two waited for the next one (a
			// no-op, 10 s later), and the majority point with it.
			wait, _ = src.oplog.changed()
			applied, pending, err := n.pull(src, lags[n.member])
			switch {
			case err != nil && n.ctx.Err() != nil:
				return
			case err != nil:
				n.front.cfg.Logger.Error("secondary cannot apply its primary's entries", "shard", n.front.cfg.Name, "member", n.member, "err", err)
				timer = time.NewTimer(time.Second)
			case applied > 0:
				continue
			case pending > 0:
				timer = time.NewTimer(pending)
			}
		}
		var tick <-chan time.Time
		if timer != nil {
			tick = timer.C
		}
		select {
		case <-n.ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-changed:
		case <-wait:
		case <-tick:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// pull applies the entries of src after n's last one that are older than lag (lag < 0:
// none). It reports how many it applied, and how long until the next one is due.
func (n *node) pull(src *node, lag time.Duration) (applied int, pending time.Duration, err error) {
	if lag < 0 {
		return 0, 0, nil
	}
	last, _ := n.oplog.last()
	es, held := src.oplog.since(last, replicationBatch)
	if len(es) == 0 {
		return 0, 0, nil
	}
	if !held {
		return 0, 0, fmt.Errorf("its last entry %v is not in member %d's oplog (rolled over or diverged)", last, src.member)
	}
	due := time.Now().Add(-lag)
	ready := len(es)
	for i, e := range es {
		if wall := entryWall(e); wall.After(due) {
			ready, pending = i, wall.Sub(due)
			break
		}
	}
	if ready == 0 {
		return 0, pending, nil
	}
	return ready, pending, n.applyEntries(es[:ready], src)
}

func entryWall(e entry) time.Time {
	ms, _ := e.raw.Lookup("wall").DateTimeOK()
	return time.UnixMilli(ms)
}

// applyEntries applies es (from src) to n's data, then appends them to n's oplog.
// A stepdown may have come between reading es and taking the lock: entries of a
// member no longer primary, or that no longer follow n's last one, are left alone.
func (n *node) applyEntries(es []entry, src *node) error {
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	n.front.set.mu.Lock()
	current := n.front.set.primary == src.member
	n.front.set.mu.Unlock()
	if last, _ := n.oplog.last(); !current || src.oplog.entryAfter(last) != es[0].ts {
		return nil
	}
	return n.applyEntriesLocked(es, src)
}

func (n *node) applyEntriesLocked(es []entry, src *node) error {
	if err := n.ctx.Err(); err != nil {
		return err
	}
	// Runs of inserts into one collection go to FerretDB as one insert: one SQLite
	// transaction instead of one per document (a secondary kept up with a seeding
	// primary ten times slower without it).
	var run inserts
	done := 0
	flush := func() error {
		if err := n.insertRun(run); err != nil {
			return err
		}
		run = inserts{}
		return nil
	}
	fail := func(e entry, err error) error {
		if errApp := n.oplog.appendEntries(es[:done]); errApp != nil {
			return errApp
		}
		return fmt.Errorf("apply %s: %w", e.raw, err)
	}
	for i, e := range es {
		if te, ok := txnEntryOf(e.raw); ok {
			if len(run.docs) > 0 {
				if err := flush(); err != nil {
					return fail(e, err)
				}
				done = i
			}
			if err := n.applyTxnEntry(n.ctx, te, src); err != nil {
				return fail(e, err)
			}
			done = i + 1
			continue
		}
		if ns, docs, ok := insertsOf(e); ok {
			if ns != run.ns && len(run.docs) > 0 {
				if err := flush(); err != nil {
					return fail(e, err)
				}
				done = i
			}
			run.ns = ns
			run.docs = append(run.docs, docs...)
			continue
		}
		if len(run.docs) > 0 {
			if err := flush(); err != nil {
				return fail(e, err)
			}
			done = i
		}
		if err := n.applyEntry(n.ctx, e, src); err != nil {
			return fail(e, err)
		}
		done = i + 1
	}
	if len(run.docs) > 0 {
		if err := flush(); err != nil {
			return fail(es[len(es)-1], err)
		}
	}
	return n.oplog.appendEntries(es)
}

// inserts are documents to insert into one namespace.
type inserts struct {
	ns   string
	docs []bson.Raw
}

// insertsOf is what an insert entry inserts (a vectored insert's applyOps included):
// ok false for any other entry.
func insertsOf(e entry) (ns string, docs []bson.Raw, ok bool) {
	op := str(e.raw.Lookup("op"))
	o, _ := e.raw.Lookup("o").DocumentOK()
	if op == "i" {
		return str(e.raw.Lookup("ns")), []bson.Raw{o}, true
	}
	ops, isApplyOps := o.Lookup("applyOps").ArrayOK()
	if op != "c" || !isApplyOps {
		return "", nil, false
	}
	vals, _ := ops.Values()
	for _, v := range vals {
		d, _ := v.DocumentOK()
		inner, _ := d.Lookup("o").DocumentOK()
		if str(d.Lookup("op")) != "i" || (ns != "" && str(d.Lookup("ns")) != ns) {
			return "", nil, false
		}
		ns = str(d.Lookup("ns"))
		docs = append(docs, inner)
	}
	return ns, docs, len(docs) > 0
}

// insertRun inserts a run's documents; one already there (an entry applied again
// after a restart) is replaced.
func (n *node) insertRun(run inserts) error {
	db, coll, _ := strings.Cut(run.ns, ".")
	for start := 0; start < len(run.docs); start += cloneBatch {
		batch := run.docs[start:min(start+cloneBatch, len(run.docs))]
		docs := make(bson.A, len(batch))
		for i, d := range batch {
			docs[i] = d
		}
		reply, err := n.be.run(n.ctx, db, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: docs}, {Key: "ordered", Value: false}})
		if err != nil {
			return err
		}
		werrs, _ := reply.Lookup("writeErrors").ArrayOK()
		vals, _ := werrs.Values()
		for _, v := range vals {
			we, _ := v.DocumentOK()
			idx, _ := we.Lookup("index").AsInt64OK()
			if code, _ := we.Lookup("code").AsInt32OK(); code != 11000 {
				return firstWriteError(reply)
			}
			if err := n.replaceDoc(n.ctx, db, coll, batch[idx]); err != nil {
				return err
			}
		}
	}
	return nil
}

// catchUp applies every entry of src that n lacks, regardless of lag: a restarted
// set's secondaries start level with the primary (entries read back from the file
// have no post-image: their documents come from src, which takes no write meanwhile).
func (n *node) catchUp(src *node) error {
	if _, size, _ := n.oplog.stats(); size == 0 {
		if err := n.initialSync(src); err != nil {
			return fmt.Errorf("initial sync: %w", err)
		}
	}
	for {
		last, _ := n.oplog.last()
		es, held := src.oplog.since(last, replicationBatch)
		if len(es) == 0 {
			return nil
		}
		if !held {
			return fmt.Errorf("its last entry %v is not in the primary's oplog: remove %s to sync it again", last, n.front.memberDir(n.member))
		}
		if err := n.applyEntries(es, src); err != nil {
			return err
		}
	}
}

// SetLag makes member apply its primary's entries only once they are d old (d < 0: not
// at all, holding its replication, until the next SetLag); member -1 sets every
// member's lag. It takes effect at once.
func (f *Front) SetLag(member int, d time.Duration) error {
	f.set.mu.Lock()
	defer f.set.mu.Unlock()
	if member < -1 || member >= len(f.set.lags) {
		return fmt.Errorf("shard %s has members 0 to %d, not %d", f.cfg.Name, len(f.set.lags)-1, member)
	}
	for i := range f.set.lags {
		if member == -1 || member == i {
			f.set.lags[i] = d
		}
	}
	f.set.notifyLocked()
	return nil
}

// OpTime is a member's position: its newest entry's ts, term and wall time.
type OpTime struct {
	TS   primitive.Timestamp
	Term int64
	Wall time.Time
}

func (o OpTime) doc() bson.D {
	return bson.D{{Key: "ts", Value: o.TS}, {Key: "t", Value: o.Term}}
}

// Member is what the set says of one member.
type Member struct {
	Index   int
	Addr    string
	State   string // "PRIMARY", "SECONDARY"
	Applied OpTime
	Lag     time.Duration // how old entries must be before it applies them; <0: held
}

// running returns the nodes, or an error when the shard is stopped.
func (f *Front) running() ([]*node, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.mu.nodes == nil {
		return nil, fmt.Errorf("shard %s is stopped", f.cfg.Name)
	}
	return f.mu.nodes, nil
}

// Members describes the set's members.
func (f *Front) Members() ([]Member, error) {
	nodes, err := f.running()
	if err != nil {
		return nil, err
	}
	f.set.mu.Lock()
	lags := slices.Clone(f.set.lags)
	f.set.mu.Unlock()
	out := make([]Member, len(nodes))
	for i, n := range nodes {
		out[i] = Member{Index: i, Addr: f.servers[i].Addr(), State: n.stateStr(), Applied: n.opTime(), Lag: lags[i]}
	}
	return out, nil
}

func (n *node) opTime() OpTime {
	ts, term, wall := n.oplog.opTime()
	return OpTime{TS: ts, Term: term, Wall: wall}
}

func (n *node) stateStr() string {
	if n.primary.Load() {
		return "PRIMARY"
	}
	return "SECONDARY"
}

// majority is the set's majority commit point and the member holding exactly it (the
// primary's when a majority is level with it).
func majority(nodes []*node) (OpTime, *node) {
	ops := make([]OpTime, len(nodes))
	order := make([]int, len(nodes))
	for i, n := range nodes {
		ops[i], order[i] = n.opTime(), i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := compareTS(ops[b].TS, ops[a].TS); c != 0 {
			return c
		}
		// Among equals, the primary first.
		if nodes[a].primary.Load() != nodes[b].primary.Load() {
			if nodes[a].primary.Load() {
				return -1
			}
			return 1
		}
		return a - b
	})
	at := order[len(nodes)/2]
	for _, i := range order {
		if ops[i].TS == ops[at].TS {
			return ops[at], nodes[i]
		}
	}
	return ops[at], nodes[at]
}

// MajorityOpTime is the set's majority commit point.
func (f *Front) MajorityOpTime() (OpTime, error) {
	nodes, err := f.running()
	if err != nil {
		return OpTime{}, err
	}
	op, _ := majority(nodes)
	return op, nil
}

package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/topology"
)

// --- entries -------------------------------------------------------------------

func at(t uint32) primitive.Timestamp { return primitive.Timestamp{T: t, I: 1} }

func entry(ts primitive.Timestamp, op, ns string, fields ...bson.E) bson.Raw {
	d := bson.D{{Key: "ts", Value: ts}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)},
		{Key: "op", Value: op}, {Key: "ns", Value: ns}}
	d = append(d, fields...)
	d = append(d, bson.E{Key: "wall", Value: primitive.NewDateTimeFromTime(time.Unix(int64(ts.T), 0))})
	raw, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return raw
}

func insertOp(ts primitive.Timestamp, ns string, doc bson.D) bson.Raw {
	return entry(ts, "i", ns, bson.E{Key: "o", Value: doc})
}

// setOp is a $v: 2 update setting top-level fields of the document with _id id.
func setOp(ts primitive.Timestamp, ns string, id any, set bson.D) bson.Raw {
	return entry(ts, "u", ns,
		bson.E{Key: "o", Value: bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{{Key: "u", Value: set}}}}},
		bson.E{Key: "o2", Value: bson.D{{Key: "_id", Value: id}}})
}

func deleteOp(ts primitive.Timestamp, ns string, id any) bson.Raw {
	return entry(ts, "d", ns, bson.E{Key: "o", Value: bson.D{{Key: "_id", Value: id}}})
}

func noopOp(ts primitive.Timestamp) bson.Raw {
	return entry(ts, "n", "", bson.E{Key: "o", Value: bson.D{{Key: "msg", Value: "periodic noop"}}})
}

func commandOp(ts primitive.Timestamp, db string, cmd bson.D, fields ...bson.E) bson.Raw {
	return entry(ts, "c", db+".$cmd", append([]bson.E{{Key: "o", Value: cmd}}, fields...)...)
}

// txnOp is an applyOps entry of the transaction (lsid, txn); partial marks a link
// that more entries follow.
func txnOp(ts, prev primitive.Timestamp, lsid bson.D, txn int64, partial bool, ops ...bson.D) bson.Raw {
	o := bson.D{{Key: "applyOps", Value: ops}}
	if partial {
		o = append(o, bson.E{Key: "partialTxn", Value: true})
	}
	return commandOp(ts, "admin", o,
		bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: txn},
		bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: prev}, {Key: "t", Value: int64(-1)}}})
}

func innerInsert(ns string, doc bson.D) bson.D {
	return bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: ns}, {Key: "o", Value: doc}}
}

// --- source ----------------------------------------------------------------------

// fakeOplog is an in-memory oplog with tailable semantics: cursors see entries
// appended after they opened, old entries roll off, and faults can be injected.
type fakeOplog struct {
	batch  int
	finite bool // cursors end with io.EOF once they reach the end

	mu struct {
		sync.Mutex
		entries []bson.Raw
		ts      []primitive.Timestamp
		rolled  int // entries rolled off so far (the index of entries[0] in the log)
		changed chan struct{}
		faults  []error // returned by the next Next calls, one each
		tails   []primitive.Timestamp
		hidden  map[primitive.Timestamp]bool // entries in an oplog hole: cursors pass them
	}
	reads   atomic.Int64 // entries returned by cursors
	onRead  func()       // called after each batch is read
	awaitMs int
	// majority is the majority commit point (packTS), unbounded while zero;
	// majorityReads counts the times it was read.
	majority      atomic.Uint64
	majorityReads atomic.Int64
	noCommitPoint atomic.Bool // the member reports none (a primary elected a moment ago)
}

func newFakeOplog(entries ...bson.Raw) *fakeOplog {
	o := &fakeOplog{batch: 3, awaitMs: 5}
	o.mu.changed = make(chan struct{})
	o.append(entries...)
	return o
}

func (o *fakeOplog) append(entries ...bson.Raw) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range entries {
		t, i := e.Lookup("ts").Timestamp()
		o.mu.entries = append(o.mu.entries, e)
		o.mu.ts = append(o.mu.ts, primitive.Timestamp{T: t, I: i})
	}
	close(o.mu.changed)
	o.mu.changed = make(chan struct{})
}

// appendRolling appends entries and rolls the oplog to ts at once, as a capped
// oplog does when writes come faster than it holds them.
func (o *fakeOplog) appendRolling(ts primitive.Timestamp, entries ...bson.Raw) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range entries {
		t, i := e.Lookup("ts").Timestamp()
		o.mu.entries = append(o.mu.entries, e)
		o.mu.ts = append(o.mu.ts, primitive.Timestamp{T: t, I: i})
	}
	o.rollLocked(ts)
	close(o.mu.changed)
	o.mu.changed = make(chan struct{})
}

// rollTo drops every entry older than ts, as a capped oplog does when it is full.
func (o *fakeOplog) rollTo(ts primitive.Timestamp) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rollLocked(ts)
}

func (o *fakeOplog) rollLocked(ts primitive.Timestamp) {
	n := 0
	for n < len(o.mu.ts) && o.mu.ts[n].Before(ts) {
		n++
	}
	o.mu.entries = o.mu.entries[n:]
	o.mu.ts = o.mu.ts[n:]
	o.mu.rolled += n
}

// hide puts the entry at ts in an oplog hole: cursors pass it, as they pass a
// write not yet visible on a primary, until reveal.
func (o *fakeOplog) hide(ts primitive.Timestamp) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mu.hidden == nil {
		o.mu.hidden = map[primitive.Timestamp]bool{}
	}
	o.mu.hidden[ts] = true
}

// reveal closes every hole.
func (o *fakeOplog) reveal() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mu.hidden = nil
	close(o.mu.changed)
	o.mu.changed = make(chan struct{})
}

func (o *fakeOplog) inject(errs ...error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mu.faults = append(o.mu.faults, errs...)
}

func (o *fakeOplog) tailedFrom() []primitive.Timestamp {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.mu.tails)
}

func (o *fakeOplog) Tail(_ context.Context, from primitive.Timestamp) (Cursor, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mu.tails = append(o.mu.tails, from)
	i := 0
	for i < len(o.mu.ts) && o.mu.ts[i].Before(from) {
		i++
	}
	return &fakeCursor{o: o, pos: o.mu.rolled + i}, nil
}

func (o *fakeOplog) Newest(context.Context) (primitive.Timestamp, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.mu.ts) == 0 {
		return primitive.Timestamp{}, nil
	}
	return o.mu.ts[len(o.mu.ts)-1], nil
}

func (o *fakeOplog) Oldest(context.Context) (primitive.Timestamp, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.mu.ts) == 0 {
		return primitive.Timestamp{}, nil
	}
	return o.mu.ts[0], nil
}

func (o *fakeOplog) Majority(context.Context) (OpTime, error) {
	o.majorityReads.Add(1)
	if o.noCommitPoint.Load() {
		return OpTime{}, fmt.Errorf("the shard's primary reports none: %w", topology.ErrNoCommitPoint)
	}
	if v := o.majority.Load(); v != 0 {
		return OpTime{TS: unpackTS(v), Term: 1}, nil
	}
	return OpTime{TS: unbounded}, nil
}

// commit moves the majority commit point to ts.
func (o *fakeOplog) commit(ts primitive.Timestamp) { o.majority.Store(packTS(ts)) }

// replace swaps the entries of the oplog for others, as a rollback followed by the
// new primary's writes does.
func (o *fakeOplog) replace(entries ...bson.Raw) {
	o.mu.Lock()
	o.mu.entries, o.mu.ts = nil, nil
	o.mu.Unlock()
	o.append(entries...)
}

type fakeCursor struct {
	o   *fakeOplog
	pos int // absolute index of the next entry
}

func (c *fakeCursor) Next(ctx context.Context) ([]bson.Raw, error) {
	o := c.o
	o.mu.Lock()
	if len(o.mu.faults) > 0 {
		err := o.mu.faults[0]
		o.mu.faults = o.mu.faults[1:]
		o.mu.Unlock()
		return nil, err
	}
	if c.pos < o.mu.rolled {
		o.mu.Unlock()
		return nil, mongo.CommandError{Code: codeCappedPositionLost, Name: "CappedPositionLost", Message: "CollectionScan died due to position in capped collection being deleted"}
	}
	i := c.pos - o.mu.rolled
	if i < len(o.mu.entries) {
		var out []bson.Raw
		for ; i < len(o.mu.entries) && len(out) < o.batch; i++ {
			if !o.mu.hidden[o.mu.ts[i]] {
				out = append(out, slices.Clone(o.mu.entries[i]))
			}
		}
		c.pos = o.mu.rolled + i
		o.mu.Unlock()
		n := len(out)
		o.reads.Add(int64(n))
		if o.onRead != nil {
			o.onRead()
		}
		return out, nil
	}
	if o.finite {
		o.mu.Unlock()
		return nil, io.EOF
	}
	changed := o.mu.changed
	o.mu.Unlock()
	t := time.NewTimer(time.Duration(o.awaitMs) * time.Millisecond)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, nil
}

func (c *fakeCursor) Close(context.Context) error { return nil }

// --- destination -------------------------------------------------------------------

// fakeDest is an in-memory destination: documents by namespace and _id, a log of
// every write applied, and faults on demand.
type fakeDest struct {
	// fail, when set, is asked about every write before it is applied; an error is
	// returned as the bulk write's error at that write.
	fail func(ns oplog.Namespace, w *oplog.Write) error
	// gate, when set, is waited on before every bulk write.
	gate  func(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) error
	delay bool // sleep a random few hundred microseconds per bulk write
	// unique, when set, is a field whose values the destination holds unique per
	// namespace, as a unique index {unique: 1} would (a document without it is not
	// indexed).
	unique string

	mu struct {
		sync.Mutex
		docs map[oplog.Namespace]map[string]bson.D
		log  []appliedWrite
	}
	applied atomic.Int64
}

type appliedWrite struct {
	ns   oplog.Namespace
	kind oplog.WriteKind
	id   string
	v    int32 // the document's "v" after the write, -1 when deleted
}

func newFakeDest() *fakeDest {
	d := &fakeDest{}
	d.mu.docs = map[oplog.Namespace]map[string]bson.D{}
	return d
}

func (d *fakeDest) Write(ctx context.Context, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	if d.gate != nil {
		if err := d.gate(ctx, ns, writes); err != nil {
			return 0, err
		}
	}
	if d.delay {
		time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range writes {
		w := &writes[i]
		if w.NS != ns {
			return i, fmt.Errorf("write to %s in a bulk write to %s", w.NS, ns)
		}
		if d.fail != nil {
			if err := d.fail(ns, w); err != nil {
				return i, err
			}
		}
		if err := d.applyLocked(ns, w); err != nil {
			return i, err
		}
		d.applied.Add(1)
	}
	return len(writes), nil
}

// HoldsID implements IdempotencyChecker.
func (d *fakeDest) HoldsID(_ context.Context, ns oplog.Namespace, id bson.RawValue) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.mu.docs[ns][idKey(id)]
	return ok, nil
}

// AcceptsUpdate implements IdempotencyChecker: the fake takes every update but
// pipelines, which it refuses as MongoDB 4.0 does.
func (d *fakeDest) AcceptsUpdate(_ context.Context, _ oplog.Namespace, w oplog.Write) error {
	if w.Pipeline != nil {
		return mongo.CommandError{Code: codeTypeMismatch, Name: "TypeMismatch", Message: "BSON field 'update.updates.u' is the wrong type 'array', expected type 'object'"}
	}
	return nil
}

func writeError(code int) error {
	return mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: code, Message: fmt.Sprintf("error %d", code)}}}}
}

func idKey(v bson.RawValue) string { return v.String() }

func (d *fakeDest) applyLocked(ns oplog.Namespace, w *oplog.Write) error {
	coll := d.mu.docs[ns]
	if coll == nil {
		coll = map[string]bson.D{}
		d.mu.docs[ns] = coll
	}
	id := idKey(w.Filter.Lookup("_id"))
	cur, exists := coll[id]
	matches := exists && filterMatches(w.Filter, cur)
	var after bson.D
	switch w.Kind {
	case oplog.InsertReplace:
		if exists && !matches {
			return writeError(codeDuplicateKey)
		}
		if !matches && !w.Upsert {
			return nil
		}
		var doc bson.D
		if err := bson.Unmarshal(w.Replacement, &doc); err != nil {
			return err
		}
		after = doc
	case oplog.Delete:
		if matches {
			delete(coll, id)
		}
		d.mu.log = append(d.mu.log, appliedWrite{ns, w.Kind, id, -1})
		return nil
	case oplog.Update:
		if !matches {
			return nil
		}
		if w.Pipeline != nil {
			return errors.New("the fake destination runs no pipeline updates")
		}
		var u bson.D
		if err := bson.Unmarshal(w.Update, &u); err != nil {
			return err
		}
		after = slices.Clone(cur)
		for _, op := range u {
			fields, _ := op.Value.(bson.D)
			for _, f := range fields {
				i := slices.IndexFunc(after, func(e bson.E) bool { return e.Key == f.Key })
				switch {
				case op.Key == "$unset" && i >= 0:
					after = slices.Delete(after, i, i+1)
				case op.Key == "$set" && i >= 0:
					after[i].Value = f.Value
				case op.Key == "$set":
					after = append(after, f)
				}
			}
		}
	}
	if err := d.uniqueLocked(coll, id, after); err != nil {
		return err
	}
	coll[id] = after
	v := int32(-1)
	for _, e := range after {
		if e.Key == "v" {
			v, _ = e.Value.(int32)
		}
	}
	d.mu.log = append(d.mu.log, appliedWrite{ns, w.Kind, id, v})
	return nil
}

// uniqueLocked refuses doc as document id when another document of coll holds its
// value of the unique field, as MongoDB does (E11000, the index and the key).
func (d *fakeDest) uniqueLocked(coll map[string]bson.D, id string, doc bson.D) error {
	if d.unique == "" {
		return nil
	}
	value := func(doc bson.D) (any, bool) {
		for _, e := range doc {
			if e.Key == d.unique {
				return e.Value, true
			}
		}
		return nil, false
	}
	v, ok := value(doc)
	if !ok {
		return nil
	}
	for other, o := range coll {
		if ov, ok := value(o); ok && other != id && ov == v {
			return mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: codeDuplicateKey,
				Message: fmt.Sprintf("E11000 duplicate key error collection: index: %s_1 dup key: { %s: %v }", d.unique, d.unique, v)}}}}
		}
	}
	return nil
}

// filterMatches compares the top-level fields of a document key with doc.
func filterMatches(filter bson.Raw, doc bson.D) bool {
	raw, _ := bson.Marshal(doc)
	elems, _ := filter.Elements()
	for _, e := range elems {
		v, err := bson.Raw(raw).LookupErr(e.Key())
		if err != nil || !v.Equal(e.Value()) {
			return false
		}
	}
	return true
}

func (d *fakeDest) docs(ns string) map[string]bson.D {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]bson.D{}
	for id, doc := range d.mu.docs[oplog.ParseNamespace(ns)] {
		out[id] = doc
	}
	return out
}

func (d *fakeDest) writes() []appliedWrite {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.mu.log)
}

// dropNS is what the fake DDL executor does for a drop.
func (d *fakeDest) dropNS(ns oplog.Namespace) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.mu.docs, ns)
}

// --- DDL, checkpoints -------------------------------------------------------------

// fakeExec applies drops to a fakeDest and records every DDL with the number of
// writes the destination had applied at that moment.
type fakeExec struct {
	dest *fakeDest
	mu   struct {
		sync.Mutex
		ran []ranDDL
	}
}

type ranDDL struct {
	ddl           oplog.DDL
	writesApplied int64
}

func (e *fakeExec) Exec(_ context.Context, d oplog.DDL) error {
	var n int64
	if e.dest != nil {
		n = e.dest.applied.Load()
		if d.Kind == oplog.DDLDrop {
			e.dest.dropNS(d.NS)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.ran = append(e.mu.ran, ranDDL{d, n})
	return nil
}

func (e *fakeExec) ran() []ranDDL {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.mu.ran)
}

// fakeCheckpoints records every save; fail makes saves fail.
type fakeCheckpoints struct {
	fail atomic.Int32 // this many next saves fail
	mu   struct {
		sync.Mutex
		saved []primitive.Timestamp
		terms []int64
	}
}

func (c *fakeCheckpoints) SaveApplied(_ string, at OpTime) error {
	if c.fail.Load() > 0 {
		c.fail.Add(-1)
		return errors.New("disk full")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.saved = append(c.mu.saved, at.TS)
	c.mu.terms = append(c.mu.terms, at.Term)
	return nil
}

// lastTerm is the term saved with the last checkpoint.
func (c *fakeCheckpoints) lastTerm() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mu.terms) == 0 {
		return 0
	}
	return c.mu.terms[len(c.mu.terms)-1]
}

func (c *fakeCheckpoints) all() []primitive.Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.mu.saved)
}

func (c *fakeCheckpoints) last() primitive.Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mu.saved) == 0 {
		return primitive.Timestamp{}
	}
	return c.mu.saved[len(c.mu.saved)-1]
}

// --- harness -----------------------------------------------------------------------

// testShard builds a Shard replaying src into dest with a DDLOnce of its own (unless
// cfg.DDL is set) whose Run is owned by the test.
func testShard(t *testing.T, cfg Config) *Shard {
	t.Helper()
	if cfg.Shard == "" {
		cfg.Shard = "s0"
	}
	if cfg.DDL == nil {
		dest, _ := cfg.Destination.(*fakeDest)
		cfg.DDL = startDDL(t, []string{cfg.Shard}, &fakeExec{dest: dest})
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startDDL runs a DDLOnce for the test's duration, every shard's replay
// registered (Recover) as the engine does before it starts one.
func startDDL(t *testing.T, shards []string, exec DDLExecutor) *DDLOnce {
	t.Helper()
	o := NewDDLOnce(shards, exec, nil)
	for _, s := range shards {
		o.Recover(s, nil, nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return o
}

// start runs s in the background; the returned function waits for Run's result.
// At the end of the test the shard is stopped, and killed if it does not stop.
func start(t *testing.T, ctx context.Context, s *Shard) func() error {
	t.Helper()
	ctx, kill := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var once sync.Once
	var err error
	wait := func() error {
		once.Do(func() {
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(stopCtx)
		kill()
		wait()
	})
	return wait
}

// eventually polls cond until it holds; it fails the test (rather than hang) only
// after a generous while, so it asserts that something happens, never how fast.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

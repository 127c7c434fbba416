package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/oplog"
)

// run is one pass of a shard's pipeline, from a resume point until a stop, the end
// of a finite source or an error. After a transient error the Shard starts a new
// run from the resume point: nothing of a failed run is kept but what it applied.
type run struct {
	s             *Shard
	cfg           *Config
	from          primitive.Timestamp
	fromTerm      int64               // the term of the entry at from, 0 when unknown
	check         bool                // the first entry must be the one at from
	checkT0       bool                // from is before T0: the entry at T0 must be of T0's term
	txnStart      bool                // from is just before TxnStart: the first entry must be TxnStart, and is used
	bound         primitive.Timestamp // the source's majority commit point, as last read
	term          int64               // the term of the entry being dispatched
	tolerateUntil primitive.Timestamp // idempotency errors are tolerated up to here
	window        int                 // batches in flight per applier at most (see Shard.pipelineDepth)

	wm  *Watermark // the resume point
	pos *Watermark // the position reported for other shards' DDL: how far entries were dispatched (the held scopes say what of it is not applied)
	tr  *oplog.Translator

	budget   *budget
	queues   []*queue
	queued   *queuedWrites // the writes in queues, by namespace: what a DDL waits for
	batches  chan []bson.Raw
	tl       *tailer             // reads the source into batches
	tailErr  error               // why the tailer stopped; read once the run is over
	lastRead primitive.Timestamp // the newest entry dispatched; read once the run is over

	// ordered are the namespaces whose writes keep the order their restored unique
	// indexes need (see OrderedNamespaces), as of version orderedV of cfg.Ordered;
	// orderedCh closes when it changes (nil without cfg.Ordered). orders holds
	// their writes not applied yet; orderSeq numbers their writes in dispatch order.
	ordered   map[oplog.Namespace][]uniqueIndex
	orderedV  uint64
	orderedCh <-chan struct{}
	orders    map[oplog.Namespace]*uniqueOrder
	orderSeq  uint64

	g        *errgroup.Group
	stopTail context.CancelFunc
	holdCtx  context.Context
	holdDone chan *hold
	held     *heldScopes // dispatched items not applied yet, by namespace, left out of pos

	// Dispatcher state.
	items       []oplog.Item
	txns        map[string][]Ticket // tickets of the buffered entries of open transactions
	holds       []*hold             // DDL waiting to be applied, each holding its namespaces
	parked      []parkedItem        // items for held namespaces, in oplog order
	parkedBytes int64               // the bytes of the writes in parked
	aside       []oplog.Namespace   // scopes whose items are set aside until the next run (see setAside)
	readAgain   bool                // the run ends to read the set-aside items again
	parkedNS    map[oplog.Namespace]int
	parkedDB    map[string]int // parked items by database
	dbWide      map[string]int // parked dropDatabase by database
}

// hold is a DDL on its way: the shard's appliers drain, the DDL applier applies it
// once for all shards, and meanwhile later writes to its namespaces are parked.
type hold struct {
	ddl    oplog.DDL
	ts     primitive.Timestamp
	done   *completion
	scopes []oplog.Namespace
}

// parkedItem is a write or a DDL for a held namespace. Its ticket is taken and its
// bytes counted when it is parked, so the resume point stays before it.
type parkedItem struct {
	write oplog.Write
	diff  bson.Raw
	ddl   *oplog.DDL
	held  *heldMark // a DDL's mark in the held scopes (a write's is in done)
	done  *completion
	bytes int64
}

func (p *parkedItem) scopes() []oplog.Namespace {
	if p.ddl != nil {
		return ddlScopes(p.ddl)
	}
	return []oplog.Namespace{p.write.NS}
}

// txnGroup releases the tickets of a transaction's buffered entries once every item
// of its commit is applied: until then a resume must start before its first entry.
type txnGroup struct {
	wm   *Watermark
	held []Ticket
	left atomic.Int64
}

func (g *txnGroup) finish() {
	if g.left.Add(-1) == 0 {
		for _, t := range g.held {
			g.wm.Applied(t)
		}
	}
}

func newRun(s *Shard, from OpTime, tolerateUntil primitive.Timestamp, window int) *run {
	r := &run{
		s: s, cfg: &s.cfg, window: window, from: from.TS, fromTerm: from.Term, check: from.TS != (primitive.Timestamp{}), tolerateUntil: tolerateUntil,
		txnStart: s.beforeTxns && from == s.start, checkT0: from.TS.Before(s.cfg.T0),
		wm: newWatermarkAt(from), pos: s.newPosition(from), tr: oplog.NewTranslator(s.cfg.Translator),
		budget: newBudget(s.cfg.QueueBytes), queued: newQueuedWrites(), batches: make(chan []bson.Raw, 1), holdDone: make(chan *hold), held: s.newHeldScopes(),
		txns: map[string][]Ticket{}, parkedNS: map[oplog.Namespace]int{}, parkedDB: map[string]int{}, dbWide: map[string]int{},
	}
	// A run that starts where the replay got by applying (not at T0 or TxnStart)
	// finds there the commits of transactions applied before it: they are skipped.
	if !from.TS.IsZero() && !(s.cfg.Resume == s.cfg.T0 && from == s.start) {
		r.tr.AppliedBefore(from.TS)
	}
	r.tl = &tailer{src: s.cfg.Source, shard: s.cfg.Shard, pollEvery: s.cfg.CommitPollEvery, out: r.batches, notes: s, stopping: s.stopping}
	for range s.cfg.Appliers {
		r.queues = append(r.queues, newQueue())
	}
	if s.cfg.Ordered != nil {
		// Nothing of this run is in flight yet: it applies the set as it is.
		r.ordered, r.orderedV, r.orderedCh = s.cfg.Ordered.snapshot()
		r.orders = newUniqueOrders(r.ordered)
		s.cfg.Ordered.ack(s.cfg.Shard, r.orderedV)
	}
	s.wm.Store(r.wm)
	s.pos.Store(r.pos)
	s.held.Store(r.held)
	s.budget.Store(r.budget)
	return r
}

// run starts the tailer, the dispatcher and the appliers and waits for them.
//
// When the tailer stops (stop, end of a file, or a fault of the source) the
// appliers still apply what was read, so that no write of this run is in flight on
// the destination when the next run re-applies entries from the resume point: a
// write abandoned mid-way may still run on the server, after the newer ones. Only
// a failure of the dispatcher or an applier, or the end of ctx, abandons them.
func (r *run) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	r.g = g
	tailCtx, stopTail := context.WithCancel(gctx)
	holdCtx, stopHolds := context.WithCancel(gctx)
	defer stopHolds()
	r.holdCtx, r.stopTail = holdCtx, stopTail
	g.Go(func() error {
		select {
		case <-r.s.stop:
			stopTail()
		case <-tailCtx.Done():
		}
		return nil
	})
	g.Go(func() error {
		defer stopTail()
		r.tailErr = r.tail(tailCtx)
		return nil
	})
	g.Go(func() error {
		defer stopHolds()
		return r.dispatch(gctx)
	})
	for _, q := range r.queues {
		g.Go(func() error { return r.apply(gctx, q) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if r.readAgain {
		return errReadAgain
	}
	return r.tailErr
}

// errReadAgain ends a run that set items aside (see setAside) once what held
// their namespaces is applied: the next run reads them again from the resume
// point, which stayed before them.
var errReadAgain = errors.New("reading again from the resume point the items set aside behind a DDL")

// tail reads the oplog into batches until the source ends, the shard stops or an
// error (see tailer).
func (r *run) tail(ctx context.Context) error {
	from := r.from
	if r.txnStart {
		from = r.cfg.TxnStart // r.from is just before it, where an entry may be
	}
	return r.tl.run(ctx, from)
}

// dispatch decodes, filters and translates entries and hands their items out, in
// oplog order; it closes the appliers' queues when it returns.
func (r *run) dispatch(ctx context.Context) error {
	defer func() {
		for _, q := range r.queues {
			q.close()
		}
	}()
	for {
		select {
		case batch, ok := <-r.batches:
			if !ok {
				if !r.tl.eof {
					return nil // stopped, or the source failed: apply what was read
				}
				return r.drainHolds(ctx)
			}
			for _, raw := range batch {
				if err := r.entry(ctx, raw); err != nil {
					return err
				}
			}
		case h := <-r.holdDone:
			r.finishHold(h)
		case <-r.orderedCh:
			if err := r.reorder(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reorder takes the new set of ordered namespaces: the writes queued before to a
// namespace whose indexes changed are applied first, so that no write dispatched
// without its place in the new order is still to apply when the next ones wait
// for the earlier ones. Then the shard acknowledges it.
func (r *run) reorder(ctx context.Context) error {
	set, v, ch := r.cfg.Ordered.snapshot()
	var changed []oplog.Namespace
	for ns, ix := range set {
		if len(ix) != len(r.ordered[ns]) {
			changed = append(changed, ns)
		}
	}
	if err := r.queued.wait(ctx, changed); err != nil {
		return err
	}
	for ns, o := range newUniqueOrders(set) {
		if slices.Contains(changed, ns) {
			r.orders[ns] = o
		}
	}
	r.ordered, r.orderedV, r.orderedCh = set, v, ch
	r.cfg.Ordered.ack(r.cfg.Shard, r.orderedV)
	return nil
}

// drainHolds waits, at the end of a finite source, for the DDL still on its way.
func (r *run) drainHolds(ctx context.Context) error {
	for len(r.holds) > 0 {
		select {
		case h := <-r.holdDone:
			r.finishHold(h)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// entry handles one raw oplog entry.
func (r *run) entry(ctx context.Context, raw bson.Raw) error {
	e, err := oplog.Decode(raw)
	if err != nil {
		return err
	}
	r.s.c.entries.Add(1)
	raiseTS(&r.s.c.newest, e.TS)
	r.lastRead, r.term = e.TS, e.Term
	if r.check {
		r.check = false
		if err := r.checkFirst(ctx, &e); err != nil {
			return err
		}
		r.s.setRetrying(retryWork, "") // tailing again, from where it has to
		if !r.txnStart {
			return nil // applied before the resume point was saved
		}
	}
	if r.checkT0 && !e.TS.Before(r.cfg.T0) {
		r.checkT0 = false
		if err := r.checkAtT0(&e); err != nil {
			return err
		}
	}
	key, inTxn := txnKey(&e)
	if !r.cfg.T0.IsZero() && !r.cfg.T0.Before(e.TS) {
		return r.copiedEntry(&e, key, inTxn)
	}
	if e.FromMigrate && e.Op == oplog.OpInsert && r.cfg.FromMigrate != nil {
		r.cfg.FromMigrate(e.NS, e.O)
	}
	items, err := r.tr.Process(&e, r.items[:0])
	r.items = items
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return r.buffered(&e, key)
	}
	var grp *txnGroup
	if held, ok := r.txns[key]; ok && inTxn && endsTxn(&e) {
		delete(r.txns, key)
		grp = &txnGroup{wm: r.wm, held: held}
		grp.left.Store(int64(len(items)))
	}
	if len(items) == 1 && items[0].Kind == oplog.ItemPosition {
		r.s.c.skipped[skipReason(&e)].Add(1)
	} else {
		raiseTS(&r.s.c.lastWrite, e.TS)
		if e.Command == oplog.CmdCommitTransaction || e.Command == oplog.CmdApplyOps && inTxn && e.MultiOpType != 1 && endsTxn(&e) {
			r.s.c.txns.Add(1)
		}
	}
	for i := range items {
		if err := r.item(ctx, &items[i], grp); err != nil {
			return err
		}
	}
	return nil
}

// checkFirst checks the first entry read against the resume point: the entry at
// it, of the term applied (a resume), or the first entry of the oldest
// transaction open at T0 (a replay that starts there). An oplog that lost that
// entry rolled past it (a gap) or, when it still holds older ones, rolled back.
func (r *run) checkFirst(ctx context.Context, e *oplog.Entry) error {
	want, term := r.from, r.fromTerm
	if r.txnStart {
		want, term = r.cfg.TxnStart, 0
	}
	atT0 := want == r.cfg.T0 && !want.IsZero()
	if e.TS == want {
		if term != 0 && e.Term != 0 && e.Term != term {
			return &RollbackError{Shard: r.cfg.Shard, Applied: OpTime{TS: want, Term: term}, Found: OpTime{TS: e.TS, Term: e.Term}, AtT0: atT0}
		}
		return nil
	}
	if r.txnStart {
		return &GapError{Shard: r.cfg.Shard, Resume: want, First: e.TS}
	}
	err := r.lost(ctx, OpTime{TS: want, Term: term}, e.TS)
	if rb, ok := err.(*RollbackError); ok {
		rb.AtT0 = atT0
	}
	return err
}

// checkAtT0 checks the first entry read at or after T0, in a replay that started
// before it: it must be the entry at T0, of T0's term (Config.T0Term).
func (r *run) checkAtT0(e *oplog.Entry) error {
	t0 := OpTime{TS: r.cfg.T0, Term: r.cfg.T0Term}
	switch {
	case e.TS != t0.TS:
		return &RollbackError{Shard: r.cfg.Shard, Applied: t0, AtT0: true}
	case t0.Term != 0 && e.Term != 0 && e.Term != t0.Term:
		return &RollbackError{Shard: r.cfg.Shard, Applied: t0, Found: OpTime{TS: e.TS, Term: e.Term}, AtT0: true}
	}
	return nil
}

// lost explains an oplog that returned first where it had to return the entry
// want: it rolled past want (a gap), or, when it still holds older entries, rolled
// want back.
func (r *run) lost(ctx context.Context, want OpTime, first primitive.Timestamp) error {
	return lostEntry(ctx, r.cfg.Source, r.cfg.Shard, want, first)
}

// buffered holds the resume point before a buffered part of an open transaction
// until the transaction's commit is applied.
func (r *run) buffered(e *oplog.Entry, key string) error {
	t, err := r.wm.DispatchAt(OpTime{TS: e.TS, Term: e.Term})
	if err != nil {
		return err
	}
	if err := r.pos.Skip(e.TS); err != nil {
		return err
	}
	r.txns[key] = append(r.txns[key], t)
	raiseTS(&r.s.c.lastWrite, e.TS)
	return nil
}

// copiedEntry handles an entry at or before T0, read only for the transactions
// open at T0 (Config.TxnStart): the copy holds its write. The entries of
// transactions are buffered; a transaction that ends here is dropped, its writes
// in the copy too, and releases the resume point it held.
func (r *run) copiedEntry(e *oplog.Entry, key string, inTxn bool) error {
	items, err := r.tr.ProcessCopied(e, r.items[:0])
	r.items = items
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return r.buffered(e, key)
	}
	if held, ok := r.txns[key]; ok && inTxn && endsTxn(e) {
		delete(r.txns, key)
		for _, t := range held {
			r.wm.Applied(t)
		}
	}
	r.s.c.skipped[SkipCopied].Add(1)
	if err := r.wm.SkipAt(OpTime{TS: e.TS, Term: e.Term}); err != nil {
		return err
	}
	return r.pos.Skip(e.TS)
}

func (r *run) item(ctx context.Context, it *oplog.Item, grp *txnGroup) error {
	switch it.Kind {
	case oplog.ItemWrite:
		w := it.Write
		ns, keep := r.cfg.DDL.Route(w.NS, it.UI, it.TS)
		if keep {
			w.NS = ns
			// Diff is set wherever the update comes from, transactions included.
			return r.write(ctx, w, w.Diff, it.TS, grp)
		}
		r.s.c.skipped[SkipDropped].Add(1)
	case oplog.ItemDDL:
		return r.ddl(it.DDL, it.TS, grp)
	}
	if err := r.wm.SkipAt(OpTime{TS: it.TS, Term: r.term}); err != nil {
		return err
	}
	if grp != nil {
		grp.finish()
	}
	return r.pos.Skip(it.TS)
}

func (r *run) newCompletion(ts primitive.Timestamp, grp *txnGroup) (*completion, error) {
	t, err := r.wm.DispatchAt(OpTime{TS: ts, Term: r.term})
	if err != nil {
		return nil, err
	}
	return &completion{entry: ts, ts: t, txn: grp, tolerate: !r.tolerateUntil.Before(ts)}, nil
}

// write queues a write to its applier, or parks it behind a DDL on its namespace.
func (r *run) write(ctx context.Context, w oplog.Write, diff bson.Raw, ts primitive.Timestamp, grp *txnGroup) error {
	n := writeSize(&w)
	scopes := []oplog.Namespace{w.NS}
	if r.isAside(scopes) || r.blocked(scopes) && r.parkedBytes+n > r.cfg.QueueBytes/parkedShare {
		return r.setAside(scopes, ts, grp)
	}
	if err := r.take(ctx, n); err != nil {
		return err
	}
	c, err := r.newCompletion(ts, grp)
	if err != nil {
		return err
	}
	pt, err := r.pos.Dispatch(ts)
	if err != nil {
		return err
	}
	c.held = r.leaveAside(scopes, ts, pt)
	if r.blocked(scopes) {
		r.park(parkedItem{write: w, diff: diff, done: c, bytes: n})
		return nil
	}
	r.queueWrite(w, diff, c, n)
	return nil
}

// leaveAside records a dispatched item on scopes as held until it is applied and
// moves the position past it (see heldScopes), in that order: a position read
// after the move finds the mark.
func (r *run) leaveAside(scopes []oplog.Namespace, ts primitive.Timestamp, pt Ticket) *heldMark {
	m := r.held.add(scopes, ts)
	r.pos.Applied(pt)
	return m
}

// queueWrite hands a write to its applier, by document, with its place in its
// namespace's order when the namespace is ordered.
func (r *run) queueWrite(w oplog.Write, diff bson.Raw, c *completion, n int64) {
	var mark *orderMark
	if o := r.orders[w.NS]; o != nil {
		r.orderSeq++
		mark = o.add(r.orderSeq, docKey(w.Filter), takenKeys(r.ordered[w.NS], &w))
	}
	q := r.queues[oplog.PartitionKey(&w)%uint64(len(r.queues))]
	r.queued.add(w.NS)
	q.push(task{write: w, diff: diff, done: c, bytes: n, mark: mark})
}

// take waits until the queues have room for n more bytes, finishing DDL meanwhile.
func (r *run) take(ctx context.Context, n int64) error {
	for {
		ok, changed := r.budget.tryTake(n)
		if ok {
			return nil
		}
		select {
		case <-changed:
		case h := <-r.holdDone:
			r.finishHold(h)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ddl starts a hold for a DDL, or parks it behind one on the same namespaces.
func (r *run) ddl(d *oplog.DDL, ts primitive.Timestamp, grp *txnGroup) error {
	if scopes := ddlScopes(d); r.isAside(scopes) {
		return r.setAside(scopes, ts, grp)
	}
	c, err := r.newCompletion(ts, grp)
	if err != nil {
		return err
	}
	pt, err := r.pos.Dispatch(ts)
	if err != nil {
		return err
	}
	scopes := ddlScopes(d)
	held := r.leaveAside(scopes, ts, pt)
	if r.blocked(scopes) {
		r.park(parkedItem{ddl: d, done: c, held: held})
		return nil
	}
	r.startHold(d, c, held)
	return nil
}

// startHold waits until the writes queued before a DDL to the namespaces it touches
// are applied, then hands it to the DDL applier; writes to those namespaces that
// come after it are parked until it is applied, and the writes to every other
// namespace go on meanwhile, before and after it. The resume point stays before the
// DDL until it is applied: the writes after it that were applied first are applied
// again after a restart from there, as any write past the resume point is. An index
// build holds nothing: the writes before and after it apply beside it (unique and
// TTL indexes are built relaxed, so no write can fail on it or be deleted by it),
// and the DDL applier runs it beside the other DDL; the resume point stays before it
// until it is built.
//
// held is the DDL's mark in the held scopes: it is let go once the DDL applier has
// its copy (its group then orders the other shards' DDL of its namespaces after
// it).
func (r *run) startHold(d *oplog.DDL, c *completion, held *heldMark) {
	h := &hold{ddl: *d, ts: c.entry, done: c}
	r.holds = append(r.holds, h)
	if d.Kind != oplog.DDLCreateIndexes {
		h.scopes = ddlScopes(d)
	}
	r.g.Go(func() error {
		ctx := r.holdCtx
		if err := r.queued.wait(ctx, h.scopes); err != nil {
			return nil // the run is over
		}
		wait, err := r.cfg.DDL.AddDDL(r.cfg.Shard, h.ts, h.ddl)
		if err != nil {
			return fmt.Errorf("%s on %s at %s: %w", h.ddl.Kind, h.ddl.NS, tsString(h.ts), err)
		}
		r.held.release(held)
		r.s.waitingFor(h, true)
		defer r.s.waitingFor(h, false)
		if err := wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case r.holdDone <- h:
		case <-ctx.Done():
		}
		return nil
	})
}

// finishHold completes an applied DDL and releases what was parked behind it.
func (r *run) finishHold(h *hold) {
	for i, x := range r.holds {
		if x == h {
			r.holds = append(r.holds[:i], r.holds[i+1:]...)
			break
		}
	}
	r.s.c.ddl.Add(1)
	r.complete(h.done)
	parked := r.parked
	r.parked, r.parkedBytes = nil, 0
	clear(r.parkedNS)
	clear(r.parkedDB)
	clear(r.dbWide)
	for _, p := range parked {
		switch {
		case r.blocked(p.scopes()):
			r.park(p)
		case p.ddl != nil:
			r.startHold(p.ddl, p.done, p.held)
		default:
			r.queueWrite(p.write, p.diff, p.done, p.bytes)
		}
	}
	if len(r.aside) > 0 && !r.readAgain && !r.blocked(r.aside) {
		r.readAgain = true
		r.stopTail()
	}
}

// parkedShare: the writes parked behind DDL take at most 1/parkedShare of the
// shard's queue bytes (Config.QueueBytes); past it, the items for the held
// namespaces are set aside (see setAside).
const parkedShare = 4

// setAside leaves out an item for a held namespace once the parked writes reached
// their share of the queue, and every later item touching a namespace set aside,
// until the run ends: the writes to every other namespace go on meanwhile, where
// parking them all would fill the queue and stop the shard's every namespace for
// as long as a DDL takes on the destination (a rename across databases copies the
// collection). The first item set aside keeps its ticket in the resume point,
// which therefore stays before it; the position moves past the items, each scope
// reported held from the first of its items. Once nothing holds the scopes set
// aside any more (finishHold), the run ends and the next one reads again from the
// resume point: what was applied after it is applied again, as after any restart.
func (r *run) setAside(scopes []oplog.Namespace, ts primitive.Timestamp, grp *txnGroup) error {
	if len(r.aside) == 0 {
		// Never completed in this run: the resume point (and grp's) stays before it.
		if _, err := r.newCompletion(ts, grp); err != nil {
			return err
		}
	} else if err := r.wm.SkipAt(OpTime{TS: ts, Term: r.term}); err != nil {
		return err
	}
	pt, err := r.pos.Dispatch(ts)
	if err != nil {
		return err
	}
	var fresh []oplog.Namespace
	for _, sc := range scopes {
		if !r.isAside([]oplog.Namespace{sc}) {
			fresh = append(fresh, sc)
		}
	}
	if len(fresh) > 0 {
		r.held.add(fresh, ts) // never released: the next run has its own
		r.aside = append(r.aside, fresh...)
	}
	r.pos.Applied(pt)
	r.s.c.setAside.Add(1)
	r.s.noteAside(scopes)
	return nil
}

// isAside reports whether any of scopes overlaps a scope set aside in this run.
func (r *run) isAside(scopes []oplog.Namespace) bool {
	for _, sc := range scopes {
		for _, a := range r.aside {
			if overlaps(sc, a) {
				return true
			}
		}
	}
	return false
}

// blocked reports whether any of scopes is held by a DDL on its way or by an item
// parked earlier (which must go first).
func (r *run) blocked(scopes []oplog.Namespace) bool {
	for _, sc := range scopes {
		for _, h := range r.holds {
			for _, hs := range h.scopes {
				if overlaps(sc, hs) {
					return true
				}
			}
		}
		if sc.Coll == "" {
			if r.parkedDB[sc.DB] > 0 {
				return true
			}
		} else if r.parkedNS[sc] > 0 || r.dbWide[sc.DB] > 0 {
			return true
		}
	}
	return false
}

func (r *run) park(p parkedItem) {
	r.parked = append(r.parked, p)
	r.parkedBytes += p.bytes
	for _, sc := range p.scopes() {
		if sc.Coll == "" {
			r.dbWide[sc.DB]++
		} else {
			r.parkedNS[sc]++
		}
		r.parkedDB[sc.DB]++
	}
}

// ddlScopes are the namespaces a DDL holds: a database is {DB, ""}.
func ddlScopes(d *oplog.DDL) []oplog.Namespace {
	switch d.Kind {
	case oplog.DDLDropDatabase:
		return []oplog.Namespace{{DB: d.NS.DB}}
	case oplog.DDLRename:
		return []oplog.Namespace{d.NS, d.To}
	}
	return []oplog.Namespace{d.NS}
}

func overlaps(a, b oplog.Namespace) bool {
	return a.DB == b.DB && (a.Coll == "" || b.Coll == "" || a.Coll == b.Coll)
}

// complete marks what a write or DDL completes.
func (r *run) complete(c *completion) {
	r.wm.Applied(c.ts)
	r.held.release(c.held)
	if c.txn != nil {
		c.txn.finish()
	}
}

// writeSize is what a queued write counts against the budget: its documents, the
// task and completion around them, and the entry's own fields (ts, op, ns, wall...)
// that the write's slices keep alive.
func writeSize(w *oplog.Write) int64 {
	return int64(w.Size()+len(w.NS.DB)+len(w.NS.Coll)) + queuedOverhead
}

const queuedOverhead = int64(unsafe.Sizeof(task{})+unsafe.Sizeof(completion{})) + 160

// txnKey identifies the transaction an entry belongs to, as the Translator does:
// the whole logical session id and the txnNumber.
func txnKey(e *oplog.Entry) (string, bool) {
	if e.LSID == nil || !e.HasTxnNumber {
		return "", false
	}
	var n [8]byte
	for i := range n {
		n[i] = byte(uint64(e.TxnNumber) >> (8 * i))
	}
	return string(e.LSID) + string(n[:]), true
}

// endsTxn reports whether an entry commits or aborts its transaction.
func endsTxn(e *oplog.Entry) bool {
	switch e.Command {
	case oplog.CmdApplyOps:
		return !e.PartialTxn && !e.Prepare
	case oplog.CmdCommitTransaction, oplog.CmdAbortTransaction:
		return true
	}
	return false
}

// skipReason says why an entry that yields no write needed none, for the counts.
func skipReason(e *oplog.Entry) SkipReason {
	switch {
	case e.Op == oplog.OpNoop:
		return SkipNoop
	case e.FromMigrate:
		return SkipFromMigrate
	case e.Command == oplog.CmdAbortTransaction:
		return SkipAbortedTxn
	case e.Command == oplog.CmdStartIndexBuild || e.Command == oplog.CmdAbortIndexBuild:
		return SkipIndexBuild
	}
	if !namespaces.Migrated(e.NS.DB, e.NS.Coll) {
		return SkipInternal
	}
	return SkipNoChange
}

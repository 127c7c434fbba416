package replay

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/prepare"
)

// DDLApplier applies the DDL of all the shards of one migration. On a sharded source
// one DDL shows up in the oplog of every shard it concerns; it must be applied once,
// after the writes that precede it on every shard, and before those that follow.
type DDLApplier interface {
	// AddDDL registers the copy of d that shard read at ts, once the shard's
	// appliers have applied everything before it that d must follow. The shard
	// then waits, with the returned function, until d is applied on the
	// destination (from its copy or another shard's), holding only the namespaces
	// d touches meanwhile.
	AddDDL(shard string, ts primitive.Timestamp, d oplog.DDL) (wait func(context.Context) error, err error)
	// Position reports that shard has applied every entry up to ts, leaving aside
	// held: the namespaces of the entries it has read and not applied yet (writes
	// on their way or parked behind a DDL of its own, DDL not yet handed over),
	// each with the ts of its oldest entry there not yet applied. Pipelines call it
	// as their position or held scopes move and several times a second; the owner of a failed or
	// restarting shard reports it with a maximal ts and nothing held, so that it
	// holds nobody's DDL.
	Position(shard string, ts primitive.Timestamp, held ...HeldScope)
	// Applied reports that shard has applied every entry up to ts, those of the
	// namespaces it holds included (its resume point), for the DDL no shard read
	// (Schedule). Reported like Position.
	Applied(shard string, ts primitive.Timestamp)
	// Route says where a write of shard's oplog at ts to ns, in the collection of
	// UUID ui (nil when the entry had none), goes now that the DDL applied since
	// may have renamed or dropped that collection: the namespace to write, or
	// false to leave the write out (its collection is gone).
	Route(ns oplog.Namespace, ui []byte, ts primitive.Timestamp) (oplog.Namespace, bool)
	// Waiting says what the copy of d that shard read at ts waits for, for the
	// shard's progress: the shards that have not applied past it yet, or the index
	// build on its collection it must follow.
	Waiting(shard string, ts primitive.Timestamp, d oplog.DDL) string
}

// DDLExecutor runs one DDL against the destination.
type DDLExecutor interface {
	Exec(ctx context.Context, d oplog.DDL) error
}

// DDLOnce is the DDLApplier of one migration. It matches the copies the shards read
// of one DDL into groups and applies each group once, by these rules (see
// docs/correctness.md, "DDL", for which shards log which DDL on each release):
//
//   - Copies match by their oplog.DDLKey, which holds the collection UUID: one
//     collection's DDL has one UUID on every shard, whenever each shard logs it.
//     Copies without a UUID (3.6 at FCV 3.4, dropDatabase) match when their ts are
//     within ddlMatchWindow of each other.
//   - A group is applied once every other shard whose replay runs has applied
//     every entry up to its first copy's ts (Position) that touches the group's
//     namespaces: their earlier writes are then on the destination, and their
//     later ones come after it. A shard's position is how far it has read; the
//     entries it has not applied yet are reported apart by namespace
//     (HeldScope), so that a group waits for another shard's pipeline only where
//     it holds entries of the group's namespaces, and one shard's DDL waiting on
//     the destination holds only the other shards' DDL of those namespaces. No group waits
//     for a copy another shard may log (a DDL of an unsharded collection is logged
//     by its database's primary shard alone; newer releases log the participants'
//     copies of a sharded DDL fromMigrate, which the replay skips), nor for a
//     shard still copying or not started: its copy reflects the DDL or will, and
//     the writes it replays later are routed by Route.
//   - Positions move whatever the shards hold, so no two shards wait for each
//     other: the oldest DDL held anywhere is always the next one applied.
//   - Groups are applied in ts order per namespace: one whose namespaces overlap
//     an older group still waiting waits behind it. Index builds run beside the
//     replay and beside the other DDL; later DDL of their collection wait for them.
//   - A copy that arrives once its group is applied (a shard that was copying, or
//     replays again) is done at once, except a drop of the same collection UUID
//     when nothing re-created its namespace since (MongoDB logs a create before
//     any write to a new collection): it runs again, for what that shard copied
//     or wrote into the collection before its copy reached the drop.
//   - movePrimary's pair (a create of a collection that exists under another UUID
//     on the database's new primary shard, then a drop of the old UUID on the
//     old one) changes nothing on the destination (catalog.moved).
//
// Applying once matters beyond saving work: renameCollection is not idempotent (a
// second rename of a name that is gone fails, and with dropTarget it would drop a
// collection re-created since), and re-applying a drop after another shard wrote to
// the re-created collection would lose those writes. A copy read again by the same
// shard (its pipeline restarted before its checkpoint passed the DDL) joins the
// group it joined the first time. Across a process restart the same holds through a
// DDLLog: once a group is applied, each copy in it is recorded in its shard's
// checkpoint before any of those shards goes on, and Recover hands the records to
// the next process, so a copy read again there is already applied. (Only a crash
// between applying a DDL and recording it re-applies it; the executor tolerates the
// errors that gives, see MongoDDL.)
type DDLOnce struct {
	shards []string
	exec   DDLExecutor
	log    *slog.Logger
	wake   chan struct{}
	cat    catalog
	idle   idleShards

	mu struct {
		sync.Mutex
		positions map[string]primitive.Timestamp // of the shards whose replay runs
		held      map[string][]HeldScope         // what each position leaves aside
		applied   map[string]primitive.Timestamp // see Applied
		groups    []*ddlGroup                    // waiting, running, and applied ones copies may still join
		copies    map[ddlCopy]*ddlGroup
		logs      map[string]DDLLog // by shard; see Recover
		scheduled []scheduledDDL
		running   int // groups running, index builds left out
		nextID    uint64
	}
}

// ddlMatchWindow is how far apart in time the copies of one DDL without a UUID
// on different shards may be.
const ddlMatchWindow = 5 * time.Minute

// ddlGroup is one logical DDL and the copies of it the shards read.
type ddlGroup struct {
	id     uint64
	key    oplog.DDLKey
	ddl    oplog.DDL           // the first copy
	first  primitive.Timestamp // ts of the first copy
	shards []string            // shards that added a copy, in order
	state  groupState
	ran    bool      // the DDL ran on the destination (see catalog.effect)
	handed time.Time // when the first copy was handed over (for the log)
	done   chan struct{}
	err    error
}

type groupState uint8

const (
	groupWaiting groupState = iota
	groupRunning
	groupApplied
)

// scheduledDDL is a DDL no shard read (Schedule), due once every shard has applied
// past ts.
type scheduledDDL struct {
	ts   primitive.Timestamp
	ddl  oplog.DDL
	done func(error)
}

// ddlCopy is one shard's copy of a DDL. The key tells apart the DDL of one
// applyOps entry, which share its ts.
type ddlCopy struct {
	shard string
	ts    primitive.Timestamp
	key   oplog.DDLKey
}

// DDLCopy is a DDL a shard read: the ts of its entry and the DDL's key.
type DDLCopy struct {
	TS  primitive.Timestamp
	Key oplog.DDLKey
	// Effect is what the DDL did to the destination's namespaces (a drop, a
	// dropDatabase or a rename that ran), so that after a process restart the
	// writes the shard reads again from before it are routed past it as they were
	// the first time (see Recover); zero for every other DDL.
	Effect DDLEffect
}

// DDLEffect is a drop, dropDatabase or rename applied on the destination. It is
// comparable, as DDLCopy is.
type DDLEffect struct {
	Kind                 oplog.DDLKind // zero: no effect to remember
	NS, To               oplog.Namespace
	UUID, DropTargetUUID string
	DropTarget           bool
}

// effectOf is the DDLEffect of d, when it ran.
func effectOf(d *oplog.DDL, ran bool) DDLEffect {
	switch {
	case !ran:
		return DDLEffect{}
	case d.Kind == oplog.DDLDrop, d.Kind == oplog.DDLDropDatabase, d.Kind == oplog.DDLRename:
		return DDLEffect{Kind: d.Kind, NS: d.NS, To: d.To, UUID: string(d.UUID), DropTargetUUID: string(d.DropTargetUUID), DropTarget: d.DropTarget}
	}
	return DDLEffect{}
}

// ddl is the DDL an effect records.
func (e DDLEffect) ddl() oplog.DDL {
	d := oplog.DDL{Kind: e.Kind, NS: e.NS, To: e.To, DropTarget: e.DropTarget}
	if e.UUID != "" {
		d.UUID = []byte(e.UUID)
	}
	if e.DropTargetUUID != "" {
		d.DropTargetUUID = []byte(e.DropTargetUUID)
	}
	return d
}

// DDLLog keeps durably, in a shard's checkpoint, the copies of DDL the shard read
// that are applied on the destination, until the shard's resume point passes them.
type DDLLog interface {
	DDLApplied(shard string, c DDLCopy) error
}

// NewDDLOnce applies the DDL of the named shards through exec.
func NewDDLOnce(shards []string, exec DDLExecutor, logger *slog.Logger) *DDLOnce {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &DDLOnce{shards: slices.Clone(shards), exec: exec, log: logger, wake: make(chan struct{}, 1)}
	o.cat.init()
	o.mu.positions = map[string]primitive.Timestamp{}
	o.mu.held = map[string][]HeldScope{}
	o.mu.applied = map[string]primitive.Timestamp{}
	o.mu.copies = map[ddlCopy]*ddlGroup{}
	o.mu.logs = map[string]DDLLog{}
	return o
}

// Recover prepares for a shard's replay (a fresh start, or a resume in a new
// process): applied are the copies its checkpoint records as applied, which are
// not applied again when the replay reads them, and log records the copies of
// the shard applied from now on (nil: none is recorded, for a replay that is
// never resumed). Call it before the shard's replay starts: from then on the
// shard's DDL wait for its position, and its position for nobody. The effects of
// the applied copies go back into the catalog, so that the writes the shard reads
// again from before them are routed as they were the first time.
func (o *DDLOnce) Recover(shard string, applied []DDLCopy, log DDLLog) {
	done := &ddlGroup{state: groupApplied, done: make(chan struct{})}
	close(done.done)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mu.positions[shard] = primitive.Timestamp{} // until its replay reports one
	delete(o.mu.held, shard)
	for c, g := range o.mu.copies {
		if c.shard == shard && g.state == groupApplied {
			delete(o.mu.copies, c)
		}
	}
	for _, c := range applied {
		o.mu.copies[ddlCopy{shard, c.TS, c.Key}] = done
		if c.Effect.Kind != 0 {
			o.cat.remember(c.Effect.ddl(), c.TS)
		}
	}
	if log == nil {
		delete(o.mu.logs, shard)
	} else {
		o.mu.logs[shard] = log
	}
}

// AddDDL implements DDLApplier.
func (o *DDLOnce) AddDDL(shard string, ts primitive.Timestamp, d oplog.DDL) (func(context.Context) error, error) {
	if !slices.Contains(o.shards, shard) {
		return nil, fmt.Errorf("DDL from shard %q, which is not one of the shards %v", shard, o.shards)
	}
	cp := ddlCopy{shard, ts, d.Key()}
	o.mu.Lock()
	g, ok := o.mu.copies[cp]
	var late DDLLog // the log of a copy that joins an applied group
	if !ok {
		g = o.match(shard, ts, &d, cp.key)
		if g == nil {
			o.mu.nextID++
			g = &ddlGroup{id: o.mu.nextID, key: cp.key, ddl: d, first: ts, handed: time.Now(), done: make(chan struct{})}
			i, _ := slices.BinarySearchFunc(o.mu.groups, ts, func(x *ddlGroup, ts primitive.Timestamp) int { return x.first.Compare(ts) })
			o.mu.groups = slices.Insert(o.mu.groups, i, g)
		} else if g.state == groupApplied && g.err == nil {
			late = o.mu.logs[shard]
		}
		g.shards = append(g.shards, shard)
		o.mu.copies[cp] = g
	}
	ran := g.ran
	o.mu.Unlock()
	if late != nil {
		o.logCopy(late, cp, &g.ddl, ran)
	}
	o.poke()
	return func(ctx context.Context) error {
		select {
		case <-g.done:
			return g.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
}

// match returns the group a new copy joins, nil when it opens one. Called with mu held.
func (o *DDLOnce) match(shard string, ts primitive.Timestamp, d *oplog.DDL, key oplog.DDLKey) *ddlGroup {
	for _, g := range o.mu.groups {
		if g.key != key || slices.Contains(g.shards, shard) || d.UUID == nil && !near(g.first, ts) {
			continue
		}
		if g.state == groupApplied && g.err == nil && d.Kind == oplog.DDLDrop && d.UUID != nil && !o.cat.recreatedSince(d, g.first) {
			return nil // dropped again: see DDLOnce
		}
		return g
	}
	return nil
}

func near(a, b primitive.Timestamp) bool {
	d := int64(a.T) - int64(b.T)
	w := int64(ddlMatchWindow / time.Second)
	return d <= w && -d <= w
}

// Schedule applies d, a DDL no shard read (the metadata watcher's), once every
// shard has applied every entry up to ts, held namespaces included (Applied), in
// turn with the shards' DDL; done is then called with its outcome, from Run.
func (o *DDLOnce) Schedule(ts primitive.Timestamp, d oplog.DDL, done func(error)) {
	o.mu.Lock()
	o.mu.scheduled = append(o.mu.scheduled, scheduledDDL{ts: ts, ddl: d, done: done})
	o.mu.Unlock()
	o.poke()
}

// Applied implements DDLApplier. It is also where applied DDL are forgotten: a copy once the shard's resume
// point (and its position) passed it, since a pipeline that starts again reads
// from the resume point, which can be well behind the position (the position
// leaves aside what the shard parked); a group once every shard passed it.
func (o *DDLOnce) Applied(shard string, ts primitive.Timestamp) {
	o.mu.Lock()
	o.mu.applied[shard] = ts
	done := ts
	if pos := o.mu.positions[shard]; pos.Before(done) {
		done = pos
	}
	for c, g := range o.mu.copies {
		if c.shard == shard && !done.Before(c.ts) && g.state == groupApplied {
			delete(o.mu.copies, c)
		}
	}
	o.forgetApplied()
	pending := len(o.mu.scheduled)
	o.mu.Unlock()
	if pending > 0 {
		o.poke()
	}
}

// dueScheduled removes and returns the scheduled DDL every shard has applied past.
func (o *DDLOnce) dueScheduled() []scheduledDDL {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mu.running > 0 {
		return nil // after them: the last to finish pokes Run again
	}
	var due []scheduledDDL
	kept := o.mu.scheduled[:0]
	for _, sd := range o.mu.scheduled {
		if o.dueLocked(sd) {
			due = append(due, sd)
		} else {
			kept = append(kept, sd)
		}
	}
	o.mu.scheduled = kept
	return due
}

// dueLocked reports whether every shard has applied past sd. Called with mu held.
func (o *DDLOnce) dueLocked(sd scheduledDDL) bool {
	for _, s := range o.shards {
		if pos, ok := o.mu.applied[s]; !ok || pos.Compare(sd.ts) <= 0 {
			return false
		}
	}
	return true
}

// Position implements DDLApplier.
func (o *DDLOnce) Position(shard string, ts primitive.Timestamp, held ...HeldScope) {
	o.mu.Lock()
	o.mu.positions[shard] = ts
	if len(held) == 0 {
		delete(o.mu.held, shard)
	} else {
		o.mu.held[shard] = held
	}
	waiting := slices.ContainsFunc(o.mu.groups, func(g *ddlGroup) bool { return g.state == groupWaiting })
	o.mu.Unlock()
	if waiting {
		o.poke()
	}
}

// forgetApplied drops the applied groups no copy can join any more: every shard
// replays and has applied past the group (past its match window, for a DDL
// without a UUID), its position and its resume point both. Called with mu held.
func (o *DDLOnce) forgetApplied() {
	o.mu.groups = slices.DeleteFunc(o.mu.groups, func(g *ddlGroup) bool {
		if g.state != groupApplied {
			return false
		}
		horizon := g.first
		if g.ddl.UUID == nil {
			horizon.T += uint32(ddlMatchWindow / time.Second)
		}
		for _, s := range o.shards {
			if pos, ok := o.mu.positions[s]; !ok || pos.Before(horizon) || o.mu.applied[s].Before(horizon) {
				return false
			}
		}
		return true
	})
}

// Route implements DDLApplier.
func (o *DDLOnce) Route(ns oplog.Namespace, ui []byte, ts primitive.Timestamp) (oplog.Namespace, bool) {
	return o.cat.route(ns, ui, ts)
}

// Waiting implements DDLApplier.
func (o *DDLOnce) Waiting(shard string, ts primitive.Timestamp, d oplog.DDL) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	g := o.mu.copies[ddlCopy{shard, ts, d.Key()}]
	if g == nil {
		return "waiting to hand the " + d.Kind.String() + " of " + d.NS.String() + " over once the shard's earlier writes to it are applied"
	}
	switch g.state {
	case groupRunning:
		return fmt.Sprintf("applying the %s of %s on the destination", g.ddl.Kind, g.ddl.NS)
	case groupApplied:
		return ""
	}
	if b := o.olderOnSameNamespace(g); b != nil {
		if b.state == groupRunning && b.ddl.Kind == oplog.DDLCreateIndexes {
			return fmt.Sprintf("the %s of %s waits for the index build on it to finish on the destination", g.ddl.Kind, g.ddl.NS)
		}
		return fmt.Sprintf("the %s of %s waits for the %s of %s (%s) to be applied first", g.ddl.Kind, g.ddl.NS, b.ddl.Kind, b.ddl.NS, clock(b.first))
	}
	var behind []string
	for _, s := range o.shards {
		if at, behindIt := o.behind(s, g); behindIt {
			behind = append(behind, fmt.Sprintf("%s (at %s)", s, clock(at)))
		}
	}
	return fmt.Sprintf("the %s of %s (%s) waits for shards %s to apply their writes up to it; writes to it wait too",
		g.ddl.Kind, g.ddl.NS, clock(g.first), strings.Join(behind, ", "))
}

func clock(ts primitive.Timestamp) string {
	if ts.IsZero() {
		return "not started"
	}
	return time.Unix(int64(ts.T), 0).UTC().Format("15:04:05 UTC")
}

func (o *DDLOnce) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run applies the groups as they become ready until ctx ends. Transient errors
// are retried; any other error fails the shards whose copies joined the group.
// Groups whose namespaces do not overlap run side by side (up to ddlParallel at
// once, index builds beside them): each still waits for every other shard's
// position and for the older groups of its namespaces, so that the order that
// matters (per namespace) is kept, and one slow DDL on the destination does not
// hold every shard's DDL behind it. A DDL no shard read (Schedule) runs alone.
// A shard a DDL waits for whose oplog ends before it is asked for an entry past
// it (AdvanceIdleShards, idle.go).
func (o *DDLOnce) Run(ctx context.Context) error {
	var running sync.WaitGroup
	defer running.Wait()
	tick := time.NewTicker(advanceAfter)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			o.askIdleShards(ctx, &running)
			continue
		case <-o.wake:
		}
		for _, sd := range o.dueScheduled() {
			_, err := o.run(ctx, sd.ddl, sd.ts, nil, 0)
			sd.done(err)
		}
		for g := o.next(); g != nil; g = o.next() {
			running.Go(func() {
				o.finish(g, o.apply(ctx, g))
				o.poke()
			})
		}
	}
}

// ddlParallel is how many DDL other than index builds run on the destination at
// once.
const ddlParallel = 4

// next takes the oldest group that is ready and marks it running (nil: none, or
// ddlParallel running already, or a scheduled DDL due waits for those running).
func (o *DDLOnce) next() *ddlGroup {
	o.mu.Lock()
	defer o.mu.Unlock()
	full := o.mu.running >= ddlParallel || slices.ContainsFunc(o.mu.scheduled, o.dueLocked)
	for _, g := range o.mu.groups {
		build := g.ddl.Kind == oplog.DDLCreateIndexes
		if g.state != groupWaiting || !build && full || !o.othersPassed(g) || o.olderOnSameNamespace(g) != nil {
			continue
		}
		g.state = groupRunning
		if !build {
			o.mu.running++
		}
		return g
	}
	return nil
}

// othersPassed reports whether every replaying shard without a copy in g has
// applied up to its first copy. Called with mu held.
func (o *DDLOnce) othersPassed(g *ddlGroup) bool {
	for s := range o.mu.positions {
		if _, behindIt := o.behind(s, g); behindIt {
			return false
		}
	}
	return true
}

// behind reports whether shard, if its replay runs and it has no copy in g, has
// an entry before g's first copy not yet applied that g must follow, and how far
// it is for g: its position, or the oldest entry it parked on a namespace of g's.
// Called with mu held.
func (o *DDLOnce) behind(shard string, g *ddlGroup) (primitive.Timestamp, bool) {
	pos, ok := o.mu.positions[shard]
	if !ok || slices.Contains(g.shards, shard) {
		return pos, false
	}
	if pos.Before(g.first) {
		return pos, true
	}
	scopes := ddlScopes(&g.ddl)
	for _, h := range o.mu.held[shard] { // oldest first
		if !h.TS.Before(g.first) {
			break
		}
		for _, sc := range scopes {
			if overlaps(h.NS, sc) {
				return justBefore(h.TS), true
			}
		}
	}
	return pos, false
}

// olderOnSameNamespace returns a group older than g, not yet applied, that touches
// a namespace g touches: g waits for it. Called with mu held.
func (o *DDLOnce) olderOnSameNamespace(g *ddlGroup) *ddlGroup {
	for _, b := range o.mu.groups {
		if b == g || b.state == groupApplied || !b.first.Before(g.first) && !(b.first == g.first && b.id < g.id) {
			continue
		}
		if scopesOverlap(ddlScopes(&b.ddl), ddlScopes(&g.ddl)) {
			return b
		}
	}
	return nil
}

func scopesOverlap(a, b []oplog.Namespace) bool {
	for _, x := range a {
		for _, y := range b {
			if overlaps(x, y) {
				return true
			}
		}
	}
	return false
}

// finish records the outcome of a group and releases the shards waiting on it.
func (o *DDLOnce) finish(g *ddlGroup, err error) {
	if err == nil {
		o.record(g)
	}
	o.mu.Lock()
	g.state, g.err = groupApplied, err
	if g.ddl.Kind != oplog.DDLCreateIndexes {
		o.mu.running--
	}
	o.mu.Unlock()
	close(g.done)
}

// record writes each copy of an applied group to its shard's DDLLog, before the
// shards waiting on it go on (and their checkpoints can pass it). A record that
// fails is logged: a restart before the shard's checkpoint passes the copy then
// applies the DDL again, which the executor tolerates.
func (o *DDLOnce) record(g *ddlGroup) {
	type entry struct {
		c   ddlCopy
		log DDLLog
	}
	var todo []entry
	o.mu.Lock()
	for c, cg := range o.mu.copies {
		if cg == g && o.mu.logs[c.shard] != nil {
			todo = append(todo, entry{c, o.mu.logs[c.shard]})
		}
	}
	o.mu.Unlock()
	for _, e := range todo {
		o.logCopy(e.log, e.c, &g.ddl, g.ran)
	}
}

// logCopy records an applied copy in its shard's DDLLog.
func (o *DDLOnce) logCopy(log DDLLog, c ddlCopy, d *oplog.DDL, ran bool) {
	if err := log.DDLApplied(c.shard, DDLCopy{TS: c.ts, Key: c.key, Effect: effectOf(d, ran)}); err != nil {
		o.log.Error("record an applied DDL in the shard's checkpoint; a restart before the checkpoint passes it applies it again",
			"kind", d.Kind, "ns", d.NS, "shard", c.shard, "ts", tsString(c.ts), "err", err)
	}
}

// apply runs a group's DDL and notes whether it ran.
func (o *DDLOnce) apply(ctx context.Context, g *ddlGroup) error {
	ran, err := o.run(ctx, g.ddl, g.first, g.shards, time.Since(g.handed))
	o.mu.Lock()
	g.ran = ran
	o.mu.Unlock()
	return err
}

// run runs d on the destination, as the catalog says it applies there now; ran
// is false when it changes nothing there.
// waited is how long the DDL waited for the other shards and older DDL (for the log).
func (o *DDLOnce) run(ctx context.Context, d oplog.DDL, first primitive.Timestamp, shards []string, waited time.Duration) (ran bool, err error) {
	d, run, why, record := o.cat.effect(d, first)
	if !run {
		o.log.Info("DDL changes nothing on the destination", "kind", d.Kind, "ns", d.NS, "shards", shards, "ts", tsString(first), "why", why)
		o.cat.commit(record)
		return false, nil
	}
	b := newBackoff()
	began := time.Now()
	for {
		err := o.exec.Exec(ctx, d)
		if err == nil {
			o.log.Info("applied DDL", "kind", d.Kind, "ns", d.NS, "shards", shards, "ts", tsString(first),
				"waited", waited.Round(time.Millisecond), "took", time.Since(began).Round(time.Millisecond))
			o.cat.commit(record)
			return true, nil
		}
		if !isTransient(err) || ctx.Err() != nil {
			return false, fmt.Errorf("apply %s on %s (read by %v at %s): %w", d.Kind, d.NS, shards, tsString(first), err)
		}
		o.log.Warn("retrying DDL", "kind", d.Kind, "ns", d.NS, "err", err)
		if err := b.wait(ctx, nil); err != nil {
			return false, err
		}
	}
}

// RelaxedSink keeps what the sync relaxed so that finalize can restore it.
type RelaxedSink interface {
	// IndexRelaxed records the original spec of an index built relaxed on ns.
	IndexRelaxed(ns oplog.Namespace, original bson.Raw) error
	// OptionsWithheld records collection options of ns withheld until finalize.
	OptionsWithheld(ns oplog.Namespace, withheld bson.Raw) error
}

// MongoDDL runs DDL through the destination's mongos. Unique and TTL indexes and
// TTL collection options are relaxed for the sync (oplog.RelaxIndexForSync,
// oplog.RelaxCollectionOptionsForSync); the originals go to the sink before the
// relaxed form is applied, so a crash in between loses nothing.
//
// Re-applying a DDL (a copy read again after a process restart) is tolerated:
// NamespaceExists on create, NamespaceNotFound on drop, dropIndexes, collMod and
// renameCollection (the source name is gone: the rename happened), IndexNotFound on
// dropIndexes. A renameCollection with dropTarget on a destination without that
// option is a drop and a rename (see rename). Sharding a collection already
// sharded with the same key does nothing (prepare.EnsureShardKey).
type MongoDDL struct {
	client *mongo.Client
	sink   RelaxedSink
}

// NewMongoDDL runs DDL through client; sink may be nil when nothing needs
// restoring (a replay into a scratch database).
func NewMongoDDL(client *mongo.Client, sink RelaxedSink) *MongoDDL {
	return &MongoDDL{client: client, sink: sink}
}

// Exec implements DDLExecutor.
func (m *MongoDDL) Exec(ctx context.Context, d oplog.DDL) error {
	db := m.client.Database(d.NS.DB)
	run := func(cmd bson.D, tolerated ...int) error {
		err := db.RunCommand(ctx, cmd).Err()
		if err != nil && mongoerr.HasCode(err, tolerated...) {
			return nil
		}
		return err
	}
	switch d.Kind {
	case oplog.DDLCreateCollection:
		cmd := bson.D{{Key: "create", Value: d.NS.Coll}}
		if len(d.Options) > 0 {
			apply, withheld, err := oplog.RelaxCollectionOptionsForSync(d.Options)
			if err != nil {
				return err
			}
			if err := m.withhold(d.NS, withheld); err != nil {
				return err
			}
			cmd = appendFields(cmd, apply)
		}
		return run(cmd, codeNamespaceExists)
	case oplog.DDLCreateView:
		err := run(appendFields(bson.D{{Key: "create", Value: d.NS.Coll}}, d.Options))
		if mongoerr.HasCode(err, codeNamespaceExists) {
			return run(appendFields(bson.D{{Key: "collMod", Value: d.NS.Coll}}, viewDefinition(d.Options)))
		}
		return err
	case oplog.DDLModifyView:
		if d.Options == nil {
			return fmt.Errorf("view %s was modified on the source without its definition in the oplog: %w", d.NS, oplog.ErrUnsupported)
		}
		return run(appendFields(bson.D{{Key: "collMod", Value: d.NS.Coll}}, viewDefinition(d.Options)))
	case oplog.DDLDrop:
		return run(bson.D{{Key: "drop", Value: d.NS.Coll}}, codeNamespaceNotFound)
	case oplog.DDLDropDatabase:
		return run(bson.D{{Key: "dropDatabase", Value: 1}})
	case oplog.DDLRename:
		return m.rename(ctx, d)
	case oplog.DDLCreateIndexes:
		specs := make(bson.A, 0, len(d.Indexes))
		for _, spec := range d.Indexes {
			relaxed, original, err := oplog.RelaxIndexForSync(spec)
			if err != nil {
				return err
			}
			if !bytes.Equal(relaxed, original) && m.sink != nil {
				if err := m.sink.IndexRelaxed(d.NS, original); err != nil {
					return fmt.Errorf("record the original of index %s on %s: %w", spec.Lookup("name"), d.NS, err)
				}
			}
			specs = append(specs, relaxed)
		}
		return run(bson.D{{Key: "createIndexes", Value: d.NS.Coll}, {Key: "indexes", Value: specs}})
	case oplog.DDLDropIndexes:
		var index any
		switch {
		case len(d.IndexNames) == 1:
			index = d.IndexNames[0]
		case len(d.IndexNames) > 1:
			index = d.IndexNames
		default:
			index = d.Options.Lookup("index")
		}
		return run(bson.D{{Key: "dropIndexes", Value: d.NS.Coll}, {Key: "index", Value: index}}, codeNamespaceNotFound, codeIndexNotFound)
	case oplog.DDLCollMod:
		apply, withheld, err := oplog.RelaxCollectionOptionsForSync(d.Options)
		if err != nil {
			return err
		}
		if err := m.withhold(d.NS, withheld); err != nil {
			return err
		}
		if apply == nil {
			return nil
		}
		return run(appendFields(bson.D{{Key: "collMod", Value: d.NS.Coll}}, apply), codeNamespaceNotFound)
	case oplog.DDLEmptyCapped:
		// emptycapped is a test command mongos does not route; deleting every document
		// has the same effect.
		_, err := db.Collection(d.NS.Coll).DeleteMany(ctx, bson.D{})
		return err
	case oplog.DDLConvertToCapped:
		return run(appendFields(bson.D{{Key: "convertToCapped", Value: d.NS.Coll}}, d.Options))
	case oplog.DDLShardCollection, oplog.DDLRefineShardKey:
		key, ok := d.Options.Lookup("key").DocumentOK()
		if !ok {
			return fmt.Errorf("%s of %s without a shard key", d.Kind, d.NS)
		}
		unique, _ := d.Options.Lookup("unique").BooleanOK()
		return prepare.EnsureShardKey(ctx, m.client, d.NS.String(), key, unique)
	}
	return fmt.Errorf("DDL on %s: unknown kind %d", d.NS, d.Kind)
}

// rename runs renameCollection. A destination that refuses dropTarget (FerretDB
// and other MongoDB-compatible servers answer NotImplemented or an unknown-field
// error) gets the same effect in two steps, drop the target then rename, each safe
// to run again: an interruption between them leaves the source and no target, which
// the next run drops (nothing) and renames; after the rename the source is gone and
// the next run does nothing, so it never drops the renamed collection.
func (m *MongoDDL) rename(ctx context.Context, d oplog.DDL) error {
	admin := m.client.Database("admin")
	renamed := func(dropTarget bool) error {
		cmd := bson.D{{Key: "renameCollection", Value: d.NS.String()}, {Key: "to", Value: d.To.String()}, {Key: "dropTarget", Value: dropTarget}}
		err := admin.RunCommand(ctx, cmd).Err()
		if mongoerr.HasCode(err, codeNamespaceNotFound) {
			return nil // the source is gone: the rename happened before
		}
		return err
	}
	err := renamed(d.DropTarget)
	if err == nil || !d.DropTarget || !mongoerr.HasCode(err, optionRefusedCodes...) {
		return err
	}
	names, lerr := m.client.Database(d.NS.DB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: d.NS.Coll}})
	if lerr != nil {
		return fmt.Errorf("the destination refused renameCollection's dropTarget (%v); look for %s before dropping %s instead: %w", err, d.NS, d.To, lerr)
	}
	if len(names) == 0 {
		return nil // the source is gone: the rename happened before
	}
	drop := bson.D{{Key: "drop", Value: d.To.Coll}}
	if derr := m.client.Database(d.To.DB).RunCommand(ctx, drop).Err(); derr != nil && !mongoerr.HasCode(derr, codeNamespaceNotFound) {
		return fmt.Errorf("the destination refused renameCollection's dropTarget (%v); drop %s before the rename instead: %w", err, d.To, derr)
	}
	return renamed(false)
}

func (m *MongoDDL) withhold(ns oplog.Namespace, withheld bson.Raw) error {
	if withheld == nil || m.sink == nil {
		return nil
	}
	if err := m.sink.OptionsWithheld(ns, withheld); err != nil {
		return fmt.Errorf("record the withheld options %v of %s: %w", withheld, ns, err)
	}
	return nil
}

// appendFields appends the elements of a raw document to cmd.
func appendFields(cmd bson.D, doc bson.Raw) bson.D {
	elems, _ := doc.Elements()
	for _, e := range elems {
		cmd = append(cmd, bson.E{Key: e.Key(), Value: e.Value()})
	}
	return cmd
}

// viewDefinition keeps the fields collMod accepts for a view.
func viewDefinition(opts bson.Raw) bson.Raw {
	var out bson.D
	for _, name := range []string{"viewOn", "pipeline"} {
		if v, err := opts.LookupErr(name); err == nil {
			out = append(out, bson.E{Key: name, Value: v})
		}
	}
	raw, _ := bson.Marshal(out)
	return raw
}

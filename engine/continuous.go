package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/verify"
)

// Continuous verification (issue 17): while every shard is in sync, the destination
// is compared with the source one unit at a time (a run of a sharded collection's
// chunks, scanned on its own by shard key bounds, or an unsharded collection
// whole: continuousranges.go), and every write the source takes after a range
// was compared is rechecked, document by document, from the source shards'
// oplogs. Finalize then compares only the ranges and namespaces not compared yet
// and the documents written since, so its time follows the writes of the last
// moments, not the data.
//
// Why it is sound (docs/correctness.md, "Continuous verification"): each source
// shard has a cursor, an oplog position at or before the entry its replay applied
// last when a comparison began. A document compared equal at some moment differs
// later only through a write after that moment, which is in the oplog after the
// cursor: the next pass reads it and rechecks the document (more writes than it
// rechecks one by one: the ranges they fall in are compared again). A document that
// differed may differ only because the replay had not applied a write yet: it is
// pending, rechecked once every shard applied past the newest entry its oplog had
// when the difference was seen, and reported only if it still differs (it
// persists). A write whose effect comes later than its entry (the parts of a
// transaction, before its commit) keeps the cursor before the transaction's first
// entry until the commit is read. A DDL entry voids what was compared of the
// namespaces it changes (a drop its collection, a rename both names, a
// dropDatabase its database); a shard that copies again (another T0), or an oplog
// that no longer holds a cursor, voids everything: compared again from the start.
//
// The state is in the record (Record.Continuous), saved after each comparison and
// each pass: a Run resumed after a kill goes on from there.

// Bounds of the continuous verification.
const (
	// continuousMaxIDs bounds the _ids kept or rechecked per namespace in one pass
	// (about 10,000 x 30 bytes):
	// a namespace with more changed or differing documents is compared again whole.
	continuousMaxIDs = 10000
	// recheckBatch is how many _ids one recheck reads ($in).
	recheckBatch = 1000
	// continuousOplogBatch is how many oplog entries one read returns.
	continuousOplogBatch = 5000
)

// ContinuousState is the continuous verification's progress, kept in the record.
type ContinuousState struct {
	// Shards are the source shards' positions, in the shards' order.
	Shards []ContinuousShard
	// Destination are the destination shards' cursors: a write there after its
	// namespace was compared (the replay's, or one behind Shardlift's back) is
	// rechecked too.
	Destination []ShardTS
	// Namespaces are the namespaces compared, with what is left to recheck.
	Namespaces []ComparedNamespace
	// Rechecked counts the documents rechecked since their namespace was compared.
	Rechecked int64
}

// ContinuousShard is one source shard's position: T0 is its copy's (another T0
// means it copied again), Cursor the oplog entry after which the writes are yet to
// be rechecked.
type ContinuousShard struct {
	Shard  string
	T0     primitive.Timestamp
	Cursor primitive.Timestamp
}

// ShardTS is an oplog position on one source shard.
type ShardTS struct {
	Shard string
	TS    primitive.Timestamp
}

// ComparedNamespace is one namespace the continuous verification compared,
// whole or some of its ranges.
type ComparedNamespace struct {
	NS string
	// Ranges and Documents are what was compared: the ranges (chunks) and the
	// source's documents.
	Ranges    int
	Documents int64
	// ByRange says the namespace is compared range by range, Units being the
	// ranges compared so far; else it was compared whole.
	ByRange bool
	Units   []ComparedRange
	// Pending are _ids that differed, rechecked once every shard's replay applied
	// past SeenAt (each shard's newest entry when they differed).
	Pending []bson.RawValue
	SeenAt  []ShardTS
	// Persisting are _ids that still differed when rechecked after the replay
	// passed SeenAt. Finalize rechecks them once more, the writes stopped.
	Persisting []bson.RawValue
}

// ComparedRange is one shard key range compared on its own: Chunks chunks
// holding Documents source documents.
type ComparedRange struct {
	Min, Max  shardkey.Key
	Chunks    int
	Documents int64
}

// ContinuousProgress is what the continuous verification has done (Snapshot).
type ContinuousProgress struct {
	// Namespaces compared whole (every range) of total; Ranges compared of total:
	// a sharded collection's chunks, compared in runs of adjacent chunks; an
	// unsharded one counts 1 until compared, then the _id ranges verify.Run cut.
	NamespacesCompared, Namespaces int
	RangesCompared, Ranges         int
	// Rechecked counts documents rechecked since their namespace was compared.
	Rechecked int64
	// Pending are differing documents waiting for the replay to pass them;
	// Persisting those that still differed after it did.
	Pending, Persisting int
	// WaitingForReplay says its reads wait now for a replay that lags: the
	// replay has priority.
	WaitingForReplay bool
}

// Text is the progress in a line.
func (p ContinuousProgress) Text() string {
	waiting := ""
	if p.WaitingForReplay {
		waiting = " (waiting: the replay goes first)"
	}
	return fmt.Sprintf("verified %d of %d ranges (%d of %d namespaces)%s, %d documents rechecked, %d differing pending recheck, %d persisting",
		p.RangesCompared, p.Ranges, p.NamespacesCompared, p.Namespaces, waiting, p.Rechecked, p.Pending, p.Persisting)
}

// ContinuousReuse says what a finalize's verification took from the continuous
// one: the namespaces compared before, the documents rechecked and the
// namespaces compared whole at the finalize, and the ranges (chunks) of the
// namespaces compared by range that it compared then.
type ContinuousReuse struct {
	Reused         int
	Rechecked      int64
	Compared       int
	RangesCompared int
}

// continuousClusters is what the continuous verification reads (Clusters has it).
type continuousClusters interface {
	VerifyPlan(ctx context.Context) ([]verify.Namespace, error)
	VerifySides() (src, dst verify.Side)
	OplogAfter(ctx context.Context, shard string, after primitive.Timestamp, limit int) ([]bson.Raw, bool, error)
	Newest(ctx context.Context, shard string) (primitive.Timestamp, error)
	DestinationShards(ctx context.Context) ([]string, error)
	DestinationOplogAfter(ctx context.Context, shard string, after primitive.Timestamp, limit int) ([]bson.Raw, bool, error)
	DestinationNewest(ctx context.Context, shard string) (primitive.Timestamp, error)
}

// ErrOplogRolledPast is OplogAfter's error when the oplog no longer holds the
// entry asked after.
var ErrOplogRolledPast = errors.New("the oplog no longer holds that entry")

// shardPosition is what a replaying shard has applied (durably) since its T0.
type shardPosition struct {
	Shard       string
	T0, Applied primitive.Timestamp
}

// continuousVerifier runs the continuous verification, one step at a time.
type continuousVerifier struct {
	c continuousClusters
	// positions are the shards' positions, in order; ok is false while a shard
	// does not replay (copying, failed).
	positions func() (pos []shardPosition, ok bool)
	save      func(*ContinuousState) error
	// gov paces each side's scans and rechecks while the sync runs (nil: no
	// bound); the finalize's are not paced.
	gov *readGovernor
	// rangeChunks is the most chunks a unit of comparison holds
	// (continuousRangeChunks).
	rangeChunks int

	mu   sync.Mutex // guards st, plan and whole, which progress reads
	st   *ContinuousState
	plan []verify.Namespace
	// whole are the namespaces whose range scans a server refused (no index of
	// exactly the shard key): compared whole from then on, in this process.
	whole map[string]bool
}

func newContinuousVerifier(c continuousClusters, saved *ContinuousState, positions func() ([]shardPosition, bool), save func(*ContinuousState) error) *continuousVerifier {
	return &continuousVerifier{c: c, st: saved, positions: positions, save: save, whole: map[string]bool{}, rangeChunks: continuousRangeChunks}
}

// sides are the clusters to read, paced by gov during the sync (final is the
// finalize's, with the sync stopped: as fast as they go).
func (v *continuousVerifier) sides(final bool) (verify.Side, verify.Side) {
	src, dst := v.c.VerifySides()
	if final || v.gov == nil {
		return src, dst
	}
	return v.gov.govern(src), v.gov.govern(dst)
}

// step does one unit of work: a pass over the writes since the cursors, then the
// comparison of the next namespace not compared. It reports whether it compared
// a namespace (false: nothing left but passes, or the shards do not all replay).
func (v *continuousVerifier) step(ctx context.Context) (bool, error) {
	pos, ok := v.positions()
	if !ok {
		return false, nil
	}
	if err := v.startIfVoid(ctx, pos); err != nil {
		return false, err
	}
	if v.plan == nil {
		if err := v.refreshPlan(ctx); err != nil {
			return false, err
		}
	}
	replan, err := v.pass(ctx, pos, false)
	if err != nil {
		return false, err
	}
	if replan {
		// A namespace the plan lacks (created since, or changed by DDL): the
		// clusters are discovered again before this step compares. The pass's
		// cursors stay at or before what each shard applied, so comparing after
		// the discovery misses nothing. (Leaving it to the next step starved the
		// comparisons under an application's DDL every few seconds: every step
		// found a new DDL and compared nothing.)
		if err := v.refreshPlan(ctx); err != nil {
			return false, err
		}
	}
	n, u, ok := v.nextUnit()
	if !ok {
		return false, nil
	}
	// The pass just set each cursor at or before what its shard had applied: every
	// write the comparison may miss is after it.
	if u.Whole {
		cn, ok, err := v.compare(ctx, n)
		if err != nil || !ok {
			return false, err
		}
		v.mu.Lock()
		if i := v.comparedLocked(n.Name()); i >= 0 {
			v.st.Namespaces[i] = cn // compared by range before: whole now
		} else {
			v.st.Namespaces = append(v.st.Namespaces, cn)
		}
		v.mu.Unlock()
		return true, v.saveState()
	}
	if ok, err := v.compareRange(ctx, n, u); err != nil || !ok {
		return false, err
	}
	return true, v.saveState()
}

// refreshPlan discovers both clusters again for the namespaces to compare.
func (v *continuousVerifier) refreshPlan(ctx context.Context) error {
	plan, err := v.c.VerifyPlan(ctx)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.plan = plan
	v.mu.Unlock()
	return nil
}

// startIfVoid begins again (cursors at what each shard applied, nothing
// compared) when there is no state or a shard copied again since. The plan is
// discovered again too: a namespace created before the new cursors is in no
// oplog the passes will read, so a plan older than them may lack it for good.
func (v *continuousVerifier) startIfVoid(ctx context.Context, pos []shardPosition) error {
	v.mu.Lock()
	same := v.st != nil && len(v.st.Shards) == len(pos)
	for i := 0; same && i < len(pos); i++ {
		same = v.st.Shards[i].Shard == pos[i].Shard && v.st.Shards[i].T0 == pos[i].T0
	}
	v.mu.Unlock()
	if same {
		return nil
	}
	st := &ContinuousState{}
	for _, p := range pos {
		st.Shards = append(st.Shards, ContinuousShard{Shard: p.Shard, T0: p.T0, Cursor: p.Applied})
	}
	var err error
	if st.Destination, err = v.destinationNewest(ctx); err != nil {
		return err
	}
	v.mu.Lock()
	v.st, v.plan = st, nil
	v.mu.Unlock()
	return v.saveState()
}

func (v *continuousVerifier) saveState() error {
	v.mu.Lock()
	st := cloneContinuous(v.st)
	v.mu.Unlock()
	return v.save(st)
}

func cloneContinuous(st *ContinuousState) *ContinuousState {
	if st == nil {
		return nil
	}
	c := *st
	c.Shards, c.Destination = slices.Clone(st.Shards), slices.Clone(st.Destination)
	c.Namespaces = make([]ComparedNamespace, len(st.Namespaces))
	for i, n := range st.Namespaces {
		n.Pending, n.SeenAt, n.Persisting = slices.Clone(n.Pending), slices.Clone(n.SeenAt), slices.Clone(n.Persisting)
		n.Units = slices.Clone(n.Units)
		c.Namespaces[i] = n
	}
	return &c
}

// nextUnit is the first unit of the plan not compared.
func (v *continuousVerifier) nextUnit() (verify.Namespace, verifyUnit, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.plan {
		units := unitsOf(n, v.whole[n.Name()], v.rangeChunks)
		i := v.comparedLocked(n.Name())
		if i < 0 {
			return n, units[0], true
		}
		cn := &v.st.Namespaces[i]
		if !cn.ByRange {
			continue // compared whole
		}
		done := comparedSet(cn)
		for _, u := range units {
			if u.Whole || !done[rangeKey(u.Min, u.Max)] {
				return n, u, true
			}
		}
	}
	return verify.Namespace{}, verifyUnit{}, false
}

// compareRange compares one range of n; its differing _ids become pending. ok
// is false when more differ than continuousMaxIDs: it is compared again by a
// later step.
func (v *continuousVerifier) compareRange(ctx context.Context, n verify.Namespace, u verifyUnit) (ok bool, err error) {
	src, dst := v.sides(false)
	res, err := verify.CompareRange(ctx, src, dst, n, u.Range, continuousMaxIDs)
	if err != nil {
		var refused mongo.ServerError
		if !errors.As(err, &refused) {
			return false, fmt.Errorf("verify %s in [%s, %s): %w", n.Name(), u.Min, u.Max, err)
		}
		// A server refused the range scan (a cluster without an index of
		// exactly the shard key: one prefixed by it serves the key too).
		v.mu.Lock()
		v.whole[n.Name()] = true
		v.mu.Unlock()
		return false, fmt.Errorf("verify %s in [%s, %s) (the next steps compare it whole): %w", n.Name(), u.Min, u.Max, err)
	}
	if res.More {
		return false, nil
	}
	var seen []ShardTS
	if len(res.Differ) > 0 {
		if seen, err = v.newest(ctx); err != nil {
			return false, err
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	i := v.comparedLocked(n.Name())
	if i < 0 {
		v.st.Namespaces = append(v.st.Namespaces, ComparedNamespace{NS: n.Name(), ByRange: true})
		i = len(v.st.Namespaces) - 1
	}
	cn := &v.st.Namespaces[i]
	persisting := &idSet{}
	persisting.add(cn.Persisting...)
	pending := &idSet{}
	pending.add(cn.Pending...)
	for _, id := range res.Differ {
		if !persisting.has(id) {
			pending.add(id)
		}
	}
	if len(pending.list) > continuousMaxIDs {
		return false, nil
	}
	cn.Units = append(cn.Units, ComparedRange{Min: u.Min, Max: u.Max, Chunks: u.Chunks, Documents: res.Documents})
	cn.Ranges += u.Chunks
	cn.Documents += res.Documents
	if len(res.Differ) > 0 {
		cn.Pending, cn.SeenAt = pending.list, seen
	}
	return true, nil
}

func (v *continuousVerifier) comparedLocked(ns string) int {
	return slices.IndexFunc(v.st.Namespaces, func(c ComparedNamespace) bool { return c.NS == ns })
}

// compare compares one namespace whole; its differing _ids become pending. ok is
// false when more differ than continuousMaxIDs (the list is then incomplete):
// the namespace is compared again by a later step.
func (v *continuousVerifier) compare(ctx context.Context, n verify.Namespace) (cn ComparedNamespace, ok bool, err error) {
	src, dst := v.sides(false)
	res, err := verify.Run(ctx, src, dst, []verify.Namespace{n}, verify.Options{Parallel: 1, Samples: continuousMaxIDs}, nil)
	if err != nil {
		return cn, false, fmt.Errorf("verify %s: %w", n.Name(), err)
	}
	cn = ComparedNamespace{NS: n.Name(), Ranges: res.Ranges, Documents: res.Documents}
	pending := &idSet{}
	for _, mm := range res.Mismatches {
		if len(mm.IDs) >= continuousMaxIDs {
			return cn, false, nil
		}
		pending.add(mm.IDs...)
	}
	if len(pending.list) > continuousMaxIDs {
		return cn, false, nil
	}
	cn.Pending = pending.list
	if len(cn.Pending) > 0 {
		if cn.SeenAt, err = v.newest(ctx); err != nil {
			return cn, false, err
		}
	}
	return cn, true, nil
}

// newest is every source shard's newest oplog entry.
func (v *continuousVerifier) newest(ctx context.Context) ([]ShardTS, error) {
	v.mu.Lock()
	shards := slices.Clone(v.st.Shards)
	v.mu.Unlock()
	var out []ShardTS
	for _, s := range shards {
		ts, err := v.c.Newest(ctx, s.Shard)
		if err != nil {
			return nil, fmt.Errorf("read the newest oplog entry of shard %s: %w", s.Shard, err)
		}
		out = append(out, ShardTS{Shard: s.Shard, TS: ts})
	}
	return out, nil
}

// destinationNewest is every destination shard's newest oplog entry.
func (v *continuousVerifier) destinationNewest(ctx context.Context) ([]ShardTS, error) {
	shards, err := v.c.DestinationShards(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the destination's shards: %w", err)
	}
	var out []ShardTS
	for _, s := range shards {
		ts, err := v.c.DestinationNewest(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("read the newest oplog entry of destination shard %s: %w", s, err)
		}
		out = append(out, ShardTS{Shard: s, TS: ts})
	}
	return out, nil
}

// changes are the writes a pass read: _ids per namespace, and what DDL voided.
type changes struct {
	ids     map[string]*idSet
	voidNS  map[string]bool // changed by DDL, or written without an _id
	voidDB  map[string]bool
	voidAll bool
	// over are the namespaces with more changed _ids than continuousMaxIDs: one
	// compared by range compares again the ranges its writes touched (touched,
	// by bounds), unless a write's range could not be told (unplaced); any other
	// is compared again whole.
	over, unplaced map[string]bool
	touched        map[string]map[string]bool
	locate         *rangeLocator
	// created are the namespaces a create or a rename made: the plan may lack them.
	created []string
}

// replan reports whether the plan may lack a namespace these changes touch: a
// write to one it does not hold, a create, a DDL.
func (ch *changes) replan(planned func(ns string) bool) bool {
	if ch.voidAll || len(ch.voidDB) > 0 {
		return true
	}
	for _, ns := range ch.created {
		if !planned(ns) {
			return true
		}
	}
	for ns := range ch.voidNS {
		if !planned(ns) {
			return true
		}
	}
	for ns := range ch.over {
		if !planned(ns) {
			return true
		}
	}
	for ns := range ch.ids {
		if !planned(ns) {
			return true
		}
	}
	return false
}

// pass reads every shard's oplog from its cursor to what it applied (pos) and
// rechecks the documents written in the namespaces compared, and the pending
// ones whose SeenAt the replay passed. final is finalize's pass (the sync
// stopped): every pending and persisting document is rechecked, and what differs
// then persists.
func (v *continuousVerifier) pass(ctx context.Context, pos []shardPosition, final bool) (replan bool, err error) {
	v.mu.Lock()
	shards := slices.Clone(v.st.Shards)
	dstShards := slices.Clone(v.st.Destination)
	compared := cloneContinuous(v.st).Namespaces
	v.mu.Unlock()
	ch := changes{ids: map[string]*idSet{}, voidNS: map[string]bool{}, voidDB: map[string]bool{},
		over: map[string]bool{}, unplaced: map[string]bool{}, touched: map[string]map[string]bool{},
		locate: &rangeLocator{cache: map[string]*locatedNS{}, compared: func(ns string) (*ComparedNamespace, *shardkey.Pattern) {
			i := slices.IndexFunc(compared, func(c ComparedNamespace) bool { return c.NS == ns })
			n, ok := v.namespace(ns)
			if i < 0 || !ok {
				return nil, nil
			}
			return &compared[i], n.Pattern
		}}}
	cursors := make([]primitive.Timestamp, len(pos))
	dstNewest, err := v.destinationNewest(ctx)
	if err != nil {
		return false, err
	}
	dstCursors := make([]ShardTS, len(dstShards))
	for i, s := range dstShards {
		upTo := s.TS
		if j := slices.IndexFunc(dstNewest, func(n ShardTS) bool { return n.Shard == s.Shard }); j >= 0 {
			upTo = dstNewest[j].TS
		}
		cur, err := readChanges(ctx, v.c.DestinationOplogAfter, s.Shard, s.TS, upTo, &ch)
		if err != nil {
			return true, v.voidIfRolled(ctx, pos, fmt.Errorf("destination shard %s: %w", s.Shard, err))
		}
		dstCursors[i] = ShardTS{Shard: s.Shard, TS: cur}
	}
	for i, s := range shards {
		cur, err := readChanges(ctx, v.c.OplogAfter, s.Shard, s.Cursor, pos[i].Applied, &ch)
		if err != nil {
			return true, v.voidIfRolled(ctx, pos, fmt.Errorf("source shard %s: %w", s.Shard, err))
		}
		cursors[i] = cur
	}
	applied := map[string]primitive.Timestamp{}
	for _, p := range pos {
		applied[p.Shard] = p.Applied
	}
	var kept []ComparedNamespace
	var rechecked int64
	var newest []ShardTS
	for _, cn := range compared {
		db, _ := namespaces.Split(cn.NS)
		if ch.voidAll || ch.voidDB[db] || ch.voidNS[cn.NS] || ch.over[cn.NS] && (!cn.ByRange || ch.unplaced[cn.NS]) {
			continue // compared again whole
		}
		changed := ch.ids[cn.NS]
		if changed == nil {
			changed = &idSet{}
		}
		if ch.over[cn.NS] {
			// Too many to recheck one by one: the ranges they are in are
			// compared again; what differed elsewhere is still rechecked.
			if cn = withoutRanges(cn, ch.touched[cn.NS]); len(cn.Units) == 0 {
				continue
			}
		}
		due := final || passed(cn.SeenAt, applied)
		all := &idSet{}
		all.add(changed.list...)
		if due {
			all.add(cn.Pending...)
		}
		if final {
			all.add(cn.Persisting...)
		}
		ids := all.list
		if len(ids) == 0 {
			kept = append(kept, cn)
			continue
		}
		if len(ids) > continuousMaxIDs && !final {
			continue // too many to follow one by one: compared again whole
		}
		n, ok := v.namespace(cn.NS)
		if !ok {
			continue // gone from the plan: compared again from a new one
		}
		src, dst := v.sides(final)
		var differ []bson.RawValue
		for batch := range slices.Chunk(ids, recheckBatch) {
			d, err := verify.Recheck(ctx, src, dst, n, batch)
			if err != nil {
				return false, fmt.Errorf("recheck %s: %w", cn.NS, err)
			}
			differ = append(differ, d...)
		}
		rechecked += int64(len(ids))
		next := cn
		next.Pending, next.Persisting = nil, nil
		for _, id := range cn.Pending {
			if !due && !changed.has(id) {
				next.Pending = append(next.Pending, id) // the replay has not passed it yet
			}
		}
		for _, id := range cn.Persisting {
			if !final && !changed.has(id) {
				next.Persisting = append(next.Persisting, id)
			}
		}
		wasPending := &idSet{}
		wasPending.add(cn.Pending...)
		// differ holds each _id once, none of those kept above.
		for _, id := range differ {
			switch {
			case final || (due && wasPending.has(id) && !changed.has(id)):
				next.Persisting = append(next.Persisting, id)
			default:
				next.Pending = append(next.Pending, id)
			}
		}
		if len(next.Pending) > 0 && !final {
			if newest == nil {
				if newest, err = v.newest(ctx); err != nil {
					return false, err
				}
			}
			next.SeenAt = newest
		} else if len(next.Pending) == 0 {
			next.SeenAt = nil
		}
		kept = append(kept, next)
	}
	v.mu.Lock()
	v.st.Namespaces = kept
	v.st.Rechecked += rechecked
	for i := range v.st.Shards {
		v.st.Shards[i].Cursor = cursors[i]
	}
	v.st.Destination = dstCursors
	v.mu.Unlock()
	replan = ch.replan(func(ns string) bool { _, ok := v.namespace(ns); return ok || !migratedNS(ns) })
	return replan, v.saveState()
}

// migratedNS reports whether "db.coll" is a namespace a migration copies.
func migratedNS(ns string) bool {
	db, coll := namespaces.Split(ns)
	return coll != "" && namespaces.Migrated(db, coll)
}

// voidIfRolled starts again when err says an oplog no longer holds a cursor:
// what was compared cannot be followed any more. Other errors are returned.
func (v *continuousVerifier) voidIfRolled(ctx context.Context, pos []shardPosition, err error) error {
	if !errors.Is(err, ErrOplogRolledPast) {
		return err
	}
	v.mu.Lock()
	v.st = nil
	v.mu.Unlock()
	return v.startIfVoid(ctx, pos)
}

// passed reports whether every shard applied past its position in seen.
func passed(seen []ShardTS, applied map[string]primitive.Timestamp) bool {
	for _, s := range seen {
		if applied[s.Shard].Before(s.TS) {
			return false
		}
	}
	return true
}

func (v *continuousVerifier) namespace(ns string) (verify.Namespace, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := slices.IndexFunc(v.plan, func(n verify.Namespace) bool { return n.Name() == ns })
	if i < 0 {
		return verify.Namespace{}, false
	}
	return v.plan[i], true
}

// oplogReader reads up to limit entries of one shard's oplog after ts.
type oplogReader func(ctx context.Context, shard string, after primitive.Timestamp, limit int) ([]bson.Raw, bool, error)

// readChanges reads one shard's oplog after cursor up to upTo into ch and
// returns the next cursor: upTo, or just before the first entry of a transaction
// still open there (its writes take effect at its commit, read by a later pass).
func readChanges(ctx context.Context, read oplogReader, shard string, cursor, upTo primitive.Timestamp, ch *changes) (primitive.Timestamp, error) {
	open := map[string]primitive.Timestamp{}
	after := cursor
	for after.Before(upTo) {
		raws, more, err := read(ctx, shard, after, continuousOplogBatch)
		if err != nil {
			return primitive.Timestamp{}, fmt.Errorf("read the oplog: %w", err)
		}
		done := !more || len(raws) == 0
		for _, raw := range raws {
			e, err := oplog.Decode(raw)
			if err != nil {
				return primitive.Timestamp{}, fmt.Errorf("read the oplog: %w", err)
			}
			if upTo.Before(e.TS) {
				done = true
				break
			}
			after = e.TS
			ch.add(&e, open)
		}
		if done {
			break
		}
	}
	next := upTo
	for _, first := range open {
		if before := justBefore(first); before.Before(next) {
			next = before
		}
	}
	if next.Before(cursor) {
		next = cursor
	}
	return next, nil
}

// justBefore is the largest timestamp before ts.
func justBefore(ts primitive.Timestamp) primitive.Timestamp {
	if ts.I > 0 {
		return primitive.Timestamp{T: ts.T, I: ts.I - 1}
	}
	if ts.T == 0 {
		return ts
	}
	return primitive.Timestamp{T: ts.T - 1, I: ^uint32(0)}
}

// add notes what one entry writes; open tracks the transactions whose writes
// are not visible yet, by session and number.
func (ch *changes) add(e *oplog.Entry, open map[string]primitive.Timestamp) {
	if e.FromMigrate {
		return // a chunk migration moves documents; it does not change them
	}
	txn := string(e.LSID) + fmt.Sprint(e.TxnNumber)
	switch e.Op {
	case oplog.OpInsert, oplog.OpDelete:
		ch.id(e.NS.String(), e.O.Lookup("_id"), keyChange{op: byte(e.Op), o: e.O})
	case oplog.OpUpdate:
		ch.id(e.NS.String(), e.O2.Lookup("_id"), keyChange{op: byte(e.Op), o: e.O, o2: e.O2})
	case oplog.OpCommand:
		switch e.Command {
		case oplog.CmdApplyOps:
			ch.applyOps(e.O)
			switch _, wasOpen := open[txn]; {
			case e.PartialTxn || e.Prepare:
				if !wasOpen {
					open[txn] = e.TS
				}
			case wasOpen:
				delete(open, txn)
			case e.HasPrevOpTime && !e.PrevOpTime.TS.IsZero():
				ch.voidAll = true // the commit of parts read before the cursor
			}
		case oplog.CmdCommitTransaction:
			if _, wasOpen := open[txn]; wasOpen {
				delete(open, txn)
			} else {
				ch.voidAll = true // its prepare was before the cursor
			}
		case oplog.CmdAbortTransaction:
			delete(open, txn)
		case oplog.CmdCreate:
			// A new namespace: nothing compared changes (a re-create follows the
			// drop that voided its name), but the plan may lack it.
			if coll, ok := e.O.Lookup("create").StringValueOK(); ok {
				ch.created = append(ch.created, e.NS.DB+"."+coll)
			} else {
				ch.void(e.NS.DB)
			}
		case oplog.CmdDrop, oplog.CmdEmptyCapped, oplog.CmdConvertToCapped:
			// One collection's documents change: it alone is compared again.
			if coll, ok := e.O.Lookup(string(e.Command)).StringValueOK(); ok {
				ch.voidNS[e.NS.DB+"."+coll] = true
			} else {
				ch.void(e.NS.DB)
			}
		case oplog.CmdRenameCollection:
			// Both names change ($out's rename over its target included), in
			// whichever databases they are.
			from, okFrom := e.O.Lookup("renameCollection").StringValueOK()
			to, okTo := e.O.Lookup("to").StringValueOK()
			if !okFrom || !okTo {
				ch.void(e.NS.DB)
				break
			}
			ch.voidNS[from], ch.voidNS[to] = true, true
			ch.created = append(ch.created, to)
		case oplog.CmdCreateIndexes, oplog.CmdStartIndexBuild, oplog.CmdCommitIndexBuild,
			oplog.CmdAbortIndexBuild, oplog.CmdDropIndexes, oplog.CmdDeleteIndexes, oplog.CmdDeleteIndex,
			oplog.CmdCollMod, oplog.CmdDBCheck:
			// No document changes (a TTL's deletions are entries of their own).
		default:
			ch.void(e.NS.DB)
		}
	}
}

func (ch *changes) void(db string) {
	if namespaces.UserDatabase(db) {
		ch.voidDB[db] = true
	} else {
		ch.voidAll = true // admin's renameCollection names other databases
	}
}

// applyOps notes the writes of an applyOps's inner operations.
func (ch *changes) applyOps(o bson.Raw) {
	ops, ok := o.Lookup("applyOps").ArrayOK()
	if !ok {
		ch.voidAll = true
		return
	}
	values, err := ops.Values()
	if err != nil {
		ch.voidAll = true
		return
	}
	for _, val := range values {
		op, ok := val.DocumentOK()
		if !ok {
			continue
		}
		kind, _ := op.Lookup("op").StringValueOK()
		ns, _ := op.Lookup("ns").StringValueOK()
		inner, _ := op.Lookup("o").DocumentOK()
		switch kind {
		case "i", "d":
			ch.id(ns, inner.Lookup("_id"), keyChange{op: kind[0], o: inner})
		case "u":
			key, _ := op.Lookup("o2").DocumentOK()
			ch.id(ns, key.Lookup("_id"), keyChange{op: 'u', o: inner, o2: key})
		case "c":
			db, _ := namespaces.Split(ns)
			ch.void(db)
		}
	}
}

func (ch *changes) id(ns string, id bson.RawValue, k keyChange) {
	if id.Type == 0 {
		ch.void(oplog.ParseNamespace(ns).DB) // a write without an _id: its namespace is compared again
		return
	}
	if ch.voidNS[ns] {
		return
	}
	if ch.locate != nil && !ch.unplaced[ns] {
		// Every write's range, while its _id is rechecked too: those before the
		// bound was passed count as much as those after.
		if touched, ok := ch.locate.locate(ns, k); !ok {
			ch.unplaced[ns] = true
		} else {
			for _, t := range touched {
				if ch.touched[ns] == nil {
					ch.touched[ns] = map[string]bool{}
				}
				ch.touched[ns][t] = true
			}
		}
	}
	if ch.over[ns] {
		return
	}
	set := ch.ids[ns]
	if set == nil {
		set = &idSet{}
		ch.ids[ns] = set
	}
	if len(set.list) >= continuousMaxIDs {
		ch.over[ns] = true // too many to recheck one by one: compared again, by range or whole
		delete(ch.ids, ns)
		return
	}
	set.add(id)
}

// withoutRanges is cn without the ranges in touched (by bounds), which are to
// be compared again.
func withoutRanges(cn ComparedNamespace, touched map[string]bool) ComparedNamespace {
	cn.Units = slices.DeleteFunc(slices.Clone(cn.Units), func(u ComparedRange) bool { return touched[rangeKey(u.Min, u.Max)] })
	cn.Ranges, cn.Documents = 0, 0
	for _, u := range cn.Units {
		cn.Ranges += u.Chunks
		cn.Documents += u.Documents
	}
	return cn
}

// idSet is a set of _ids in the order added.
type idSet struct {
	list []bson.RawValue
	seen map[string]bool
}

func idKey(id bson.RawValue) string { return string(rune(id.Type)) + string(id.Value) }

func (s *idSet) has(id bson.RawValue) bool { return s.seen[idKey(id)] }

// add adds copies of the ids not in the set yet.
func (s *idSet) add(ids ...bson.RawValue) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	for _, id := range ids {
		if k := idKey(id); !s.seen[k] {
			s.seen[k] = true
			s.list = append(s.list, bson.RawValue{Type: id.Type, Value: slices.Clone(id.Value)})
		}
	}
}

// progress is the continuous verification's progress for the snapshot; nil
// before it started or knew what it will compare.
func (v *continuousVerifier) progress() *ContinuousProgress {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.st == nil || (v.plan == nil && len(v.st.Namespaces) == 0) {
		return nil // nothing to say before the first discovery: not "0 of 0"
	}
	p := &ContinuousProgress{Rechecked: v.st.Rechecked, WaitingForReplay: v.gov.waiting()}
	planned := map[string]bool{}
	for _, n := range v.plan {
		planned[n.Name()] = true
		p.Namespaces++
		units := unitsOf(n, v.whole[n.Name()], v.rangeChunks)
		i := v.comparedLocked(n.Name())
		if i >= 0 && !v.st.Namespaces[i].ByRange {
			p.NamespacesCompared++
			p.Ranges += v.st.Namespaces[i].Ranges
			p.RangesCompared += v.st.Namespaces[i].Ranges
			continue
		}
		done := map[string]bool{}
		if i >= 0 {
			done = comparedSet(&v.st.Namespaces[i])
		}
		all := true
		for _, u := range units {
			p.Ranges += u.Chunks
			if !u.Whole && done[rangeKey(u.Min, u.Max)] {
				p.RangesCompared += u.Chunks
			} else {
				all = false
			}
		}
		if all {
			p.NamespacesCompared++
		}
	}
	for _, cn := range v.st.Namespaces {
		p.Pending += len(cn.Pending)
		p.Persisting += len(cn.Persisting)
		if !planned[cn.NS] && !cn.ByRange { // before the first discovery of a resumed Run
			p.Namespaces++
			p.NamespacesCompared++
			p.Ranges += cn.Ranges
			p.RangesCompared += cn.Ranges
		}
	}
	return p
}

// final is finalize's verification, the sync stopped with every shard at pos:
// the writes since the cursors and every differing document are rechecked, the
// namespaces not compared yet are compared whole. ok is false when nothing can be
// reused (no state, or a shard copied again since): the caller compares everything.
func (v *continuousVerifier) final(ctx context.Context, pos []shardPosition) (*Verification, bool, error) {
	v.mu.Lock()
	usable := v.st != nil && len(v.st.Namespaces) > 0
	v.mu.Unlock()
	if !usable {
		return nil, false, nil
	}
	if err := v.startIfVoid(ctx, pos); err != nil {
		return nil, false, err
	}
	// The plan of the last steps holds every namespace unless the writes since
	// touched one it lacks (then the clusters are discovered again, as after a
	// restart): discovery costs seconds on a large cluster.
	v.mu.Lock()
	replan := v.plan == nil
	before := v.st.Rechecked
	v.mu.Unlock()
	if replan {
		if err := v.refreshPlan(ctx); err != nil {
			return nil, false, err
		}
	}
	replan, err := v.pass(ctx, pos, true)
	if err != nil {
		return nil, false, err
	}
	if replan {
		if err := v.refreshPlan(ctx); err != nil {
			return nil, false, err
		}
	}
	v.mu.Lock()
	plan := slices.Clone(v.plan)
	st := cloneContinuous(v.st)
	whole := maps.Clone(v.whole)
	v.mu.Unlock()
	out := &Verification{Namespaces: len(plan), Continuous: &ContinuousReuse{Rechecked: st.Rechecked - before}}
	var rest []verify.Namespace
	for _, n := range plan {
		i := slices.IndexFunc(st.Namespaces, func(c ComparedNamespace) bool { return c.NS == n.Name() })
		if i < 0 {
			rest = append(rest, n)
			continue
		}
		cn := st.Namespaces[i]
		var missing []verifyUnit
		if cn.ByRange {
			done := comparedSet(&cn)
			for _, u := range unitsOf(n, whole[n.Name()], v.rangeChunks) {
				if !done[rangeKey(u.Min, u.Max)] || u.Whole {
					missing = append(missing, u)
				}
			}
			if slices.ContainsFunc(missing, func(u verifyUnit) bool { return u.Whole }) {
				rest = append(rest, n) // its range scans failed: compared whole
				continue
			}
		}
		out.Continuous.Reused++
		out.Ranges += cn.Ranges
		out.Documents += cn.Documents
		if len(cn.Persisting) == 0 {
			out.Matched += cn.Ranges
		} else {
			mm := Mismatch{Namespace: cn.NS, Range: "documents written or differing since it was compared"}
			for _, id := range cn.Persisting[:min(len(cn.Persisting), verify.DefaultSamples)] {
				mm.SampleIDs = append(mm.SampleIDs, id.String())
			}
			out.Matched += cn.Ranges - 1
			out.Mismatches = append(out.Mismatches, mm)
		}
		// The ranges the continuous verification did not compare (not reached,
		// or voided by many writes): compared now, each on its own.
		src, dst := v.c.VerifySides()
		for _, u := range missing {
			res, err := verify.CompareRange(ctx, src, dst, n, u.Range, verify.DefaultSamples)
			if err != nil {
				return nil, false, fmt.Errorf("verify %s in [%s, %s): %w", n.Name(), u.Min, u.Max, err)
			}
			out.Continuous.RangesCompared += u.Chunks
			out.Ranges += u.Chunks
			out.Documents += res.Documents
			if len(res.Differ) == 0 {
				out.Matched += u.Chunks
				continue
			}
			mm := Mismatch{Namespace: n.Name(), Range: "[" + u.Min.String() + ", " + u.Max.String() + ")", SourceCount: res.Documents, DestCount: res.DestDocuments}
			for _, id := range res.Differ {
				mm.SampleIDs = append(mm.SampleIDs, id.String())
			}
			out.Matched += u.Chunks - 1
			out.Mismatches = append(out.Mismatches, mm)
		}
	}
	if len(rest) > 0 {
		src, dst := v.c.VerifySides()
		res, err := verify.Run(ctx, src, dst, rest, verify.Options{}, nil)
		if err != nil {
			return nil, false, fmt.Errorf("verify the destination: %w", err)
		}
		out.Continuous.Compared = len(rest)
		out.Ranges += res.Ranges
		out.Matched += res.Matched
		out.Documents += res.Documents
		for _, mm := range res.Mismatches {
			out.Mismatches = append(out.Mismatches, Mismatch{Namespace: mm.Namespace, Range: mm.Range, SourceCount: mm.SourceCount, DestCount: mm.DestCount, SampleIDs: mm.SampleIDs})
		}
	}
	return out, true, nil
}

// replayPositions are the shards' T0 and durably applied entries, in order; ok is
// false unless the migration syncs with every shard in sync: while a shard
// catches up (after its copy, or fallen behind), the verification yields the
// clusters to its replay.
func (m *Migration) replayPositions() ([]shardPosition, bool) {
	switch m.State() {
	case Syncing, Ready, CuttingOver:
	default:
		return nil, false
	}
	shards := m.shardList()
	var out []shardPosition
	for _, sh := range shards {
		m.mu.Lock()
		phase := sh.phase
		m.mu.Unlock()
		if phase != Synced {
			return nil, false
		}
		sh.saveMu.Lock()
		cp := sh.cp
		sh.saveMu.Unlock()
		if cp.Applied.IsZero() || cp.T0.IsZero() {
			return nil, false
		}
		out = append(out, shardPosition{Shard: sh.name, T0: cp.T0, Applied: cp.Applied})
	}
	return out, len(out) > 0
}

// replayLag is the largest lag of the shards' replays; ok is false unless every
// shard is in sync (replayPositions' rule): the continuous verification's reads
// yield to the replays (readGovernor).
func (m *Migration) replayLag() (time.Duration, bool) {
	if _, ok := m.replayPositions(); !ok {
		return 0, false
	}
	var lag time.Duration
	for _, sh := range m.shardList() {
		m.mu.Lock()
		rp := sh.replayer
		m.mu.Unlock()
		if rp == nil {
			return 0, false
		}
		lag = max(lag, rp.Snapshot().Lag)
	}
	return lag, true
}

// finalPositions are the shards' last applied entries once the sync stopped.
func (m *Migration) finalPositions() []shardPosition {
	var out []shardPosition
	for _, sh := range m.shardList() {
		sh.saveMu.Lock()
		out = append(out, shardPosition{Shard: sh.name, T0: sh.cp.T0, Applied: sh.cp.Applied})
		sh.saveMu.Unlock()
	}
	return out
}

// verifyContinuously runs the continuous verification's steps, a pause apart,
// until ctx ends. A step that fails is logged and tried again: it only costs the
// finalize more to compare.
func (m *Migration) verifyContinuously(ctx context.Context, r *runState) {
	for {
		r.contMu.Lock()
		_, err := r.continuous.step(ctx)
		r.contMu.Unlock()
		switch {
		case errors.Is(err, errReplayFirst):
			m.log.Debug("continuous verification yields to the replay", "err", err)
		case err != nil && ctx.Err() == nil:
			m.log.Warn("continuous verification", "err", err)
		}
		t := m.clock.NewTimer(m.cfg.ContinuousPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// finalVerify is finalize's verification: what the continuous verification has
// not covered, or everything without it.
func (m *Migration) finalVerify(ctx context.Context, r *runState) (*Verification, error) {
	if r.continuous != nil {
		r.stopContinuous()
		r.contMu.Lock()
		m.setReason("verifying what changed since the continuous verification compared it, and what it did not compare")
		v, ok, err := r.continuous.final(ctx, m.finalPositions())
		r.contMu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("verify the destination: %w", err)
		}
		if ok {
			v.At = m.clock.Now()
			m.setReason("")
			return v, nil
		}
	}
	return m.verify(ctx, r.clusters)
}

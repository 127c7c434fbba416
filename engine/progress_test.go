package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
)

// copyWorld is what real copiers (engine/initialsync) copy under a Migration on
// fakes: each source shard's namespaces in memory, and the destination's copy.
// Its documents can change while they are copied, as a busy source's do.
type copyWorld struct {
	mu    sync.Mutex
	rnd   *rand.Rand
	src   map[string]map[string]map[int32]bson.Raw // shard -> ns -> _id -> document
	dst   map[string]map[string]map[int32]int      // shard -> ns -> _id -> size
	plans map[string]*prepare.ShardPlan
	next  int32 // the next new _id
	// churn makes every write insert documents after the scan and delete some
	// before it reaches them.
	churn bool
	// onWrite sees every destination write, outside the lock.
	onWrite func()
	// gate, when set, holds the first copier of gateShard after a few writes, until
	// its context ends (a restart).
	gate      chan struct{}
	gateShard string
	gateAfter int
	writes    map[string]int
}

func newCopyWorld(seed uint64) *copyWorld {
	return &copyWorld{rnd: rand.New(rand.NewPCG(seed, 19)), src: map[string]map[string]map[int32]bson.Raw{},
		dst: map[string]map[string]map[int32]int{}, plans: map[string]*prepare.ShardPlan{}, writes: map[string]int{}, next: 1}
}

// addShard gives a shard namespaces of random documents, and a plan whose
// estimates are off by the given factors (0: the collection is reported empty).
func (w *copyWorld) addShard(shard string, docs []int, estimate []float64) {
	sp := &prepare.ShardPlan{Source: shard, Destination: "d-" + shard}
	w.src[shard] = map[string]map[int32]bson.Raw{}
	for i, n := range docs {
		ns := fmt.Sprintf("db%d.c%d", len(w.plans), i)
		coll := map[int32]bson.Raw{}
		var bytes int64
		for range n {
			d := w.newDoc()
			coll[idOf(d)] = d
			bytes += int64(len(d))
		}
		w.src[shard][ns] = coll
		db, name, _ := strings.Cut(ns, ".")
		c := &prepare.Collection{DB: db, Name: name, Type: "collection", SourcePrimary: shard}
		n := prepare.ShardNamespace{Collection: c, Docs: int64(float64(n) * estimate[i]), Bytes: int64(float64(bytes) * estimate[i])}
		sp.Namespaces = append(sp.Namespaces, n)
		sp.Docs += n.Docs
		sp.Bytes += n.Bytes
	}
	w.plans[shard] = sp
}

// newDoc is a document of 50 to 2,000 bytes with the next _id. Called with mu held
// or before the copy.
func (w *copyWorld) newDoc() bson.Raw {
	id := w.next
	w.next++
	d, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}, {Key: "pad", Value: strings.Repeat("x", 30+w.rnd.IntN(1970))}})
	return d
}

func idOf(d bson.Raw) int32 { return d.Lookup("_id").Int32() }

func (w *copyWorld) estimates() map[string]Estimate {
	out := map[string]Estimate{}
	for s, p := range w.plans {
		out[s] = Estimate{Docs: p.Docs, Bytes: p.Bytes}
	}
	return out
}

// clear drops what a shard copied (ClearShard before a restarted copy).
func (w *copyWorld) clear(shard string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.dst, shard)
}

// copied is what the destination holds of a shard.
func (w *copyWorld) copied(shard string) (docs, bytes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, coll := range w.dst[shard] {
		for _, size := range coll {
			docs++
			bytes += int64(size)
		}
	}
	return docs, bytes
}

func (w *copyWorld) newCopier(shard string, saved map[string]initialsync.PartitionProgress, sink initialsync.CheckpointSink, idx initialsync.IndexSink) (Copier, error) {
	w.mu.Lock()
	first := w.writes[shard] == 0
	w.mu.Unlock()
	return initialsync.New(initialsync.Config{
		Shard: w.plans[shard], Source: worldSource{w, shard}, Destination: &worldDest{w: w, shard: shard, gated: first && shard == w.gateShard},
		Saved: saved, Checkpoints: sink, Indexes: idx, BatchDocs: 7, Writers: 3, Namespaces: 2, Partitions: 1,
		// The held insert is never answered: a restart abandons it after this grace.
		StopGrace: 50 * time.Millisecond,
	})
}

// worldSource is one shard of the world, read in _id order as a shard's _id index
// streams it: documents inserted ahead of the scan are met, deleted ones are not.
type worldSource struct {
	w     *copyWorld
	shard string
}

func (s worldSource) Find(_ context.Context, db, coll string, filter bson.D, _ initialsync.Order, _ bool) (initialsync.Cursor, error) {
	after := int32(0)
	if len(filter) > 0 {
		// {_id: {$not: {$lte: last}}}, the copier's resume filter.
		after = filter[0].Value.(bson.D)[0].Value.(bson.D)[0].Value.(bson.RawValue).Int32()
	}
	return &worldCursor{w: s.w, shard: s.shard, ns: db + "." + coll, after: after}, nil
}

func (worldSource) ListIndexes(context.Context, string, string) ([]bson.Raw, error) { return nil, nil }

// The world copies every namespace whole (Partitions 1): ranges are not asked for.
func (worldSource) FindRange(context.Context, string, string, bson.RawValue, bson.RawValue) (initialsync.Cursor, error) {
	return nil, errors.New("the copy world scans namespaces whole")
}

func (worldSource) SampleIDs(context.Context, string, string, int) ([]bson.RawValue, error) {
	return nil, errors.New("the copy world scans namespaces whole")
}

type worldCursor struct {
	w         *copyWorld
	shard, ns string
	after     int32
	cur       bson.Raw
}

func (c *worldCursor) Next(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	best := int32(-1)
	for id := range c.w.src[c.shard][c.ns] {
		if id > c.after && (best < 0 || id < best) {
			best = id
		}
	}
	if best < 0 {
		return false
	}
	c.after, c.cur = best, c.w.src[c.shard][c.ns][best]
	return true
}

func (c *worldCursor) Current() bson.Raw           { return c.cur }
func (c *worldCursor) Err() error                  { return nil }
func (c *worldCursor) Close(context.Context) error { return nil }

type worldDest struct {
	w     *copyWorld
	shard string
	gated bool
}

func (d *worldDest) Insert(ctx context.Context, db, coll string, docs []bson.Raw, _ bool) error {
	w := d.w
	w.mu.Lock()
	w.writes[d.shard]++
	hold := d.gated && w.writes[d.shard] > w.gateAfter
	w.mu.Unlock()
	if hold {
		select {
		case <-w.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	ns := db + "." + coll
	if w.dst[d.shard] == nil {
		w.dst[d.shard] = map[string]map[int32]int{}
	}
	if w.dst[d.shard][ns] == nil {
		w.dst[d.shard][ns] = map[int32]int{}
	}
	for _, doc := range docs {
		w.dst[d.shard][ns][idOf(doc)] = len(doc)
	}
	if w.churn {
		src := w.src[d.shard][ns]
		nd := w.newDoc()
		src[idOf(nd)] = nd
		scanned := idOf(docs[len(docs)-1])
		for id := range src {
			if id > scanned && w.rnd.IntN(8) == 0 {
				delete(src, id)
				break
			}
		}
	}
	w.mu.Unlock()
	if w.onWrite != nil {
		w.onWrite()
	}
	return nil
}

func (d *worldDest) CreateIndexes(context.Context, string, string, []bson.Raw) error { return nil }
func (d *worldDest) Empty(context.Context, *prepare.Collection) error                { return nil }
func (d *worldDest) ExistingIDs(_ context.Context, _, _ string, ids []bson.RawValue) ([]bool, error) {
	return make([]bool, len(ids)), nil
}

// progressChecker looks at a migration's snapshots in the order it takes them and
// fails the test when the copy's numbers break a promise: a total below what was
// copied, a fraction that goes back (but for a shard being restarted), bytes and
// documents that disagree on whether the copy is done, or 100% while a shard has
// yet to copy.
type progressChecker struct {
	t          *testing.T
	m          *Migration
	mu         sync.Mutex
	prev       *Snapshot
	restarting string
	looks      int
}

func (c *progressChecker) look() {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m.Snapshot()
	c.looks++
	c.totals("overall", s.Overall)
	waiting := false
	for _, sh := range s.Shards {
		c.totals("shard "+sh.Name, sh.Progress)
		waiting = waiting || sh.Phase == Pending || sh.Phase == Copying
	}
	if waiting && s.Overall.Fraction() >= 1 {
		c.t.Errorf("look %d: overall at 100%% while a shard has yet to copy: %+v", c.looks, s.Shards)
	}
	if p := c.prev; p != nil && len(p.Shards) == len(s.Shards) {
		if c.restarting == "" {
			c.grows("overall", p.Overall, s.Overall)
		}
		for i, sh := range s.Shards {
			if sh.Name != c.restarting {
				c.grows("shard "+sh.Name, p.Shards[i].Progress, sh.Progress)
			}
		}
	}
	c.prev = &s
}

// docsView is the progress as documents alone.
func docsView(p Progress) Progress {
	return Progress{DocsCopied: p.DocsCopied, DocsTotal: p.DocsTotal, TotalsEstimated: p.TotalsEstimated, CopyUnfinished: p.CopyUnfinished}
}

func (c *progressChecker) totals(what string, p Progress) {
	if p.DocsCopied > p.DocsTotal || p.BytesCopied > p.BytesTotal {
		c.t.Errorf("look %d: %s: copied %d docs / %d bytes of totals %d / %d", c.looks, what, p.DocsCopied, p.BytesCopied, p.DocsTotal, p.BytesTotal)
	}
	fb, fd := p.Fraction(), docsView(p).Fraction()
	unfinished := p.TotalsEstimated || p.CopyUnfinished
	if unfinished != (fb < 1) || unfinished != (fd < 1) {
		c.t.Errorf("look %d: %s: bytes say %.4f and documents %.4f done with estimated totals %v, copy unfinished %v", c.looks, what, fb, fd, p.TotalsEstimated, p.CopyUnfinished)
	}
}

func (c *progressChecker) grows(what string, before, after Progress) {
	if after.Fraction() < before.Fraction() || docsView(after).Fraction() < docsView(before).Fraction() {
		c.t.Errorf("look %d: %s went back from %.4f (docs %.4f) to %.4f (docs %.4f): %+v then %+v", c.looks, what,
			before.Fraction(), docsView(before).Fraction(), after.Fraction(), docsView(after).Fraction(), before, after)
	}
	if after.DocsCopied < before.DocsCopied || after.BytesCopied < before.BytesCopied {
		c.t.Errorf("look %d: %s: the copied counts went back: %+v then %+v", c.looks, what, before, after)
	}
}

// restart restarts a shard, its drop in progress allowed meanwhile.
func (c *progressChecker) restart(shard string) {
	c.mu.Lock()
	c.restarting = shard
	c.mu.Unlock()
	if err := c.m.RestartShard(bg, shard); err != nil {
		c.t.Fatal(err)
	}
	c.look()
	c.mu.Lock()
	c.restarting = ""
	c.mu.Unlock()
}

// Property: whatever the estimates (too high, too low, zero, documents changing
// while they are copied) and with a shard restarted in the middle of its copy, the
// totals are never below what was copied, the fraction never goes back except for
// the restarted shard, bytes and documents agree on when the copy is done, and the
// overall progress is never 100% while a shard has yet to copy. At the end the
// totals are exactly what the destination holds.
func TestCopyTotalsNeverShrinkBelowCopiedAndTheFractionOnlyGrows(t *testing.T) {
	factors := []float64{1, 3.5, 0.3, 0}
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newCopyWorld(seed)
			w.churn = seed%2 == 1
			shards := []string{"s0", "s1", "s2"}
			for i, s := range shards {
				var docs []int
				var est []float64
				for j := range 1 + (int(seed)+i)%3 {
					docs = append(docs, 20+w.rnd.IntN(200))
					est = append(est, factors[(int(seed)+i+j)%len(factors)])
				}
				w.addShard(s, docs, est)
			}
			restart := seed%3 != 2
			if restart {
				w.gate, w.gateShard, w.gateAfter = make(chan struct{}), "s1", 2
			}
			h := newHarness(t, shards...)
			h.fc.world = w
			h.fc.inv.Estimates = w.estimates()
			c := &progressChecker{t: t, m: h.m}
			w.onWrite = c.look
			h.start(StartOptions{})
			if restart {
				h.eventually("s1 copying, held part way", func() bool {
					c.look()
					w.mu.Lock()
					defer w.mu.Unlock()
					return w.writes["s1"] > w.gateAfter
				})
				c.restart("s1")
			}
			h.eventually("every shard copied", func() bool {
				c.look()
				s := h.m.Snapshot()
				return len(s.Shards) == 3 && !slices.ContainsFunc(s.Shards, func(p ShardProgress) bool {
					return p.Phase != CatchingUp && p.Phase != Synced
				})
			})
			s := h.m.Snapshot()
			var docs, bytes int64
			for _, sh := range shards {
				d, b := w.copied(sh)
				docs, bytes = docs+d, bytes+b
			}
			o := s.Overall
			if o.TotalsEstimated || o.DocsTotal != docs || o.DocsCopied != docs || o.BytesTotal != bytes || o.BytesCopied != bytes || o.Fraction() != 1 {
				t.Fatalf("after the copy: %+v; the destination holds %d documents, %d bytes", o, docs, bytes)
			}
			if c.looks < 20 {
				t.Fatalf("only %d looks at the progress", c.looks)
			}
		})
	}
}

// A shard has no lag until it replays and has read its source's newest entry; the
// migration's lag and optime gap are known only once every shard's lag is: never a
// zero that means "unknown" next to a gap that says otherwise.
func TestLagAndGapAreUnknownUntilEveryShardReplays(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	gate := make(chan struct{})
	h.fc.shards["s1"].copyGate = gate
	h.start(StartOptions{})
	h.eventually("s0 replaying while s1 copies", func() bool {
		return h.fc.replayer("s0") != nil && h.phase("s0") == CatchingUp && h.phase("s1") == Copying
	})
	s := h.m.Snapshot()
	if sh := s.Shards[0]; !sh.LagKnown || sh.Lag != 30*time.Second {
		t.Fatalf("replaying shard: lag %v known %v, want 30s", sh.Lag, sh.LagKnown)
	}
	if sh := s.Shards[1]; sh.LagKnown || sh.Lag != 0 {
		t.Fatalf("copying shard: lag %v known %v, want unknown", sh.Lag, sh.LagKnown)
	}
	if s.Overall.LagKnown || s.Overall.Lag != 0 || s.OptimeGapKnown {
		t.Fatalf("while s1 copies: overall lag %v known %v, gap %v known %v; want both unknown", s.Overall.Lag, s.Overall.LagKnown, s.OptimeGap, s.OptimeGapKnown)
	}

	// A replay that has not read its source's newest entry yet has no lag either.
	r := h.fc.replayer("s0")
	r.mu.Lock()
	r.p.Newest = primitive.Timestamp{}
	r.mu.Unlock()
	if sh := h.m.Snapshot().Shards[0]; sh.LagKnown {
		t.Fatalf("a replay that never saw its source's newest entry has lag %v", sh.Lag)
	}
	r.behind(4 * time.Second)

	close(gate)
	h.eventually("s1 replaying", func() bool { return h.fc.replayer("s1") != nil && h.phase("s1") == CatchingUp })
	s = h.m.Snapshot()
	if !s.Overall.LagKnown || s.Overall.Lag != 30*time.Second || !s.OptimeGapKnown || s.OptimeGap != 30*time.Second {
		t.Fatalf("every shard replays: overall lag %v known %v, gap %v known %v; want 30s, known",
			s.Overall.Lag, s.Overall.LagKnown, s.OptimeGap, s.OptimeGapKnown)
	}
}

// A shard restarted during the cutover copies again: the overall counts leave 100%
// while it waits and copies, with its estimate as its total, and come back to 100%
// once it copied.
func TestARestartedShardTakesTheOverallCountsBackBelowDone(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.inv.Estimates = map[string]Estimate{"s0": {Docs: 90, Bytes: 9000}, "s1": {Docs: 120, Bytes: 12000}}
	h.cuttingOver()
	if o := h.m.Snapshot().Overall; o.Fraction() != 1 || o.TotalsEstimated || o.DocsTotal != 200 {
		t.Fatalf("every shard copied: %+v, want 100%% of 200 documents", o)
	}
	gate := make(chan struct{})
	h.fc.mu.Lock()
	h.fc.shards["s1"].copyGate = gate
	h.fc.mu.Unlock()
	if err := h.m.RestartShard(bg, "s1"); err != nil {
		t.Fatal(err)
	}
	s := h.m.Snapshot()
	sh := s.Shards[1]
	if sh.Phase != Pending && sh.Phase != Copying {
		t.Fatalf("s1 is %s right after its restart", sh.Phase)
	}
	if o := s.Overall; o.Fraction() >= 1 || !o.TotalsEstimated || o.DocsTotal < 100+sh.DocsTotal || sh.DocsTotal < 100 {
		t.Fatalf("s1 restarted: overall %+v (%.3f), s1 %+v; want below 100%% with s1 counted again", o, o.Fraction(), sh.Progress)
	}
	if s.OptimeGapKnown {
		t.Fatalf("the optime gap %v is known while s1 copies again", s.OptimeGap)
	}
	close(gate)
	h.eventually("s1 copied again", func() bool {
		o := h.m.Snapshot().Overall
		return o.Fraction() == 1 && !o.TotalsEstimated
	})
}

// While Prepare places the destination's collections, the snapshot carries its
// placement progress, as Prepare last reported it.
func TestSnapshotCarriesThePlacementWhilePreparing(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.prepareGate = make(chan struct{})
	if p := h.m.Snapshot().Placement; p != nil {
		t.Fatalf("placement %+v before the start", p)
	}
	h.start(StartOptions{})
	h.eventually("the placement reported", func() bool { return h.m.Snapshot().Placement != nil })
	if p := *h.m.Snapshot().Placement; p != (Placement{Collections: 2, Ranges: 5, RangesPlaced: 1}) {
		t.Errorf("placement %+v, want what PrepareDestination reported", p)
	}
	close(h.fc.prepareGate)
	h.waitState(Syncing)
}

// A migration validating or preparing the destination says which: a headless user
// saw "draft" and "starting" repeated for 20 s each with nothing else.
func TestSnapshotSaysWhatTheStartIsDoing(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.validateGate, h.fc.prepareGate = make(chan struct{}), make(chan struct{})
	h.start(StartOptions{})
	h.eventually("the checks named", func() bool { return h.m.Snapshot().Reason == "running the pre-migration checks" })
	close(h.fc.validateGate)
	h.eventually("the preparation named", func() bool {
		return strings.HasPrefix(h.m.Snapshot().Reason, "preparing the destination")
	})
	close(h.fc.prepareGate)
	h.waitState(Syncing)
}

// A copy whose discovery after T0 fails because a source shard is away (fault
// scenarios 2 and 9 failed the shard) tries again until it answers.
func TestACopyWaitsForTheDiscoveryAfterT0(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.rediscoverFails = 2
	h.start(StartOptions{})
	// The clock moves on each look, so that a retry's wait ends whenever it began.
	h.eventually("the copy asked for a third time", func() bool {
		h.clk.Advance(2 * time.Second)
		return h.fc.called("NewCopier s0") >= 3
	})
	h.waitState(Syncing)
	if s := h.m.Snapshot(); anyShard(s, func(p ShardProgress) bool { return p.Phase == ShardFailed }) {
		t.Fatalf("a shard failed: %+v", s.Shards)
	}
}

// rangesCopier is a copier whose progress names namespaces copied in _id ranges.
type rangesCopier struct{ Copier }

func (rangesCopier) Snapshot() initialsync.Progress {
	return initialsync.Progress{Ranges: []initialsync.NamespaceRanges{{Namespace: "shop.orders", Done: 3, Total: 8}}}
}

// A copying shard's row names its namespaces copied in _id ranges, done of all; once
// it builds its indexes (every range copied) it names none.
func TestACopyingShardsRowNamesItsRanges(t *testing.T) {
	sh := &shardState{name: "s0", phase: Copying, copier: rangesCopier{}}
	want := []NamespaceRanges{{Namespace: "shop.orders", Done: 3, Total: 8}}
	if got := sh.progressLocked().Ranges; !slices.Equal(got, want) {
		t.Fatalf("ranges %+v, want %+v", got, want)
	}
	sh.phase = BuildingIndexes
	if got := sh.progressLocked().Ranges; len(got) != 0 {
		t.Fatalf("ranges %+v while building indexes, want none", got)
	}
}

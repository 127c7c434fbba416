package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/verify"
)

// fakeClock moves only when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c     *fakeClock
	at    time.Time
	ch    chan time.Time
	fired bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

// hasTimerIn reports whether a timer waits for exactly d from now.
func (c *fakeClock) hasTimerIn(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.at.Sub(c.now) == d {
			return true
		}
	}
	return false
}

// Advance moves the clock and fires the timers now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.fired = true
			t.ch <- c.now
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.fired {
		return false
	}
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *fakeTimer) bool { return x == t })
	t.fired = true
	return true
}

// memCheckpoints is the store in memory. Like the store, it refuses an event whose
// From is not the recorded state.
type memCheckpoints struct {
	mu     sync.Mutex
	rec    Record
	shards map[string]ShardCheckpoint
	// onSaveRecord, when set, sees every record saved.
	onSaveRecord func(Record)
	failShard    error
	// failEvent, when set, may refuse an event (a crash before it was recorded).
	failEvent func(Event) error
}

func newMemCheckpoints(id string) *memCheckpoints {
	return &memCheckpoints{rec: Record{ID: id, State: Draft}, shards: map[string]ShardCheckpoint{}}
}

func (c *memCheckpoints) Load() (Record, []ShardCheckpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.rec
	rec.History = slices.Clone(c.rec.History)
	rec.Relaxed = slices.Clone(c.rec.Relaxed)
	var cps []ShardCheckpoint
	for _, k := range slices.Sorted(maps.Keys(c.shards)) {
		cps = append(cps, c.shards[k])
	}
	return rec, cps, nil
}

func (c *memCheckpoints) AppendEvent(ev Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failEvent != nil {
		if err := c.failEvent(ev); err != nil {
			return err
		}
	}
	if ev.From != string(c.rec.State) {
		return fmt.Errorf("event %s -> %s but the state is %s", ev.From, ev.To, c.rec.State)
	}
	c.rec.History = append(c.rec.History, ev)
	c.rec.State = State(ev.To)
	return nil
}

func (c *memCheckpoints) SaveRecord(r Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.State, r.History = c.rec.State, c.rec.History
	c.rec = r
	if c.onSaveRecord != nil {
		c.onSaveRecord(r)
	}
	return nil
}

func (c *memCheckpoints) SaveShard(cp ShardCheckpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failShard != nil {
		return c.failShard
	}
	c.shards[cp.Shard] = cp
	return nil
}

func (c *memCheckpoints) record() Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

func (c *memCheckpoints) shard(name string) ShardCheckpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shards[name]
}

// fakeClusters plays both clusters. Every method records its call; behaviours are
// set before Run or changed under mu.
type fakeClusters struct {
	mu    sync.Mutex
	calls []string

	inv         Inventory
	validateErr error
	discoverErr error
	destData    []string
	srcBalancer bool // the source balancer is on
	dstBalancer bool
	// validateGate and prepareGate, when set, hold Validate and PrepareDestination
	// until closed (or ctx ends).
	validateGate, prepareGate chan struct{}
	// rediscoverFails is how many NewCopier calls fail on a discovery a source
	// shard did not answer.
	rediscoverFails int
	prepareErr      error
	restoreErr      error
	verifyErr       error
	verifyRes       *Verification
	// late are WritesAfter's answers by shard, and lateAfter the ts each was asked after.
	late      map[string]LateWrites
	lateAfter map[string]primitive.Timestamp
	// indexDiffs are what IndexDifferences reports.
	indexDiffs []IndexDifference
	wiped      bool
	cleared    []string
	restored   []Relaxed
	// beforeStop sees the recorded balancer state when the balancer is stopped.
	beforeStop func()
	// restoreGate, when set, holds Restore until closed (or ctx ends).
	restoreGate chan struct{}
	// clearGate, when set, holds ClearShard until closed (or ctx ends).
	clearGate chan struct{}

	shards map[string]*fakeShard
	relax  RelaxSink
	// contPlan and contSides are what the continuous verification compares.
	contPlan  []verify.Namespace
	contSides [2]verify.Side
	closed    int

	// owners is what Ownership returns per shard (empty when absent); copierOwned
	// records the ownership each NewCopier was given; moves is what the next
	// Moves returns (then nothing), and movesAsked what each Moves was asked.
	owners      map[string]prepare.Ownership
	copierOwned map[string]prepare.Ownership
	moves       []prepare.Change
	movesErr    error // every Moves fails with it while set
	movesAsked  []map[string]prepare.Ownership

	// srcID and dstID are what Identify reads; marker is the destination's.
	srcID, dstID topology.Identity
	marker       *topology.Marker
	// replayLag is how far behind a new replay starts (zero: 30 s).
	replayLag time.Duration
	// world, when set, makes the copies real copiers of its documents.
	world *copyWorld
}

// fakeShard is one source shard: its oplog's newest ts, its copy and its replays.
type fakeShard struct {
	name   string
	newest primitive.Timestamp
	// newestErr, when set, is Newest's answer: the source shard does not answer.
	newestErr error
	// newestReads counts Newest's calls.
	newestReads int
	// txnStart is StartPoint's TxnStart: an open transaction began there.
	txnStart primitive.Timestamp
	// t0Term is StartPoint's T0Term.
	t0Term   int64
	copyGate chan struct{} // nil: copies finish at once
	copyErr  error
	// relaxIndex, when set, is reported relaxed by the index build.
	relaxIndex bson.Raw
	copiers    []*fakeCopier
	replayers  []*fakeReplayer
}

func newFakeClusters(shards ...string) *fakeClusters {
	f := &fakeClusters{
		inv:         Inventory{Shards: shards, BalancerOn: true, Users: []User{{Name: "app", DB: "admin", Roles: []string{"readWrite@shop"}}}},
		srcBalancer: true, dstBalancer: true, shards: map[string]*fakeShard{},
		verifyRes: &Verification{Namespaces: 2, Ranges: 4, Matched: 4, Documents: 100},
		srcID:     fakeIdentity("src", 1, shards...),
		dstID:     fakeIdentity("dst", 2, shards...),
	}
	for i, s := range shards {
		f.shards[s] = &fakeShard{name: s, newest: primitive.Timestamp{T: 1_800_000_000 + uint32(i), I: 1}}
	}
	return f
}

func (f *fakeClusters) connector() Connector {
	return func(_ context.Context, _ Config, relax RelaxSink) (Clusters, error) {
		f.mu.Lock()
		f.relax = relax
		f.mu.Unlock()
		return f, nil
	}
}

func (f *fakeClusters) call(format string, a ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	f.mu.Unlock()
}

func (f *fakeClusters) called(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == name {
			n++
		}
	}
	return n
}

func (f *fakeClusters) Validate(ctx context.Context) (Inventory, error) {
	f.call("Validate")
	f.mu.Lock()
	gate := f.validateGate
	f.mu.Unlock()
	if err := passGate(ctx, gate); err != nil {
		return Inventory{}, err
	}
	return f.inv, f.validateErr
}

func (f *fakeClusters) Discover(context.Context) (Inventory, error) {
	f.call("Discover")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.discoverErr != nil {
		return Inventory{}, f.discoverErr
	}
	inv := f.inv
	inv.BalancerOn = f.srcBalancer
	return inv, nil
}

func (f *fakeClusters) DestinationData(context.Context) ([]string, error) {
	f.call("DestinationData")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.destData, nil
}

// fakeIdentity is a cluster whose clusterId ends in n, with one member per shard
// at <prefix>-<shard>:27017 and its mongos at <prefix>-mongos:27017.
func fakeIdentity(prefix string, n byte, shards ...string) topology.Identity {
	id := topology.Identity{ClusterID: primitive.ObjectID{11: n}, Routers: []string{prefix + "-mongos:27017"}}
	for _, s := range shards {
		id.Shards = append(id.Shards, topology.ShardHosts{Name: s, Hosts: []string{prefix + "-" + s + ":27017"}})
	}
	return id
}

func (f *fakeClusters) Identify(context.Context) (topology.Identity, topology.Identity, error) {
	f.call("Identify")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.srcID, f.dstID, nil
}

func (f *fakeClusters) DestinationMarker(context.Context) (*topology.Marker, error) {
	f.call("DestinationMarker")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.marker, nil
}

func (f *fakeClusters) PlaceMarker(_ context.Context, m topology.Marker) (*topology.Marker, error) {
	f.call("PlaceMarker")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.marker != nil && f.marker.MigrationID != m.MigrationID {
		return f.marker, nil
	}
	if f.marker == nil {
		f.marker = &m
	}
	return nil, nil
}

func (f *fakeClusters) RemoveMarker(context.Context) (*topology.Marker, error) {
	f.call("RemoveMarker")
	f.mu.Lock()
	defer f.mu.Unlock()
	found := f.marker
	if found != nil && found.MigrationID == "m1" {
		f.marker = nil
	}
	return found, nil
}

// heldBy is the migration whose marker is on the destination, "" for none.
func (f *fakeClusters) heldBy() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.marker == nil {
		return ""
	}
	return f.marker.MigrationID
}

func (f *fakeClusters) WipeDestination(_ context.Context, dropped func(string)) error {
	f.call("WipeDestination")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, db := range f.destData {
		dropped(db)
	}
	f.wiped, f.destData = true, nil
	return nil
}

func (f *fakeClusters) StopSourceBalancer(context.Context) (bool, error) {
	if f.beforeStop != nil {
		f.beforeStop()
	}
	f.call("StopSourceBalancer")
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.srcBalancer
	f.srcBalancer = false
	return was, nil
}

func (f *fakeClusters) RestoreSourceBalancer(_ context.Context, wasOn bool) error {
	f.call("RestoreSourceBalancer")
	f.mu.Lock()
	defer f.mu.Unlock()
	if wasOn {
		f.srcBalancer = true
	}
	return nil
}

func (f *fakeClusters) SetDestinationBalancer(_ context.Context, on bool) error {
	f.call("SetDestinationBalancer %v", on)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dstBalancer = on
	return nil
}

// passGate waits until gate is closed (at once when it is nil) or ctx ends.
func passGate(ctx context.Context, gate chan struct{}) error {
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeClusters) PrepareDestination(ctx context.Context, placed func(Placement)) error {
	f.call("PrepareDestination")
	placed(Placement{Collections: 2, Ranges: 5, RangesPlaced: 1})
	f.mu.Lock()
	gate, err := f.prepareGate, f.prepareErr
	f.mu.Unlock()
	if err := passGate(ctx, gate); err != nil {
		return err
	}
	if err == nil {
		err = f.relax.RelaxedCollection("shop.events", bson.Raw(bsonDoc("expireAfterSeconds", int32(3600))))
	}
	return err
}

func (f *fakeClusters) ClearShard(ctx context.Context, shard string, progress func(ClearProgress)) error {
	f.call("ClearShard %s", shard)
	progress(ClearProgress{Namespace: "shop.orders", Done: 0, Total: 1})
	f.mu.Lock()
	gate := f.clearGate
	f.mu.Unlock()
	if err := passGate(ctx, gate); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleared = append(f.cleared, shard)
	if f.world != nil {
		f.world.clear(shard)
	}
	return nil
}

func (f *fakeClusters) Restore(ctx context.Context, r Relaxed) error {
	f.call("Restore")
	f.mu.Lock()
	gate := f.restoreGate
	f.mu.Unlock()
	if err := passGate(ctx, gate); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.restoreErr != nil {
		return f.restoreErr
	}
	f.restored = append(f.restored, r)
	// A relaxed index restored from the source's specification differs no more.
	name, _ := r.Original.Lookup("name").StringValueOK()
	f.indexDiffs = slices.DeleteFunc(f.indexDiffs, func(d IndexDifference) bool {
		return d.Relaxed && d.Namespace == r.NS && d.Index == name
	})
	return nil
}

func (f *fakeClusters) Newest(_ context.Context, shard string) (primitive.Timestamp, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.shards[shard]
	if !ok {
		return primitive.Timestamp{}, ErrUnknownShard
	}
	s.newestReads++
	return s.newest, s.newestErr
}

func (f *fakeClusters) BuildIndex(_ context.Context, ns string, spec bson.Raw) error {
	f.call("BuildIndex")
	f.mu.Lock()
	defer f.mu.Unlock()
	name, _ := spec.Lookup("name").StringValueOK()
	f.indexDiffs = slices.DeleteFunc(f.indexDiffs, func(d IndexDifference) bool {
		return d.Missing && d.Namespace == ns && d.Index == name
	})
	return nil
}

func (f *fakeClusters) IndexDifferences(context.Context) ([]IndexDifference, error) {
	f.call("IndexDifferences")
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.indexDiffs), nil
}

func (f *fakeClusters) WritesAfter(_ context.Context, shard string, ts primitive.Timestamp) (LateWrites, error) {
	f.call("WritesAfter")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lateAfter == nil {
		f.lateAfter = map[string]primitive.Timestamp{}
	}
	f.lateAfter[shard] = ts
	if l, ok := f.late[shard]; ok {
		return l, nil
	}
	return LateWrites{Shard: shard}, nil
}

// StartPoint is T0 at the fake shard's newest entry.
func (f *fakeClusters) StartPoint(ctx context.Context, shard string) (StartPoint, error) {
	t0, err := f.Newest(ctx, shard)
	f.mu.Lock()
	defer f.mu.Unlock()
	return StartPoint{T0: t0, T0Term: f.shards[shard].t0Term, TxnStart: f.shards[shard].txnStart}, err
}

func (f *fakeClusters) Ownership(_ context.Context, shard string) (prepare.Ownership, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owners[shard], nil
}

func (f *fakeClusters) Moves(_ context.Context, owned map[string]prepare.Ownership) ([]prepare.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.movesAsked = append(f.movesAsked, maps.Clone(owned))
	if f.movesErr != nil {
		return nil, f.movesErr
	}
	moves := f.moves
	f.moves = nil
	return moves, nil
}

func (f *fakeClusters) NewCopier(_ context.Context, shard string, _ primitive.Timestamp, own prepare.Ownership, saved map[string]initialsync.PartitionProgress, sink initialsync.CheckpointSink) (Copier, error) {
	f.call("NewCopier %s", shard)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rediscoverFails > 0 {
		f.rediscoverFails--
		return nil, fmt.Errorf("%w: shard s9 did not answer in time", errRediscover)
	}
	if f.copierOwned == nil {
		f.copierOwned = map[string]prepare.Ownership{}
	}
	f.copierOwned[shard] = own
	if f.world != nil {
		return f.world.newCopier(shard, saved, sink, f.relax)
	}
	s := f.shards[shard]
	c := &fakeCopier{f: f, shard: s, saved: saved, sink: sink, gate: s.copyGate, err: s.copyErr, relaxIndex: s.relaxIndex}
	s.copiers = append(s.copiers, c)
	return c, nil
}

// OplogSource: the lifecycle's tests run without an oplog buffer (Config.OplogBufferDir).
func (f *fakeClusters) OplogSource(shard string) (replay.Source, error) {
	return nil, fmt.Errorf("shard %s: the fake clusters have no oplog to buffer", shard)
}

func (f *fakeClusters) NewReplayer(shard string, from ReplayStart, ddlApplied []replay.DDLCopy, sink ReplaySink) (Replayer, error) {
	resume, consistency := from.Resume.TS, from.ConsistencyPoint
	f.call("NewReplayer %s", shard)
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shards[shard]
	r := &fakeReplayer{shard: shard, from: from, resume: resume, consistency: consistency, ddlApplied: ddlApplied, sink: sink, stop: make(chan struct{}), done: make(chan struct{}), fail: make(chan error, 1)}
	// A new replay has applied nothing yet and is 30 s (or replayLag) behind the source.
	lag := cmp.Or(f.replayLag, 30*time.Second)
	r.p = replay.Progress{Shard: shard, Applied: resume, Newest: primitive.Timestamp{T: resume.T + uint32(lag/time.Second), I: 1}, Lag: lag}
	s.replayers = append(s.replayers, r)
	return r, nil
}

func (f *fakeClusters) RunDDL(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (f *fakeClusters) ReleaseDDL(shard string) { f.call("ReleaseDDL %s", shard) }

func (f *fakeClusters) Verify(_ context.Context, progress func(done, total int)) (*Verification, error) {
	f.call("Verify")
	progress(1, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.verifyErr != nil {
		return nil, f.verifyErr
	}
	v := *f.verifyRes
	return &v, nil
}

// The continuous verification finds nothing to compare in the lifecycle's fake
// unless a test gives contPlan and contSides (continuous_test.go tests it on its
// own fake).
func (f *fakeClusters) VerifyPlan(context.Context) ([]verify.Namespace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.contPlan, nil
}
func (f *fakeClusters) VerifySides() (verify.Side, verify.Side) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.contSides[0], f.contSides[1]
}
func (f *fakeClusters) OplogAfter(context.Context, string, primitive.Timestamp, int) ([]bson.Raw, bool, error) {
	return nil, false, nil
}
func (f *fakeClusters) DestinationShards(context.Context) ([]string, error) { return nil, nil }
func (f *fakeClusters) DestinationNewest(context.Context, string) (primitive.Timestamp, error) {
	return primitive.Timestamp{}, nil
}
func (f *fakeClusters) DestinationOplogAfter(context.Context, string, primitive.Timestamp, int) ([]bson.Raw, bool, error) {
	return nil, false, nil
}

func (f *fakeClusters) Close(context.Context) error {
	f.mu.Lock()
	f.closed++
	f.mu.Unlock()
	return nil
}

// replayer returns the shard's current (latest) replay.
func (f *fakeClusters) replayer(shard string) *fakeReplayer {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.shards[shard].replayers
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1]
}

func (f *fakeClusters) replayers(shard string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.shards[shard].replayers)
}

func (f *fakeClusters) copiers(shard string) []*fakeCopier {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.shards[shard].copiers)
}

type fakeCopier struct {
	f          *fakeClusters
	shard      *fakeShard
	saved      map[string]initialsync.PartitionProgress
	sink       initialsync.CheckpointSink
	gate       chan struct{}
	err        error
	relaxIndex bson.Raw
	mu         sync.Mutex
	docs       int64
}

// Copy copies 100 documents of "shop.orders", saving its progress half way, and
// waits at the gate (if any) in between.
func (c *fakeCopier) Copy(ctx context.Context) error {
	half := map[string]initialsync.PartitionProgress{"shop.orders": {Docs: 50, Bytes: 5000}}
	c.add(50)
	if err := c.sink.SaveCopyProgress(c.shard.name, half); err != nil {
		return err
	}
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.err != nil {
		return c.err
	}
	c.add(50)
	return c.sink.SaveCopyProgress(c.shard.name, map[string]initialsync.PartitionProgress{"shop.orders": {Done: true, Docs: 100, Bytes: 10000}})
}

func (c *fakeCopier) add(n int64) {
	c.mu.Lock()
	c.docs += n
	c.mu.Unlock()
}

func (c *fakeCopier) BuildIndexes(context.Context) error {
	if c.relaxIndex != nil {
		return c.f.relax.RelaxedIndex("shop.orders", c.relaxIndex)
	}
	return nil
}

func (c *fakeCopier) Snapshot() initialsync.Progress {
	c.mu.Lock()
	defer c.mu.Unlock()
	return initialsync.Progress{Docs: c.docs, Bytes: c.docs * 100, DocsTotal: 100, BytesTotal: 10000, Estimated: c.docs < 100}
}

// fakeReplayer replays until stopped, cancelled or failed; the test sets its
// progress.
type fakeReplayer struct {
	shard               string
	from                ReplayStart
	resume, consistency primitive.Timestamp
	ddlApplied          []replay.DDLCopy
	sink                ReplaySink
	mu                  sync.Mutex
	p                   replay.Progress
	stop, done          chan struct{}
	stopOnce            sync.Once
	fail                chan error
	stopped             bool
	// noFinalCheckpoint: Stop saves nothing, as when the process dies first;
	// onCheckpoint runs at each Checkpoint.
	noFinalCheckpoint bool
	onCheckpoint      func()
}

func (r *fakeReplayer) Run(ctx context.Context) error {
	defer close(r.done)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stop:
		r.mu.Lock()
		r.stopped = true
		applied, save := r.p.Applied, !r.noFinalCheckpoint
		r.mu.Unlock()
		if !save {
			return nil
		}
		return r.sink.SaveApplied(r.shard, replay.OpTime{TS: applied})
	case err := <-r.fail:
		return err
	}
}

func (r *fakeReplayer) Stop(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *fakeReplayer) Checkpoint() error {
	r.mu.Lock()
	applied, hook := r.p.Applied, r.onCheckpoint
	r.mu.Unlock()
	if hook != nil {
		hook()
	}
	return r.sink.SaveApplied(r.shard, replay.OpTime{TS: applied})
}

func (r *fakeReplayer) Snapshot() replay.Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// behind sets how far the replay is behind its source: applied is the newest
// entry minus lag (the newest itself when lag is 0).
func (r *fakeReplayer) behind(lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	newest := primitive.Timestamp{T: r.resume.T + 1000, I: 1}
	applied := newest
	if lag > 0 {
		applied = primitive.Timestamp{T: newest.T - uint32(lag/time.Second), I: 1}
	}
	r.p.Applied, r.p.Newest, r.p.Lag = applied, newest, lag
}

func (r *fakeReplayer) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// checkpoint saves the replay's resume point as the real one does every second.
func (r *fakeReplayer) checkpoint(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	applied := r.p.Applied
	r.mu.Unlock()
	if err := r.sink.SaveApplied(r.shard, replay.OpTime{TS: applied}); err != nil {
		t.Fatal(err)
	}
}

func bsonDoc(k string, v any) bson.Raw {
	b, err := bson.Marshal(bson.D{{Key: k, Value: v}})
	if err != nil {
		panic(err)
	}
	return b
}

var errBoom = errors.New("boom")

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/cutover"
	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/engine/verify"
)

// mongoClusters is the real Clusters: both mongos, a connection to each source
// shard's primary, the plan of the last discovery and the migration's DDL applier.
type mongoClusters struct {
	cfg     Config
	relaxed RelaxSink
	log     *slog.Logger
	src     *mongo.Client // source mongos
	dst     *mongo.Client // destination mongos, writes acknowledged by a majority
	builds  *initialsync.IndexBuilds

	keys shardKeys // shard key fields of the sharded collections, as the source has them now

	// reads chooses the members of each source shard the copy and the tail read.
	reads topology.ShardReads

	mu struct {
		sync.Mutex
		plan *prepare.Plan
		// planBegan is when the discovery that made plan began (planSince).
		planBegan time.Time
		shards    map[string]*mongo.Client
		// members are direct connections to source shard members, by address: the
		// ones the tails read.
		members map[string]*mongo.Client
		ddl     *replay.DDLOnce
		// dstShards are connections to the destination's shards, by name (the
		// continuous verification reads their oplogs).
		dstShards map[string]*mongo.Client
	}
	// replanMu serializes the discoveries planSince makes.
	replanMu sync.Mutex
	// movesMu serializes the move watcher's looks (Moves).
	movesMu sync.Mutex
	moves   moveWatch

	ddlReady  chan struct{} // closed once the DDL applier exists
	replaying chan struct{} // closed when the first replay is made: the destination is prepared
	replayed  sync.Once
}

// shardKeyWatchEvery is how often the metadata watcher compares the clusters'
// sharded collections (replay.ShardKeyWatch).
const shardKeyWatchEvery = 5 * time.Second

// shardKeys are the shard key fields of the source's sharded collections: from
// the plan, then as the replays and the metadata watcher see collections sharded
// during the sync. Safe for concurrent use.
type shardKeys struct {
	mu     sync.RWMutex
	fields map[string][]string
}

func (k *shardKeys) reset(fields map[string][]string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fields = fields
}

func (k *shardKeys) set(ns string, fields []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fields == nil {
		k.fields = map[string][]string{}
	}
	k.fields[ns] = fields
}

func (k *shardKeys) of(ns oplog.Namespace) []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.fields[ns.DB+"."+ns.Coll]
}

// NewMongoClusters connects to both mongos; it is the default Connector.
func NewMongoClusters(ctx context.Context, cfg Config, relaxed RelaxSink) (Clusters, error) {
	reads, err := cfg.Source.ReadsByShard()
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Source, err)
	}
	src, err := topology.Connect(ctx, cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Source, err)
	}
	dst, err := connectDestination(ctx, cfg.Destination)
	if err != nil {
		src.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("destination %s: %w", cfg.Destination, err)
	}
	c := &mongoClusters{cfg: cfg, relaxed: relaxed, log: cfg.Logger, src: src, dst: dst, builds: initialsync.NewIndexBuilds(),
		reads: reads, ddlReady: make(chan struct{}), replaying: make(chan struct{})}
	c.mu.shards = map[string]*mongo.Client{}
	return c, nil
}

// connectDestination connects with a majority write concern unless the URI sets
// one: a checkpoint must never cover a write that a failover can lose; and a pool
// sized for the replay's writes in flight (replay.SizePool).
func connectDestination(ctx context.Context, e topology.Endpoint) (*mongo.Client, error) {
	probe, err := topology.Connect(ctx, e) // classified errors for an unreachable destination
	if err != nil {
		return nil, err
	}
	probe.Disconnect(context.WithoutCancel(ctx))
	opts, err := e.ClientOptions()
	if err != nil {
		return nil, err
	}
	if opts.WriteConcern == nil {
		opts.SetWriteConcern(writeconcern.Majority())
	}
	replay.SizePool(opts)
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := client.Ping(ctx, nil); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return client, nil
}

func (c *mongoClusters) Validate(ctx context.Context) (Inventory, error) {
	report := validate.RunFor(ctx, c.cfg.Source, c.cfg.Destination, validate.Options{MigrationID: c.cfg.ID, OplogBuffer: c.cfg.oplogBuffer()})
	if err := ctx.Err(); err != nil {
		return Inventory{}, err
	}
	if !report.Passed() {
		var failed []validate.Finding
		for _, f := range report.Findings {
			if f.Status == validate.Failed || f.Status == validate.NotRun {
				failed = append(failed, f)
			}
		}
		return Inventory{}, &ValidationError{Failed: failed}
	}
	return inventory(report.Source), nil
}

func (c *mongoClusters) Discover(ctx context.Context) (Inventory, error) {
	began := time.Now()
	var src, dst *topology.Cluster
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { src, err = topology.Discover(gctx, c.cfg.Source); return err })
	g.Go(func() (err error) { dst, err = topology.Discover(gctx, c.cfg.Destination); return err })
	if err := g.Wait(); err != nil {
		return Inventory{}, err
	}
	if err := c.reads.Known(src.ShardNames()); err != nil {
		return Inventory{}, fmt.Errorf("source %s: %w", c.cfg.Source, err)
	}
	plan, err := prepare.NewPlan(src, dst)
	if err != nil {
		return Inventory{}, err
	}
	keys := map[string][]string{}
	for _, coll := range plan.Collections {
		if coll.Sharded {
			keys[coll.NS()] = coll.Pattern.Fields()
		}
	}
	for _, sh := range src.Shards {
		if err := c.connectShard(ctx, sh); err != nil {
			return Inventory{}, err
		}
	}
	c.keys.reset(keys)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.plan, c.mu.planBegan = plan, began
	inv := inventory(src)
	inv.Estimates = map[string]Estimate{}
	for _, s := range plan.Shards {
		inv.Estimates[s.Source] = Estimate{Docs: s.Docs, Bytes: s.Bytes}
	}
	if c.mu.ddl == nil {
		names := make([]string, len(plan.Shards))
		for i, s := range plan.Shards {
			names[i] = s.Source
		}
		c.mu.ddl = replay.NewDDLOnce(names, replay.NewMongoDDL(c.dst, c.relaxed), c.log)
		c.mu.ddl.AdvanceIdleShards(c.advancePast)
		close(c.ddlReady)
	}
	return inv, nil
}

// connectShard opens a connection to a source shard's replica set (to its one
// member when it has one): it reads the primary, following a failover, and the
// copy's scans choose other members by the read preference.
func (c *mongoClusters) connectShard(ctx context.Context, sh topology.Shard) error {
	c.mu.Lock()
	_, ok := c.mu.shards[sh.Name]
	c.mu.Unlock()
	if ok {
		return nil
	}
	client, err := topology.Connect(ctx, c.cfg.Source.ForHosts(sh.Hosts, sh.SetName))
	if err != nil {
		return fmt.Errorf("connect to source shard %s: %w", sh.Name, err)
	}
	c.mu.Lock()
	c.mu.shards[sh.Name] = client
	c.mu.Unlock()
	return nil
}

func inventory(src *topology.Cluster) Inventory {
	inv := Inventory{BalancerOn: src.Balancer.Enabled, Users: []User{}}
	for _, s := range src.Shards {
		inv.Shards = append(inv.Shards, s.Name)
	}
	for _, u := range src.Users {
		inv.Users = append(inv.Users, User{Name: u.Name, DB: u.DB, Roles: roleNames(u.Roles)})
	}
	for _, r := range src.Roles {
		inv.Users = append(inv.Users, User{Name: r.Name, DB: r.DB, Roles: roleNames(r.Roles), IsRole: true})
	}
	return inv
}

func roleNames(refs []topology.RoleRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

func (c *mongoClusters) Identify(ctx context.Context) (src, dst topology.Identity, err error) {
	if src, err = topology.IdentityOf(ctx, c.src, c.cfg.Source); err != nil {
		return src, dst, fmt.Errorf("source %s: %w", c.cfg.Source, err)
	}
	if dst, err = topology.IdentityOf(ctx, c.dst, c.cfg.Destination); err != nil {
		return src, dst, fmt.Errorf("destination %s: %w", c.cfg.Destination, err)
	}
	return src, dst, nil
}

func (c *mongoClusters) DestinationMarker(ctx context.Context) (*topology.Marker, error) {
	return topology.ReadMarker(ctx, c.dst)
}

func (c *mongoClusters) PlaceMarker(ctx context.Context, m topology.Marker) (*topology.Marker, error) {
	err := prepare.PlaceMarker(ctx, c.dst, m)
	var held *prepare.HeldError
	if errors.As(err, &held) {
		return &held.Marker, nil
	}
	return nil, err
}

func (c *mongoClusters) RemoveMarker(ctx context.Context) (*topology.Marker, error) {
	return prepare.RemoveMarker(ctx, c.dst, c.cfg.ID)
}

func (c *mongoClusters) DestinationData(ctx context.Context) ([]string, error) {
	_, dbs, err := prepare.HasUserData(ctx, c.dst)
	return dbs, err
}

func (c *mongoClusters) WipeDestination(ctx context.Context, dropped func(db string)) error {
	return prepare.Wipe(ctx, c.dst, c.cfg.ID, dropped)
}

func (c *mongoClusters) StopSourceBalancer(ctx context.Context) (bool, error) {
	return prepare.StopBalancer(ctx, c.src)
}

func (c *mongoClusters) RestoreSourceBalancer(ctx context.Context, wasOn bool) error {
	return prepare.RestoreBalancer(ctx, c.src, wasOn)
}

func (c *mongoClusters) SetDestinationBalancer(ctx context.Context, on bool) error {
	if on {
		return prepare.RestoreBalancer(ctx, c.dst, true)
	}
	_, err := prepare.StopBalancer(ctx, c.dst)
	return err
}

func (c *mongoClusters) plan() (*prepare.Plan, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.plan == nil {
		return nil, errors.New("internal error: the migration has no plan (Discover was not called)")
	}
	return c.mu.plan, nil
}

// errRediscover marks a failed discovery of planSince: every source shard must
// answer it (its databases' primaries list their collections), so a shard that is
// away, or failing over, fails it for a while; the pipeline tries again
// (retryRediscovery) rather than failing the shard that asked.
var errRediscover = errors.New("discover the source's collections after T0")

// planSince returns a plan whose discovery began at or after since, discovering
// both clusters again when the current plan is older, and builds on the
// destination what the new plan adds. A copier calls it once its shard's T0 is
// recorded: a collection created (or renamed into) between the plan's discovery
// and T0 is in neither the old plan, which the copy would take, nor the replay,
// which starts after T0; a user's sandbox lost shop.batch_0003_done, created 6 s
// before T0 while the destination was prepared. Collections created after T0 are
// then both copied and replayed, which the replay's idempotent writes and its
// UUID-routed DDL allow, as MongoDB's initial sync does.
func (c *mongoClusters) planSince(ctx context.Context, since time.Time) (*prepare.Plan, error) {
	c.replanMu.Lock()
	defer c.replanMu.Unlock()
	c.mu.Lock()
	old, began := c.mu.plan, c.mu.planBegan
	c.mu.Unlock()
	if old == nil {
		return nil, errors.New("internal error: the migration has no plan (Discover was not called)")
	}
	if !began.Before(since) {
		return old, nil
	}
	if _, err := c.Discover(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", errRediscover, err)
	}
	plan, err := c.plan()
	if err != nil {
		return nil, err
	}
	// What Prepare created from the old plan and the source no longer has was
	// dropped (or renamed away) there before this discovery: a replay that
	// started before that drop applies it (writes it replays to the collection
	// before the drop create it again, the drop removes it), one that started
	// after never reads it, and the destination would keep the collection, empty
	// or holding what another shard copied before the drop. So it goes now.
	for _, gone := range plan.Removed(old) {
		err := c.dst.Database(gone.DB).RunCommand(ctx, bson.D{{Key: "drop", Value: gone.Name}}).Err()
		if err != nil && !mongoerr.HasCode(err, 26) { // NamespaceNotFound
			return nil, fmt.Errorf("drop %s on the destination, dropped on the source since the last discovery: %w", gone.NS(), err)
		}
		c.log.Info("dropped on the destination a collection the source dropped since the last discovery", "ns", gone.NS())
	}
	if added := plan.Added(old); !added.Empty() {
		c.log.Info("collections created since the last discovery", "databases", len(added.Databases), "collections", len(added.Collections))
		if err := prepare.Prepare(ctx, c.dst, added, c.relaxed, c.log, nil); err != nil {
			return nil, fmt.Errorf("prepare the collections created since the last discovery: %w", err)
		}
	}
	return plan, nil
}

func (c *mongoClusters) PrepareDestination(ctx context.Context, placed func(Placement)) error {
	plan, err := c.plan()
	if err != nil {
		return err
	}
	return prepare.Prepare(ctx, c.dst, plan, c.relaxed, c.log, placed)
}

func (c *mongoClusters) ClearShard(ctx context.Context, shard string, progress func(ClearProgress)) error {
	// What the shard holds now: collections created since the last discovery
	// (replayed onto the destination) are cleared too.
	plan, err := c.planSince(ctx, time.Now())
	if err != nil {
		return err
	}
	return prepare.ClearShard(ctx, c.dst, plan, shard, func(done, total int, ns string) {
		progress(ClearProgress{Namespace: ns, Done: done, Total: total})
	})
}

func (c *mongoClusters) Restore(ctx context.Context, r Relaxed) error {
	if r.Kind == RelaxedOptions {
		return cutover.RestoreOptions(ctx, c.dst, r.NS, r.Original)
	}
	return cutover.RestoreIndex(ctx, c.dst, r.NS, r.Original)
}

func (c *mongoClusters) shardClient(shard string) (*mongo.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	client, ok := c.mu.shards[shard]
	if !ok {
		return nil, fmt.Errorf("source shard %s: %w", shard, ErrUnknownShard)
	}
	return client, nil
}

// connectedShard is shardClient for a step that may run without a sync (a finalize
// resumed after a restart, which discovers nothing): a shard not connected yet is
// found in the source's shard list and connected.
func (c *mongoClusters) connectedShard(ctx context.Context, shard string) (*mongo.Client, error) {
	if client, err := c.shardClient(shard); err == nil {
		return client, nil
	}
	src, err := topology.Discover(ctx, c.cfg.Source)
	if err != nil {
		return nil, err
	}
	for _, sh := range src.Shards {
		if sh.Name == shard {
			if err := c.connectShard(ctx, sh); err != nil {
				return nil, err
			}
		}
	}
	return c.shardClient(shard)
}

func (c *mongoClusters) Newest(ctx context.Context, shard string) (primitive.Timestamp, error) {
	client, err := c.shardClient(shard)
	if err != nil {
		return primitive.Timestamp{}, err
	}
	return replay.NewMongoSource(client, replay.MongoSourceOptions{}).Newest(ctx)
}

func (c *mongoClusters) WritesAfter(ctx context.Context, shard string, ts primitive.Timestamp) (LateWrites, error) {
	late := LateWrites{Shard: shard}
	client, err := c.connectedShard(ctx, shard)
	if err != nil {
		return late, err
	}
	raws, more, err := replay.NewMongoSource(client, replay.MongoSourceOptions{}).After(ctx, ts, maxLateEntries)
	if err != nil {
		return late, err
	}
	late.AtLeast = more
	return late, countLateWrites(&late, raws)
}

// StartPoint reads the shard's majority commit point (before), the oldest
// transaction open in what its majority committed as of before or later, then the
// majority commit point again: T0. A transaction open at T0 either shows open
// there (its first entry is where the replay starts reading) or began after
// before; one that shows ended there ended at or before T0.
func (c *mongoClusters) StartPoint(ctx context.Context, shard string) (StartPoint, error) {
	client, err := c.shardClient(shard)
	if err != nil {
		return StartPoint{}, err
	}
	src := replay.NewMongoSource(client, replay.MongoSourceOptions{})
	return startPoint(ctx, src, src.TxnChainStart,
		func(ctx context.Context, after primitive.Timestamp) (primitive.Timestamp, bool, error) {
			return topology.OldestOpenTransaction(ctx, client, after)
		})
}

// startPoint is StartPoint on a shard's oplog, the start of a transaction chain
// through an entry (replay.TxnChainStart) and its oldest open transaction. A commit
// point inside a transaction's chain of entries (a secondary applied part of it)
// sees no config.transactions record of it yet: the replay then reads from the
// chain's first entry, as it would for a listed transaction.
func startPoint(ctx context.Context, src replay.Source, chainStart func(context.Context, primitive.Timestamp) (primitive.Timestamp, error),
	oldestOpen func(ctx context.Context, after primitive.Timestamp) (primitive.Timestamp, bool, error)) (StartPoint, error) {
	before, err := src.Majority(ctx)
	if err != nil {
		return StartPoint{}, err
	}
	from := before.TS
	first, err := chainStart(ctx, before.TS)
	if err != nil {
		return StartPoint{}, err
	}
	if !first.IsZero() && first.Before(from) {
		from = first
	}
	oldest, open, err := oldestOpen(ctx, before.TS)
	if err != nil {
		return StartPoint{}, err
	}
	t0, err := src.Majority(ctx)
	if err != nil {
		return StartPoint{}, err
	}
	sp := startPointOf(from, oldest, open, t0.TS)
	sp.T0Term = t0.Term
	return sp, nil
}

// startPointOf is StartPoint from what it read: the replay reads from the oldest
// open transaction's first entry, or from before, whichever is older, when that
// is before T0.
func startPointOf(before, oldest primitive.Timestamp, open bool, t0 primitive.Timestamp) StartPoint {
	sp := StartPoint{T0: t0}
	from := before
	if open && oldest.Before(from) {
		from = oldest
	}
	if from.Before(t0) {
		sp.TxnStart = from
	}
	return sp
}

func (c *mongoClusters) NewCopier(ctx context.Context, shard string, t0 primitive.Timestamp, own prepare.Ownership, saved map[string]initialsync.PartitionProgress, sink initialsync.CheckpointSink) (Copier, error) {
	// The shard's T0 is recorded: the copy takes the collections that exist now.
	plan, err := c.planSince(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	if _, ok := plan.Shard(shard); !ok {
		return nil, fmt.Errorf("source shard %s: %w", shard, ErrUnknownShard)
	}
	sp, err := plan.ShardAt(shard, own)
	if err != nil {
		return nil, err
	}
	client, err := c.shardClient(shard)
	if err != nil {
		return nil, err
	}
	return initialsync.New(initialsync.Config{
		Shard: sp, Source: initialsync.MongoSourceReading(client, t0, c.reads.Of(shard)), Destination: existingIndexesSkipped{initialsync.MongoDestination(c.dst), c.dst},
		Saved: saved, Checkpoints: sink, Indexes: c.relaxed, IndexBuilds: c.builds, Logger: c.log,
		Partitions: c.cfg.Partitions, PartitionBytes: c.cfg.PartitionBytes, PartitionDocs: c.cfg.PartitionDocs,
	})
}

// existingIndexesSkipped is the copy's destination, minus the indexes that already
// exist exactly as asked (same name, key and options). A copy resumed during its
// index builds asks again for indexes it built before the interruption; MongoDB
// accepts that, but the sandbox's FerretDB drops the connection on a createIndexes
// of several indexes some of which exist, every time, which would fail the shard
// for good. Asking only for the missing ones is the same request for MongoDB.
type existingIndexesSkipped struct {
	initialsync.Destination
	client *mongo.Client
}

func (d existingIndexesSkipped) CreateIndexes(ctx context.Context, db, coll string, specs []bson.Raw) error {
	cur, err := d.client.Database(db).Collection(coll).Indexes().List(ctx)
	if err != nil {
		return d.Destination.CreateIndexes(ctx, db, coll, specs) // let the real request report it
	}
	var existing []bson.Raw
	for cur.Next(ctx) {
		existing = append(existing, slices.Clone(cur.Current))
	}
	cur.Close(context.WithoutCancel(ctx))
	var missing []bson.Raw
	for _, spec := range specs {
		if !slices.ContainsFunc(existing, func(e bson.Raw) bool { return sameIndexSpec(e, spec) }) {
			missing = append(missing, spec)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return d.Destination.CreateIndexes(ctx, db, coll, missing)
}

// sameIndexSpec compares two index specifications field by field, in any order,
// leaving out the index version and namespace servers add.
func sameIndexSpec(a, b bson.Raw) bool {
	fields := func(d bson.Raw) map[string]string {
		out := map[string]string{}
		elems, _ := d.Elements()
		for _, e := range elems {
			if k := e.Key(); k != "v" && k != "ns" {
				v := e.Value()
				out[k] = string(v.Type) + string(v.Value)
			}
		}
		return out
	}
	return maps.Equal(fields(a), fields(b))
}

func (c *mongoClusters) NewReplayer(shard string, from ReplayStart, ddlApplied []replay.DDLCopy, sink ReplaySink) (Replayer, error) {
	client, err := c.shardClient(shard)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	ddl := c.mu.ddl
	c.mu.Unlock()
	ddl.Recover(shard, ddlApplied, sink)
	c.replayed.Do(func() { close(c.replaying) })
	var fromMigrate func(oplog.Namespace, bson.Raw)
	if from.FromMigrate != nil {
		fromMigrate = func(ns oplog.Namespace, doc bson.Raw) { from.FromMigrate(ns.String(), doc) }
	}
	var src replay.Source = c.oplogOf(shard, client)
	if from.Buffered != nil {
		src = from.Buffered
	}
	return replay.New(replay.Config{
		Shard: shard, Source: src,
		Destination: replay.NewMongoDestination(c.dst), DDL: ddl, Checkpoints: sink,
		Resume: from.Resume.TS, ResumeTerm: from.Resume.Term, T0: from.T0, T0Term: from.T0Term, TxnStart: from.TxnStart, ConsistencyPoint: from.ConsistencyPoint,
		Translator: oplog.Config{KeyFields: c.keys.of, ShardKeyChanged: func(ns oplog.Namespace, fields []string) { c.keys.set(ns.String(), fields) }},
		Logger:     c.log, FromMigrate: fromMigrate, Ordered: from.Ordered,
	})
}

// advancePast asks a source shard's primary for an oplog entry past ts (see
// replay.Advancer), with the cluster time of shard from gossiped.
func (c *mongoClusters) advancePast(ctx context.Context, shard, from string, ts primitive.Timestamp) error {
	client, err := c.shardClient(shard)
	if err != nil {
		return err
	}
	var gossip bson.Raw
	if from != "" {
		if fc, err := c.shardClient(from); err == nil {
			if gossip, err = replay.ClusterTimeOf(ctx, fc); err != nil {
				return err
			}
		}
	}
	return replay.AdvancePast(ctx, client, ts, gossip)
}

func (c *mongoClusters) OplogSource(shard string) (replay.Source, error) {
	client, err := c.shardClient(shard)
	if err != nil {
		return nil, err
	}
	return c.oplogOf(shard, client), nil
}

// oplogOf is the oplog of the shard client reaches, read where the shard's read
// preference says.
func (c *mongoClusters) oplogOf(shard string, client *mongo.Client) *replay.MongoSource {
	reads := c.reads.Of(shard)
	return replay.NewMongoSource(client, replay.MongoSourceOptions{Reads: &reads, Member: c.member})
}

// member is a direct connection to the source shard member at addr (as its
// replica set names it), opened once.
func (c *mongoClusters) member(ctx context.Context, addr string) (*mongo.Client, error) {
	c.mu.Lock()
	client, ok := c.mu.members[addr]
	c.mu.Unlock()
	if ok {
		return client, nil
	}
	client, err := topology.Connect(ctx, c.cfg.Source.ForHosts([]string{addr}, ""))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if existing, ok := c.mu.members[addr]; ok {
		client.Disconnect(context.WithoutCancel(ctx))
		return existing, nil
	}
	if c.mu.members == nil {
		c.mu.members = map[string]*mongo.Client{}
	}
	c.mu.members[addr] = client
	return client, nil
}

func (c *mongoClusters) RunDDL(ctx context.Context) error {
	select {
	case <-c.ddlReady:
	case <-ctx.Done():
		return nil
	}
	c.mu.Lock()
	ddl := c.mu.ddl
	c.mu.Unlock()
	var watcher sync.WaitGroup
	watcher.Go(func() { c.watchShardKeys(ctx, ddl) })
	defer watcher.Wait()
	return ddl.Run(ctx)
}

// watchShardKeys runs the metadata watcher from the first replay on (before it,
// Prepare is still shaping the destination) until ctx ends.
func (c *mongoClusters) watchShardKeys(ctx context.Context, ddl *replay.DDLOnce) {
	select {
	case <-c.replaying:
	case <-ctx.Done():
		return
	}
	sharded := func(client *mongo.Client, e topology.Endpoint) func(context.Context) ([]topology.Collection, error) {
		timeout := e.Timeout
		if timeout <= 0 {
			timeout = topology.DefaultTimeout
		}
		return func(ctx context.Context) ([]topology.Collection, error) {
			return topology.ShardedCollections(ctx, client, timeout)
		}
	}
	w := &replay.ShardKeyWatch{
		Source: sharded(c.src, c.cfg.Source), Destination: sharded(c.dst, c.cfg.Destination),
		Newest: c.newestOfAll, DDL: ddl, KeyChanged: c.keys.set, Logger: c.log,
	}
	w.Run(ctx, shardKeyWatchEvery)
}

// newestOfAll is the newest oplog ts over every source shard.
func (c *mongoClusters) newestOfAll(ctx context.Context) (primitive.Timestamp, error) {
	plan, err := c.plan()
	if err != nil {
		return primitive.Timestamp{}, err
	}
	var newest primitive.Timestamp
	for _, s := range plan.Shards {
		ts, err := c.Newest(ctx, s.Source)
		if err != nil {
			return primitive.Timestamp{}, err
		}
		if newest.Before(ts) {
			newest = ts
		}
	}
	return newest, nil
}

// maxTS is past every oplog entry: a shard reported there holds nobody's DDL.
var maxTS = primitive.Timestamp{T: math.MaxUint32, I: math.MaxUint32}

func (c *mongoClusters) ReleaseDDL(shard string) {
	c.mu.Lock()
	ddl := c.mu.ddl
	c.mu.Unlock()
	if ddl != nil {
		ddl.Position(shard, maxTS)
		ddl.Applied(shard, maxTS) // its replay starts again with the new shard keys
	}
}

// Verify compares every collection of the source with the destination, and every
// destination collection the source does not have, from a fresh discovery of both.
func (c *mongoClusters) Verify(ctx context.Context, progress func(done, total int)) (*Verification, error) {
	nss, err := c.VerifyPlan(ctx)
	if err != nil {
		return nil, err
	}
	src, dst := c.VerifySides()
	res, err := verify.Run(ctx, src, dst, nss, verify.Options{}, progress)
	if err != nil {
		return nil, err
	}
	v := &Verification{Namespaces: res.Namespaces, Ranges: res.Ranges, Matched: res.Matched, Documents: res.Documents}
	for _, mm := range res.Mismatches {
		v.Mismatches = append(v.Mismatches, Mismatch{
			Namespace: mm.Namespace, Range: mm.Range, SourceCount: mm.SourceCount, DestCount: mm.DestCount, SampleIDs: mm.SampleIDs,
		})
	}
	return v, nil
}

func (c *mongoClusters) BuildIndex(ctx context.Context, ns string, spec bson.Raw) error {
	db, coll, _ := strings.Cut(ns, ".")
	cmd := bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: bson.A{oplog.DestinationIndexSpec(spec)}}}
	return c.dst.Database(db).RunCommand(ctx, cmd).Err()
}

// discoverBoth discovers the source and the destination at once, as they are now.
func (c *mongoClusters) discoverBoth(ctx context.Context) (src, dst *topology.Cluster, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { src, err = topology.Discover(gctx, c.cfg.Source); return err })
	g.Go(func() (err error) { dst, err = topology.Discover(gctx, c.cfg.Destination); return err })
	return src, dst, g.Wait()
}

func (c *mongoClusters) VerifyPlan(ctx context.Context) ([]verify.Namespace, error) {
	src, dst, err := c.discoverBoth(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := prepare.NewPlan(src, dst)
	if err != nil {
		return nil, err
	}
	var nss []verify.Namespace
	seen := map[string]bool{}
	for _, coll := range plan.Collections {
		if coll.Type != "collection" {
			continue
		}
		n := verify.Namespace{DB: coll.DB, Coll: coll.Name, Collated: coll.DefaultCollation() != nil}
		if coll.Sharded {
			n.Pattern, n.Chunks = coll.Pattern, coll.Chunks
		}
		nss = append(nss, n)
		seen[coll.NS()] = true
	}
	for _, n := range dst.Namespaces {
		if n.Type == "collection" && !seen[n.Name()] && namespaces.Migrated(n.DB, n.Collection) {
			nss = append(nss, verify.Namespace{DB: n.DB, Coll: n.Collection})
		}
	}
	return nss, nil
}

// incompleteTries bounds how many discoveries IndexDifferences makes while one of
// them cannot read a collection list or an index list (a shard failing over),
// incompleteWait apart.
const (
	incompleteTries = 10
	incompleteWait  = 3 * time.Second
)

func (c *mongoClusters) IndexDifferences(ctx context.Context) ([]IndexDifference, error) {
	// A collection or index list a discovery could not read is not an empty one:
	// compared as such, every index of it would be "only on the other side".
	var src, dst *topology.Cluster
	for try := 1; ; try++ {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() (err error) { src, err = topology.DiscoverIndexes(gctx, c.cfg.Source); return err })
		g.Go(func() (err error) { dst, err = topology.DiscoverIndexes(gctx, c.cfg.Destination); return err })
		if err := g.Wait(); err != nil {
			return nil, err
		}
		var unread []error
		for _, cl := range []*topology.Cluster{src, dst} {
			for _, part := range []string{topology.PartInventory, topology.PartIndexes} {
				for _, p := range cl.ProblemsWith(part) {
					unread = append(unread, p)
				}
			}
		}
		if len(unread) == 0 {
			break
		}
		if try == incompleteTries {
			return nil, fmt.Errorf("read every collection's indexes on both clusters (%d tries): %w", try, errors.Join(unread...))
		}
		c.log.Warn("a collection or index list could not be read; comparing the indexes again shortly", "err", errors.Join(unread...))
		t := time.NewTimer(incompleteWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	onDst, onSrc := map[string]topology.Namespace{}, map[string]bool{}
	for _, n := range dst.Namespaces {
		onDst[n.Name()] = n
	}
	for _, n := range src.Namespaces {
		onSrc[n.Name()] = true
	}
	var out []IndexDifference
	for _, n := range dst.Namespaces {
		if n.Type == "collection" && !onSrc[n.Name()] && namespaces.Migrated(n.DB, n.Collection) {
			out = append(out, verify.DestinationOnly(n.Name()))
		}
	}
	for _, n := range src.Namespaces {
		d, ok := onDst[n.Name()]
		if n.Type != "collection" || !ok || !namespaces.Migrated(n.DB, n.Collection) {
			continue // a collection missing on the destination is the document comparison's
		}
		out = append(out, verify.CompareIndexes(n.Name(), n.Indexes, d.Indexes)...)
	}
	return out, nil
}

func (c *mongoClusters) VerifySides() (verify.Side, verify.Side) {
	return verify.MongoSide(c.src), verify.MongoSide(c.dst)
}

func (c *mongoClusters) OplogAfter(ctx context.Context, shard string, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error) {
	client, err := c.connectedShard(ctx, shard)
	if err != nil {
		return nil, false, err
	}
	return oplogAfter(ctx, client, ts, limit)
}

// oplogAfter reads up to limit entries of a shard's oplog after ts, refusing
// (ErrOplogRolledPast) when the oplog no longer reaches back to ts.
func oplogAfter(ctx context.Context, client *mongo.Client, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error) {
	src := replay.NewMongoSource(client, replay.MongoSourceOptions{})
	oldest, err := src.Oldest(ctx)
	if err != nil {
		return nil, false, err
	}
	if ts.Before(oldest) {
		return nil, false, fmt.Errorf("after %v (the oldest entry is %v): %w", ts, oldest, ErrOplogRolledPast)
	}
	return src.After(ctx, ts, limit)
}

// DestinationShards lists the destination's shards from listShards and connects
// to each, once.
func (c *mongoClusters) DestinationShards(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	known := slices.Sorted(maps.Keys(c.mu.dstShards))
	c.mu.Unlock()
	if len(known) > 0 {
		return known, nil
	}
	var reply struct {
		Shards []struct {
			ID   string `bson:"_id"`
			Host string `bson:"host"`
		} `bson:"shards"`
	}
	if err := c.dst.Database("admin").RunCommand(ctx, bson.D{{Key: "listShards", Value: 1}}).Decode(&reply); err != nil {
		return nil, fmt.Errorf("listShards: %w", err)
	}
	clients := map[string]*mongo.Client{}
	for _, sh := range reply.Shards {
		set, hosts, err := topology.ParseHostString(sh.Host)
		if err == nil {
			var client *mongo.Client
			if client, err = topology.Connect(ctx, c.cfg.Destination.ForHosts(hosts, set)); err == nil {
				clients[sh.ID] = client
				continue
			}
		}
		for _, cl := range clients {
			cl.Disconnect(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("connect to destination shard %s: %w", sh.ID, err)
	}
	c.mu.Lock()
	if len(c.mu.dstShards) > 0 { // another call connected meanwhile
		for _, cl := range clients {
			cl.Disconnect(context.WithoutCancel(ctx))
		}
	} else {
		c.mu.dstShards = clients
	}
	known = slices.Sorted(maps.Keys(c.mu.dstShards))
	c.mu.Unlock()
	return known, nil
}

func (c *mongoClusters) destinationShard(shard string) (*mongo.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	client, ok := c.mu.dstShards[shard]
	if !ok {
		return nil, fmt.Errorf("destination shard %s: %w", shard, ErrUnknownShard)
	}
	return client, nil
}

func (c *mongoClusters) DestinationNewest(ctx context.Context, shard string) (primitive.Timestamp, error) {
	client, err := c.destinationShard(shard)
	if err != nil {
		return primitive.Timestamp{}, err
	}
	return replay.NewMongoSource(client, replay.MongoSourceOptions{}).Newest(ctx)
}

func (c *mongoClusters) DestinationOplogAfter(ctx context.Context, shard string, ts primitive.Timestamp, limit int) ([]bson.Raw, bool, error) {
	client, err := c.destinationShard(shard)
	if err != nil {
		return nil, false, err
	}
	return oplogAfter(ctx, client, ts, limit)
}

func (c *mongoClusters) Close(ctx context.Context) error {
	c.mu.Lock()
	clients := []*mongo.Client{c.src, c.dst}
	for _, s := range c.mu.dstShards {
		clients = append(clients, s)
	}
	c.mu.dstShards = nil
	for _, s := range c.mu.shards {
		clients = append(clients, s)
	}
	for _, m := range c.mu.members {
		clients = append(clients, m)
	}
	c.mu.shards = map[string]*mongo.Client{}
	c.mu.members = map[string]*mongo.Client{}
	c.mu.Unlock()
	var errs []error
	for _, cl := range clients {
		errs = append(errs, cl.Disconnect(ctx))
	}
	return errors.Join(errs...)
}

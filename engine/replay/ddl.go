package replay

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/prepare"
)

// DDLApplier applies the DDL of all the shards of one migration. On a sharded source
// one DDL shows up in the oplog of every shard it concerns; it must be applied once,
// and only when every shard has applied the writes that precede it.
type DDLApplier interface {
	// AddDDL registers the copy of d that shard read at ts, once the shard's
	// appliers have applied everything before it. The shard then waits, with the
	// returned function, until d is applied on the destination (from its copy or
	// another shard's), holding only the namespaces d touches meanwhile.
	AddDDL(shard string, ts primitive.Timestamp, d oplog.DDL) (wait func(context.Context) error, err error)
	// Position reports that shard has applied every entry up to ts, leaving aside the
	// namespaces it holds for a DDL of its own. Pipelines call it several times a
	// second; the owner of a failed or restarting shard reports it with a maximal
	// ts so that it holds nobody's DDL.
	Position(shard string, ts primitive.Timestamp)
	// Applied reports that shard has applied every entry up to ts, those of the
	// namespaces it holds included (its resume point), for the DDL no shard read
	// (Schedule). Reported like Position.
	Applied(shard string, ts primitive.Timestamp)
}

// DDLExecutor runs one DDL against the destination.
type DDLExecutor interface {
	Exec(ctx context.Context, d oplog.DDL) error
}

// DDLOnce is the DDLApplier of one migration: it matches the copies the shards read
// of one DDL (oplog.DDLGroups), applies each group once its every shard has either
// read its copy or applied past the group's window, and releases the shards waiting
// on it. Run applies the groups, one at a time, oldest first.
//
// Applying once matters beyond saving work: drop, createIndexes with relaxed
// options, dropIndexes and collMod are idempotent, but renameCollection is not (a
// second rename of a name that is gone fails, and with dropTarget it would drop a
// collection re-created since), and re-applying a drop after another shard wrote to
// the re-created collection would lose those writes. A copy read again by the same
// shard (its pipeline restarted before its checkpoint passed the DDL) joins the
// group it joined the first time. Across a process restart the same holds
// through a DDLLog: once a group is applied, each copy in it is recorded in its
// shard's checkpoint before any of those shards goes on, and Recover hands the
// records to the next process, so a copy read again there is already applied.
// (Only a crash between applying a DDL and recording it re-applies it; the
// executor tolerates the errors that gives, see MongoDDL.)
type DDLOnce struct {
	shards []string
	groups *oplog.DDLGroups
	exec   DDLExecutor
	log    *slog.Logger
	wake   chan struct{}

	mu struct {
		sync.Mutex
		positions map[string]primitive.Timestamp
		applied   map[string]primitive.Timestamp // see Applied
		byGroup   map[uint64]*ddlResult
		copies    map[ddlCopy]*ddlResult
		logs      map[string]DDLLog // by shard; see Recover
		open      int               // groups added and not yet returned by Ready
		scheduled []scheduledDDL
	}
}

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
}

// DDLLog keeps durably, in a shard's checkpoint, the copies of DDL the shard read
// that are applied on the destination, until the shard's resume point passes them.
type DDLLog interface {
	DDLApplied(shard string, c DDLCopy) error
}

type ddlResult struct {
	done chan struct{}
	err  error
}

// NewDDLOnce applies the DDL of the named shards through exec. Copies of one DDL on
// different shards are matched when their ts are within window of each other (zero
// means oplog.DefaultDDLWindow); a DDL read by some shards waits until every other
// shard has applied past its ts plus window.
func NewDDLOnce(shards []string, window time.Duration, exec DDLExecutor, logger *slog.Logger) *DDLOnce {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &DDLOnce{shards: slices.Clone(shards), groups: oplog.NewDDLGroups(shards, window), exec: exec, log: logger, wake: make(chan struct{}, 1)}
	o.mu.positions = map[string]primitive.Timestamp{}
	o.mu.applied = map[string]primitive.Timestamp{}
	o.mu.byGroup = map[uint64]*ddlResult{}
	o.mu.copies = map[ddlCopy]*ddlResult{}
	o.mu.logs = map[string]DDLLog{}
	return o
}

// Recover prepares for a shard's replay (a fresh start, or a resume in a new
// process): applied are the copies its checkpoint records as applied, which are
// not applied again when the replay reads them, and log records the copies of
// the shard applied from now on (nil: none is recorded, for a replay that is
// never resumed). Call it before the shard's replay starts.
func (o *DDLOnce) Recover(shard string, applied []DDLCopy, log DDLLog) {
	done := &ddlResult{done: make(chan struct{})}
	close(done.done)
	o.mu.Lock()
	defer o.mu.Unlock()
	for c, r := range o.mu.copies {
		if c.shard == shard && isDone(r) {
			delete(o.mu.copies, c)
		}
	}
	for _, c := range applied {
		o.mu.copies[ddlCopy{shard, c.TS, c.Key}] = done
	}
	if log == nil {
		delete(o.mu.logs, shard)
	} else {
		o.mu.logs[shard] = log
	}
}

// AddDDL implements DDLApplier.
func (o *DDLOnce) AddDDL(shard string, ts primitive.Timestamp, d oplog.DDL) (func(context.Context) error, error) {
	cp := ddlCopy{shard, ts, d.Key()}
	o.mu.Lock()
	r, ok := o.mu.copies[cp]
	if !ok {
		id, opened, err := o.groups.Add(shard, ts, d)
		if err != nil {
			o.mu.Unlock()
			return nil, err
		}
		if opened {
			o.mu.open++
		}
		r = o.mu.byGroup[id]
		if r == nil {
			r = &ddlResult{done: make(chan struct{})}
			o.mu.byGroup[id] = r
		}
		o.mu.copies[cp] = r
	}
	o.mu.Unlock()
	o.poke()
	return func(ctx context.Context) error {
		select {
		case <-r.done:
			return r.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
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

// Applied implements DDLApplier.
func (o *DDLOnce) Applied(shard string, ts primitive.Timestamp) {
	o.mu.Lock()
	o.mu.applied[shard] = ts
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
	var due []scheduledDDL
	kept := o.mu.scheduled[:0]
	for _, sd := range o.mu.scheduled {
		passed := true
		for _, s := range o.shards {
			if pos, ok := o.mu.applied[s]; !ok || pos.Compare(sd.ts) <= 0 {
				passed = false
				break
			}
		}
		if passed {
			due = append(due, sd)
		} else {
			kept = append(kept, sd)
		}
	}
	o.mu.scheduled = kept
	return due
}

// Position implements DDLApplier.
func (o *DDLOnce) Position(shard string, ts primitive.Timestamp) {
	o.mu.Lock()
	o.mu.positions[shard] = ts
	for c := range o.mu.copies {
		if c.shard == shard && !ts.Before(c.ts) && isDone(o.mu.copies[c]) {
			delete(o.mu.copies, c)
		}
	}
	open := o.mu.open
	o.mu.Unlock()
	if open > 0 {
		o.poke()
	}
}

func isDone(r *ddlResult) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (o *DDLOnce) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run applies the ready groups until ctx ends. Transient errors are retried; any
// other error fails the shards whose copies joined the group.
func (o *DDLOnce) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
		}
		o.mu.Lock()
		positions := make(map[string]primitive.Timestamp, len(o.mu.positions))
		for s, ts := range o.mu.positions {
			positions[s] = ts
		}
		ready := o.groups.Ready(positions)
		o.mu.open -= len(ready)
		o.mu.Unlock()
		for _, g := range ready {
			err := o.apply(ctx, g)
			o.mu.Lock()
			r := o.mu.byGroup[g.ID]
			delete(o.mu.byGroup, g.ID)
			o.mu.Unlock()
			if err == nil {
				o.record(g, r)
			}
			r.err = err
			close(r.done)
		}
		for _, sd := range o.dueScheduled() {
			sd.done(o.apply(ctx, oplog.DDLGroup{DDL: sd.ddl, First: sd.ts}))
		}
	}
}

// record writes each copy of an applied group to its shard's DDLLog, before the
// shards waiting on it go on (and their checkpoints can pass it). A record that
// fails is logged: a restart before the shard's checkpoint passes the copy then
// applies the DDL again, which the executor tolerates.
func (o *DDLOnce) record(g oplog.DDLGroup, r *ddlResult) {
	type entry struct {
		c   ddlCopy
		log DDLLog
	}
	var todo []entry
	o.mu.Lock()
	for c, cr := range o.mu.copies {
		if cr == r && o.mu.logs[c.shard] != nil {
			todo = append(todo, entry{c, o.mu.logs[c.shard]})
		}
	}
	o.mu.Unlock()
	for _, e := range todo {
		if err := e.log.DDLApplied(e.c.shard, DDLCopy{TS: e.c.ts, Key: e.c.key}); err != nil {
			o.log.Error("record an applied DDL in the shard's checkpoint; a restart before the checkpoint passes it applies it again",
				"kind", g.DDL.Kind, "ns", g.DDL.NS, "shard", e.c.shard, "ts", tsString(e.c.ts), "err", err)
		}
	}
}

func (o *DDLOnce) apply(ctx context.Context, g oplog.DDLGroup) error {
	b := newBackoff()
	for {
		err := o.exec.Exec(ctx, g.DDL)
		if err == nil {
			o.log.Info("applied DDL", "kind", g.DDL.Kind, "ns", g.DDL.NS, "shards", g.Shards,
				"ts", tsString(g.First))
			return nil
		}
		if !isTransient(err) || ctx.Err() != nil {
			return fmt.Errorf("apply %s on %s (read by %v at %s): %w", g.DDL.Kind, g.DDL.NS, g.Shards, tsString(g.First), err)
		}
		o.log.Warn("retrying DDL", "kind", g.DDL.Kind, "ns", g.DDL.NS, "err", err)
		if err := b.wait(ctx, nil); err != nil {
			return err
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
		if err != nil && hasCode(err, tolerated...) {
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
		if hasCode(err, codeNamespaceExists) {
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
		if hasCode(err, codeNamespaceNotFound) {
			return nil // the source is gone: the rename happened before
		}
		return err
	}
	err := renamed(d.DropTarget)
	if err == nil || !d.DropTarget || !hasCode(err, optionRefusedCodes...) {
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
	if derr := m.client.Database(d.To.DB).RunCommand(ctx, drop).Err(); derr != nil && !hasCode(derr, codeNamespaceNotFound) {
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

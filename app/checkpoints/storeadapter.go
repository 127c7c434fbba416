package checkpoints

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/store"
)

// storeCheckpoints keeps one migration's engine state in the store (it implements
// engine.Checkpoints):
//
//	engine.Record ─┬─ state, history, identities, balancer, deadline, summary ─► store.Migration
//	               └─ relaxed originals, verification, users, the summary's notes and
//	                  shard positions ─► extras (below)
//	engine.ShardCheckpoint ─► store.ShardCheckpoint; consistency point and the
//	                          shard's history ─► extras (below)
//
// The store's records have no fields yet for what is marked "extras": they are kept
// as one BSON document under the reserved partition key extrasKey of a shard's
// Copied map, and the migration's own in the checkpoint of the pseudo-shard
// MetaShard. Neither name can clash with real ones: partition keys are namespaces
// ("db.coll", and database names cannot contain '$'), and MetaShard is refused as
// a real shard's name.
type storeCheckpoints struct {
	st *store.Store
	id string

	mu        sync.Mutex
	lastMeta  []byte // the extras last saved, to skip rewriting them unchanged
	lastSaved store.Migration
}

const (
	extrasKey = "$shardlift"
	MetaShard = "$shardlift"
)

func New(st *store.Store, id string) *storeCheckpoints {
	return &storeCheckpoints{st: st, id: id}
}

// The BSON documents of the extras. The tags are the file format.
type (
	shardExtras struct {
		ConsistencyPoint primitive.Timestamp `bson:"consistencyPoint"`
		History          []eventDoc          `bson:"history,omitempty"`
		DDLApplied       []ddlCopyDoc        `bson:"ddlApplied,omitempty"`
		// Owned is what the shard owned at its T0 (the chunk map it copies).
		Owned *prepare.Ownership `bson:"owned,omitempty"`
		// Moved names the move that made the shard copy again.
		Moved string `bson:"moved,omitempty"`
		// Buffered is what the shard's oplog buffer held at the save.
		Buffered *bufferedDoc `bson:"buffered,omitempty"`
	}
	bufferedDoc struct {
		Bytes   int64 `bson:"bytes"`
		Entries int64 `bson:"entries"`
	}
	ddlCopyDoc struct {
		TS     primitive.Timestamp `bson:"ts"`
		Key    []byte              `bson:"key"`
		Effect *ddlEffectDoc       `bson:"effect,omitempty"`
	}
	// ddlEffectDoc is a replay.DDLEffect: what an applied drop, dropDatabase or
	// rename did, for routing the writes read again after a restart.
	ddlEffectDoc struct {
		Kind           int32  `bson:"kind"`
		NS             string `bson:"ns"`
		To             string `bson:"to,omitempty"`
		UUID           []byte `bson:"uuid,omitempty"`
		DropTarget     bool   `bson:"dropTarget,omitempty"`
		DropTargetUUID []byte `bson:"dropTargetUUID,omitempty"`
	}
	cancelDoc struct {
		At        time.Time     `bson:"at"`
		From      string        `bson:"from"`
		OptimeGap time.Duration `bson:"optimeGap"`
	}
	eventDoc struct {
		At     time.Time `bson:"at"`
		From   string    `bson:"from"`
		To     string    `bson:"to"`
		Reason string    `bson:"reason,omitempty"`
	}
	migrationExtras struct {
		Relaxed      []relaxedDoc     `bson:"relaxed,omitempty"`
		Verification *verificationDoc `bson:"verification,omitempty"`
		Users        []userDoc        `bson:"users,omitempty"`
		Notes        []string         `bson:"notes,omitempty"`
		Cancelling   *cancelDoc       `bson:"cancelling,omitempty"`
		Positions    []positionDoc    `bson:"positions,omitempty"` // the summary's
		Continuous   *continuousDoc   `bson:"continuous,omitempty"`
	}
	// continuousDoc is an engine.ContinuousState: the continuous verification's
	// progress, which a resumed Run goes on from.
	continuousDoc struct {
		Shards      []continuousShardDoc `bson:"shards"`
		Destination []shardTSDoc         `bson:"destination,omitempty"`
		Namespaces  []comparedDoc        `bson:"namespaces,omitempty"`
		Rechecked   int64                `bson:"rechecked"`
	}
	continuousShardDoc struct {
		Shard  string              `bson:"shard"`
		T0     primitive.Timestamp `bson:"t0"`
		Cursor primitive.Timestamp `bson:"cursor"`
	}
	comparedDoc struct {
		NS         string          `bson:"ns"`
		Ranges     int             `bson:"ranges"`
		Documents  int64           `bson:"documents"`
		Pending    []bson.RawValue `bson:"pending,omitempty"`
		SeenAt     []shardTSDoc    `bson:"seenAt,omitempty"`
		Persisting []bson.RawValue `bson:"persisting,omitempty"`
		// ByRange and Units: compared range by range, those ranges so far (a
		// record without them was compared whole).
		ByRange bool               `bson:"byRange,omitempty"`
		Units   []comparedRangeDoc `bson:"units,omitempty"`
	}
	comparedRangeDoc struct {
		Min       bson.Raw `bson:"min"`
		Max       bson.Raw `bson:"max"`
		Chunks    int      `bson:"chunks"`
		Documents int64    `bson:"documents"`
	}
	shardTSDoc struct {
		Shard string              `bson:"shard"`
		TS    primitive.Timestamp `bson:"ts"`
	}
	positionDoc struct {
		Shard       string    `bson:"shard"`
		Phase       string    `bson:"phase"`
		AppliedUpTo time.Time `bson:"appliedUpTo"`
		Consistent  bool      `bson:"consistent"`
		Text        string    `bson:"text"`
	}
	relaxedDoc struct {
		NS       string   `bson:"ns"`
		Kind     string   `bson:"kind"`
		Original bson.Raw `bson:"original"`
		InOrder  bool     `bson:"inOrder,omitempty"`
		Unique   bool     `bson:"uniqueRestored,omitempty"`
	}
	verificationDoc struct {
		At         time.Time      `bson:"at"`
		Namespaces int            `bson:"namespaces"`
		Ranges     int            `bson:"ranges"`
		Matched    int            `bson:"matched"`
		Documents  int64          `bson:"documents"`
		Mismatches []mismatchDoc  `bson:"mismatches,omitempty"`
		Late       []lateWriteDoc `bson:"lateWrites,omitempty"`
		Indexes    []indexDiffDoc `bson:"indexes,omitempty"`
		Overridden bool           `bson:"overridden,omitempty"`
	}
	indexDiffDoc struct {
		Namespace string `bson:"ns"`
		Index     string `bson:"index"`
		What      string `bson:"what"`
	}
	lateWriteDoc struct {
		Shard      string    `bson:"shard"`
		Writes     int       `bson:"writes"`
		AtLeast    bool      `bson:"atLeast,omitempty"`
		First      time.Time `bson:"first,omitempty"`
		Namespaces []string  `bson:"namespaces,omitempty"`
	}
	mismatchDoc struct {
		Namespace   string   `bson:"ns"`
		Range       string   `bson:"range"`
		SourceCount int64    `bson:"sourceCount"`
		DestCount   int64    `bson:"destCount"`
		SampleIDs   []string `bson:"sampleIds,omitempty"`
	}
	userDoc struct {
		Name   string   `bson:"name"`
		DB     string   `bson:"db"`
		Roles  []string `bson:"roles,omitempty"`
		IsRole bool     `bson:"isRole,omitempty"`
	}
)

// Load implements engine.Checkpoints.
func (c *storeCheckpoints) Load() (engine.Record, []engine.ShardCheckpoint, error) {
	m, err := c.st.Migration(c.id)
	if err != nil {
		return engine.Record{}, nil, err
	}
	cps, err := c.st.ShardCheckpoints(c.id)
	if err != nil {
		return engine.Record{}, nil, err
	}
	rec := engine.Record{
		ID: m.ID, State: engine.State(m.State), BalancerWasOn: m.BalancerWasOn, TimerDeadline: m.TimerDeadline,
		SourceIdentity: FromStoreIdentity(m.SourceIdentity), DestinationIdentity: FromStoreIdentity(m.DestinationIdentity),
	}
	for _, e := range m.History {
		rec.History = append(rec.History, engine.Event{At: e.At, From: e.From, To: e.To, Reason: e.Reason})
	}
	var extras migrationExtras
	var shards []engine.ShardCheckpoint
	for _, cp := range cps {
		if cp.Shard == MetaShard {
			if err := decodeExtras(cp, &extras); err != nil {
				return engine.Record{}, nil, fmt.Errorf("migration %s: %w", c.id, err)
			}
			continue
		}
		sc, err := fromStoreShard(cp)
		if err != nil {
			return engine.Record{}, nil, fmt.Errorf("migration %s: %w", c.id, err)
		}
		shards = append(shards, sc)
	}
	for _, r := range extras.Relaxed {
		rec.Relaxed = append(rec.Relaxed, engine.Relaxed{NS: r.NS, Kind: engine.RelaxedKind(r.Kind), Original: r.Original, InOrder: r.InOrder, UniqueRestored: r.Unique})
	}
	rec.Verification = fromVerificationDoc(extras.Verification)
	rec.Continuous = fromContinuousDoc(extras.Continuous)
	if c := extras.Cancelling; c != nil {
		rec.Cancelling = &engine.CancelRequest{At: c.At, From: engine.State(c.From), OptimeGap: c.OptimeGap}
	}
	for _, u := range extras.Users {
		rec.Users = append(rec.Users, engine.User{Name: u.Name, DB: u.DB, Roles: u.Roles, IsRole: u.IsRole})
	}
	if s := m.Summary; s != nil {
		rec.Summary = &engine.Summary{
			FinishedAt: s.FinishedAt, Documents: s.Documents, Bytes: s.Bytes, OptimeGap: s.OptimeGap,
			Verification: s.Verification, UsersToRecreate: s.UsersToRecreate, Notes: extras.Notes,
		}
		for _, p := range extras.Positions {
			rec.Summary.Shards = append(rec.Summary.Shards, engine.ShardPosition{
				Shard: p.Shard, Phase: engine.Phase(p.Phase), AppliedUpTo: p.AppliedUpTo, Consistent: p.Consistent, Text: p.Text})
		}
	}
	c.mu.Lock()
	c.lastSaved = m
	c.mu.Unlock()
	return rec, shards, nil
}

// AppendEvent implements engine.Checkpoints.
func (c *storeCheckpoints) AppendEvent(ev engine.Event) error {
	if ev.Shard != "" {
		return fmt.Errorf("internal error: shard %s's event belongs in its checkpoint", ev.Shard)
	}
	return c.st.AppendHistory(c.id, store.Event{At: ev.At, From: ev.From, To: ev.To, Reason: ev.Reason})
}

// SaveRecord implements engine.Checkpoints: the extras first, then the migration's
// record; each is rewritten only when it changed.
func (c *storeCheckpoints) SaveRecord(r engine.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	extras := migrationExtras{Verification: toVerificationDoc(r.Verification), Continuous: toContinuousDoc(r.Continuous)}
	for _, x := range r.Relaxed {
		extras.Relaxed = append(extras.Relaxed, relaxedDoc{NS: x.NS, Kind: string(x.Kind), Original: x.Original, InOrder: x.InOrder, Unique: x.UniqueRestored})
	}
	for _, u := range r.Users {
		extras.Users = append(extras.Users, userDoc{Name: u.Name, DB: u.DB, Roles: u.Roles, IsRole: u.IsRole})
	}
	if r.Summary != nil {
		extras.Notes = r.Summary.Notes
		for _, p := range r.Summary.Shards {
			extras.Positions = append(extras.Positions, positionDoc{
				Shard: p.Shard, Phase: string(p.Phase), AppliedUpTo: p.AppliedUpTo, Consistent: p.Consistent, Text: p.Text})
		}
	}
	if c := r.Cancelling; c != nil {
		extras.Cancelling = &cancelDoc{At: c.At, From: string(c.From), OptimeGap: c.OptimeGap}
	}
	doc, err := bson.Marshal(extras)
	if err != nil {
		return fmt.Errorf("encode the migration's details: %w", err)
	}
	if !bytes.Equal(doc, c.lastMeta) {
		cp := store.ShardCheckpoint{Shard: MetaShard, Phase: "meta", Copied: map[string]store.PartitionProgress{
			extrasKey: {LastID: bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}},
		}}
		if err := c.st.SaveShardCheckpoint(c.id, cp); err != nil {
			return err
		}
		c.lastMeta = doc
	}
	m, err := c.st.Migration(c.id)
	if err != nil {
		return err
	}
	m.BalancerWasOn, m.TimerDeadline, m.Summary = r.BalancerWasOn, r.TimerDeadline, nil
	m.SourceIdentity, m.DestinationIdentity = ToStoreIdentity(r.SourceIdentity), ToStoreIdentity(r.DestinationIdentity)
	if s := r.Summary; s != nil {
		m.Summary = &store.Summary{
			FinishedAt: s.FinishedAt, Documents: s.Documents, Bytes: s.Bytes, OptimeGap: s.OptimeGap,
			Verification: s.Verification, UsersToRecreate: s.UsersToRecreate,
		}
	}
	if sameRecord(m, c.lastSaved) {
		return nil
	}
	if err := c.st.SaveMigration(m); err != nil {
		return err
	}
	c.lastSaved = m
	return nil
}

// sameRecord compares the parts of a migration SaveRecord writes.
func sameRecord(a, b store.Migration) bool {
	parts := func(m store.Migration) bson.D {
		return bson.D{{Key: "b", Value: m.BalancerWasOn}, {Key: "t", Value: m.TimerDeadline}, {Key: "s", Value: m.Summary},
			{Key: "si", Value: m.SourceIdentity}, {Key: "di", Value: m.DestinationIdentity}}
	}
	ab, err1 := bson.Marshal(parts(a))
	bb, err2 := bson.Marshal(parts(b))
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

func toContinuousDoc(st *engine.ContinuousState) *continuousDoc {
	if st == nil {
		return nil
	}
	d := &continuousDoc{Rechecked: st.Rechecked}
	for _, s := range st.Shards {
		d.Shards = append(d.Shards, continuousShardDoc{Shard: s.Shard, T0: s.T0, Cursor: s.Cursor})
	}
	for _, s := range st.Destination {
		d.Destination = append(d.Destination, shardTSDoc{Shard: s.Shard, TS: s.TS})
	}
	for _, n := range st.Namespaces {
		c := comparedDoc{NS: n.NS, Ranges: n.Ranges, Documents: n.Documents, Pending: n.Pending, Persisting: n.Persisting, ByRange: n.ByRange}
		for _, u := range n.Units {
			c.Units = append(c.Units, comparedRangeDoc{Min: bson.Raw(u.Min), Max: bson.Raw(u.Max), Chunks: u.Chunks, Documents: u.Documents})
		}
		for _, s := range n.SeenAt {
			c.SeenAt = append(c.SeenAt, shardTSDoc{Shard: s.Shard, TS: s.TS})
		}
		d.Namespaces = append(d.Namespaces, c)
	}
	return d
}

func fromContinuousDoc(d *continuousDoc) *engine.ContinuousState {
	if d == nil {
		return nil
	}
	st := &engine.ContinuousState{Rechecked: d.Rechecked}
	for _, s := range d.Shards {
		st.Shards = append(st.Shards, engine.ContinuousShard{Shard: s.Shard, T0: s.T0, Cursor: s.Cursor})
	}
	for _, s := range d.Destination {
		st.Destination = append(st.Destination, engine.ShardTS{Shard: s.Shard, TS: s.TS})
	}
	for _, c := range d.Namespaces {
		n := engine.ComparedNamespace{NS: c.NS, Ranges: c.Ranges, Documents: c.Documents, Pending: c.Pending, Persisting: c.Persisting, ByRange: c.ByRange}
		for _, u := range c.Units {
			n.Units = append(n.Units, engine.ComparedRange{Min: shardkey.Key(u.Min), Max: shardkey.Key(u.Max), Chunks: u.Chunks, Documents: u.Documents})
		}
		for _, s := range c.SeenAt {
			n.SeenAt = append(n.SeenAt, engine.ShardTS{Shard: s.Shard, TS: s.TS})
		}
		st.Namespaces = append(st.Namespaces, n)
	}
	return st
}

// ToStoreIdentity and FromStoreIdentity convert a cluster's identity.
func ToStoreIdentity(id *topology.Identity) *store.ClusterIdentity {
	if id == nil {
		return nil
	}
	out := &store.ClusterIdentity{ClusterID: id.ClusterID, Routers: id.Routers}
	for _, sh := range id.Shards {
		out.Shards = append(out.Shards, store.ShardHosts{Name: sh.Name, Hosts: sh.Hosts})
	}
	return out
}

func FromStoreIdentity(id *store.ClusterIdentity) *topology.Identity {
	if id == nil {
		return nil
	}
	out := &topology.Identity{ClusterID: id.ClusterID, Routers: id.Routers}
	for _, sh := range id.Shards {
		out.Shards = append(out.Shards, topology.ShardHosts{Name: sh.Name, Hosts: sh.Hosts})
	}
	return out
}

// SaveShard implements engine.Checkpoints.
func (c *storeCheckpoints) SaveShard(cp engine.ShardCheckpoint) error {
	if cp.Shard == MetaShard {
		return fmt.Errorf("a source shard is named %q, which Shardlift reserves: rename the shard", MetaShard)
	}
	extras := shardExtras{ConsistencyPoint: cp.ConsistencyPoint, Owned: cp.Owned, Moved: cp.Moved}
	if cp.Buffered != (engine.BufferedOplog{}) {
		extras.Buffered = &bufferedDoc{Bytes: cp.Buffered.Bytes, Entries: cp.Buffered.Entries}
	}
	for _, e := range cp.History {
		extras.History = append(extras.History, eventDoc{At: e.At, From: e.From, To: e.To, Reason: e.Reason})
	}
	for _, c := range cp.DDLApplied {
		doc := ddlCopyDoc{TS: c.TS, Key: c.Key[:]}
		if e := c.Effect; e.Kind != 0 {
			doc.Effect = &ddlEffectDoc{Kind: int32(e.Kind), NS: e.NS.String(), UUID: []byte(e.UUID), DropTarget: e.DropTarget, DropTargetUUID: []byte(e.DropTargetUUID)}
			if e.To != (oplog.Namespace{}) {
				doc.Effect.To = e.To.String()
			}
		}
		extras.DDLApplied = append(extras.DDLApplied, doc)
	}
	doc, err := bson.Marshal(extras)
	if err != nil {
		return fmt.Errorf("encode the checkpoint of shard %s: %w", cp.Shard, err)
	}
	copied := make(map[string]store.PartitionProgress, len(cp.Copied)+1)
	for ns, p := range cp.Copied {
		if strings.HasPrefix(ns, "$") {
			return fmt.Errorf("checkpoint of shard %s: partition %q would clash with Shardlift's reserved key", cp.Shard, ns)
		}
		copied[ns] = store.PartitionProgress{Done: p.Done, LastID: p.LastID, Docs: p.Docs, Bytes: p.Bytes, Min: p.Min, Max: p.Max}
	}
	copied[extrasKey] = store.PartitionProgress{LastID: bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}}
	return c.st.SaveShardCheckpoint(c.id, store.ShardCheckpoint{
		Shard: cp.Shard, Phase: string(cp.Phase), T0: cp.T0, T0Term: cp.T0Term, TxnStart: cp.TxnStart, Applied: cp.Applied, AppliedTerm: cp.AppliedTerm, Copied: copied, Error: cp.Error,
	})
}

func fromStoreShard(cp store.ShardCheckpoint) (engine.ShardCheckpoint, error) {
	out := engine.ShardCheckpoint{Shard: cp.Shard, Phase: engine.Phase(cp.Phase), T0: cp.T0, T0Term: cp.T0Term, TxnStart: cp.TxnStart, Applied: cp.Applied, AppliedTerm: cp.AppliedTerm, Error: cp.Error}
	var extras shardExtras
	if err := decodeExtras(cp, &extras); err != nil {
		return out, err
	}
	out.ConsistencyPoint, out.Owned, out.Moved = extras.ConsistencyPoint, extras.Owned, extras.Moved
	if b := extras.Buffered; b != nil {
		out.Buffered = engine.BufferedOplog{Bytes: b.Bytes, Entries: b.Entries}
	}
	for _, e := range extras.History {
		out.History = append(out.History, engine.Event{At: e.At, Shard: cp.Shard, From: e.From, To: e.To, Reason: e.Reason})
	}
	for _, c := range extras.DDLApplied {
		var key oplog.DDLKey
		if len(c.Key) != len(key) {
			return out, fmt.Errorf("checkpoint of %s: an applied DDL's key has %d bytes, want %d", cp.Shard, len(c.Key), len(key))
		}
		copy(key[:], c.Key)
		applied := replay.DDLCopy{TS: c.TS, Key: key}
		if e := c.Effect; e != nil {
			applied.Effect = replay.DDLEffect{Kind: oplog.DDLKind(e.Kind), NS: oplog.ParseNamespace(e.NS), UUID: string(e.UUID), DropTarget: e.DropTarget, DropTargetUUID: string(e.DropTargetUUID)}
			if e.To != "" {
				applied.Effect.To = oplog.ParseNamespace(e.To)
			}
		}
		out.DDLApplied = append(out.DDLApplied, applied)
	}
	copied := maps.Clone(cp.Copied)
	delete(copied, extrasKey)
	if len(copied) > 0 {
		out.Copied = make(map[string]initialsync.PartitionProgress, len(copied))
		for ns, p := range copied {
			out.Copied[ns] = initialsync.PartitionProgress{Done: p.Done, LastID: p.LastID, Docs: p.Docs, Bytes: p.Bytes, Min: p.Min, Max: p.Max}
		}
	}
	return out, nil
}

// decodeExtras reads the extras of a checkpoint (none is fine: an older record).
func decodeExtras(cp store.ShardCheckpoint, out any) error {
	p, ok := cp.Copied[extrasKey]
	if !ok {
		return nil
	}
	if p.LastID.Type != bson.TypeEmbeddedDocument {
		return errors.New("checkpoint of " + cp.Shard + ": Shardlift's details are not a document")
	}
	if err := bson.Unmarshal(p.LastID.Value, out); err != nil {
		return fmt.Errorf("checkpoint of %s: decode Shardlift's details: %w", cp.Shard, err)
	}
	return nil
}

func toVerificationDoc(v *engine.Verification) *verificationDoc {
	if v == nil {
		return nil
	}
	d := &verificationDoc{At: v.At, Namespaces: v.Namespaces, Ranges: v.Ranges, Matched: v.Matched, Documents: v.Documents, Overridden: v.Overridden}
	for _, m := range v.Mismatches {
		d.Mismatches = append(d.Mismatches, mismatchDoc{Namespace: m.Namespace, Range: m.Range, SourceCount: m.SourceCount, DestCount: m.DestCount, SampleIDs: m.SampleIDs})
	}
	for _, l := range v.Late {
		d.Late = append(d.Late, lateWriteDoc(l))
	}
	for _, x := range v.Indexes {
		d.Indexes = append(d.Indexes, indexDiffDoc{Namespace: x.Namespace, Index: x.Index, What: x.What})
	}
	return d
}

func fromVerificationDoc(d *verificationDoc) *engine.Verification {
	if d == nil {
		return nil
	}
	v := &engine.Verification{At: d.At, Namespaces: d.Namespaces, Ranges: d.Ranges, Matched: d.Matched, Documents: d.Documents, Overridden: d.Overridden}
	for _, m := range d.Mismatches {
		v.Mismatches = append(v.Mismatches, engine.Mismatch{Namespace: m.Namespace, Range: m.Range, SourceCount: m.SourceCount, DestCount: m.DestCount, SampleIDs: m.SampleIDs})
	}
	for _, l := range d.Late {
		v.Late = append(v.Late, engine.LateWrites(l))
	}
	for _, x := range d.Indexes {
		v.Indexes = append(v.Indexes, engine.IndexDifference{Namespace: x.Namespace, Index: x.Index, What: x.What})
	}
	return v
}

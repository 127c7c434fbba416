package checkpoints

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/store"
)

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustRaw(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Everything the engine saves comes back, whole, after the state file is closed and
// opened again (a restart of the process).
func TestStoreCheckpointsKeepEverythingTheEngineSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st := openStore(t, path)
	if err := st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Draft), Source: store.ConnSettings{Hosts: []string{"src:27017"}}}); err != nil {
		t.Fatal(err)
	}
	cp := New(st, "m1")
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, ev := range []engine.Event{
		{At: at, From: "draft", To: "validated", Reason: "checks passed"},
		{At: at.Add(time.Second), From: "validated", To: "starting"},
		{At: at.Add(2 * time.Second), From: "starting", To: "syncing"},
	} {
		if err := cp.AppendEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	on := true
	rec := engine.Record{
		ID: "m1", BalancerWasOn: &on, TimerDeadline: at.Add(72 * time.Hour),
		SourceIdentity: &topology.Identity{ClusterID: primitive.ObjectID{7}, Routers: []string{"src:27017"},
			Shards: []topology.ShardHosts{{Name: "rs0", Hosts: []string{"a:27018", "b:27018"}}}},
		DestinationIdentity: &topology.Identity{ClusterID: primitive.ObjectID{8}, Routers: []string{"dst:27017"},
			Shards: []topology.ShardHosts{{Name: "d0", Hosts: []string{"c:27018"}}}},
		Relaxed: []engine.Relaxed{
			{NS: "shop.users", Kind: engine.RelaxedIndex, Original: mustRaw(t, bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}}), InOrder: true, UniqueRestored: true},
			{NS: "shop.events", Kind: engine.RelaxedOptions, Original: mustRaw(t, bson.D{{Key: "expireAfterSeconds", Value: int32(60)}})},
		},
		Verification: &engine.Verification{At: at, Namespaces: 2, Ranges: 5, Matched: 4, Documents: 99,
			Mismatches: []engine.Mismatch{{Namespace: "shop.orders", Range: "[{k: 1}, {k: 2})", SourceCount: 3, DestCount: 2, SampleIDs: []string{`{"$oid":"65f0a1b2c3d4e5f601234567"}`}}},
			Late:       []engine.LateWrites{{Shard: "rs1", Writes: 10000, AtLeast: true, First: at.Add(time.Minute), Namespaces: []string{"shop.orders", "shop.carts"}}}},
		Users: []engine.User{{Name: "app", DB: "admin", Roles: []string{"readWrite@shop"}}, {Name: "auditor", DB: "shop", IsRole: true}},
		Summary: &engine.Summary{FinishedAt: at.Add(time.Hour), Documents: 99, Bytes: 9900, OptimeGap: 7 * time.Second,
			Verification: "4 of 5 ranges", UsersToRecreate: []string{"app@admin"}, Notes: []string{"writes after the cutover were not copied"},
			Shards: []engine.ShardPosition{
				{Shard: "rs0", Phase: engine.Synced, AppliedUpTo: at.Add(50 * time.Minute), Consistent: true, Text: "shard rs0 applied every entry up to 09:50:00"},
				{Shard: "rs1", Phase: engine.ShardFailed, AppliedUpTo: at.Add(20 * time.Minute), Text: "shard rs1 failed and stopped at 09:20:00"},
			}},
		Cancelling: &engine.CancelRequest{At: at.Add(50 * time.Minute), From: engine.CuttingOver, OptimeGap: 7 * time.Second},
		// The continuous verification's progress, which a resumed Run goes on from.
		Continuous: &engine.ContinuousState{
			Shards:      []engine.ContinuousShard{{Shard: "rs0", T0: primitive.Timestamp{T: 100, I: 1}, Cursor: primitive.Timestamp{T: 160, I: 2}}},
			Destination: []engine.ShardTS{{Shard: "d0", TS: primitive.Timestamp{T: 161, I: 3}}},
			Namespaces: []engine.ComparedNamespace{
				{NS: "shop.orders", Ranges: 3, Documents: 50, Pending: []bson.RawValue{{Type: bson.TypeInt32, Value: []byte{7, 0, 0, 0}}},
					SeenAt: []engine.ShardTS{{Shard: "rs0", TS: primitive.Timestamp{T: 165, I: 1}}}, Persisting: []bson.RawValue{{Type: bson.TypeString, Value: []byte{2, 0, 0, 0, 'x', 0}}}},
				{NS: "shop.carts", Ranges: 1, Documents: 9},
				{NS: "shop.big", Ranges: 16, Documents: 70, ByRange: true, Units: []engine.ComparedRange{
					{Min: mustKey(bson.D{{Key: "k", Value: primitive.MinKey{}}}), Max: mustKey(bson.D{{Key: "k", Value: 5}}), Chunks: 16, Documents: 70}}},
			},
			Rechecked: 12,
		},
	}
	if err := cp.SaveRecord(rec); err != nil {
		t.Fatal(err)
	}
	_, oid, _ := bson.MarshalValue(primitive.ObjectID{1, 2, 3})
	shard := engine.ShardCheckpoint{
		Shard: "rs0", Phase: engine.CatchingUp,
		T0: primitive.Timestamp{T: 100, I: 1}, ConsistencyPoint: primitive.Timestamp{T: 150, I: 2}, Applied: primitive.Timestamp{T: 170, I: 3},
		TxnStart: primitive.Timestamp{T: 90, I: 4}, AppliedTerm: 6,
		Copied: map[string]initialsync.PartitionProgress{
			"shop.orders": {Done: true, LastID: bson.RawValue{Type: bson.TypeObjectID, Value: oid}, Docs: 50, Bytes: 5000},
			// A collection copied in _id ranges: each range keeps its bounds.
			"shop.items$0": {Max: bson.RawValue{Type: bson.TypeObjectID, Value: oid}, LastID: bson.RawValue{Type: bson.TypeObjectID, Value: oid}, Docs: 7},
			"shop.items$1": {Min: bson.RawValue{Type: bson.TypeObjectID, Value: oid}, Done: true},
		},
		History: []engine.Event{{At: at, Shard: "rs0", From: "pending", To: "copying", Reason: "copy started"}},
		DDLApplied: []replay.DDLCopy{{TS: primitive.Timestamp{T: 171, I: 1}, Key: oplog.DDLKey{1, 2, 3}}, {TS: primitive.Timestamp{T: 171, I: 1}, Key: oplog.DDLKey{4}},
			{TS: primitive.Timestamp{T: 172, I: 1}, Key: oplog.DDLKey{5}, Effect: replay.DDLEffect{Kind: oplog.DDLRename, NS: oplog.ParseNamespace("shop.tmp.agg_out.1"), To: oplog.ParseNamespace("shop.report"), UUID: "0123456789abcdef", DropTarget: true, DropTargetUUID: "fedcba9876543210"}},
			{TS: primitive.Timestamp{T: 173, I: 1}, Key: oplog.DDLKey{6}, Effect: replay.DDLEffect{Kind: oplog.DDLDropDatabase, NS: oplog.Namespace{DB: "old"}}}},
		// What the shard owned at T0, which its copy takes on a resume, and the move
		// that made it copy again.
		Owned: &prepare.Ownership{Primaries: map[string]string{"shop": "rs0"}, Collections: []prepare.OwnedCollection{{
			NS: "shop.orders", UUID: []byte("0123456789abcdef"), Key: bson.Raw(bsoncore.NewDocumentBuilder().AppendInt32("c", 1).Build()),
			Ranges: []prepare.OwnedRange{{Min: bson.Raw(bsoncore.NewDocumentBuilder().AppendMinKey("c").Build()), Max: bson.Raw(bsoncore.NewDocumentBuilder().AppendInt32("c", 7).Build())}},
		}}},
		Moved: "a chunk of shop.orders moved from shard rs1 to rs0",
		// Its oplog buffer as the save found it, shown on a resume before the
		// fetcher opens it.
		Buffered: engine.BufferedOplog{Bytes: 3 << 30, Entries: 340_000},
	}
	if err := cp.SaveShard(shard); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, path)
	got, shards, err := New(st, "m1").Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.State != engine.Syncing || len(got.History) != 3 || got.History[0].Reason != "checks passed" {
		t.Fatalf("state %s history %+v", got.State, got.History)
	}
	got.State, got.History = "", nil
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("record read back\n%+v\nwant\n%+v", got, rec)
	}
	if len(shards) != 1 || !reflect.DeepEqual(shards[0], shard) {
		t.Fatalf("shards read back\n%+v\nwant\n%+v", shards, shard)
	}
	// The settings the app saved are kept.
	if m, _ := st.Migration("m1"); m.Source.Hosts[0] != "src:27017" {
		t.Fatalf("settings lost: %+v", m.Source)
	}
}

func mustKey(d bson.D) shardkey.Key {
	b, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}

func TestStoreCheckpointsRefuseReservedNames(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	if err := st.SaveMigration(store.Migration{ID: "m1", State: "draft"}); err != nil {
		t.Fatal(err)
	}
	cp := New(st, "m1")
	if err := cp.SaveShard(engine.ShardCheckpoint{Shard: MetaShard, Phase: engine.Pending}); err == nil || !strings.Contains(err.Error(), "reserves") {
		t.Fatalf("a shard named %s: %v", MetaShard, err)
	}
	if err := cp.AppendEvent(engine.Event{Shard: "rs0", From: "draft", To: "draft"}); err == nil {
		t.Fatal("a shard's event went to the migration's history")
	}
}

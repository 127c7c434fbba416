package replay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/shard"
)

// replicaSetShard starts a one-shard sandbox whose shard has three members and
// returns the cluster, the shard's name, its members' addresses and a replica set
// connection to it, as the engine opens one.
func replicaSetShard(t *testing.T) (*sandbox.Cluster, string, []string, *mongo.Client) {
	t.Helper()
	ctx := context.Background()
	src, err := sandbox.Start(ctx, "source", sandbox.Options{Shards: 1, Members: 3, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	sh := src.Shards()[0]
	setName, list, _ := strings.Cut(sh.Host, "/")
	members := strings.Split(list, ",")
	client, err := topology.Connect(ctx, topology.Endpoint{Hosts: members, ReplicaSet: setName})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return src, sh.Name, members, client
}

// directMembers opens direct connections to members, as the engine's do.
func directMembers(t *testing.T) func(ctx context.Context, addr string) (*mongo.Client, error) {
	return func(ctx context.Context, addr string) (*mongo.Client, error) {
		c, err := topology.Connect(ctx, topology.Endpoint{Hosts: []string{addr}})
		if err == nil {
			t.Cleanup(func() { c.Disconnect(context.Background()) })
		}
		return c, err
	}
}

// Rule "read preference": the tail reads the oplog of the member the read
// preference chooses, and bounds what it hands on by that member's own majority
// commit point, not the primary's: a member can hold entries of a branch the set
// rolled back whose ts are below the primary's point.
func TestReadPreference_TailReadsTheChosenMemberBoundedByItsOwnCommitPoint(t *testing.T) {
	src, name, _, client := replicaSetShard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a broken tail must not hang the run
	defer cancel()
	router, err := mongo.Connect(ctx, options.Client().ApplyURI(src.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer router.Disconnect(ctx)
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := router.Database("db").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(0, 3)
	// Once every member is level, member 1 stops replicating; the set's majority
	// (members 0 and 2) moves on.
	var held []shard.Member
	for len(held) == 0 || held[1].Applied.TS != held[0].Applied.TS || held[2].Applied.TS != held[0].Applied.TS {
		if held, err = src.ShardMembers(name); err != nil || ctx.Err() != nil {
			t.Fatalf("the members never levelled: %v %v", err, ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := src.SetReplicationLag(name, 1, -1); err != nil {
		t.Fatal(err)
	}
	insert(3, 6)
	var setPoint primitive.Timestamp
	for !held[1].Applied.TS.Before(setPoint) { // member 2 applies the new entries
		op, err := src.MajorityOpTime(name)
		if err != nil || ctx.Err() != nil {
			t.Fatalf("the set's commit point never passed member 1's %v: %v %v", held[1].Applied.TS, err, ctx.Err())
		}
		setPoint = op.TS
		time.Sleep(10 * time.Millisecond)
	}
	before, err := src.ShardReads(name)
	if err != nil {
		t.Fatal(err)
	}

	reads := topology.ReadPreference{Mode: "secondary", Tags: []map[string]string{{"member": "1"}}}
	source := replay.NewMongoSource(client, replay.MongoSourceOptions{Reads: &reads, Member: directMembers(t), MaxAwait: 50 * time.Millisecond})
	cur, err := source.Tail(ctx, primitive.Timestamp{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	// Every entry up to member 1's newest, none past it: it is the member read.
	var last primitive.Timestamp
	for last != held[1].Applied.TS {
		batch, err := cur.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range batch {
			tt, ii, _ := raw.Lookup("ts").TimestampOK()
			last = primitive.Timestamp{T: tt, I: ii}
		}
		if held[1].Applied.TS.Before(last) {
			t.Fatalf("the tail read %v, past member 1's newest entry %v: it did not read member 1", last, held[1].Applied.TS)
		}
	}
	bound, err := source.Majority(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bound.TS != held[1].Applied.TS {
		t.Fatalf("the bound is %v, want member 1's own commit point %v (the set's is %v)", bound.TS, held[1].Applied.TS, setPoint)
	}
	after, err := src.ShardReads(name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range after {
		got := after[i].Oplog - before[i].Oplog
		if (i == 1) != (got > 0) {
			t.Errorf("member %d served %d oplog getMores; want them all on member 1: %v", i, got, after)
		}
	}
}

// A member that changes role is left: mode secondary on a member that became
// primary (or a stepped-down primary in mode primary) is ErrMemberChanged, which
// the replay retries, choosing again.
func TestReadPreference_AMemberThatChangedRoleIsLeft(t *testing.T) {
	src, name, _, client := replicaSetShard(t)
	ctx := context.Background()
	reads := topology.ReadPreference{Mode: "primary"}
	source := replay.NewMongoSource(client, replay.MongoSourceOptions{Reads: &reads, Member: directMembers(t)})
	cur, err := source.Tail(ctx, primitive.Timestamp{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	if _, err := source.Majority(ctx); err != nil {
		t.Fatalf("the primary's commit point: %v", err)
	}
	if _, err := src.StepDown(name, false); err != nil {
		t.Fatal(err)
	}
	_, err = source.Majority(ctx)
	if !errors.Is(err, topology.ErrMemberChanged) || !strings.Contains(err.Error(), "a secondary now, and the read preference is primary") {
		t.Fatalf("after a stepdown: %v, want ErrMemberChanged saying so", err)
	}
	// The next tail follows the new primary, once the driver has seen it (until
	// then the choice finds the old one changed: ErrMemberChanged, which the replay
	// retries as this does; a loaded machine made the first try fail).
	cur2, err := source.Tail(ctx, primitive.Timestamp{})
	for deadline := time.Now().Add(time.Minute); errors.Is(err, topology.ErrMemberChanged) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		cur2, err = source.Tail(ctx, primitive.Timestamp{})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cur2.Close(ctx)
	if _, err := source.Majority(ctx); err != nil {
		t.Fatalf("the new primary's commit point: %v", err)
	}
}

package validate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/sandbox"
)

// The read preference check on 3-member shards: a member the preference reads
// that is over validate.MaxReadLag behind its primary is a warning naming it; a
// preference no member matches fails, saying what to choose.
func TestReadPreferenceCheckOnReplicaSetShards(t *testing.T) {
	ctx, src, router, dst := replicaSetSource(t, "holds a member's replication")
	for _, sh := range src.Shards() {
		if err := src.SetReplicationLag(sh.Name, 1, -1); err != nil {
			t.Fatal(err)
		}
	}
	// Writes until a shard's member 1, held, is past MaxReadLag behind its primary.
	var behind string
	for i := 0; behind == ""; i++ {
		if _, err := router.Database("rp").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
		for _, sh := range src.Shards() {
			ms, err := src.ShardMembers(sh.Name)
			if err != nil {
				t.Fatal(err)
			}
			if ms[0].Applied.Wall.Sub(ms[1].Applied.Wall) > validate.MaxReadLag+time.Second {
				behind = ms[1].Addr
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	endpoint := func(query string) topology.Endpoint {
		return topology.Endpoint{URI: src.URI() + "?" + query, Timeout: testTimeout}
	}
	r := run(t, endpoint("readPreference=secondary&readPreferenceTags=member:1"), dst)
	expect(t, r, validate.IDSourceReadPreference, validate.Warning, "member "+behind+" is", "behind its primary", "|", "choose primary or nearest")
	r = run(t, endpoint("readPreference=secondary&readPreferenceTags=member:2"), dst)
	expect(t, r, validate.IDSourceReadPreference, validate.Passed, "secondary (tags member:2): 2 members answered in 2 shards")
	r = run(t, endpoint("readPreference=secondary&readPreferenceTags=member:9"), dst)
	expect(t, r, validate.IDSourceReadPreference, validate.Failed, "has no member secondary (tags member:9) reads", "tags member:1",
		"|", "Choose the read preference primary or nearest")
	if f, _ := r.Finding(validate.IDSourceReadPreference); !strings.Contains(f.Detail, src.Shards()[0].Name) {
		t.Errorf("the failure does not name the shard: %s", f.Detail)
	}
}

// Each shard judged with its own read preference on 3-member shards: the shard
// whose own preference reads its member 1, held past validate.MaxReadLag, is the one
// the warning names (the other shard, read from its primary, is not); a shard whose
// own preference no member matches fails, named; a shard the source lacks fails.
func TestReadPreferenceOfEachShardOnReplicaSetShards(t *testing.T) {
	if _, _, real := realPair(); real {
		t.Skip("holds a member's replication: sandbox only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, err := sandbox.Start(ctx, "source", sandbox.Options{Shards: 2, Members: 3, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, dst := goodPair(t)
	router, err := mongo.Connect(ctx, options.Client().ApplyURI(src.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer router.Disconnect(context.Background())
	for _, sh := range src.Shards() {
		if err := src.SetReplicationLag(sh.Name, 1, -1); err != nil {
			t.Fatal(err)
		}
	}
	// Writes until a shard's member 1, held, is past MaxReadLag behind its primary.
	var lagging, behind, other string
	for i := 0; behind == ""; i++ {
		if _, err := router.Database("rp").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
		for _, sh := range src.Shards() {
			ms, err := src.ShardMembers(sh.Name)
			if err != nil {
				t.Fatal(err)
			}
			if ms[0].Applied.Wall.Sub(ms[1].Applied.Wall) > validate.MaxReadLag+time.Second {
				lagging, behind = sh.Name, ms[1].Addr
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, sh := range src.Shards() {
		if sh.Name != lagging {
			other = sh.Name
		}
	}
	endpoint := func(shards map[string]string) topology.Endpoint {
		return topology.Endpoint{URI: src.URI() + "?readPreference=primary", Timeout: testTimeout, ShardReadPreferences: shards}
	}
	r := run(t, endpoint(map[string]string{lagging: "secondary;member:1"}), dst)
	expect(t, r, validate.IDSourceReadPreference, validate.Warning, "shard "+lagging+" member "+behind+" is", "behind its primary",
		"|", "--shard-read-preference")
	if f, _ := r.Finding(validate.IDSourceReadPreference); strings.Contains(f.Detail, other) {
		t.Errorf("the warning names shard %s, read from its primary: %s", other, f.Detail)
	}
	r = run(t, endpoint(map[string]string{other: "secondary;member:2"}), dst)
	expect(t, r, validate.IDSourceReadPreference, validate.Passed, "primary; shard "+other+": secondary (tags member:2): 2 members answered in 2 shards")
	r = run(t, endpoint(map[string]string{other: "secondary;member:9"}), dst)
	expect(t, r, validate.IDSourceReadPreference, validate.Failed, "shard "+other+" has no member secondary (tags member:9) reads")
	r = run(t, endpoint(map[string]string{"shard9": "secondary"}), dst)
	expect(t, r, validate.IDSourceReadPreference, validate.Failed, "shard shard9, which the source does not have", "|", "Correct the shard's name")
}

// The oplog window check on 3-member shards whose member 1 has a much smaller oplog
// than the others (rolled over after a burst of writes): read from member 1, each
// shard's oplog finding names member 1 and its window; read from the primary, it
// names no member. Discovery reads each member's own oplog.
func TestOplogWindowOfTheMembersReadOnReplicaSetShards(t *testing.T) {
	ctx, src, router, dst := replicaSetSource(t, "shrinks a member's oplog")
	const small = 64 << 10
	small1 := map[string]string{} // shard -> member 1's address
	for _, sh := range src.Shards() {
		if err := src.SetMemberOplogSize(sh.Name, 1, small); err != nil {
			t.Fatal(err)
		}
		ms, err := src.ShardMembers(sh.Name)
		if err != nil {
			t.Fatal(err)
		}
		small1[sh.Name] = ms[1].Addr
	}
	pad := strings.Repeat("x", 1000)
	for i := range 400 { // about 400 KB on the shards: member 1's oplogs roll over
		if _, err := router.Database("rp").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: pad}}); err != nil {
			t.Fatal(err)
		}
	}
	endpoint := func(query string) topology.Endpoint {
		return topology.Endpoint{URI: src.URI() + "?" + query, Timeout: testTimeout}
	}
	r := run(t, endpoint("readPreference=secondary&readPreferenceTags=member:1"), dst)
	f, _ := r.Finding(validate.IDOplogWindow)
	for shard, addr := range small1 {
		if !strings.Contains(f.Detail, "on member "+addr+" holds") {
			t.Errorf("reading member 1 (%s) of shard %s, the oplog finding does not name it: %s", addr, shard, f.Detail)
		}
	}
	for _, sh := range r.Source.Shards {
		for _, m := range sh.Members {
			if m.Host == small1[sh.Name] && m.Oplog.MaxBytes != small {
				t.Errorf("shard %s member %s: oplog of %d bytes read, want %d", sh.Name, m.Host, m.Oplog.MaxBytes, small)
			}
		}
	}
	r = run(t, endpoint("readPreference=primary"), dst)
	if f, _ := r.Finding(validate.IDOplogWindow); strings.Contains(f.Detail, "on member") {
		t.Errorf("reading the primaries, the oplog finding names a member: %s", f.Detail)
	}
}

// replicaSetSource starts a sandbox source of two 3-member shards, connects to its
// router, and gives the destination to validate against; all end with the test.
// what is what the test does to a member that only the sandbox allows: on a real
// pair (SHARDLIFT_TEST_SOURCE_URI) the test is skipped, saying so.
func replicaSetSource(t *testing.T, what string) (context.Context, *sandbox.Cluster, *mongo.Client, topology.Endpoint) {
	t.Helper()
	if _, _, real := realPair(); real {
		t.Skip(what + ": sandbox only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	src, err := sandbox.Start(ctx, "source", sandbox.Options{Shards: 2, Members: 3, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	_, dst := goodPair(t)
	router, err := mongo.Connect(ctx, options.Client().ApplyURI(src.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { router.Disconnect(context.Background()) })
	return ctx, src, router, dst
}

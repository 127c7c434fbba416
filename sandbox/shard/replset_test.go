package shard

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readconcern"
	"go.mongodb.org/mongo-driver/mongo/readpref"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// connectMember opens a direct connection to member i of the set, reading from it
// whatever its role.
func connectMember(t testing.TB, f *Front, i int) *mongo.Client {
	t.Helper()
	o := options.Client().ApplyURI("mongodb://" + f.MemberAddrs()[i]).SetDirect(true).
		SetReadPreference(readpref.PrimaryPreferred()).SetRetryWrites(false).
		SetServerSelectionTimeout(5 * time.Second)
	c, err := mongo.Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// connectSet opens a replica set connection and waits until the driver found the
// primary by hello. It waits the driver's default 30 s: one CI run on a loaded
// machine saw no member's first hello answered within 10 s (an idle 3-member front
// uses 13 ms of CPU in 5 s, and 60 runs beside make test answered at once); should
// it happen again, the goroutines in the log say where the hellos were.
func connectSet(t testing.TB, f *Front) *mongo.Client {
	t.Helper()
	o := options.Client().SetHosts(f.MemberAddrs()).SetReplicaSet(f.SetName())
	c, err := mongo.Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	if err := c.Ping(context.Background(), readpref.Primary()); err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("the set's primary: %v\n%s", err, buf[:runtime.Stack(buf, true)])
	}
	return c
}

// docsOf returns a collection's documents sorted by _id, as extended JSON.
func docsOf(t testing.TB, c *mongo.Client, db, coll string, rc *readconcern.ReadConcern) []string {
	t.Helper()
	opts := options.Collection()
	if rc != nil {
		opts.SetReadConcern(rc)
	}
	cur, err := c.Database(db).Collection(coll, opts).Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(2))
	if err != nil {
		t.Fatalf("read %s.%s: %v", db, coll, err)
	}
	var out []string
	for cur.Next(context.Background()) {
		out = append(out, cur.Current.String())
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("read %s.%s: %v", db, coll, err)
	}
	return out
}

func helloOf(t testing.TB, c *mongo.Client) bson.Raw {
	t.Helper()
	r, err := c.Database("admin").RunCommand(context.Background(), bson.D{{Key: "hello", Value: 1}}).Raw()
	if err != nil {
		t.Fatalf("hello: %v", err)
	}
	return r
}

func tsAt(t testing.TB, r bson.Raw, path ...string) primitive.Timestamp {
	t.Helper()
	ts, i, ok := r.Lookup(path...).TimestampOK()
	if !ok {
		t.Fatalf("no timestamp at %v in %s", path, r)
	}
	return primitive.Timestamp{T: ts, I: i}
}

// A secondary applies what the primary writes: its data and its oplog end up the
// primary's.
func TestSecondariesApplyThePrimarysWrites(t *testing.T) {
	f := startFront(t, Config{Members: 3})
	p := connectMember(t, f, 0)
	ctx := context.Background()
	coll := p.Database("app").Collection("items")
	for i := range 5 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "n", Value: i}, {Key: "tags", Value: bson.A{"a", "b"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 10}}}, {Key: "$pop", Value: bson.D{{Key: "tags", Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: 3}}, bson.D{{Key: "x", Value: "replaced"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Database("app").Collection("gone").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Database("app").Collection("gone").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	want := docsOf(t, p, "app", "items", nil)
	last := lastTS(t, p)
	for i := 1; i < 3; i++ {
		s := connectMember(t, f, i)
		waitFor(t, fmt.Sprintf("member %d to apply %v", i, last), func() bool { return lastTS(t, s) == last })
		if got := docsOf(t, s, "app", "items", nil); !slices.Equal(got, want) {
			t.Errorf("member %d holds\n%v\nthe primary\n%v", i, got, want)
		}
		names, err := s.Database("app").ListCollectionNames(ctx, bson.D{})
		if err != nil || slices.Contains(names, "gone") {
			t.Errorf("member %d lists %v (%v): the dropped collection should be gone", i, names, err)
		}
		if got, want := len(entriesAfter(t, s, primitive.Timestamp{})), len(entriesAfter(t, p, primitive.Timestamp{})); got != want {
			t.Errorf("member %d's oplog has %d entries, the primary's %d", i, got, want)
		}
	}
}

// hello and replSetGetStatus describe the set as a real member does.
func TestMembersReportTheSet(t *testing.T) {
	f := startFront(t, Config{Members: 3})
	addrs := f.MemberAddrs()
	if _, err := connectMember(t, f, 0).Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c := connectMember(t, f, i)
		h := helloOf(t, c)
		if got := h.Lookup("setName").StringValue(); got != "test-shard0" {
			t.Errorf("member %d: setName %q", i, got)
		}
		hosts, _ := h.Lookup("hosts").Array().Values()
		if len(hosts) != 3 {
			t.Errorf("member %d: hosts %v", i, hosts)
		}
		if got := h.Lookup("me").StringValue(); got != addrs[i] {
			t.Errorf("member %d: me %q, want %q", i, got, addrs[i])
		}
		if got := h.Lookup("primary").StringValue(); got != addrs[0] {
			t.Errorf("member %d: primary %q, want %q", i, got, addrs[0])
		}
		if w, s := h.Lookup("isWritablePrimary").Boolean(), h.Lookup("secondary").Boolean(); w != (i == 0) || s != (i != 0) {
			t.Errorf("member %d: isWritablePrimary %v secondary %v", i, w, s)
		}
		if _, ok := h.Lookup("electionId").ObjectIDOK(); ok != (i == 0) {
			t.Errorf("member %d: electionId present %v", i, ok)
		}
		tsAt(t, h, "lastWrite", "opTime", "ts")
		tsAt(t, h, "lastWrite", "majorityOpTime", "ts")

		st, err := c.Database("admin").RunCommand(context.Background(), bson.D{{Key: "replSetGetStatus", Value: 1}}).Raw()
		if err != nil {
			t.Fatalf("member %d: replSetGetStatus: %v", i, err)
		}
		if got := st.Lookup("myState").Int32(); got != map[bool]int32{true: 1, false: 2}[i == 0] {
			t.Errorf("member %d: myState %d", i, got)
		}
		members, _ := st.Lookup("members").Array().Values()
		if len(members) != 3 {
			t.Fatalf("member %d: members %v", i, members)
		}
		for j, m := range members {
			d := m.Document()
			if got, want := d.Lookup("stateStr").StringValue(), map[bool]string{true: "PRIMARY", false: "SECONDARY"}[j == 0]; got != want {
				t.Errorf("member %d sees member %d as %s, want %s", i, j, got, want)
			}
			if self, _ := d.Lookup("self").BooleanOK(); self != (i == j) {
				t.Errorf("member %d: member %d self %v", i, j, self)
			}
			if j != 0 && d.Lookup("syncSourceHost").StringValue() != addrs[0] {
				t.Errorf("member %d: member %d syncs from %s", i, j, d.Lookup("syncSourceHost"))
			}
		}
		tsAt(t, st, "optimes", "lastCommittedOpTime", "ts")
	}
}

// A secondary refuses writes, and reads from a client that asked for the primary.
func TestSecondaryRefusesWritesAndPrimaryOnlyReads(t *testing.T) {
	f := startFront(t, Config{Members: 2})
	s := connectMember(t, f, 1)
	_, err := s.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "x", Value: 1}})
	var ce mongo.WriteException
	var cmdErr mongo.CommandError
	switch {
	case errors.As(err, &cmdErr) && cmdErr.Code == 10107:
	case errors.As(err, &ce) && ce.HasErrorCode(10107):
	default:
		t.Errorf("insert on a secondary: %v, want NotWritablePrimary (10107)", err)
	}
	// The refusal carries the member's topologyVersion: the driver keeps it as a
	// secondary rather than unknown until its next heartbeat, and reads go on.
	if err := s.Database("app").RunCommand(context.Background(), bson.D{{Key: "find", Value: "c"}}).Err(); err != nil {
		t.Errorf("a read after the refused write: %v", err)
	}
	// Drivers connected to one member read with primaryPreferred: the find comes as
	// an old client's would, asking for the primary.
	body, _ := bson.Marshal(bson.D{{Key: "find", Value: "c"}, {Key: "$readPreference", Value: bson.D{{Key: "mode", Value: "primary"}}}, {Key: "$db", Value: "app"}})
	nodes, _ := f.running()
	reply := nodes[1].handle(nil, &wire.Command{Name: "find", DB: "app", Body: body})
	if code, _ := reply.Lookup("code").AsInt32OK(); code != 13435 {
		t.Errorf("a primary-only find on a secondary: %s, want NotPrimaryNoSecondaryOk (13435)", reply)
	}
}

// The majority commit point is where a majority of members are: it waits for the
// secondaries, and majority reads see the data as of it.
func TestMajorityPointFollowsTheSecondaries(t *testing.T) {
	f := startFront(t, Config{Members: 3})
	p := connectMember(t, f, 0)
	ctx := context.Background()
	coll := p.Database("app").Collection("c")
	// Enough documents that a majority read (batches of 2) needs getMores.
	for _, id := range []int{100, 101, 102, 103, 104, 1} {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
			t.Fatal(err)
		}
	}
	first := lastTS(t, p)
	waitFor(t, "the majority to reach the first insert", func() bool {
		return tsAt(t, helloOf(t, p), "lastWrite", "majorityOpTime", "ts") == first
	})

	// One secondary held: the other still makes a majority with the primary.
	if err := f.SetLag(1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	second := lastTS(t, p)
	waitFor(t, "the majority to reach the second insert", func() bool {
		return tsAt(t, helloOf(t, p), "lastWrite", "majorityOpTime", "ts") == second
	})

	// Both held: the majority point stays, majority reads do not see what follows.
	if err := f.SetLag(-1, -1); err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 7; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := tsAt(t, helloOf(t, p), "lastWrite", "majorityOpTime", "ts"); got != second {
		t.Errorf("majorityOpTime %v with both secondaries held, want %v", got, second)
	}
	if got := docsOf(t, p, "app", "c", readconcern.Majority()); len(got) != 7 {
		t.Errorf("a majority read sees %d documents, want the 7 a majority holds: %v", len(got), got)
	}
	if got := docsOf(t, p, "app", "c", readconcern.Local()); len(got) != 12 {
		t.Errorf("a local read sees %d documents, want 12", len(got))
	}
	// Released, the majority catches up.
	if err := f.SetLag(-1, 0); err != nil {
		t.Fatal(err)
	}
	last := lastTS(t, p)
	waitFor(t, "the majority to catch up", func() bool {
		return tsAt(t, helloOf(t, p), "lastWrite", "majorityOpTime", "ts") == last
	})
	if got := docsOf(t, p, "app", "c", readconcern.Majority()); len(got) != 12 {
		t.Errorf("a majority read sees %d documents once the secondaries caught up, want 12", len(got))
	}
}

// A read with afterClusterTime waits until its member has applied that time.
func TestAfterClusterTimeWaitsForTheMember(t *testing.T) {
	f := startFront(t, Config{Members: 2})
	p := connectMember(t, f, 0)
	s := connectMember(t, f, 1)
	ctx := context.Background()
	if err := f.SetLag(1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	ts := lastTS(t, p)
	find := bson.D{{Key: "find", Value: "c"}, {Key: "readConcern", Value: bson.D{{Key: "afterClusterTime", Value: ts}}}, {Key: "maxTimeMS", Value: 200}}
	err := s.Database("app").RunCommand(ctx, find).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 50 {
		t.Fatalf("afterClusterTime past a held secondary: %v, want MaxTimeMSExpired", err)
	}
	done := make(chan error, 1)
	go func() {
		find := bson.D{{Key: "find", Value: "c"}, {Key: "readConcern", Value: bson.D{{Key: "afterClusterTime", Value: ts}}}}
		r, err := s.Database("app").RunCommand(ctx, find).Raw()
		if err == nil {
			if docs, _ := r.Lookup("cursor", "firstBatch").Array().Values(); len(docs) != 1 {
				err = fmt.Errorf("found %d documents, want 1", len(docs))
			}
		}
		done <- err
	}()
	if err := f.SetLag(1, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("afterClusterTime once the secondary applied it: %v", err)
	}
}

// A shard started with more members than before copies its data to the new ones; a
// secondary that had not applied everything when the set stopped catches up at the
// next start (its entries' documents fetched from the primary), and the primary stays
// the one that was.
func TestSetRestartsWithItsSecondariesLevel(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	one, err := Start(Config{Name: "test-shard0", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := connectMember(t, one, 0)
	for i := range 3 {
		if _, err := c.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: 0}}); err != nil {
			t.Fatal(err)
		}
	}
	c.Disconnect(ctx)
	if err := one.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := Start(Config{Name: "test-shard0", Dir: dir, Members: 3})
	if err != nil {
		t.Fatal(err)
	}
	// (Clients of a closed shard take seconds to disconnect: these go first.)
	var members []*mongo.Client
	for i := range 3 {
		members = append(members, connectMember(t, f, i))
	}
	p := members[0]
	want := docsOf(t, p, "app", "c", nil)
	for i := 1; i < 3; i++ {
		if got := docsOf(t, members[i], "app", "c", nil); !slices.Equal(got, want) {
			t.Errorf("new member %d holds %v, want the primary's %v", i, got, want)
		}
	}
	// Member 2 misses updates, then the set stops after a stepdown to member 1.
	if err := f.SetLag(2, -1); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := p.Database("app").Collection("c").UpdateOne(ctx, bson.D{{Key: "_id", Value: i}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "v", Value: i + 1}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.StepDown(false); err != nil {
		t.Fatal(err)
	}
	want = docsOf(t, members[1], "app", "c", nil)
	for _, m := range members {
		m.Disconnect(ctx)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f = startFront(t, Config{Name: "test-shard0", Dir: dir, Members: 3})
	ms, err := f.Members()
	if err != nil {
		t.Fatal(err)
	}
	if ms[1].State != "PRIMARY" {
		t.Errorf("after the restart: %+v, want member 1 primary still", ms)
	}
	for i := range 3 {
		if ms[i].Applied.TS != ms[1].Applied.TS {
			t.Errorf("member %d is at %v after the restart, the primary at %v", i, ms[i].Applied, ms[1].Applied)
		}
		if got := docsOf(t, connectMember(t, f, i), "app", "c", nil); !slices.Equal(got, want) {
			t.Errorf("member %d holds %v after the restart, want %v", i, got, want)
		}
	}
}

// New members of a shard whose oplog no longer holds its first entries get the data by
// an initial sync, not from the oplog.
func TestNewMembersCopyTheDataTheOplogLost(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// A small oplog: the create and the first inserts roll off.
	one, err := Start(Config{Name: "test-shard0", Dir: dir, OplogSize: 600})
	if err != nil {
		t.Fatal(err)
	}
	c := connectMember(t, one, 0)
	for i := range 8 {
		if _, err := c.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	c.Disconnect(ctx)
	if err := one.Close(); err != nil {
		t.Fatal(err)
	}
	f := startFront(t, Config{Name: "test-shard0", Dir: dir, Members: 3, OplogSize: 600})
	want := docsOf(t, connectMember(t, f, 0), "app", "c", nil)
	if len(want) != 8 {
		t.Fatalf("the primary holds %v", want)
	}
	for i := 1; i < 3; i++ {
		if got := docsOf(t, connectMember(t, f, i), "app", "c", nil); !slices.Equal(got, want) {
			t.Errorf("new member %d holds %v, want the primary's %v", i, got, want)
		}
	}
}

// A replica set client reading with readPreference secondary is served by a
// secondary: it sees what the secondaries applied, not what only the primary has.
func TestSecondaryReadPreferenceReadsASecondary(t *testing.T) {
	f := startFront(t, Config{Members: 2})
	c := connectSet(t, f)
	ctx := context.Background()
	if _, err := c.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	p := connectMember(t, f, 0)
	s := connectMember(t, f, 1)
	last := lastTS(t, p)
	waitFor(t, "the secondary to apply the insert", func() bool { return lastTS(t, s) == last })
	if err := f.SetLag(1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	fromSecondary := c.Database("app").Collection("c", options.Collection().SetReadPreference(readpref.Secondary()))
	if n, err := fromSecondary.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("a secondary read counts %d (%v), want the 1 document the secondary holds", n, err)
	}
	if n, err := c.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
		t.Errorf("a primary read counts %d (%v), want 2", n, err)
	}
}

// A set stops while its secondaries have a backlog to apply: their replication ends
// with the node instead of retrying its cancelled writes forever.
func TestSetStopsWhileSecondariesApply(t *testing.T) {
	f, err := Start(Config{Name: "test-shard0", Dir: t.TempDir(), Members: 3})
	if err != nil {
		t.Fatal(err)
	}
	c := connectMember(t, f, 0)
	if err := f.SetLag(-1, -1); err != nil {
		t.Fatal(err)
	}
	docs := make([]any, 3000)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}}
	}
	if _, err := c.Database("app").Collection("c").InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(context.Background())
	if err := f.SetLag(-1, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A secondary refetching a document from its primary (a transaction's or an update's
// apply, a rollback) reads the primary's rows and decodes them itself: the primary's
// workbench and fetched rows belong to the primary's write lock holder,
// and a secondary using them raced the primary's writes (a user's sandbox died of
// "concurrent map writes" in fetchByID under a load with transactions).
func TestSecondaryRefetchLeavesThePrimarysWorkbenchAlone(t *testing.T) {
	f := startFront(t, Config{Members: 3})
	p := connectMember(t, f, 0)
	ctx := context.Background()
	coll := p.Database("app").Collection("items")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(42)}, {Key: "n", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: int64(42)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 2}}}}); err != nil {
		t.Fatal(err)
	}
	last := lastTS(t, p)
	s := connectMember(t, f, 1)
	waitFor(t, "member 1 to apply the update", func() bool { return lastTS(t, s) == last })
	f.mu.RLock()
	primary, secondary := f.mu.nodes[0], f.mu.nodes[1]
	f.mu.RUnlock()
	primary.writeMu.Lock()
	trips := primary.be.bench.trips.Load()
	primary.writeMu.Unlock()
	idType, idData, _ := bson.MarshalValue(int64(42))
	secondary.writeMu.Lock()
	err := secondary.refetch(ctx, primary, "app", "items", bson.RawValue{Type: idType, Value: idData})
	secondary.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := primary.be.bench.trips.Load() - trips; n != 0 {
		t.Errorf("the refetch sent %d requests to the primary's workbench; want none", n)
	}
	if got, want := docsOf(t, s, "app", "items", nil), docsOf(t, p, "app", "items", nil); !slices.Equal(got, want) {
		t.Errorf("after the refetch member 1 holds %v, the primary %v", got, want)
	}
}

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// End-to-end tests of what a live source does during a migration: a shard key change
// that moves a document between shards, orphans a chunk move left behind, DDL, an oplog
// that rolls over. Each ends with source and destination equal, exact BSON, namespace
// by namespace (sameEverything).

// chunk is one config.chunks entry.
type chunk struct {
	Min   bson.Raw `bson:"min"`
	Max   bson.Raw `bson:"max"`
	Shard string   `bson:"shard"`
}

// chunks reads a sharded collection's chunks from the source's config database.
func (e *e2e) chunks(ns string) []chunk {
	e.t.Helper()
	ctx := context.Background()
	config := e.srcC.Database("config")
	var coll struct {
		UUID bson.RawValue `bson:"uuid"`
	}
	if err := config.Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: ns}}).Decode(&coll); err != nil {
		e.t.Fatalf("config.collections %s: %v", ns, err)
	}
	filter := bson.D{{Key: "ns", Value: ns}} // until 4.4; by uuid from 5.0
	if !coll.UUID.IsZero() {
		filter = bson.D{{Key: "$or", Value: bson.A{filter, bson.D{{Key: "uuid", Value: coll.UUID}}}}}
	}
	cur, err := config.Collection("chunks").Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "min", Value: 1}}))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []chunk
	if err := cur.All(ctx, &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// shardClients connects to every shard of a cluster directly (what a mongos hides:
// orphans, duplicates).
func (e *e2e) shardClients(c *mongo.Client, ep topology.Endpoint) map[string]*mongo.Client {
	e.t.Helper()
	ctx := context.Background()
	var reply struct {
		Shards []struct {
			ID   string `bson:"_id"`
			Host string `bson:"host"`
		} `bson:"shards"`
	}
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "listShards", Value: 1}}).Decode(&reply); err != nil {
		e.t.Fatalf("listShards: %v", err)
	}
	out := map[string]*mongo.Client{}
	for _, sh := range reply.Shards {
		set, hosts, err := topology.ParseHostString(sh.Host)
		if err != nil {
			e.t.Fatal(err)
		}
		client, err := topology.Connect(ctx, ep.ForHosts(hosts, set))
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { client.Disconnect(context.Background()) })
		out[sh.ID] = client
	}
	return out
}

// sameEverything compares every user namespace of both clusters, document for
// document in _id order, exact BSON, and checks that the destination's shards hold
// each sharded seed collection's documents once (a mongos hides duplicates and
// orphans). It returns the number of documents compared.
func (e *e2e) sameEverything() int {
	e.t.Helper()
	ctx := context.Background()
	src, dst := e.userNamespaces(e.srcC), e.userNamespaces(e.dstC)
	if !slices.Equal(src, dst) {
		e.t.Errorf("namespaces differ:\n source      %v\n destination %v", src, dst)
	}
	total := 0
	for _, ns := range src {
		db, coll, _ := strings.Cut(ns, ".")
		a, b := e.all(ctx, e.srcC, db, coll), e.all(ctx, e.dstC, db, coll)
		if len(a) != len(b) {
			e.t.Errorf("%s: %d documents on the source, %d on the destination", ns, len(a), len(b))
		}
		for i := range min(len(a), len(b)) {
			if !bytes.Equal(a[i], b[i]) {
				e.t.Errorf("%s: document %d differs:\n source %s\n dest   %s", ns, i, a[i], b[i])
				break
			}
		}
		total += len(a)
	}
	shards := e.shardClients(e.dstC, e.dst)
	for _, c := range seed.Collections() {
		if c.Key == nil {
			continue
		}
		want, err := e.srcC.Database(c.DB).Collection(c.Name).CountDocuments(ctx, bson.D{})
		if err != nil {
			e.t.Fatal(err)
		}
		var held int64
		for _, sc := range shards {
			n, err := sc.Database(c.DB).Collection(c.Name).CountDocuments(ctx, bson.D{})
			if err != nil {
				e.t.Fatal(err)
			}
			held += n
		}
		if held != want {
			e.t.Errorf("%s: the destination's shards hold %d documents, the source %d: duplicates or orphans on the destination", c.Namespace(), held, want)
		}
	}
	return total
}

// indexKeys lists a collection's indexes as "name key", sorted.
func (e *e2e) indexKeys(c *mongo.Client, ns string) []string {
	db, coll, _ := strings.Cut(ns, ".")
	var out []string
	for _, spec := range e.indexes(context.Background(), c, db, coll) {
		name, _ := spec.Lookup("name").StringValueOK()
		out = append(out, name+" "+spec.Lookup("key").String())
	}
	slices.Sort(out)
	return out
}

// A document whose shard key changes moves between shards; a chunk moved before the
// migration left its documents behind as orphans, then changed on the new owner; and
// during the sync collections are created, renamed and dropped and indexes created
// and dropped, all while a load runs. The destination ends equal to the source.
func TestSandboxShardKeyMovesOrphansAndDDLDuringTheSyncEndEqual(t *testing.T) {
	e := startE2EWith(t, 1000, "moveChunk that leaves orphans", func(o *sandbox.Options) { o.LeaveOrphans = true })
	ctx := context.Background()
	admin := e.srcC.Database("admin")

	// Orphans: the first chunk of inventory.items moves to the other shard, its
	// documents stay behind on the donor, then change on the recipient.
	items := e.chunks("inventory.items")
	first := items[0]
	to := items[len(items)-1].Shard
	if first.Shard == to {
		t.Fatalf("inventory.items has every chunk on %s: no move to make", to)
	}
	maxSKU := first.Max.Lookup("sku")
	if err := admin.RunCommand(ctx, bson.D{{Key: "moveChunk", Value: "inventory.items"}, {Key: "bounds", Value: bson.A{first.Min, first.Max}}, {Key: "to", Value: to}}).Err(); err != nil {
		t.Fatal(err)
	}
	inRange := bson.D{{Key: "sku", Value: bson.D{{Key: "$lt", Value: maxSKU}}}}
	res, err := e.srcC.Database("inventory").Collection("items").UpdateMany(ctx, inRange, bson.D{{Key: "$set", Value: bson.D{{Key: "movedBy", Value: "e2e"}}}})
	if err != nil || res.ModifiedCount == 0 {
		t.Fatalf("update the moved documents: %v (%+v)", err, res)
	}
	// Some moved documents are deleted on the recipient: copying the orphans would
	// bring them back.
	items5, err := e.srcC.Database("inventory").Collection("items").Find(ctx, inRange, options.Find().SetLimit(5).SetProjection(bson.D{{Key: "sku", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var gone []bson.D
	if err := items5.All(ctx, &gone); err != nil || len(gone) != 5 {
		t.Fatalf("read 5 moved documents: %v (%d)", err, len(gone))
	}
	for _, d := range gone {
		if _, err := e.srcC.Database("inventory").Collection("items").DeleteOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	orphans, err := e.shardClients(e.srcC, e.src)[first.Shard].Database("inventory").Collection("items").CountDocuments(ctx, inRange)
	if err != nil || orphans == 0 {
		t.Fatalf("no orphans left on %s (%v): the test would prove nothing", first.Shard, err)
	}
	t.Logf("%d orphans of inventory.items on %s, their documents changed (5 deleted) on %s", orphans, first.Shard, to)

	e.startLoad(100)
	// The order whose shard key changes below, out of the load's sample of keys (read
	// when it started): no load write can delete it meanwhile.
	coll := e.srcC.Database("shop").Collection("orders")
	firstOrder, err := coll.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "customerId", Value: 1}, {Key: "_id", Value: 1}})).Raw()
	if err != nil {
		t.Fatal(err)
	}
	movedKey := bson.D{{Key: "customerId", Value: firstOrder.Lookup("customerId")}, {Key: "_id", Value: "e2e-moved"}}
	if _, err := coll.InsertOne(ctx, append(movedKey, bson.E{Key: "status", Value: "new"})); err != nil {
		t.Fatal(err)
	}
	m := e.migration(newMemCheckpoints("e2e"))
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "ready", isState(Ready))

	// A shard key change: an order of the first chunk's customer gets a customer of
	// the last chunk, on the other shard.
	orders := e.chunks("shop.orders")
	if orders[0].Shard == orders[len(orders)-1].Shard {
		t.Fatalf("shop.orders has its first and last chunks on %s", orders[0].Shard)
	}
	res, err = coll.UpdateOne(ctx, movedKey, bson.D{{Key: "$set", Value: bson.D{{Key: "customerId", Value: "C9999999"}, {Key: "movedBy", Value: "e2e"}}}})
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("change the shard key: %v (%+v)", err, res)
	}

	// DDL: create, rename, drop; an index created and one dropped on a sharded
	// collection (every shard writes a copy of those).
	lab := e.srcC.Database("lab")
	if err := lab.CreateCollection(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	var docs []any
	for i := range 20 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "kind", Value: "created"}})
	}
	if _, err := lab.Collection("events").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "lab.events"}, {Key: "to", Value: "lab.archive"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Collection("archive").InsertOne(ctx, bson.D{{Key: "_id", Value: 100}, {Key: "kind", Value: "after the rename"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Collection("scratch").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := lab.Collection("scratch").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "status", Value: 1}, {Key: "customerId", Value: 1}}, Options: options.Index().SetName("e2e_status_customer")}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.Indexes().DropOne(ctx, "items.sku_1"); err != nil {
		t.Fatal(err)
	}

	// The load goes on until the DDL reached the destination: the shards' positions
	// move on with it, so the DDL that one shard wrote need not wait for no-ops. The
	// destination holds Shardlift's marker while the migration runs.
	var missing string
	defer func() {
		if t.Failed() && missing != "" {
			t.Logf("what the destination lacked last: %s", missing)
		}
	}()
	await(t, m, 3*time.Minute, "applied the DDL", func(Snapshot) bool {
		n, err := e.dstC.Database("lab").Collection("archive").CountDocuments(ctx, bson.D{})
		migrated := slices.DeleteFunc(e.userNamespaces(e.dstC), func(ns string) bool { return strings.HasPrefix(ns, topology.MarkerDatabase+".") })
		dstIndexes, srcIndexes := e.indexKeys(e.dstC, "shop.orders"), e.indexKeys(e.srcC, "shop.orders")
		switch {
		case err != nil || n != 21:
			missing = fmt.Sprintf("lab.archive holds %d documents of 21 (%v)", n, err)
		case !slices.Equal(dstIndexes, srcIndexes):
			missing = fmt.Sprintf("shop.orders indexes %v, the source's %v", dstIndexes, srcIndexes)
		case !slices.Equal(migrated, e.userNamespaces(e.srcC)):
			missing = fmt.Sprintf("namespaces %v, the source's %v", migrated, e.userNamespaces(e.srcC))
		default:
			return true
		}
		return false
	})
	s := e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.State != Done || !s.Verification.OK() {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	n := e.sameEverything()
	for _, ns := range []string{"shop.orders", "lab.archive"} {
		if a, b := e.indexKeys(e.srcC, ns), e.indexKeys(e.dstC, ns); !slices.Equal(a, b) {
			t.Errorf("%s indexes:\n source      %v\n destination %v", ns, a, b)
		}
	}
	got, err := e.dstC.Database("shop").Collection("orders").FindOne(ctx, bson.D{{Key: "_id", Value: "e2e-moved"}}).Raw()
	if err != nil || got.Lookup("customerId").StringValue() != "C9999999" {
		t.Fatalf("the moved order on the destination: %s, %v", got, err)
	}
	t.Logf("%d documents equal on both sides", n)
}

// A shard's checkpoint falls off its oplog while Shardlift is down: on resume that
// shard fails with the plain message and nothing continues from the gap; the other
// shard keeps syncing; restarting the failed shard copies it again and the
// destination ends equal to the source.
func TestSandboxOplogRolloverFailsTheShardAndItsRestartConverges(t *testing.T) {
	e := startE2EWith(t, 1000, "an oplog shrunk while Shardlift is down", func(*sandbox.Options) {})
	ctx := context.Background()
	e.startLoad(50)
	cp := newMemCheckpoints("e2e")
	m := e.migration(cp)
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "ready", isState(Ready))
	if err := r.kill(); !errors.Is(err, context.Canceled) {
		t.Fatalf("kill: %v", err)
	}

	// While Shardlift is down, the oplogs shrink to 2 MiB (large enough when the
	// migration was validated) and 4 MiB go to one shard: a new database's primary.
	rolled := e.rollOverAShard()

	m = e.migration(cp)
	r = run(m, StartOptions{})
	s := await(t, m, time.Minute, "failed shard "+rolled, func(s Snapshot) bool {
		return anyShard(s, func(p ShardProgress) bool { return p.Name == rolled && p.Phase == ShardFailed })
	})
	for _, p := range s.Shards {
		switch {
		case p.Name == rolled && !(strings.Contains(p.Error, "the oplog of shard "+rolled+" no longer reaches back to") && strings.HasSuffix(p.Error, "restart this shard")):
			t.Fatalf("shard %s failed with %q, want the plain oplog message", p.Name, p.Error)
		case p.Name != rolled && p.Phase == ShardFailed:
			t.Fatalf("shard %s failed too: %s", p.Name, p.Error)
		}
	}
	t.Logf("shard %s: %s", rolled, strings.TrimSpace(fmt.Sprint(s.Shards)))
	if err := m.RestartShard(ctx, rolled); err != nil {
		t.Fatal(err)
	}
	await(t, m, 3*time.Minute, "ready after the restart", func(s Snapshot) bool {
		return s.State == Ready && !anyShard(s, func(p ShardProgress) bool { return p.Phase != Synced })
	})
	s = e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.State != Done || !s.Verification.OK() {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	t.Logf("%d documents equal on both sides", e.sameEverything())
}

// A collection the source shards during the sync is sharded on the destination
// with the same key, then its key refined there too, and the writes before and
// after each all arrive: on 4.4, which writes neither no-op, through the metadata
// watcher; on 7.0 from the primary shard's no-ops.
func TestSandboxCollectionShardedDuringTheSyncIsShardedOnTheDestination(t *testing.T) {
	for _, version := range []string{"4.4", "7.0"} {
		t.Run(version, func(t *testing.T) {
			e := startE2EShaped(t, 300, "MongoDB "+version+" personalities", func(_ string, o *sandbox.Options) { o.MongoDBVersion = version })
			shardDuringTheSync(t, e)
		})
	}
}

func shardDuringTheSync(t *testing.T, e *e2e) {
	ctx := context.Background()
	e.startLoad(50)
	m := e.migration(newMemCheckpoints("e2e"))
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "ready", isState(Ready))

	metrics := e.srcC.Database("lab").Collection("metrics")
	var docs []any
	for i := range 50 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "sensor", Value: fmt.Sprintf("s%03d", i)}, {Key: "v", Value: i}})
	}
	if _, err := metrics.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "sensor", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.srcC.Database("admin").RunCommand(ctx, bson.D{{Key: "shardCollection", Value: "lab.metrics"}, {Key: "key", Value: bson.D{{Key: "sensor", Value: 1}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.InsertOne(ctx, bson.D{{Key: "_id", Value: 100}, {Key: "sensor", Value: "s100"}, {Key: "v", Value: "after the shardCollection"}}); err != nil {
		t.Fatal(err)
	}
	await(t, m, 2*time.Minute, "sharded lab.metrics on the destination", func(Snapshot) bool {
		doc, err := e.dstC.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "lab.metrics"}}).Raw()
		return err == nil && doc.Lookup("key").Document().String() == `{"sensor": {"$numberInt":"1"}}`
	})
	if _, err := metrics.UpdateOne(ctx, bson.D{{Key: "_id", Value: 7}, {Key: "sensor", Value: "s007"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: "updated once sharded"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.InsertOne(ctx, bson.D{{Key: "_id", Value: 101}, {Key: "sensor", Value: "s101"}, {Key: "v", Value: "after the destination's shardCollection"}}); err != nil {
		t.Fatal(err)
	}

	// The source refines the key (4.4+); the destination follows, and the writes
	// after it carry the new field.
	refined := bson.D{{Key: "sensor", Value: 1}, {Key: "day", Value: 1}}
	if _, err := metrics.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: refined}); err != nil {
		t.Fatal(err)
	}
	if err := e.srcC.Database("admin").RunCommand(ctx, bson.D{{Key: "refineCollectionShardKey", Value: "lab.metrics"}, {Key: "key", Value: refined}}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.InsertOne(ctx, bson.D{{Key: "_id", Value: 102}, {Key: "sensor", Value: "s102"}, {Key: "day", Value: 3}, {Key: "v", Value: "after the refine"}}); err != nil {
		t.Fatal(err)
	}
	await(t, m, 2*time.Minute, "refined the key of lab.metrics on the destination", func(Snapshot) bool {
		doc, err := e.dstC.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: "lab.metrics"}}).Raw()
		return err == nil && doc.Lookup("key").Document().String() == `{"sensor": {"$numberInt":"1"},"day": {"$numberInt":"1"}}`
	})
	if _, err := metrics.InsertOne(ctx, bson.D{{Key: "_id", Value: 103}, {Key: "sensor", Value: "s103"}, {Key: "day", Value: 4}, {Key: "v", Value: "after the destination's refine"}}); err != nil {
		t.Fatal(err)
	}
	s := e.finish(m)
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.State != Done || !s.Verification.OK() {
		t.Fatalf("state %s verification %+v", s.State, s.Verification)
	}
	n := e.sameEverything()
	t.Logf("%d documents equal on both sides", n)
}

// releaseCase is one pair of MongoDB personalities: the source's release and the
// destination's, configShard when 8.0 makes each config server a shard.
type releaseCase struct {
	source, destination string
	configShard         bool
}

func (c releaseCase) String() string {
	name := c.source
	if c.destination != c.source {
		name += "-to-" + c.destination
	}
	if c.configShard {
		name += "-config-shard"
	}
	return name
}

// matrixEnv asks for every personality the sandbox presents (make test-matrix); the
// default run keeps the oldest release, an upward migration and a config shard.
const matrixEnv = "SHARDLIFT_E2E_MATRIX"

func releaseCases() []releaseCase {
	if os.Getenv(matrixEnv) != "1" {
		return []releaseCase{{"3.6", "3.6", false}, {"5.0", "8.0", false}, {"8.0", "8.0", true}}
	}
	var out []releaseCase
	for _, v := range []string{"3.6", "4.0", "4.2", "4.4", "5.0", "6.0", "7.0", "8.0"} {
		out = append(out, releaseCase{v, v, false})
	}
	return append(out, releaseCase{"8.0", "8.0", true},
		releaseCase{"4.4", "7.0", false}, releaseCase{"5.0", "8.0", false}, releaseCase{"6.0", "8.0", false})
}

// Real clusters of every release hold MongoDB's own sharded config.system.sessions
// (and 8.0 may make its config server a shard): a migration under a write load, to
// the same release or upward, is not stopped by them, and ends done with every
// document equal and the source's sharding metadata on the destination: each shard's
// zones on its twin, every zone range, each collection's shard key, unique flag and
// noBalance (sh.disableBalancing).
func TestSandboxReleasesMigrateWithTheirZones(t *testing.T) {
	for _, rel := range releaseCases() {
		t.Run(rel.String(), func(t *testing.T) {
			began := time.Now()
			e := startE2EShaped(t, 300, "MongoDB "+rel.String()+" personalities", func(side string, o *sandbox.Options) {
				o.MongoDBVersion, o.ConfigShard = rel.source, rel.configShard
				if side == "destination" {
					o.MongoDBVersion = rel.destination
				}
			})
			ctx := context.Background()
			admin := func(c *mongo.Client, cmd bson.D) {
				t.Helper()
				if err := c.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
					t.Fatalf("%v: %v", cmd, err)
				}
			}
			zone := func(shard string) string { return "zone-" + shard }
			orders := e.chunks("shop.orders")
			zoned := map[string]bool{}
			for _, ch := range orders {
				if !zoned[ch.Shard] {
					admin(e.srcC, bson.D{{Key: "addShardToZone", Value: ch.Shard}, {Key: "zone", Value: zone(ch.Shard)}})
					zoned[ch.Shard] = true
				}
				admin(e.srcC, bson.D{{Key: "updateZoneKeyRange", Value: "shop.orders"}, {Key: "min", Value: ch.Min}, {Key: "max", Value: ch.Max}, {Key: "zone", Value: zone(ch.Shard)}})
			}
			// sh.disableBalancing("shop.customers"), as the shell does it on every release
			// the sandbox presents.
			res, err := e.srcC.Database("config").Collection("collections").UpdateOne(ctx,
				bson.D{{Key: "_id", Value: "shop.customers"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "noBalance", Value: true}}}})
			if err != nil || res.MatchedCount != 1 {
				t.Fatalf("disableBalancing shop.customers: %v, %+v", err, res)
			}

			e.startLoad(100)
			m := e.migration(newMemCheckpoints("e2e"))
			r := run(m, StartOptions{WipeDestination: true})
			await(t, m, 3*time.Minute, "ready", isState(Ready))
			ready := time.Since(began)
			// The load goes on writing while the migration keeps the destination in sync.
			for atReady := e.stats.Total(); e.stats.Total() < atReady+200; time.Sleep(20 * time.Millisecond) {
				if s := m.Snapshot(); s.State != Ready && s.State != Syncing {
					t.Fatalf("state %s under load, want ready or syncing", s.State)
				}
			}
			synced := time.Since(began)
			s := e.finish(m)
			if err := <-r.done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if s.State != Done || !s.Verification.OK() {
				t.Fatalf("state %s verification %+v", s.State, s.Verification)
			}
			done := time.Since(began)
			if e.stats.Errors() > 0 {
				t.Errorf("%d writes of the load failed, the last: %v", e.stats.Errors(), e.stats.LastError())
			}
			n := e.sameEverything()
			e.sameShardingMetadata(len(orders))
			round := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
			t.Logf("%s: %d documents equal on both sides, %d writes during the migration; from the sandboxes' start: ready %v, load stopped %v, done %v, checked %v",
				rel, n, e.stats.Total(), round(ready), round(synced), round(done), round(time.Since(began)))
		})
	}
}

// sameShardingMetadata compares what topology.Discover reads on both clusters: each
// source shard's zones on its twin, every zone range (zoneRanges of them), and each
// sharded collection's key, unique flag and noBalance.
func (e *e2e) sameShardingMetadata(zoneRanges int) {
	e.t.Helper()
	ctx := context.Background()
	src, err := topology.Discover(ctx, e.src)
	if err != nil {
		e.t.Fatal(err)
	}
	dst, err := topology.Discover(ctx, e.dst)
	if err != nil {
		e.t.Fatal(err)
	}
	twins, err := topology.Twins(src.Shards, dst.Shards)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range src.Shards {
		for _, d := range dst.Shards {
			if d.Name == twins[s.Name] && !slices.Equal(d.Zones, s.Zones) {
				e.t.Errorf("destination shard %s is in zones %v, its twin %s in %v", d.Name, d.Zones, s.Name, s.Zones)
			}
		}
	}
	if len(dst.Zones) != zoneRanges || len(src.Zones) != zoneRanges {
		e.t.Errorf("zone ranges: source %d, destination %d, want %d", len(src.Zones), len(dst.Zones), zoneRanges)
	}
	for i, z := range src.Zones[:min(len(src.Zones), len(dst.Zones))] {
		d := dst.Zones[i]
		if d.Namespace != z.Namespace || d.Zone != z.Zone || !bytes.Equal(d.Min, z.Min) || !bytes.Equal(d.Max, z.Max) {
			e.t.Errorf("zone range %d: destination %+v, source %+v", i, d, z)
		}
	}
	sharding := func(c *topology.Cluster) map[string]string {
		out := map[string]string{}
		for _, coll := range c.Collections {
			if coll.Sharded() {
				key, err := bson.MarshalExtJSON(coll.Key, true, false)
				if err != nil {
					e.t.Fatal(err)
				}
				out[coll.Namespace] = fmt.Sprintf("key %s unique %v noBalance %v", key, coll.Unique, coll.NoBalance)
			}
		}
		return out
	}
	a, b := sharding(src), sharding(dst)
	if len(a) == 0 {
		e.t.Error("the source has no sharded collection")
	}
	for ns, want := range a {
		if got, ok := b[ns]; !ok || got != want {
			e.t.Errorf("%s: %s on the source, %q on the destination", ns, want, got)
		}
	}
	for ns, got := range b {
		if _, ok := a[ns]; !ok {
			e.t.Errorf("%s is sharded on the destination only: %s", ns, got)
		}
	}
	if !strings.Contains(a["shop.customers"], "noBalance true") {
		e.t.Errorf("shop.customers on the source: %s, want noBalance", a["shop.customers"])
	}
}

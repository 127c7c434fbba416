package prepare

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/topology"
)

// RelaxSink keeps what Prepare did not apply as the source has it, so that the
// end of the migration (finish or cancel) can restore it.
type RelaxSink interface {
	// RelaxedCollection records the original collection options withheld from
	// ns during the sync (a clustered collection's expireAfterSeconds), as
	// oplog.RelaxCollectionOptionsForSync returns them.
	RelaxedCollection(ns string, withheld bson.Raw) error
}

// HasUserData lists the destination's user databases (every database but the
// internal ones: namespaces.UserDatabase) holding at least one collection or
// view; none means the destination is empty.
func HasUserData(ctx context.Context, client *mongo.Client) (bool, []string, error) {
	names, err := userDatabases(ctx, client)
	if err != nil {
		return false, nil, err
	}
	var dbs []string
	for _, db := range names {
		colls, err := client.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return false, nil, fmt.Errorf("list the collections of %s on the destination: %w", db, err)
		}
		if len(colls) > 0 {
			dbs = append(dbs, db)
		}
	}
	return len(dbs) > 0, dbs, nil
}

// Wipe drops every user database of the destination, including databases only
// config.databases still knows, and calls dropped with each one it dropped. Call it
// only once the user confirmed. A destination held by another migration than
// migrationID (its marker) is refused with a *HeldError before anything is
// dropped; the marker itself is never dropped.
func Wipe(ctx context.Context, client *mongo.Client, migrationID string, dropped func(db string)) error {
	if err := heldByAnother(ctx, client, migrationID); err != nil {
		return fmt.Errorf("wipe the destination: %w", err)
	}
	names, err := userDatabases(ctx, client)
	if err != nil {
		return err
	}
	known, err := configDatabases(ctx, client)
	if err != nil {
		return err
	}
	for _, db := range known {
		if !slices.Contains(names, db) {
			names = append(names, db)
		}
	}
	for _, db := range names {
		if err := client.Database(db).Drop(ctx); err != nil {
			return fmt.Errorf("wipe the destination: drop database %s: %w", db, err)
		}
		dropped(db)
	}
	return nil
}

func userDatabases(ctx context.Context, client *mongo.Client) ([]string, error) {
	all, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list the destination's databases: %w", err)
	}
	var out []string
	for _, db := range all {
		if namespaces.UserDatabase(db) {
			out = append(out, db)
		}
	}
	return out, nil
}

func configDatabases(ctx context.Context, client *mongo.Client) ([]string, error) {
	cur, err := client.Database("config").Collection("databases").Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read the destination's config.databases: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []string
	for cur.Next(ctx) {
		if name, ok := cur.Current.Lookup("_id").StringValueOK(); ok && namespaces.UserDatabase(name) {
			out = append(out, name)
		}
	}
	return out, cur.Err()
}

// Prepare builds on the destination (a mongos) everything the copy writes into,
// as the plan says: databases with their primary on the twin shard, each twin in
// its source shard's zones, collections with their options, views, sharded
// collections with the same key and unique flag, their zone key ranges, split
// and placed so that each source shard's chunks land on its twin, and the
// balancer kept off those the source's leaves alone (noBalance). The sharded
// collections are placed a few at once (PlacementParallel); progress, when set,
// is told how far the placement is after each range (it may be called from
// several goroutines, one call at a time).
// Every step checks what is already there first, so Prepare can run again after
// an interruption. It refuses, before changing anything, a plan holding a
// namespace of a kind the engine does not migrate.
func Prepare(ctx context.Context, client *mongo.Client, plan *Plan, sink RelaxSink, log *slog.Logger, progress func(Placement)) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var refused []string
	for _, c := range plan.Collections {
		if !c.Migrated() {
			refused = append(refused, fmt.Sprintf("%s (%s)", c.NS(), c.Type))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("prepare the destination: %w: %s; remove or convert them on the source, then validate again",
			ErrUnsupportedNamespace, strings.Join(refused, ", "))
	}
	for _, db := range plan.Databases {
		if err := ensureDatabase(ctx, client, db); err != nil {
			return err
		}
	}
	if err := joinZones(ctx, client, plan); err != nil {
		return err
	}
	zones, err := destinationZones(ctx, client)
	if err != nil {
		return err
	}
	for _, c := range plan.Collections {
		if err := createCollection(ctx, client, c, sink); err != nil {
			return err
		}
	}
	if err := placeCollections(ctx, client, plan, zones, newPlacementCounter(plan, progress), log); err != nil {
		return err
	}
	sharded := map[string]bool{}
	for _, c := range plan.Collections {
		sharded[c.NS()] = c.Sharded
	}
	// Zone ranges of namespaces that are not sharded (MongoDB keeps them for a
	// later shardCollection).
	for _, z := range plan.Zones {
		if !sharded[z.Namespace] {
			if err := assignZoneRanges(ctx, client, []topology.ZoneRange{z}, z.Namespace, zones); err != nil {
				return err
			}
		}
	}
	return nil
}

// placeCollections shards and places the plan's sharded collections, up to
// PlacementParallel at once; the first error stops the others.
func placeCollections(ctx context.Context, client *mongo.Client, plan *Plan, zones zoneRanges, pc *placementCounter, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(PlacementParallel)
	for _, c := range plan.Collections {
		if !c.Sharded {
			continue
		}
		g.Go(func() error {
			if err := shardCollection(ctx, client, c); err != nil {
				return err
			}
			// The zone ranges before the chunks are placed: a move is checked
			// against the zones ("is not in the correct zone", balancer policy), so
			// a placement that disagrees with them fails here instead of being
			// undone by the destination's balancer after the migration.
			if err := assignZoneRanges(ctx, client, plan.Zones, c.NS(), zones); err != nil {
				return err
			}
			n, err := placeChunks(ctx, client, plan, c, func() { pc.add(0, 1) })
			if err != nil {
				return err
			}
			if c.NoBalance {
				if err := disableBalancing(ctx, client, c.NS(), plan.DestinationVersion); err != nil {
					return err
				}
			}
			pc.add(1, 0)
			log.Info("sharded collection prepared", "ns", c.NS(), "chunks", len(c.Chunks), "moves", n)
			return nil
		})
	}
	return g.Wait()
}

// ensureDatabase creates the database with its primary on the twin shard:
// enableSharding with primaryShard (4.0.14, 4.2.2 and later), else enableSharding
// and then movePrimary.
func ensureDatabase(ctx context.Context, client *mongo.Client, db Database) error {
	admin := client.Database("admin")
	primary, found, err := destinationPrimary(ctx, client, db.Name)
	if err != nil {
		return err
	}
	if found && primary == db.Primary {
		return nil
	}
	var firstErr error
	if !found {
		firstErr = admin.RunCommand(ctx, bson.D{{Key: "enableSharding", Value: db.Name}, {Key: "primaryShard", Value: db.Primary}}).Err()
		if firstErr != nil {
			if err := admin.RunCommand(ctx, bson.D{{Key: "enableSharding", Value: db.Name}}).Err(); err != nil {
				return fmt.Errorf("create database %s on the destination (enableSharding): %w", db.Name, errors.Join(firstErr, err))
			}
		}
		if primary, _, err = destinationPrimary(ctx, client, db.Name); err != nil {
			return err
		}
		if primary == db.Primary {
			return nil
		}
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "movePrimary", Value: db.Name}, {Key: "to", Value: db.Primary}}).Err(); err != nil {
		return fmt.Errorf("database %s has its primary on destination shard %s, not on %s (the twin of source shard %s), and it could not be moved: %w",
			db.Name, primary, db.Primary, db.SourcePrimary, errors.Join(firstErr, err))
	}
	return nil
}

// destinationPrimary reads a database's primary shard from config.databases.
func destinationPrimary(ctx context.Context, client *mongo.Client, db string) (string, bool, error) {
	doc, err := client.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: db}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read config.databases of %s on the destination: %w", db, err)
	}
	primary, _ := doc.Lookup("primary").StringValueOK()
	return primary, true, nil
}

// createCollection creates a collection or view with the source's options and
// default collation; a clustered collection's TTL is relaxed (the original goes to
// the sink first, so an interruption cannot lose it). An existing namespace is left
// as it is.
func createCollection(ctx context.Context, client *mongo.Client, c *Collection, sink RelaxSink) error {
	var apply bson.Raw
	if len(c.Options) > 0 {
		var withheld bson.Raw
		var err error
		apply, withheld, err = oplog.RelaxCollectionOptionsForSync(c.Options)
		if err != nil {
			return fmt.Errorf("options of %s: %w", c.NS(), err)
		}
		if withheld != nil {
			if sink == nil {
				return fmt.Errorf("create %s: its options %s must be relaxed during the sync but nothing records the original", c.NS(), withheld)
			}
			if err := sink.RelaxedCollection(c.NS(), withheld); err != nil {
				return fmt.Errorf("record the original options of %s: %w", c.NS(), err)
			}
		}
	}
	cmd, err := createCommand(c, apply)
	if err != nil {
		return err
	}
	err = client.Database(c.DB).RunCommand(ctx, cmd).Err()
	if err != nil && !mongoerr.HasCode(err, codeNamespaceExists) {
		return fmt.Errorf("create %s %s on the destination with the source's options: %w", c.Type, c.NS(), err)
	}
	return nil
}

// createCommand is the create of c with the options to apply, plus the default
// collation of a collection only config.collections describes (sharded after the
// inventory listed the collections).
func createCommand(c *Collection, apply bson.Raw) (bson.D, error) {
	cmd := bson.D{{Key: "create", Value: c.Name}}
	if len(apply) > 0 {
		elems, err := apply.Elements()
		if err != nil {
			return nil, fmt.Errorf("options of %s: %w", c.NS(), err)
		}
		for _, e := range elems {
			cmd = append(cmd, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	if collation := c.DefaultCollation(); collation != nil && apply.Lookup("collation").Type == 0 {
		cmd = append(cmd, bson.E{Key: "collation", Value: collation})
	}
	return cmd, nil
}

// shardCollection shards with the source's key and unique flag. A collection
// with a default collation is sharded with the simple collation, as MongoDB
// requires of shard key indexes.
func shardCollection(ctx context.Context, client *mongo.Client, c *Collection) error {
	return shardWithKey(ctx, client, c.NS(), c.Key, c.Unique, c.DefaultCollation() != nil)
}

func shardWithKey(ctx context.Context, client *mongo.Client, ns string, key bson.Raw, unique, simpleCollation bool) error {
	cmd := bson.D{{Key: "shardCollection", Value: ns}, {Key: "key", Value: key}, {Key: "unique", Value: unique}}
	if simpleCollation {
		cmd = append(cmd, bson.E{Key: "collation", Value: bson.D{{Key: "locale", Value: "simple"}}})
	}
	err := client.Database("admin").RunCommand(ctx, cmd).Err()
	if err == nil {
		return nil
	}
	// Servers before 4.4 refuse to shard a collection twice even with the same key.
	if mongoerr.HasCode(err, codeAlreadyInit) || mongoerr.HasCode(err, codeIllegalOperation) {
		if have, sharded, ferr := destinationKey(ctx, client, ns); ferr == nil && sharded && SameShardKey(have, key) {
			return nil
		}
	}
	return fmt.Errorf("shard %s on the destination with key %s (unique: %v): %w", ns, key, unique, err)
}

// EnsureShardKey makes the destination's ns sharded on key, as the source
// sharded it (or refined its key) during the migration: shardCollection when it
// is not sharded (with the simple collation, which a shard key index needs
// whatever the collection's default), refineCollectionShardKey (4.4+) when its
// key is a prefix of key, nothing when it has key already. The replay creates
// the collection before (the source's shardCollection created it if need be): a
// collection the destination lacks was dropped on the source since, and is left
// alone. Any other key is an error: the source resharded the collection, which
// Shardlift cannot follow.
func EnsureShardKey(ctx context.Context, client *mongo.Client, ns string, key bson.Raw, unique bool) error {
	have, sharded, err := destinationKey(ctx, client, ns)
	switch {
	case err != nil:
		return err
	case !sharded:
		db, coll, _ := strings.Cut(ns, ".")
		names, err := client.Database(db).ListCollectionNames(ctx, bson.D{{Key: "name", Value: coll}})
		if err != nil {
			return fmt.Errorf("look for %s on the destination: %w", ns, err)
		}
		if len(names) == 0 {
			return nil
		}
		return shardWithKey(ctx, client, ns, key, unique, true)
	case SameShardKey(have, key):
		return nil
	case RefinesShardKey(have, key):
		cmd := bson.D{{Key: "refineCollectionShardKey", Value: ns}, {Key: "key", Value: key}}
		if err := client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("refine the shard key of %s on the destination from %s to %s, as on the source: %w", ns, have, key, err)
		}
		return nil
	}
	return fmt.Errorf("%s is sharded on %s on the destination and on %s on the source: the source resharded it during the migration, "+
		"which Shardlift cannot follow; cancel, drop it on the destination and migrate again", ns, have, key)
}

// destinationKey reads a collection's shard key from the destination's
// config.collections; sharded is false for a collection that is not there, is
// dropped (until 4.4) or is an 8.0 tracked unsharded collection.
func destinationKey(ctx context.Context, client *mongo.Client, ns string) (key bson.Raw, sharded bool, err error) {
	doc, err := client.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: ns}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read config.collections of %s on the destination: %w", ns, err)
	}
	key, ok := doc.Lookup("key").DocumentOK()
	if !ok || isTrue(doc.Lookup("dropped")) || isTrue(doc.Lookup("unsplittable")) {
		return nil, false, nil
	}
	return key, true, nil
}

func isTrue(v bson.RawValue) bool {
	b, ok := v.BooleanOK()
	return ok && b
}

// SameShardKey compares two key patterns: the same fields in the same order
// with equal values (1 and 1.0 are one direction).
func SameShardKey(a, b bson.Raw) bool {
	return shardkey.CompareKeys(shardkey.Key(a), shardkey.Key(b)) == 0 && string(keyNames(a)) == string(keyNames(b))
}

// RefinesShardKey reports whether key pattern b extends a (a is a strict prefix
// of b), as refineCollectionShardKey does.
func RefinesShardKey(a, b bson.Raw) bool {
	ae, err1 := a.Elements()
	be, err2 := b.Elements()
	if err1 != nil || err2 != nil || len(ae) >= len(be) {
		return false
	}
	prefix := bson.D{}
	for _, e := range be[:len(ae)] {
		prefix = append(prefix, bson.E{Key: e.Key(), Value: e.Value()})
	}
	raw, err := bson.Marshal(prefix)
	return err == nil && SameShardKey(a, raw)
}

// keyNames is a key pattern's field names, for comparing patterns.
func keyNames(key bson.Raw) []byte {
	elems, _ := key.Elements()
	var b []byte
	for _, e := range elems {
		b = append(append(b, e.Key()...), 0)
	}
	return b
}

// destinationChunks reads a collection's chunks from the destination's
// config.chunks, keyed by ns (until 4.4) or by the collection's uuid (5.0+).
func destinationChunks(ctx context.Context, client *mongo.Client, ns string) ([]shardkey.Chunk, error) {
	cfg := client.Database("config")
	coll, err := cfg.Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: ns}}).Raw()
	if err != nil {
		return nil, fmt.Errorf("read config.collections of %s on the destination: %w", ns, err)
	}
	filter := bson.D{{Key: "ns", Value: ns}}
	if uuid := coll.Lookup("uuid"); uuid.Type != 0 {
		filter = bson.D{{Key: "$or", Value: bson.A{filter, bson.D{{Key: "uuid", Value: uuid}}}}}
	}
	cur, err := cfg.Collection("chunks").Find(ctx, filter,
		options.Find().SetProjection(bson.D{{Key: "min", Value: 1}, {Key: "max", Value: 1}, {Key: "shard", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read config.chunks of %s on the destination: %w", ns, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []shardkey.Chunk
	for cur.Next(ctx) {
		lo, ok1 := cur.Current.Lookup("min").DocumentOK()
		hi, ok2 := cur.Current.Lookup("max").DocumentOK()
		shard, ok3 := cur.Current.Lookup("shard").StringValueOK()
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("config.chunks of %s on the destination: malformed chunk %s", ns, cur.Current)
		}
		out = append(out, shardkey.Chunk{
			Min: shardkey.Key(slices.Clone(lo)), Max: shardkey.Key(slices.Clone(hi)), Shard: shard,
		})
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read config.chunks of %s on the destination: %w", ns, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("config.chunks of %s on the destination lists no chunk", ns)
	}
	slices.SortFunc(out, func(a, b shardkey.Chunk) int { return shardkey.CompareKeys(a.Min, b.Min) })
	return out, nil
}

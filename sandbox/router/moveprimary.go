package router

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// movePrimary {movePrimary: db, to: shard} moves a database's unsharded
// collections to another primary shard, as MongoDB logs it: on the new primary
// each collection is created under a new UUID (an entry not marked fromMigrate),
// its indexes built and its documents inserted (fromMigrate); then the database's
// primary changes, and the old primary drops each collection under its old UUID
// (not fromMigrate either). Writes to those collections wait meanwhile, as
// MongoDB's critical section makes them.
func (r *Router) movePrimary(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	if cmd.DB != "admin" {
		return nil, wire.Unauthorized("movePrimary may only be run against the admin database.")
	}
	db, _ := cmd.Lookup("movePrimary").StringValueOK()
	to, _ := cmd.Lookup("to").StringValueOK()
	d, ok := r.cat.Database(db)
	if !ok {
		return nil, wire.NamespaceNotFound("database " + db + " not found")
	}
	recipient, err := r.backend(to)
	if err != nil {
		return nil, err
	}
	if d.Primary == to {
		return wire.OK(bson.E{Key: "primary", Value: to}), nil
	}
	donor, err := r.backend(d.Primary)
	if err != nil {
		return nil, err
	}
	colls, err := r.unshardedCollections(ctx, donor, db)
	if err != nil {
		return nil, err
	}
	for _, coll := range colls { // sorted: locks are taken in one order
		l := r.lockNS(db + "." + coll)
		l.Lock()
		defer l.Unlock()
	}
	for _, coll := range colls {
		if err := r.cloneCollection(ctx, donor, recipient, db, coll); err != nil {
			return nil, fmt.Errorf("movePrimary of %s: clone %s to %s: %w", db, coll, to, err)
		}
	}
	if err := r.cat.setPrimary(db, to); err != nil {
		return nil, err
	}
	for _, coll := range colls {
		if _, err := donor.run(ctx, db, bson.D{{Key: "drop", Value: coll}}); err != nil && !isCode(err, codeNamespaceNotFound) {
			return nil, fmt.Errorf("movePrimary of %s: drop %s from the old primary %s: %w", db, coll, donor.Name, err)
		}
	}
	return wire.OK(bson.E{Key: "primary", Value: to}), nil
}

// unshardedCollections lists the collections of db on the primary that are not
// sharded (views and system collections aside), sorted.
func (r *Router) unshardedCollections(ctx context.Context, primary *backend, db string) ([]string, error) {
	docs, err := primary.all(ctx, db, bson.D{{Key: "listCollections", Value: 1}, {Key: "filter", Value: bson.D{{Key: "type", Value: "collection"}}}})
	if err != nil {
		return nil, err
	}
	sharded := r.cat.ShardedCollections(db)
	var out []string
	for _, d := range docs {
		name, _ := d.Lookup("name").StringValueOK()
		if name != "" && !strings.HasPrefix(name, "system.") && !slices.Contains(sharded, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// cloneCollection creates coll on the recipient under a new UUID, builds its
// indexes and copies its documents (fromMigrate).
func (r *Router) cloneCollection(ctx context.Context, donor, recipient *backend, db, coll string) error {
	if err := setCollection(ctx, recipient, db, coll, nil, newUUID()); err != nil {
		return err
	}
	if _, err := recipient.run(ctx, db, bson.D{{Key: "create", Value: coll}}); err != nil && !isCode(err, 48) {
		return err
	}
	indexes, err := donor.all(ctx, db, bson.D{{Key: "listIndexes", Value: coll}})
	if err != nil {
		return err
	}
	specs := bson.A{}
	for _, spec := range indexes {
		if name, _ := spec.Lookup("name").StringValueOK(); name != "_id_" {
			specs = append(specs, without(spec, map[string]bool{"v": true, "ns": true}))
		}
	}
	if len(specs) > 0 {
		if _, err := recipient.run(ctx, db, bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: specs}}); err != nil {
			return err
		}
	}
	docs, err := donor.all(ctx, db, bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: bson.D{}}})
	if err != nil {
		return err
	}
	return insertFromMigrate(ctx, recipient, db, coll, docs)
}

// setPrimary records db's new primary shard, with a new database version, and
// logs movePrimary.start and movePrimary.commit as the config server does
// ({database, from, to}: MovePrimarySourceManager's log entry).
func (c *Catalog) setPrimary(db, primary string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.mu.databases[db]
	if !ok {
		return wire.NamespaceNotFound("database " + db + " not found")
	}
	details := bson.D{{Key: "database", Value: db}, {Key: "from", Value: d.Primary}, {Key: "to", Value: primary}}
	c.logChangeLocked("movePrimary.start", db, details)
	defer c.logChangeLocked("movePrimary.commit", db, details)
	d.Primary = primary
	d.Version.LastMod++
	d.Version.Timestamp = c.nextTimestampLocked()
	c.mu.databases[db] = d
	c.placeLocked(db, nil, d.Version.Timestamp, []string{primary})
	return c.saveLocked()
}

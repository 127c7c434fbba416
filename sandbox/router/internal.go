package router

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/sysdb"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Listing the internal databases (admin, config, local) a node holds in memory: shared
// by the config server and the router, which lists the config server's.

func listInternalCollections(ctx context.Context, cursors *cursorTable, cmd *wire.Command, colls []sysdb.Collection, id wire.Identity) (bson.Raw, error) {
	nameOnly := truthy(cmd.Lookup("nameOnly"))
	filter, _ := cmd.Lookup("filter").DocumentOK()
	batchSize, _ := asInt64(cmd.Body.Lookup("cursor", "batchSize"))
	rel := id.Release()
	var docs []bson.Raw
	for _, c := range colls {
		docs = append(docs, sysdb.Raw(c.ListEntry(rel, false)))
	}
	q := findQuery{filter: filter}
	if nameOnly {
		q.projection = sysdb.Raw(bson.D{{Key: "_id", Value: 0}, {Key: "name", Value: 1}, {Key: "type", Value: 1}})
	}
	it, err := memoryFind(docs, q)
	if err != nil {
		return nil, err
	}
	return cursors.reply(ctx, cmd.DB+".$cmd.listCollections", it, batchSize, false), nil
}

func listInternalIndexes(ctx context.Context, cursors *cursorTable, cmd *wire.Command, set sysdb.Set, id wire.Identity) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	c, ok := set.Find(cmd.DB, coll)
	if !ok {
		return nil, wire.NamespaceNotFound(fmt.Sprintf("ns does not exist: %s.%s", cmd.DB, coll))
	}
	batchSize, _ := asInt64(cmd.Body.Lookup("cursor", "batchSize"))
	return cursors.reply(ctx, cmd.DB+".$cmd.listIndexes."+coll, &sliceIter{docs: sysdb.Raws(c.IndexSpecs(id.Release()))}, batchSize, false), nil
}

// listInternalDatabases answers listDatabases for the named internal databases of set.
func listInternalDatabases(cmd *wire.Command, set sysdb.Set, dbs []string) (bson.Raw, error) {
	entries, total, err := internalDatabaseEntries(cmd, set, dbs)
	if err != nil {
		return nil, err
	}
	if truthy(cmd.Lookup("nameOnly")) {
		return wire.OK(bson.E{Key: "databases", Value: entries}), nil
	}
	return wire.OK(bson.E{Key: "databases", Value: entries}, bson.E{Key: "totalSize", Value: total},
		bson.E{Key: "totalSizeMb", Value: total >> 20}), nil
}

// internalDatabaseEntries are listDatabases entries for internal databases, filtered
// as the command asks, with their total size.
func internalDatabaseEntries(cmd *wire.Command, set sysdb.Set, dbs []string) (bson.A, int64, error) {
	filter, _ := cmd.Lookup("filter").DocumentOK()
	m, err := match.Compile(filter)
	if err != nil {
		return nil, 0, wire.BadValue(err.Error())
	}
	nameOnly := truthy(cmd.Lookup("nameOnly"))
	out := bson.A{}
	var total int64
	for _, db := range dbs {
		size := set.DBSize(db)
		entry := bson.D{{Key: "name", Value: db}, {Key: "sizeOnDisk", Value: size}, {Key: "empty", Value: false}}
		if !m.Match(sysdb.Raw(entry)) {
			continue
		}
		total += size
		if nameOnly {
			entry = entry[:1]
		}
		out = append(out, entry)
	}
	return out, total, nil
}

package router

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/sysdb"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// DDL goes to every shard that holds the namespace, as on a real cluster, so a
// sharded collection's DDL shows up in several shards' oplogs; the catalog follows.

// holders lists the shards that have a collection, the database's primary first.
func (r *Router) holders(ctx context.Context, rt *Routing, db, coll string) ([]*backend, error) {
	var out []*backend
	for _, b := range r.primaryFirst(rt.DB.Primary) {
		_, ok, err := r.collectionInfo(ctx, b, db, coll)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, b)
		}
	}
	return out, nil
}

// primaryFirst orders the shards with the database's primary first.
func (r *Router) primaryFirst(primary string) []*backend {
	out := slices.Clone(r.order)
	slices.SortStableFunc(out, func(a, b *backend) int {
		switch {
		case a.Name == primary:
			return -1
		case b.Name == primary:
			return 1
		}
		return 0
	})
	return out
}

// rawReplies gathers per-shard replies as mongos reports them: {raw: {host: reply}}.
type rawReplies struct{ d bson.D }

func (r *rawReplies) add(b *backend, reply bson.Raw) {
	r.d = append(r.d, bson.E{Key: b.Host(), Value: reply})
}

func (r *Router) listDatabases(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	nameOnly := truthy(cmd.Lookup("nameOnly"))
	filter, _ := cmd.Lookup("filter").DocumentOK()
	var m *match.Matcher
	if len(filter) > 0 {
		var err error
		if m, err = match.Compile(filter); err != nil {
			return nil, wire.BadValue(err.Error())
		}
	}
	type dbInfo struct {
		size  int64
		empty bool
	}
	dbs := map[string]*dbInfo{}
	for _, b := range r.order {
		reply, err := b.run(ctx, "admin", bson.D{{Key: "listDatabases", Value: 1}})
		if err != nil {
			return nil, err
		}
		arr, _ := reply.Lookup("databases").ArrayOK()
		vals, _ := arr.Values()
		for _, v := range vals {
			d, ok := v.DocumentOK()
			if !ok {
				continue
			}
			name, _ := d.Lookup("name").StringValueOK()
			if name == "" || sysdb.Internal(name) {
				continue
			}
			size, _ := asInt64(d.Lookup("sizeOnDisk"))
			info := dbs[name]
			if info == nil {
				info = &dbInfo{empty: true}
				dbs[name] = info
			}
			info.size += size
			info.empty = info.empty && truthy(d.Lookup("empty"))
		}
	}
	// admin and config are the config server's, as a mongos lists them; local is not
	// listed through a mongos.
	arr, total, err := internalDatabaseEntries(cmd, r.cat.ConfigServerCollections(func(string, string) bool { return true }), []string{"admin", "config"})
	if err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(dbs) {
		info := dbs[name]
		entry := bson.D{{Key: "name", Value: name}, {Key: "sizeOnDisk", Value: info.size}, {Key: "empty", Value: info.empty}}
		if m != nil && !m.Match(rawDoc(entry)) {
			continue
		}
		total += info.size
		if nameOnly {
			arr = append(arr, bson.D{{Key: "name", Value: name}})
		} else {
			arr = append(arr, entry)
		}
	}
	if nameOnly {
		return wire.OK(bson.E{Key: "databases", Value: arr}), nil
	}
	return wire.OK(
		bson.E{Key: "databases", Value: arr},
		bson.E{Key: "totalSize", Value: total},
		bson.E{Key: "totalSizeMb", Value: total >> 20},
	), nil
}

func (r *Router) listCollections(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	batchSize, _ := asInt64(cmd.Body.Lookup("cursor", "batchSize"))
	ns := cmd.DB + ".$cmd.listCollections"
	if sysdb.Internal(cmd.DB) {
		return listInternalCollections(ctx, r.cursors, cmd, r.cat.ConfigServerCollections(nil).In(cmd.DB), r.cfg.Identity)
	}
	d, ok := r.cat.Database(cmd.DB)
	if !ok {
		return r.cursors.reply(ctx, ns, &sliceIter{}, batchSize, false), nil
	}
	fwd := without(forwardable(cmd), map[string]bool{"cursor": true})
	seen := map[string]bool{}
	var out []bson.Raw
	for _, b := range r.primaryFirst(d.Primary) {
		docs, err := b.all(ctx, cmd.DB, fwd)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			name, _ := d.Lookup("name").StringValueOK()
			if !seen[name] {
				seen[name] = true
				out = append(out, d)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b bson.Raw) int {
		return compareValues(a.Lookup("name"), b.Lookup("name"))
	})
	return r.cursors.reply(ctx, ns, &sliceIter{docs: out}, batchSize, false), nil
}

func (r *Router) listIndexes(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	batchSize, _ := asInt64(cmd.Body.Lookup("cursor", "batchSize"))
	ns := cmd.DB + ".$cmd.listIndexes." + coll
	rt, ok := r.cat.Route(cmd.DB + "." + coll)
	if sysdb.Internal(cmd.DB) && !(ok && rt.Sharded()) {
		return listInternalIndexes(ctx, r.cursors, cmd, r.cat.ConfigServerCollections(nil), r.cfg.Identity)
	}
	notFound := wire.NamespaceNotFound(fmt.Sprintf("ns does not exist: %s.%s", cmd.DB, coll))
	if !ok {
		return nil, notFound
	}
	candidates := r.primaryFirst(rt.DB.Primary)
	if rt.Sharded() {
		owners := rt.ChunkShards()
		slices.SortStableFunc(candidates, func(a, b *backend) int {
			ai, bi := slices.Contains(owners, a.Name), slices.Contains(owners, b.Name)
			switch {
			case a.Name == rt.DB.Primary:
				return -1
			case b.Name == rt.DB.Primary:
				return 1
			case ai && !bi:
				return -1
			case bi && !ai:
				return 1
			}
			return 0
		})
	}
	for _, b := range candidates {
		docs, err := b.all(ctx, cmd.DB, bson.D{{Key: "listIndexes", Value: coll}})
		if isCode(err, codeNamespaceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return r.cursors.reply(ctx, ns, &sliceIter{docs: docs}, batchSize, false), nil
	}
	return nil, notFound
}

func (r *Router) create(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	if err := checkWritable(cmd.DB); err != nil {
		return nil, err
	}
	ns := cmd.DB + "." + coll
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	d, err := r.cat.EnsureDatabase(cmd.DB, "")
	if err != nil {
		return nil, err
	}
	primary, err := r.backend(d.Primary)
	if err != nil {
		return nil, err
	}
	if _, exists, err := r.collectionInfo(ctx, primary, cmd.DB, coll); err != nil {
		return nil, err
	} else if exists {
		return nil, &wire.Error{Code: 48, Name: "NamespaceExists", Msg: "Collection already exists. NS: " + ns}
	}
	if err := setCollection(ctx, primary, cmd.DB, coll, nil, newUUID()); err != nil {
		return nil, err
	}
	if _, err := primary.run(ctx, cmd.DB, forwardable(cmd)); err != nil {
		return nil, err
	}
	return wire.OK(), nil
}

// forEachHolder sends a command to every shard holding a collection (or, when none
// does and create is set, to the primary, which creates it).
func (r *Router) forEachHolder(ctx context.Context, cmd *wire.Command, create bool) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	if err := checkWritable(cmd.DB); err != nil {
		return nil, err
	}
	ns := cmd.DB + "." + coll
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	if create {
		if _, err := r.cat.EnsureDatabase(cmd.DB, ""); err != nil {
			return nil, err
		}
	}
	rt, ok := r.cat.Route(ns)
	if !ok {
		return nil, wire.NamespaceNotFound(fmt.Sprintf("ns does not exist: %s", ns))
	}
	targets, err := r.holders(ctx, rt, cmd.DB, coll)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		if !create {
			return nil, wire.NamespaceNotFound(fmt.Sprintf("ns does not exist: %s", ns))
		}
		primary, err := r.backend(rt.DB.Primary)
		if err != nil {
			return nil, err
		}
		targets = []*backend{primary}
	}
	fwd := forwardable(cmd)
	var raw rawReplies
	var first bson.Raw
	for _, b := range targets {
		reply, err := b.run(ctx, cmd.DB, fwd)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = reply
		}
		raw.add(b, reply)
	}
	out := bson.D{{Key: "raw", Value: raw.d}}
	for _, k := range []string{"numIndexesBefore", "numIndexesAfter", "nIndexesWas", "createdCollectionAutomatically"} {
		if v := first.Lookup(k); v.Type != 0 {
			out = append(out, bson.E{Key: k, Value: v})
		}
	}
	return wire.OK(out...), nil
}

func (r *Router) createIndexes(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	return r.forEachHolder(ctx, cmd, true)
}

func (r *Router) dropIndexes(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	return r.forEachHolder(ctx, cmd, false)
}

func (r *Router) collMod(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	return r.forEachHolder(ctx, cmd, false)
}

func (r *Router) drop(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	if err := checkWritable(cmd.DB); err != nil {
		return nil, err
	}
	ns := cmd.DB + "." + coll
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	rt, ok := r.cat.Route(ns)
	if !ok {
		return wire.OK(bson.E{Key: "ns", Value: ns}), nil
	}
	var nIndexes bson.RawValue
	for _, b := range r.dropOrder(rt.DB.Primary) {
		reply, err := b.run(ctx, cmd.DB, r.participantDrop(coll, b.Name != rt.DB.Primary))
		if isCode(err, codeNamespaceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if nIndexes.Type == 0 {
			nIndexes = reply.Lookup("nIndexesWas")
		}
	}
	if err := r.cat.DropCollection(ns); err != nil {
		return nil, err
	}
	out := []bson.E{{Key: "ns", Value: ns}}
	if nIndexes.Type != 0 {
		out = append(out, bson.E{Key: "nIndexesWas", Value: nIndexes})
	}
	return wire.OK(out...), nil
}

func (r *Router) dropDatabase(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	db := cmd.DB
	if err := checkWritable(db); err != nil {
		return nil, err
	}
	if err := r.dropShardedCollections(ctx, db); err != nil {
		return nil, err
	}
	for _, b := range r.order {
		reply, err := b.run(ctx, "admin", bson.D{{Key: "listDatabases", Value: 1}, {Key: "nameOnly", Value: true},
			{Key: "filter", Value: bson.D{{Key: "name", Value: db}}}})
		if err != nil {
			return nil, err
		}
		arr, _ := reply.Lookup("databases").ArrayOK()
		if vals, _ := arr.Values(); len(vals) == 0 {
			continue
		}
		if _, err := b.run(ctx, db, bson.D{{Key: "dropDatabase", Value: 1}}); err != nil {
			return nil, err
		}
	}
	if err := r.cat.DropDatabase(db); err != nil {
		return nil, err
	}
	return wire.OK(bson.E{Key: "dropped", Value: db}), nil
}

func (r *Router) renameCollection(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	if cmd.DB != "admin" {
		return nil, wire.Unauthorized("renameCollection may only be run against the admin database.")
	}
	from, fromDB, fromColl, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	to, _ := cmd.Lookup("to").StringValueOK()
	toDB, toColl, ok := splitNS(to)
	if !ok {
		return nil, &wire.Error{Code: 73, Name: "InvalidNamespace", Msg: fmt.Sprintf("Invalid target namespace: %q", to)}
	}
	if err := checkWritable(fromDB); err != nil {
		return nil, err
	}
	if toDB != fromDB {
		return nil, wire.IllegalOperation("the sandbox cannot rename a collection to another database (FerretDB does not support it)")
	}
	dropTarget := truthy(cmd.Lookup("dropTarget"))
	for _, ns := range sortedNS(from, to) {
		l := r.lockNS(ns)
		l.Lock()
		defer l.Unlock()
	}
	rt, ok := r.cat.Route(from)
	if !ok {
		return nil, wire.NamespaceNotFound("Source collection " + from + " does not exist")
	}
	sources, err := r.holders(ctx, rt, fromDB, fromColl)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, wire.NamespaceNotFound("Source collection " + from + " does not exist")
	}
	targets, err := r.holders(ctx, rt, toDB, toColl)
	if err != nil {
		return nil, err
	}
	if len(targets) > 0 && !dropTarget {
		return nil, &wire.Error{Code: 48, Name: "NamespaceExists", Msg: "target namespace exists"}
	}
	for _, b := range targets {
		if !slices.Contains(sources, b) {
			if _, err := b.run(ctx, toDB, bson.D{{Key: "drop", Value: toColl}}); err != nil && !isCode(err, codeNamespaceNotFound) {
				return nil, err
			}
		}
	}
	fwd := forwardable(cmd)
	for _, b := range sources {
		if _, err := b.run(ctx, "admin", fwd); err != nil {
			return nil, err
		}
	}
	if err := r.cat.RenameCollection(from, to); err != nil {
		return nil, err
	}
	if nrt, ok := r.cat.Route(to); ok && nrt.Sharded() {
		for _, b := range sources {
			if err := setCollection(ctx, b, toDB, toColl, nrt.Coll.Key, nrt.Coll.UUID); err != nil {
				return nil, err
			}
		}
	}
	return wire.OK(), nil
}

// sortedNS orders namespaces so locks are always taken in the same order.
func sortedNS(a, b string) []string {
	if a == b {
		return []string{a}
	}
	if a < b {
		return []string{a, b}
	}
	return []string{b, a}
}

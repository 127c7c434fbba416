package topology

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/namespaces"
)

// readInventory lists every user database's collections and views with their sizes,
// then the user-defined roles of admin and of each database.
func (d *discovery) readInventory(ctx context.Context) {
	d.readNamespaces(ctx, true)
}

// readNamespaces lists every user database's collections and views with their
// indexes; sized, also each collection's size and the user-defined roles of admin
// and of each database.
func (d *discovery) readNamespaces(ctx context.Context, sized bool) {
	dbs, err := listDatabases(ctx, d.client, d.e.timeout())
	if err != nil {
		d.problem(ctx, PartInventory, err)
		return
	}
	var (
		mu  sync.Mutex
		all []Namespace
		g   errgroup.Group
	)
	g.SetLimit(parallelism)
	for _, db := range dbs {
		g.Go(func() error {
			nss, err := listNamespaces(ctx, d.client.Database(db), d.e.timeout())
			if err != nil {
				d.problem(ctx, PartInventory+" of "+db, err)
				return nil
			}
			for i := range nss {
				if nss[i].Type == "collection" {
					if sized {
						d.sizeOf(ctx, &nss[i])
					}
					d.indexesOf(ctx, &nss[i])
				}
			}
			mu.Lock()
			all = append(all, nss...)
			mu.Unlock()
			return nil
		})
	}
	if sized {
		g.Go(func() error { d.readRoles(ctx, append([]string{"admin"}, dbs...)); return nil })
	}
	_ = g.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i].Name() < all[j].Name() })
	d.c.Namespaces = all
}

// listDatabases names the user databases (namespaces.UserDatabase says which).
func listDatabases(ctx context.Context, client *mongo.Client, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if namespaces.UserDatabase(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// listNamespaces lists a database's collections and views. MongoDB's own
// collections (views' definitions, time-series buckets, profiles, ...) are left
// out: the views and time-series collections themselves are listed by their names.
// Stored JavaScript (system.js) is listed, for validation to report.
func listNamespaces(ctx context.Context, db *mongo.Database, timeout time.Duration) ([]Namespace, error) {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	cur, err := db.ListCollections(lctx, bson.D{})
	cancel()
	if err != nil {
		return nil, err
	}
	docs, err := drain(ctx, cur, timeout)
	if err != nil {
		return nil, err
	}
	var out []Namespace
	for _, doc := range docs {
		name := str(doc, "name")
		if name == "" || !listed(db.Name(), name) {
			continue
		}
		ns := Namespace{DB: db.Name(), Collection: name, Type: str(doc, "type")}
		if ns.Type == "" {
			ns.Type = "collection" // before 3.4, listCollections had no type
		}
		if opts, ok := doc.Lookup("options").DocumentOK(); ok {
			ns.Options = cloneRaw(opts)
			ns.Capped = isTrue(opts.Lookup("capped"))
		}
		out = append(out, ns)
	}
	return out, nil
}

// listed reports whether the inventory lists a collection: user data, and the
// user data Shardlift does not migrate but validation reports.
func listed(db, coll string) bool {
	switch namespaces.Classify(db, coll) {
	case namespaces.UserData, namespaces.StoredJavaScript:
		return true
	}
	return false
}

// drain reads a cursor to the end, each batch bounded by the timeout.
func drain(ctx context.Context, cur *mongo.Cursor, timeout time.Duration) ([]bson.Raw, error) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		_ = cur.Close(cctx)
	}()
	var docs []bson.Raw
	for {
		nctx, cancel := context.WithTimeout(ctx, timeout)
		ok := cur.Next(nctx)
		cancel()
		if !ok {
			break
		}
		docs = append(docs, cloneRaw(cur.Current))
	}
	return docs, cur.Err()
}

// sizeOf fills a collection's document count and size: $collStats (3.6+, one
// document per shard through mongos), else the collStats command, else only
// estimatedDocumentCount.
func (d *discovery) sizeOf(ctx context.Context, ns *Namespace) {
	coll := d.client.Database(ns.DB).Collection(ns.Collection)
	if err := sizeFromCollStatsStage(ctx, coll, d.e.timeout(), ns); err == nil {
		return
	}
	reply, err := runCommand(ctx, d.client, d.e.timeout(), ns.DB, bson.D{{Key: "collStats", Value: ns.Collection}})
	if err == nil {
		if count, ok := asInt64(reply.Lookup("count")); ok {
			ns.Count = count
			ns.Size, ns.SizeKnown = asInt64(reply.Lookup("size"))
			if shards, ok := reply.Lookup("shards").DocumentOK(); ok {
				elems, _ := shards.Elements()
				for _, e := range elems {
					if doc, ok := e.Value().DocumentOK(); ok {
						if size, ok := asInt64(doc.Lookup("size")); ok {
							if ns.ShardSizes == nil {
								ns.ShardSizes = map[string]int64{}
							}
							ns.ShardSizes[e.Key()] = size
						}
					}
				}
			}
			return
		}
	}
	cctx, cancel := context.WithTimeout(ctx, d.e.timeout())
	defer cancel()
	count, countErr := coll.EstimatedDocumentCount(cctx)
	if countErr != nil {
		d.problem(ctx, PartSizes+" of "+ns.Name(), errors.Join(err, countErr))
		return
	}
	ns.Count = count
}

// sizeFromCollStatsStage runs [{$collStats: {storageStats: {}}}]: one result per
// shard holding the collection, with the shard's name.
func sizeFromCollStatsStage(ctx context.Context, coll *mongo.Collection, timeout time.Duration, ns *Namespace) error {
	actx, cancel := context.WithTimeout(ctx, timeout)
	cur, err := coll.Aggregate(actx, bson.A{bson.D{{Key: "$collStats", Value: bson.D{{Key: "storageStats", Value: bson.D{}}}}}})
	cancel()
	if err != nil {
		return err
	}
	docs, err := drain(ctx, cur, timeout)
	if err != nil {
		return err
	}
	if len(docs) == 0 {
		return errors.New("$collStats returned nothing")
	}
	var count, size int64
	perShard := map[string]int64{}
	for _, doc := range docs {
		stats, ok := doc.Lookup("storageStats").DocumentOK()
		if !ok {
			return errors.New("$collStats returned no storageStats")
		}
		c, okCount := asInt64(stats.Lookup("count"))
		s, okSize := asInt64(stats.Lookup("size"))
		if !okCount || !okSize {
			return errors.New("$collStats storageStats has no count or size")
		}
		count += c
		size += s
		if shard := str(doc, "shard"); shard != "" {
			perShard[shard] += s
		}
	}
	ns.Count, ns.Size, ns.SizeKnown = count, size, true
	if len(perShard) > 0 {
		ns.ShardSizes = perShard
	}
	return nil
}

// readUsers lists every user of the cluster with usersInfo forAllDBs. Credentials
// are never asked for (no showCredentials) and never decoded: only names, databases
// and role names are kept.
func (d *discovery) readUsers(ctx context.Context) {
	reply, err := d.command(ctx, "admin", bson.D{{Key: "usersInfo", Value: bson.D{{Key: "forAllDBs", Value: true}}}})
	if err != nil {
		d.problem(ctx, PartUsers, err)
		return
	}
	d.c.Users = parseUsers(reply)
}

// parseUsers keeps user, db and roles of each user, dropping every other field
// (credentials, mechanisms, custom data).
func parseUsers(reply bson.Raw) []User {
	var out []User
	for _, doc := range docsOf(reply, "users") {
		out = append(out, User{Name: str(doc, "user"), DB: str(doc, "db"), Roles: roleRefs(doc)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DB+"."+out[i].Name < out[j].DB+"."+out[j].Name })
	return out
}

// readRoles lists the user-defined roles of each database.
func (d *discovery) readRoles(ctx context.Context, dbs []string) {
	var roles []Role
	for _, db := range dbs {
		reply, err := d.command(ctx, db, bson.D{{Key: "rolesInfo", Value: 1}, {Key: "showBuiltinRoles", Value: false}})
		if err != nil {
			d.problem(ctx, PartRoles+" of "+db, err)
			continue
		}
		for _, doc := range docsOf(reply, "roles") {
			if isTrue(doc.Lookup("isBuiltin")) {
				continue
			}
			roles = append(roles, Role{Name: str(doc, "role"), DB: str(doc, "db"), Roles: roleRefs(doc)})
		}
	}
	d.c.Roles = roles
}

// docsOf is the documents of an array field of a reply.
func docsOf(reply bson.Raw, key string) []bson.Raw {
	arr, _ := reply.Lookup(key).ArrayOK()
	values, _ := arr.Values()
	var out []bson.Raw
	for _, v := range values {
		if doc, ok := v.DocumentOK(); ok {
			out = append(out, doc)
		}
	}
	return out
}

func roleRefs(doc bson.Raw) []RoleRef {
	var out []RoleRef
	for _, r := range docsOf(doc, "roles") {
		out = append(out, RoleRef{Role: str(r, "role"), DB: str(r, "db")})
	}
	return out
}

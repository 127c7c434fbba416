package oplog

import (
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// DDLKind is the kind of a DDL change.
type DDLKind uint8

const (
	// DDLCreateCollection: create NS with Options (the create command's options
	// without the name and idIndex: capped, size, max, validator, collation,
	// clusteredIndex, expireAfterSeconds, ...).
	DDLCreateCollection DDLKind = iota + 1
	// DDLCreateView: create the view NS; Options is {viewOn, pipeline[, collation]}.
	DDLCreateView
	// DDLModifyView: redefine the view NS; Options is {viewOn, pipeline} or nil
	// when the entry did not carry the whole definition (read it from the
	// source's listCollections then).
	DDLModifyView
	// DDLDrop: drop the collection or view NS.
	DDLDrop
	// DDLDropDatabase: drop the database NS.DB.
	DDLDropDatabase
	// DDLRename: rename NS to To, replacing To when DropTarget.
	DDLRename
	// DDLCreateIndexes: create Indexes (specs with key, name and options) on NS.
	DDLCreateIndexes
	// DDLDropIndexes: drop the indexes IndexNames ("*": all but _id) of NS, or
	// the one whose key pattern is Options.index.
	DDLDropIndexes
	// DDLCollMod: collMod NS with Options (validator, index: {name, hidden, ...}, ...).
	DDLCollMod
	// DDLEmptyCapped: delete every document of the capped collection NS.
	DDLEmptyCapped
	// DDLConvertToCapped: make NS capped with Options {size[, max]}.
	DDLConvertToCapped
	// DDLShardCollection: shard NS with Options {key, unique}, as the source did
	// during the migration (see sharding.go).
	DDLShardCollection
	// DDLRefineShardKey: refine the shard key of NS to Options {key}.
	DDLRefineShardKey
)

func (k DDLKind) String() string {
	switch k {
	case DDLCreateCollection:
		return "create"
	case DDLCreateView:
		return "createView"
	case DDLModifyView:
		return "modifyView"
	case DDLDrop:
		return "drop"
	case DDLDropDatabase:
		return "dropDatabase"
	case DDLRename:
		return "renameCollection"
	case DDLCreateIndexes:
		return "createIndexes"
	case DDLDropIndexes:
		return "dropIndexes"
	case DDLCollMod:
		return "collMod"
	case DDLEmptyCapped:
		return "emptycapped"
	case DDLConvertToCapped:
		return "convertToCapped"
	case DDLShardCollection:
		return "shardCollection"
	case DDLRefineShardKey:
		return "refineCollectionShardKey"
	}
	return "unknown"
}

// DDL is a change to collections, views or indexes, to apply on the destination
// through mongos once (copies matched by DDLKey) and after the appliers have drained the
// namespaces it touches. Index specs are as the destination takes them
// (DestinationIndexSpec); they and collection options must go through
// RelaxIndexForSync and RelaxCollectionOptionsForSync first.
//
// Apply it idempotently: a resumed sync replays DDL the destination may
// already have, and a view can show up both as a create command and as its
// system.views insert. Creating what exists with the same options, dropping
// what is missing and dropping a missing index are successes.
type DDL struct {
	Kind       DDLKind
	NS         Namespace
	To         Namespace  // DDLRename
	DropTarget bool       // DDLRename
	Options    bson.Raw   // see the kinds
	Indexes    []bson.Raw // DDLCreateIndexes
	IndexNames []string   // DDLDropIndexes
	// UUID is the collection UUID the entry carries (its ui): the collection the
	// DDL changes (the renamed one for DDLRename), nil when the entry has none
	// (3.6 at FCV 3.4, dropDatabase, view definitions).
	UUID []byte
	// DropTargetUUID is the UUID of the collection a DDLRename replaced (4.2+
	// write dropTarget as that UUID; older releases write true).
	DropTargetUUID []byte
}

// commandDDL translates a command entry on a user database. It returns nil for
// commands with nothing to apply (index build start and abort, dbCheck,
// sharding catalog bookkeeping, DDL on system collections).
func commandDDL(e *Entry) (*DDL, error) {
	first, _ := firstElement(e.O)
	field := "o." + string(e.Command)
	target := func() (Namespace, bool, error) {
		if first.t != bsontype.String {
			return Namespace{}, false, malformed(e.TS, field, "is %s, want a collection name", typeName(first.t))
		}
		ns := Namespace{DB: e.NS.DB, Coll: string(str(first.val))}
		if ns.Coll == "" {
			return ns, false, malformed(e.TS, field, "empty collection name")
		}
		return ns, userNamespace(ns), nil
	}
	switch e.Command {
	case CmdStartIndexBuild, CmdAbortIndexBuild, CmdDBCheck, CmdModifyShardingIndexCatalog:
		// The index is created when its build commits; an aborted build left
		// nothing. dbCheck and the sharding index catalog are server bookkeeping.
		return nil, nil
	case CmdImportCollection, CmdCreateGlobalIndex, CmdDropGlobalIndex:
		return nil, unsupported(e.TS, field, "%s cannot be replayed through mongos", e.Command)
	case CmdDropDatabase:
		return &DDL{Kind: DDLDropDatabase, NS: Namespace{DB: e.NS.DB}}, nil
	case CmdRenameCollection:
		return renameDDL(e, first)
	}
	ns, user, err := target()
	if err != nil || !user {
		return nil, err
	}
	switch e.Command {
	case CmdCreate:
		return createDDL(e, ns)
	case CmdDrop:
		return &DDL{Kind: DDLDrop, NS: ns}, nil
	case CmdCreateIndexes:
		if ix, ok := lookup(e.O, "indexes"); ok {
			specs, err := indexSpecs(e.TS, "o.indexes", ix)
			return &DDL{Kind: DDLCreateIndexes, NS: ns, Indexes: specs}, err
		}
		// 4.2 and later write one entry per index, the spec inline.
		return &DDL{Kind: DDLCreateIndexes, NS: ns, Indexes: []bson.Raw{DestinationIndexSpec(without(e.O, string(e.Command)))}}, nil
	case CmdCommitIndexBuild:
		ix, ok := lookup(e.O, "indexes")
		if !ok {
			return nil, malformed(e.TS, "o.indexes", "missing from commitIndexBuild")
		}
		specs, err := indexSpecs(e.TS, "o.indexes", ix)
		return &DDL{Kind: DDLCreateIndexes, NS: ns, Indexes: specs}, err
	case CmdDropIndexes, CmdDeleteIndexes, CmdDeleteIndex:
		return dropIndexesDDL(e, ns)
	case CmdCollMod:
		opts := without(e.O, string(e.Command))
		if _, ok := lookup(opts, "viewOn"); ok {
			return &DDL{Kind: DDLModifyView, NS: ns, Options: opts}, nil
		}
		if _, ok := lookup(opts, "pipeline"); ok {
			return &DDL{Kind: DDLModifyView, NS: ns, Options: opts}, nil
		}
		return &DDL{Kind: DDLCollMod, NS: ns, Options: opts}, nil
	case CmdEmptyCapped:
		return &DDL{Kind: DDLEmptyCapped, NS: ns}, nil
	case CmdConvertToCapped:
		return &DDL{Kind: DDLConvertToCapped, NS: ns, Options: without(e.O, string(e.Command))}, nil
	}
	return nil, malformed(e.TS, "o", "unknown command %q", e.Command)
}

// createDDL translates create: a collection, or a view when viewOn is set.
func createDDL(e *Entry, ns Namespace) (*DDL, error) {
	if _, ok := lookup(e.O, "timeseries"); ok {
		return nil, unsupported(e.TS, "o.timeseries", "time-series collection %s was created on the source during the migration; Shardlift does not migrate time-series collections", ns)
	}
	if on, ok := lookup(e.O, "viewOn"); ok {
		if on.t == bsontype.String && strings.HasPrefix(string(str(on.val)), "system.buckets.") {
			return nil, unsupported(e.TS, "o.viewOn", "time-series collection %s was created on the source during the migration; Shardlift does not migrate time-series collections", ns)
		}
		return &DDL{Kind: DDLCreateView, NS: ns, Options: without(e.O, "create")}, nil
	}
	return &DDL{Kind: DDLCreateCollection, NS: ns, Options: without(e.O, "create", "idIndex")}, nil
}

// renameDDL translates renameCollection {renameCollection: "db.a", to: "db.b",
// dropTarget: bool or UUID (4.2+), stayTemp}.
func renameDDL(e *Entry, first element) (*DDL, error) {
	if first.t != bsontype.String {
		return nil, malformed(e.TS, "o.renameCollection", "is %s, want a namespace", typeName(first.t))
	}
	to, ok := lookup(e.O, "to")
	if !ok || to.t != bsontype.String {
		return nil, malformed(e.TS, "o.to", "renameCollection needs the target namespace")
	}
	from, dest := ParseNamespace(string(str(first.val))), ParseNamespace(string(str(to.val)))
	if from.DB == "" || from.Coll == "" || dest.DB == "" || dest.Coll == "" {
		return nil, malformed(e.TS, "o", "renameCollection from %q to %q: want db.collection names", from, dest)
	}
	fromUser, toUser := userNamespace(from), userNamespace(dest)
	switch {
	case !fromUser && !toUser:
		return nil, nil
	case fromUser != toUser:
		return nil, unsupported(e.TS, "o", "renameCollection from %s to %s moves a collection between user data and a namespace Shardlift does not migrate", from, dest)
	}
	d := &DDL{Kind: DDLRename, NS: from, To: dest}
	if dt, ok := lookup(e.O, "dropTarget"); ok {
		d.DropTarget = dt.t == bsontype.Binary || dt.truthy()
		if dt.t == bsontype.Binary && len(dt.val) > 5 {
			d.DropTargetUUID = dt.val[5:]
		}
	}
	return d, nil
}

func dropIndexesDDL(e *Entry, ns Namespace) (*DDL, error) {
	ix, ok := lookup(e.O, "index")
	if !ok {
		return nil, malformed(e.TS, "o.index", "missing from %s", e.Command)
	}
	d := &DDL{Kind: DDLDropIndexes, NS: ns}
	switch ix.t {
	case bsontype.String:
		d.IndexNames = []string{string(str(ix.val))}
	case bsontype.Array:
		it, _ := newIter(ix.val)
		for {
			el, ok := it.next()
			if !ok {
				break
			}
			if el.t != bsontype.String {
				return nil, malformed(e.TS, "o.index", "an index name list holds %s", typeName(el.t))
			}
			d.IndexNames = append(d.IndexNames, string(str(el.val)))
		}
		if it.bad {
			return nil, malformed(e.TS, "o.index", "corrupt BSON")
		}
	case bsontype.EmbeddedDocument:
		d.Options = without(e.O, string(e.Command))
	default:
		return nil, malformed(e.TS, "o.index", "is %s, want a name or a key pattern", typeName(ix.t))
	}
	return d, nil
}

// indexSpecs copies the specs of an indexes array as the destination takes them
// (DestinationIndexSpec).
func indexSpecs(ts primitive.Timestamp, field string, ix element) ([]bson.Raw, error) {
	if ix.t != bsontype.Array {
		return nil, malformed(ts, field, "is %s, want an array", typeName(ix.t))
	}
	var specs []bson.Raw
	it, _ := newIter(ix.val)
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		if el.t != bsontype.EmbeddedDocument {
			return nil, malformed(ts, field, "an index spec is %s", typeName(el.t))
		}
		specs = append(specs, DestinationIndexSpec(el.val))
	}
	if it.bad {
		return nil, malformed(ts, field, "corrupt BSON")
	}
	if len(specs) == 0 {
		return nil, malformed(ts, field, "no index specs")
	}
	return specs, nil
}

// viewDDL translates a write to <db>.system.views, the view catalog: MongoDB
// records view creation, modification and removal as inserts, updates and
// deletes of {_id: "db.view", viewOn, pipeline, collation} documents there.
func viewDDL(e *Entry) (*DDL, error) {
	key := e.O
	if e.Op == OpUpdate {
		key = e.O2
	}
	id, ok := lookup(key, "_id")
	if !ok || id.t != bsontype.String {
		return nil, malformed(e.TS, "o._id", "a view definition is named by a string _id")
	}
	ns := ParseNamespace(string(str(id.val)))
	if ns.DB != e.NS.DB || ns.Coll == "" {
		return nil, malformed(e.TS, "o._id", "view %q is not in database %q", ns, e.NS.DB)
	}
	switch e.Op {
	case OpDelete:
		return &DDL{Kind: DDLDrop, NS: ns}, nil
	case OpInsert:
		if err := checkViewOn(e, ns); err != nil {
			return nil, err
		}
		return &DDL{Kind: DDLCreateView, NS: ns, Options: without(e.O, "_id")}, nil
	}
	if e.Update != UpdateReplacement {
		return &DDL{Kind: DDLModifyView, NS: ns}, nil
	}
	if err := checkViewOn(e, ns); err != nil {
		return nil, err
	}
	return &DDL{Kind: DDLModifyView, NS: ns, Options: without(e.O, "_id")}, nil
}

// systemIndexDDL translates an insert into <db>.system.indexes: how a 3.6 server at
// FCV 3.4 (collections without UUIDs) logs an index build, the spec naming its
// collection in ns.
func systemIndexDDL(e *Entry) (*DDL, error) {
	if e.Op != OpInsert {
		return nil, nil
	}
	nsEl, ok := lookup(e.O, "ns")
	if !ok || nsEl.t != bsontype.String {
		return nil, malformed(e.TS, "o.ns", "an index spec in system.indexes names its collection in ns")
	}
	ns := ParseNamespace(string(str(nsEl.val)))
	if ns.DB != e.NS.DB || ns.Coll == "" {
		return nil, malformed(e.TS, "o.ns", "index of %q logged in database %q", ns, e.NS.DB)
	}
	if !userNamespace(ns) {
		return nil, nil
	}
	return &DDL{Kind: DDLCreateIndexes, NS: ns, Indexes: []bson.Raw{DestinationIndexSpec(e.O)}}, nil
}

// checkViewOn refuses the views MongoDB creates for time-series collections.
func checkViewOn(e *Entry, ns Namespace) error {
	_, ts := lookup(e.O, "timeseries")
	on, ok := lookup(e.O, "viewOn")
	if ts || ok && on.t == bsontype.String && strings.HasPrefix(string(str(on.val)), "system.buckets.") {
		return unsupported(e.TS, "o.viewOn", "time-series collection %s was created on the source during the migration; Shardlift does not migrate time-series collections", ns)
	}
	return nil
}

// without copies a document leaving out the named top-level fields.
func without(doc []byte, names ...string) bson.Raw {
	it, _ := newIter(doc)
	off, dst := startDoc(make([]byte, 0, len(doc)))
outer:
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		for _, n := range names {
			if el.is(n) {
				continue outer
			}
		}
		dst = append(dst, el.raw...)
	}
	return bson.Raw(endDoc(dst, off))
}

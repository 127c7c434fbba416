package shard

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// DDL: each command is applied (to FerretDB, or to the front's catalog for what FerretDB
// lacks: views, TTL/partial/hashed/text indexes, collMod) under the write lock, then
// logged as the `c` entry MongoDB writes.

func namespaceExists(ns string) *wire.Error {
	return &wire.Error{Code: 48, Name: "NamespaceExists", Msg: "Collection " + ns + " already exists."}
}

func indexNotFound(msg string) *wire.Error {
	return &wire.Error{Code: 27, Name: "IndexNotFound", Msg: msg}
}

func cmdNS(db string) string { return db + ".$cmd" }

// setCollection answers the router's _sandboxSetCollection: the collection's UUID and
// shard key, used in this shard's oplog entries from now on.
func (n *node) setCollection(cmd *wire.Command) bson.Raw {
	coll, ok := collName(cmd)
	if !ok {
		return wire.ErrorReply(wire.BadValue("_sandboxSetCollection needs a collection name"))
	}
	sub, data, ok := cmd.Lookup("uuid").BinaryOK()
	if !ok || sub != 4 || len(data) != 16 {
		return wire.ErrorReply(wire.BadValue("_sandboxSetCollection needs uuid as a UUID (binary subtype 4)"))
	}
	key, hasKey := cmd.Lookup("key").DocumentOK()
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	_, err := n.cat.update(cmd.DB+"."+coll, func(ci *collInfo) {
		ci.UUID = primitive.Binary{Subtype: 4, Data: append([]byte(nil), data...)}
		ci.Key = nil
		if hasKey {
			ci.Key = append(bson.Raw(nil), key...)
		}
	})
	if err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK()
}

func (n *node) create(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, ok := collName(cmd)
	if !ok {
		return wire.ErrorReply(wire.BadValue("create needs a collection name"))
	}
	ns := cmd.DB + "." + coll
	if cmd.DB == "local" {
		if isOplog(cmd.DB, coll) {
			return wire.ErrorReply(namespaceExists(ns))
		}
		return n.passthrough(ctx, cmd)
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	if ci, ok := n.cat.get(ns); ok && (ci.Exists || ci.isView()) {
		return wire.ErrorReply(namespaceExists(ns))
	}
	if viewOn, ok := cmd.Lookup("viewOn").StringValueOK(); ok {
		pipeline := cmd.Lookup("pipeline")
		if pipeline.Type == 0 {
			pipeline = emptyArray
		}
		if pipeline.Type != bsontype.Array {
			return wire.ErrorReply(wire.BadValue("'pipeline' must be an array"))
		}
		if _, err := n.cat.update(ns, func(ci *collInfo) {
			ci.ViewOn, ci.Pipeline, ci.Exists = viewOn, pipeline, false
		}); err != nil {
			return wire.ErrorReply(err)
		}
		o := mustMarshal(bson.D{{Key: "create", Value: coll}, {Key: "viewOn", Value: viewOn}, {Key: "pipeline", Value: pipeline}})
		if err := n.oplog.append(draft{op: "c", ns: cmdNS(cmd.DB), o: o}); err != nil {
			return wire.ErrorReply(err)
		}
		return wire.OK()
	}
	reply, err := n.be.run(ctx, cmd.DB, stripped(cmd.Body))
	if err != nil {
		return relay(nil, err)
	}
	if err := n.be.ensureIDIndex(ctx, cmd.DB, coll); err != nil {
		return wire.ErrorReply(err)
	}
	ci, err := n.cat.update(ns, func(ci *collInfo) { ci.Exists = true })
	if err != nil {
		return wire.ErrorReply(err)
	}
	var options bson.D
	for _, k := range []string{"capped", "size", "max"} {
		if v := cmd.Lookup(k); v.Type != 0 {
			options = append(options, bson.E{Key: k, Value: v})
		}
	}
	if err := n.oplog.append(n.front.forms.createDraft(cmd.DB, coll, ci.UUID.Data, options)); err != nil {
		return wire.ErrorReply(err)
	}
	return reply
}

var emptyArray = bson.RawValue{Type: bsontype.Array, Value: emptyDoc}

func (n *node) drop(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, ok := collName(cmd)
	if !ok {
		return wire.ErrorReply(wire.BadValue("drop needs a collection name"))
	}
	ns := cmd.DB + "." + coll
	if isOplog(cmd.DB, coll) {
		return wire.ErrorReply(&wire.Error{Code: 20, Name: "IllegalOperation", Msg: "cannot drop the shard's oplog"})
	}
	if cmd.DB == "local" {
		return n.passthrough(ctx, cmd)
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	ci, known := n.cat.get(ns)
	if known && ci.isView() {
		if err := n.cat.remove(ns); err != nil {
			return wire.ErrorReply(err)
		}
		o := mustMarshal(bson.D{{Key: "drop", Value: coll}})
		if err := n.oplog.append(draft{op: "c", ns: cmdNS(cmd.DB), o: o}); err != nil {
			return wire.ErrorReply(err)
		}
		return wire.OK(bson.E{Key: "ns", Value: ns}, bson.E{Key: "nIndexesWas", Value: int32(0)})
	}
	var numRecordsWas int64
	if known && ci.Exists {
		var err error
		if numRecordsWas, err = n.countDocs(ctx, cmd.DB, coll); err != nil {
			return relay(nil, err)
		}
	}
	reply, err := n.be.run(ctx, cmd.DB, stripped(cmd.Body))
	if err != nil {
		return relay(nil, err)
	}
	if !known {
		return reply
	}
	if err := n.cat.remove(ns); err != nil {
		return wire.ErrorReply(err)
	}
	if ci.Exists {
		// A sharded DDL coordinator (6.0+) marks the participants' copies fromMigrate.
		d := draft{op: "c", ns: cmdNS(cmd.DB), ui: ci.UUID.Data,
			o: mustMarshal(bson.D{{Key: "drop", Value: coll}}), fromMigrate: boolField(cmd, "fromMigrate", false)}
		if n.front.forms.dropCounts {
			d.o2 = numRecords(numRecordsWas)
		}
		if err := n.oplog.append(d); err != nil {
			return wire.ErrorReply(err)
		}
	}
	return reply
}

func (n *node) dropDatabase(ctx context.Context, cmd *wire.Command) bson.Raw {
	if cmd.DB == "local" {
		return wire.ErrorReply(&wire.Error{Code: 20, Name: "IllegalOperation", Msg: "cannot drop the local database: it holds the shard's oplog"})
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	// FerretDB removes the database's file: the front lets go of it first (sqlFiles).
	if err := n.be.files.release(cmd.DB); err != nil {
		return wire.ErrorReply(err)
	}
	reply, err := n.be.run(ctx, cmd.DB, stripped(cmd.Body))
	if err != nil {
		return relay(nil, err)
	}
	var drafts []draft
	for _, ci := range n.cat.inDB(cmd.DB) {
		if err := n.cat.remove(ci.NS); err != nil {
			return wire.ErrorReply(err)
		}
		if !ci.Exists && !ci.isView() {
			continue
		}
		_, coll, _ := strings.Cut(ci.NS, ".")
		d := draft{op: "c", ns: cmdNS(cmd.DB), o: mustMarshal(bson.D{{Key: "drop", Value: coll}})}
		if ci.Exists {
			d.ui = ci.UUID.Data
		}
		drafts = append(drafts, d)
	}
	if len(drafts) > 0 {
		drafts = append(drafts, draft{op: "c", ns: cmdNS(cmd.DB), o: mustMarshal(bson.D{{Key: "dropDatabase", Value: int32(1)}})})
	}
	if err := n.oplog.append(drafts...); err != nil {
		return wire.ErrorReply(err)
	}
	return reply
}

func (n *node) renameCollection(ctx context.Context, cmd *wire.Command) bson.Raw {
	from, _ := cmd.Lookup(cmd.Name).StringValueOK()
	to, _ := cmd.Lookup("to").StringValueOK()
	fromDB, fromColl, ok1 := strings.Cut(from, ".")
	toDB, toColl, ok2 := strings.Cut(to, ".")
	if !ok1 || !ok2 || fromColl == "" || toColl == "" {
		return wire.ErrorReply(wire.BadValue(fmt.Sprintf("renameCollection needs full namespaces, got %q to %q", from, to)))
	}
	if fromDB != toDB {
		return wire.ErrorReply(notImplemented("renameCollection across databases is not supported by the sandbox (FerretDB)"))
	}
	if fromDB == "local" {
		return wire.ErrorReply(&wire.Error{Code: 20, Name: "IllegalOperation", Msg: "cannot rename collections of the local database"})
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	src, ok := n.cat.get(from)
	if ok && src.isView() {
		return wire.ErrorReply(notSupportedOnView(from))
	}
	if !ok || !src.Exists {
		return wire.ErrorReply(wire.NamespaceNotFound("Source collection " + from + " does not exist"))
	}
	dst, dstKnown := n.cat.get(to)
	var dropped []byte
	var droppedRecords int64
	if dstKnown && (dst.Exists || dst.isView()) {
		if !boolField(cmd, "dropTarget", false) || dst.isView() {
			return wire.ErrorReply(&wire.Error{Code: 48, Name: "NamespaceExists", Msg: "target namespace exists"})
		}
		var err error
		if droppedRecords, err = n.countDocs(ctx, toDB, toColl); err != nil {
			return relay(nil, err)
		}
		if _, err := n.be.run(ctx, toDB, bson.D{{Key: "drop", Value: toColl}}); err != nil {
			return relay(nil, err)
		}
		dropped = dst.UUID.Data
	}
	if err := n.renameInBackend(ctx, fromDB, fromColl, toColl); err != nil {
		return relay(nil, err)
	}
	if err := n.cat.rename(from, to); err != nil {
		return wire.ErrorReply(err)
	}
	if err := n.oplog.append(n.front.forms.renameDraft(src, to, dropped, droppedRecords)); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK()
}

// renameInBackend renames a collection in FerretDB, which refuses names with a dot
// in renameCollection (MongoDB's $out renames tmp.agg_out.<uuid>): those are
// copied, documents and indexes, and the source dropped.
func (n *node) renameInBackend(ctx context.Context, db, from, to string) error {
	if !strings.Contains(from, ".") && !strings.Contains(to, ".") {
		_, err := n.be.run(ctx, "admin", bson.D{{Key: "renameCollection", Value: db + "." + from}, {Key: "to", Value: db + "." + to}})
		return err
	}
	if _, err := n.be.run(ctx, db, bson.D{{Key: "create", Value: to}}); err != nil {
		return err
	}
	if err := n.be.ensureIDIndex(ctx, db, to); err != nil {
		return err
	}
	indexes, err := n.be.indexes(ctx, db, from)
	if err != nil {
		return err
	}
	var specs []bson.Raw
	for _, spec := range indexes {
		if name, _ := spec.Lookup("name").StringValueOK(); name != "_id_" {
			specs = append(specs, stripped(spec, "v", "ns"))
		}
	}
	if len(specs) > 0 {
		if err := n.be.createIndexes(ctx, db, to, specs); err != nil {
			return err
		}
	}
	docs, err := n.be.find(ctx, db, from, nil, nil, 0)
	if err != nil {
		return err
	}
	for start := 0; start < len(docs); start += 1000 {
		batch := bson.A{}
		for _, d := range docs[start:min(start+1000, len(docs))] {
			batch = append(batch, d)
		}
		reply, err := n.be.run(ctx, db, bson.D{{Key: "insert", Value: to}, {Key: "documents", Value: batch}})
		if err != nil {
			return err
		}
		if we := reply.Lookup("writeErrors"); we.Type != 0 {
			return fmt.Errorf("copy %s.%s to %s for a rename: %s", db, from, to, we)
		}
	}
	_, err = n.be.run(ctx, db, bson.D{{Key: "drop", Value: from}})
	return err
}

// renameDraft is the entry of a rename; dropped is the UUID of the target it replaced.
// 3.6 always writes dropTarget (false when nothing was dropped); 4.2 and later count the
// dropped target's documents in o2.
func (f forms) renameDraft(src collInfo, to string, dropped []byte, droppedRecords int64) draft {
	db, _, _ := strings.Cut(src.NS, ".")
	o := bson.D{{Key: "renameCollection", Value: src.NS}, {Key: "to", Value: to}, {Key: "stayTemp", Value: false}}
	d := draft{op: "c", ns: cmdNS(db), ui: src.UUID.Data}
	switch {
	case dropped != nil && f.uuids:
		o = append(o, bson.E{Key: "dropTarget", Value: primitive.Binary{Subtype: 4, Data: dropped}})
	case f.renameFlag:
		o = append(o, bson.E{Key: "dropTarget", Value: dropped != nil})
	}
	if dropped != nil && f.dropCounts {
		d.o2 = numRecords(droppedRecords)
	}
	d.o = mustMarshal(o)
	return d
}

// numRecords is the o2 of a drop: how many documents the collection held.
func numRecords(n int64) bson.Raw {
	if n <= math.MaxInt32 {
		return mustMarshal(bson.D{{Key: "numRecords", Value: int32(n)}})
	}
	return mustMarshal(bson.D{{Key: "numRecords", Value: n}})
}

// countDocs is how many documents a collection holds.
func (n *node) countDocs(ctx context.Context, db, coll string) (int64, error) {
	r, err := n.be.run(ctx, db, bson.D{{Key: "count", Value: coll}})
	if err != nil {
		return 0, err
	}
	c, _ := r.Lookup("n").AsInt64OK()
	return c, nil
}

// ---- indexes ----

// Index options FerretDB keeps itself (it rejects "v" and adds its own); overlay options it lacks but that do not change
// which documents the index covers (kept by the front and shown in listIndexes);
// anything else makes the whole index a front-kept ("virtual") one.
var (
	backendIndexOptions = map[string]bool{"unique": true}
	overlayIndexOptions = map[string]bool{"sparse": true, "expireAfterSeconds": true, "hidden": true}
)

// normalizeIndexSpec orders a createIndexes spec as listIndexes shows it: v, key, name,
// then the options, without the obsolete ones.
func normalizeIndexSpec(spec bson.Raw) (bson.Raw, error) {
	key, ok := spec.Lookup("key").DocumentOK()
	if !ok {
		return nil, &wire.Error{Code: 9, Name: "FailedToParse", Msg: "The 'key' field is a required property of an index specification"}
	}
	name, ok := spec.Lookup("name").StringValueOK()
	if !ok || name == "" {
		return nil, &wire.Error{Code: 9, Name: "FailedToParse", Msg: "The 'name' field is a required property of an index specification"}
	}
	v := spec.Lookup("v")
	if v.Type == 0 {
		v = bson.RawValue{Type: bsontype.Int32, Value: bsoncore.AppendInt32(nil, 2)}
	}
	idx, b := bsoncore.AppendDocumentStart(nil)
	b = appendValue(b, "v", v)
	b = bsoncore.AppendDocumentElement(b, "key", key)
	b = bsoncore.AppendStringElement(b, "name", name)
	elems, _ := spec.Elements()
	for _, e := range elems {
		switch e.Key() {
		case "v", "key", "name", "ns", "background":
		default:
			b = append(b, e...)
		}
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b, nil
}

// splitIndexSpec decides where an index lives: FerretDB (backend spec plus overlay
// options kept by the front) or the front alone (virtual).
func splitIndexSpec(spec bson.Raw) (backendSpec, overlay bson.Raw, virtual bool) {
	key := spec.Lookup("key").Document()
	fields, _ := key.Elements()
	for _, f := range fields {
		dir, ok := asFloat(f.Value())
		if !ok || (dir != 1 && dir != -1) {
			return nil, nil, true
		}
	}
	bIdx, bb := bsoncore.AppendDocumentStart(nil)
	oIdx, ob := bsoncore.AppendDocumentStart(nil)
	elems, _ := spec.Elements()
	for _, e := range elems {
		k := e.Key()
		switch {
		case k == "v":
		case k == "key" || k == "name" || backendIndexOptions[k]:
			bb = append(bb, e...)
		case overlayIndexOptions[k]:
			ob = append(ob, e...)
		default:
			return nil, nil, true
		}
	}
	bb, _ = bsoncore.AppendDocumentEnd(bb, bIdx)
	ob, _ = bsoncore.AppendDocumentEnd(ob, oIdx)
	return bb, ob, false
}

// mergedIndexes is the index list as the client sees it: FerretDB's, with the front's
// overlay options, then the front's virtual indexes.
func mergedIndexes(backend []bson.Raw, ci collInfo) []bson.Raw {
	out := make([]bson.Raw, 0, len(backend)+len(ci.Indexes))
	for _, spec := range backend {
		name, _ := spec.Lookup("name").StringValueOK()
		if i, ok := ci.index(name); ok && !ci.Indexes[i].Virtual {
			spec = withOptions(spec, ci.Indexes[i].Spec)
		}
		out = append(out, spec)
	}
	for _, ix := range ci.Indexes {
		if ix.Virtual {
			out = append(out, ix.Spec)
		}
	}
	return out
}

// withOptions returns spec with the fields of opts set (replaced in place or appended).
func withOptions(spec, opts bson.Raw) bson.Raw {
	elems, _ := spec.Elements()
	extra, _ := opts.Elements()
	idx, b := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		if v, err := opts.LookupErr(e.Key()); err == nil {
			b = appendValue(b, e.Key(), v)
			continue
		}
		b = append(b, e...)
	}
	for _, e := range extra {
		if _, err := spec.LookupErr(e.Key()); err != nil {
			b = append(b, e...)
		}
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

func isEmptyDoc(d bson.Raw) bool { return len(d) <= len(emptyDoc) }

func specName(spec bson.Raw) string { return str(spec.Lookup("name")) }

func (n *node) createIndexes(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, ok := collName(cmd)
	if !ok {
		return wire.ErrorReply(wire.BadValue("createIndexes needs a collection name"))
	}
	if cmd.DB == "local" {
		return n.passthrough(ctx, cmd)
	}
	ns := cmd.DB + "." + coll
	rawSpecs, err := statements(cmd, "indexes")
	if err != nil {
		return wire.ErrorReply(err)
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	ci, _ := n.cat.get(ns)
	if ci.isView() {
		return wire.ErrorReply(notSupportedOnView(ns))
	}
	existing, err := n.be.indexes(ctx, cmd.DB, coll)
	if err != nil {
		return relay(nil, err)
	}
	numBefore := max(len(mergedIndexes(existing, ci)), 1) // a new collection starts with its _id index
	type planned struct {
		spec, backend, overlay bson.Raw
		virtual                bool
	}
	var plan []planned
	var toBackend []bson.Raw
	for _, raw := range rawSpecs {
		spec, err := normalizeIndexSpec(raw)
		if err != nil {
			return wire.ErrorReply(err)
		}
		name := specName(spec)
		if i, ok := ci.index(name); ok && ci.Indexes[i].Virtual {
			if !sameIndex(ci.Indexes[i].Spec, spec) {
				return wire.ErrorReply(&wire.Error{Code: 85, Name: "IndexOptionsConflict", Msg: "An existing index has the same name as the requested index but different options: " + name})
			}
			continue
		}
		backendSpec, overlay, virtual := splitIndexSpec(spec)
		if virtual && slices.ContainsFunc(existing, func(s bson.Raw) bool { return specName(s) == name }) {
			return wire.ErrorReply(&wire.Error{Code: 85, Name: "IndexOptionsConflict", Msg: "An existing index has the same name as the requested index but different options: " + name})
		}
		plan = append(plan, planned{spec, backendSpec, overlay, virtual})
		if !virtual {
			toBackend = append(toBackend, backendSpec)
		}
	}

	created := !ci.Exists
	if ci, err = n.ensureCollection(ctx, ns); err != nil {
		return errorReply(err, ns)
	}
	var newSpecs []bson.Raw
	for _, p := range plan {
		name := specName(p.spec)
		if p.virtual || !slices.ContainsFunc(existing, func(s bson.Raw) bool { return specName(s) == name }) {
			newSpecs = append(newSpecs, p.spec)
		}
	}
	build, err := n.startIndexBuild(ctx, ci, newSpecs, created)
	if err != nil {
		return relay(nil, err) // FerretDB unreachable: HostUnreachable, which clients retry
	}
	if len(toBackend) > 0 {
		if err = n.be.createIndexes(ctx, cmd.DB, coll, toBackend); err != nil {
			if errLog := build.abort(err); errLog != nil {
				return wire.ErrorReply(errLog)
			}
			return errorReply(err, ns)
		}
	}
	ci, err = n.cat.update(ns, func(c *collInfo) {
		for _, p := range plan {
			name := specName(p.spec)
			if i, ok := c.index(name); ok {
				c.Indexes = slices.Delete(c.Indexes, i, i+1)
			}
			switch {
			case p.virtual:
				c.Indexes = append(c.Indexes, indexInfo{Name: name, Virtual: true, Spec: p.spec})
			case !isEmptyDoc(p.overlay):
				c.Indexes = append(c.Indexes, indexInfo{Name: name, Spec: p.overlay})
			}
		}
	})
	if err != nil {
		return wire.ErrorReply(err)
	}
	if err := build.commit(); err != nil {
		return wire.ErrorReply(err)
	}
	after, err := n.be.indexes(ctx, cmd.DB, coll)
	if err != nil {
		return relay(nil, err)
	}
	return wire.OK(
		bson.E{Key: "numIndexesBefore", Value: int32(numBefore)},
		bson.E{Key: "numIndexesAfter", Value: int32(len(mergedIndexes(after, ci)))},
		bson.E{Key: "createdCollectionAutomatically", Value: created},
	)
}

// sameIndex compares two specs field by field, numbers by value.
func sameIndex(a, b bson.Raw) bool {
	ea, _ := a.Elements()
	eb, _ := b.Elements()
	if len(ea) != len(eb) {
		return false
	}
	for i := range ea {
		if ea[i].Key() != eb[i].Key() || !sameLoose(ea[i].Value(), eb[i].Value()) {
			return false
		}
	}
	return true
}

func sameLoose(a, b bson.RawValue) bool {
	if fa, ok := asFloat(a); ok {
		fb, ok := asFloat(b)
		return ok && fa == fb
	}
	if a.Type == bsontype.EmbeddedDocument && b.Type == bsontype.EmbeddedDocument {
		return sameIndex(a.Document(), b.Document())
	}
	return sameValue(a, b)
}

func (n *node) dropIndexes(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, ok := collName(cmd)
	if !ok {
		return wire.ErrorReply(wire.BadValue("dropIndexes needs a collection name"))
	}
	if cmd.DB == "local" {
		return n.passthrough(ctx, cmd)
	}
	ns := cmd.DB + "." + coll
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	ci, _ := n.cat.get(ns)
	if !ci.Exists {
		return wire.ErrorReply(wire.NamespaceNotFound("ns not found " + ns))
	}
	backend, err := n.be.indexes(ctx, cmd.DB, coll)
	if err != nil {
		return relay(nil, err)
	}
	all := mergedIndexes(backend, ci)
	targets, err := indexTargets(cmd.Lookup("index"), all)
	if err != nil {
		return wire.ErrorReply(err)
	}
	var backendNames bson.A
	for _, spec := range targets {
		name := specName(spec)
		if i, ok := ci.index(name); !ok || !ci.Indexes[i].Virtual {
			backendNames = append(backendNames, name)
		}
	}
	if len(backendNames) > 0 {
		if _, err := n.be.run(ctx, cmd.DB, bson.D{{Key: "dropIndexes", Value: coll}, {Key: "index", Value: backendNames}}); err != nil {
			return relay(nil, err)
		}
	}
	if _, err := n.cat.update(ns, func(c *collInfo) {
		for _, spec := range targets {
			if i, ok := c.index(specName(spec)); ok {
				c.Indexes = slices.Delete(c.Indexes, i, i+1)
			}
		}
	}); err != nil {
		return wire.ErrorReply(err)
	}
	var drafts []draft
	for _, spec := range targets {
		if n.front.forms.specNS {
			spec = specWithNS(spec, ns)
		}
		drafts = append(drafts, draft{op: "c", ns: cmdNS(cmd.DB), ui: ci.UUID.Data,
			o:  mustMarshal(bson.D{{Key: "dropIndexes", Value: coll}, {Key: "index", Value: specName(spec)}}),
			o2: spec})
	}
	if err := n.oplog.append(drafts...); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK(bson.E{Key: "nIndexesWas", Value: int32(len(all))})
}

// indexTargets resolves dropIndexes' index argument: "*", a name, a key pattern, or an
// array of names.
func indexTargets(arg bson.RawValue, all []bson.Raw) ([]bson.Raw, error) {
	byName := func(name string) (bson.Raw, error) {
		if name == "_id_" {
			return nil, &wire.Error{Code: 72, Name: "InvalidOptions", Msg: "cannot drop _id index"}
		}
		for _, s := range all {
			if specName(s) == name {
				return s, nil
			}
		}
		return nil, indexNotFound("index not found with name [" + name + "]")
	}
	switch arg.Type {
	case bsontype.String:
		if str(arg) == "*" {
			var out []bson.Raw
			for _, s := range all {
				if specName(s) != "_id_" {
					out = append(out, s)
				}
			}
			return out, nil
		}
		s, err := byName(str(arg))
		return []bson.Raw{s}, err
	case bsontype.Array:
		names := values(arg)
		var out []bson.Raw
		for _, v := range names {
			s, err := byName(str(v))
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case bsontype.EmbeddedDocument:
		s, err := indexByKey(arg.Document(), all)
		if err != nil {
			return nil, err
		}
		if specName(s) == "_id_" {
			return nil, &wire.Error{Code: 72, Name: "InvalidOptions", Msg: "cannot drop _id index"}
		}
		return []bson.Raw{s}, nil
	}
	return nil, wire.BadValue("dropIndexes needs 'index' as a name, a key pattern, an array of names or \"*\"")
}

func indexByKey(key bson.Raw, all []bson.Raw) (bson.Raw, error) {
	for _, s := range all {
		if sameIndex(document(s.Lookup("key")), key) {
			return s, nil
		}
	}
	return nil, indexNotFound("can't find index with key: " + key.String())
}

func (n *node) collMod(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, ok := collName(cmd)
	if !ok {
		return wire.ErrorReply(wire.BadValue("collMod needs a collection name"))
	}
	ns := cmd.DB + "." + coll
	elems, _ := cmd.Body.Elements()
	for _, e := range elems[1:] {
		if k := e.Key(); !envelopeFields[k] && k != "index" && k != "viewOn" && k != "pipeline" && k != "comment" {
			return wire.ErrorReply(notImplemented(fmt.Sprintf("collMod option %q is not supported by the sandbox", k)))
		}
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	ci, _ := n.cat.get(ns)
	switch {
	case ci.isView():
		return n.collModView(cmd, ci, coll)
	case !ci.Exists:
		return wire.ErrorReply(wire.NamespaceNotFound("ns does not exist: " + ns))
	}
	o := bson.D{{Key: "collMod", Value: coll}}
	oldOptions := bson.D{}
	if n.front.forms.uuids {
		oldOptions = append(oldOptions, bson.E{Key: "uuid", Value: ci.UUID})
	}
	o2 := bson.D{{Key: "collectionOptions_old", Value: oldOptions}}
	var result []bson.E
	if ixArg, ok := cmd.Lookup("index").DocumentOK(); ok {
		backend, err := n.be.indexes(ctx, cmd.DB, coll)
		if err != nil {
			return relay(nil, err)
		}
		all := mergedIndexes(backend, ci)
		var spec bson.Raw
		if name := ixArg.Lookup("name"); name.Type == bsontype.String {
			targets, err := indexTargets(name, all)
			if err != nil {
				return wire.ErrorReply(err)
			}
			spec = targets[0]
		} else if key, ok := ixArg.Lookup("keyPattern").DocumentOK(); ok {
			if spec, err = indexByKey(key, all); err != nil {
				return wire.ErrorReply(err)
			}
		} else {
			return wire.ErrorReply(wire.BadValue("collMod index needs 'name' or 'keyPattern'"))
		}
		changes, old, res, err := indexChanges(ixArg, spec)
		if err != nil {
			return wire.ErrorReply(err)
		}
		name := specName(spec)
		if ci, err = n.cat.update(ns, func(c *collInfo) {
			i, ok := c.index(name)
			if !ok {
				c.Indexes = append(c.Indexes, indexInfo{Name: name, Spec: emptyDoc})
				i = len(c.Indexes) - 1
			}
			c.Indexes[i].Spec = withOptions(c.Indexes[i].Spec, changes)
		}); err != nil {
			return wire.ErrorReply(err)
		}
		logged := append(bson.D{{Key: "name", Value: name}}, rawFields(changes)...)
		o = append(o, bson.E{Key: "index", Value: logged})
		if n.front.forms.indexOptionsOld {
			o2 = append(o2, bson.E{Key: "indexOptions_old", Value: old})
		} else {
			// Before 6.0: expireAfterSeconds_old (when there was one), hidden_old.
			for _, e := range old {
				o2 = append(o2, bson.E{Key: e.Key + "_old", Value: e.Value})
			}
		}
		result = res
	}
	if err := n.oplog.append(draft{op: "c", ns: cmdNS(cmd.DB), ui: ci.UUID.Data, o: mustMarshal(o), o2: mustMarshal(o2)}); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK(result...)
}

// indexChanges reads the index options collMod changes (expireAfterSeconds, hidden) and
// returns them, their previous values, and the fields of collMod's reply.
func indexChanges(arg, spec bson.Raw) (changes bson.Raw, old bson.D, reply []bson.E, err error) {
	b := bsoncore.NewDocumentBuilder()
	old = bson.D{}
	any := false
	if v := arg.Lookup("expireAfterSeconds"); v.Type != 0 {
		secs, ok := v.AsInt64OK()
		if !ok || secs < 0 {
			return nil, nil, nil, wire.BadValue("expireAfterSeconds must be a non-negative number")
		}
		b.AppendInt64("expireAfterSeconds", secs)
		prev := spec.Lookup("expireAfterSeconds")
		if prev.Type != 0 {
			old = append(old, bson.E{Key: "expireAfterSeconds", Value: prev})
			reply = append(reply, bson.E{Key: "expireAfterSeconds_old", Value: prev})
		}
		reply = append(reply, bson.E{Key: "expireAfterSeconds_new", Value: secs})
		any = true
	}
	if v := arg.Lookup("hidden"); v.Type != 0 {
		hidden, ok := v.BooleanOK()
		if !ok {
			return nil, nil, nil, wire.BadValue("hidden must be a boolean")
		}
		b.AppendBoolean("hidden", hidden)
		prev, _ := spec.Lookup("hidden").BooleanOK()
		old = append(old, bson.E{Key: "hidden", Value: prev})
		reply = append(reply, bson.E{Key: "hidden_old", Value: prev}, bson.E{Key: "hidden_new", Value: hidden})
		any = true
	}
	if !any {
		return nil, nil, nil, notImplemented("the sandbox's collMod changes only an index's expireAfterSeconds or hidden")
	}
	return bson.Raw(b.Build()), old, reply, nil
}

func rawFields(d bson.Raw) bson.D {
	elems, _ := d.Elements()
	out := make(bson.D, len(elems))
	for i, e := range elems {
		out[i] = bson.E{Key: e.Key(), Value: e.Value()}
	}
	return out
}

func (n *node) collModView(cmd *wire.Command, ci collInfo, coll string) bson.Raw {
	viewOn, ok := cmd.Lookup("viewOn").StringValueOK()
	if !ok {
		viewOn = ci.ViewOn
	}
	pipeline := cmd.Lookup("pipeline")
	if pipeline.Type == 0 {
		pipeline = ci.Pipeline
	}
	if _, err := n.cat.update(ci.NS, func(c *collInfo) { c.ViewOn, c.Pipeline = viewOn, pipeline }); err != nil {
		return wire.ErrorReply(err)
	}
	o := mustMarshal(bson.D{{Key: "collMod", Value: coll}, {Key: "viewOn", Value: viewOn}, {Key: "pipeline", Value: pipeline}})
	if err := n.oplog.append(draft{op: "c", ns: cmdNS(cmd.DB), o: o}); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK()
}

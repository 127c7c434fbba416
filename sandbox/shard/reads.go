package shard

import (
	"context"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Reads go to FerretDB as they are; the front adds what only it knows: local.oplog.rs
// and the local database, collection UUIDs, views, and the indexes it keeps.

func firstBatchReply(ns string, docs []bson.Raw) bson.Raw {
	arr := make(bson.A, len(docs))
	for i, d := range docs {
		arr[i] = d
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{
		{Key: "id", Value: int64(0)}, {Key: "ns", Value: ns}, {Key: "firstBatch", Value: arr},
	}})
}

// listFilter compiles a listCollections/listDatabases filter for the entries the front
// adds; a filter beyond the matcher leaves them out.
func listFilter(cmd *wire.Command) *match.Matcher {
	filter, _ := cmd.Lookup("filter").DocumentOK()
	m, err := match.Compile(filter)
	if err != nil {
		return nil
	}
	return m
}

func (n *node) listCollections(ctx context.Context, cmd *wire.Command) bson.Raw {
	reply, err := n.be.run(ctx, cmd.DB, stripped(cmd.Body))
	if err != nil {
		return relay(nil, err)
	}
	docs, err := n.be.drain(ctx, cmd.DB, reply)
	if err != nil {
		return relay(nil, err)
	}
	nameOnly := boolField(cmd, "nameOnly", false)
	for i, d := range docs {
		if ci, ok := n.cat.get(cmd.DB + "." + str(d.Lookup("name"))); ok && !nameOnly {
			docs[i] = withUUID(d, ci)
		}
	}
	var extra []bson.D
	if cmd.DB == "local" {
		_, _, maxSize := n.oplog.stats()
		extra = append(extra, bson.D{
			{Key: "name", Value: "oplog.rs"}, {Key: "type", Value: "collection"},
			{Key: "options", Value: bson.D{{Key: "capped", Value: true}, {Key: "size", Value: maxSize}}},
			{Key: "info", Value: bson.D{{Key: "readOnly", Value: false}}},
		})
	}
	listed := map[string]bool{}
	for _, d := range docs {
		listed[str(d.Lookup("name"))] = true
	}
	for _, c := range n.internalCollections(nil).In(cmd.DB) {
		if !listed[c.Name] {
			extra = append(extra, c.ListEntry(n.front.cfg.Identity.Release(), false))
		}
	}
	for _, ci := range n.cat.inDB(cmd.DB) {
		if !ci.isView() {
			continue
		}
		_, name, _ := strings.Cut(ci.NS, ".")
		extra = append(extra, bson.D{
			{Key: "name", Value: name}, {Key: "type", Value: "view"},
			{Key: "options", Value: bson.D{{Key: "viewOn", Value: ci.ViewOn}, {Key: "pipeline", Value: ci.Pipeline}}},
			{Key: "info", Value: bson.D{{Key: "readOnly", Value: true}}},
		})
	}
	if m := listFilter(cmd); m != nil {
		for _, e := range extra {
			if nameOnly {
				e = e[:2]
			}
			raw := mustMarshal(e)
			if m.Match(raw) {
				docs = append(docs, raw)
			}
		}
	}
	return firstBatchReply(cmd.DB+".$cmd.listCollections", docs)
}

// withUUID sets a listCollections entry's info.uuid to the front's UUID for it.
func withUUID(entry bson.Raw, ci collInfo) bson.Raw {
	elems, _ := entry.Elements()
	idx, b := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		if e.Key() != "info" {
			b = append(b, e...)
			continue
		}
		info, _ := e.Value().DocumentOK()
		fields, _ := info.Elements()
		var ii int32
		ii, b = bsoncore.AppendDocumentElementStart(b, "info")
		for _, f := range fields {
			if f.Key() != "uuid" {
				b = append(b, f...)
			}
		}
		b = bsoncore.AppendBinaryElement(b, "uuid", 4, ci.UUID.Data)
		b, _ = bsoncore.AppendDocumentEnd(b, ii)
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

func (n *node) listIndexes(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := collName(cmd)
	ns := cmd.DB + "." + coll
	if isOplog(cmd.DB, coll) {
		return firstBatchReply(ns, nil)
	}
	ci, _ := n.cat.get(ns)
	if ci.isView() {
		return wire.ErrorReply(notSupportedOnView(ns))
	}
	reply, err := n.be.run(ctx, cmd.DB, stripped(cmd.Body))
	if err != nil {
		return relay(nil, err)
	}
	docs, err := n.be.drain(ctx, cmd.DB, reply)
	if err != nil {
		return relay(nil, err)
	}
	return firstBatchReply(ns, mergedIndexes(docs, ci))
}

// listDatabases lists FerretDB's databases and the shard's internal ones (admin,
// config, local), whose sizes add what the front holds for them.
func (n *node) listDatabases(ctx context.Context, cmd *wire.Command) bson.Raw {
	m := listFilter(cmd)
	if m == nil {
		// A filter beyond the sandbox's matcher: FerretDB's own answer.
		return n.passthrough(ctx, cmd)
	}
	// FerretDB reads every page of every database for the sizes (even for nameOnly):
	// its answer is kept until the next write.
	reply, err := n.be.gens.statsOnce("listDatabases", n.be.gens.ofAll, func() (bson.Raw, error) {
		return n.be.run(ctx, cmd.DB, bson.D{{Key: "listDatabases", Value: 1}})
	})
	if err != nil {
		return relay(nil, err)
	}
	sizes := map[string]int64{}
	var names []string
	for _, d := range values(reply.Lookup("databases")) {
		doc := document(d)
		name := str(doc.Lookup("name"))
		size, _ := doc.Lookup("sizeOnDisk").AsInt64OK()
		names = append(names, name)
		sizes[name] = size
	}
	internal := n.internalCollections(func(string, string) bool { return true })
	_, oplogSize, _ := n.oplog.stats()
	for _, db := range []string{"admin", "config", "local"} {
		if _, ok := sizes[db]; !ok {
			names = append(names, db)
		}
		sizes[db] += internal.DBSize(db)
	}
	sizes["local"] += oplogSize
	slices.Sort(names)
	nameOnly := boolField(cmd, "nameOnly", false)
	out := bson.A{}
	var total int64
	for _, name := range names {
		entry := bson.D{{Key: "name", Value: name}, {Key: "sizeOnDisk", Value: sizes[name]}, {Key: "empty", Value: sizes[name] == 0}}
		if !m.Match(mustMarshal(entry)) {
			continue
		}
		total += sizes[name]
		if nameOnly {
			entry = entry[:1]
		}
		out = append(out, entry)
	}
	if nameOnly {
		return wire.OK(bson.E{Key: "databases", Value: out})
	}
	return wire.OK(bson.E{Key: "databases", Value: out}, bson.E{Key: "totalSize", Value: total}, bson.E{Key: "totalSizeMb", Value: total >> 20})
}

// resolveView follows a view (and views of views) to its collection, returning the
// collection and the pipeline to run on it.
func (n *node) resolveView(ci collInfo) (string, bson.A, error) {
	var stages []bson.A
	for depth := 0; ci.isView(); depth++ {
		if depth > 20 {
			return "", nil, wire.BadValue("view nesting is too deep: " + ci.NS)
		}
		vals := values(ci.Pipeline)
		st := make(bson.A, len(vals))
		for i, v := range vals {
			st[i] = v
		}
		stages = append(stages, st)
		db, _, _ := strings.Cut(ci.NS, ".")
		next, ok := n.cat.get(db + "." + ci.ViewOn)
		if !ok {
			next = collInfo{NS: db + "." + ci.ViewOn}
		}
		ci = next
	}
	var pipeline bson.A
	for i := len(stages) - 1; i >= 0; i-- {
		pipeline = append(pipeline, stages[i]...)
	}
	_, coll, _ := strings.Cut(ci.NS, ".")
	return coll, pipeline, nil
}

// viewFind answers find on a view as an aggregation on the underlying collection.
func (n *node) viewFind(ctx context.Context, cmd *wire.Command, ci collInfo) bson.Raw {
	coll, pipeline, err := n.resolveView(ci)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if f, ok := cmd.Lookup("filter").DocumentOK(); ok && !isEmptyDoc(f) {
		pipeline = append(pipeline, bson.D{{Key: "$match", Value: f}})
	}
	if s, ok := cmd.Lookup("sort").DocumentOK(); ok && !isEmptyDoc(s) {
		pipeline = append(pipeline, bson.D{{Key: "$sort", Value: s}})
	}
	for _, stage := range []struct{ field, op string }{{"skip", "$skip"}, {"limit", "$limit"}} {
		if v, ok := cmd.Lookup(stage.field).AsInt64OK(); ok && v != 0 {
			pipeline = append(pipeline, bson.D{{Key: stage.op, Value: max(v, -v)}})
		}
	}
	if p, ok := cmd.Lookup("projection").DocumentOK(); ok && !isEmptyDoc(p) {
		pipeline = append(pipeline, bson.D{{Key: "$project", Value: p}})
	}
	cursor := bson.D{}
	if v, ok := cmd.Lookup("batchSize").AsInt64OK(); ok {
		cursor = append(cursor, bson.E{Key: "batchSize", Value: v})
	}
	return relay(n.be.run(ctx, cmd.DB, bson.D{{Key: "aggregate", Value: coll}, {Key: "pipeline", Value: pipeline}, {Key: "cursor", Value: cursor}}))
}

func (n *node) viewCount(ctx context.Context, cmd *wire.Command, ci collInfo) bson.Raw {
	coll, pipeline, err := n.resolveView(ci)
	if err != nil {
		return wire.ErrorReply(err)
	}
	if q, ok := cmd.Lookup("query").DocumentOK(); ok && !isEmptyDoc(q) {
		pipeline = append(pipeline, bson.D{{Key: "$match", Value: q}})
	}
	for _, stage := range []struct{ field, op string }{{"skip", "$skip"}, {"limit", "$limit"}} {
		if v, ok := cmd.Lookup(stage.field).AsInt64OK(); ok && v != 0 {
			pipeline = append(pipeline, bson.D{{Key: stage.op, Value: max(v, -v)}})
		}
	}
	pipeline = append(pipeline, bson.D{{Key: "$count", Value: "n"}})
	reply, err := n.be.run(ctx, cmd.DB, bson.D{{Key: "aggregate", Value: coll}, {Key: "pipeline", Value: pipeline}, {Key: "cursor", Value: bson.D{}}})
	if err != nil {
		return relay(nil, err)
	}
	docs, err := n.be.drain(ctx, cmd.DB, reply)
	if err != nil {
		return relay(nil, err)
	}
	count := int64(0)
	if len(docs) > 0 {
		count, _ = docs[0].Lookup("n").AsInt64OK()
	}
	return wire.OK(bson.E{Key: "n", Value: int32(count)})
}

// aggregate runs pipelines on views by prefixing the view's pipeline, simple ones
// on the oplog, and $sample.
func (n *node) aggregate(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, isColl := collName(cmd)
	if !isColl {
		return n.passthrough(ctx, cmd)
	}
	if isOplog(cmd.DB, coll) {
		return n.oplogAggregate(cmd)
	}
	if stages := values(cmd.Lookup("pipeline")); len(stages) > 0 && bson.Raw(stages[0].Value).Lookup("$sample").Type != 0 {
		return n.sample(ctx, cmd, coll, stages)
	}
	ci, ok := n.cat.get(cmd.DB + "." + coll)
	if !ok || !ci.isView() {
		return n.passthrough(ctx, cmd)
	}
	target, pipeline, err := n.resolveView(ci)
	if err != nil {
		return wire.ErrorReply(err)
	}
	user := values(cmd.Lookup("pipeline"))
	for _, st := range user {
		pipeline = append(pipeline, st)
	}
	elems, _ := stripped(cmd.Body).Elements()
	out := bson.D{{Key: "aggregate", Value: target}, {Key: "pipeline", Value: pipeline}}
	for _, e := range elems[1:] {
		if e.Key() != "pipeline" {
			out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	return relay(n.be.run(ctx, cmd.DB, out))
}

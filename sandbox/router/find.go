package router

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/sysdb"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// findQuery is a read as the router plans it.
type findQuery struct {
	filter     bson.Raw
	sort       bson.Raw
	projection bson.Raw
	skip       int64
	limit      int64 // 0: no limit
	batchSize  int64
	single     bool
	// options passed to the shards as they are (hint, collation, comment...).
	options bson.D
	// shardProjection is what the shards return on the merged path, when the router
	// needs less than whole documents (counting, distinct).
	shardProjection bson.Raw
}

// passedFindOptions are find options the router forwards to the shards untouched.
var passedFindOptions = []string{"hint", "collation", "comment", "let", "allowDiskUse", "min", "max", "returnKey", "showRecordId"}

func parseFind(cmd *wire.Command) (findQuery, error) {
	var q findQuery
	var ok bool
	for _, f := range []struct {
		name string
		dst  *bson.Raw
	}{{"filter", &q.filter}, {"sort", &q.sort}, {"projection", &q.projection}} {
		v := cmd.Lookup(f.name)
		if v.Type == 0 || v.Type == bsontype.Null {
			continue
		}
		if *f.dst, ok = v.DocumentOK(); !ok {
			return q, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: fmt.Sprintf("find's %s must be a document", f.name)}
		}
	}
	q.skip, _ = asInt64(cmd.Lookup("skip"))
	q.limit, _ = asInt64(cmd.Lookup("limit"))
	q.batchSize, _ = asInt64(cmd.Lookup("batchSize"))
	q.single = truthy(cmd.Lookup("singleBatch"))
	if q.skip < 0 || q.batchSize < 0 {
		return q, wire.BadValue("skip and batchSize must not be negative")
	}
	if q.limit < 0 {
		q.limit, q.single = -q.limit, true
	}
	if truthy(cmd.Lookup("tailable")) {
		return q, wire.BadValue("the sandbox router serves no tailable cursors: tail a shard's local.oplog.rs directly")
	}
	for _, name := range passedFindOptions {
		if v := cmd.Lookup(name); v.Type != 0 {
			q.options = append(q.options, bson.E{Key: name, Value: v})
		}
	}
	return q, nil
}

func (r *Router) find(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	q, err := parseFind(cmd)
	if err != nil {
		return nil, err
	}
	ns := cmd.DB + "." + coll
	it, err := r.openRead(ctx, cmd.DB, coll, q)
	if err != nil {
		return nil, err
	}
	return r.cursors.reply(ctx, ns, it, q.batchSize, q.single), nil
}

// openRead plans a find on any namespace: the config server's collections for admin
// and config (the sharded config.system.sessions excepted), nothing for a database
// that does not exist, the shards otherwise.
func (r *Router) openRead(ctx context.Context, db, coll string, q findQuery) (docIter, error) {
	if rt, ok := r.cat.Route(db + "." + coll); ok && rt.Sharded() && sysdb.Internal(db) {
		return r.openFind(ctx, rt, q)
	}
	if sysdb.Internal(db) {
		return memoryFind(r.cat.ConfigServerDocs(db, coll, q.filter), q)
	}
	rt, ok := r.cat.Route(db + "." + coll)
	if !ok {
		return &sliceIter{}, nil
	}
	return r.openFind(ctx, rt, q)
}

// openFind runs a find on the shards. A find pinned to one shard by its shard key
// (or on an unsharded collection) passes through with every option; anything else
// is sent to every shard owning a chunk and merged in the router: k-way merge on
// the sort, documents outside the shard's chunks (orphans) dropped, then skip,
// limit and projection.
func (r *Router) openFind(ctx context.Context, rt *Routing, q findQuery) (docIter, error) {
	db, coll, _ := splitNS(rt.NS)
	shards, pinned := target(rt, q.filter)
	if pinned {
		cmd := bson.D{{Key: "find", Value: coll}}
		cmd = appendIf(cmd, "filter", q.filter)
		cmd = appendIf(cmd, "sort", q.sort)
		cmd = appendIf(cmd, "projection", q.projection)
		if q.skip > 0 {
			cmd = append(cmd, bson.E{Key: "skip", Value: q.skip})
		}
		if q.limit > 0 {
			cmd = append(cmd, bson.E{Key: "limit", Value: q.limit})
		}
		if q.batchSize > 0 {
			cmd = append(cmd, bson.E{Key: "batchSize", Value: q.batchSize})
		}
		cmd = append(cmd, q.options...)
		return r.openStream(ctx, shards[0], db, cmd, nil)
	}
	spec, err := parseSort(q.sort)
	if err != nil {
		return nil, err
	}
	proj, err := parseProjection(q.projection, false)
	if err != nil {
		return nil, err
	}
	cmd := bson.D{{Key: "find", Value: coll}}
	cmd = appendIf(cmd, "filter", q.filter)
	cmd = appendIf(cmd, "sort", q.sort)
	cmd = appendIf(cmd, "projection", q.shardProjection)
	cmd = append(cmd, q.options...)
	streams := make([]docIter, 0, len(shards))
	for _, s := range shards {
		st, err := r.openStream(ctx, s, db, cmd, rt)
		if err != nil {
			for _, o := range streams {
				o.Close(context.WithoutCancel(ctx))
			}
			return nil, err
		}
		streams = append(streams, st)
	}
	var it docIter = &mergeIter{streams: streams, spec: spec}
	if q.skip > 0 || q.limit > 0 {
		it = &limitIter{in: it, skip: q.skip, limit: q.limit}
	}
	if proj != nil {
		it = &funcIter{in: it, fn: func(d bson.Raw) (bson.Raw, bool) { return proj.apply(d), true }}
	}
	return it, nil
}

func appendIf(d bson.D, key string, v bson.Raw) bson.D {
	if len(v) > 0 {
		d = append(d, bson.E{Key: key, Value: v})
	}
	return d
}

// openStream opens a cursor on one shard. With a routing table, documents the
// shard does not own are skipped. A collection missing on the shard reads as empty.
func (r *Router) openStream(ctx context.Context, shard, db string, cmd bson.D, rt *Routing) (docIter, error) {
	b, err := r.backend(shard)
	if err != nil {
		return nil, err
	}
	cur, err := b.cursor(ctx, db, cmd)
	if err != nil {
		if isCode(err, codeNamespaceNotFound) {
			return &sliceIter{}, nil
		}
		return nil, err
	}
	st := &shardStream{b: b, cur: cur}
	if rt != nil && rt.Sharded() {
		st.pattern, st.owned = rt.Pattern, rt.Map.Ranges(shard)
	}
	return st, nil
}

// shardStream reads one shard's cursor.
type shardStream struct {
	b       *backend
	cur     *mongo.Cursor
	pattern *shardkey.Pattern
	owned   *shardkey.Ranges // nil: no orphan filtering
	keyBuf  []byte
	closed  bool
}

func (s *shardStream) Next(ctx context.Context) (bson.Raw, bool, error) {
	for !s.closed {
		if !s.cur.Next(ctx) {
			err := s.cur.Err()
			s.Close(ctx)
			if err != nil {
				return nil, false, s.b.classify(err)
			}
			return nil, false, nil
		}
		doc := s.cur.Current
		if s.owned != nil {
			key, err := s.pattern.AppendKey(s.keyBuf[:0], doc)
			s.keyBuf = key
			if err != nil || !s.owned.Contains(key) {
				continue // an orphan: mongos' shard filter hides it
			}
		}
		return copyRaw(doc), true, nil
	}
	return nil, false, nil
}

func (s *shardStream) Close(ctx context.Context) {
	if !s.closed {
		s.closed = true
		s.cur.Close(ctx)
	}
}

// mergeIter merges shard streams: by the sort spec when there is one (each stream
// is sorted by its shard), else one stream after the other.
type mergeIter struct {
	streams []docIter
	spec    sortSpec
	heads   []bson.Raw
	loaded  bool
	cur     int
}

func (m *mergeIter) Next(ctx context.Context) (bson.Raw, bool, error) {
	if len(m.spec) == 0 {
		for m.cur < len(m.streams) {
			d, ok, err := m.streams[m.cur].Next(ctx)
			if err != nil || ok {
				return d, ok, err
			}
			m.cur++
		}
		return nil, false, nil
	}
	if !m.loaded {
		m.heads = make([]bson.Raw, len(m.streams))
		for i := range m.streams {
			if err := m.advance(ctx, i); err != nil {
				return nil, false, err
			}
		}
		m.loaded = true
	}
	best := -1
	for i, h := range m.heads {
		if h != nil && (best < 0 || m.spec.compare(h, m.heads[best]) < 0) {
			best = i
		}
	}
	if best < 0 {
		return nil, false, nil
	}
	d := m.heads[best]
	if err := m.advance(ctx, best); err != nil {
		return nil, false, err
	}
	return d, true, nil
}

func (m *mergeIter) advance(ctx context.Context, i int) error {
	d, ok, err := m.streams[i].Next(ctx)
	if err != nil {
		return err
	}
	if !ok {
		d = nil
	}
	m.heads[i] = d
	return nil
}

func (m *mergeIter) Close(ctx context.Context) {
	for _, s := range m.streams {
		s.Close(ctx)
	}
}

// memoryFind runs a find over documents held in memory (the catalog).
func memoryFind(docs []bson.Raw, q findQuery) (docIter, error) {
	natural, err := naturalDirection(q.sort)
	if err != nil {
		return nil, err
	}
	if natural < 0 {
		docs = slices.Clone(docs)
		slices.Reverse(docs)
	}
	var it docIter = &sliceIter{docs: docs}
	if len(q.filter) > 0 {
		m, err := match.Compile(q.filter)
		if err != nil {
			return nil, wire.BadValue(err.Error())
		}
		it = &funcIter{in: it, fn: func(d bson.Raw) (bson.Raw, bool) { return d, m.Match(d) }}
	}
	if len(q.sort) > 0 && natural == 0 {
		spec, err := parseSort(q.sort)
		if err != nil {
			return nil, err
		}
		it = &sortIter{in: it, spec: spec}
	}
	if q.skip > 0 || q.limit > 0 {
		it = &limitIter{in: it, skip: q.skip, limit: q.limit}
	}
	proj, err := parseProjection(q.projection, false)
	if err != nil {
		return nil, err
	}
	if proj != nil {
		it = &funcIter{in: it, fn: func(d bson.Raw) (bson.Raw, bool) { return proj.apply(d), true }}
	}
	return it, nil
}

func (r *Router) count(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	query, _ := cmd.Lookup("query").DocumentOK()
	skip, _ := asInt64(cmd.Lookup("skip"))
	limit, _ := asInt64(cmd.Lookup("limit"))
	if limit < 0 {
		limit = -limit
	}
	n, err := r.countDocs(ctx, cmd.DB, coll, query, skip, limit)
	if err != nil {
		return nil, err
	}
	return wire.OK(bson.E{Key: "n", Value: narrowInt(n)}), nil
}

// countDocs counts as mongos does: a count pinned to one shard runs there; an
// unfiltered count of a sharded collection sums the shards' counts (orphans
// included, as on a real cluster); a filtered one counts the merged, orphan-free
// documents.
func (r *Router) countDocs(ctx context.Context, db, coll string, query bson.Raw, skip, limit int64) (int64, error) {
	q := findQuery{filter: query, skip: skip, limit: limit}
	if rt, ok := r.cat.Route(db + "." + coll); sysdb.Internal(db) && !(ok && rt.Sharded()) {
		it, err := memoryFind(r.cat.ConfigServerDocs(db, coll, q.filter), q)
		if err != nil {
			return 0, err
		}
		return countAll(ctx, it)
	}
	rt, ok := r.cat.Route(db + "." + coll)
	if !ok {
		return 0, nil
	}
	shards, pinned := target(rt, query)
	if pinned || (isEmptyDoc(query) && skip == 0 && limit == 0) {
		var total int64
		for _, s := range shards {
			b, err := r.backend(s)
			if err != nil {
				return 0, err
			}
			cmd := bson.D{{Key: "count", Value: coll}}
			cmd = appendIf(cmd, "query", query)
			if skip > 0 {
				cmd = append(cmd, bson.E{Key: "skip", Value: skip})
			}
			if limit > 0 {
				cmd = append(cmd, bson.E{Key: "limit", Value: limit})
			}
			reply, err := b.run(ctx, db, cmd)
			if err != nil {
				if isCode(err, codeNamespaceNotFound) {
					continue
				}
				return 0, err
			}
			n, _ := asInt64(reply.Lookup("n"))
			total += n
		}
		return total, nil
	}
	q.shardProjection = keyProjection(rt)
	it, err := r.openFind(ctx, rt, q)
	if err != nil {
		return 0, err
	}
	return countAll(ctx, it)
}

func countAll(ctx context.Context, it docIter) (int64, error) {
	defer it.Close(context.WithoutCancel(ctx))
	var n int64
	for {
		_, ok, err := it.Next(ctx)
		if err != nil {
			return 0, err
		}
		if !ok {
			return n, nil
		}
		n++
	}
}

func (r *Router) distinct(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, err := collName(cmd)
	if err != nil {
		return nil, err
	}
	key, ok := cmd.Lookup("key").StringValueOK()
	if !ok || key == "" {
		return nil, wire.BadValue("distinct needs a key (a field path)")
	}
	query, _ := cmd.Lookup("query").DocumentOK()
	q := findQuery{filter: query}
	if db := cmd.DB; !sysdb.Internal(db) {
		if rt, ok := r.cat.Route(db + "." + coll); ok {
			proj := bson.D{{Key: key, Value: 1}}
			if p := keyProjection(rt); rt.Sharded() {
				elems, _ := p.Elements()
				for _, e := range elems {
					if e.Key() != key {
						proj = append(proj, bson.E{Key: e.Key(), Value: 1})
					}
				}
			}
			q.shardProjection = rawDoc(proj)
		}
	}
	it, err := r.openRead(ctx, cmd.DB, coll, q)
	if err != nil {
		return nil, err
	}
	docs, err := drain(ctx, it)
	if err != nil {
		return nil, err
	}
	var vals []bson.RawValue
	for _, d := range docs {
		vals = append(vals, flatten(pathValues(d, key))...)
	}
	slices.SortFunc(vals, compareValues)
	vals = slices.CompactFunc(vals, func(a, b bson.RawValue) bool { return compareValues(a, b) == 0 })
	arr := make(bson.A, len(vals))
	for i, v := range vals {
		arr[i] = v
	}
	return wire.OK(bson.E{Key: "values", Value: arr}), nil
}

func (r *Router) aggregate(ctx context.Context, sess *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	coll, ok := cmd.Lookup("aggregate").StringValueOK()
	if !ok || coll == "" {
		return nil, wire.BadValue("the sandbox router runs aggregations on collections only (aggregate: \"<collection>\")")
	}
	pipeline, ok := cmd.Lookup("pipeline").ArrayOK()
	if !ok {
		return nil, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: "'pipeline' option must be specified as an array"}
	}
	if truthy(cmd.Lookup("explain")) {
		return nil, wire.BadValue("the sandbox router does not explain")
	}
	batchSize, _ := asInt64(cmd.Body.Lookup("cursor", "batchSize"))
	pipeline, into, intoSpec := writeStage(pipeline)
	statsSpec, afterStats, isStats, err := collStatsStage(pipeline)
	if err != nil {
		return nil, err
	}
	if isStats {
		pipeline = afterStats
	}
	filter, stages, err := parsePipeline(pipeline)
	if err != nil {
		return nil, err
	}
	var it docIter
	if isStats {
		docs, err := r.collStatsDocs(ctx, cmd.DB, coll, statsSpec)
		if err != nil {
			return nil, err
		}
		it = &sliceIter{docs: docs}
		if filter != nil {
			// The pipeline's $match after $collStats filters its documents.
			st, err := parseStage("$match", bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: filter})
			if err != nil {
				return nil, err
			}
			stages = append([]stage{st}, stages...)
		}
	} else if it, err = r.openRead(ctx, cmd.DB, coll, findQuery{filter: filter}); err != nil {
		return nil, err
	}
	for _, st := range stages {
		if it, err = st(it); err != nil {
			return nil, err
		}
	}
	if into != "" {
		return r.aggregateInto(ctx, sess, cmd.DB, it, into, intoSpec)
	}
	return r.cursors.reply(ctx, cmd.DB+"."+coll, it, batchSize, false), nil
}

// isEmptyDoc reports whether a document is absent or has no fields.
func isEmptyDoc(d bson.Raw) bool {
	elems, _ := d.Elements()
	return len(elems) == 0
}

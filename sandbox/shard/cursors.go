package shard

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Reads of local.oplog.rs: find (with tailable awaitData cursors), getMore, killCursors,
// count and collStats, answered from the in-memory oplog.

const (
	oplogNS           = "local.oplog.rs"
	defaultBatchSize  = 101
	maxBatchBytes     = 16 << 20
	defaultAwaitTime  = time.Second
	cursorIdleTimeout = 10 * time.Minute
)

// oplogCursor is a position in the oplog and what to return from there.
type oplogCursor struct {
	mu       sync.Mutex // one getMore at a time
	m        *match.Matcher
	proj     *projection
	next     int64 // sequence number of the next entry to examine
	examined bool  // whether an entry was examined: then the one before next must survive
	reverse  bool
	tailable bool
	await    bool
	limit    int64 // 0: none
	returned int64
	skip     int64
}

// cursorRegistry holds a node's own cursors (those FerretDB does not keep), by id.
type cursorRegistry[C any] struct {
	mu      sync.Mutex
	cursors map[int64]*registered[C]
}

type registered[C any] struct {
	c       C
	lastUse time.Time
}

func newCursorRegistry[C any]() *cursorRegistry[C] {
	return &cursorRegistry[C]{cursors: map[int64]*registered[C]{}}
}

// add registers a cursor under a fresh id, forgetting cursors idle for too long (as
// MongoDB times them out).
func (r *cursorRegistry[C]) add(c C) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for id, reg := range r.cursors {
		if now.Sub(reg.lastUse) > cursorIdleTimeout {
			delete(r.cursors, id)
		}
	}
	for {
		var b [8]byte
		rand.Read(b[:])
		id := int64(binary.LittleEndian.Uint64(b[:]) >> 1)
		if _, taken := r.cursors[id]; id != 0 && !taken {
			r.cursors[id] = &registered[C]{c: c, lastUse: now}
			return id
		}
	}
}

func (r *cursorRegistry[C]) get(id int64) (C, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.cursors[id]
	if !ok {
		var none C
		return none, false
	}
	reg.lastUse = time.Now()
	return reg.c, true
}

func (r *cursorRegistry[C]) remove(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.cursors[id]
	delete(r.cursors, id)
	return ok
}

func (r *cursorRegistry[C]) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.cursors)
}

func cappedPositionLost() *wire.Error {
	return &wire.Error{Code: 136, Name: "CappedPositionLost",
		Msg: "CollectionScan died due to position in capped collection being deleted: the oplog rolled over past this cursor"}
}

// find answers find on local.oplog.rs and views, and passes the rest to FerretDB.
func (n *node) find(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := collName(cmd)
	if isOplog(cmd.DB, coll) {
		return n.oplogFind(cmd)
	}
	if cmd.DB == "config" && coll == "transactions" {
		// MongoDB writes a transaction's record with its entries, in one storage
		// transaction: the read waits for the write in progress (txn.go).
		n.writeMu.Lock()
		n.writeMu.Unlock()
	}
	if ci, ok := n.cat.get(cmd.DB + "." + coll); ok && ci.isView() {
		return n.viewFind(ctx, cmd, ci)
	}
	if reply, ok := n.keyBoundedFind(ctx, cmd); ok {
		return reply
	}
	if reply, ok := n.idScanFind(ctx, cmd, coll); ok {
		return reply
	}
	if bounded, reply, ok := boundedFind(cmd); ok {
		if reply != nil {
			return reply
		}
		cmd = bounded
	}
	if reply, ok := n.keyedFind(ctx, cmd, coll); ok {
		return reply
	}
	if reply, ok := n.idOrderedFind(ctx, cmd, coll); ok {
		return reply
	}
	return n.passthrough(ctx, cmd)
}

func (n *node) oplogFind(cmd *wire.Command) bson.Raw {
	filter, _ := cmd.Lookup("filter").DocumentOK()
	m, err := match.Compile(filter)
	if err != nil {
		return wire.ErrorReply(wire.BadValue(fmt.Sprintf("filter on %s: %v", oplogNS, err)))
	}
	c := &oplogCursor{m: m}
	if sort, ok := cmd.Lookup("sort").DocumentOK(); ok {
		if c.reverse, err = naturalOrder(sort); err != nil {
			return wire.ErrorReply(err)
		}
	}
	if p, ok := cmd.Lookup("projection").DocumentOK(); ok {
		if c.proj, err = compileProjection(p); err != nil {
			return wire.ErrorReply(err)
		}
	}
	singleBatch := boolField(cmd, "singleBatch", false)
	if v, ok := cmd.Lookup("limit").AsInt64OK(); ok {
		if v < 0 {
			v, singleBatch = -v, true
		}
		c.limit = v
	}
	c.skip, _ = cmd.Lookup("skip").AsInt64OK()
	batchSize := int64(defaultBatchSize)
	if v, ok := cmd.Lookup("batchSize").AsInt64OK(); ok {
		batchSize = v
	}
	c.tailable = boolField(cmd, "tailable", false)
	c.await = boolField(cmd, "awaitData", false)
	switch {
	case c.await && !c.tailable:
		return wire.ErrorReply(wire.FailedToParse("Cannot set 'awaitData' without also setting 'tailable'"))
	case c.tailable && c.reverse:
		return wire.ErrorReply(wire.BadValue("error processing query: tailable cursor requested on non capped collection or with a sort other than {$natural: 1}"))
	}

	base, end := n.oplog.bounds()
	c.next = base
	if c.reverse {
		c.next = end - 1
	} else if ts, strict, ok := tsLowerBound(filter); ok {
		c.next = n.oplog.seek(ts, strict)
	}
	docs, exhausted, lost := n.collect(c, batchSize)
	if lost {
		return wire.ErrorReply(cappedPositionLost())
	}
	var id int64
	if !singleBatch && !c.done(exhausted) {
		id = n.cursors.add(c)
	}
	return cursorReply("firstBatch", id, docs)
}

func cursorReply(batchName string, id int64, docs []bson.Raw) bson.Raw {
	return cursorBatch(batchName, id, oplogNS, docs)
}

// done reports whether a cursor has nothing more to give: its limit is reached, or it
// is not tailable and the oplog ran out.
func (c *oplogCursor) done(exhausted bool) bool {
	return (c.limit > 0 && c.returned >= c.limit) || (exhausted && !c.tailable)
}

// collect reads the next batch of matching entries. exhausted means the oplog ran out
// before the batch filled; lost means the cursor's position rolled off.
func (n *node) collect(c *oplogCursor, batchSize int64) (docs []bson.Raw, exhausted, lost bool) {
	size := 0
	full := false
	next, rolledOff := n.oplog.visit(c.next, c.examined, c.reverse, func(raw bson.Raw) bool {
		if (batchSize > 0 && int64(len(docs)) >= batchSize) || (c.limit > 0 && c.returned >= c.limit) || size >= maxBatchBytes {
			full = true
			return false
		}
		c.examined = true
		if !c.m.Match(raw) {
			return true
		}
		if c.skip > 0 {
			c.skip--
			return true
		}
		d := c.proj.apply(raw)
		docs = append(docs, d)
		size += len(d)
		c.returned++
		return true
	})
	if rolledOff {
		return nil, false, true
	}
	c.next = next
	return docs, !full, false
}

// naturalOrder accepts the sorts an oplog query may use: none, $natural or ts.
func naturalOrder(sort bson.Raw) (reverse bool, err error) {
	elems, _ := sort.Elements()
	if len(elems) == 0 {
		return false, nil
	}
	if len(elems) > 1 || (elems[0].Key() != "$natural" && elems[0].Key() != "ts") {
		return false, wire.BadValue(fmt.Sprintf("the sandbox sorts %s only by {$natural: 1|-1} or {ts: 1|-1}, not %s", oplogNS, sort))
	}
	dir, ok := elems[0].Value().AsInt64OK()
	if !ok || (dir != 1 && dir != -1) {
		return false, wire.BadValue(fmt.Sprintf("bad sort direction in %s", sort))
	}
	return dir == -1, nil
}

// tsLowerBound finds the lowest ts a filter accepts from its top-level ts condition, so
// that a scan can start there by binary search.
func tsLowerBound(filter bson.Raw) (ts primitive.Timestamp, strict, ok bool) {
	v := filter.Lookup("ts")
	if t, i, isTS := v.TimestampOK(); isTS {
		return primitive.Timestamp{T: t, I: i}, false, true
	}
	ops, isDoc := v.DocumentOK()
	if !isDoc {
		return ts, false, false
	}
	elems, _ := ops.Elements()
	for _, e := range elems {
		t, i, isTS := e.Value().TimestampOK()
		if !isTS {
			continue
		}
		cand := primitive.Timestamp{T: t, I: i}
		candStrict := e.Key() == "$gt"
		if e.Key() != "$gt" && e.Key() != "$gte" && e.Key() != "$eq" {
			continue
		}
		if !ok || compareTS(cand, ts) > 0 || (compareTS(cand, ts) == 0 && candStrict) {
			ts, strict, ok = cand, candStrict, true
		}
	}
	return ts, strict, ok
}

func (n *node) getMore(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := cmd.Lookup("collection").StringValueOK()
	if reply, ok := n.keyBoundedGetMore(ctx, cmd); ok {
		return reply
	}
	if reply, ok := n.idOrderedGetMore(ctx, cmd); ok {
		return reply
	}
	if !isOplog(cmd.DB, coll) {
		return n.passthrough(ctx, cmd)
	}
	id, _ := cmd.Lookup("getMore").AsInt64OK()
	c, ok := n.cursors.get(id)
	if !ok {
		return wire.ErrorReply(wire.CursorNotFound(fmt.Sprintf("cursor id %d not found", id)))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	batchSize, _ := cmd.Lookup("batchSize").AsInt64OK()
	wait := defaultAwaitTime
	if ms, ok := cmd.Lookup("maxTimeMS").AsInt64OK(); ok && ms > 0 {
		wait = time.Duration(ms) * time.Millisecond
	}
	var timer *time.Timer
	var docs []bson.Raw
	var exhausted bool
	for {
		changed, closed := n.oplog.changed()
		var lost bool
		docs, exhausted, lost = n.collect(c, batchSize)
		if lost {
			n.cursors.remove(id)
			return wire.ErrorReply(cappedPositionLost())
		}
		if len(docs) > 0 || !c.await || c.done(exhausted) || closed {
			break
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-ctx.Done():
			return wire.ErrorReply(&wire.Error{Code: 11600, Name: "InterruptedAtShutdown", Msg: "the shard is stopping"})
		}
		break
	}
	if c.done(exhausted) {
		n.cursors.remove(id)
		id = 0
	}
	return cursorReply("nextBatch", id, docs)
}

func (n *node) killCursors(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := collName(cmd)
	if !isOplog(cmd.DB, coll) {
		return n.killUserCursors(ctx, cmd, coll)
	}
	ids := values(cmd.Lookup("cursors"))
	killed, notFound := bson.A{}, bson.A{}
	for _, v := range ids {
		id, _ := v.AsInt64OK()
		if n.cursors.remove(id) {
			killed = append(killed, id)
		} else {
			notFound = append(notFound, id)
		}
	}
	return killCursorsReply(killed, notFound)
}

func (n *node) count(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := collName(cmd)
	if !isOplog(cmd.DB, coll) {
		if ci, ok := n.cat.get(cmd.DB + "." + coll); ok && ci.isView() {
			return n.viewCount(ctx, cmd, ci)
		}
		return n.passthrough(ctx, cmd)
	}
	q, _ := cmd.Lookup("query").DocumentOK()
	m, err := match.Compile(q)
	if err != nil {
		return wire.ErrorReply(wire.BadValue(fmt.Sprintf("query on %s: %v", oplogNS, err)))
	}
	skip, _ := cmd.Lookup("skip").AsInt64OK()
	limit, _ := cmd.Lookup("limit").AsInt64OK()
	limit = max(limit, -limit)
	var count int64
	base, _ := n.oplog.bounds()
	n.oplog.visit(base, false, false, func(raw bson.Raw) bool {
		if m.Match(raw) {
			if skip > 0 {
				skip--
			} else {
				count++
			}
		}
		return limit == 0 || count < limit
	})
	return wire.OK(bson.E{Key: "n", Value: int32(count)})
}

func (n *node) collStats(ctx context.Context, cmd *wire.Command) bson.Raw {
	coll, _ := collName(cmd)
	if !isOplog(cmd.DB, coll) {
		return n.userCollStats(ctx, cmd)
	}
	return wire.OK(append(bson.D{{Key: "ns", Value: oplogNS}}, n.oplogStorageStats()...)...)
}

// oplogStorageStats is what collStats, and $collStats's storageStats, say of the oplog.
func (n *node) oplogStorageStats() bson.D {
	count, size, maxSize := n.oplog.stats()
	avg := int64(0)
	if count > 0 {
		avg = size / int64(count)
	}
	return bson.D{
		{Key: "size", Value: size},
		{Key: "count", Value: int64(count)},
		{Key: "avgObjSize", Value: avg},
		{Key: "storageSize", Value: size},
		{Key: "capped", Value: true},
		{Key: "max", Value: int64(0)},
		{Key: "maxSize", Value: maxSize},
		{Key: "nindexes", Value: int32(0)},
		{Key: "totalIndexSize", Value: int64(0)},
		{Key: "indexSizes", Value: bson.D{}},
	}
}

// oplogCollStats is the one document a leading $collStats stage makes of the oplog:
// its storageStats and count, as asked.
func (n *node) oplogCollStats(spec bson.Raw) (bson.Raw, error) {
	out := bson.D{{Key: "ns", Value: oplogNS}, {Key: "host", Value: n.front.Addr()}, {Key: "localTime", Value: time.Now()}}
	elems, _ := spec.Elements()
	for _, e := range elems {
		switch e.Key() {
		case "storageStats":
			out = append(out, bson.E{Key: "storageStats", Value: append(n.oplogStorageStats(), bson.E{Key: "scaleFactor", Value: int32(1)})})
		case "count":
			count, _, _ := n.oplog.stats()
			out = append(out, bson.E{Key: "count", Value: int64(count)})
		default:
			return nil, notImplemented(fmt.Sprintf("$collStats %s on %s is not supported by the sandbox (storageStats and count are)", e.Key(), oplogNS))
		}
	}
	return mustMarshal(out), nil
}

// projection is a top-level inclusion or exclusion projection.
type projection struct {
	include bool
	fields  map[string]bool
	noID    bool
}

func compileProjection(p bson.Raw) (*projection, error) {
	elems, _ := p.Elements()
	pr := &projection{fields: map[string]bool{}}
	modeSet := false
	for _, e := range elems {
		k, v := e.Key(), e.Value()
		if strings.ContainsAny(k, ".$") || (v.Type == bsontype.EmbeddedDocument || v.Type == bsontype.Array) {
			return nil, notImplemented(fmt.Sprintf("the sandbox projects only top-level fields with 0/1, not %q", k))
		}
		on := truthy(v)
		if k == "_id" {
			pr.noID = !on
			continue
		}
		if modeSet && on != pr.include {
			return nil, &wire.Error{Code: 31254, Name: "Location31254", Msg: fmt.Sprintf("Cannot do exclusion on field %s in inclusion projection", k)}
		}
		pr.include, modeSet = on, true
		pr.fields[k] = true
	}
	if len(elems) == 0 {
		return nil, nil
	}
	return pr, nil
}

// apply projects doc; a nil projection returns it whole.
func (p *projection) apply(doc bson.Raw) bson.Raw {
	if p == nil {
		return doc
	}
	elems, _ := doc.Elements()
	idx, b := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		k := e.Key()
		keep := p.fields[k] == p.include
		if k == "_id" {
			keep = !p.noID
		}
		if keep {
			b = append(b, e...)
		}
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// oplogAggregate runs the simple pipelines tools send to the oplog: $collStats first
// (how mongosh reads its size), $match, $sort, $skip, $limit, $project, $count, and
// $group by a constant with {$sum: 1} (how drivers count documents).
func (n *node) oplogAggregate(cmd *wire.Command) bson.Raw {
	stages := values(cmd.Lookup("pipeline"))
	var docs []bson.Raw
	base, _ := n.oplog.bounds()
	n.oplog.visit(base, false, false, func(raw bson.Raw) bool {
		docs = append(docs, raw)
		return true
	})
	for i, st := range stages {
		stage, _ := st.DocumentOK()
		elems, _ := stage.Elements()
		if len(elems) != 1 {
			return wire.ErrorReply(wire.BadValue("a pipeline stage must have exactly one field"))
		}
		op, arg := elems[0].Key(), elems[0].Value()
		var err error
		if op == "$collStats" && i == 0 {
			stats, err := n.oplogCollStats(document(arg))
			if err != nil {
				return wire.ErrorReply(err)
			}
			docs = []bson.Raw{stats}
			continue
		}
		if docs, err = applyStage(oplogNS, docs, op, arg); err != nil {
			return wire.ErrorReply(err)
		}
	}
	size := 0
	for _, d := range docs {
		size += len(d)
	}
	if size > maxBatchBytes {
		return wire.ErrorReply(notImplemented(fmt.Sprintf("the result of this aggregation on %s is larger than 16 MiB: use find, which the sandbox serves with cursors", oplogNS)))
	}
	arr := make(bson.A, len(docs))
	for i, d := range docs {
		arr[i] = d
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{{Key: "firstBatch", Value: arr}, {Key: "id", Value: int64(0)}, {Key: "ns", Value: oplogNS}}})
}

// applyStage runs one aggregation stage on documents held in memory (ns names them in
// errors).
func applyStage(ns string, docs []bson.Raw, op string, arg bson.RawValue) ([]bson.Raw, error) {
	switch op {
	case "$match":
		m, err := match.Compile(document(arg))
		if err != nil {
			return nil, wire.BadValue(fmt.Sprintf("$match on %s: %v", ns, err))
		}
		out := docs[:0:0]
		for _, d := range docs {
			if m.Match(d) {
				out = append(out, d)
			}
		}
		return out, nil
	case "$sort":
		return sortDocs(docs, document(arg))
	case "$skip", "$limit":
		k, ok := arg.AsInt64OK()
		if !ok || k < 0 {
			return nil, wire.BadValue(op + " needs a non-negative number")
		}
		k = min(k, int64(len(docs)))
		if op == "$skip" {
			return docs[k:], nil
		}
		return docs[:k], nil
	case "$project":
		p, err := compileProjection(document(arg))
		if err != nil {
			return nil, err
		}
		out := make([]bson.Raw, len(docs))
		for i, d := range docs {
			out[i] = p.apply(d)
		}
		return out, nil
	case "$count":
		name, ok := arg.StringValueOK()
		if !ok || name == "" {
			return nil, wire.BadValue("$count needs a field name")
		}
		if len(docs) == 0 {
			return nil, nil
		}
		return []bson.Raw{mustMarshal(bson.D{{Key: name, Value: int32(len(docs))}})}, nil
	case "$group":
		return countGroup(docs, document(arg))
	}
	return nil, notImplemented(fmt.Sprintf("pipeline stage %s on %s is not supported by the sandbox", op, ns))
}

// countGroup handles {$group: {_id: <constant>, <field>: {$sum: 1}}}.
func countGroup(docs []bson.Raw, spec bson.Raw) ([]bson.Raw, error) {
	elems, _ := spec.Elements()
	out := bson.D{}
	for _, e := range elems {
		if e.Key() == "_id" {
			if _, isDoc := e.Value().DocumentOK(); isDoc || strings.HasPrefix(str(e.Value()), "$") {
				return nil, notImplemented("the sandbox groups the oplog and internal collections only by a constant _id")
			}
			out = append(out, bson.E{Key: "_id", Value: e.Value()})
			continue
		}
		one, err := document(e.Value()).LookupErr("$sum")
		if n, ok := asFloat(one); err != nil || !ok || n != 1 {
			return nil, notImplemented("the sandbox groups the oplog and internal collections only with {$sum: 1}")
		}
		out = append(out, bson.E{Key: e.Key(), Value: int32(len(docs))})
	}
	if len(docs) == 0 {
		return nil, nil
	}
	return []bson.Raw{mustMarshal(out)}, nil
}

// killCursors of a user collection: the front's own cursors (idorder.go) are
// forgotten here, FerretDB's (keybounds.go's among them) killed there.
func (n *node) killUserCursors(ctx context.Context, cmd *wire.Command, coll string) bson.Raw {
	var own, theirs bson.A
	for _, v := range values(cmd.Lookup("cursors")) {
		id, _ := v.AsInt64OK()
		if n.idOrdered.remove(id) {
			own = append(own, id)
			continue
		}
		n.keyBounded.Delete(id)
		theirs = append(theirs, id)
	}
	if len(own) == 0 {
		return n.passthrough(ctx, cmd)
	}
	killed, notFound := own, bson.A{}
	if len(theirs) > 0 {
		reply := n.passthrough(ctx, &wire.Command{Name: cmd.Name, DB: cmd.DB,
			Body: mustMarshal(bson.D{{Key: "killCursors", Value: coll}, {Key: "cursors", Value: theirs}})})
		if reply.Lookup("cursorsKilled").Type == 0 {
			return reply // an error
		}
		for _, v := range values(reply.Lookup("cursorsKilled")) {
			killed = append(killed, v)
		}
		for _, v := range values(reply.Lookup("cursorsNotFound")) {
			notFound = append(notFound, v)
		}
	}
	return killCursorsReply(killed, notFound)
}

// killCursorsReply is killCursors' answer.
func killCursorsReply(killed, notFound bson.A) bson.Raw {
	return wire.OK(
		bson.E{Key: "cursorsKilled", Value: killed},
		bson.E{Key: "cursorsNotFound", Value: notFound},
		bson.E{Key: "cursorsAlive", Value: bson.A{}},
		bson.E{Key: "cursorsUnknown", Value: bson.A{}},
	)
}

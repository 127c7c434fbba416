package shard

import (
	"context"
	"slices"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// A find sorted by _id alone: a mongod walks its _id index, fetching each document
// as it goes, at about the cost of a collection scan. FerretDB v1.24.2 sorts in
// memory instead (handler/common.SortIterator): it decodes the whole collection into
// its own document trees, millions of small objects the collector scans again and
// again, sorts them with its generic comparison, and only then answers the first
// batch. A copy reads every shard in _id order (so that it resumes after its last
// durable _id), so on the sandbox it paid that on every shard while a plain scan did
// not: figure 1 (session 13), CPU per document of the sandbox servers and client,
// 112 µs for a driver pipe reading in natural order, 141 µs for the copy, a fifth of
// the copy's server time in the sort and the collector.
//
// So the front reads such a find's documents from FerretDB in its natural order (the
// same filter, streamed as an unsorted find is), keeps them as raw BSON, which the
// collector does not scan, sorts them by _id in MongoDB's order across types
// (shardkey.Compare), and answers the batches from its own cursor. It reads them all
// before the first batch, as FerretDB did (the read sees the collection as it was
// then), and holds them as raw bytes rather than trees. Only plain scans are taken:
// no projection, skip, collation, hint other than _id's, or returnKey; the rest goes
// to FerretDB as it was.
//
// An ascending scan with no filter or one on _id alone, the copy's, is idscan.go's
// (an index walk, batch by batch); this path keeps the rest: descending scans and
// filters on other fields.

// The front reads FerretDB one document first, then in batches of as many
// as fit in idOrderReadBytes at the documents' average size so far, at most
// idOrderReadBatch: FerretDB cuts batches by count only, and a reply over 48 MB
// (the wire's largest message) would fail.
const (
	idOrderFirstRead = 1
	idOrderReadBatch = 10000
	idOrderReadBytes = 16 << 20
)

// nextReadBatch is the batch size of the front's next read of FerretDB, after docs
// documents of bytes bytes in all.
func nextReadBatch(docs int, bytes int64) int32 {
	if docs == 0 || bytes == 0 {
		return idOrderFirstRead
	}
	return int32(max(1, min(idOrderReadBatch, int64(idOrderReadBytes)*int64(docs)/bytes)))
}

// idOrderedCursor is the rest of an _id-ordered find's documents: those read
// already, and the _id index scan that reads more (nil when all were read at once).
type idOrderedCursor struct {
	mu   sync.Mutex // one getMore at a time
	ns   string
	docs []bson.Raw
	scan *idScan
	left int64 // documents the find's limit still allows; 0: no limit
}

// next takes up to n documents (0: no count limit) and at most maxBatchBytes.
func (c *idOrderedCursor) next(ctx context.Context, n int64) ([]bson.Raw, error) {
	if c.left > 0 && (n <= 0 || n > c.left) {
		n = c.left
	}
	if c.scan != nil && (n <= 0 || int64(len(c.docs)) < n) {
		want := idScanPage
		if n > 0 {
			want = int(n) - len(c.docs)
		}
		more, err := c.scan.read(ctx, want)
		if err != nil {
			return nil, err
		}
		c.docs = append(c.docs, more...)
	}
	size, k := 0, 0
	for k < len(c.docs) && (n <= 0 || int64(k) < n) {
		if size += len(c.docs[k]); k > 0 && size > maxBatchBytes-(1<<10) {
			break
		}
		k++
	}
	out := c.docs[:k]
	c.docs = c.docs[k:]
	if c.left > 0 {
		if c.left -= int64(k); c.left == 0 {
			c.docs, c.scan = nil, nil
		}
	}
	return out, nil
}

// exhausted reports whether the cursor has nothing more to give.
func (c *idOrderedCursor) exhausted() bool {
	return len(c.docs) == 0 && (c.scan == nil || c.scan.done)
}

// idOrder is a find's _id sort direction (1 or -1), 0 when the front leaves the
// find to FerretDB (see above).
func idOrder(cmd *wire.Command, coll string) int {
	if !plainScan(cmd, coll) {
		return 0
	}
	sort, ok := cmd.Lookup("sort").DocumentOK()
	if !ok {
		return 0
	}
	elems, err := sort.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "_id" {
		return 0
	}
	dir, ok := elems[0].Value().AsInt64OK()
	if !ok || dir != 1 && dir != -1 {
		return 0
	}
	for _, field := range []string{"min", "max"} {
		if v := cmd.Lookup(field); v.Type != 0 && !emptyOrFalse(v) {
			return 0
		}
	}
	return int(dir)
}

// plainScan reports whether cmd is a find the front may answer from its own cursor:
// on a user collection, with no projection, skip, collation, returnKey,
// showRecordId, tailable cursor or hint other than _id's.
func plainScan(cmd *wire.Command, coll string) bool {
	if strings.HasPrefix(coll, "system.") || cmd.DB == "admin" || cmd.DB == "config" || cmd.DB == "local" {
		return false
	}
	for _, field := range []string{"projection", "collation", "returnKey", "showRecordId", "tailable"} {
		if v := cmd.Lookup(field); v.Type != 0 && !emptyOrFalse(v) {
			return false
		}
	}
	if skip, _ := cmd.Lookup("skip").AsInt64OK(); skip != 0 {
		return false
	}
	h := cmd.Lookup("hint")
	return h.Type == 0 || idHint(h)
}

// emptyOrFalse reports whether an option's value asks for nothing: an empty document,
// false, or a collation of the simple locale.
func emptyOrFalse(v bson.RawValue) bool {
	if b, ok := v.BooleanOK(); ok {
		return !b
	}
	doc, ok := v.DocumentOK()
	if !ok {
		return false
	}
	elems, _ := doc.Elements()
	if len(elems) == 0 {
		return true
	}
	locale, _ := doc.Lookup("locale").StringValueOK()
	return len(elems) == 1 && locale == "simple"
}

// idOrderedFind answers a find sorted by _id alone (see above); ok is false when the
// front leaves it to FerretDB.
func (n *node) idOrderedFind(ctx context.Context, cmd *wire.Command, coll string) (bson.Raw, bool) {
	dir := idOrder(cmd, coll)
	if dir == 0 {
		return nil, false
	}
	var d bson.D
	if err := bson.Unmarshal(cmd.Body, &d); err != nil {
		return wire.ErrorReply(wire.BadValue(err.Error())), true
	}
	d = slices.DeleteFunc(d, func(e bson.E) bool {
		switch e.Key {
		case "sort", "limit", "batchSize", "singleBatch", "hint", "collation":
			return true
		}
		return false
	})
	d = append(d, bson.E{Key: "batchSize", Value: nextReadBatch(0, 0)})
	docs, ns, errReply := n.readAll(ctx, cmd.DB, coll, d)
	if errReply != nil {
		return errReply, true
	}
	return n.firstIDOrderedBatch(ctx, cmd, &idOrderedCursor{ns: ns, docs: sortByID(docs, dir)}), true
}

// firstIDOrderedBatch answers a find from c (its limit, batchSize and singleBatch) and
// keeps c open for the getMores when documents are left.
func (n *node) firstIDOrderedBatch(ctx context.Context, cmd *wire.Command, c *idOrderedCursor) bson.Raw {
	limit, _ := cmd.Lookup("limit").AsInt64OK()
	single, _ := cmd.Lookup("singleBatch").BooleanOK()
	if limit < 0 { // the legacy form of a single batch
		limit, single = -limit, true
	}
	c.left = limit
	batchSize, hasBatch := cmd.Lookup("batchSize").AsInt64OK()
	if !hasBatch {
		batchSize = defaultBatchSize
	}
	first, err := c.next(ctx, batchSize)
	if err != nil {
		return errorReply(err, c.ns)
	}
	var id int64
	if !single && !c.exhausted() {
		id = n.idOrdered.add(c)
	}
	return cursorBatch("firstBatch", id, c.ns, first)
}

// sortByID sorts docs by _id in MongoDB's order across types, ascending (dir 1) or
// descending (-1), in place.
func sortByID(docs []bson.Raw, dir int) []bson.Raw {
	type keyed struct {
		id  bsoncore.Value
		doc bson.Raw
	}
	pairs := make([]keyed, len(docs))
	for i, doc := range docs {
		id := doc.Lookup("_id")
		pairs[i] = keyed{bsoncore.Value{Type: id.Type, Data: id.Value}, doc}
	}
	slices.SortStableFunc(pairs, func(a, b keyed) int { return dir * shardkey.Compare(a.id, b.id) })
	for i, p := range pairs {
		docs[i] = p.doc
	}
	return docs
}

// readAll runs find (the body d) on FerretDB and reads its cursor to the end; a
// reply is FerretDB's error, to send as it is.
func (n *node) readAll(ctx context.Context, db, coll string, d bson.D) (docs []bson.Raw, ns string, errReply bson.Raw) {
	reply := n.passthrough(ctx, &wire.Command{Name: "find", DB: db, Body: mustMarshal(d)})
	batchName := "firstBatch"
	var bytes int64
	for {
		cursor, ok := reply.Lookup("cursor").DocumentOK()
		if !ok {
			return nil, "", reply
		}
		id, _ := cursor.Lookup("id").AsInt64OK()
		ns, _ = cursor.Lookup("ns").StringValueOK()
		batch, _ := cursor.Lookup(batchName).ArrayOK()
		values, _ := batch.Values()
		for _, v := range values {
			if doc, ok := v.DocumentOK(); ok {
				docs = append(docs, slices.Clone(doc))
				bytes += int64(len(doc))
			}
		}
		if id == 0 {
			return docs, ns, nil
		}
		if ctx.Err() != nil {
			n.passthrough(context.WithoutCancel(ctx), &wire.Command{Name: "killCursors", DB: db,
				Body: mustMarshal(bson.D{{Key: "killCursors", Value: coll}, {Key: "cursors", Value: bson.A{id}}})})
			return nil, "", wire.ErrorReply(&wire.Error{Code: 11601, Name: "Interrupted", Msg: "operation was interrupted"})
		}
		reply = n.passthrough(ctx, &wire.Command{Name: "getMore", DB: db,
			Body: mustMarshal(bson.D{{Key: "getMore", Value: id}, {Key: "collection", Value: coll}, {Key: "batchSize", Value: nextReadBatch(len(docs), bytes)}})})
		batchName = "nextBatch"
	}
}

// idOrderedGetMore answers a getMore of a cursor idOrderedFind opened; ok is false
// for any other cursor.
func (n *node) idOrderedGetMore(ctx context.Context, cmd *wire.Command) (bson.Raw, bool) {
	id, _ := cmd.Lookup("getMore").AsInt64OK()
	c, ok := n.idOrdered.get(id)
	if !ok {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	batchSize, _ := cmd.Lookup("batchSize").AsInt64OK()
	docs, err := c.next(ctx, batchSize)
	if err != nil {
		n.idOrdered.remove(id)
		return errorReply(err, c.ns), true
	}
	if c.exhausted() {
		n.idOrdered.remove(id)
		id = 0
	}
	return cursorBatch("nextBatch", id, c.ns, docs), true
}

// cursorBatch is a cursor reply for ns.
func cursorBatch(batchName string, id int64, ns string, docs []bson.Raw) bson.Raw {
	arr := make(bson.A, len(docs))
	for i, d := range docs {
		arr[i] = d
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{
		{Key: batchName, Value: arr}, {Key: "id", Value: id}, {Key: "ns", Value: ns},
	}})
}

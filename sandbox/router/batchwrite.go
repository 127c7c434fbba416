package router

import (
	"context"
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Batch writes, as mongos's batch write executor runs a client's insert, update or
// delete (MongoDB's src/mongo/s/write_ops: batch_write_op.cpp's targetWriteOps,
// buildBatchRequest and noteBatchResponse, batch_write_exec.cpp's executeChildBatches).
// Every statement that goes to one shard as the client wrote it joins a child batch:
// one command to that shard for many statements, so a shard takes its write lock once
// per batch rather than once per statement. An ordered command's batch is a run of
// consecutive statements for one shard, and the batches go one after the other; an
// unordered command's statements are grouped by shard, each group in the client's order,
// and the groups go to their shards at once. A statement the router handles itself (a
// broadcast, a write it must find first, a shard key change, a failed targeting) ends the
// statements before it and runs alone, in its place. An error ends an ordered command
// (and a transaction's) after the failed statement; each reply is mapped back to the
// client's indexes.

// Child batches are split further to keep each shard command small.
const (
	childBatchStmts = 1000
	childBatchBytes = 8 << 20
)

// writeKind is a write command's name and the field of its statements.
type writeKind struct{ name, field string }

var (
	insertKind = writeKind{"insert", "documents"}
	updateKind = writeKind{"update", "updates"}
	deleteKind = writeKind{"delete", "deletes"}
)

// writeCommand is a client's write command as the router sends it on.
type writeCommand struct {
	kind     writeKind
	db, coll string
	stmts    []bson.Raw
	ordered  bool
	rw       *retryableWrite
	// shards are the shards that take each statement as it is, in a child batch; ""
	// for a statement the router handles alone.
	shards []string
	// alone runs statement i the router handles itself.
	alone func(ctx context.Context, i int) (stmtResult, error)
}

func newWriteCommand(cmd *wire.Command, kind writeKind, coll string, stmts []bson.Raw) *writeCommand {
	return &writeCommand{kind: kind, db: cmd.DB, coll: coll, stmts: stmts, ordered: ordered(cmd),
		rw: retryableOf(cmd), shards: make([]string, len(stmts))}
}

// stopsAtError reports whether an error ends the command: an ordered command's, and a
// transaction's, which mongos stops even when unordered (the transaction is over).
func (w *writeCommand) stopsAtError() bool {
	return w.ordered || (w.rw != nil && w.rw.txn)
}

// execute runs the command's statements in steps: a statement alone, or the child
// batches of the statements that follow one another.
func (r *Router) execute(ctx context.Context, w *writeCommand) *writeResult {
	res := &writeResult{}
	for i := 0; i < len(w.stmts) && !(w.stopsAtError() && res.failed()); {
		if w.shards[i] == "" {
			sr, err := w.alone(ctx, i)
			res.note(i, sr, err)
			i++
			continue
		}
		batches, next := w.childBatches(i)
		res.merge(r.sendChildBatches(ctx, w, batches))
		i = next
	}
	return res
}

// childBatches groups the statements from i on by shard, up to the next statement the
// router handles alone, and returns the index after them. An ordered command's batch
// also ends at the first statement for another shard, as mongos's ordered batches do.
func (w *writeCommand) childBatches(i int) (map[string][]int, int) {
	batches := map[string][]int{}
	j := i
	for ; j < len(w.stmts) && w.shards[j] != ""; j++ {
		if w.ordered && w.shards[j] != w.shards[i] {
			break
		}
		batches[w.shards[j]] = append(batches[w.shards[j]], j)
	}
	return batches, j
}

// sendChildBatches sends each shard its child batch, the shards at once.
func (r *Router) sendChildBatches(ctx context.Context, w *writeCommand, batches map[string][]int) *writeResult {
	shards := sortedKeys(batches)
	results := make([]*writeResult, len(shards))
	var wg sync.WaitGroup
	for k, s := range shards {
		wg.Go(func() { results[k] = r.sendToShard(ctx, w, s, batches[s]) })
	}
	wg.Wait()
	res := &writeResult{}
	for _, sub := range results {
		res.merge(sub)
	}
	return res
}

// sendToShard sends statements idx (the client's indexes, in order) to one shard, in
// commands of at most childBatchStmts statements and childBatchBytes.
func (r *Router) sendToShard(ctx context.Context, w *writeCommand, shard string, idx []int) *writeResult {
	res := &writeResult{}
	b, err := r.backend(shard)
	if err != nil {
		res.failBatch(idx, err, w.ordered)
		return res
	}
	for len(idx) > 0 && !(w.stopsAtError() && res.failed()) {
		n := childBatchLen(w.stmts, idx)
		res.merge(r.sendChildBatch(ctx, b, w, idx[:n]))
		idx = idx[n:]
	}
	return res
}

// childBatchLen is how many of the statements idx the next shard command takes.
func childBatchLen(stmts []bson.Raw, idx []int) int {
	n, size := 0, 0
	for n < len(idx) && n < childBatchStmts && (n == 0 || size+len(stmts[idx[n]]) <= childBatchBytes) {
		size += len(stmts[idx[n]])
		n++
	}
	return n
}

// sendChildBatch sends statements batch in one command. A retryable write's command
// carries the statements' ids (their client indexes) in stmtIds, as mongos's
// buildBatchRequest does: the shard knows each one again when the client retries.
func (r *Router) sendChildBatch(ctx context.Context, b *backend, w *writeCommand, batch []int) *writeResult {
	stmts := make(bson.A, len(batch))
	for k, i := range batch {
		stmts[k] = w.stmts[i]
	}
	cmd := append(bson.D{{Key: w.kind.name, Value: w.coll}, {Key: w.kind.field, Value: stmts}, {Key: "ordered", Value: w.ordered}},
		w.rw.fields(batch...)...)
	r.txns.join(b.Name, cmd)
	res := &writeResult{}
	reply, err := b.run(ctx, w.db, cmd)
	if err != nil {
		res.failBatch(batch, err, w.ordered)
		return res
	}
	res.noteReply(reply, batch)
	return res
}

// writeResult is what a write command's statements did, as its reply tells the client.
type writeResult struct {
	n, modified int64
	upserted    []upsertedID
	errs        []writeError
}

// upsertedID is the _id a statement inserted, by its client index.
type upsertedID struct {
	index int
	id    bson.RawValue
}

func (res *writeResult) failed() bool { return len(res.errs) > 0 }

// note adds the result of statement i run alone.
func (res *writeResult) note(i int, sr stmtResult, err error) {
	if err != nil {
		res.errs = append(res.errs, writeError{i, err})
		return
	}
	res.n += sr.n
	res.modified += sr.modified
	if sr.upserted.Type != 0 {
		res.upserted = append(res.upserted, upsertedID{i, sr.upserted})
	}
}

// noteReply adds a shard's reply to a child batch, whose indexes are positions in batch.
func (res *writeResult) noteReply(reply bson.Raw, batch []int) {
	n, _ := asInt64(reply.Lookup("n"))
	modified, _ := asInt64(reply.Lookup("nModified"))
	res.n += n
	res.modified += modified
	clientIndex := func(doc bson.Raw) (int, bool) {
		local, _ := asInt64(doc.Lookup("index"))
		if local < 0 || local >= int64(len(batch)) {
			return 0, false
		}
		return batch[local], true
	}
	for _, u := range docsOf(reply, "upserted") {
		if i, ok := clientIndex(u); ok {
			res.upserted = append(res.upserted, upsertedID{i, u.Lookup("_id")})
		}
	}
	for _, we := range writeErrorsOf(reply) {
		if i, ok := clientIndex(we); ok {
			res.errs = append(res.errs, writeError{i, &stmtError{we}})
		}
	}
}

// failBatch records a batch the shard did not take: every statement in it failed, as
// mongos's noteBatchError records it (only the first of an ordered batch).
func (res *writeResult) failBatch(batch []int, err error, ordered bool) {
	for _, i := range batch {
		res.errs = append(res.errs, writeError{i, err})
		if ordered {
			return
		}
	}
}

func (res *writeResult) merge(o *writeResult) {
	res.n += o.n
	res.modified += o.modified
	res.upserted = append(res.upserted, o.upserted...)
	res.errs = append(res.errs, o.errs...)
}

// reply is the client's reply: n, and for an update nModified and the upserted _ids
// by index.
func (res *writeResult) reply(kind writeKind) bson.Raw {
	fields := bson.D{{Key: "n", Value: narrowInt(res.n)}}
	if kind == updateKind {
		fields = append(fields, bson.E{Key: "nModified", Value: narrowInt(res.modified)})
		if len(res.upserted) > 0 {
			slices.SortFunc(res.upserted, func(a, b upsertedID) int { return a.index - b.index })
			arr := make(bson.A, len(res.upserted))
			for k, u := range res.upserted {
				arr[k] = bson.D{{Key: "index", Value: int32(u.index)}, {Key: "_id", Value: u.id}}
			}
			fields = append(fields, bson.E{Key: "upserted", Value: arr})
		}
	}
	return writeReply(fields, res.errs)
}

// Package load keeps a mixed write load on the seed data set through a router: inserts,
// $set/$unset/$inc updates, replacements, deletes, and arrays that grow ($push) and
// shrink ($pop, $pull).
//
//	ticker (ops/s) ─► dispatcher: draws kind, collection and target document
//	    (from an in-memory sample of live document keys) ─► jobs ─► workers (bounded)
//	    ─► router ─► Stats (atomic counters, read any time)
//
// Updates, replacements and deletes name their target by its whole document key (_id
// plus the shard key fields), so the router sends each to one shard and the shard finds
// it by _id; no write changes a shard key field. Only the seed collections are written,
// never an internal namespace.
package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/seed"
)

// Kind is a kind of write.
type Kind int

const (
	Insert  Kind = iota // insertOne of a new document
	Set                 // $set of a field and of an optional field
	Unset               // $unset of the optional field
	Inc                 // $inc of a counter
	Replace             // replaceOne keeping the document key
	Delete              // deleteOne
	Push                // $push onto an array of documents
	Pop                 // $pop from an array of documents
	Pull                // $pull of a tag from an array of strings
	numKinds
)

// Kinds lists every kind of write, in the order Stats reports them.
var Kinds = []Kind{Insert, Set, Unset, Inc, Replace, Delete, Push, Pop, Pull}

var kindNames = [numKinds]string{"insert", "set", "unset", "inc", "replace", "delete", "push", "pop", "pull"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// weights is how often each kind is drawn, out of their sum; inserts outnumber deletes,
// so the data set grows slowly.
var weights = [numKinds]int{Insert: 20, Set: 16, Unset: 8, Inc: 14, Replace: 8, Delete: 8, Push: 10, Pop: 8, Pull: 8}

// Stats counts the writes done. It is safe to read while Run writes to it.
type Stats struct {
	ops      [numKinds]atomic.Int64
	missed   atomic.Int64
	errors   atomic.Int64
	cutShort atomic.Int64
	lastErr  atomic.Pointer[error]
}

// Ops is the number of writes of kind k that succeeded.
func (s *Stats) Ops(k Kind) int64 { return s.ops[k].Load() }

// Total is the number of writes that succeeded.
func (s *Stats) Total() int64 {
	var n int64
	for k := range s.ops {
		n += s.ops[k].Load()
	}
	return n
}

// Missed is the number of updates, replacements and deletes (counted in Ops too) that
// matched no document: their target was deleted, or not yet inserted, by a write still
// in flight. Many more than a handful would mean writes miss their documents' shards.
func (s *Stats) Missed() int64 { return s.missed.Load() }

// Errors is the number of writes that failed.
func (s *Stats) Errors() int64 { return s.errors.Load() }

// CutShort is the number of writes still unanswered stopGrace after the load was
// stopped, given up on: the server may have applied them after Run returned.
func (s *Stats) CutShort() int64 { return s.cutShort.Load() }

// LastError is the most recent failure, or nil.
func (s *Stats) LastError() error {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// String is a one-line report: "1200 writes (insert 240, set 190, ...), 2 missed, 0 errors".
func (s *Stats) String() string {
	parts := make([]string, len(Kinds))
	for i, k := range Kinds {
		parts[i] = fmt.Sprintf("%s %d", k, s.Ops(k))
	}
	line := fmt.Sprintf("%d writes (%s), %d missed, %d errors", s.Total(), strings.Join(parts, ", "), s.Missed(), s.Errors())
	if n := s.CutShort(); n > 0 {
		line += fmt.Sprintf(", %d cut short by the stop", n)
	}
	if err := s.LastError(); err != nil {
		line += "; last: " + err.Error()
	}
	return line
}

func (s *Stats) fail(err error) {
	s.errors.Add(1)
	s.lastErr.Store(&err)
}

const (
	// maxWorkers bounds the writes in flight.
	maxWorkers = 8
	// sampleSize is how many live document keys are kept per collection.
	sampleSize = 1000
	// minTick keeps high rates from needing a timer event per write.
	minTick = 10 * time.Millisecond
)

// Run writes opsPerSec writes per second, at most maxWorkers at a time, to the seed
// collections through the router client talks to, counting them in stats, until ctx
// ends; it then waits for the writes in flight to be answered (stopGrace at most) and
// returns nil, as an application stopped for a cutover finishes what it sent: a write
// abandoned by its client may still be applied by the server, after the caller took
// the load for stopped. Failed writes are
// counted, not returned: Run returns an error only when it cannot start (a ctx that
// ends while it starts is a stop, not an error). When the
// router falls behind, writes more than a second late are skipped rather than sent in
// a burst.
func Run(ctx context.Context, client *mongo.Client, opsPerSec int, rnd *rand.Rand, stats *Stats) error {
	return RunIDs(ctx, client, opsPerSec, seed.ObjectIDs, rnd, stats)
}

// RunIDs is Run on a data set seeded with the given type of _id (seed.PopulateIDs): its
// inserts get _ids of that type (of the type of the collection's sampled _ids when it
// has some), so a load on numeric _ids stays on numeric _ids.
func RunIDs(ctx context.Context, client *mongo.Client, opsPerSec int, ids seed.IDs, rnd *rand.Rand, stats *Stats) error {
	if opsPerSec <= 0 {
		return fmt.Errorf("load: rate %d ops/s must be positive", opsPerSec)
	}
	targets, err := sample(ctx, client, ids)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before its first write: a stop, not a failure
		}
		return err
	}
	jobs := make(chan job)
	writeCtx, cutShort := AfterGrace(ctx)
	defer cutShort()
	var wg sync.WaitGroup
	for range min(maxWorkers, opsPerSec) {
		wg.Go(func() {
			for j := range jobs {
				j.do(writeCtx, ctx, stats)
			}
		})
	}
	d := dispatcher{rnd: rnd, targets: targets}
	tick := max(time.Second/time.Duration(opsPerSec), minTick)
	ticker := time.NewTicker(tick)
	defer func() {
		ticker.Stop()
		close(jobs)
		wg.Wait()
	}()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		due := int64(time.Since(start).Seconds() * float64(opsPerSec))
		if behind := due - sent; behind > int64(opsPerSec) {
			sent = due - int64(opsPerSec)
		}
		for ; sent < due && !stopping(ctx); sent++ {
			select {
			case jobs <- d.next():
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// target is one collection and the keys of some of its live documents.
type target struct {
	spec seed.Collection
	coll *mongo.Collection
	keys []bson.D
}

// sample reads up to sampleSize document keys from each seed collection.
func sample(ctx context.Context, client *mongo.Client, ids seed.IDs) ([]*target, error) {
	var targets []*target
	for _, c := range seed.CollectionsWith(ids) {
		t := &target{spec: c, coll: client.Database(c.DB).Collection(c.Name)}
		projection := bson.D{}
		for _, f := range c.KeyFields() {
			projection = append(projection, bson.E{Key: f, Value: 1})
		}
		cur, err := t.coll.Find(ctx, bson.D{{Key: txnMark, Value: bson.D{{Key: "$exists", Value: false}}}},
			options.Find().SetProjection(projection).SetLimit(sampleSize).SetBatchSize(sampleSize))
		if err != nil {
			return nil, fmt.Errorf("load: sample the documents of %s: %w", c.Namespace(), err)
		}
		for cur.Next(ctx) {
			key, err := documentKey(cur.Current, c.KeyFields())
			if err != nil {
				cur.Close(ctx)
				return nil, fmt.Errorf("load: sample the documents of %s: %w", c.Namespace(), err)
			}
			t.keys = append(t.keys, key)
		}
		err = cur.Err()
		cur.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("load: sample the documents of %s: %w", c.Namespace(), err)
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// documentKey picks the document key fields out of doc, in the order given.
func documentKey(doc bson.Raw, fields []string) (bson.D, error) {
	key := make(bson.D, 0, len(fields))
	for _, f := range fields {
		v, err := doc.LookupErr(f)
		if err != nil {
			return nil, fmt.Errorf("document %v has no %q: %w", doc.Lookup("_id"), f, err)
		}
		var value any
		if err := v.Unmarshal(&value); err != nil {
			return nil, fmt.Errorf("decode %q of document %v: %w", f, doc.Lookup("_id"), err)
		}
		key = append(key, bson.E{Key: f, Value: value})
	}
	return key, nil
}

// dispatcher draws the writes. It is used by one goroutine only, as rand.Rand requires;
// the key sample changes as it draws inserts and deletes, so later writes aim at
// documents that exist (a write racing a delete of its target simply matches nothing).
type dispatcher struct {
	rnd     *rand.Rand
	targets []*target
}

func (d *dispatcher) next() job {
	r := d.rnd
	t := d.targets[r.IntN(len(d.targets))]
	kind := d.kind()
	if len(t.keys) == 0 {
		kind = Insert
	}
	j := job{kind: kind, ns: t.spec.Namespace(), coll: t.coll}
	if kind == Insert {
		var like bson.D
		if len(t.keys) > 0 {
			like = t.keys[r.IntN(len(t.keys))]
		}
		key := t.spec.NewKey(r, like)
		j.doc = t.spec.Document(r, key)
		if len(t.keys) < sampleSize {
			t.keys = append(t.keys, key)
		} else {
			t.keys[r.IntN(len(t.keys))] = key
		}
		return j
	}
	i := r.IntN(len(t.keys))
	j.filter = t.keys[i]
	s := t.spec
	switch kind {
	case Set:
		j.update = bson.D{{Key: "$set", Value: bson.D{
			{Key: s.Field, Value: s.SetValue(r)},
			{Key: s.Optional, Value: seed.Tag(r) + " offer"},
		}}}
	case Unset:
		j.update = bson.D{{Key: "$unset", Value: bson.D{{Key: s.Optional, Value: ""}}}}
	case Inc:
		j.update = bson.D{{Key: "$inc", Value: bson.D{{Key: s.Counter, Value: int32(1 + r.IntN(5))}}}}
	case Replace:
		j.doc = s.Document(r, j.filter)
	case Delete:
		t.keys[i] = t.keys[len(t.keys)-1]
		t.keys = t.keys[:len(t.keys)-1]
	case Push:
		j.update = bson.D{{Key: "$push", Value: bson.D{{Key: s.Array, Value: s.Element(r)}}}}
	case Pop:
		end := int32(1)
		if r.IntN(2) == 0 {
			end = -1
		}
		j.update = bson.D{{Key: "$pop", Value: bson.D{{Key: s.Array, Value: end}}}}
	case Pull:
		j.update = bson.D{{Key: "$pull", Value: bson.D{{Key: s.Tags, Value: seed.Tag(r)}}}}
	}
	return j
}

func (d *dispatcher) kind() Kind {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := d.rnd.IntN(total)
	for k, w := range weights {
		if n < w {
			return Kind(k)
		}
		n -= w
	}
	return Insert
}

// stopping reports whether ctx has ended. A deadline that has passed counts even before
// ctx.Err() says so: the driver fails writes against the deadline itself, and in that
// window a dispatcher that is behind could hand out a whole backlog of doomed writes.
func stopping(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// stopGrace is how long writes in flight may take to be answered once the load stops.
const stopGrace = 10 * time.Second

// AfterGrace is the context a load's writes run on: it ends stopGrace after ctx does
// (or when cancel is called), so that a stop lets the writes already sent finish. A
// write cancelled in flight may still be applied by the server after the load ended,
// when whoever stopped the load has already compared the clusters.
func AfterGrace(ctx context.Context) (writes context.Context, cancel context.CancelFunc) {
	writes, cancel = context.WithCancel(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, cancel) })
	return writes, cancel
}

// job is one write, ready to send.
type job struct {
	kind   Kind
	ns     string
	coll   *mongo.Collection
	filter bson.D // the target's document key
	update bson.D
	doc    bson.D // inserted or replacement document
}

// do sends the write on ctx; run is the load's own context, whose end makes a write
// cut short by ctx's end a stop rather than a failure.
func (j job) do(ctx, run context.Context, stats *Stats) {
	var err error
	matched := int64(1)
	switch j.kind {
	case Insert:
		_, err = j.coll.InsertOne(ctx, j.doc)
	case Replace:
		var res *mongo.UpdateResult
		if res, err = j.coll.ReplaceOne(ctx, j.filter, j.doc); err == nil {
			matched = res.MatchedCount
		}
	case Delete:
		var res *mongo.DeleteResult
		if res, err = j.coll.DeleteOne(ctx, j.filter); err == nil {
			matched = res.DeletedCount
		}
	default:
		var res *mongo.UpdateResult
		if res, err = j.coll.UpdateOne(ctx, j.filter, j.update); err == nil {
			matched = res.MatchedCount
		}
	}
	switch {
	case err == nil:
		stats.ops[j.kind].Add(1)
		if matched == 0 {
			stats.missed.Add(1)
		}
	case stopping(run):
		// A write cut short by the end of the load is not a failure.
		stats.cutShort.Add(1)
	default:
		stats.fail(fmt.Errorf("%s on %s %v: %w", j.kind, j.ns, j.filter, err))
	}
}

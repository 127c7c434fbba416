package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/sandbox/seed"
)

// Transactions: RunTxns keeps a rate of multi-document transactions going through the
// router, as an application using them does. Each writes in one seed collection:
// it inserts txnInserts new documents (their keys spread them over the chunks, so most
// transactions span several shards and are prepared and committed in two phases), and
// increments the counter of, or deletes, documents earlier transactions inserted. One
// in txnAbortEvery is aborted by the client after its writes. The transactions write
// only documents they inserted (marked with txnMark, which the plain load's sample
// leaves out), never those of the plain load (Run), so the two never touch one document
// at once; two transactions that do are retried by the driver (WriteConflict is a
// TransientTransactionError).

// txnMark is the field, true, of the documents the transactions insert.
const txnMark = "txnLoad"

const (
	txnInserts    = 3
	txnAbortEvery = 5
	txnWorkers    = 2
)

// TxnStats counts the transactions done. It is safe to read while RunTxns writes to it.
type TxnStats struct {
	committed, aborted, errors atomic.Int64
	lastErr                    atomic.Pointer[error]
}

// Committed is the number of transactions committed.
func (s *TxnStats) Committed() int64 { return s.committed.Load() }

// Aborted is the number of transactions the load aborted on purpose.
func (s *TxnStats) Aborted() int64 { return s.aborted.Load() }

// Errors is the number of transactions that failed.
func (s *TxnStats) Errors() int64 { return s.errors.Load() }

// String is a one-line report: "40 transactions committed, 10 aborted, 0 errors".
func (s *TxnStats) String() string {
	line := fmt.Sprintf("%d transactions committed, %d aborted, %d errors", s.Committed(), s.Aborted(), s.Errors())
	if p := s.lastErr.Load(); p != nil {
		line += "; last: " + (*p).Error()
	}
	return line
}

// errAbortOnPurpose ends the transactions the load aborts.
var errAbortOnPurpose = errors.New("aborted on purpose")

// txnJob is one transaction, ready to run.
type txnJob struct {
	coll    *mongo.Collection
	inserts []bson.D
	inc     []bson.D // document keys
	deletes []bson.D
	abort   bool
}

// RunTxns runs txnPerSec transactions per second until ctx ends (see above), on a data
// set seeded with _ids of type ids, counting them in stats; it then waits for the
// transactions in flight and returns nil. It returns an error only when it cannot
// start.
func RunTxns(ctx context.Context, client *mongo.Client, txnPerSec int, ids seed.IDs, rnd *rand.Rand, stats *TxnStats) error {
	if txnPerSec <= 0 {
		return fmt.Errorf("load: rate %d transactions/s must be positive", txnPerSec)
	}
	var targets []*target
	for _, c := range seed.CollectionsWith(ids) {
		if c.Key != nil {
			targets = append(targets, &target{spec: c, coll: client.Database(c.DB).Collection(c.Name)})
		}
	}
	if len(targets) == 0 {
		return errors.New("load: no sharded seed collection for transactions")
	}
	jobs := make(chan txnJob)
	done := make(chan struct{})
	txnCtx, cutShort := AfterGrace(ctx)
	defer cutShort()
	for range txnWorkers {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range jobs {
				j.run(txnCtx, ctx, client, stats)
			}
		}()
	}
	defer func() {
		close(jobs)
		for range txnWorkers {
			<-done
		}
	}()
	ticker := time.NewTicker(time.Second / time.Duration(txnPerSec))
	defer ticker.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		select {
		case jobs <- nextTxn(rnd, targets[rnd.IntN(len(targets))], n%txnAbortEvery == 0):
		case <-ctx.Done():
			return nil
		}
	}
}

// nextTxn draws a transaction on t; t.keys are the documents earlier transactions
// inserted (an aborted one's included: a write on them then matches nothing).
func nextTxn(r *rand.Rand, t *target, abort bool) txnJob {
	j := txnJob{coll: t.coll, abort: abort}
	for range txnInserts {
		key := t.spec.NewKey(r, nil)
		j.inserts = append(j.inserts, append(t.spec.Document(r, key), bson.E{Key: txnMark, Value: true}))
		if !abort {
			t.keys = append(t.keys, key)
		}
	}
	if len(t.keys) > 2*txnInserts {
		i := r.IntN(len(t.keys) - txnInserts)
		j.inc = append(j.inc, t.keys[i])
		if r.IntN(2) == 0 {
			k := r.IntN(len(t.keys) - txnInserts)
			if k != i {
				j.deletes = append(j.deletes, t.keys[k])
				t.keys[k] = t.keys[len(t.keys)-1]
				t.keys = t.keys[:len(t.keys)-1]
			}
		}
	}
	if len(t.keys) > sampleSize {
		t.keys = t.keys[len(t.keys)-sampleSize:]
	}
	return j
}

// run runs the transaction on ctx; the end of run, the load's own context, makes one
// cut short a stop rather than a failure.
func (j txnJob) run(ctx, load context.Context, client *mongo.Client, stats *TxnStats) {
	sess, err := client.StartSession()
	if err == nil {
		defer sess.EndSession(context.WithoutCancel(ctx))
		_, err = sess.WithTransaction(ctx, func(sc mongo.SessionContext) (any, error) {
			for _, d := range j.inserts {
				if _, err := j.coll.InsertOne(sc, d); err != nil {
					return nil, err
				}
			}
			for _, k := range j.inc {
				if _, err := j.coll.UpdateOne(sc, k, bson.D{{Key: "$inc", Value: bson.D{{Key: "txnCount", Value: int32(1)}}}}); err != nil {
					return nil, err
				}
			}
			for _, k := range j.deletes {
				if _, err := j.coll.DeleteOne(sc, k); err != nil {
					return nil, err
				}
			}
			if j.abort {
				return nil, errAbortOnPurpose
			}
			return nil, nil
		})
	}
	switch {
	case err == nil:
		stats.committed.Add(1)
	case errors.Is(err, errAbortOnPurpose):
		stats.aborted.Add(1)
	case stopping(load):
	default:
		stats.errors.Add(1)
		err = fmt.Errorf("transaction on %s: %w", j.coll.Name(), err)
		stats.lastErr.Store(&err)
	}
}

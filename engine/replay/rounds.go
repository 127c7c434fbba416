package replay

import (
	"context"
	"sync"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/oplog"
)

// writeRounds applies writes (one namespace, oplog order) in rounds, so that a batch
// costs one round trip per round rather than one per run of a kind:
//
//   - a document's writes are cut into segments where they change between a delete
//     and any other write (a replace-upsert or an update, which travel in one update
//     command), and round k holds the k-th segment of every document the batch
//     touches; each round is sent once the one before it is answered, so a
//     document's writes keep their order from round to round, and within a round
//     the writes of a segment stay in oplog order (the bulk write is then ordered);
//   - the documents of a round's deletes and of its other writes differ, so the two
//     commute: they go as two bulk writes at once.
//
// A batch whose documents are each written once, or only updated, is one round.
//
// It returns how many leading writes are applied: len(writes) and nil when all are.
// When a round fails, the rounds after it are not sent, and the answer is the index
// of the first write not confirmed: the failed write (with its error) when it comes
// first, or else, with a nil error, the first write of a later round that was never
// sent (the caller sends the rest again, where that write leads; the failed one comes
// again after it). So the write an error names is always the one that failed, and
// every write before the answer is applied.
func writeRounds(ctx context.Context, dest Destination, ns oplog.Namespace, writes []oplog.Write) (int, error) {
	rounds := cutRounds(writes)
	for k, round := range rounds {
		failed, err := writeRound(ctx, dest, ns, writes, round)
		if err == nil {
			continue
		}
		unsent := len(writes)
		for _, later := range rounds[k+1:] {
			unsent = min(unsent, later[0]) // each round's indices rise
		}
		if unsent < failed {
			return unsent, nil
		}
		return failed, err
	}
	return len(writes), nil
}

// cutRounds returns the indices of writes by round, each round's in rising order.
func cutRounds(writes []oplog.Write) [][]int {
	type segment struct {
		k      int // the document's current segment
		delete bool
	}
	seen := make(map[string]segment, len(writes))
	var rounds [][]int
	for i := range writes {
		key := docKey(writes[i].Filter)
		del := writes[i].Kind == oplog.Delete
		seg, ok := seen[key]
		switch {
		case !ok:
			seg = segment{k: 0, delete: del}
		case seg.delete != del:
			seg = segment{k: seg.k + 1, delete: del}
		}
		seen[key] = seg
		if seg.k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[seg.k] = append(rounds[seg.k], i)
	}
	return rounds
}

// writeRound sends a round's deletes and its other writes as two bulk writes at
// once and waits for both. On error, failed is the index (in writes) of the first
// write either bulk did not confirm, and err that bulk's error.
func writeRound(ctx context.Context, dest Destination, ns oplog.Namespace, writes []oplog.Write, round []int) (failed int, err error) {
	var deletes, others []int
	for _, i := range round {
		if writes[i].Kind == oplog.Delete {
			deletes = append(deletes, i)
		} else {
			others = append(others, i)
		}
	}
	var del struct {
		failed int
		err    error
	}
	var wg sync.WaitGroup
	if len(deletes) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			del.failed, del.err = writeGroup(ctx, dest, ns, writes, deletes)
		}()
	}
	failed = len(writes)
	if len(others) > 0 {
		failed, err = writeGroup(ctx, dest, ns, writes, others)
	}
	wg.Wait()
	if del.err != nil && (err == nil || del.failed < failed) {
		failed, err = del.failed, del.err
	}
	return failed, err
}

// writeGroup sends the writes at idx as one bulk write. On error, failed is the
// index (in writes) of the first one not confirmed.
func writeGroup(ctx context.Context, dest Destination, ns oplog.Namespace, writes []oplog.Write, idx []int) (failed int, err error) {
	group := make([]oplog.Write, len(idx))
	for j, i := range idx {
		group[j] = writes[i]
	}
	n, err := dest.Write(ctx, ns, group)
	if err != nil {
		return idx[min(max(n, 0), len(idx)-1)], err
	}
	return len(writes), nil
}

// docKey names the document a write targets within its namespace: its _id's type
// and value (within a shard's oplog an _id names one document at a time).
func docKey(filter bson.Raw) string {
	id := filter.Lookup("_id")
	return string(rune(id.Type)) + string(id.Value)
}

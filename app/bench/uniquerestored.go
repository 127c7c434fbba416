package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
)

// uniqueRestoredLatencies are figure 15's network delays to the destination.
var uniqueRestoredLatencies = []time.Duration{0, 40 * time.Millisecond}

// replayUniqueRestored is figure 15 (issue 17): figure 12's backlog replayed into a
// destination that only acknowledges, with its namespace's unique index on
// cust.email restored (replay.OrderedNamespaces: the updates that set cust.email,
// 7% of the entries, wait for the earlier writes that give that index a key) and
// relaxed (the index not unique: no order kept), interleaved relaxed, restored,
// relaxed, restored; the figure is the catch-up rate of a backlog once the index is
// restored, of the same backlog relaxed.
func (r *runner) replayUniqueRestored(ctx context.Context) error {
	b, err := makeBacklog(r.o.Backlog, r.o.Shards)
	if err != nil {
		return err
	}
	spec, err := bson.Marshal(bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "cust.email", Value: int32(1)}}},
		{Key: "name", Value: "cust.email_1"}, {Key: "unique", Value: true}})
	if err != nil {
		return err
	}
	index := replay.UniqueIndex{NS: oplog.Namespace{DB: benchDB, Coll: backlogColl}, Spec: spec}
	for _, latency := range uniqueRestoredLatencies {
		var took [2]time.Duration // relaxed, restored: summed over the repeats
		var writes atomic.Int64
		load := loadAverage()
		err := withAckServer(ctx, latency, &writes, func(dst *mongo.Client) error {
			for range 2 {
				for i, restored := range []bool{false, true} {
					var ordered *replay.OrderedNamespaces
					if restored {
						ordered = replay.NewOrderedNamespaces(index)
					}
					r.logf("15. the replay of %d entries, %v from a destination that only acknowledges, unique index restored: %v", b.entries, latency, restored)
					d, err := replayStreams(ctx, dst, b, false, ordered)
					if err != nil {
						return err
					}
					took[i] += d
					r.logf("   %s in %v", rate(float64(b.entries)/d.Seconds(), "entries/s"), d.Round(time.Millisecond))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		relaxed, restored := float64(2*b.entries)/took[0].Seconds(), float64(2*b.entries)/took[1].Seconds()
		r.t.Rows = append(r.t.Rows, Row{
			Figure:    fmt.Sprintf("15. oplog replay, %s entries, %v from a destination that only acknowledges: unique index on cust.email restored against relaxed", thousands(int64(b.entries)), latency),
			Shardlift: fmt.Sprintf("%s restored (load average %s before, %s after)", rate(restored, "entries/s"), load, loadAverage()),
			Ceiling:   fmt.Sprintf("%s relaxed", rate(relaxed, "entries/s")),
			Ratio:     Ratio(restored, relaxed),
		})
	}
	return nil
}

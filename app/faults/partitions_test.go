package faults_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/app/faults"
)

// partitionedKills is how many times the partitioned copy is killed.
const partitionedKills = 2

// killDuringPartitionedCopy: an unsharded collection of mixed _id types holding
// most of the data (about 3 MiB) is copied in 8 _id ranges (--partition-min-size
// 2MiB; the smaller seed collections stay whole); the process is killed (-9)
// during the copy, each time once some documents are copied, restarted on the
// same state file, and finally driven to done under the load: nothing lost or
// duplicated.
func killDuringPartitionedCopy(t *testing.T, e *env, row *faults.Row) {
	e.extra = append(e.extra, "--copy-partitions", "8", "--partition-min-size", "2MiB")
	e.seedMixedIDs(2 * e.s.size.docs)
	e.startLoad(e.s.size.rate)
	var notes []string
	sawRanges := false
	for k := range partitionedKills {
		e.start()
		// Aimed at a quarter of the data copied: the largest collection is copied
		// first, and its ranges' checkpoints land once a second meanwhile.
		s, finished := e.awaitUnlessDone("a quarter copied", func(s faults.Status) bool {
			return momentOf(s) > copying || copiedShare(s) >= 0.25
		})
		if !finished && momentOf(s) == copying {
			time.Sleep(time.Duration(e.rnd.Int64N(int64(1500 * time.Millisecond))))
		}
		if finished || exited(e.m) {
			break
		}
		e.kill(fmt.Sprintf("during the partitioned copy, at %s", s.Phases()))
		ranges, done := e.savedRanges()
		sawRanges = sawRanges || ranges > 0
		notes = append(notes, fmt.Sprintf("kill %d at %s, %.0f%% copied: %d ranges saved, %d done", k+1, momentNames[momentOf(s)], 100*copiedShare(s), ranges, done))
	}
	if e.storedState() != "done" {
		e.start()
		began := time.Now()
		e.finish()
		row.Converge = time.Since(began)
	}
	if ranges, _ := e.savedRanges(); !sawRanges && ranges == 0 {
		t.Fatalf("neither at the kills nor at the end did the state file hold an _id range: the copy was not partitioned (%s)", strings.Join(notes, "; "))
	}
	row.Notes = strings.Join(notes, "; ")
	t.Log(row.Notes)
	e.verify(row)
}

// copiedShare is the share of the documents copied, over every shard.
func copiedShare(s faults.Status) float64 {
	var copied, total int64
	for _, sh := range s.Shards {
		copied += sh.DocsCopied
		total += sh.DocsTotal
	}
	if total == 0 {
		return 0
	}
	return float64(copied) / float64(total)
}

// seedMixedIDs adds to the source an unsharded collection of n documents whose
// _ids mix numbers, strings and ObjectIds, so that the ranges cross type classes.
func (e *env) seedMixedIDs(n int) {
	e.t.Helper()
	coll := e.srcC.Database("faults_parts").Collection("mixed")
	var batch []any
	for i := range n {
		var id any = int64(i)
		switch i % 3 {
		case 1:
			id = fmt.Sprintf("id-%06d", i)
		case 2:
			id = bson.D{{Key: "o", Value: i}}
		}
		batch = append(batch, bson.D{{Key: "_id", Value: id}, {Key: "pad", Value: strings.Repeat("p", 512)}})
		if len(batch) == 1000 || i == n-1 {
			if _, err := coll.InsertMany(e.ctx, batch); err != nil {
				e.t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// savedRanges counts the _id ranges the state file holds (the process is
// stopped), and those of them done.
func (e *env) savedRanges() (ranges, done int) {
	e.t.Helper()
	shards := e.savedCheckpoints()
	for _, sh := range shards {
		for key, p := range sh.Copied {
			if strings.Contains(key, "$") && !strings.HasPrefix(key, "$") {
				ranges++
				if p.Done {
					done++
				}
			}
		}
	}
	return ranges, done
}

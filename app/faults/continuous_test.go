package faults_test

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/store"
)

// killDuringContinuousVerification: under the load, the process is killed (-9)
// once the continuous verification has compared a range (its unit: a run of a
// sharded collection's chunks, or an unsharded collection); the state file must
// hold the ranges it compared. Restarted on the same state file, the migration
// is driven to done: the finalize's verification passes, reusing what was
// compared, and nothing is lost or duplicated. Long form only (make faults):
// reaching ready twice under the load takes minutes on the shared machine.
func killDuringContinuousVerification(t *testing.T, e *env, row *faults.Row) {
	e.startLoad(e.s.size.rate)
	e.start()
	s := e.await("a range compared by the continuous verification", 10*time.Minute, func(s faults.Status) bool {
		return s.Continuous != nil && s.Continuous.RangesCompared >= 1
	})
	e.kill(fmt.Sprintf("during the continuous verification, %d of %d ranges compared", s.Continuous.RangesCompared, s.Continuous.Ranges))
	saved := e.savedCompared()
	if saved == 0 {
		t.Fatalf("killed with %d ranges compared, the state file holds none", s.Continuous.RangesCompared)
	}
	e.start()
	began := time.Now()
	e.endLoad()
	e.await("ready or cutting over", 10*time.Minute, isState("ready", "cutting_over"))
	e.startCutover()
	e.await("the optime gap closed", 5*time.Minute, func(s faults.Status) bool { return s.State == "cutting_over" && s.GapClosed() })
	done := e.post("/cutover/done")
	e.awaitExit(0)
	row.Converge = time.Since(began)
	reuse := "the finalize compared everything"
	if v := done.Verification; v != nil && v.Continuous != nil {
		reuse = fmt.Sprintf("the finalize reused %d namespaces, rechecked %d documents, compared %d whole and %d ranges", v.Continuous.NamespacesReused, v.Continuous.DocumentsRechecked, v.Continuous.NamespacesCompared, v.Continuous.RangesCompared)
	}
	row.Notes = fmt.Sprintf("killed with %d ranges compared (%d runs or namespaces saved); %s", s.Continuous.RangesCompared, saved, reuse)
	t.Log(row.Notes)
	e.verify(row)
}

// savedCheckpoints are the shard checkpoints the state file holds for its one
// migration (the process is stopped).
func (e *env) savedCheckpoints() []store.ShardCheckpoint {
	e.t.Helper()
	st, err := store.Open(e.state, store.Options{})
	if err != nil {
		e.t.Fatalf("open the state file: %v", err)
	}
	defer st.Close()
	all, err := st.Migrations()
	if err != nil || len(all) == 0 {
		e.t.Fatalf("the state file holds no migration (%v)", err)
	}
	cps, err := st.ShardCheckpoints(all[0].ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return cps
}

// savedCompared counts what the continuous verification compared, as the state
// file holds it (the process is stopped): each range of a namespace compared by
// range, each namespace compared whole.
func (e *env) savedCompared() int {
	e.t.Helper()
	shards := e.savedCheckpoints()
	for _, sh := range shards {
		if sh.Shard != "$shardlift" {
			continue
		}
		doc, ok := sh.Copied["$shardlift"].LastID.DocumentOK()
		if !ok {
			return 0
		}
		nss, ok := doc.Lookup("continuous", "namespaces").ArrayOK()
		if !ok {
			return 0
		}
		values, _ := bson.Raw(nss).Values()
		n := 0
		for _, v := range values {
			doc, _ := v.DocumentOK()
			units, _ := doc.Lookup("units").ArrayOK()
			byRange, _ := doc.Lookup("byRange").BooleanOK()
			if ranges, _ := bson.Raw(units).Values(); byRange {
				n += len(ranges)
			} else {
				n++
			}
		}
		return n
	}
	return 0
}

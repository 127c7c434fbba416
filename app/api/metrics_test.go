package api_test

import (
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/api/apitest"
	"github.com/shardlift/shardlift/engine"
)

// What is not known yet is absent, not 0: a lag before the shard replays, the
// optime gap while a shard copies, the deadline before the migration is ready.
func TestMetricsLeaveOutWhatIsNotKnown(t *testing.T) {
	f := apitest.NewControl()
	f.Snap.State, f.Snap.OptimeGapKnown, f.Snap.TimerDeadline = engine.Syncing, false, time.Time{}
	f.Snap.Shards = append(f.Snap.Shards, engine.ShardProgress{Name: "rs1", Phase: engine.Copying, Retrying: "destination unreachable",
		Progress: engine.Progress{DocsCopied: 5, DocsTotal: 50, TotalsEstimated: true}})
	f.Snap.History = []engine.Event{{Shard: "rs1", From: "copying", To: "failed"}, {Shard: "rs1", From: "failed", To: "pending"}}
	fam := apitest.Scrape(t, apitest.Serve(t, f), "")
	for _, name := range []string{"shardlift_optime_gap_seconds", "shardlift_cutover_deadline_timestamp_seconds"} {
		if _, ok := apitest.MetricValue(fam, name); ok {
			t.Errorf("%s is exposed while not known", name)
		}
	}
	if _, ok := apitest.MetricValue(fam, "shardlift_shard_lag_seconds", "shard", "rs1"); ok {
		t.Error("a copying shard's lag is exposed")
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"shardlift_shard_lag_seconds", []string{"shard", "rs0"}, 2},
		{"shardlift_migration_state", []string{"state", "syncing"}, 1},
		{"shardlift_migration_state", []string{"state", "ready"}, 0},
		{"shardlift_shard_phase", []string{"shard", "rs1", "phase", "copying"}, 1},
		{"shardlift_shard_phase", []string{"shard", "rs1", "phase", "synced"}, 0},
		{"shardlift_shard_phase", []string{"shard", "rs1", "phase", "clearing"}, 0},
		{"shardlift_shard_expected_documents", []string{"shard", "rs1"}, 50},
		{"shardlift_shard_totals_estimated", []string{"shard", "rs1"}, 1},
		{"shardlift_shard_retrying", []string{"shard", "rs1"}, 1},
		{"shardlift_shard_retrying", []string{"shard", "rs0"}, 0},
		{"shardlift_shard_failures_total", []string{"shard", "rs1"}, 1},
	} {
		if got, ok := apitest.MetricValue(fam, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

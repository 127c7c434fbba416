package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardlift/shardlift/engine"
)

// GET /metrics on the API: the migration's snapshot in the Prometheus text format,
// for a team's monitoring. Every scrape reads one engine.Snapshot (no I/O, the same
// value GET /status answers), so the figures of one scrape belong together. The
// collector is the official client library's (prometheus/client_golang): it writes
// the exposition format, its escaping and content negotiation exactly as Prometheus
// parses them, which a hand-written writer would have to keep right by itself.
//
// Values that are not known yet (a lag before the shard replays, the optime gap
// while a shard copies, the deadline before the migration is ready) are left out
// rather than written as 0, so that a dashboard shows a gap, not a false "in sync".

var (
	migrationStates = []engine.State{engine.Draft, engine.Validated, engine.Starting, engine.Syncing, engine.Ready,
		engine.CuttingOver, engine.Finalizing, engine.Done, engine.Cancelled, engine.Expired, engine.Failed}
	shardPhases = []engine.Phase{engine.Pending, engine.Clearing, engine.Copying, engine.BuildingIndexes, engine.CatchingUp, engine.Synced, engine.ShardFailed}
)

func metricDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("shardlift_"+name, help, labels, nil)
}

var (
	descInfo     = metricDesc("migration_info", "The migration this process runs (always 1): its id and its clusters.", "id", "name")
	descState    = metricDesc("migration_state", "1 for the migration's lifecycle state, 0 for the others.", "state")
	descGap      = metricDesc("optime_gap_seconds", "How far the destination is behind the source (absent while a shard still copies).")
	descDeadline = metricDesc("cutover_deadline_timestamp_seconds", "When the cutover window closes, Unix time (absent before the migration is ready).")
	descPhase    = metricDesc("shard_phase", "1 for the shard's phase, 0 for the others.", "shard", "phase")
	descDocs     = metricDesc("shard_copied_documents", "Documents the shard's copy has written to the destination.", "shard")
	descDocsAll  = metricDesc("shard_expected_documents", "Documents the shard's copy will write (an estimate while shard_totals_estimated is 1).", "shard")
	descBytes    = metricDesc("shard_copied_bytes", "BSON bytes the shard's copy has written to the destination.", "shard")
	descBytesAll = metricDesc("shard_expected_bytes", "BSON bytes the shard's copy will write (an estimate while shard_totals_estimated is 1).", "shard")
	descEstim    = metricDesc("shard_totals_estimated", "1 while the shard's expected documents and bytes are the source's estimates.", "shard")
	descCopyRate = metricDesc("shard_copy_documents_per_second", "Documents copied per second over the last few seconds.", "shard")
	descCopyB    = metricDesc("shard_copy_bytes_per_second", "Bytes copied per second over the last few seconds.", "shard")
	descApply    = metricDesc("shard_apply_entries_per_second", "Oplog entries applied per second over the last few seconds.", "shard")
	descLag      = metricDesc("shard_lag_seconds", "The shard's newest source oplog entry minus its last applied one (absent until it replays).", "shard")
	descShardGap = metricDesc("shard_optime_gap_seconds", "The shard's optime gap.", "shard")
	descRetrying = metricDesc("shard_retrying", "1 while the shard retries a transient fault (the log says which).", "shard")
	descFailures = metricDesc("shard_failures_total", "Times the shard failed during this migration (each needed a restart).", "shard")
)

// snapshotCollector exposes a migration's snapshot.
type snapshotCollector struct{ snapshot func() engine.Snapshot }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descState, descGap, descDeadline, descPhase, descDocs, descDocsAll, descBytes,
		descBytesAll, descEstim, descCopyRate, descCopyB, descApply, descLag, descShardGap, descRetrying, descFailures} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInfo, 1, s.ID, s.Name)
	for _, st := range migrationStates {
		gauge(descState, bit(s.State == st), string(st))
	}
	if s.OptimeGapKnown {
		gauge(descGap, s.OptimeGap.Seconds())
	}
	if !s.TimerDeadline.IsZero() {
		gauge(descDeadline, float64(s.TimerDeadline.UnixNano())/1e9)
	}
	failures := map[string]int{}
	for _, e := range s.History {
		if e.Shard != "" && e.To == string(engine.ShardFailed) {
			failures[e.Shard]++
		}
	}
	for _, sh := range s.Shards {
		for _, p := range shardPhases {
			gauge(descPhase, bit(sh.Phase == p), sh.Name, string(p))
		}
		gauge(descDocs, float64(sh.DocsCopied), sh.Name)
		gauge(descDocsAll, float64(sh.DocsTotal), sh.Name)
		gauge(descBytes, float64(sh.BytesCopied), sh.Name)
		gauge(descBytesAll, float64(sh.BytesTotal), sh.Name)
		gauge(descEstim, bit(sh.TotalsEstimated), sh.Name)
		gauge(descCopyRate, sh.CopyRate, sh.Name)
		gauge(descCopyB, sh.CopyBytesRate, sh.Name)
		gauge(descApply, sh.ApplyRate, sh.Name)
		if sh.LagKnown {
			gauge(descLag, sh.Lag.Seconds(), sh.Name)
		}
		gauge(descShardGap, sh.Gap.Seconds(), sh.Name)
		gauge(descRetrying, bit(sh.Retrying != ""), sh.Name)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(failures[sh.Name]), sh.Name)
	}
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves GET /metrics from the migration's snapshots. Its own
// registry: the process's Go runtime metrics are not the migration's.
func metricsHandler(snapshot func() engine.Snapshot) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(snapshotCollector{snapshot: snapshot})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// scrape reads GET /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, addr, token string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := callAPI(context.Background(), addr, http.MethodGet, "/metrics", token)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v %s", code, err, body)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses /metrics: %v\n%s", err, body)
	}
	return families
}

// value is the sample of family name whose labels are all of want; ok is false
// when there is none.
func value(families map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == want[i] && l.GetValue() == want[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

// What is not known yet is absent, not 0: a lag before the shard replays, the
// optime gap while a shard copies, the deadline before the migration is ready.
func TestMetricsLeaveOutWhatIsNotKnown(t *testing.T) {
	f := newFakeControl()
	f.snap.State, f.snap.OptimeGapKnown, f.snap.TimerDeadline = engine.Syncing, false, time.Time{}
	f.snap.Shards = append(f.snap.Shards, engine.ShardProgress{Name: "rs1", Phase: engine.Copying, Retrying: "destination unreachable",
		Progress: engine.Progress{DocsCopied: 5, DocsTotal: 50, TotalsEstimated: true}})
	f.snap.History = []engine.Event{{Shard: "rs1", From: "copying", To: "failed"}, {Shard: "rs1", From: "failed", To: "pending"}}
	fam := scrape(t, serve(t, f), "")
	for _, name := range []string{"shardlift_optime_gap_seconds", "shardlift_cutover_deadline_timestamp_seconds"} {
		if _, ok := value(fam, name); ok {
			t.Errorf("%s is exposed while not known", name)
		}
	}
	if _, ok := value(fam, "shardlift_shard_lag_seconds", "shard", "rs1"); ok {
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
		{"shardlift_shard_expected_documents", []string{"shard", "rs1"}, 50},
		{"shardlift_shard_totals_estimated", []string{"shard", "rs1"}, 1},
		{"shardlift_shard_retrying", []string{"shard", "rs1"}, 1},
		{"shardlift_shard_retrying", []string{"shard", "rs0"}, 0},
		{"shardlift_shard_failures_total", []string{"shard", "rs1"}, 1},
	} {
		if got, ok := value(fam, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

// A headless migration of a sandbox, its API behind a token: /metrics, scraped while
// it runs and parsed by Prometheus's parser, says what GET /status says.
func TestMetricsDuringASandboxMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts two sandbox clusters")
	}
	src, dst := startPair(t, nil)
	ctx := context.Background()
	client, err := connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	if _, err := seed.Populate(ctx, client, 1500, rand.New(rand.NewPCG(5, 6))); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api.token")
	addr := freeAddr(t)
	mig := startCommand("migrate", "--source", src.URI(), "--destination", dst.URI(), "--state", filepath.Join(dir, "state.db"),
		"--api", addr, "--api-token-file", tokenFile, "--source-ca", src.CAFile(), "--destination-ca", dst.CAFile(), "--progress-every", "1s")
	token := awaitToken(t, mig, tokenFile)

	// Scraped while the migration starts, copies and replays: every scrape parses.
	var fam map[string]*dto.MetricFamily
	end := time.Now().Add(2 * time.Minute)
	for {
		fam = scrape(t, addr, token)
		if v, _ := value(fam, "shardlift_migration_state", "state", "ready"); v == 1 {
			break
		}
		if v, _ := value(fam, "shardlift_migration_state", "state", "failed"); v == 1 || time.Now().After(end) {
			t.Fatalf("never ready; last scrape: %v\n%s", fam["shardlift_migration_state"], mig.err.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body, err := callAPI(ctx, addr, http.MethodGet, "/status", token)
	if err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %v", code, err)
	}
	var st statusJSON
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if deadline, ok := value(fam, "shardlift_cutover_deadline_timestamp_seconds"); !ok || st.TimerDeadline == nil ||
		time.Unix(0, int64(deadline*1e9)).Sub(*st.TimerDeadline).Abs() > time.Millisecond {
		t.Errorf("deadline %v (present %v), status %v", deadline, ok, st.TimerDeadline)
	}
	if _, ok := value(fam, "shardlift_optime_gap_seconds"); !ok {
		t.Error("no optime gap once ready")
	}
	var copied float64
	for _, sh := range st.Shards {
		docs, _ := value(fam, "shardlift_shard_copied_documents", "shard", sh.Name)
		all, _ := value(fam, "shardlift_shard_expected_documents", "shard", sh.Name)
		copied += docs
		if docs <= 0 || docs != all {
			t.Errorf("shard %s: copied %v of %v documents once ready", sh.Name, docs, all)
		}
		if _, ok := value(fam, "shardlift_shard_lag_seconds", "shard", sh.Name); !ok {
			t.Errorf("shard %s has no lag once ready", sh.Name)
		}
		for _, name := range []string{"shardlift_shard_copied_bytes", "shardlift_shard_expected_bytes", "shardlift_shard_apply_entries_per_second",
			"shardlift_shard_copy_documents_per_second", "shardlift_shard_copy_bytes_per_second", "shardlift_shard_failures_total", "shardlift_shard_retrying"} {
			if _, ok := value(fam, name, "shard", sh.Name); !ok {
				t.Errorf("shard %s lacks %s", sh.Name, name)
			}
		}
	}
	if copied != 1500 {
		t.Errorf("the shards copied %v documents, want the 1500 seeded", copied)
	}
	if code, _, errOut := runCLI(t, "cancel", "--api", addr, "--api-token-file", tokenFile); code != exitOK {
		t.Fatalf("cancel: %s", errOut)
	}
	if code := mig.wait(t); code != exitOK {
		t.Fatalf("migrate: exit %d\n%s", code, mig.err.String())
	}
	if strings.Count(mig.out.String(), token) != 1 {
		t.Errorf("the token is not printed exactly once:\n%s", mig.out.String())
	}
}

// awaitToken waits until migrate created the token file and serves its API, and
// returns the token.
func awaitToken(t *testing.T, mig *background, path string) string {
	t.Helper()
	end := time.Now().Add(time.Minute)
	for {
		if token, err := readAPIToken(path); err == nil && strings.Contains(mig.out.String(), "\napi: http://") {
			return token
		}
		if time.Now().After(end) {
			t.Fatalf("no token file %s or no API:\n%s\n%s", path, mig.out.String(), mig.err.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

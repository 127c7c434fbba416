package app

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/api/apitest"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// A headless migration of a sandbox, its API behind a token: /metrics, scraped while
// it runs and parsed by Prometheus's parser, says what GET /status says.
func TestMetricsDuringASandboxMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts two sandbox clusters")
	}
	src, dst := startPair(t, nil)
	ctx := context.Background()
	client, err := src.Connect(ctx)
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
		fam = apitest.Scrape(t, addr, token)
		if v, _ := apitest.MetricValue(fam, "shardlift_migration_state", "state", "ready"); v == 1 {
			break
		}
		if v, _ := apitest.MetricValue(fam, "shardlift_migration_state", "state", "failed"); v == 1 || time.Now().After(end) {
			t.Fatalf("never ready; last scrape: %v\n%s", fam["shardlift_migration_state"], mig.err.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body, err := api.Call(ctx, addr, http.MethodGet, "/status", token)
	if err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %v", code, err)
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if deadline, ok := apitest.MetricValue(fam, "shardlift_cutover_deadline_timestamp_seconds"); !ok || st.TimerDeadline == nil ||
		time.Unix(0, int64(deadline*1e9)).Sub(*st.TimerDeadline).Abs() > time.Millisecond {
		t.Errorf("deadline %v (present %v), status %v", deadline, ok, st.TimerDeadline)
	}
	if _, ok := apitest.MetricValue(fam, "shardlift_optime_gap_seconds"); !ok {
		t.Error("no optime gap once ready")
	}
	var copied float64
	for _, sh := range st.Shards {
		docs, _ := apitest.MetricValue(fam, "shardlift_shard_copied_documents", "shard", sh.Name)
		all, _ := apitest.MetricValue(fam, "shardlift_shard_expected_documents", "shard", sh.Name)
		copied += docs
		if docs <= 0 || docs != all {
			t.Errorf("shard %s: copied %v of %v documents once ready", sh.Name, docs, all)
		}
		if _, ok := apitest.MetricValue(fam, "shardlift_shard_lag_seconds", "shard", sh.Name); !ok {
			t.Errorf("shard %s has no lag once ready", sh.Name)
		}
		for _, name := range []string{"shardlift_shard_copied_bytes", "shardlift_shard_expected_bytes", "shardlift_shard_apply_entries_per_second",
			"shardlift_shard_copy_documents_per_second", "shardlift_shard_copy_bytes_per_second", "shardlift_shard_failures_total", "shardlift_shard_retrying"} {
			if _, ok := apitest.MetricValue(fam, name, "shard", sh.Name); !ok {
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
		if token, err := api.ReadToken(path); err == nil && strings.Contains(mig.out.String(), "\napi: http://") {
			return token
		}
		if time.Now().After(end) {
			t.Fatalf("no token file %s or no API:\n%s\n%s", path, mig.out.String(), mig.err.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

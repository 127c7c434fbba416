package app

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/api/apitest"
	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/store"
)

func TestClientCommandsPrintTheAnswerAndExitByIt(t *testing.T) {
	f := apitest.NewControl()
	addr := apitest.Serve(t, f)
	code, out, errOut := runCLI(t, "status", "--api", addr)
	if code != exitOK || !strings.Contains(out, `"state": "cutting_over"`) {
		t.Fatalf("status: %d %s %s", code, out, errOut)
	}
	f.Err = &engine.GapError{Gap: 41 * time.Second, Shard: "rs1"}
	code, out, errOut = runCLI(t, "done", "--api", addr, "--override")
	if code != exitFail || !strings.Contains(errOut, "0:41") || !strings.Contains(out, "optimeGapSeconds") || !f.Override {
		t.Fatalf("done with a gap: %d %s %s", code, out, errOut)
	}
	f.Err = nil
	if code, _, errOut := runCLI(t, "restart-shard", "--api", addr, "rs1"); code != exitOK || f.Calls[len(f.Calls)-1] != "restart rs1" {
		t.Fatalf("restart-shard: %d %s %v", code, errOut, f.Calls)
	}
	if code, _, errOut := runCLI(t, "restart-shard", "--api", addr); code != exitUsage || !strings.Contains(errOut, "name the shard") {
		t.Fatalf("restart-shard without a shard: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "cancel"); code != exitUsage || !strings.Contains(errOut, "--api is required") {
		t.Fatalf("cancel without --api: %d %s", code, errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if code, _, errOut := runCLI(t, "extend", "--api", closed); code != exitFail || !strings.Contains(errOut, "cannot reach the API") {
		t.Fatalf("extend with nothing listening: %d %s", code, errOut)
	}
}

func TestMigrateBadUsageExitsTwo(t *testing.T) {
	cases := [][]string{
		{"migrate"},
		{"migrate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1"},
		{"migrate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1", "--state", "x.db", "--api", "0.0.0.0:1"},
		{"migrate", "--source", "a:1,,b:2", "--destination", "mongodb://b:1", "--state", "x.db"},
		{"migrate", "--source", "mongodb://u@a:1", "--destination", "mongodb://b:1", "--state", "x.db"},
	}
	for _, args := range cases {
		t.Setenv(envSourcePassword, "")
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d (%s)", args, code, errOut)
		}
	}
}

func TestMigrateReportsALockedStateFile(t *testing.T) {
	path := t.TempDir() + "/state.db"
	st, err := store.Open(path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, _, errOut := runCLI(t, "migrate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1", "--state", path)
	if code != exitFail || !strings.Contains(errOut, "another Shardlift is using this state file") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestConnSettingsKeepNoPassword(t *testing.T) {
	e, err := endpointFor("--source", "mongodb://app:pa55word@B.example:27017,a.example:27018/admin?tls=true", "", envSourcePassword, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := checkpoints.ConnSettings(e, "")
	if fmt.Sprint(got.Hosts) != "[a.example:27018 b.example:27017]" || got.Username != "app" || !got.TLS {
		t.Fatalf("settings %+v", got)
	}
	if strings.Contains(fmt.Sprintf("%+v", got), "pa55word") {
		t.Fatal("the password reached the state file's settings")
	}
}

func TestProgressLineSaysWhatMatters(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	s := engine.Snapshot{
		State: engine.Ready, TimerDeadline: now.Add(72 * time.Hour), Reason: "shard rs1 fell behind: lag 0:41",
		Overall: engine.Progress{DocsCopied: 12345, DocsTotal: 20000, BytesCopied: 1 << 20, BytesTotal: 2 << 20, Lag: 41 * time.Second, LagKnown: true},
		Shards: []engine.ShardProgress{{Name: "rs0", Phase: engine.Synced, Progress: engine.Progress{Lag: time.Second, LagKnown: true}},
			{Name: "rs1", Phase: engine.CatchingUp, Progress: engine.Progress{Lag: 41 * time.Second, LagKnown: true}, Waiting: "waiting for every shard to pass the drop of shop.carts"},
			{Name: "rs2", Phase: engine.Copying, Ranges: []engine.NamespaceRanges{{Namespace: "shop.orders", Done: 3, Total: 8}, {Namespace: "shop.items", Done: 0, Total: 8}}},
			{Name: "rs3", Phase: engine.Clearing, Clearing: engine.ClearProgress{Namespace: "shop.orders", Done: 2, Total: 5}}},
	}
	line := progressLine(s, now)
	for _, want := range []string{"ready", "12,345/20,000 docs", "1.0 MiB/2.0 MiB)", "lag 0:41", "window closes in 72h00m", "rs0 synced 0:01", "rs1 catching up 0:41 (waiting for every shard to pass the drop of shop.carts)", "fell behind",
		"rs2 copying (shop.orders: 3 of 8 ranges copied, shop.items: 0 of 8 ranges copied)", "rs3 clearing (shop.orders, 2 of 5 namespaces cleared)"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

// A shard that is not in sync blocks the cutover: the status says so, naming the
// shard, and both cutover actions answer 409 with it; the thin clients print why.
func TestAShardNotInSyncBlocksTheCutoverNamingIt(t *testing.T) {
	f := apitest.NewControl()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	f.Snap.State = engine.Ready
	f.Snap.OptimeGap, f.Snap.GapShard = 5*time.Minute, "rs1"
	f.Snap.LastSourceWrite, f.Snap.SourceWriteAge = now.Add(-4*time.Second), 4*time.Second
	failure := "the oplog of shard rs1 no longer reaches back to 10:02:11: restart this shard"
	f.Snap.Shards = append(f.Snap.Shards, engine.ShardProgress{Name: "rs1", Phase: engine.ShardFailed, Error: failure,
		Gap: 5 * time.Minute, AppliedUpTo: now.Add(-5 * time.Minute)})
	addr := apitest.Serve(t, f)
	_, body, err := api.Call(context.Background(), addr, http.MethodGet, "/status", "")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"canCutover": false, "cutoverBlocked": "shard rs1 failed: " + failure, "canFinish": false,
		"gapShard": "rs1", "lastSourceWrite": "2026-03-01T08:59:56Z", "sourceWriteAgeSeconds": 4.0}
	for k, w := range want {
		if st[k] != w {
			t.Errorf("status %s = %v, want %v", k, st[k], w)
		}
	}
	rs1 := st["shards"].([]any)[1].(map[string]any)
	if rs1["gapSeconds"] != 300.0 || rs1["appliedUpTo"] != "2026-03-01T08:55:00Z" {
		t.Errorf("rs1 %v", rs1)
	}

	f.Err = &engine.NotSyncedError{Action: "start the cutover", Shard: "rs1", Phase: engine.ShardFailed, Why: "shard rs1 failed: " + failure}
	for _, p := range []string{"/cutover/start", "/cutover/done"} {
		code, body, err := api.Call(context.Background(), addr, http.MethodPost, p, "")
		if err != nil || code != http.StatusConflict || !strings.Contains(string(body), `"shard": "rs1"`) || !strings.Contains(string(body), "shard rs1 failed") {
			t.Errorf("POST %s: %d %s %v", p, code, body, err)
		}
	}
	code, _, errOut := runCLI(t, "cutover", "--api", addr)
	if code != exitFail || !strings.Contains(errOut, "cannot start the cutover: shard rs1 failed: the oplog of shard rs1 no longer reaches back") {
		t.Fatalf("cutover: %d %s", code, errOut)
	}
}

// Cancel's answer says where each shard stopped, in the JSON and for people.
func TestCancelClientSaysWhereEachShardStopped(t *testing.T) {
	f := apitest.NewControl()
	at := time.Date(2026, 3, 1, 10, 20, 11, 0, time.UTC)
	f.Snap.State = engine.Cancelled
	f.Snap.Reason = "cancelled during the cutover: the destination is not a consistent staging copy: shard rs1 failed and stopped at 2026-03-01 10:02:11 UTC"
	f.Snap.Summary = &engine.Summary{FinishedAt: at, Shards: []engine.ShardPosition{
		{Shard: "rs0", Phase: engine.Synced, AppliedUpTo: at, Consistent: true, Text: "shard rs0 applied every entry up to 2026-03-01 10:20:11 UTC (source time)"},
		{Shard: "rs1", Phase: engine.ShardFailed, AppliedUpTo: at.Add(-18 * time.Minute), Text: "shard rs1 failed and stopped at 2026-03-01 10:02:11 UTC: not a consistent staging copy"},
	}}
	code, out, errOut := runCLI(t, "cancel", "--api", apitest.Serve(t, f))
	if code != exitOK {
		t.Fatalf("cancel: %d %s", code, errOut)
	}
	for _, w := range []string{"shard rs0 applied every entry up to 2026-03-01 10:20:11 UTC", "shard rs1 failed and stopped at 2026-03-01 10:02:11 UTC", "not a consistent staging copy"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("cancel printed %q, lacking %q", errOut, w)
		}
	}
	if !strings.Contains(out, `"appliedUpTo": "2026-03-01T10:02:11Z"`) || !strings.Contains(out, `"consistent": false`) {
		t.Errorf("cancel's JSON lacks the positions: %s", out)
	}
}

// While a shard copies, the line labels the totals as estimates and says the lag
// is not known, instead of "lag 0:00".
func TestProgressLineLabelsEstimatesAndUnknownLag(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	s := engine.Snapshot{
		State:   engine.Syncing,
		Overall: engine.Progress{DocsCopied: 2106, DocsTotal: 20341, BytesCopied: 2_829_050, BytesTotal: 27_262_976, TotalsEstimated: true},
		Shards: []engine.ShardProgress{{Name: "rs0", Phase: engine.Copying, Progress: engine.Progress{TotalsEstimated: true}},
			{Name: "rs1", Phase: engine.CatchingUp}},
	}
	line := progressLine(s, now)
	for _, want := range []string{"copied 2,106/~20,341 docs (2.7 MiB/~26 MiB, totals estimated)", "lag — (not every shard replays yet)", "rs0 copying", "rs1 catching up —"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "lag 0:00") || strings.Contains(line, "up 0:00") {
		t.Errorf("line %q shows a lag of 0:00 that nobody measured", line)
	}
	s.State = engine.CuttingOver
	if line := progressLine(s, now); !strings.Contains(line, "optime gap — (not every shard replays yet)") {
		t.Errorf("cutting over with a shard restarted: %q", line)
	}
}

// While the start places the destination's collections, the status says how far.
func TestStatusCarriesThePlacement(t *testing.T) {
	f := apitest.NewControl()
	f.Snap.State = engine.Starting
	f.Snap.Placement = &engine.Placement{Collections: 3, CollectionsPlaced: 1, Ranges: 41, RangesPlaced: 17}
	_, body, err := api.Call(context.Background(), apitest.Serve(t, f), http.MethodGet, "/status", "")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Placement map[string]int }
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"collections": 3, "collectionsPlaced": 1, "ranges": 41, "rangesPlaced": 17}
	if !maps.Equal(st.Placement, want) {
		t.Errorf("placement %v, want %v: %s", st.Placement, want, body)
	}
	if line := progressLine(f.Snap, time.Now()); !strings.Contains(line, "starting | placed 17 of 41 ranges, 1 of 3 sharded collections") {
		t.Errorf("progress line %q lacks the placement", line)
	}
}

// While it syncs, the status and the progress line say how far the continuous
// verification is.
func TestStatusCarriesTheContinuousVerification(t *testing.T) {
	f := apitest.NewControl()
	f.Snap.State = engine.Ready
	f.Snap.Continuous = &engine.ContinuousProgress{Namespaces: 5, NamespacesCompared: 3, Ranges: 40, RangesCompared: 12, Rechecked: 77, Pending: 2, Persisting: 1, WaitingForReplay: true}
	_, body, err := api.Call(context.Background(), apitest.Serve(t, f), http.MethodGet, "/status", "")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Continuous map[string]any }
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"namespaces": 5.0, "namespacesCompared": 3.0, "ranges": 40.0, "rangesCompared": 12.0, "documentsRechecked": 77.0, "mismatchesPendingRecheck": 2.0, "mismatchesPersisting": 1.0, "waitingForReplay": true}
	if !maps.Equal(st.Continuous, want) {
		t.Errorf("continuous %v, want %v: %s", st.Continuous, want, body)
	}
	if line := progressLine(f.Snap, time.Now()); !strings.Contains(line, "| verified 12 of 40 ranges (3 of 5 namespaces) (waiting: the replay goes first), 77 documents rechecked, 2 differing pending recheck, 1 persisting") {
		t.Errorf("progress line %q lacks the continuous verification", line)
	}
}

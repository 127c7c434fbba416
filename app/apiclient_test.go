package app

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/api/apitest"
	"github.com/shardlift/shardlift/engine"
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

// The thin clients send the token of --api-token-file, and say what to do without it.
func TestClientsCarryTheTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api.token")
	token, created, err := api.LoadOrCreateToken(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	addr := apitest.ServeWithToken(t, apitest.NewControl(), token)
	if code, out, errOut := runCLI(t, "status", "--api", addr); code != exitFail || !strings.Contains(errOut, "requires its token") {
		t.Fatalf("status without the token: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "status", "--api", addr, "--api-token-file", path); code != exitOK || !strings.Contains(out, `"state": "cutting_over"`) {
		t.Fatalf("status with the token: %d %s %s", code, out, errOut)
	}
}

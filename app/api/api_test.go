package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/store"
)

// fakeControl answers the API as a migration would, with errors set by the test.
type fakeControl struct {
	snap     engine.Snapshot
	err      error
	calls    []string
	override bool
}

func (f *fakeControl) Snapshot() engine.Snapshot { return f.snap }
func (f *fakeControl) StartCutover(context.Context) error {
	f.calls = append(f.calls, "cutover")
	return f.err
}
func (f *fakeControl) Done(_ context.Context, override bool) error {
	f.calls = append(f.calls, "done")
	f.override = override
	return f.err
}
func (f *fakeControl) Cancel(context.Context) error {
	f.calls = append(f.calls, "cancel")
	return f.err
}
func (f *fakeControl) ExtendTimer(context.Context) error {
	f.calls = append(f.calls, "extend")
	return f.err
}
func (f *fakeControl) RestartShard(_ context.Context, name string) error {
	f.calls = append(f.calls, "restart "+name)
	return f.err
}
func (f *fakeControl) Verify(context.Context) (*engine.Verification, error) {
	f.calls = append(f.calls, "verify")
	return nil, f.err
}

func newFakeControl() *fakeControl {
	return &fakeControl{snap: engine.Snapshot{
		ID: "m1", State: engine.CuttingOver, OptimeGap: 41 * time.Second, OptimeGapKnown: true, SourceReads: "secondary (tags dc:east)",
		TimerDeadline: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC),
		Shards: []engine.ShardProgress{{Name: "rs0", Phase: engine.Synced, Progress: engine.Progress{
			DocsCopied: 10, DocsTotal: 10, BytesCopied: 1000, BytesTotal: 1000, Lag: 2 * time.Second, LagKnown: true},
			Waiting: "waiting for every shard to pass the drop of shop.carts"}},
	}}
}

// serve starts the API on a loopback port and returns its address.
func serve(t *testing.T, m migrationControl) string { return serveWithToken(t, m, "") }

// serveWithToken starts the API requiring token ("": none) and returns its address.
func serveWithToken(t *testing.T, m migrationControl, token string) string {
	t.Helper()
	srv := httptest.NewServer(newAPIHandler(context.Background(), m, token))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestStatusHasTheFieldsScriptsRead(t *testing.T) {
	addr := serve(t, newFakeControl())
	code, body, err := callAPI(context.Background(), addr, http.MethodGet, "/status", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /status: %d %v", code, err)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st["state"] != "cutting_over" || st["optimeGapSeconds"] != 41.0 || st["timerDeadline"] != "2026-03-04T09:00:00Z" ||
		st["sourceReadPreference"] != "secondary (tags dc:east)" {
		t.Fatalf("status %s", body)
	}
	if _, ok := st["verification"]; !ok {
		t.Fatalf("status lacks verification: %s", body)
	}
	shard := st["shards"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"name": "rs0", "phase": "synced", "waiting": "waiting for every shard to pass the drop of shop.carts", "lagSeconds": 2.0, "docsCopied": 10.0, "docsTotal": 10.0, "bytesCopied": 1000.0, "bytesTotal": 1000.0, "totalsEstimated": false} {
		if shard[k] != want {
			t.Errorf("shard %s = %v, want %v (%s)", k, shard[k], want, body)
		}
	}
}

// While shards copy, their totals are estimates and their lag is not known: the
// status says so (totalsEstimated, lagSeconds and optimeGapSeconds null), never a
// lag of 0 next to a gap of several seconds.
func TestStatusSaysWhatIsNotKnownYet(t *testing.T) {
	f := newFakeControl()
	f.snap.State, f.snap.OptimeGap, f.snap.OptimeGapKnown = engine.Syncing, 6400*time.Millisecond, false
	copying := engine.Progress{DocsCopied: 2106, DocsTotal: 20341, BytesCopied: 2_829_050, BytesTotal: 27_000_000, TotalsEstimated: true}
	replaying := engine.Progress{DocsCopied: 500, DocsTotal: 500, BytesCopied: 50_000, BytesTotal: 50_000, Lag: 3 * time.Second, LagKnown: true}
	f.snap.Overall = copying
	f.snap.Shards = []engine.ShardProgress{{Name: "rs0", Phase: engine.Copying, Progress: copying}, {Name: "rs1", Phase: engine.CatchingUp, Progress: replaying}}
	_, body, err := callAPI(context.Background(), serve(t, f), http.MethodGet, "/status", "")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		OptimeGapSeconds *float64 `json:"optimeGapSeconds"`
		Overall          map[string]any
		Shards           []map[string]any
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	for what, p := range map[string]map[string]any{"overall": st.Overall, "copying shard": st.Shards[0]} {
		if lag, ok := p["lagSeconds"]; !ok || lag != nil {
			t.Errorf("%s: lagSeconds %v (present %v), want null: %s", what, lag, ok, body)
		}
		if p["totalsEstimated"] != true {
			t.Errorf("%s: totalsEstimated %v, want true: %s", what, p["totalsEstimated"], body)
		}
	}
	if st.Shards[1]["lagSeconds"] != 3.0 || st.Shards[1]["totalsEstimated"] != false {
		t.Errorf("replaying shard: %v", st.Shards[1])
	}
	if st.OptimeGapSeconds != nil || !strings.Contains(string(body), `"optimeGapSeconds": null`) {
		t.Errorf("optimeGapSeconds %v while a shard copies, want null: %s", st.OptimeGapSeconds, body)
	}
}

func TestActionsMapRefusalsToStatusCodes(t *testing.T) {
	cases := []struct {
		err  error
		code int
		say  string
	}{
		{&engine.GapError{Gap: 41 * time.Second, Shard: "rs1"}, http.StatusConflict, `"optimeGapSeconds": 41`},
		{&engine.RefusedError{Action: "finish the cutover", State: engine.Ready}, http.StatusConflict, "cannot finish the cutover"},
		{&engine.MismatchError{Verification: &engine.Verification{Ranges: 2, Mismatches: []engine.Mismatch{{Namespace: "a.b"}}}}, http.StatusConflict, `"namespace": "a.b"`},
		{&engine.MismatchError{Verification: &engine.Verification{Ranges: 2, Late: []engine.LateWrites{{Shard: "rs1", Writes: 4}}}}, http.StatusConflict, `"text": "shard rs1 took 4 writes after the sync stopped"`},
		{fmt.Errorf("restart shard x: %w", engine.ErrUnknownShard), http.StatusNotFound, "no such source shard"},
		{engine.ErrNotRunning, http.StatusServiceUnavailable, "not running"},
		{fmt.Errorf("disk full"), http.StatusInternalServerError, "disk full"},
		{nil, http.StatusOK, `"state": "cutting_over"`},
	}
	for _, c := range cases {
		f := newFakeControl()
		f.err = c.err
		code, body, err := callAPI(context.Background(), serve(t, f), http.MethodPost, "/cutover/done", "")
		if err != nil || code != c.code || !strings.Contains(string(body), c.say) {
			t.Errorf("error %v: answered %d %s, want %d with %q", c.err, code, body, c.code, c.say)
		}
	}
}

func TestEveryEndpointReachesItsAction(t *testing.T) {
	f := newFakeControl()
	addr := serve(t, f)
	for _, p := range []string{"/cutover/start", "/cutover/done?override=true", "/cancel", "/timer/extend", "/shards/rs%2F1/restart", "/verify"} {
		if code, body, err := callAPI(context.Background(), addr, http.MethodPost, p, ""); err != nil || code != http.StatusOK {
			t.Fatalf("POST %s: %d %s %v", p, code, body, err)
		}
	}
	want := []string{"cutover", "done", "cancel", "extend", "restart rs/1", "verify"}
	if fmt.Sprint(f.calls) != fmt.Sprint(want) || !f.override {
		t.Fatalf("calls %v override %v", f.calls, f.override)
	}
	if code, _, _ := callAPI(context.Background(), addr, http.MethodGet, "/cancel", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /cancel: %d", code)
	}
}

func TestAPIListensOnLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8321", "localhost:1", "[::1]:9"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:8321", ":8321", "10.1.2.3:80", "db.example.com:80", "127.0.0.1"} {
		if err := checkLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/cancel", nil)
	req.RemoteAddr = "10.1.2.3:5555"
	rec := httptest.NewRecorder()
	f := newFakeControl()
	newAPIHandler(context.Background(), f, "").ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || len(f.calls) != 0 {
		t.Fatalf("a remote request: %d, calls %v", rec.Code, f.calls)
	}
}

func TestClientCommandsPrintTheAnswerAndExitByIt(t *testing.T) {
	f := newFakeControl()
	addr := serve(t, f)
	code, out, errOut := runCLI(t, "status", "--api", addr)
	if code != exitOK || !strings.Contains(out, `"state": "cutting_over"`) {
		t.Fatalf("status: %d %s %s", code, out, errOut)
	}
	f.err = &engine.GapError{Gap: 41 * time.Second, Shard: "rs1"}
	code, out, errOut = runCLI(t, "done", "--api", addr, "--override")
	if code != exitFail || !strings.Contains(errOut, "0:41") || !strings.Contains(out, "optimeGapSeconds") || !f.override {
		t.Fatalf("done with a gap: %d %s %s", code, out, errOut)
	}
	f.err = nil
	if code, _, errOut := runCLI(t, "restart-shard", "--api", addr, "rs1"); code != exitOK || f.calls[len(f.calls)-1] != "restart rs1" {
		t.Fatalf("restart-shard: %d %s %v", code, errOut, f.calls)
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
	got := connSettings(e, "")
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
			{Name: "rs1", Phase: engine.CatchingUp, Progress: engine.Progress{Lag: 41 * time.Second, LagKnown: true}, Waiting: "waiting for every shard to pass the drop of shop.carts"}},
	}
	line := progressLine(s, now)
	for _, want := range []string{"ready", "12,345/20,000 docs", "1.0 MiB/2.0 MiB)", "lag 0:41", "window closes in 72h00m", "rs0 synced 0:01", "rs1 catching up 0:41 (waiting for every shard to pass the drop of shop.carts)", "fell behind"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

// A shard that is not in sync blocks the cutover: the status says so, naming the
// shard, and both cutover actions answer 409 with it; the thin clients print why.
func TestAShardNotInSyncBlocksTheCutoverNamingIt(t *testing.T) {
	f := newFakeControl()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	f.snap.State = engine.Ready
	f.snap.OptimeGap, f.snap.GapShard = 5*time.Minute, "rs1"
	f.snap.LastSourceWrite, f.snap.SourceWriteAge = now.Add(-4*time.Second), 4*time.Second
	failure := "the oplog of shard rs1 no longer reaches back to 10:02:11: restart this shard"
	f.snap.Shards = append(f.snap.Shards, engine.ShardProgress{Name: "rs1", Phase: engine.ShardFailed, Error: failure,
		Gap: 5 * time.Minute, AppliedUpTo: now.Add(-5 * time.Minute)})
	addr := serve(t, f)
	_, body, err := callAPI(context.Background(), addr, http.MethodGet, "/status", "")
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

	f.err = &engine.NotSyncedError{Action: "start the cutover", Shard: "rs1", Phase: engine.ShardFailed, Why: "shard rs1 failed: " + failure}
	for _, p := range []string{"/cutover/start", "/cutover/done"} {
		code, body, err := callAPI(context.Background(), addr, http.MethodPost, p, "")
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
	f := newFakeControl()
	at := time.Date(2026, 3, 1, 10, 20, 11, 0, time.UTC)
	f.snap.State = engine.Cancelled
	f.snap.Reason = "cancelled during the cutover: the destination is not a consistent staging copy: shard rs1 failed and stopped at 2026-03-01 10:02:11 UTC"
	f.snap.Summary = &engine.Summary{FinishedAt: at, Shards: []engine.ShardPosition{
		{Shard: "rs0", Phase: engine.Synced, AppliedUpTo: at, Consistent: true, Text: "shard rs0 applied every entry up to 2026-03-01 10:20:11 UTC (source time)"},
		{Shard: "rs1", Phase: engine.ShardFailed, AppliedUpTo: at.Add(-18 * time.Minute), Text: "shard rs1 failed and stopped at 2026-03-01 10:02:11 UTC: not a consistent staging copy"},
	}}
	code, out, errOut := runCLI(t, "cancel", "--api", serve(t, f))
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
	f := newFakeControl()
	f.snap.State = engine.Starting
	f.snap.Placement = &engine.Placement{Collections: 3, CollectionsPlaced: 1, Ranges: 41, RangesPlaced: 17}
	_, body, err := callAPI(context.Background(), serve(t, f), http.MethodGet, "/status", "")
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
	if line := progressLine(f.snap, time.Now()); !strings.Contains(line, "starting | placed 17 of 41 ranges, 1 of 3 sharded collections") {
		t.Errorf("progress line %q lacks the placement", line)
	}
}

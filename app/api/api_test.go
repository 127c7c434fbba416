package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/api/apitest"
	"github.com/shardlift/shardlift/engine"
)

func TestStatusHasTheFieldsScriptsRead(t *testing.T) {
	addr := apitest.Serve(t, apitest.NewControl())
	code, body, err := api.Call(context.Background(), addr, http.MethodGet, "/status", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /status: %d %v", code, err)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st["state"] != "cutting_over" || st["optimeGapSeconds"] != 41.0 || st["timerDeadline"] != "2026-03-04T09:00:00Z" ||
		st["sourceReadPreference"] != "secondary (tags dc:east); shard rs0: primary" {
		t.Fatalf("status %s", body)
	}
	if _, ok := st["verification"]; !ok {
		t.Fatalf("status lacks verification: %s", body)
	}
	shard := st["shards"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"name": "rs0", "phase": "synced", "waiting": "waiting for every shard to pass the drop of shop.carts", "lagSeconds": 2.0, "docsCopied": 10.0, "docsTotal": 10.0, "bytesCopied": 1000.0, "bytesTotal": 1000.0, "totalsEstimated": false, "readPreference": "primary"} {
		if shard[k] != want {
			t.Errorf("shard %s = %v, want %v (%s)", k, shard[k], want, body)
		}
	}
}

// While shards copy, their totals are estimates and their lag is not known: the
// status says so (totalsEstimated, lagSeconds and optimeGapSeconds null), never a
// lag of 0 next to a gap of several seconds.
func TestStatusSaysWhatIsNotKnownYet(t *testing.T) {
	f := apitest.NewControl()
	f.Snap.State, f.Snap.OptimeGap, f.Snap.OptimeGapKnown = engine.Syncing, 6400*time.Millisecond, false
	copying := engine.Progress{DocsCopied: 2106, DocsTotal: 20341, BytesCopied: 2_829_050, BytesTotal: 27_000_000, TotalsEstimated: true}
	replaying := engine.Progress{DocsCopied: 500, DocsTotal: 500, BytesCopied: 50_000, BytesTotal: 50_000, Lag: 3 * time.Second, LagKnown: true}
	f.Snap.Overall = copying
	f.Snap.Shards = []engine.ShardProgress{{Name: "rs0", Phase: engine.Copying, Progress: copying,
		Ranges: []engine.NamespaceRanges{{Namespace: "shop.orders", Done: 3, Total: 8}}}, {Name: "rs1", Phase: engine.CatchingUp, Progress: replaying}}
	_, body, err := api.Call(context.Background(), apitest.Serve(t, f), http.MethodGet, "/status", "")
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
	if _, ok := st.Shards[0]["clearing"]; ok {
		t.Errorf("copying shard says it clears: %s", body)
	}
	// The copying shard's namespace in _id ranges: how many are copied, of how many.
	if got := fmt.Sprint(st.Shards[0]["ranges"]); got != "[map[done:3 namespace:shop.orders total:8]]" {
		t.Errorf("copying shard's ranges %s, want shop.orders 3 of 8: %s", got, body)
	}
	if _, ok := st.Shards[1]["ranges"]; ok {
		t.Errorf("replaying shard has ranges: %s", body)
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
		f := apitest.NewControl()
		f.Err = c.err
		code, body, err := api.Call(context.Background(), apitest.Serve(t, f), http.MethodPost, "/cutover/done", "")
		if err != nil || code != c.code || !strings.Contains(string(body), c.say) {
			t.Errorf("error %v: answered %d %s, want %d with %q", c.err, code, body, c.code, c.say)
		}
	}
}

func TestEveryEndpointReachesItsAction(t *testing.T) {
	f := apitest.NewControl()
	addr := apitest.Serve(t, f)
	for _, p := range []string{"/cutover/start", "/cutover/done?override=true", "/cancel", "/timer/extend", "/shards/rs%2F1/restart", "/verify"} {
		if code, body, err := api.Call(context.Background(), addr, http.MethodPost, p, ""); err != nil || code != http.StatusOK {
			t.Fatalf("POST %s: %d %s %v", p, code, body, err)
		}
	}
	want := []string{"cutover", "done", "cancel", "extend", "restart rs/1", "verify"}
	if fmt.Sprint(f.Calls) != fmt.Sprint(want) || !f.Override {
		t.Fatalf("calls %v override %v", f.Calls, f.Override)
	}
	if code, _, _ := api.Call(context.Background(), addr, http.MethodGet, "/cancel", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /cancel: %d", code)
	}
}

func TestAPIListensOnLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8321", "localhost:1", "[::1]:9"} {
		if err := api.CheckLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:8321", ":8321", "10.1.2.3:80", "db.example.com:80", "127.0.0.1"} {
		if err := api.CheckLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/cancel", nil)
	req.RemoteAddr = "10.1.2.3:5555"
	rec := httptest.NewRecorder()
	f := apitest.NewControl()
	api.NewHandler(context.Background(), f, "").ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || len(f.Calls) != 0 {
		t.Fatalf("a remote request: %d, calls %v", rec.Code, f.Calls)
	}
}

// A restarted shard clearing its data on the destination is in the clearing phase,
// and says which namespace it clears and how many of how many are cleared.
func TestStatusSaysWhereAClearingShardIs(t *testing.T) {
	f := apitest.NewControl()
	f.Snap.State = engine.Syncing
	f.Snap.Shards = []engine.ShardProgress{{Name: "rs1", Phase: engine.Clearing,
		Clearing: engine.ClearProgress{Namespace: "shop.orders", Done: 2, Total: 5}}}
	_, body, err := api.Call(context.Background(), apitest.Serve(t, f), http.MethodGet, "/status", "")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Shards []map[string]any }
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if got := st.Shards[0]["phase"]; got != "clearing" {
		t.Errorf("phase %v, want clearing: %s", got, body)
	}
	if got := fmt.Sprint(st.Shards[0]["clearing"]); got != "map[done:2 namespace:shop.orders total:5]" {
		t.Errorf("clearing %s, want shop.orders, 2 of 5: %s", got, body)
	}
}

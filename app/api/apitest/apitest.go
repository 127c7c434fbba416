package apitest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/engine"
)

// Control answers the API as a migration would, with errors set by the test.
type Control struct {
	Snap     engine.Snapshot
	Err      error
	Calls    []string
	Override bool
}

func (f *Control) Snapshot() engine.Snapshot { return f.Snap }

func (f *Control) StartCutover(context.Context) error {
	f.Calls = append(f.Calls, "cutover")
	return f.Err
}

func (f *Control) Done(_ context.Context, override bool) error {
	f.Calls = append(f.Calls, "done")
	f.Override = override
	return f.Err
}

func (f *Control) Cancel(context.Context) error {
	f.Calls = append(f.Calls, "cancel")
	return f.Err
}

func (f *Control) ExtendTimer(context.Context) error {
	f.Calls = append(f.Calls, "extend")
	return f.Err
}

func (f *Control) RestartShard(_ context.Context, name string) error {
	f.Calls = append(f.Calls, "restart "+name)
	return f.Err
}

func (f *Control) Verify(context.Context) (*engine.Verification, error) {
	f.Calls = append(f.Calls, "verify")
	return nil, f.Err
}

func NewControl() *Control {
	return &Control{Snap: engine.Snapshot{
		ID: "m1", State: engine.CuttingOver, OptimeGap: 41 * time.Second, OptimeGapKnown: true, SourceReads: "secondary (tags dc:east); shard rs0: primary",
		TimerDeadline: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC),
		Shards: []engine.ShardProgress{{Name: "rs0", Phase: engine.Synced, Progress: engine.Progress{
			DocsCopied: 10, DocsTotal: 10, BytesCopied: 1000, BytesTotal: 1000, Lag: 2 * time.Second, LagKnown: true},
			Waiting: "waiting for every shard to pass the drop of shop.carts", Reads: "primary"}},
	}}
}

// Serve starts the API on a loopback port and returns its address.
func Serve(t *testing.T, m api.Control) string { return ServeWithToken(t, m, "") }

// ServeWithToken starts the API requiring token ("": none) and returns its address.
func ServeWithToken(t *testing.T, m api.Control, token string) string {
	t.Helper()
	srv := httptest.NewServer(api.NewHandler(context.Background(), m, token))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Scrape reads GET /metrics and parses it with Prometheus's own text parser.
func Scrape(t *testing.T, addr, token string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := api.Call(context.Background(), addr, http.MethodGet, "/metrics", token)
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

// MetricValue is the sample of family name whose labels are all of want; ok is false
// when there is none.
func MetricValue(families map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
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

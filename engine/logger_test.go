package engine

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/engine/topology"
)

// What the clusters log (a DDL applied on the destination, a retry) names the
// migration, as the migration's own records do: the app files records in the
// migration's log by that name and drops those that name none.
func TestTheClustersLogNamesTheMigration(t *testing.T) {
	var out bytes.Buffer
	fc := newFakeClusters("s0")
	connect := fc.connector()
	m, err := New(Config{
		ID:          "m7",
		Source:      topology.Endpoint{URI: "mongodb://src-mongos:27017/"},
		Destination: topology.Endpoint{URI: "mongodb://dst-mongos:27017/"},
		Logger:      slog.New(slog.NewTextHandler(&out, nil)),
	}, newMemCheckpoints("m7"), WithConnector(func(ctx context.Context, cfg Config, relaxed RelaxSink) (Clusters, error) {
		cfg.Logger.Info("applied DDL")
		return connect(ctx, cfg, relaxed)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.connect(context.Background(), m.cfg, m.relaxed); err != nil {
		t.Fatal(err)
	}
	if line := out.String(); !strings.Contains(line, "applied DDL") || !strings.Contains(line, "migration=m7") {
		t.Fatalf("the clusters logged %q, want the record naming migration m7", line)
	}
}

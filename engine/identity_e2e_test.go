package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
)

// withoutValidation is the real clusters with the pre-migration checks skipped,
// as a caller that never validated would have them.
type withoutValidation struct{ Clusters }

func (w withoutValidation) Validate(ctx context.Context) (Inventory, error) { return Inventory{}, nil }

// The walk of issue 19: --source S --destination S --wipe-destination dropped every
// database of S. The engine refuses it by itself, validation or not.
func TestTheEngineRefusesToMigrateAClusterIntoItself(t *testing.T) {
	e := startE2E(t, 300)
	before := e.userNamespaces(e.srcC)
	cp := newMemCheckpoints("self")
	m, err := New(Config{ID: "self", Source: e.src, Destination: e.src}, cp,
		WithConnector(func(ctx context.Context, cfg Config, relaxed RelaxSink) (Clusters, error) {
			c, err := NewMongoClusters(ctx, cfg, relaxed)
			return withoutValidation{c}, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Run(context.Background(), StartOptions{WipeDestination: true})
	var same *SameClusterError
	if !errors.As(err, &same) || !same.Overlap.SameClusterID {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(err.Error(), "both have clusterId "+same.SourceID.ClusterID.Hex()) {
		t.Errorf("refusal: %v", err)
	}
	if after := e.userNamespaces(e.srcC); !slices.Equal(after, before) || len(before) == 0 {
		t.Fatalf("the source's namespaces: before %v, after %v", before, after)
	}
	if rec := cp.record(); rec.State != Draft || rec.SourceIdentity != nil || len(rec.History) != 0 {
		t.Fatalf("the refused migration recorded %+v", rec)
	}
	if !e.balancerOn(e.srcC) {
		t.Fatal("the refused migration stopped the balancer")
	}
}

// readMarker reads the destination's marker.
func (e *e2e) readMarker() *topology.Marker {
	e.t.Helper()
	m, err := topology.ReadMarker(context.Background(), e.dstC)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// A second migration into a destination that a running one holds is refused, wipe
// confirmed or not, naming who holds it; the running one's marker goes when it is
// cancelled.
func TestASecondMigrationIntoARunningOnesDestinationIsRefused(t *testing.T) {
	e := startE2E(t, 500)
	first := e.migration(newMemCheckpoints("e2e"))
	r := run(first, StartOptions{WipeDestination: true})
	await(t, first, 3*time.Minute, "syncing", isState(Syncing))
	held := e.readMarker()
	if held == nil || held.MigrationID != "e2e" || held.Workstation == "" || held.SourceClusterID.IsZero() {
		t.Fatalf("marker of the running migration: %+v", held)
	}
	second, err := New(Config{ID: "second", Source: e.src, Destination: e.dst, Workstation: "other-desk"}, newMemCheckpoints("second"))
	if err != nil {
		t.Fatal(err)
	}
	err = second.Run(context.Background(), StartOptions{WipeDestination: true})
	if !errors.Is(err, ErrValidation) && !errors.Is(err, ErrDestinationInUse) {
		t.Fatalf("the second migration: %v", err)
	}
	if !strings.Contains(err.Error(), "migration e2e") || !strings.Contains(err.Error(), held.Workstation) {
		t.Fatalf("the refusal does not say who holds the destination: %v", err)
	}
	if m := e.readMarker(); m == nil || m.MigrationID != "e2e" {
		t.Fatalf("the marker after the refusal: %+v", m)
	}
	if err := first.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if m := e.readMarker(); m != nil {
		t.Fatalf("the marker stays after cancel: %+v", m)
	}
	if dbs := e.userNamespaces(e.dstC); slices.ContainsFunc(dbs, func(ns string) bool { return strings.HasPrefix(ns, topology.MarkerDatabase+".") }) {
		t.Fatalf("the destination lists %v", dbs)
	}
}

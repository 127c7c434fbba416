package gui

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// The desktop app's path: Validate fails the identity check, Start is refused
// before anything changes, and nothing of the refused migration stays on the list.
func TestGUIRefusesTheSameClusterAsSourceAndDestination(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	c, client := sandboxtest.StartCluster(t, "source", 300)
	before := sandboxtest.Contents(t, client)
	b := newTestBridge(t, newMemKeyring(), "")
	conn := ui.Connection{Hosts: c.URI()}
	ctx := context.Background()
	v, err := b.Validate(ctx, conn, conn)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(v.Checks, func(c ui.Check) bool { return c.Title == "Source and destination are two different clusters" })
	if i < 0 || v.Checks[i].Status != ui.Failed || !strings.Contains(v.Checks[i].Detail, "both have clusterId") {
		t.Fatalf("checks %+v", v.Checks)
	}
	m, err := b.Start(ctx, conn, conn, true)
	if m != nil || !errors.Is(err, engine.ErrSameCluster) {
		t.Fatalf("Start: %v, %v", m, err)
	}
	if all, _ := b.st.Migrations(); len(all) != 0 {
		t.Fatalf("the refused migration stays on the list: %+v", all)
	}
	if after := sandboxtest.Contents(t, client); !slices.Equal(after, before) {
		t.Fatalf("the source changed:\n before %v\n after  %v", before, after)
	}
}

// A migration reopened from the list whose addresses now reach another cluster
// than the one it recorded is refused, saying which cluster it belongs to; its
// record is left byte for byte.
func TestGUIResumeOnAnotherClusterIsRefused(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	src, _ := sandboxtest.StartCluster(t, "source", 0)
	dst, _ := sandboxtest.StartCluster(t, "destination", 0)
	ctx := context.Background()
	srcID, err := topology.ReadIdentity(ctx, sandboxtest.Endpoint(src.URI()))
	if err != nil {
		t.Fatal(err)
	}
	recordedDst := srcID // any other cluster than the one at dst's address
	recordedDst.ClusterID[0] ^= 0xff
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := store.Migration{ID: "m-old", Name: "old", State: string(engine.Draft),
		Source: checkpoints.ConnSettings(sandboxtest.Endpoint(src.URI()), ""), Destination: checkpoints.ConnSettings(sandboxtest.Endpoint(dst.URI()), ""),
		SourceIdentity: checkpoints.ToStoreIdentity(&srcID), DestinationIdentity: checkpoints.ToStoreIdentity(&recordedDst)}
	if err := st.SaveMigration(rec); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, newMemKeyring(), path)
	m, err := b.Open(ctx, "m-old", &ui.Passwords{})
	if err != nil {
		t.Fatal(err)
	}
	s := awaitRefusal(t, m)
	if !strings.Contains(s.Reason, "migration m-old was started with destination cluster "+recordedDst.ClusterID.Hex()) || strings.Contains(s.Reason, "Retry resumes") {
		t.Fatalf("reason %q", s.Reason)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("the refused resume changed the state file")
	}
}

// awaitRefusal waits until m's Run was refused.
func awaitRefusal(t *testing.T, m ui.Migration) engine.Snapshot {
	t.Helper()
	end := time.Now().Add(flowLimit)
	for {
		if s := m.Snapshot(); s.State == engine.Failed {
			return s
		}
		if time.Now().After(end) {
			t.Fatalf("never refused: %+v", m.Snapshot())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The app's validation offers to clear another migration's marker, and the clear
// reads the destination again: another clusterId, or a marker that names another
// migration by now, clear nothing.
func TestGUIClearsAMarkerOnlyOfTheConfirmedClusterAndMigration(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	src, _ := sandboxtest.StartCluster(t, "source", 0)
	dst, client := sandboxtest.StartCluster(t, "destination", 0)
	ctx := context.Background()
	id, err := topology.ReadIdentity(ctx, sandboxtest.Endpoint(dst.URI()))
	if err != nil {
		t.Fatal(err)
	}
	dead := topology.Marker{MigrationID: "m-dead", Workstation: "lost-laptop", StartedAt: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)}
	if err := prepare.PlaceMarker(ctx, client, dead); err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, newMemKeyring(), "")
	srcConn, dstConn := ui.Connection{Hosts: src.URI()}, ui.Connection{Hosts: dst.URI()}
	v, err := b.Validate(ctx, srcConn, dstConn)
	if err != nil {
		t.Fatal(err)
	}
	h := v.HeldBy
	if h == nil || h.ClusterID != id.ClusterID.Hex() || h.MigrationID != "m-dead" || h.Workstation != "lost-laptop" || !strings.Contains(h.Marker, "m-dead") {
		t.Fatalf("held by %+v, want the marker of m-dead on %s", h, id.ClusterID.Hex())
	}
	if err := b.ClearMarker(ctx, dstConn, "65f0c3a1b2c3d4e5f6a7b8c9", h.MigrationID); err == nil || !strings.Contains(err.Error(), "not this destination's clusterId") {
		t.Fatalf("another clusterId: %v", err)
	}
	if err := b.ClearMarker(ctx, dstConn, h.ClusterID, "m-other"); err == nil || !strings.Contains(err.Error(), "changed meanwhile") {
		t.Fatalf("another migration's marker: %v", err)
	}
	if m, _ := topology.ReadMarker(ctx, client); m == nil || m.MigrationID != "m-dead" {
		t.Fatalf("the marker was touched by refused clears: %+v", m)
	}
	if err := b.ClearMarker(ctx, dstConn, h.ClusterID, h.MigrationID); err != nil {
		t.Fatal(err)
	}
	if m, _ := topology.ReadMarker(ctx, client); m != nil {
		t.Fatalf("the marker stays: %+v", m)
	}
	if v, err := b.Validate(ctx, srcConn, dstConn); err != nil || v.HeldBy != nil {
		t.Fatalf("after the clear: held by %+v (%v)", v.HeldBy, err)
	}
}

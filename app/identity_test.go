package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/seed"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// startCluster starts one sandbox cluster, seeded with docs documents when docs > 0.
func startCluster(t *testing.T, name string, docs int) (*sandbox.Cluster, *mongo.Client) {
	t.Helper()
	ctx := context.Background()
	c, err := sandbox.Start(ctx, name, sandbox.Options{Shards: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	client, err := connect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	if docs > 0 {
		if _, err := seed.Populate(ctx, client, docs, rand.New(rand.NewPCG(5, 6))); err != nil {
			t.Fatal(err)
		}
	}
	return c, client
}

// contents is every user namespace of a cluster with its document count.
func contents(t *testing.T, c *mongo.Client) []string {
	t.Helper()
	ctx := context.Background()
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, db := range dbs {
		if !namespaces.UserDatabase(db) {
			continue
		}
		names, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			count, err := c.Database(db).Collection(n).CountDocuments(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s.%s %d", db, n, count))
		}
	}
	slices.Sort(out)
	return out
}

// The walk of issue 19 on the command line and its API: the same cluster as source
// and destination, wipe confirmed, is refused before anything is touched.
func TestMigrateRefusesTheSameClusterAsSourceAndDestination(t *testing.T) {
	needSandbox(t)
	c, client := startCluster(t, "source", 300)
	before := contents(t, client)
	id, err := topology.ReadIdentity(context.Background(), topology.Endpoint{URI: c.URI()})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	for _, extra := range [][]string{nil, {"--api", freeAddr(t)}} {
		args := append([]string{"migrate", "--source", c.URI(), "--destination", c.URI(), "--state", state, "--wipe-destination"}, extra...)
		code, out, errOut := runCLI(t, args...)
		if code != exitFail {
			t.Fatalf("%v: exit %d\n%s%s", extra, code, out, errOut)
		}
		for _, w := range []string{"refused", "both have clusterId " + id.ClusterID.Hex(), "the source " + c.URI(), "the destination " + c.URI(), "give the destination's own mongos address"} {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", extra, w, errOut)
			}
		}
		if len(extra) > 0 {
			if code, _, _ := runCLI(t, "status", "--api", extra[1]); code == exitOK {
				t.Error("the API serves a migration that was refused")
			}
		}
	}
	if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused migrate left a state file behind (%v)", err)
	}
	if after := contents(t, client); !slices.Equal(after, before) {
		t.Fatalf("the source changed:\n before %v\n after  %v", before, after)
	}
	code, out, _ := runCLI(t, "validate", "--source", c.URI(), "--destination", c.URI())
	if code != exitFail || !strings.Contains(out, "Source and destination are two different clusters") || !strings.Contains(out, "both have clusterId") {
		t.Fatalf("validate: exit %d\n%s", code, out)
	}
}

// A state file belongs to its source and destination: reused with another one it
// is refused, names the cluster it belongs to, and is left byte for byte.
func TestMigrateRefusesAStateFileOfOtherClustersAndLeavesItAsItWas(t *testing.T) {
	needSandbox(t)
	src, _ := startCluster(t, "source", 200)
	dst, dstClient := startCluster(t, "destination", 0)
	other, _ := startCluster(t, "other", 0)
	// A destination holding data, without --wipe-destination: the migration is
	// recorded with its clusters' identities, then refused.
	if _, err := dstClient.Database("legacy").Collection("c").InsertOne(context.Background(), bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	if code, _, errOut := runCLI(t, "migrate", "--source", src.URI(), "--destination", dst.URI(), "--state", state); code != exitFail || !strings.Contains(errOut, "already holds data") {
		t.Fatalf("first run: exit %d\n%s", code, errOut)
	}
	dstID, err := topology.ReadIdentity(context.Background(), topology.Endpoint{URI: dst.URI()})
	if err != nil {
		t.Fatal(err)
	}
	srcID, err := topology.ReadIdentity(context.Background(), topology.Endpoint{URI: src.URI()})
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		src, dst string
		want     string
	}{
		"another destination": {src.URI(), other.URI(), "was started with destination cluster " + dstID.ClusterID.Hex()},
		"another source":      {other.URI(), dst.URI(), "was started with source cluster " + srcID.ClusterID.Hex()},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runCLI(t, "migrate", "--source", c.src, "--destination", c.dst, "--state", state, "--wipe-destination")
			if code != exitFail || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "use another state file (--state)") {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			if after, _ := os.ReadFile(state); !bytes.Equal(after, before) {
				t.Fatal("the refused migrate changed the state file")
			}
		})
	}
	if n := len(contents(t, dstClient)); n != 1 {
		t.Fatalf("the destination holds %d namespaces, want its one untouched", n)
	}
}

// The desktop app's path: Validate fails the identity check, Start is refused
// before anything changes, and nothing of the refused migration stays on the list.
func TestGUIRefusesTheSameClusterAsSourceAndDestination(t *testing.T) {
	needSandbox(t)
	c, client := startCluster(t, "source", 300)
	before := contents(t, client)
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
	if after := contents(t, client); !slices.Equal(after, before) {
		t.Fatalf("the source changed:\n before %v\n after  %v", before, after)
	}
}

// A migration reopened from the list whose addresses now reach another cluster
// than the one it recorded is refused, saying which cluster it belongs to; its
// record is left byte for byte.
func TestGUIResumeOnAnotherClusterIsRefused(t *testing.T) {
	needSandbox(t)
	src, _ := startCluster(t, "source", 0)
	dst, _ := startCluster(t, "destination", 0)
	ctx := context.Background()
	srcID, err := topology.ReadIdentity(ctx, topology.Endpoint{URI: src.URI()})
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
		Source: connSettings(topology.Endpoint{URI: src.URI()}, ""), Destination: connSettings(topology.Endpoint{URI: dst.URI()}, ""),
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

// A marker whose migration is known dead is cleared only once the DBA confirmed
// with the destination's clusterId.
func TestClearMarkerShowsTheMarkerAndClearsItOnlyWhenConfirmed(t *testing.T) {
	needSandbox(t)
	dst, client := startCluster(t, "destination", 0)
	ctx := context.Background()
	id, err := topology.ReadIdentity(ctx, topology.Endpoint{URI: dst.URI()})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, "clear-marker", "--destination", dst.URI()); code != exitOK || !strings.Contains(out, "nothing to clear") {
		t.Fatalf("without a marker: exit %d\n%s", code, out)
	}
	dead := topology.Marker{MigrationID: "m-dead", Workstation: "lost-laptop", StartedAt: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)}
	if err := prepare.PlaceMarker(ctx, client, dead); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "clear-marker", "--destination", dst.URI())
	if code != exitFail || !strings.Contains(out, "is cluster "+id.ClusterID.Hex()) || !strings.Contains(out, "migration m-dead") ||
		!strings.Contains(out, "lost-laptop") || !strings.Contains(errOut, "--confirm "+id.ClusterID.Hex()) {
		t.Fatalf("without --confirm: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "clear-marker", "--destination", dst.URI(), "--confirm", "65f0c3a1b2c3d4e5f6a7b8c9"); code != exitFail || !strings.Contains(errOut, "not this destination's clusterId") {
		t.Fatalf("another clusterId: exit %d\n%s", code, errOut)
	}
	if m, _ := topology.ReadMarker(ctx, client); m == nil {
		t.Fatal("the marker was cleared without the confirmation")
	}
	if code, out, errOut := runCLI(t, "clear-marker", "--destination", dst.URI(), "--confirm", id.ClusterID.Hex()); code != exitOK || !strings.Contains(out, "cleared") {
		t.Fatalf("confirmed: exit %d\n%s%s", code, out, errOut)
	}
	if m, _ := topology.ReadMarker(ctx, client); m != nil {
		t.Fatalf("the marker stays: %+v", m)
	}
}

// The app's validation offers to clear another migration's marker, and the clear
// reads the destination again: another clusterId, or a marker that names another
// migration by now, clear nothing.
func TestGUIClearsAMarkerOnlyOfTheConfirmedClusterAndMigration(t *testing.T) {
	needSandbox(t)
	src, _ := startCluster(t, "source", 0)
	dst, client := startCluster(t, "destination", 0)
	ctx := context.Background()
	id, err := topology.ReadIdentity(ctx, topology.Endpoint{URI: dst.URI()})
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

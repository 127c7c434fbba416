package app

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/sandboxtest"
)

// The walk of issue 19 on the command line and its API: the same cluster as source
// and destination, wipe confirmed, is refused before anything is touched.
func TestMigrateRefusesTheSameClusterAsSourceAndDestination(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	c, client := sandboxtest.StartCluster(t, "source", 300)
	before := sandboxtest.Contents(t, client)
	id, err := topology.ReadIdentity(context.Background(), sandboxtest.Endpoint(c.URI()))
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
	if after := sandboxtest.Contents(t, client); !slices.Equal(after, before) {
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
	sandboxtest.NeedSandbox(t)
	src, _ := sandboxtest.StartCluster(t, "source", 200)
	dst, dstClient := sandboxtest.StartCluster(t, "destination", 0)
	other, _ := sandboxtest.StartCluster(t, "other", 0)
	// A destination holding data, without --wipe-destination: the migration is
	// recorded with its clusters' identities, then refused.
	if _, err := dstClient.Database("legacy").Collection("c").InsertOne(context.Background(), bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	if code, _, errOut := runCLI(t, "migrate", "--source", src.URI(), "--destination", dst.URI(), "--state", state); code != exitFail || !strings.Contains(errOut, "already holds data") {
		t.Fatalf("first run: exit %d\n%s", code, errOut)
	}
	dstID, err := topology.ReadIdentity(context.Background(), sandboxtest.Endpoint(dst.URI()))
	if err != nil {
		t.Fatal(err)
	}
	srcID, err := topology.ReadIdentity(context.Background(), sandboxtest.Endpoint(src.URI()))
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
	if n := len(sandboxtest.Contents(t, dstClient)); n != 1 {
		t.Fatalf("the destination holds %d namespaces, want its one untouched", n)
	}
}

// A marker whose migration is known dead is cleared only once the DBA confirmed
// with the destination's clusterId.
func TestClearMarkerShowsTheMarkerAndClearsItOnlyWhenConfirmed(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	dst, client := sandboxtest.StartCluster(t, "destination", 0)
	ctx := context.Background()
	id, err := topology.ReadIdentity(ctx, sandboxtest.Endpoint(dst.URI()))
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

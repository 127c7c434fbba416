package engine

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/topology"
)

// untouched fails the test when the refused Run changed a cluster or the
// checkpoints.
func (h *harness) untouched(before Record) {
	h.t.Helper()
	for _, call := range []string{"Validate", "DestinationData", "PlaceMarker", "WipeDestination", "StopSourceBalancer", "SetDestinationBalancer false", "PrepareDestination"} {
		if n := h.fc.called(call); n != 0 {
			h.t.Errorf("the refused migration called %s %d times", call, n)
		}
	}
	if after := h.cp.record(); !reflect.DeepEqual(after, before) {
		h.t.Errorf("the refused migration changed its record:\n before %+v\n after  %+v", before, after)
	}
}

// The engine refuses the same cluster as source and destination by itself: the
// fakes' Validate passes everything, as if validation had been skipped.
func TestTheSameClusterIsRefusedEvenWithoutValidation(t *testing.T) {
	h := newHarness(t, "s0", "s1")
	h.fc.dstID = h.fc.srcID
	h.fc.destData = []string{"shop"}
	before := h.cp.record()
	h.start(StartOptions{WipeDestination: true})
	err := h.wait()
	var same *SameClusterError
	if !errors.As(err, &same) || !errors.Is(err, ErrSameCluster) {
		t.Fatalf("Run: %v", err)
	}
	for _, w := range []string{"src-mongos", "dst-mongos", "both have clusterId " + h.fc.srcID.ClusterID.Hex(),
		"src-s0:27017 is the source's shard s0 member and the destination's shard s0 member", "give the destination's own mongos"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal does not say %q: %v", w, err)
		}
	}
	if h.fc.wiped || h.m.State() != Draft {
		t.Fatalf("wiped %v, state %s", h.fc.wiped, h.m.State())
	}
	h.untouched(before)
}

func TestADestinationSharingAServerWithTheSourceIsRefused(t *testing.T) {
	for name, share := range map[string]func(dst *topology.Identity){
		"a shard member": func(dst *topology.Identity) { dst.Shards[1].Hosts = append(dst.Shards[1].Hosts, "src-s0:27017") },
		"the mongos":     func(dst *topology.Identity) { dst.Routers = []string{"src-mongos:27017"} },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "s0", "s1")
			share(&h.fc.dstID)
			before := h.cp.record()
			h.start(StartOptions{WipeDestination: true})
			err := h.wait()
			if !errors.Is(err, ErrSameCluster) || strings.Contains(err.Error(), "both have clusterId") {
				t.Fatalf("Run: %v", err)
			}
			h.untouched(before)
		})
	}
}

// A resumed migration checks that it runs between the clusters it recorded; a
// refusal leaves the checkpoints as they were.
func TestAResumeOnAnotherClusterIsRefusedAndChangesNothing(t *testing.T) {
	for _, role := range []string{"source", "destination"} {
		t.Run(role, func(t *testing.T) {
			h := newHarness(t, "s0")
			h.replaying()
			rec := h.cp.record()
			if rec.SourceIdentity == nil || rec.SourceIdentity.ClusterID != h.fc.srcID.ClusterID || rec.DestinationIdentity.ClusterID != h.fc.dstID.ClusterID {
				t.Fatalf("recorded identities %v -> %v", rec.SourceIdentity, rec.DestinationIdentity)
			}
			h.crash()
			other := fakeIdentity("other", 9, "s0")
			if role == "source" {
				h.fc.srcID = other
			} else {
				h.fc.dstID = other
			}
			h.fc.calls = nil
			before := h.cp.record()
			h.m = h.newMigration()
			h.start(StartOptions{})
			err := h.wait()
			var wrong *WrongClusterError
			if !errors.As(err, &wrong) || wrong.Role != role {
				t.Fatalf("Run: %v", err)
			}
			recorded := rec.SourceIdentity
			if role == "destination" {
				recorded = rec.DestinationIdentity
			}
			for _, w := range []string{"migration m1 was started with " + role + " cluster " + recorded.ClusterID.Hex(), "cluster " + other.ClusterID.Hex(), "another state file"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal does not say %q: %v", w, err)
				}
			}
			if n := h.fc.called("NewReplayer s0"); n != 0 {
				t.Fatalf("the refused resume replayed")
			}
			h.untouched(before)
			// Nor may a cancel without a Run restore the balancer of another cluster.
			if err := h.m.Cancel(bg); !errors.Is(err, ErrWrongCluster) {
				t.Fatalf("Cancel: %v", err)
			}
			h.untouched(before)
		})
	}
}

// A state file from before identities were recorded resumes, and records them.
func TestAStateFileWithoutIdentitiesRecordsThemOnItsFirstResume(t *testing.T) {
	h := newHarness(t, "s0")
	h.replaying()
	h.crash()
	h.cp.mu.Lock()
	h.cp.rec.SourceIdentity, h.cp.rec.DestinationIdentity = nil, nil
	h.cp.mu.Unlock()
	h.m = h.newMigration()
	h.start(StartOptions{})
	h.eventually("said so in the history", func() bool {
		return slices.ContainsFunc(h.cp.record().History, func(e Event) bool {
			return strings.Contains(e.Reason, "recorded the clusters' identities on this first resume")
		})
	})
	rec := h.cp.record()
	if rec.SourceIdentity == nil || rec.DestinationIdentity == nil || rec.DestinationIdentity.ClusterID != h.fc.dstID.ClusterID {
		t.Fatalf("identities after the first resume: %v -> %v", rec.SourceIdentity, rec.DestinationIdentity)
	}
}

func TestASecondMigrationIntoAHeldDestinationIsRefused(t *testing.T) {
	h := newHarness(t, "s0")
	started := time.Date(2026, 11, 25, 7, 41, 0, 0, time.UTC)
	h.fc.marker = &topology.Marker{MigrationID: "m-other", SourceClusterID: primitive.ObjectID{11: 7}, Workstation: "dba-laptop", StartedAt: started}
	h.fc.destData = []string{"shop"} // the other migration's copy
	h.start(StartOptions{WipeDestination: true})
	err := h.wait()
	var inUse *DestinationInUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("Run: %v", err)
	}
	for _, w := range []string{"m-other", "dba-laptop", "2026-11-25 07:41 UTC", primitive.ObjectID{11: 7}.Hex(), "shardlift clear-marker --destination"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal does not say %q: %v", w, err)
		}
	}
	if h.fc.wiped || h.fc.called("StopSourceBalancer") != 0 || h.fc.heldBy() != "m-other" {
		t.Fatalf("wiped %v, calls %v, marker of %q", h.fc.wiped, h.fc.calls, h.fc.heldBy())
	}
}

// The marker is placed before the wipe, kept while the migration runs (put back
// on a resume when a DBA cleared it), and removed when it is done.
func TestTheMarkerHoldsTheDestinationFromStartToDone(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.destData = []string{"legacy"}
	h.start(StartOptions{WipeDestination: true})
	h.replaying()
	m := h.fc.marker
	if m == nil || m.MigrationID != "m1" || m.SourceClusterID != h.fc.srcID.ClusterID || m.Workstation == "" || m.StartedAt.IsZero() {
		t.Fatalf("marker %+v", m)
	}
	calls := h.fc.calls
	if slices.Index(calls, "PlaceMarker") > slices.Index(calls, "WipeDestination") {
		t.Fatalf("the marker was placed after the wipe: %v", calls)
	}
	h.crash()
	h.fc.marker = nil // cleared by a DBA who thought it stale
	h.m = h.newMigration()
	replays := h.fc.replayers("s0")
	h.start(StartOptions{})
	h.eventually("replaying again", func() bool { return h.fc.replayers("s0") > replays })
	h.ready()
	if h.fc.heldBy() != "m1" {
		t.Fatal("the resumed migration did not put its marker back")
	}
	if err := h.m.StartCutover(bg); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Done(bg, false); err != nil {
		t.Fatal(err)
	}
	if h.fc.heldBy() != "" || h.m.State() != Done {
		t.Fatalf("after done: marker of %q, state %s", h.fc.heldBy(), h.m.State())
	}
	if !slices.ContainsFunc(h.m.Snapshot().History, func(e Event) bool { return strings.Contains(e.Reason, "marker removed") }) {
		t.Fatalf("history %v", h.events())
	}
}

func TestTheMarkerIsRemovedAtCancelAndAtExpiry(t *testing.T) {
	h := newHarness(t, "s0")
	h.ready()
	if err := h.m.Cancel(bg); err != nil {
		t.Fatal(err)
	}
	if h.fc.heldBy() != "" {
		t.Fatal("the marker stays after cancel")
	}
	h = newHarness(t, "s0")
	h.ready()
	h.clk.Advance(73 * time.Hour)
	h.waitState(Expired)
	if h.fc.heldBy() != "" {
		t.Fatal("the marker stays after expiry")
	}
}

// A resume finds another migration's marker: someone cleared this one's and
// started another migration into the same destination.
func TestAResumeIntoADestinationAnotherMigrationTookIsRefused(t *testing.T) {
	h := newHarness(t, "s0")
	h.replaying()
	h.crash()
	h.fc.marker = &topology.Marker{MigrationID: "m-other", Workstation: "ops-box"}
	h.m = h.newMigration()
	replays := h.fc.replayers("s0")
	h.start(StartOptions{})
	if err := h.wait(); !errors.Is(err, ErrDestinationInUse) || !strings.Contains(err.Error(), "ops-box") {
		t.Fatalf("Run: %v", err)
	}
	if h.fc.replayers("s0") != replays || h.fc.heldBy() != "m-other" {
		t.Fatalf("replays %d -> %d, marker of %q", replays, h.fc.replayers("s0"), h.fc.heldBy())
	}
	// Its cancel leaves the other migration's marker in place.
	if err := h.m.Cancel(bg); err != nil {
		t.Fatal(err)
	}
	if h.fc.heldBy() != "m-other" {
		t.Fatal("the cancel removed another migration's marker")
	}
}

// --wipe-destination names every database it drops, in the history.
func TestTheWipeRecordsEachDroppedDatabase(t *testing.T) {
	h := newHarness(t, "s0")
	h.fc.destData = []string{"crm", "shop"}
	h.start(StartOptions{WipeDestination: true})
	h.replaying()
	var dropped []string
	for _, e := range h.m.Snapshot().History {
		if db, ok := strings.CutPrefix(e.Reason, "wipe of the destination, as confirmed: dropped database "); ok {
			dropped = append(dropped, db)
		}
	}
	if !slices.Equal(dropped, []string{"crm", "shop"}) {
		t.Fatalf("dropped databases in the history: %v (%v)", dropped, h.events())
	}
	if !slices.ContainsFunc(h.m.Snapshot().History, func(e Event) bool {
		return e.To == string(Starting) && strings.Contains(e.Reason, "dropped databases crm, shop")
	}) {
		t.Fatalf("the start's reason does not list the dropped databases: %v", h.m.Snapshot().History)
	}
}

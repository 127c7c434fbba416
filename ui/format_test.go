package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine"
)

// TestGapReadsZeroOnlyUnderOneSecond: "0:00" is what enables I'm done, so it must
// never be shown for a gap of a second or more.
func TestGapReadsZeroOnlyUnderOneSecond(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0:00"}, {-time.Second, "0:00"}, {999 * time.Millisecond, "0:00"}, {time.Second, "0:01"},
		{7 * time.Second, "0:07"}, {12*time.Minute + 30*time.Second, "12:30"}, {time.Hour + 2*time.Minute + 3*time.Second, "1:02:03"},
	} {
		if got := clockText(c.d); got != c.want {
			t.Errorf("clockText(%v) = %q, want %q", c.d, got, c.want)
		}
		if gapClosed(engine.Snapshot{OptimeGap: c.d, OptimeGapKnown: true}) != (c.want == "0:00") {
			t.Errorf("gapClosed(%v) disagrees with the %q shown", c.d, c.want)
		}
	}
}

func TestDurationsReadAsDaysHoursMinutes(t *testing.T) {
	for _, c := range []struct {
		d                 time.Duration
		countdown, spoken string
	}{
		{30 * time.Second, "< 1 min", "< 1 min"},
		{28 * time.Minute, "28 min", "28 min"},
		{72 * time.Minute, "1 h 12 min", "1 h 12 min"},
		{72 * time.Hour, "3 d 0 h 0 min", "3 d 0 h"},
		{71*time.Hour + 58*time.Minute + 59*time.Second, "2 d 23 h 58 min", "2 d 23 h"},
	} {
		if got := countdownText(c.d); got != c.countdown {
			t.Errorf("countdownText(%v) = %q, want %q", c.d, got, c.countdown)
		}
		if got := durationText(c.d); got != c.spoken {
			t.Errorf("durationText(%v) = %q, want %q", c.d, got, c.spoken)
		}
	}
}

func TestCountsAndRatesAreHumanized(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{countText(412_345), "412,345"},
		{countText(12_400_000), "12.4 M"},
		{countText(2_000_000), "2 M"},
		{countText(1_400_000_000), "1.4 B"},
		{countText(-5), "0"},
		{rateText(2_100_000), "2.1 M"},
		{rateText(12_400.4), "12,400"},
		{rateText(3.46), "3.5"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestHostsProblem(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"db1:27017", ""},
		{"db1:27017, db2:27018", ""},
		{"db1", ""},
		{"[::1]:27017", ""},
		{"mongodb://u@db1:27017/?tls=true", ""},
		{"mongodb+srv://cluster0.example.net", ""},
		{"mongodb://", "names no host"},
		{"http://db1:27017", "Only mongodb:// and mongodb+srv://"},
		{"u@db1:27017", "part of a URI"},
		{"db1:27017,,db2:27017", "empty host between commas"},
		{"db1:27017 db2:27017", "contains a space"},
		{"db1:0", "must be a number from 1 to 65535"},
		{"db1:port", "must be a number from 1 to 65535"},
		{":27017", "no host name"},
	} {
		got := hostsProblem(c.in)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("hostsProblem(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMongoshScriptRecreatesUsersAndListsRoles(t *testing.T) {
	got := mongoshScript([]engine.User{
		{Name: "app", DB: "shop", Roles: []string{"readWrite", "read@crm"}},
		{Name: "auditor", DB: "admin", Roles: []string{"read@shop"}, IsRole: true},
	})
	want := `db.getSiblingDB("shop").createUser({user: "app", pwd: passwordPrompt(), roles: [{role: "readWrite", db: "shop"}, {role: "read", db: "crm"}]})
// re-create role auditor@admin with its privileges (inherits: read@shop)
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestHistoryNamesStatesAndPhasesForPeople(t *testing.T) {
	e := engine.Event{At: time.Date(2026, 11, 20, 10, 2, 11, 0, time.Local), Shard: "rs2", From: "catching_up", To: "failed",
		Reason: "oplog of shard rs2 no longer reaches back to 10:02:11: restart this shard"}
	want := "2026-11-20 10:02:11   shard rs2   failed: oplog of shard rs2 no longer reaches back to 10:02:11: restart this shard"
	if got := eventText(e); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

var (
	allStates = []engine.State{engine.Draft, engine.Validated, engine.Starting, engine.Syncing, engine.Ready,
		engine.CuttingOver, engine.Finalizing, engine.Done, engine.Cancelled, engine.Expired, engine.Failed}
	allPhases = []engine.Phase{engine.Pending, engine.Copying, engine.BuildingIndexes, engine.CatchingUp, engine.Synced, engine.ShardFailed}
)

// TestEveryHistoryLineSaysWhatHappened: each transition the lifecycle allows, of the
// migration and of a shard, reads as words that tell it apart from the others
// (draft -> validated once read "not started -> not started"), without the engine's
// identifiers; a step that changes no state reads as its reason.
func TestEveryHistoryLineSaysWhatHappened(t *testing.T) {
	at := time.Date(2026, 11, 20, 10, 2, 11, 0, time.Local)
	prefix := "2026-11-20 10:02:11   "
	seen := map[string]string{} // what happened -> the transition it was
	check := func(e engine.Event, who string) {
		t.Helper()
		got := eventText(e)
		what, ok := strings.CutPrefix(got, prefix+who+"   ")
		if !ok || strings.TrimSpace(what) == "" {
			t.Errorf("%s -> %s reads %q: want when, who, then what happened", e.From, e.To, got)
			return
		}
		if strings.Contains(what, "→") || strings.Contains(what, "_") || strings.Contains(what, "not started") {
			t.Errorf("%s -> %s reads %q: not in words", e.From, e.To, what)
		}
		key := who + " " + e.To
		if prev, dup := seen[who+what]; dup && prev != key && !(e.From == e.To) {
			t.Errorf("%s -> %s reads %q, like %s", e.From, e.To, what, prev)
		}
		seen[who+what] = key
	}
	for _, from := range allStates {
		for _, to := range allStates {
			if from.CanMoveTo(to) {
				check(engine.Event{At: at, From: string(from), To: string(to)}, "migration")
			}
		}
	}
	validated := eventText(engine.Event{At: at, From: "draft", To: "validated", Reason: "every pre-migration check passed"})
	if !strings.HasSuffix(validated, "migration   validated: every pre-migration check passed") {
		t.Errorf("draft -> validated reads %q", validated)
	}
	for _, from := range append([]engine.Phase{""}, allPhases...) {
		for _, to := range allPhases {
			check(engine.Event{At: at, Shard: "rs0", From: string(from), To: string(to)}, "shard rs0")
		}
	}
	for _, e := range []engine.Event{
		{At: at, Shard: "rs0", From: "catching_up", To: "synced", Reason: "in sync: lag 0:01"},
		{At: at, From: "ready", To: "cutting_over", Reason: "cutover started: stop every write to the source"},
		{At: at, Shard: "rs0", From: "pending", To: "copying", Reason: "copy started; the oplog replay will start after T0"},
	} {
		if got := eventText(e); strings.Count(got, e.Reason[:6]) != 1 {
			t.Errorf("%s -> %s reads %q: it says the same twice", e.From, e.To, got)
		}
	}
	note := engine.Event{At: at, From: "finalizing", To: "finalizing", Reason: "destination balancer started"}
	if got, want := eventText(note), prefix+"migration   destination balancer started"; got != want {
		t.Errorf("a note reads %q, want %q", got, want)
	}
}

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
		if gapClosed(c.d) != (c.want == "0:00") {
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

func TestCountsAndSizesAreHumanized(t *testing.T) {
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
		{sizeText(412_000_000_000), "412 GB"},
		{sizeText(-1), "0 B"},
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
	want := "2026-11-20 10:02:11   shard rs2   catching up → failed: oplog of shard rs2 no longer reaches back to 10:02:11: restart this shard"
	if got := eventText(e); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := humanState("cutting_over"); got != "cutting over" {
		t.Fatalf("cutting_over reads %q", got)
	}
}

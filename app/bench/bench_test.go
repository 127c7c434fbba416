package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/app/faults"
	"github.com/shardlift/shardlift/engine/oplog"
)

// TestMain lets the test binary act as the copy and insert children, which Run
// starts by executing its own binary again.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestTablePrintsAlignedMarkdownWithVerdicts(t *testing.T) {
	tab := &Table{
		Title: "title",
		Rows: []Row{
			{Figure: "1. copy", Shardlift: "9 docs/s", Ceiling: "10 docs/s", Ratio: Ratio(9, 10), Target: ">= 0.90", Verdict: AtLeast(Ratio(9, 10), 0.9)},
			{Figure: "4. decode", Shardlift: "5 entries/s", Ratio: math.NaN(), Target: ">= 10", Verdict: AtLeast(5, 10)},
		},
		Notes: []string{"a note"},
	}
	var b bytes.Buffer
	if err := tab.Print(&b); err != nil {
		t.Fatal(err)
	}
	want := `title

| figure    | Shardlift   | ceiling   | ratio | target  | met |
|-----------|-------------|-----------|-------|---------|-----|
| 1. copy   | 9 docs/s    | 10 docs/s | 0.90  | >= 0.90 | yes |
| 4. decode | 5 entries/s | -         | -     | >= 10   | NO  |

- a note
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRatioAndVerdicts(t *testing.T) {
	if r := Ratio(450, 500); r != 0.9 {
		t.Errorf("Ratio(450, 500) = %v", r)
	}
	for _, c := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if r := Ratio(1, c); !math.IsNaN(r) {
			t.Errorf("Ratio(1, %v) = %v, want NaN: there is no ceiling", c, r)
		}
	}
	cases := []struct {
		got, want Verdict
	}{
		{AtLeast(0.9, 0.9), Met}, {AtLeast(0.89, 0.9), Missed}, {AtLeast(math.NaN(), 0.9), NoTarget},
		{AtMost(1.2, 1.2), Met}, {AtMost(1.3, 1.2), Missed}, {AtMost(math.NaN(), 1.2), NoTarget},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: %v, want %v", i, c.got, c.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseBenchLineReadsEveryMetric(t *testing.T) {
	r, ok := parseBenchLine("BenchmarkDecodeTranslate 	 2397446	       981.3 ns/op	 452.27 MB/s	      1019065 entries/s	     552 B/op	       9 allocs/op")
	if !ok {
		t.Fatal("not parsed")
	}
	want := map[string]float64{"ns/op": 981.3, "MB/s": 452.27, "entries/s": 1019065, "B/op": 552, "allocs/op": 9}
	if r.Name != "BenchmarkDecodeTranslate" || r.N != 2397446 || len(r.Metrics) != len(want) {
		t.Fatalf("got %+v", r)
	}
	for unit, v := range want {
		if r.Metrics[unit] != v {
			t.Errorf("%s = %v, want %v", unit, r.Metrics[unit], v)
		}
	}
	for _, line := range []string{"goos: linux", "PASS", "BenchmarkX-2 --- FAIL", "ok  	github.com/x 1.2s"} {
		if _, ok := parseBenchLine(line); ok {
			t.Errorf("%q parsed as a result", line)
		}
	}
}

func TestFastestDecodeRunIsKept(t *testing.T) {
	out := `goos: linux
BenchmarkDecodeTranslate 	 100	 1800 ns/op	 555555 entries/s	 108 B/op	 2 allocs/op
BenchmarkDecodeTranslate 	 100	 900 ns/op	 1111111 entries/s	 108 B/op	 2 allocs/op
BenchmarkDecodeTranslate 	 100	 1000 ns/op	 1000000 entries/s	 108 B/op	 2 allocs/op
PASS
`
	r, err := fastest(strings.NewReader(out))
	if err != nil || r.Metrics["entries/s"] != 1111111 {
		t.Errorf("got %+v, %v", r, err)
	}
	if _, err := fastest(strings.NewReader("PASS\n")); err == nil {
		t.Error("no error without a result")
	}
}

func TestParseVmHWM(t *testing.T) {
	got, err := parseVmHWM("Name:\tx\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n")
	if err != nil || got != 12345<<10 {
		t.Errorf("got %d, %v", got, err)
	}
	if _, err := parseVmHWM("Name:\tx\n"); err == nil {
		t.Error("no error without a VmHWM line")
	}
}

func TestLagIsTheAgeOfTheOldestUnappliedEntry(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func(i uint32) primitive.Timestamp { return primitive.Timestamp{T: 100, I: i} }
	obs := []observation{{t0, ts(1)}, {t0.Add(time.Second), ts(5)}, {t0.Add(2 * time.Second), ts(9)}}
	now := t0.Add(3 * time.Second)
	for _, c := range []struct {
		applied primitive.Timestamp
		want    time.Duration
	}{
		{ts(0), 3 * time.Second}, // the first observation is unapplied
		{ts(1), 2 * time.Second}, // entries after 1 were first seen at +1 s
		{ts(4), 2 * time.Second},
		{ts(5), time.Second},
		{ts(9), 0}, // every observed entry is applied
	} {
		if got := lagOf(obs, c.applied, now); got != c.want {
			t.Errorf("applied %v: lag %v, want %v", c.applied, got, c.want)
		}
	}
}

func TestBenchDocumentsAreOneKiBAndDistinct(t *testing.T) {
	a, b := benchDoc(0), benchDoc(123456)
	if len(a) != docBytes || len(b) != docBytes {
		t.Fatalf("sizes %d and %d, want %d", len(a), len(b), docBytes)
	}
	if a.Lookup("_id").ObjectID() == b.Lookup("_id").ObjectID() {
		t.Error("two documents share an _id")
	}
	if objectID(idSeed, 7) == objectID(idLoad, 7) || objectID(idLoad, 7) == objectID(idBacklog, 7) {
		t.Error("ObjectIds of different kinds collide")
	}
}

// The backlog must decode and translate into plain writes (no pipeline updates,
// which the sandbox cannot run) of every form, and leave as many documents as it
// inserts minus what it deletes.
func TestBacklogTranslatesIntoWritesOfEveryForm(t *testing.T) {
	b, err := makeBacklog(3000, 3)
	if err != nil {
		t.Fatal(err)
	}
	if b.entries != 3000 {
		t.Fatalf("%d entries", b.entries)
	}
	for _, f := range backlogForms {
		if b.counts[f.name] == 0 {
			t.Errorf("no entry of form %q", f.name)
		}
	}
	if want := b.counts["insert"] - b.counts["delete"]; b.live != want {
		t.Errorf("live %d, want inserts - deletes = %d", b.live, want)
	}
	kinds := map[oplog.WriteKind]int{}
	for _, stream := range b.streams {
		entries, err := rawEntries(stream)
		if err != nil {
			t.Fatal(err)
		}
		tr := oplog.NewTranslator(keyIsID)
		for _, raw := range entries {
			e, err := oplog.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			items, err := tr.Process(&e, nil)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			for _, it := range items {
				if it.Kind != oplog.ItemWrite {
					t.Fatalf("%s: item of kind %v, want a write", raw, it.Kind)
				}
				if _, err := model(it.Write); err != nil {
					t.Fatal(err)
				}
				kinds[it.Write.Kind]++
			}
		}
	}
	if kinds[oplog.InsertReplace] != b.counts["insert"]+b.counts["replacement"] || kinds[oplog.Delete] != b.counts["delete"] || kinds[oplog.Update] == 0 {
		t.Errorf("writes by kind %v for entries %v", kinds, b.counts)
	}
}

// A tiny run of figures 1, 2, 3 and 5 on sandbox clusters: every figure comes
// out, with the functional checks Run makes (document counts on both sides).
func TestTinyRunMeasuresEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandbox clusters and child processes")
	}
	var log bytes.Buffer
	o := Options{Docs: 1000, Backlog: 1000, LagFor: 2 * time.Second, Shards: 3, Only: []int{1, 2, 3, 5, 10}, Log: &log}
	tab, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(tab.Rows) != 5 {
		t.Fatalf("rows %+v", tab.Rows)
	}
	for i, prefix := range []string{"1. ", "2. ", "3. ", "5. ", "10. "} {
		r := tab.Rows[i]
		if !strings.HasPrefix(r.Figure, prefix) {
			t.Errorf("row %d is %q, want figure %s", i, r.Figure, prefix)
		}
		if math.IsNaN(r.Ratio) || r.Ratio <= 0 {
			t.Errorf("row %q: ratio %v", r.Figure, r.Ratio)
		}
	}
	if !strings.Contains(tab.Rows[3].Figure, "4x: 4,") {
		t.Errorf("the memory point copied %q, want 4x the documents", tab.Rows[3].Figure)
	}
}

// Figure 12 replays a backlog into a destination that only acknowledges, 0 to 80
// ms away, with both appliers: a row per latency, the rounds sending fewer write
// commands than one bulk per batch (a backlog of few live documents repeats them in
// nearly every batch).
func TestFigure12ComparesTheAppliersAtEachLatency(t *testing.T) {
	var log bytes.Buffer
	tab, err := Run(context.Background(), Options{Backlog: 300, Shards: 3, Only: []int{12}, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(tab.Rows) != len(replayLatencies) {
		t.Fatalf("rows %+v, want one per latency", tab.Rows)
	}
	for _, r := range tab.Rows {
		var rounds, serial float64
		if _, err := fmt.Sscanf(r.Shardlift[strings.Index(r.Shardlift, ", ")+2:], "%f write commands", &rounds); err != nil {
			t.Fatalf("row %q: %v", r.Shardlift, err)
		}
		if _, err := fmt.Sscanf(r.Ceiling[strings.Index(r.Ceiling, ", ")+2:], "%f write commands", &serial); err != nil {
			t.Fatalf("row %q: %v", r.Ceiling, err)
		}
		if !strings.HasPrefix(r.Figure, "12. ") || rounds <= 0 || rounds >= serial {
			t.Errorf("row %q: %v write commands per 1,000 entries in rounds, %v in one bulk per batch", r.Figure, rounds, serial)
		}
	}
}

func TestMigrationReplaysOnceEveryShardHasCopiedAndItsLagIsTheLargest(t *testing.T) {
	lag := func(v float64) *float64 { return &v }
	st := func(shards ...faults.Shard) faults.Status { return faults.Status{State: "syncing", Shards: shards} }
	cases := []struct {
		st        faults.Status
		replaying bool
		worst     float64
	}{
		{st(), false, 0},
		{st(faults.Shard{Phase: "catching_up", LagSeconds: lag(4)}, faults.Shard{Phase: "building_indexes"}), false, 4},
		{st(faults.Shard{Phase: "catching_up", LagSeconds: lag(4)}, faults.Shard{Phase: "synced", LagSeconds: lag(1)}), true, 4},
		{st(faults.Shard{Phase: "synced", LagSeconds: lag(0)}, faults.Shard{Phase: "synced", LagSeconds: lag(2)}), true, 2},
	}
	for i, c := range cases {
		if got := replaying(c.st); got != c.replaying {
			t.Errorf("case %d: replaying = %v, want %v", i, got, c.replaying)
		}
		if got := worstLag(c.st); got != c.worst {
			t.Errorf("case %d: worstLag = %v, want %v", i, got, c.worst)
		}
	}
}

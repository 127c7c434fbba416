package ui

import (
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/internal/units"
)

// variantTheme is the default theme in one variant, as a system preference would pick.
type variantTheme struct {
	fyne.Theme
	v fyne.ThemeVariant
}

func (t variantTheme) Color(n fyne.ThemeColorName, _ fyne.ThemeVariant) color.Color {
	return t.Theme.Color(n, t.v)
}

// scenes put the app on each screen, with the dialogs that matter.
var scenes = []struct {
	name  string
	setup func(h *harness)
}{
	{"01-start", func(h *harness) {
		h.b.migrations = []MigrationInfo{
			{ID: "m1", Name: "prod-eu:27017 -> atlas-eu:27017", State: engine.Syncing, Shards: 3, Lag: 2 * time.Second, LagKnown: true, Updated: t0},
			{ID: "m2", Name: "staging-test:27017 -> stage:27017", State: engine.Cancelled, Shards: 2, Lag: 41 * time.Second, LagKnown: true, Updated: t0.Add(-48 * time.Hour)},
			{ID: "m4", Name: longName, State: engine.Ready, Shards: 3, Updated: t0.Add(-2 * time.Hour)},
			{ID: "m3", Name: "crm-old:27017 -> crm-new:27017", State: engine.Failed, Shards: 2, Updated: t0.Add(-time.Hour),
				Reason: "destination crm-new:27017 refused the connection: check that it is running and reachable"},
		}
		h.a.showStart()
		h.q.drain()
	}},
	{"02-start-empty", func(h *harness) {}},
	{"03-before-you-start", func(h *harness) { h.a.showPrepare() }},
	{"04-connections", func(h *harness) { h.a.showConnect("") }},
	{"05-connections-validated", func(h *harness) {
		h.a.showConnect("")
		f := h.a.forms
		test.Type(f.src.hosts, "db1.prod-eu.example:27017,db2.prod-eu.example:27017")
		test.Type(f.src.user, "migrator")
		test.Type(f.src.pass, "secret")
		f.src.tls.SetChecked(true)
		test.Type(f.src.pem, "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----")
		test.Type(f.dst.hosts, "atlas-eu.example:27017")
		test.Type(f.dst.user, "migrator")
		test.Type(f.dst.pass, "secret")
		f.dst.tls.SetChecked(true)
		f.dst.setCAFile(longCAPath, testCA(h.t, h.now.Add(-time.Hour), h.now.Add(365*24*time.Hour), true), nil)
		f.src.pem.SetText("")
		h.b.validation = sampleValidation()
		h.tap("Validate")
	}},
	{"06-wipe", func(h *harness) {
		fillForms(h)
		h.b.validation = Validation{Checks: sampleValidation().Checks[:2], DestinationHasData: true, DestinationContents: "2 databases (shop, crm) with 1.2 M documents", WipeDatabases: []string{"crm", "shop"}}
		h.tap("Validate")
		h.tap("Start migration")
	}},
	{"07-sync", func(h *harness) {
		s := syncing()
		s.Shards[2].Phase = engine.ShardFailed
		s.Shards[2].Error = "the oplog of shard rs2 no longer reaches back to 10:02:11 (its checkpoint): restart this shard"
		s.Shards[0].Retrying = "connection reset by db3:27018, attempt 2 of 5"
		m := newFakeMigration(s)
		h.attach(m)
		feedSamples(h, m)
	}},
	{"07-sync-long-names", func(h *harness) {
		s := syncing()
		s.Name = longName
		names := []string{"source-shard0", "prod-eu-shard-1", "atlas-3x9q2k-shard-02"}
		phases := []engine.Phase{engine.BuildingIndexes, engine.CatchingUp, engine.Pending}
		for i := range s.Shards {
			s.Shards[i].Name, s.Shards[i].Phase = names[i], phases[i]
		}
		s.Shards[0].DocsCopied, s.Shards[0].DocsTotal = 123_456_789, 987_654_321
		s.History = []engine.Event{
			{At: t0.Add(-3 * time.Hour), From: "draft", To: "validated", Reason: "every pre-migration check passed"},
			{At: t0.Add(-2 * time.Hour), From: "syncing", To: "syncing", Reason: "cutover window extended by 24h0m0s: it closes at 2026-11-23T10:00:00Z"},
		}
		h.attach(newFakeMigration(s))
	}},
	{"08-sync-cancel-dialog", func(h *harness) {
		h.attach(newFakeMigration(syncing()))
		h.tap("Cancel migration")
	}},
	{"09-ready", func(h *harness) {
		s := ready()
		s.Reason = "shard rs1 fell behind again (lag 0:45): the timer keeps running; start the cutover when it is back in sync"
		m := newFakeMigration(s)
		h.attach(m)
		h.now = h.now.Add(2*time.Minute + 30*time.Second)
		h.tick()
	}},
	{"09-ready-shard-failed", func(h *harness) {
		s := ready()
		s.Name = longName
		s.State = engine.Syncing
		s.Shards[2].Phase = engine.ShardFailed
		s.Shards[2].Error = "the oplog of shard rs2 no longer reaches back to 10:02:11 (Timestamp(1795600931, 4)), its checkpoint: restart this shard"
		s.Reason = "shard rs2 failed: " + s.Shards[2].Error
		h.attach(newFakeMigration(s))
	}},
	{"10-cutover-failed-shard", func(h *harness) {
		s := cutoverWithAFailedShard()
		s.Name = longName
		s.Shards[1].Phase, s.Shards[1].Gap = engine.CatchingUp, 41*time.Second
		s.LastSourceWrite, s.SourceWriteAge = t0.Add(-3*time.Second), 3*time.Second
		h.attach(newFakeMigration(s))
	}},
	{"10-cutover-failed-shard-cancel-dialog", func(h *harness) {
		h.attach(newFakeMigration(cutoverWithAFailedShard()))
		h.tap("Cancel (keep a staging copy)")
	}},
	{"11-cutover-finish-dialog", func(h *harness) {
		s := ready()
		s.State = engine.CuttingOver
		s.LastSourceWrite, s.SourceWriteAge = t0.Add(-2*time.Minute), 2*time.Minute
		h.attach(newFakeMigration(s))
		h.tap("I'm done")
	}},
	{"10-cutover", func(h *harness) {
		s := ready()
		s.Name = longName
		s.State = engine.CuttingOver
		s.OptimeGap = 7 * time.Second
		h.attach(newFakeMigration(s))
	}},
	{"11-cutover-gap-zero", func(h *harness) {
		s := ready()
		s.State = engine.CuttingOver
		h.attach(newFakeMigration(s))
	}},
	{"12-cutover-mismatch", func(h *harness) {
		s := ready()
		s.State = engine.CuttingOver
		m := newFakeMigration(s)
		m.snap.Verification = &engine.Verification{Namespaces: 12, Ranges: 240, Matched: 238, Mismatches: []engine.Mismatch{
			{Namespace: "shop.orders", Range: "{customer: 1042} to {customer: 2210}", SourceCount: 1204, DestCount: 1198, SampleIDs: []string{`{"$oid":"65f0c0ffee00000000000001"}`}},
			{Namespace: "crm.notes", Range: "{_id: MinKey} to {_id: 500}", SourceCount: 500, DestCount: 499},
		}}
		m.errs["Done"] = fmt.Errorf("%w: 2 of 240 ranges differ", ErrVerificationMismatch)
		h.attach(m)
		h.finish()
	}},
	{"13-done", func(h *harness) {
		s := ready()
		s.State = engine.Done
		s.History = append(s.History, engine.Event{At: t0.Add(3*time.Hour + 41*time.Minute), From: "finalizing", To: "done"})
		s.Verification = &engine.Verification{Namespaces: 212, Ranges: 1024, Matched: 1024, Documents: 1_400_000_000}
		h.attach(newFakeMigration(s))
	}},
	{"14-cancelled", func(h *harness) {
		s := syncing()
		s.State = engine.Cancelled
		s.OptimeGap, s.OptimeGapKnown = 41*time.Second, true
		h.attach(newFakeMigration(s))
	}},
	{"14-cancelled-failed-shard", func(h *harness) {
		s := syncing()
		s.Name = longName
		s.State = engine.Cancelled
		s.OptimeGap = 18 * time.Minute
		s.Summary = &engine.Summary{Shards: []engine.ShardPosition{
			{Shard: "rs0", Consistent: true, Text: "shard rs0 applied every entry up to 2026-11-20 10:20:11 UTC (source time)"},
			{Shard: "rs1", Consistent: true, Text: "shard rs1 applied every entry up to 2026-11-20 10:20:10 UTC (source time)"},
			{Shard: "rs2", Phase: engine.ShardFailed, Text: "shard rs2 failed and stopped at 2026-11-20 10:02:11 UTC: its source's entries after that were never applied (entries lost), so the copy of this shard is not a consistent staging copy"},
		}}
		h.attach(newFakeMigration(s))
	}},
	{"15-expired", func(h *harness) {
		s := expiredWith("restore the source balancer: connection refused (start it by hand with sh.startBalancer() on a source mongos)",
			"restored 2 index and collection options relaxed for the sync (unique, TTL)", "destination balancer started")
		s.OptimeGap = 3 * time.Minute
		h.attach(newFakeMigration(s))
	}},
	{"15-expired-cancel-dialog", func(h *harness) {
		h.attach(newFakeMigration(expiredWith("restore the source balancer: connection refused (start it by hand with sh.startBalancer() on a source mongos)")))
		h.tap("Cancel migration")
	}},
	{"10-cutover-cancel-dialog", func(h *harness) {
		s := ready()
		s.State = engine.CuttingOver
		s.OptimeGap = 7 * time.Second
		h.attach(newFakeMigration(s))
		h.tap("Cancel (keep a staging copy)")
	}},
	{"07-sync-restart-dialog", func(h *harness) {
		h.attach(newFakeMigration(failedShard()))
		h.tap("Restart rs2")
	}},
	{"01-start-remove-dialog", func(h *harness) {
		h.b.migrations = []MigrationInfo{{ID: "m2", Name: "staging-test:27017 -> stage:27017", State: engine.Cancelled, Shards: 2, Updated: t0}}
		h.a.showStart()
		h.q.drain()
		h.tap("Remove")
	}},
	{"16-close-question", func(h *harness) {
		h.attach(newFakeMigration(syncing()))
		h.a.requestClose()
	}},
	{"17-passwords", func(h *harness) {
		h.b.needPw = true
		h.b.migrations = []MigrationInfo{{ID: "m1", Name: "prod-eu:27017 -> atlas-eu:27017", State: engine.Syncing, Shards: 3}}
		h.a.showStart()
		h.q.drain()
		h.tap("Resume")
	}},
}

// longName is a migration between clusters with long host lists.
const longName = "db1.prod-eu.example:27017,db2.prod-eu.example:27017 -> atlas-eu-shard-00-00.abc12.mongodb.net:27017"

// longCAPath is a CA file deep in a home folder: its name must stay readable.
const longCAPath = "/home/dba/clusters/prod-eu/certificates/2026-rotation/prod-eu-internal-root-ca-bundle.pem"

// fillForms types valid connections into both forms.
func fillForms(h *harness) {
	h.a.showConnect("")
	f := h.a.forms
	test.Type(f.src.hosts, "db1.example:27017")
	test.Type(f.src.user, "migrator")
	test.Type(f.src.pass, "secret")
	test.Type(f.dst.hosts, "dest.example:27017")
	test.Type(f.dst.user, "migrator")
	test.Type(f.dst.pass, "secret")
}

func sampleValidation() Validation {
	return Validation{Checks: []Check{
		{Status: Passed, Title: "Source is a sharded cluster (3 shards)", Detail: "mongos db1.prod-eu.example:27017 reports shards rs0, rs1, rs2."},
		{Status: Passed, Title: "Config servers are a replica set (cfgRS)"},
		{Status: Failed, Title: "Shard rs2 member db7:27018 is unreachable", Detail: "dial tcp 10.1.2.7:27018: connect: connection refused",
			Fix: "allow this workstation through the firewall of db7:27018, or check that the member is running"},
		{Status: Passed, Title: "Same major version 7.0 and FCV 7.0 on both sides"},
		{Status: Warning, Title: "Users and roles are not migrated (4 users, 1 role)", Fix: "re-create them on the destination: the list is shown at the end"},
	}}
}

// feedSamples ticks through ten minutes of made-up lag and throughput.
func feedSamples(h *harness, m *fakeMigration) {
	for i := 0; i < 120; i++ {
		h.now = h.now.Add(sampleEvery)
		f := float64(i)
		m.snap.Shards[0].Lag = time.Duration(2+f/20) * time.Second
		m.snap.Shards[1].Lag = time.Duration(40-f/4) * time.Second
		m.snap.Overall.CopyRate = 1_800_000 + 3000*f
		m.snap.Overall.ApplyRate = 200 + 2*f
		h.tick()
	}
}

// TestScreensFitTheWindow lays every screen out at 1280x800 and 1024x700 and checks
// that nothing leaves the window and no label or button is narrower than its text:
// a label that ends in an ellipsis is cut too.
// With SHARDLIFT_UI_SHOTS=dir it also writes a PNG of each, light and dark, to look at.
func TestScreensFitTheWindow(t *testing.T) {
	shots := os.Getenv("SHARDLIFT_UI_SHOTS")
	sizes := []fyne.Size{{Width: 1280, Height: 800}, {Width: 1024, Height: 700}}
	for _, sc := range scenes {
		for _, size := range sizes {
			name := fmt.Sprintf("%s-%dx%.0f", sc.name, int(size.Width), size.Height)
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, &fakeBackend{})
				h.a.win.Resize(size)
				sc.setup(h)
				h.settle()
				checkFits(t, h)
				if shots == "" {
					return
				}
				for _, v := range []fyne.ThemeVariant{theme.VariantLight, theme.VariantDark} {
					h.a.fa.Settings().SetTheme(variantTheme{theme.DefaultTheme(), v})
					img := h.a.win.Canvas().Capture()
					suffix := map[fyne.ThemeVariant]string{theme.VariantLight: "light", theme.VariantDark: "dark"}[v]
					f, err := os.Create(filepath.Join(shots, name+"-"+suffix+".png"))
					if err != nil {
						t.Fatal(err)
					}
					if err := errors.Join(png.Encode(f, img), f.Close()); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// TestEscapeClosesEveryDialog opens each dialog of the scenes and presses Escape,
// where the keyboard focus is: the dialog closes and nothing is done.
func TestEscapeClosesEveryDialog(t *testing.T) {
	tried := 0
	for _, sc := range scenes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, &fakeBackend{})
			sc.setup(h)
			if h.dialogs() == 0 {
				return
			}
			tried++
			m := &fakeMigration{}
			if at := h.a.att.Load(); at != nil {
				m = at.m.(*fakeMigration)
			}
			calls, starts, removed := len(m.calls), len(h.b.startCalls), len(h.b.removed)
			h.escape()
			h.q.drain()
			if h.dialogs() != 0 {
				t.Fatalf("Escape left %d dialogs open", h.dialogs())
			}
			if len(m.calls) != calls || len(h.b.startCalls) != starts || len(h.b.removed) != removed || h.closed {
				t.Fatalf("Escape did something: calls %v, starts %d, removed %v, window closed %v", m.calls, len(h.b.startCalls), h.b.removed, h.closed)
			}
		})
	}
	if tried < 8 {
		t.Fatalf("only %d scenes open a dialog", tried)
	}
}

// TestNoScreenClaimsTheBalancerIsSimplyOn: the engine puts the source balancer back
// as it found it (it may have been off), after a cancel, an expiry or I'm done; no
// screen or dialog may promise more, or ask to cancel for what was already done.
func TestNoScreenClaimsTheBalancerIsSimplyOn(t *testing.T) {
	wrong := []string{"balancer is turned back on", "balancer is on again", "turns it back on", "turn the source balancer back on",
		"turning the source balancer back on", "building the remaining indexes"}
	for _, sc := range scenes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, &fakeBackend{})
			sc.setup(h)
			for _, text := range h.texts() {
				for _, w := range wrong {
					if strings.Contains(text, w) {
						t.Errorf("%q says %q", text, w)
					}
				}
			}
		})
	}
}

// area is where objects must stay: the window, or a vertical scroll's columns.
type area struct {
	x0, y0, x1, y1 float32
	scrolls        bool // the content scrolls vertically: y is not bounded
}

// checkFits fails when a visible object sticks out of the window (or, inside a
// scroll, out of the scroll's width), or a label or button is cut.
func checkFits(t *testing.T, h *harness) {
	t.Helper()
	win := h.a.win.Canvas().Size()
	const slack = 1
	var visit func(o fyne.CanvasObject, origin fyne.Position, in area)
	visit = func(o fyne.CanvasObject, origin fyne.Position, in area) {
		if !o.Visible() {
			return
		}
		pos := origin.Add(o.Position())
		size := o.Size()
		if pos.X < in.x0-slack || pos.X+size.Width > in.x1+slack ||
			(!in.scrolls && (pos.Y < in.y0-slack || pos.Y+size.Height > in.y1+slack)) {
			t.Errorf("%T %q at %v size %v leaves the area %+v", o, textOf(o), pos, size, in)
			return
		}
		if text := textOf(o); text != "" {
			min := o.MinSize()
			if l, ok := o.(*widget.Label); ok && l.Truncation != fyne.TextTruncateOff {
				// A truncated label asks for less than its text: measure the whole text.
				whole := widget.NewLabelWithStyle(l.Text, l.Alignment, l.TextStyle)
				whole.SizeName = l.SizeName
				min = whole.MinSize()
			}
			if size.Width < min.Width-slack || size.Height < min.Height-slack {
				t.Errorf("%T %q is cut: size %v, needs %v", o, text, size, min)
			}
		}
		var children []fyne.CanvasObject
		switch c := o.(type) {
		case *fyne.Container:
			children = c.Objects
			if fmt.Sprintf("%T", c.Layout) == "*dialog.dialogLayout" {
				// Fyne draws a dialog's title (the last object) without sizing it.
				children = children[:len(children)-1]
			}
		case *container.Scroll:
			// Its content scrolls vertically: only its width is bounded.
			visit(c.Content, pos, area{x0: pos.X, x1: pos.X + size.Width, scrolls: true})
			return
		case fyne.Widget:
			switch o.(type) {
			case *widget.Label, *widget.Button, *widget.Check, *widget.Entry, *escEntry, *uriEntry, *escCheck, *widget.ProgressBar, *widget.Icon, *lineChart, *widget.Activity:
				return // drawn by Fyne inside its own bounds
			}
			children = test.WidgetRenderer(c).Objects()
		}
		for _, ch := range children {
			visit(ch, pos, in)
		}
	}
	if min := h.a.win.Canvas().Content().MinSize(); min.Width > win.Width || min.Height > win.Height {
		t.Errorf("the screen needs %v, more than the window's %v", min, win)
	}
	whole := area{x1: win.Width, y1: win.Height}
	visit(h.a.win.Canvas().Content(), fyne.Position{}, whole)
	for _, ov := range h.a.win.Canvas().Overlays().List() {
		visit(ov, fyne.Position{}, whole)
	}
}

func textOf(o fyne.CanvasObject) string {
	switch x := o.(type) {
	case *widget.Label:
		return x.Text
	case *widget.Button:
		return x.Text
	case *widget.Check:
		return x.Text
	case *escCheck:
		return x.Text
	}
	return ""
}

// TestNoScreenWritesSIUnits looks at every text of every screen and dialog: sizes
// and rates are in binary units (MiB, MiB/s), as everywhere else in Shardlift, never
// "MB" or "GB".
func TestNoScreenWritesSIUnits(t *testing.T) {
	for _, sc := range scenes {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, &fakeBackend{})
			sc.setup(h)
			h.settle()
			for _, text := range h.texts() {
				if si := units.FindSI(text); si != "" {
					t.Errorf("%q writes %q in SI units", text, si)
				}
			}
		})
	}
}

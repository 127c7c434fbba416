package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

// queueRunner holds background work until the test drains it, so that a test sees
// the screen while a call runs, then its result, without sleeping.
type queueRunner struct{ pending []func() }

func (q *queueRunner) Go(f func()) { q.pending = append(q.pending, f) }
func (q *queueRunner) Do(f func()) { f() }

func (q *queueRunner) drain() {
	for len(q.pending) > 0 {
		f := q.pending[0]
		q.pending = q.pending[1:]
		f()
	}
}

type startCall struct {
	src, dst Connection
	wipe     bool
}

type openCall struct {
	id string
	pw *Passwords
}

// fakeBackend answers what each test sets up and records what the UI asked.
type fakeBackend struct {
	migrations    []MigrationInfo
	migrationsErr error

	validation  Validation
	validateErr error
	validated   [][2]Connection

	startMig   *fakeMigration
	startErr   error
	startCalls []startCall

	open      map[string]*fakeMigration
	openErr   error
	needPw    bool  // Open wants passwords until some are given
	needErr   error // what Open says it needs (else the keyring is unavailable)
	wantPw    *Passwords
	openCalls []openCall

	removed   []string
	removeErr error

	sandboxSrc, sandboxDst Connection
	sandboxErr             error

	exported  []string
	exportErr error

	logPath   string
	logErr    error
	logOpened []string

	clearErr error
	cleared  [][2]string // clusterID, migrationID
}

func (b *fakeBackend) ClearMarker(_ context.Context, _ Connection, clusterID, migrationID string) error {
	if b.clearErr != nil {
		return b.clearErr
	}
	b.cleared = append(b.cleared, [2]string{clusterID, migrationID})
	b.validation.HeldBy = nil
	return nil
}

func (b *fakeBackend) Migrations(context.Context) ([]MigrationInfo, error) {
	return b.migrations, b.migrationsErr
}

func (b *fakeBackend) Validate(_ context.Context, src, dst Connection) (Validation, error) {
	b.validated = append(b.validated, [2]Connection{src, dst})
	return b.validation, b.validateErr
}

func (b *fakeBackend) Start(_ context.Context, src, dst Connection, wipe bool) (Migration, error) {
	b.startCalls = append(b.startCalls, startCall{src, dst, wipe})
	if b.startMig == nil {
		return nil, b.startErr
	}
	return b.startMig, b.startErr
}

func (b *fakeBackend) Open(_ context.Context, id string, pw *Passwords) (Migration, error) {
	b.openCalls = append(b.openCalls, openCall{id, pw})
	if b.openErr != nil {
		return nil, b.openErr
	}
	if b.needPw {
		if pw == nil && b.needErr != nil {
			return nil, b.needErr
		}
		if pw == nil {
			return nil, fmt.Errorf("%w: the system keyring is not available", ErrPasswordsNeeded)
		}
		if b.wantPw != nil && *pw != *b.wantPw {
			return nil, &FieldError{Side: Source, Field: FieldPassword, Err: errors.New("authentication failed for user migrator: check the password")}
		}
	}
	m, ok := b.open[id]
	if !ok {
		return nil, fmt.Errorf("no migration %s on this workstation", id)
	}
	return m, nil
}

func (b *fakeBackend) Remove(_ context.Context, id string) error {
	if b.removeErr != nil {
		return b.removeErr
	}
	b.removed = append(b.removed, id)
	b.migrations = slices.DeleteFunc(b.migrations, func(m MigrationInfo) bool { return m.ID == id })
	return nil
}

func (b *fakeBackend) StartSandbox(context.Context) (Connection, Connection, error) {
	return b.sandboxSrc, b.sandboxDst, b.sandboxErr
}

func (b *fakeBackend) ExportDiagnostics(_ context.Context, id string, w io.Writer) error {
	if b.exportErr != nil {
		return b.exportErr
	}
	b.exported = append(b.exported, id)
	_, err := io.WriteString(w, "diagnostics of "+id)
	return err
}

func (b *fakeBackend) OpenLog(_ context.Context, id string) (string, error) {
	b.logOpened = append(b.logOpened, id)
	return b.logPath, b.logErr
}

// fakeMigration is a migration whose snapshot the test sets; actions are recorded and
// move the state as the engine would.
type fakeMigration struct {
	snap  engine.Snapshot
	calls []string
	errs  map[string]error
}

func newFakeMigration(s engine.Snapshot) *fakeMigration {
	return &fakeMigration{snap: s, errs: map[string]error{}}
}

func (m *fakeMigration) Snapshot() engine.Snapshot { return m.snap }

func (m *fakeMigration) call(name string) error {
	m.calls = append(m.calls, name)
	return m.errs[strings.Fields(name)[0]]
}

func (m *fakeMigration) StartCutover(context.Context) error {
	if err := m.call("StartCutover"); err != nil {
		return err
	}
	m.snap.State = engine.CuttingOver
	return nil
}

func (m *fakeMigration) ExtendTimer(context.Context) error {
	if err := m.call("ExtendTimer"); err != nil {
		return err
	}
	m.snap.TimerDeadline = m.snap.TimerDeadline.Add(24 * time.Hour)
	return nil
}

func (m *fakeMigration) Done(_ context.Context, override bool) error {
	if err := m.call(fmt.Sprintf("Done %v", override)); err != nil && !override {
		return err
	}
	m.snap.State = engine.Done
	return nil
}

func (m *fakeMigration) Cancel(context.Context) error {
	if err := m.call("Cancel"); err != nil {
		return err
	}
	m.snap.State = engine.Cancelled
	return nil
}

func (m *fakeMigration) RestartShard(_ context.Context, shard string) error {
	return m.call("RestartShard " + shard)
}

func (m *fakeMigration) Retry(context.Context) error { return m.call("Retry") }
func (m *fakeMigration) Detach(context.Context) error {
	return m.call("Detach")
}
func (m *fakeMigration) Pause(context.Context) error { return m.call("Pause") }

// harness is an App on a test window with a queued runner and a settable clock.
type harness struct {
	t      *testing.T
	a      *App
	b      *fakeBackend
	q      *queueRunner
	now    time.Time
	closed bool
}

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, b *fakeBackend) *harness {
	t.Helper()
	fa := test.NewTempApp(t)
	h := &harness{t: t, b: b, q: &queueRunner{}, now: t0}
	h.a = newApp(fa, b, h.q, func() time.Time { return h.now })
	h.a.addrs = func() []string { return []string{"192.0.2.10"} }
	h.a.closeWindow = func() { h.closed = true }
	h.a.win.Resize(fyne.NewSize(1280, 800))
	h.q.drain()
	return h
}

// tick reads the attached migration's snapshot as the ticker goroutine would.
func (h *harness) tick() {
	h.a.tick()
	h.q.drain()
}

// attach opens m as if Start had returned it.
func (h *harness) attach(m *fakeMigration) {
	h.a.attach(m, m.Snapshot(), "")
	h.q.drain()
}

// settle lays the window out until sizes stop changing, as the real window does on
// every frame (the test canvas only lays out on resize).
func (h *harness) settle() { settle(h.a.win.Canvas()) }

func settle(c fyne.Canvas) {
	relayout := func(o fyne.CanvasObject) {}
	relayout = func(o fyne.CanvasObject) {
		if !o.Visible() {
			return
		}
		switch c := o.(type) {
		case *fyne.Container:
			if c.Layout != nil {
				c.Layout.Layout(c.Objects, c.Size())
			}
			for _, ch := range c.Objects {
				relayout(ch)
			}
		case fyne.Widget:
			r := test.WidgetRenderer(c)
			r.Layout(c.Size())
			for _, ch := range r.Objects() {
				relayout(ch)
			}
		}
	}
	for range 3 {
		relayout(c.Content())
		for _, ov := range c.Overlays().List() {
			relayout(ov)
		}
	}
}

// walk visits o and everything drawn inside it, telling whether each is visible.
func walk(o fyne.CanvasObject, visible bool, fn func(o fyne.CanvasObject, visible bool)) {
	vis := visible && o.Visible()
	fn(o, vis)
	switch c := o.(type) {
	case *fyne.Container:
		for _, ch := range c.Objects {
			walk(ch, vis, fn)
		}
	case fyne.Widget:
		for _, ch := range test.WidgetRenderer(c).Objects() {
			walk(ch, vis, fn)
		}
	}
}

// roots are the window's content and its dialogs, the top dialog first.
func (h *harness) roots() []fyne.CanvasObject {
	ov := h.a.win.Canvas().Overlays().List()
	var r []fyne.CanvasObject
	for i := len(ov) - 1; i >= 0; i-- {
		r = append(r, ov[i])
	}
	return append(r, h.a.win.Canvas().Content())
}

// button finds the visible button labelled text, in the top dialog first.
func (h *harness) button(text string) *widget.Button {
	h.t.Helper()
	if b := h.findButton(text); b != nil {
		return b
	}
	h.t.Fatalf("no visible button %q; visible buttons: %q", text, h.buttons())
	return nil
}

func (h *harness) findButton(text string) *widget.Button {
	var found *widget.Button
	for _, r := range h.roots() {
		walk(r, true, func(o fyne.CanvasObject, vis bool) {
			if b, ok := o.(*widget.Button); ok && vis && found == nil && b.Text == text {
				found = b
			}
		})
		if found != nil {
			break
		}
	}
	return found
}

// tap taps the visible button labelled text, then lets background work finish.
func (h *harness) tap(text string) {
	h.t.Helper()
	test.Tap(h.button(text))
	h.q.drain()
}

// check finds the visible check box labelled text.
func (h *harness) check(text string) *widget.Check {
	h.t.Helper()
	var found *widget.Check
	for _, r := range h.roots() {
		walk(r, true, func(o fyne.CanvasObject, vis bool) {
			switch c := o.(type) {
			case *widget.Check:
				if vis && found == nil && c.Text == text {
					found = c
				}
			case *escCheck:
				if vis && found == nil && c.Text == text {
					found = &c.Check
				}
			}
		})
	}
	if found == nil {
		h.t.Fatalf("no visible check %q; visible text: %s", text, h.textDump())
	}
	return found
}

// buttons are the labels of every visible button, dialogs first.
func (h *harness) buttons() []string {
	var out []string
	for _, r := range h.roots() {
		walk(r, true, func(o fyne.CanvasObject, vis bool) {
			if b, ok := o.(*widget.Button); ok && vis {
				out = append(out, b.Text)
			}
		})
	}
	return out
}

// texts is every visible text, dialogs first.
func (h *harness) texts() []string {
	var out []string
	for _, r := range h.roots() {
		walk(r, true, func(o fyne.CanvasObject, vis bool) {
			if !vis {
				return
			}
			switch x := o.(type) {
			case *widget.Label:
				out = append(out, x.Text)
			case *widget.Button:
				out = append(out, x.Text)
			case *widget.Check:
				out = append(out, x.Text)
			case *canvas.Text:
				out = append(out, x.Text)
			}
		})
	}
	return out
}

// textDump is the visible labels, for failure messages.
func (h *harness) textDump() string {
	var labels []string
	for _, r := range h.roots() {
		walk(r, true, func(o fyne.CanvasObject, vis bool) {
			if l, ok := o.(*widget.Label); ok && vis && l.Text != "" {
				labels = append(labels, l.Text)
			}
		})
	}
	return fmt.Sprintf("%q", labels)
}

// shows reports whether some visible text contains s.
func (h *harness) shows(s string) bool {
	for _, t := range h.texts() {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

func (h *harness) mustShow(s string) {
	h.t.Helper()
	if !h.shows(s) {
		h.t.Fatalf("%q is not on screen; visible text: %s", s, h.textDump())
	}
}

func (h *harness) mustNotShow(s string) {
	h.t.Helper()
	if h.shows(s) {
		h.t.Fatalf("%q is on screen and should not be", s)
	}
}

var enter = &fyne.KeyEvent{Name: fyne.KeyReturn}

// passwordEntries are the password fields of the top dialog, in order.
func passwordEntries(t *testing.T, h *harness) (src, dst *escEntry) {
	t.Helper()
	var found []*escEntry
	walk(h.roots()[0], true, func(o fyne.CanvasObject, vis bool) {
		if e, ok := o.(*escEntry); ok && vis && e.Password {
			found = append(found, e)
		}
	})
	if len(found) != 2 {
		t.Fatalf("%d password fields in the dialog, want 2", len(found))
	}
	return found[0], found[1]
}

// dialogs is how many dialogs are open.
func (h *harness) dialogs() int { return len(h.a.win.Canvas().Overlays().List()) }

// escape presses Escape the way the window delivers it: to the focused widget, or to
// the canvas when nothing has the focus.
func (h *harness) escape() {
	ev := &fyne.KeyEvent{Name: fyne.KeyEscape}
	if f := h.a.win.Canvas().Focused(); f != nil {
		f.TypedKey(ev)
		return
	}
	h.a.win.Canvas().OnTypedKey()(ev)
}

// syncing is a snapshot of a three-shard migration in the middle of its copy.
func syncing() engine.Snapshot {
	return engine.Snapshot{
		ID:             "m1",
		Name:           "prod-eu:27017 -> atlas-eu:27017",
		State:          engine.Syncing,
		StartedAt:      t0.Add(-2 * time.Hour),
		DestinationURI: "mongodb://atlas-eu:27017/?tls=true",
		Overall: engine.Progress{
			DocsCopied: 1_400_000, DocsTotal: 2_000_000,
			BytesCopied: 412_000_000_000, BytesTotal: 640_000_000_000, TotalsEstimated: true,
			CopyRate: 2_100_000, ApplyRate: 340,
			CopyRemaining: 72 * time.Minute,
		},
		Shards: []engine.ShardProgress{
			{Name: "rs0", Phase: engine.Copying, Progress: engine.Progress{
				DocsCopied: 600_000, DocsTotal: 1_000_000, BytesCopied: 140_000_000_000, BytesTotal: 230_000_000_000, TotalsEstimated: true,
				CopyRate: 12_400, CopyRemaining: 28 * time.Minute}},
			{Name: "rs1", Phase: engine.CatchingUp, Progress: engine.Progress{
				DocsCopied: 800_000, DocsTotal: 800_000, BytesCopied: 210_000_000_000, BytesTotal: 210_000_000_000,
				ApplyRate: 340, Lag: 41 * time.Second, LagKnown: true, CatchUpRemaining: 3 * time.Minute}},
			{Name: "rs2", Phase: engine.Copying, Progress: engine.Progress{
				DocsCopied: 0, DocsTotal: 200_000, BytesCopied: 62_000_000_000, BytesTotal: 200_000_000_000, TotalsEstimated: true}},
		},
		History: []engine.Event{
			{At: t0.Add(-2 * time.Hour), From: "validated", To: "starting", Reason: "balancer stopped"},
			{At: t0.Add(-2 * time.Hour), From: "starting", To: "syncing"},
			{At: t0.Add(-time.Hour), Shard: "rs1", From: "copying", To: "catching_up"},
		},
		SourceUsers: []engine.User{
			{Name: "app", DB: "admin", Roles: []string{"readWrite@shop", "read@crm"}},
			{Name: "reporting", DB: "admin", Roles: []string{"read@shop"}, IsRole: true},
		},
	}
}

// ready is syncing() once every shard caught up: the timer runs.
func ready() engine.Snapshot {
	s := syncing()
	s.State = engine.Ready
	s.TimerDeadline = t0.Add(72 * time.Hour)
	s.Overall.Lag, s.Overall.LagKnown, s.OptimeGapKnown = time.Second, true, true
	s.Overall.DocsCopied, s.Overall.BytesCopied, s.Overall.TotalsEstimated = s.Overall.DocsTotal, s.Overall.BytesTotal, false
	for i := range s.Shards {
		sh := &s.Shards[i]
		sh.Phase = engine.Synced
		sh.Lag, sh.LagKnown = time.Second, true
		sh.DocsCopied, sh.BytesCopied, sh.TotalsEstimated = sh.DocsTotal, sh.BytesTotal, false
	}
	// What a real migration shows once ready: each shard's oplog buffer (on by
	// default) and the continuous verification's progress.
	for i := range s.Shards {
		s.Shards[i].Buffer = &engine.OplogBuffer{Bytes: 393 << 10, Limit: 10 << 30, Entries: 19, FetchedUpTo: t0}
	}
	s.Continuous = &engine.ContinuousProgress{NamespacesCompared: 4, Namespaces: 5, RangesCompared: 8, Ranges: 10, Rechecked: 168}
	return s
}

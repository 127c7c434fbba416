package gui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/ui"
)

// The screenshot tour (SHARDLIFT_SCREENSHOTS=DIR, used by `make screenshots`): the
// real app with the real bridge walks the sandbox flow as a user would, tapping its
// buttons, and saves each screen at the sizes of shotSizes:
//
//	start ─► before you start ─► connections (sandbox) ─► validated ─► progress
//	  ─► cancel dialog ─► ready (after chartsLinger) ─► close question ─► cutover
//	  at gap 0:00, the source quiet ─► (a document changed on the destination) I'm
//	  done's confirmation ─► the verification's differences, declined ─► (the
//	  document put back) I'm done again ─► summary ─► start (the list) ─► a new
//	  migration's connections, a connection string pasted
//
// screenDriver finds widgets by their text in what the window shows; the app's
// headless test drives the same way.

// shotSizes are the window sizes of each screenshot.
var shotSizes = []fyne.Size{{Width: 1280, Height: 800}, {Width: 1024, Height: 700}}

// tourLimits bound each wait of the tour, so that a flow that broke ends the tour
// with a message instead of hanging.
const (
	tourStepLimit = 2 * time.Minute
	tourSyncLimit = 10 * time.Minute
	// chartsLinger is how long the tour stays on the ready screen before its shot.
	chartsLinger = 30 * time.Second
)

// screenDriver reads and taps what a window shows, on the Fyne event goroutine.
type screenDriver struct {
	win fyne.Window
}

// visit calls f on every visible object of the window, dialogs included, until f
// returns true.
func (d screenDriver) visit(f func(fyne.CanvasObject) bool) {
	c := d.win.Canvas()
	var walk func(o fyne.CanvasObject) bool
	walk = func(o fyne.CanvasObject) bool {
		if o == nil || !o.Visible() {
			return false
		}
		if f(o) {
			return true
		}
		var kids []fyne.CanvasObject
		switch v := o.(type) {
		case *fyne.Container:
			kids = v.Objects
		case *container.Scroll:
			kids = []fyne.CanvasObject{v.Content}
		case *widget.PopUp:
			kids = []fyne.CanvasObject{v.Content}
		case *container.Split:
			kids = []fyne.CanvasObject{v.Leading, v.Trailing}
		case *widget.Card:
			kids = []fyne.CanvasObject{v.Content}
		}
		for _, k := range kids {
			if walk(k) {
				return true
			}
		}
		return false
	}
	if walk(c.Content()) {
		return
	}
	for _, o := range c.Overlays().List() {
		if walk(o) {
			return
		}
	}
}

// textOf is the text an object shows, if it is a text.
func textOf(o fyne.CanvasObject) (string, bool) {
	switch v := o.(type) {
	case *widget.Label:
		return v.Text, true
	case *widget.Button:
		return v.Text, true
	case *canvas.Text:
		return v.Text, true
	case *widget.RichText:
		return v.String(), true
	case *widget.Check:
		return v.Text, true
	}
	return "", false
}

// has reports whether some visible text contains s.
func (d screenDriver) has(s string) bool {
	found := false
	fyne.DoAndWait(func() {
		d.visit(func(o fyne.CanvasObject) bool {
			t, ok := textOf(o)
			found = ok && strings.Contains(t, s)
			return found
		})
	})
	return found
}

// texts are the visible texts that contain s.
func (d screenDriver) texts(s string) []string {
	var out []string
	fyne.DoAndWait(func() {
		d.visit(func(o fyne.CanvasObject) bool {
			if t, ok := textOf(o); ok && strings.Contains(t, s) {
				out = append(out, t)
			}
			return false
		})
	})
	return out
}

// button is the visible button labelled text; enabled says whether it can be tapped.
func (d screenDriver) button(text string) (b *widget.Button, enabled bool) {
	fyne.DoAndWait(func() {
		d.visit(func(o fyne.CanvasObject) bool {
			if v, ok := o.(*widget.Button); ok && v.Text == text {
				b, enabled = v, !v.Disabled()
				return true
			}
			return false
		})
	})
	return b, enabled
}

// await polls cond until it holds, ctx ends or limit passes.
func await(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			return fmt.Errorf("waited %v for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// tap waits until the button labelled text is shown and enabled, then taps it.
func (d screenDriver) tap(ctx context.Context, text string, limit time.Duration) error {
	var b *widget.Button
	if err := await(ctx, limit, fmt.Sprintf("the %q button to be enabled", text), func() bool {
		var ok bool
		b, ok = d.button(text)
		return ok
	}); err != nil {
		return err
	}
	fyne.DoAndWait(func() { b.Tapped(&fyne.PointEvent{}) })
	return nil
}

// waitFor waits until a visible text contains s.
func (d screenDriver) waitFor(ctx context.Context, s string, limit time.Duration) error {
	return await(ctx, limit, fmt.Sprintf("%q on screen", s), func() bool { return d.has(s) })
}

// tour is one run of the screenshot tour.
type tour struct {
	screenDriver
	u     *ui.App
	b     *bridge
	dir   string
	shots []string
}

// runTour walks the flow, then closes the window.
func runTour(ctx context.Context, u *ui.App, b *bridge, dir string, stderr io.Writer) error {
	win := u.Window()
	defer fyne.Do(win.Close)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	t := &tour{screenDriver: screenDriver{win: win}, u: u, b: b, dir: dir}
	err := t.walk(ctx)
	fmt.Fprintf(stderr, "shardlift: screenshots: %d written to %s\n", len(t.shots), dir)
	for _, p := range t.shots {
		fmt.Fprintln(stderr, "  "+p)
	}
	if err != nil {
		// Keep what the window showed when the tour broke.
		_ = t.shot("failed")
		b.log.Error("screenshot tour stopped", "err", err)
	}
	return err
}

func (t *tour) walk(ctx context.Context) error {
	var restore func(context.Context) error
	steps := []struct {
		what string
		do   func() error
	}{
		{"start", func() error { return t.waitFor(ctx, "No migrations yet", tourStepLimit) }},
		{"", func() error { return t.shot("01-start") }},
		{"before you start", func() error { return t.tap(ctx, "New migration", tourStepLimit) }},
		{"", func() error { return t.waitFor(ctx, "I'm ready to migrate", tourStepLimit) }},
		{"", func() error { return t.shot("02-before-you-start") }},
		{"back to the list", func() error { return t.tap(ctx, "Migrations", tourStepLimit) }},
		{"sandbox", func() error { return t.tap(ctx, "Try with sandbox clusters", tourStepLimit) }},
		{"connections", func() error { return t.awaitForms(ctx, tourStepLimit) }},
		{"", func() error { return t.shot("03-connections") }},
		{"", func() error { return t.tap(ctx, "Validate", tourStepLimit) }},
		{"validated", func() error { return t.validated(ctx) }},
		{"", func() error { return t.shot("04-connections-validated") }},
		{"start migration", func() error { return t.tap(ctx, "Start migration", tourStepLimit) }},
		// The per-shard table appears once the shards sync.
		{"progress", func() error { return t.waitFor(ctx, "Phase", tourStepLimit) }},
		{"", func() error { return t.awaitCopying(ctx, tourStepLimit) }},
		{"", func() error { return t.shot("05-progress") }},
		{"cancel dialog", func() error { return t.tap(ctx, "Cancel migration", tourStepLimit) }},
		{"", func() error { return t.waitFor(ctx, "Keep migrating", tourStepLimit) }},
		{"", func() error { return t.shot("06-cancel-confirm") }},
		{"", func() error { return t.tap(ctx, "Keep migrating", tourStepLimit) }},
		// Ready once Start cutover is enabled: every shard is in sync.
		{"ready for cutover", func() error { return t.awaitEnabled(ctx, "Start cutover", tourSyncLimit) }},
		// Let the charts collect a little history of lag and throughput.
		{"", func() error { return sleep(ctx, chartsLinger) }},
		{"", func() error { return t.shot("07-ready-for-cutover") }},
		// The window's close button during a migration asks first.
		{"close question", func() error { fyne.DoAndWait(t.u.RequestClose); return nil }},
		{"", func() error { return t.waitFor(ctx, "Pause and close", tourStepLimit) }},
		{"", func() error { return t.shot("08-close-question") }},
		{"", func() error { return t.tap(ctx, "Don't close", tourStepLimit) }},
		// A write that reached the destination by mistake makes the verification
		// find a range that differs: I'm done then lists it and finishes only on an
		// override.
		{"a destination document changed", func() (err error) { restore, err = t.alterDestinationDocument(ctx); return err }},
		// The sandbox's load stops with the cutover, so the gap closes within a second.
		{"cutover", func() error { return t.tap(ctx, "Start cutover", tourStepLimit) }},
		{"gap 0:00", func() error { return t.awaitEnabled(ctx, "I'm done", tourSyncLimit) }},
		// The screen shows the source quiet once its last write is a few seconds old.
		{"source quiet", func() error {
			return await(ctx, tourStepLimit, "the source's last write to age", func() bool {
				return t.has("Last write to the source") && !t.has("The source still takes writes")
			})
		}},
		{"", func() error { return t.shot("09-cutover") }},
		// I'm done asks first, saying what finishing does.
		{"finish", func() error { return t.tap(ctx, "I'm done", tourStepLimit) }},
		{"", func() error { return t.waitFor(ctx, "Finish the cutover?", tourStepLimit) }},
		{"", func() error { return t.shot("10-finish-confirm") }},
		{"", func() error { return t.tap(ctx, "Finish the cutover", tourStepLimit) }},
		{"override dialog", func() error { return t.waitFor(ctx, "The destination differs from the source", tourSyncLimit) }},
		{"", func() error { return t.shot("11-verification-differs") }},
		// The DBA declines, puts the document back and verifies again.
		{"", func() error { return t.tap(ctx, "Don't finish", tourStepLimit) }},
		{"document restored", func() error { return restore(ctx) }},
		{"finish again", func() error { return t.tap(ctx, "I'm done", tourStepLimit) }},
		{"summary", func() error { return t.waitFor(ctx, "Back to migrations", tourSyncLimit) }},
		{"", func() error { return t.shot("12-summary") }},
		{"list", func() error { return t.tap(ctx, "Back to migrations", tourStepLimit) }},
		{"", func() error { return t.waitFor(ctx, "Summary", tourStepLimit) }},
		{"", func() error { return t.shot("13-start-with-history") }},
		// A new migration after the sandbox's starts from empty forms; a connection
		// string pasted with its password shows **** in its place.
		{"new migration", func() error { return t.tap(ctx, "New migration", tourStepLimit) }},
		{"", func() error { t.tickAll(); return t.tap(ctx, "I'm ready to migrate", tourStepLimit) }},
		{"", func() error { return t.waitFor(ctx, "Fill in both clusters' mongos hosts", tourStepLimit) }},
		{"", func() error { return t.pasteInFirstField(tourPastedURI) }},
		{"", func() error { return t.waitFor(ctx, "Fill in both clusters' mongos hosts", tourStepLimit) }},
		{"", func() error { return t.shot("14-new-migration-pasted-uri") }},
	}
	step := ""
	for _, st := range steps {
		if st.what != "" {
			step = st.what
		}
		if err := st.do(); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
	}
	return nil
}

// tourPastedURI is what the tour pastes into a new migration's source form: its
// password must not be shown.
const tourPastedURI = "mongodb://migrator:Tour-Passw0rd@db1.example.net/"

// tickAll ticks every check box shown.
func (d screenDriver) tickAll() {
	fyne.DoAndWait(func() {
		d.visit(func(o fyne.CanvasObject) bool {
			if c, ok := o.(*widget.Check); ok && !c.Checked {
				c.SetChecked(true)
			}
			return false
		})
	})
}

// pasteInFirstField pastes text into the screen's first text field with Ctrl+V, as
// a user does: the focus moves through the window until it reaches a text field.
func (d screenDriver) pasteInFirstField(text string) error {
	pasted := false
	fyne.DoAndWait(func() {
		c := d.win.Canvas()
		c.Unfocus()
		for range 50 {
			c.FocusNext()
			field, ok := c.Focused().(interface {
				fyne.Shortcutable
				SelectedText() string
			})
			if ok {
				cb := fyne.CurrentApp().Clipboard()
				cb.SetContent(text)
				field.TypedShortcut(&fyne.ShortcutPaste{Clipboard: cb})
				c.Unfocus()
				pasted = true
				return
			}
		}
	})
	if !pasted {
		return errors.New("no text field to paste into")
	}
	return nil
}

// awaitForms waits until the sandbox's connections fill both forms: both CA files
// are shown and Validate is enabled, which it is only once they are read.
func (d screenDriver) awaitForms(ctx context.Context, limit time.Duration) error {
	return await(ctx, limit, "both forms filled, their CA files read", func() bool {
		var files int
		for _, t := range d.texts("File: ") {
			if strings.HasPrefix(t, "File: ") {
				files++
			}
		}
		_, enabled := d.button("Validate")
		return enabled && files == 2
	})
}

// validated waits for the validation's summary and refuses a failed check.
func (t *tour) validated(ctx context.Context) error {
	var summary string
	err := await(ctx, tourStepLimit, "the validation's summary", func() bool {
		summary = t.validationSummary()
		return summary != ""
	})
	if err != nil {
		return err
	}
	if strings.Contains(summary, "failed") {
		return fmt.Errorf("a check failed: %s", summary)
	}
	return nil
}

// validationSummary is the Connections screen's line under Validate ("All 19 checks
// passed.", "18 passed, 1 with a warning: …"), or "" while there is none.
func (d screenDriver) validationSummary() string {
	for _, t := range d.texts(" passed") {
		if validationSummaryRE.MatchString(t) {
			return t
		}
	}
	return ""
}

var validationSummaryRE = regexp.MustCompile(`^(All \d+ checks passed\.|\d+ passed, )`)

// awaitCopying waits until the overall counts show copied data, so that the
// progress shot shows a sync under way rather than its first instant.
func (d screenDriver) awaitCopying(ctx context.Context, limit time.Duration) error {
	return await(ctx, limit, "the first documents copied", func() bool {
		for _, t := range d.texts(" documents") {
			if strings.Contains(t, " of ") && !strings.HasPrefix(t, "0 B of") {
				return true
			}
		}
		return false
	})
}

// awaitEnabled waits until the button labelled text is shown and enabled.
func (t *tour) awaitEnabled(ctx context.Context, text string, limit time.Duration) error {
	return await(ctx, limit, fmt.Sprintf("the %q button to be enabled", text), func() bool {
		_, ok := t.button(text)
		return ok
	})
}

// shot saves the window at each of shotSizes as DIR/<name>-<w>x<h>.png. The frame
// is read from the X server (ImageMagick's import): Fyne's Canvas.Capture reads the
// GL front buffer, which Mesa's software renderer under Xvfb returns empty. Without a
// window manager the window sits at the screen's origin.
func (t *tour) shot(name string) error {
	for _, size := range shotSizes {
		fyne.DoAndWait(func() { t.win.Resize(size) })
		// A minute: a busy machine (load 20) took more than 10 s to resize it.
		err := await(context.Background(), time.Minute, fmt.Sprintf("a %vx%v window", size.Width, size.Height), func() bool {
			var got fyne.Size
			fyne.DoAndWait(func() { got = t.win.Canvas().Size() })
			return got == size
		})
		if err != nil {
			return fmt.Errorf("%w (is FYNE_SCALE=1 set?)", err)
		}
		// Let the layout settle and a frame at the new size reach the screen.
		time.Sleep(500 * time.Millisecond)
		path := filepath.Join(t.dir, fmt.Sprintf("%s-%dx%d.png", name, int(size.Width), int(size.Height)))
		crop := fmt.Sprintf("%dx%d+0+0", int(size.Width), int(size.Height))
		out, err := exec.Command("import", "-window", "root", "-crop", crop, "+repage", "png:"+path).CombinedOutput()
		if err != nil {
			return fmt.Errorf("capture the screen with ImageMagick's import: %v: %s", err, strings.TrimSpace(string(out)))
		}
		t.shots = append(t.shots, path)
	}
	return nil
}

// alterDestinationDocument changes one document of the sandbox's destination, as a
// write that reached it by mistake would (the verification follows the
// destination's oplogs too, so I'm done rechecks it even after the continuous
// verification compared its range); restore puts the document back.
func (t *tour) alterDestinationDocument(ctx context.Context) (restore func(context.Context) error, err error) {
	p := t.b.sandboxPair()
	if p == nil {
		return nil, errors.New("the tour runs on the sandbox, which is not running")
	}
	client, err := p.dst.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the destination sandbox: %w", err)
	}
	dst := client.Database("shop").Collection("customers")
	original, err := dst.FindOne(ctx, bson.D{}).Raw()
	filter := bson.D{{Key: "_id", Value: original.Lookup("_id")}}
	if err == nil {
		_, err = dst.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "changedByMistake", Value: true}}}})
	}
	if err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("change a document of shop.customers on the destination: %w", err)
	}
	return func(ctx context.Context) error {
		defer client.Disconnect(context.WithoutCancel(ctx))
		if _, err := dst.ReplaceOne(ctx, filter, original); err != nil {
			return fmt.Errorf("put back the document of shop.customers changed on the destination: %w", err)
		}
		return nil
	}, nil
}

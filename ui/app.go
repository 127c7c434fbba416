package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/assets"
	"github.com/shardlift/shardlift/engine"
)

// tickInterval is how often the screens read the attached migration's snapshot.
const tickInterval = 250 * time.Millisecond

// shutdownWait bounds how long closing the app waits for backend calls still running
// after their context was cancelled.
const shutdownWait = 10 * time.Second

// App is Shardlift's window: the step list on the left, the current step's screen on
// the right.
type App struct {
	fa  fyne.App
	win fyne.Window
	b   Backend

	// ctx is cancelled when the window closes; every backend call runs under it.
	ctx  context.Context
	stop context.CancelFunc
	run  runner
	now  func() time.Time
	// addrs lists this workstation's addresses, for the firewall advice.
	addrs func() []string
	// closeWindow closes the window and with it the app.
	closeWindow func()

	side  *sidebar
	body  *fyne.Container
	cur   screen
	forms *connectForms // the connection forms, kept while moving between steps

	// att is the migration on screen, read by the ticker goroutine; nil on the
	// Start, Before you start and Connections screens.
	att         atomic.Pointer[attachment]
	tickPending atomic.Bool

	dialogs []dialog.Dialog // open dialogs, the top one last: Escape hides it

	// notify sends a desktop notification (Fyne's; notify.go).
	notify func(*fyne.Notification)
	// tray is the system tray when the desktop has one (tray.go), trayStatus what it shows.
	tray       Tray
	trayStatus string
}

// attachment is one migration on screen and what the screens keep about it.
type attachment struct {
	m       Migration
	id      string
	samples *samples        // chart history; event goroutine only
	last    engine.Snapshot // the latest snapshot shown; event goroutine only
	lastAt  time.Time       // when last was taken
}

// screen is one step's content.
type screen interface {
	step() step
	view() fyne.CanvasObject
}

// live is a screen fed by the snapshot tick.
type live interface {
	screen
	// handles reports whether this screen shows a migration in state s.
	handles(s engine.State) bool
	show(s engine.Snapshot, now time.Time)
	bannerArea() *banner
}

// New builds the window over b. Call ShowAndRun to run it.
func New(fa fyne.App, b Backend) *App {
	return newApp(fa, b, &liveRunner{}, time.Now)
}

func newApp(fa fyne.App, b Backend, r runner, now func() time.Time) *App {
	ctx, stop := context.WithCancel(context.Background())
	a := &App{fa: fa, b: b, ctx: ctx, stop: stop, run: r, now: now, addrs: localAddrs, notify: fa.SendNotification}
	fa.SetIcon(assets.Icon)
	a.win = fa.NewWindow("Shardlift")
	a.win.SetMaster()
	a.win.Resize(fyne.NewSize(1280, 800))
	a.closeWindow = a.win.Close
	a.forms = newConnectForms(a)
	a.side = newSidebar(a)
	a.body = container.NewStack()
	a.win.SetContent(container.NewBorder(nil, nil, a.side.view(), nil, a.body))
	a.win.SetCloseIntercept(a.requestClose)
	a.win.Canvas().SetOnTypedKey(func(ev *fyne.KeyEvent) {
		if ev.Name == fyne.KeyEscape {
			a.escape()
		}
	})
	a.showStart()
	return a
}

// Window is the app's window, for the app package's screenshots.
func (a *App) Window() fyne.Window { return a.win }

// RequestClose closes the window as its close button does: during a migration it
// first asks whether to keep syncing in the background or to pause. Call it on the
// event goroutine.
func (a *App) RequestClose() { a.requestClose() }

// ShowAndRun shows the window and runs until it closes, then stops the ticker and
// waits for backend calls still running.
func (a *App) ShowAndRun() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.tickEvery(a.ctx, tickInterval)
	}()
	a.win.ShowAndRun()
	a.stop()
	wg.Wait()
	if lr, ok := a.run.(*liveRunner); ok {
		lr.wait(shutdownWait)
	}
}

// runner runs slow work off the event goroutine and brings results back to it. Tests
// replace it with one that queues the work until they let it run.
type runner interface {
	Go(func())
	Do(func())
}

type liveRunner struct{ wg sync.WaitGroup }

func (r *liveRunner) Go(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

func (r *liveRunner) Do(f func()) { fyne.Do(f) }

// wait waits for the goroutines started by Go, at most d: a backend call that ignores
// its cancelled context must not keep the process alive forever.
func (r *liveRunner) wait(d time.Duration) {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// background runs work off the event goroutine, then the func it returns on it,
// unless the app was closed meanwhile.
func (a *App) background(work func() (then func())) {
	a.run.Go(func() {
		then := work()
		if then == nil {
			return
		}
		a.run.Do(func() {
			if a.ctx.Err() == nil {
				then()
			}
		})
	})
}

func (a *App) tickEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.tick()
		}
	}
}

// tick reads the attached migration's snapshot and hands it to the event goroutine in
// one fyne.Do. A tick is skipped while the previous one has not been drawn yet.
func (a *App) tick() {
	at := a.att.Load()
	if at == nil || !a.tickPending.CompareAndSwap(false, true) {
		return
	}
	s := at.m.Snapshot()
	now := a.now()
	a.run.Do(func() {
		a.tickPending.Store(false)
		if a.ctx.Err() == nil {
			a.apply(at, s, now)
		}
	})
}

// refreshSoon takes a snapshot now instead of waiting for the next tick, after an
// action changed the migration's state.
func (a *App) refreshSoon() {
	a.run.Go(a.tick)
}

// apply shows a snapshot: it switches to the screen for the migration's state and
// updates it.
func (a *App) apply(at *attachment, s engine.Snapshot, now time.Time) {
	if a.att.Load() != at {
		return
	}
	a.sendNotices(notices(at.last, s, at.lastAt, now))
	a.updateTray(trayStatus(s))
	at.last, at.lastAt = s, now
	at.samples.add(now, chartValues(s))
	lv, ok := a.cur.(live)
	if !ok || !lv.handles(s.State) {
		lv = a.screenFor(at, s.State)
		a.setScreen(lv)
	}
	lv.show(s, now)
	a.side.setStep(lv.step(), s.State)
}

func (a *App) screenFor(at *attachment, s engine.State) live {
	switch s {
	case engine.CuttingOver, engine.Finalizing:
		return newCutoverScreen(a, at)
	case engine.Done, engine.Cancelled, engine.Expired:
		return newSummaryScreen(a, at)
	default:
		return newMonitorScreen(a, at)
	}
}

func (a *App) setScreen(s screen) {
	a.cur = s
	a.body.Objects = []fyne.CanvasObject{container.NewPadded(s.view())}
	a.body.Refresh()
	a.side.setStep(s.step(), "")
}

// attach puts a migration on screen, with its first snapshot. notice, when not empty,
// is shown on top of its screen (the keyring could not keep the passwords).
func (a *App) attach(m Migration, first engine.Snapshot, notice string) {
	at := &attachment{m: m, id: first.ID, samples: newSamples()}
	a.att.Store(at)
	a.cur = nil
	a.apply(at, first, a.now())
	if notice != "" {
		a.cur.(live).bannerArea().show(levelWarning, notice)
	}
}

// detachView leaves the attached migration's screens; the migration keeps running in
// the backend and can be opened again from the list.
func (a *App) detachView() {
	a.att.Store(nil)
}

func (a *App) showStart() {
	a.detachView()
	s := newStartScreen(a)
	a.setScreen(s)
	s.reload()
}

func (a *App) showPrepare() {
	a.detachView()
	a.setScreen(newPrepareScreen(a))
}

func (a *App) showConnect(notice string) {
	a.detachView()
	s := newConnectScreen(a)
	a.setScreen(s)
	if notice != "" {
		s.banner.show(levelInfo, notice)
	}
}

// showDialog shows d and remembers it for Escape.
func (a *App) showDialog(d dialog.Dialog) {
	a.dialogs = append(a.dialogs, d)
	d.SetOnClosed(func() {
		for i, o := range a.dialogs {
			if o == d {
				a.dialogs = append(a.dialogs[:i], a.dialogs[i+1:]...)
				break
			}
		}
	})
	d.Show()
}

// showFileDialog shows one of Fyne's file dialogs. It takes the focus off the file
// name field the dialog focuses: Fyne hands keys to the focused widget, which would
// swallow Escape. The name is prefilled, and a click puts the focus back.
func (a *App) showFileDialog(d *dialog.FileDialog) {
	a.showDialog(d)
	a.win.Canvas().Unfocus()
}

// escape closes the top dialog, as its cancel button would.
func (a *App) escape() {
	if n := len(a.dialogs); n > 0 {
		a.dialogs[n-1].Dismiss()
	}
}

// dialogWidth is the width at which dialog text wraps; wideDialogWidth is for dialogs
// with three long buttons.
const (
	dialogWidth     = 520
	wideDialogWidth = 720
)

// confirmDialog asks before a destructive or irreversible action.
type confirmDialog struct {
	d      *dialog.CustomDialog
	ok     *widget.Button
	cancel *widget.Button
}

// confirm shows a dialog with body, a cancel button that does nothing and an OK button
// that runs onOK.
func (a *App) confirm(title string, body fyne.CanvasObject, cancelText, okText string, imp widget.Importance, onOK func()) *confirmDialog {
	c := &confirmDialog{}
	c.d = dialog.NewCustomWithoutButtons(title, fixedWidth(dialogWidth, body), a.win)
	c.cancel = widget.NewButton(cancelText, c.d.Hide)
	c.ok = widget.NewButton(okText, func() {
		c.d.Hide()
		onOK()
	})
	c.ok.Importance = imp
	c.d.SetButtons([]fyne.CanvasObject{c.cancel, c.ok})
	a.showDialog(c.d)
	return c
}

// confirmRestart asks before restarting one shard's sync, then runs restart.
func (a *App) confirmRestart(shard string, restart func()) {
	body := wrapped(fmt.Sprintf("Shard %s starts its sync again from the beginning: its documents are copied again, then its oplog is replayed. The other shards keep syncing.", shard))
	a.confirm(fmt.Sprintf("Restart shard %s?", shard), body, "Don't restart", "Restart "+shard, widget.DangerImportance, restart)
}

// requestClose runs when the user closes the window: during a migration it asks
// whether to keep syncing in the background or to pause.
func (a *App) requestClose() {
	at := a.att.Load()
	if at == nil || !running(at.last.State) {
		a.quit()
		return
	}
	var d *dialog.CustomDialog
	msg := wrapped(fmt.Sprintf("%s is %s. Shardlift can keep syncing it in the background after the window closes, "+
		"or pause it at a checkpoint. Either way, open Shardlift again and choose it in the list to continue.",
		at.last.Name, stateText(at.last.State)))
	note := wrapped("While paused, the source keeps writing to its oplog: resume before the oplog rolls over, " +
		"or the affected shards must be restarted from the beginning.")
	note.Importance = widget.WarningImportance
	status := wrapped("")
	status.Hide()
	var keep, pause, stay *widget.Button
	act := func(verb string, call func(context.Context) error, then func()) {
		keep.Disable()
		pause.Disable()
		status.SetText(verb + "…")
		status.Importance = widget.MediumImportance
		status.Show()
		a.background(func() func() {
			err := call(a.ctx)
			return func() {
				if err != nil {
					keep.Enable()
					pause.Enable()
					status.SetText(err.Error())
					status.Importance = widget.DangerImportance
					status.Refresh()
					return
				}
				d.Hide()
				then()
			}
		})
	}
	keep = widget.NewButton("Keep syncing in the background", func() {
		if a.tray != nil {
			// The tray shows the migration and opens the window again.
			act("Keeping the migration syncing", at.m.Detach, a.win.Hide)
			return
		}
		act("Handing the migration to a background process", at.m.Detach, a.quit)
	})
	keep.Importance = widget.HighImportance
	pause = widget.NewButton("Pause and close", func() { act("Pausing at a checkpoint", at.m.Pause, a.quit) })
	stay = widget.NewButton("Don't close", func() { d.Hide() })
	d = dialog.NewCustomWithoutButtons("A migration is running", fixedWidth(wideDialogWidth, container.NewVBox(msg, note, status)), a.win)
	d.SetButtons([]fyne.CanvasObject{stay, pause, keep})
	a.showDialog(d)
}

func (a *App) quit() {
	a.stop()
	a.closeWindow()
}

// exportDiagnostics asks where to save the diagnostics zip of migration id.
func (a *App) exportDiagnostics(id string, where *banner) {
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil {
			where.show(levelError, fmt.Sprintf("Cannot save the diagnostics: %v", err))
			return
		}
		if w == nil {
			return
		}
		a.writeDiagnostics(id, w, localPath(w.URI()), where)
	}, a.win)
	d.SetFileName(fmt.Sprintf("shardlift-%s-diagnostics.zip", id))
	d.Resize(fyne.NewSize(800, 560))
	a.showFileDialog(d)
}

// writeDiagnostics exports migration id into w off the event goroutine and says
// where it went, or why it failed, in where.
func (a *App) writeDiagnostics(id string, w io.WriteCloser, path string, where *banner) {
	where.show(levelInfo, "Exporting diagnostics to "+path+"…")
	a.background(func() func() {
		err := a.b.ExportDiagnostics(a.ctx, id, w)
		if cerr := w.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
		return func() {
			if err != nil {
				where.show(levelError, fmt.Sprintf("Diagnostics not exported: %v", err))
				return
			}
			where.show(levelInfo, "Diagnostics saved to "+path+". Attach this file when you ask for help: it holds the history, logs and settings, and no passwords.")
		}
	})
}

// openLog opens the log file of migration id off the event goroutine, and says in
// where that it did, or where the file is when it could not.
func (a *App) openLog(id string, where *banner) {
	a.background(func() func() {
		path, err := a.b.OpenLog(a.ctx, id)
		return func() {
			switch {
			case err == nil:
				where.show(levelInfo, "The log is open in your desktop's viewer. It is the file "+path)
			case path != "":
				where.show(levelWarning, fmt.Sprintf("The log could not be opened (%v). It is the file %s", err, path))
			default:
				where.show(levelError, fmt.Sprintf("The log could not be opened: %v", err))
			}
		}
	})
}

// errorText is an error as a banner shows it. A FieldError names the form field.
func errorText(prefix string, err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		text := fmt.Sprintf("%s: check the %s %s: %v", prefix, fe.Side, fieldNames[fe.Field], fe.Err)
		if fe.Fix != "" {
			text += "\nFix: " + fe.Fix
		}
		return text
	}
	return fmt.Sprintf("%s: %v", prefix, err)
}

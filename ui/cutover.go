package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

// mismatchesShown bounds the mismatches listed in the override dialog.
const mismatchesShown = 8

// cutoverScreen is step 5: the steps to follow, the live optime gap, the destination
// connection string, I'm done at gap 0:00 and Cancel for a staging copy.
type cutoverScreen struct {
	a      *App
	at     *attachment
	banner *banner
	title  *widget.Label

	gap, gapNote *widget.Label
	// The cutover window still runs: when it closes, syncing stops (expired).
	window       *fyne.Container
	left         *widget.Label
	extend       *widget.Button
	uri          *widget.Label
	copyURI      *widget.Button
	done, cancel *widget.Button
	doneHint     *widget.Label
	staging      *widget.Label
	finalizing   *fyne.Container
	activity     *widget.Activity
	finalStep    *widget.Label

	// stopped is set when the last action failed: a finalize that stopped on an error
	// (a mismatch, a balancer that could not be restored) runs again with I'm done.
	// It is set too when the screen opens on a finalize started earlier (by another
	// window or process), which may have stopped: I'm done then resumes it.
	stopped bool
	shown   bool

	busy bool
	obj  fyne.CanvasObject
}

func newCutoverScreen(a *App, at *attachment) *cutoverScreen {
	s := &cutoverScreen{a: a, at: at, banner: newBanner()}
	s.title = heading("")
	s.title.Wrapping = fyne.TextWrapWord
	s.gap = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	s.gap.SizeName = theme.SizeNameHeadingText
	s.gapNote = wrapped("")
	s.uri = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	s.uri.Selectable = true
	s.uri.Wrapping = fyne.TextWrapBreak
	s.copyURI = widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), s.copy)
	s.done = widget.NewButtonWithIcon("I'm done", theme.ConfirmIcon(), s.finish)
	s.done.Importance = widget.HighImportance
	s.doneHint = widget.NewLabel("")
	s.doneHint.TextStyle.Italic = true
	s.cancel = widget.NewButtonWithIcon("Cancel (keep a staging copy)", theme.CancelIcon(), s.confirmCancel)
	s.staging = wrapped("")
	s.staging.TextStyle.Italic = true
	s.activity = widget.NewActivity()
	s.finalStep = wrapped("")
	s.finalizing = container.NewBorder(nil, nil, s.activity, nil, container.NewVBox(
		wrapped("Finalizing the destination: restoring the index options relaxed for the sync (unique, TTL), putting the source balancer back as it was, starting the destination balancer and verifying every range. Do not write to the destination until this is done."),
		s.finalStep))
	s.finalizing.Hide()

	steps := container.NewVBox(
		numbered(1, wrapped("Stop your applications and every write to the source cluster.")),
		numbered(2, container.NewVBox(
			wrapped("Wait until the optime gap reaches 0:00. The gap is how far the destination is behind the source; it closes once writes to the source stop."),
			container.NewHBox(widget.NewLabel("Optime gap"), s.gap),
			s.gapNote)),
		numbered(3, container.NewVBox(
			wrapped("Point your applications at the destination, with this connection string and their own users (re-create them there: see the list at the end):"),
			container.NewBorder(nil, nil, nil, container.NewVBox(s.copyURI), s.uri))),
		numbered(4, wrapped("Press I'm done. Writes sent to the source after this are not migrated: check that every application uses the destination before restarting it.")),
	)
	s.left = widget.NewLabel("")
	s.extend = widget.NewButtonWithIcon("Extend time (+24 h)", theme.HistoryIcon(), s.extendTimer)
	s.extend.Importance = widget.LowImportance
	s.window = container.NewHBox(s.left, s.extend)
	top := container.NewVBox(s.title, s.window, s.banner)
	footer := container.NewVBox(widget.NewSeparator(),
		container.NewHBox(s.cancel, layout.NewSpacer(), s.doneHint, s.done))
	body := container.NewVBox(steps, s.finalizing, widget.NewSeparator(), s.staging)
	s.obj = container.NewBorder(top, footer, nil, nil, container.NewVScroll(container.NewPadded(body)))
	return s
}

// numbered is one step of the cutover: its number, then what to do.
func numbered(n int, o fyne.CanvasObject) fyne.CanvasObject {
	num := widget.NewLabelWithStyle(fmt.Sprintf("%d.", n), fyne.TextAlignTrailing, fyne.TextStyle{Bold: true})
	return container.NewBorder(nil, nil, container.NewVBox(num), nil, o)
}

func (s *cutoverScreen) step() step              { return stepCutover }
func (s *cutoverScreen) view() fyne.CanvasObject { return s.obj }
func (s *cutoverScreen) bannerArea() *banner     { return s.banner }

func (s *cutoverScreen) handles(st engine.State) bool {
	return st == engine.CuttingOver || st == engine.Finalizing
}

// gapClosed is the rule for I'm done: the gap is known and shows 0:00.
func gapClosed(snap engine.Snapshot) bool { return snap.OptimeGapKnown && snap.OptimeGap < time.Second }

// notReplaying explains an optime gap that is not known.
const notReplaying = "A shard does not replay its oplog yet (it copies, waits to copy, or was restarted): the optime gap is known, and I'm done possible, once every shard replays."

func (s *cutoverScreen) show(snap engine.Snapshot, now time.Time) {
	if !s.shown {
		s.shown = true
		s.stopped = snap.State == engine.Finalizing
	}
	s.title.SetText("Cut over " + snap.Name)
	if left := snap.TimerDeadline.Sub(now); !snap.TimerDeadline.IsZero() && snap.State == engine.CuttingOver {
		s.left.SetText(fmt.Sprintf("Cutover window: %s left (until %s); when it closes, syncing stops.",
			countdownText(left), snap.TimerDeadline.Local().Format("Mon 2 Jan 15:04")))
		if left < timerWarning {
			s.left.Importance = widget.WarningImportance
		} else {
			s.left.Importance = widget.MediumImportance
		}
		s.left.Refresh()
		s.window.Show()
	} else {
		s.window.Hide()
	}
	s.gap.SetText(lagText(snap.OptimeGap, snap.OptimeGapKnown))
	closed := gapClosed(snap)
	switch {
	case closed:
		s.gap.Importance = widget.SuccessImportance
		s.gapNote.SetText("The destination has every write the source has taken. Press I'm done once your applications point at the destination.")
	case !snap.OptimeGapKnown:
		s.gap.Importance = widget.WarningImportance
		s.gapNote.SetText(notReplaying)
	default:
		s.gap.Importance = widget.WarningImportance
		s.gapNote.SetText(fmt.Sprintf("The destination is %s behind the source. If the gap does not shrink, something still writes to the source.", clockText(snap.OptimeGap)))
	}
	s.gap.Refresh()
	uri := snap.DestinationURI
	if uri == "" {
		uri = "(the destination's connection string is not known yet)"
	}
	s.uri.SetText(uri)
	switch {
	case closed:
		s.staging.SetText("Making a staging copy? With the optime gap at 0:00 it has every write so far. Press Cancel: the destination keeps the data migrated so far.")
	case !snap.OptimeGapKnown:
		s.staging.SetText("Making a staging copy? Wait until every shard replays its oplog again: until then the destination lacks part of a shard's data.")
	default:
		s.staging.SetText(fmt.Sprintf("Making a staging copy? Note the optime gap, now %s: the staging copy will lack the source's last %s of writes. Then press Cancel: the destination keeps the data migrated so far.",
			clockText(snap.OptimeGap), clockText(snap.OptimeGap)))
	}

	finalizing := snap.State == engine.Finalizing
	if finalizing {
		s.finalizing.Show()
		s.activity.Start()
		if snap.Reason != "" {
			s.finalStep.SetText("Now: " + snap.Reason)
			s.finalStep.Show()
		} else {
			s.finalStep.Hide()
		}
	} else {
		s.finalizing.Hide()
		s.activity.Stop()
	}
	switch {
	case finalizing && s.stopped && !s.busy:
		// I'm done resumes the finalize; Cancel gives up on it and restores what the
		// finalize has not (the engine says so when it refuses).
		s.done.Enable()
		s.cancel.Enable()
		s.doneHint.SetText("If finalizing stopped, press I'm done to try again")
	case finalizing || s.busy:
		s.done.Disable()
		s.cancel.Disable()
		s.doneHint.SetText("")
	case !closed:
		s.done.Disable()
		s.cancel.Enable()
		s.doneHint.SetText("Available at optime gap 0:00")
	default:
		s.done.Enable()
		s.cancel.Enable()
		s.doneHint.SetText("")
	}
}

func (s *cutoverScreen) extendTimer() {
	s.extend.Disable()
	s.banner.show(levelInfo, "Extending the cutover window…")
	s.a.background(func() func() {
		err := s.at.m.ExtendTimer(s.a.ctx)
		return func() {
			s.extend.Enable()
			if err != nil {
				s.banner.show(levelError, err.Error())
				return
			}
			s.banner.show(levelInfo, "The cutover window was extended by 24 hours.")
			s.a.refreshSoon()
		}
	})
}

func (s *cutoverScreen) copy() {
	s.a.fa.Clipboard().SetContent(s.at.last.DestinationURI)
	s.banner.show(levelInfo, "The destination connection string is on the clipboard.")
}

// act runs a cutover action off the event goroutine; errors go to the banner, except
// a verification mismatch, which asks for an override.
func (s *cutoverScreen) act(doing string, call func(context.Context) error) {
	s.busy = true
	s.show(s.at.last, s.a.now())
	s.banner.show(levelInfo, doing)
	s.a.background(func() func() {
		err := call(s.a.ctx)
		var v *engine.Verification
		if errors.Is(err, ErrVerificationMismatch) {
			v = s.at.m.Snapshot().Verification
		}
		return func() {
			s.busy = false
			s.stopped = err != nil
			s.show(s.at.last, s.a.now())
			switch {
			case errors.Is(err, ErrVerificationMismatch):
				s.banner.show(levelError, err.Error())
				s.askOverride(v)
			case err != nil:
				s.banner.show(levelError, err.Error())
			default:
				s.banner.clear()
			}
			s.a.refreshSoon()
		}
	})
}

func (s *cutoverScreen) finish() {
	s.act("Finishing: restoring the relaxed index options and the balancers, verifying every range…",
		func(ctx context.Context) error { return s.at.m.Done(ctx, false) })
}

// askOverride lists the ranges that differ and finishes anyway only when the user
// says so explicitly.
func (s *cutoverScreen) askOverride(v *engine.Verification) {
	lines := container.NewVBox()
	n := 0
	if v != nil {
		n = len(v.Mismatches)
		lines.Add(wrapped(fmt.Sprintf("The verification compared %d ranges of %d namespaces: %d differ.", v.Ranges, v.Namespaces, n)))
		for i, m := range v.Mismatches {
			if i == mismatchesShown {
				lines.Add(widget.NewLabel(fmt.Sprintf("… and %d more, in the diagnostics export.", n-mismatchesShown)))
				break
			}
			t := fmt.Sprintf("•  %s %s: source %s documents, destination %s", m.Namespace, m.Range, countText(m.SourceCount), countText(m.DestCount))
			if len(m.SampleIDs) > 0 {
				t += " (for example _id " + strings.Join(m.SampleIDs, ", ") + ")"
			}
			lines.Add(wrapped(t))
		}
	}
	lines.Add(wrapped("This usually means something still wrote to the source after the gap reached 0:00. Check that every application is stopped, then press I'm done again to verify again."))
	var c *confirmDialog
	verb := "differ"
	if n == 1 {
		verb = "differs"
	}
	accept := newEscCheck(fmt.Sprintf("I accept that %d range%s %s", n, plural(n), verb), func(on bool) {
		if on {
			c.ok.Enable()
		} else {
			c.ok.Disable()
		}
	}, s.a.escape)
	lines.Add(accept)
	c = s.a.confirm("The destination differs from the source", lines, "Don't finish", "Finish anyway", widget.DangerImportance, func() {
		s.act("Finishing despite the differences…", func(ctx context.Context) error { return s.at.m.Done(ctx, true) })
	})
	c.ok.Disable()
}

func (s *cutoverScreen) confirmCancel() {
	gap := clockText(s.at.last.OptimeGap)
	stops := wrapped(fmt.Sprintf("Syncing stops now, with the destination %s behind the source: as a staging copy, it lacks the source's writes of the last %s.", gap, gap))
	if !s.at.last.OptimeGapKnown {
		stops = wrapped("Syncing stops now, while a shard does not replay its oplog: as a staging copy, the destination lacks part of that shard's data.")
	}
	body := container.NewVBox(
		stops,
		wrapped("The data migrated so far stays on the destination; the source balancer is put back as it was, the destination balancer is started and the relaxed index options are restored. Test your applications against it with the destination's driver and version, then run the migration again in full: a new migration wipes the destination first."))
	s.a.confirm("Cancel and keep a staging copy?", body, "Keep cutting over", "Cancel migration", widget.DangerImportance, func() {
		s.act("Cancelling: stopping the sync, restoring the balancers and the relaxed index options…", s.at.m.Cancel)
	})
}

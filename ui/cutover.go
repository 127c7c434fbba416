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
	// writes says how long ago the source was last written: whether the
	// applications really stopped.
	writes *widget.Label
	// shards names the shards that keep the gap open, with Restart for a failed one.
	shards *cutoverShards
	users  *usersPanel
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
	s.writes = wrapped("")
	s.shards = newCutoverShards(func(shard string) {
		a.confirmRestart(shard, func() {
			s.act(fmt.Sprintf("Restarting shard %s…", shard), func(ctx context.Context) error { return s.at.m.RestartShard(ctx, shard) })
		})
	})
	s.users = newUsersPanel(a, s.banner)
	s.uri = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	s.uri.Selectable = true
	s.uri.Wrapping = fyne.TextWrapBreak
	s.copyURI = widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), s.copy)
	s.done = widget.NewButtonWithIcon("I'm done", theme.ConfirmIcon(), s.confirmFinish)
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
		numbered(1, container.NewVBox(
			wrapped("Stop your applications and every write to the source cluster."),
			s.writes)),
		numbered(2, container.NewVBox(
			wrapped("Wait until the optime gap reaches 0:00. The gap is how far the destination is behind the source; it closes once writes to the source stop."),
			container.NewHBox(widget.NewLabel("Optime gap"), s.gap),
			s.gapNote, s.shards.view())),
		numbered(3, container.NewVBox(
			wrapped("Re-create the source's users and roles on the destination: Shardlift does not migrate them, nor their passwords."),
			s.users.view())),
		numbered(4, container.NewVBox(
			wrapped("Point your applications at the destination, with this connection string and their own users:"),
			container.NewBorder(nil, nil, nil, container.NewVBox(s.copyURI), s.uri))),
		numbered(5, wrapped("Press I'm done. Writes sent to the source after this are not migrated: check that every application uses the destination before restarting it.")),
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
	// A shard that failed or copies again keeps the gap open whatever the source
	// does: the advice names it, not writes to the source.
	stuck := stuckShard(snap)
	switch {
	case stuck != nil:
		s.gap.Importance = widget.DangerImportance
		s.gapNote.Importance = widget.DangerImportance
		s.gapNote.SetText(stuckText(*stuck) + " Writes to the source are not the cause.")
	case closed:
		s.gap.Importance = widget.SuccessImportance
		s.gapNote.Importance = widget.MediumImportance
		s.gapNote.SetText("The destination has every write the source has taken. Press I'm done once your applications point at the destination.")
	case !snap.OptimeGapKnown:
		s.gap.Importance = widget.WarningImportance
		s.gapNote.Importance = widget.MediumImportance
		s.gapNote.SetText(notReplaying)
	default:
		s.gap.Importance = widget.WarningImportance
		s.gapNote.Importance = widget.MediumImportance
		note := fmt.Sprintf("The destination is %s behind the source. If the gap does not shrink, something still writes to the source.", clockText(snap.OptimeGap))
		if len(snap.Shards) > 1 && snap.GapShard != "" {
			note += fmt.Sprintf(" Shard %s is furthest behind.", snap.GapShard)
		}
		s.gapNote.SetText(note)
	}
	s.gap.Refresh()
	s.gapNote.Refresh()
	s.shards.show(snap.Shards)
	s.users.show(snap.SourceUsers)
	text, imp := writesText(snap)
	s.writes.Importance = imp
	s.writes.SetText(text)
	uri := snap.DestinationURI
	if uri == "" {
		uri = "(the destination's connection string is not known yet)"
	}
	s.uri.SetText(uri)
	switch {
	case stuck != nil:
		s.staging.SetText(fmt.Sprintf("Making a staging copy? Not now: while shard %s is not in sync, the destination is not a consistent staging copy. Restart it and wait until it has caught up.", stuck.Name))
	case closed:
		s.staging.SetText("Making a staging copy? With the optime gap at 0:00 it has every write so far. Press Cancel: the destination keeps the data migrated so far.")
	case !snap.OptimeGapKnown:
		s.staging.SetText("Making a staging copy? Wait until every shard replays its oplog again: until then the destination lacks part of a shard's data.")
	default:
		s.staging.SetText(fmt.Sprintf("Making a staging copy? Note the optime gap, now %s: the staging copy will lack the source's last %s of writes. Then press Cancel: the destination keeps the data migrated so far.",
			clockText(snap.OptimeGap), clockText(snap.OptimeGap)))
	}

	finalizing := snap.State == engine.Finalizing
	s.shards.setBusy(finalizing || s.busy)
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
	case stuck != nil:
		s.done.Disable()
		s.cancel.Enable()
		s.doneHint.SetText(fmt.Sprintf("Not available: shard %s is not in sync", stuck.Name))
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

// confirmFinish says what I'm done does before doing it; a finalize that stopped
// on an error is resumed without asking again.
func (s *cutoverScreen) confirmFinish() {
	if s.at.last.State == engine.Finalizing {
		s.finish()
		return
	}
	body := container.NewVBox(
		wrapped("Shardlift now finishes the migration:"),
		wrapped("1.  Waits until every shard has applied the source's newest entry, then stops syncing."),
		wrapped("2.  Restores the index and collection options relaxed for the sync (unique, TTL) on the destination."),
		wrapped("3.  Puts the source balancer back as it was before the migration and starts the destination balancer."),
		wrapped("4.  Verifies every range of the destination against the source, then removes Shardlift's marker from the destination."),
		wrapped("Writes sent to the source after this are not migrated: your applications must use the destination from now on."))
	s.a.confirm("Finish the cutover?", body, "Keep cutting over", "Finish the cutover", widget.HighImportance, s.finish)
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
	late := 0
	if v != nil {
		late = len(v.Late)
		for _, l := range v.Late {
			lines.Add(wrapped("•  " + l.String() + ": the destination lacks them."))
		}
	}
	indexes := 0
	if v != nil {
		indexes = len(v.Indexes)
		for i, d := range v.Indexes {
			if i == mismatchesShown {
				lines.Add(widget.NewLabel(fmt.Sprintf("… and %d more index differences, in the diagnostics export.", indexes-mismatchesShown)))
				break
			}
			lines.Add(wrapped("•  " + d.String()))
		}
	}
	if indexes > 0 {
		lines.Add(wrapped("The destination does not hold these indexes as the source does: an application may then insert what the source refuses (a unique index), keep what the source deletes (a TTL index), or run slower. Build them on the destination as the source has them (the source's db.collection.getIndexes() shows each), drop those only the destination holds, then press I'm done again to verify again."))
	}
	if late > 0 {
		lines.Add(wrapped("Something still writes to the source. The sync has stopped, so these writes cannot reach the destination any more: stop whatever writes, then cancel and start a new migration, or finish anyway if the destination may lack them."))
	} else if n > 0 {
		// Every write the source took before the sync stopped was replayed, and it
		// took none after (late is empty): something else wrote to the destination.
		lines.Add(wrapped("Shardlift found no write to the source after the sync stopped, so every source write reached the destination: the destination was most likely written to by something else during the migration (an application, a script or a user connected to it too early). Compare the documents named above on both clusters, put the destination's back as the source holds them and stop whatever writes to it, then press I'm done again to verify again."))
	}
	var c *confirmDialog
	verb := "differ"
	if n == 1 {
		verb = "differs"
	}
	label := fmt.Sprintf("I accept that %d range%s %s", n, plural(n), verb)
	if late > 0 || indexes > 0 {
		label = "I accept that the destination lacks what is listed"
	}
	accept := newEscCheck(label, func(on bool) {
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
	what := fmt.Sprintf("Syncing stops now, with the destination %s behind the source: as a staging copy, it lacks the source's writes of the last %s.", gap, gap)
	if !s.at.last.OptimeGapKnown {
		what = "Syncing stops now, while a shard does not replay its oplog: as a staging copy, the destination lacks part of that shard's data."
	}
	if p := stuckShard(s.at.last); p != nil {
		what = fmt.Sprintf("Syncing stops now, but shard %s is not in sync: the destination is not a consistent staging copy. ", p.Name)
		if p.Phase == engine.ShardFailed && !p.AppliedUpTo.IsZero() {
			what += fmt.Sprintf("Shard %s stopped at %s (source time) when it failed; its entries after that are lost.", p.Name, p.AppliedUpTo.Local().Format("15:04:05"))
		} else {
			what += fmt.Sprintf("Shard %s had not copied its data again.", p.Name)
		}
	}
	body := container.NewVBox(
		wrapped(what),
		wrapped("The data migrated so far stays on the destination; the source balancer is put back as it was, the destination balancer is started and the relaxed index options are restored. Test your applications against it with the destination's driver and version, then run the migration again in full: a new migration wipes the destination first."))
	s.a.confirm("Cancel and keep a staging copy?", body, "Keep cutting over", "Cancel migration", widget.DangerImportance, func() {
		s.act("Cancelling: stopping the sync, restoring the balancers and the relaxed index options…", s.at.m.Cancel)
	})
}

// recentWrite is how recent a write to the source must be to say the source still
// takes writes.
const recentWrite = 10 * time.Second

// writesText says when the source was last written, from the tails' reading.
func writesText(snap engine.Snapshot) (string, widget.Importance) {
	if snap.LastSourceWrite.IsZero() {
		return "Last write to the source: none read since the sync (re)started.", widget.MediumImportance
	}
	t := fmt.Sprintf("Last write to the source: %s ago (%s).", agoText(snap.SourceWriteAge), snap.LastSourceWrite.Local().Format("15:04:05"))
	if !gapClosed(snap) {
		t += " The sync has not read everything yet: newer writes may follow."
	}
	if snap.SourceWriteAge < recentWrite {
		return t + " The source still takes writes: stop every application that writes to it.", widget.WarningImportance
	}
	return t, widget.MediumImportance
}

// agoText is how long ago something happened, to the second while it is recent:
// "4 s", "2 min 5 s", "3 h 12 min".
func agoText(d time.Duration) string {
	sec := int64(max(d, 0) / time.Second)
	switch {
	case sec < 60:
		return fmt.Sprintf("%d s", sec)
	case sec < 3600:
		return fmt.Sprintf("%d min %d s", sec/60, sec%60)
	}
	return durationText(d)
}

// stuckShard is the first shard that keeps the cutover from finishing whatever the
// source does (failed, or copying again), or nil.
func stuckShard(snap engine.Snapshot) *engine.ShardProgress {
	for i, p := range snap.Shards {
		if p.NotSynced(true) != "" {
			return &snap.Shards[i]
		}
	}
	return nil
}

// stuckText says why the gap cannot close while shard p is stuck.
func stuckText(p engine.ShardProgress) string {
	if p.Phase == engine.ShardFailed {
		return fmt.Sprintf("Shard %s failed: the gap cannot close until you restart it and it has caught up.", p.Name)
	}
	return fmt.Sprintf("Shard %s is copying its data again: the gap cannot close until it has caught up.", p.Name)
}

// cutoverShards names, during the cutover, each shard that keeps the gap open: a
// failed one (with its error and Restart), one copying again, one behind.
type cutoverShards struct {
	onRestart func(string)
	key       string // the shards and phases the rows were built for
	rows      map[string]*cutoverShardRow
	box       *fyne.Container
}

type cutoverShardRow struct {
	text    *widget.Label
	restart *widget.Button
}

func newCutoverShards(onRestart func(string)) *cutoverShards {
	return &cutoverShards{onRestart: onRestart, box: container.NewVBox()}
}

func (c *cutoverShards) view() fyne.CanvasObject { return c.box }

func (c *cutoverShards) show(shards []engine.ShardProgress) {
	// The shards that keep the gap open whatever the source does first, then
	// those behind.
	var stuck, behind []engine.ShardProgress
	for _, p := range shards {
		switch {
		case p.NotSynced(true) != "":
			stuck = append(stuck, p)
		case p.Phase == engine.CatchingUp && p.Gap >= time.Second:
			behind = append(behind, p)
		}
	}
	listed := append(stuck, behind...)
	key := ""
	for _, p := range listed {
		key += p.Name + "/" + string(p.Phase) + "\n"
	}
	if key != c.key {
		c.key = key
		c.rows = map[string]*cutoverShardRow{}
		c.box.RemoveAll()
		for _, p := range listed {
			r := &cutoverShardRow{text: wrapped("")}
			var obj fyne.CanvasObject = r.text
			if p.Phase == engine.ShardFailed {
				name := p.Name
				r.restart = widget.NewButtonWithIcon("Restart "+name, theme.ViewRefreshIcon(), func() { c.onRestart(name) })
				r.restart.Importance = widget.DangerImportance
				obj = container.NewBorder(nil, nil, widget.NewIcon(theme.NewErrorThemedResource(theme.ErrorIcon())), container.NewVBox(r.restart), r.text)
			}
			c.rows[p.Name] = r
			c.box.Add(obj)
		}
	}
	for _, p := range listed {
		r := c.rows[p.Name]
		switch p.Phase {
		case engine.ShardFailed:
			r.text.Importance = widget.DangerImportance
			t := fmt.Sprintf("Shard %s failed", p.Name)
			if !p.AppliedUpTo.IsZero() {
				t += fmt.Sprintf(" and stopped at %s (source time); it is %s behind and falling further", p.AppliedUpTo.Local().Format("15:04:05"), clockText(p.Gap))
			}
			r.text.SetText(t + ": " + p.Error)
		case engine.CatchingUp:
			r.text.Importance = widget.WarningImportance
			r.text.SetText(fmt.Sprintf("Shard %s is %s behind the source.", p.Name, clockText(p.Gap)))
		default:
			r.text.Importance = widget.WarningImportance
			r.text.SetText(fmt.Sprintf("Shard %s is %s again: the cutover can finish once it has copied its data and caught up.", p.Name, phaseText(p.Phase)))
		}
	}
}

// setBusy disables the Restart buttons while an action runs.
func (c *cutoverShards) setBusy(b bool) {
	for _, r := range c.rows {
		if r.restart == nil {
			continue
		}
		if b {
			r.restart.Disable()
		} else {
			r.restart.Enable()
		}
	}
}

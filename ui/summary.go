package ui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/internal/units"
)

// summaryScreen is step 6: what happened (done, cancelled or expired), the users and
// roles to re-create, and Export diagnostics.
type summaryScreen struct {
	a      *App
	at     *attachment
	banner *banner
	title  *widget.Label
	facts  *fyne.Container
	users  *usersPanel
	cancel *widget.Button
	export *widget.Button
	hist   *historyPanel
	shown  engine.State
	obj    fyne.CanvasObject
}

func newSummaryScreen(a *App, at *attachment) *summaryScreen {
	s := &summaryScreen{a: a, at: at, banner: newBanner(), facts: container.NewVBox()}
	s.title = heading("")
	s.users = newUsersPanel(a, s.banner)
	s.cancel = widget.NewButtonWithIcon("Cancel migration", theme.CancelIcon(), s.confirmCancel)
	s.cancel.Importance = widget.DangerImportance
	s.cancel.Hide()
	s.export = widget.NewButtonWithIcon("Export diagnostics…", theme.DocumentSaveIcon(), func() { a.exportDiagnostics(at.id, s.banner) })
	s.export.Importance = widget.HighImportance
	back := widget.NewButtonWithIcon("Back to migrations", theme.NavigateBackIcon(), a.showStart)
	s.hist = newHistoryPanel()

	usersHead := widget.NewLabelWithStyle("Users and roles to re-create", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	usersNote := wrapped("Shardlift does not migrate users, roles or their passwords. Re-create these on the destination before your applications connect to it.")
	body := container.NewVBox(s.facts, widget.NewSeparator(), usersHead, usersNote, s.users.view(),
		widget.NewSeparator(), s.hist.view())
	top := container.NewVBox(s.title, s.banner)
	footer := container.NewVBox(widget.NewSeparator(), container.NewHBox(back, layout.NewSpacer(), s.cancel, s.export))
	s.obj = container.NewBorder(top, footer, nil, nil, container.NewVScroll(container.NewPadded(body)))
	return s
}

func (s *summaryScreen) step() step              { return stepSummary }
func (s *summaryScreen) view() fyne.CanvasObject { return s.obj }
func (s *summaryScreen) bannerArea() *banner     { return s.banner }

func (s *summaryScreen) handles(st engine.State) bool {
	return st == engine.Done || st == engine.Cancelled || st == engine.Expired
}

// finishedAt is when the migration reached its final state, from its history.
func finishedAt(snap engine.Snapshot, now time.Time) time.Time {
	for i := len(snap.History) - 1; i >= 0; i-- {
		e := snap.History[i]
		if e.Shard == "" && e.To == string(snap.State) {
			return e.At
		}
	}
	return now
}

func (s *summaryScreen) show(snap engine.Snapshot, now time.Time) {
	s.hist.show(snap.History)
	if snap.State == s.shown {
		return // a finished migration does not change: build the facts once
	}
	s.shown = snap.State
	took := durationText(finishedAt(snap, now).Sub(snap.StartedAt))
	o := snap.Overall
	copied := fmt.Sprintf("Copied %s documents (%s) from %d shard%s.", countText(o.DocsCopied), units.Bytes(o.BytesCopied), len(snap.Shards), plural(len(snap.Shards)))
	s.facts.RemoveAll()
	add := func(text string, imp widget.Importance) {
		l := wrapped(text)
		l.Importance = imp
		s.facts.Add(l)
	}
	restored, problem := restoreFacts(snap)
	switch snap.State {
	case engine.Done:
		s.title.SetText("Migration complete")
		add(fmt.Sprintf("%s was migrated in %s.", snap.Name, took), widget.MediumImportance)
		add(copied, widget.MediumImportance)
		s.addVerification(snap.Verification, add)
		for _, r := range restored {
			add(r, widget.MediumImportance)
		}
		add("The destination is ready: your applications can write to it. Writes sent to the source after I'm done were not migrated.", widget.MediumImportance)
		s.cancel.Hide()
	case engine.Cancelled:
		s.title.SetText("Migration cancelled")
		if consistentCopy(snap.Summary) {
			add(fmt.Sprintf("%s was cancelled after %s, with the destination %s behind the source (optime gap at cancel).", snap.Name, took, clockText(snap.OptimeGap)), widget.MediumImportance)
		} else {
			add(fmt.Sprintf("%s was cancelled after %s. The destination is not a consistent staging copy, shard by shard:", snap.Name, took), widget.DangerImportance)
		}
		addPositions(snap.Summary, add)
		add(copied, widget.MediumImportance)
		for _, r := range restored {
			add(r, widget.MediumImportance)
		}
		if problem != "" {
			add("Still to do: "+problem, widget.DangerImportance)
		}
		add("The data migrated so far stays on the destination. Use it as a staging copy to test your applications; to migrate for real, start a new migration: it wipes the destination first.", widget.MediumImportance)
		if snap.Verification != nil {
			s.addVerification(snap.Verification, add)
		}
		s.cancel.Hide()
	case engine.Expired:
		s.title.SetText("Cutover window expired")
		add(fmt.Sprintf("The cutover window closed on %s and syncing stopped, with the destination %s behind the source.", snap.TimerDeadline.Local().Format("Mon 2 Jan 15:04"), clockText(snap.OptimeGap)), widget.WarningImportance)
		addPositions(snap.Summary, add)
		add(copied, widget.MediumImportance)
		for _, r := range restored {
			add(r, widget.MediumImportance)
		}
		if problem != "" {
			add("Still to do: "+problem+". Cancel the migration to try again.", widget.DangerImportance)
			s.cancel.Show()
		} else {
			s.cancel.Hide()
		}
		add("The data migrated so far stays on the destination. To sync again, start a new migration: it wipes the destination first.", widget.MediumImportance)
	}

	s.users.show(snap.SourceUsers)
}

// addPositions says where each shard stopped (a cancel, an expiry): a staging copy
// is only as consistent as its least consistent shard.
func addPositions(sum *engine.Summary, add func(string, widget.Importance)) {
	if sum == nil {
		return
	}
	for _, p := range sum.Shards {
		imp := widget.MediumImportance
		if !p.Consistent {
			imp = widget.DangerImportance
		}
		add("•  "+capitalized(p.Text)+".", imp)
	}
}

// consistentCopy reports whether every shard's copy is consistent (true too when
// the positions are not known).
func consistentCopy(sum *engine.Summary) bool {
	return sum == nil || !slices.ContainsFunc(sum.Shards, func(p engine.ShardPosition) bool { return !p.Consistent })
}

func (s *summaryScreen) addVerification(v *engine.Verification, add func(string, widget.Importance)) {
	switch {
	case v == nil:
		add("Not verified.", widget.WarningImportance)
	case v.OK():
		add(fmt.Sprintf("Verified: %d namespaces, %d ranges, %s documents: every range matches.", v.Namespaces, v.Ranges, countText(v.Documents)), widget.SuccessImportance)
	default:
		t := fmt.Sprintf("Verification: %s.", v.Differences())
		if v.Overridden {
			t = fmt.Sprintf("Finished with an override: %s (listed in the diagnostics export).", v.Differences())
		}
		add(t, widget.DangerImportance)
	}
}

func (s *summaryScreen) confirmCancel() {
	body := wrapped("Shardlift connects to both clusters again and retries what was not restored when the window closed: the source balancer as it was before the migration, the destination balancer and the index options relaxed for the sync. The data migrated so far stays. Syncing does not start again: start a new migration for that.")
	s.a.confirm("Cancel the expired migration?", body, "Not now", "Cancel migration", widget.DangerImportance, func() {
		s.cancel.Disable()
		s.banner.show(levelInfo, "Cancelling: restoring the balancers and the relaxed index options…")
		s.a.background(func() func() {
			err := s.at.m.Cancel(s.a.ctx)
			return func() {
				s.cancel.Enable()
				if err != nil {
					s.banner.show(levelError, err.Error())
					return
				}
				s.banner.clear()
				s.a.refreshSoon()
			}
		})
	})
}

// restoreFacts reads from the history what the engine put back when the migration
// ended (the source balancer as it found it, the destination balancer, the relaxed
// index options), and what it could not put back, from the final state's reason:
// after "; but " when cancelled, after the data note when expired.
func restoreFacts(snap engine.Snapshot) (restored []string, problem string) {
	for _, e := range snap.History {
		if e.Shard != "" || e.From != e.To {
			continue
		}
		r := e.Reason
		if strings.HasPrefix(r, "source balancer ") || strings.HasPrefix(r, "destination balancer ") || strings.HasPrefix(r, "restored ") {
			// A finalize that stopped and ran again put the same back again.
			if fact := strings.ToUpper(r[:1]) + r[1:] + "."; !slices.Contains(restored, fact) {
				restored = append(restored, fact)
			}
		}
	}
	switch snap.State {
	case engine.Cancelled:
		if _, p, ok := strings.Cut(snap.Reason, "; but "); ok {
			problem = p
		}
	case engine.Expired:
		if _, p, ok := strings.Cut(snap.Reason, "the migrated data stays on the destination; "); ok {
			problem = strings.TrimSuffix(p, " (cancel the migration to try again)")
		}
	}
	return restored, problem
}

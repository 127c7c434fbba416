package ui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

// validationHints are Atlas's "if validation fails, check that" list, for a workstation.
var validationHints = []string{
	"This workstation can reach every host: the source mongos, config servers and every shard member, and the destination mongos (firewalls, VPN, DNS).",
	"The source user exists with the same password on every shard and on the config server replica set, with readWriteAnyDatabase and clusterAdmin on admin.",
	"TLS is on only if the cluster requires it.",
	"The CA certificate, if any, is the one that signed the cluster's certificates.",
	"The host names resolve from this workstation to the addresses the cluster members advertise.",
}

// connectScreen is step 2: the two forms, Validate and Start migration.
type connectScreen struct {
	a      *App
	f      *connectForms
	banner *banner
	where  *widget.Label // the workstation's addresses, for the firewalls

	validate, stopValidate, start, back *widget.Button
	activity                            *widget.Activity
	status                              *widget.Label
	startHint                           *widget.Label
	summary                             *widget.Label
	results                             *fyne.Container
	hints                               fyne.CanvasObject
	scroll                              *container.Scroll
	validateRow                         fyne.CanvasObject

	cancelValidate context.CancelFunc // set while Validate runs
	starting       bool
	// bannerFixed, while the banner shows an error about the forms, reports whether
	// what it is about has been dealt with; the banner then goes.
	bannerFixed func() bool
	obj         fyne.CanvasObject
}

func newConnectScreen(a *App) *connectScreen {
	s := &connectScreen{a: a, f: a.forms, banner: newBanner()}
	s.f.changed = s.formsChanged
	s.f.submit = s.runValidate

	s.where = wrapped("Shardlift connects to both clusters from this workstation: allow it through the firewalls of the source mongos, config servers and every shard member, and of the destination mongos.")
	s.validate = widget.NewButtonWithIcon("Validate", theme.ConfirmIcon(), s.runValidate)
	s.stopValidate = widget.NewButton("Stop", s.stop)
	s.stopValidate.Hide()
	s.activity = widget.NewActivity()
	s.activity.Hide()
	s.status = widget.NewLabel("")
	s.summary = wrapped("")
	s.summary.TextStyle.Bold = true
	s.summary.Hide()
	s.results = container.NewVBox()
	hintBox := container.NewVBox(widget.NewLabelWithStyle("If a check failed, check that:", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
	for _, h := range validationHints {
		hintBox.Add(wrapped("•  " + h))
	}
	s.hints = hintBox
	s.hints.Hide()

	s.back = widget.NewButtonWithIcon("Back", theme.NavigateBackIcon(), a.showPrepare)
	s.start = widget.NewButtonWithIcon("Start migration", theme.MediaPlayIcon(), s.startTapped)
	s.start.Importance = widget.HighImportance
	s.startHint = widget.NewLabel("")
	s.startHint.TextStyle.Italic = true

	forms := container.NewGridWithColumns(2, a.forms.src.view(), a.forms.dst.view())
	s.validateRow = container.NewHBox(s.validate, s.stopValidate, s.activity, s.status)
	body := container.NewVBox(forms, a.forms.hosts.view(), a.forms.reads.view(), widget.NewSeparator(), s.validateRow, s.summary, s.results, s.hints)
	top := container.NewVBox(heading("Connect the clusters"), s.where, s.banner)
	footer := container.NewVBox(widget.NewSeparator(), container.NewHBox(s.back, layout.NewSpacer(), s.startHint, s.start))
	s.scroll = container.NewVScroll(container.NewPadded(body))
	s.obj = container.NewBorder(top, footer, nil, nil, s.scroll)

	if a.forms.validated() {
		s.showResults(*a.forms.val)
	}
	s.updateButtons()
	s.findAddresses()
	return s
}

func (s *connectScreen) step() step              { return stepConnect }
func (s *connectScreen) view() fyne.CanvasObject { return s.obj }

// findAddresses names this workstation's addresses in the firewall advice, as Atlas
// shows the IP of its migration servers.
func (s *connectScreen) findAddresses() {
	s.a.background(func() func() {
		addrs := s.a.addrs()
		return func() {
			if len(addrs) == 0 {
				return
			}
			s.where.SetText(fmt.Sprintf("Shardlift connects to both clusters from this workstation (%s): allow it through the firewalls of the source mongos, config servers and every shard member, and of the destination mongos.",
				strings.Join(addrs, ", ")))
		}
	})
}

// localAddrs lists this machine's non-loopback IP addresses.
func localAddrs() []string {
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range ifs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, n.IP.String())
	}
	return out
}

// formsChanged runs after every edit: an old validation no longer counts, and an
// error about a field goes once that field is edited.
func (s *connectScreen) formsChanged() {
	if s.bannerFixed != nil && s.bannerFixed() {
		s.clearBanner()
	}
	if s.f.val != nil && !s.f.validated() && s.cancelValidate == nil {
		s.summary.SetText("The connection details changed: validate again.")
		s.summary.Importance = widget.WarningImportance
		s.summary.Show()
		s.results.RemoveAll()
		s.hints.Hide()
	}
	s.updateButtons()
}

func (s *connectScreen) updateButtons() {
	busy := s.cancelValidate != nil || s.starting
	if busy || !s.f.ready() {
		s.validate.Disable()
	} else {
		s.validate.Enable()
	}
	hint := ""
	switch {
	case busy:
	case !s.f.ready():
		hint = "Fill in both clusters' mongos hosts"
	case !s.f.validated():
		hint = "Validate first"
	case blockingChecks(s.f.val.Checks) > 0:
		hint = "Fix the failed checks and validate again"
	}
	s.startHint.SetText(hint)
	if busy || hint != "" {
		s.start.Disable()
	} else {
		s.start.Enable()
	}
	if s.starting {
		s.back.Disable()
	} else {
		s.back.Enable()
	}
}

// blockingChecks counts the checks that keep the migration from starting: those that
// failed and those that could not run.
func blockingChecks(cs []Check) int {
	n := 0
	for _, c := range cs {
		if c.Status == Failed || c.Status == NotRun {
			n++
		}
	}
	return n
}

// runValidate runs every check off the event goroutine; Stop cancels it.
func (s *connectScreen) runValidate() {
	if s.cancelValidate != nil || s.starting {
		return
	}
	s.f.takeURIPasswords()
	if s.f.src.reading || s.f.dst.reading {
		s.showBanner(levelInfo, "A CA file is still being read: validate once its field shows the certificate.", nil)
		return
	}
	if !s.f.ready() {
		s.showBanner(levelError, "Fill in the mongos hosts of both clusters, and fix what is marked in red, before validating.", s.f.ready)
		return
	}
	s.clearBanner()
	ctx, cancel := context.WithCancel(s.a.ctx)
	s.cancelValidate = cancel
	gen := s.f.gen
	src, dst := s.f.src.connection(), s.f.dst.connection()
	s.results.RemoveAll()
	s.summary.Hide()
	s.hints.Hide()
	s.activity.Show()
	s.activity.Start()
	s.stopValidate.Show()
	s.status.SetText("Connecting to both clusters and running every check…")
	s.updateButtons()
	s.a.background(func() func() {
		v, err := s.a.b.Validate(ctx, src, dst)
		return func() {
			stopped := ctx.Err() != nil
			cancel()
			s.finishValidate(gen, v, err, stopped)
		}
	})
}

func (s *connectScreen) stop() {
	if s.cancelValidate != nil {
		s.cancelValidate()
	}
}

func (s *connectScreen) finishValidate(gen int, v Validation, err error, stopped bool) {
	s.cancelValidate = nil
	s.activity.Stop()
	s.activity.Hide()
	s.stopValidate.Hide()
	s.status.SetText("")
	switch {
	case stopped:
		s.status.SetText("Validation stopped.")
	case err != nil:
		s.showFieldError("The checks could not run", err)
	case gen != s.f.gen:
		s.summary.SetText("The connection details changed while validating: validate again.")
		s.summary.Importance = widget.WarningImportance
		s.summary.Show()
	default:
		s.f.val, s.f.valGen = &v, gen
		s.showResults(v)
		// Bring the results into view: they start below the forms.
		s.scroll.ScrollToOffset(fyne.NewPos(0, s.validateRow.Position().Y))
	}
	s.updateButtons()
}

// showBanner shows a message on top of the screen; fixed, when not nil, says when
// the forms no longer have what it is about.
func (s *connectScreen) showBanner(l level, text string, fixed func() bool) {
	s.banner.show(l, text)
	s.bannerFixed = fixed
}

func (s *connectScreen) clearBanner() {
	s.banner.clear()
	s.bannerFixed = nil
}

// showFieldError shows why an action failed; a FieldError also goes under its
// field, which gets the focus, and the banner goes once that field is edited.
func (s *connectScreen) showFieldError(prefix string, err error) {
	var fe *FieldError
	if !errors.As(err, &fe) {
		s.showBanner(levelError, errorText(prefix, err), nil)
		return
	}
	if fe.Field == FieldHostMap {
		s.f.hosts.setProblem(fe.Err.Error())
		s.f.hosts.focus()
		problem := s.f.hosts.problem
		s.showBanner(levelError, errorText(prefix, err), func() bool { return !problem.Visible() })
		return
	}
	if fe.Field == FieldShardReadPreferences {
		s.f.reads.setProblem(fe.Err.Error())
		s.f.reads.focus()
		problem := s.f.reads.problem
		s.showBanner(levelError, errorText(prefix, err), func() bool { return !problem.Visible() })
		return
	}
	f := s.f.side(fe.Side)
	note := f.notes[fe.Field]
	f.setNote(fe.Field, levelError, fe.Err.Error())
	f.focus(fe.Field)
	shown := note.Text
	s.showBanner(levelError, errorText(prefix, err), func() bool { return !note.Visible() || note.Text != shown })
}

func (s *connectScreen) showResults(v Validation) {
	s.f.hosts.show(v.ShardHosts)
	s.f.reads.show(v.ShardHosts)
	s.results.RemoveAll()
	var passed, warned, failed, notRun int
	for _, c := range v.Checks {
		switch c.Status {
		case Passed:
			passed++
		case Warning:
			warned++
		case Failed:
			failed++
		case NotRun:
			notRun++
		}
		s.results.Add(checkRow(c))
	}
	if h := v.HeldBy; h != nil {
		clear := widget.NewButton("Clear the marker…", func() { s.confirmClearMarker(*h) })
		clear.Importance = widget.DangerImportance
		s.results.Add(container.NewHBox(clear))
	}
	switch {
	case failed > 0 || notRun > 0:
		counts := fmt.Sprintf("%d passed, %d with a warning, %d failed", passed, warned, failed)
		if notRun > 0 {
			counts += fmt.Sprintf(", %d not run", notRun)
		}
		s.summary.SetText(counts + ": fix what failed, then validate again.")
		s.summary.Importance = widget.DangerImportance
		s.hints.Show()
	case warned > 0:
		s.summary.SetText(fmt.Sprintf("%d passed, %d with a warning: read the warnings, then start the migration.", passed, warned))
		s.summary.Importance = widget.WarningImportance
		s.hints.Hide()
	default:
		s.summary.SetText(fmt.Sprintf("All %d checks passed.", passed))
		s.summary.Importance = widget.SuccessImportance
		s.hints.Hide()
	}
	s.summary.Show()
}

// checkRow is one check: status icon, what was found, the evidence and the fix.
func checkRow(c Check) fyne.CanvasObject {
	title := wrapped(c.Title)
	title.TextStyle.Bold = true
	lines := tight(title)
	if c.Detail != "" {
		lines.Add(wrapped(c.Detail))
	}
	if c.Fix != "" && c.Status != Passed {
		fix := wrapped("Fix: " + c.Fix)
		if c.Status == Failed {
			fix.Importance = widget.DangerImportance
		} else {
			fix.Importance = widget.WarningImportance
		}
		lines.Add(fix)
	}
	icon := widget.NewIcon(statusIcon(c.Status))
	return container.NewBorder(nil, nil, container.NewVBox(icon), nil, lines)
}

// confirmClearMarker asks before clearing another migration's marker: the DBA
// types the destination's clusterId, as the command line's --confirm takes it.
func (s *connectScreen) confirmClearMarker(h Hold) {
	var c *confirmDialog
	id := newEscEntry(s.a.escape)
	id.SetPlaceHolder(h.ClusterID)
	id.OnChanged = func(typed string) {
		if strings.TrimSpace(typed) == h.ClusterID {
			c.ok.Enable()
		} else {
			c.ok.Disable()
		}
	}
	body := container.NewVBox(
		wrapped("The destination (cluster "+h.ClusterID+") is held by "+h.Marker+"."),
		wrapped("Clear the marker only if that migration is dead: its Shardlift no longer runs on "+h.Workstation+" and its state file will not be resumed. Otherwise a second migration would overwrite what it migrated."),
		wrapped("Type the destination's clusterId to confirm:"),
		id,
	)
	dst := s.f.dst.connection()
	c = s.a.confirm("Clear the marker?", body, "Don't clear", "Clear the marker", widget.DangerImportance, func() {
		s.status.SetText("Clearing the marker…")
		s.a.background(func() func() {
			err := s.a.b.ClearMarker(s.a.ctx, dst, h.ClusterID, h.MigrationID)
			return func() {
				s.status.SetText("")
				if err != nil {
					s.showBanner(levelError, errorText("The marker was not cleared", err), nil)
					return
				}
				s.showBanner(levelInfo, "The marker of migration "+h.MigrationID+" is cleared: validating again.", nil)
				s.runValidate()
			}
		})
	})
	c.ok.Disable()
	s.a.win.Canvas().Focus(id)
}

// startTapped asks before wiping a destination that holds data.
func (s *connectScreen) startTapped() {
	s.f.takeURIPasswords()
	if !s.f.validated() {
		return
	}
	v := s.f.val
	if !v.DestinationHasData {
		s.startMigration(false)
		return
	}
	dst := s.f.dst.connection().Hosts
	contents := v.DestinationContents
	if contents == "" {
		contents = "databases from an earlier run or another application"
	}
	var c *confirmDialog
	check := newEscCheck(fmt.Sprintf("Wipe every database on %s", dst), func(on bool) {
		if on {
			c.ok.Enable()
		} else {
			c.ok.Disable()
		}
	}, s.a.escape)
	body := container.NewVBox(wrapped("The destination cluster is not empty. It holds " + contents + "."))
	if len(v.WipeDatabases) > 0 {
		body.Add(wrapped("Starting the migration drops these databases on the destination before copying the source. This cannot be undone."))
		body.Add(databaseList(v.WipeDatabases))
	} else {
		body.Add(wrapped("Starting the migration drops every database on the destination, except admin, config and local, before copying the source. This cannot be undone."))
	}
	body.Add(check)
	c = s.a.confirm("Wipe the destination?", body, "Don't start", "Wipe and start migration", widget.DangerImportance, func() {
		s.startMigration(true)
	})
	c.ok.Disable()
}

// databaseList lists databases one per line, scrolling past a screenful.
func databaseList(dbs []string) fyne.CanvasObject {
	const shown = 8
	list := wrapped("• " + strings.Join(dbs, "\n• "))
	if len(dbs) <= shown {
		return list
	}
	scroll := container.NewVScroll(list)
	scroll.SetMinSize(fyne.NewSize(0, shown*(theme.TextSize()+theme.InnerPadding())))
	return scroll
}

// startMigration calls Start off the event goroutine and opens the migration's
// screens once it runs.
func (s *connectScreen) startMigration(wipe bool) {
	s.starting = true
	s.clearBanner()
	s.activity.Show()
	s.activity.Start()
	s.status.SetText("Starting: saving the passwords, stopping the source balancer, preparing the destination…")
	s.updateButtons()
	src, dst := s.f.src.connection(), s.f.dst.connection()
	s.a.background(func() func() {
		m, err := s.a.b.Start(s.a.ctx, src, dst, wipe)
		var first engine.Snapshot
		if m != nil {
			first = m.Snapshot()
		}
		return func() {
			s.starting = false
			s.activity.Stop()
			s.activity.Hide()
			s.status.SetText("")
			if m == nil {
				s.updateButtons()
				s.showFieldError("The migration did not start", err)
				return
			}
			notice := ""
			if err != nil {
				notice = "The migration runs, but its passwords were not saved: " + err.Error()
				if !errors.Is(err, ErrKeyringUnavailable) {
					notice = err.Error()
				}
			}
			s.a.forms.reset()
			s.a.attach(m, first, notice)
		}
	})
}

package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

// startScreen lists the migrations recorded on this workstation and starts new ones.
type startScreen struct {
	a       *App
	banner  *banner
	list    *fyne.Container
	loading *widget.Label
	newMig  *widget.Button
	sandbox *widget.Button
	obj     fyne.CanvasObject
}

func newStartScreen(a *App) *startScreen {
	s := &startScreen{a: a, banner: newBanner(), list: container.NewVBox()}
	s.loading = widget.NewLabel("Reading the migrations recorded on this workstation…")
	s.newMig = widget.NewButtonWithIcon("New migration", theme.ContentAddIcon(), func() {
		a.forms.reset()
		a.showPrepare()
	})
	s.newMig.Importance = widget.HighImportance
	s.sandbox = widget.NewButtonWithIcon("Try with sandbox clusters", theme.ComputerIcon(), s.startSandbox)
	refresh := widget.NewButtonWithIcon("", theme.ViewRefreshIcon(), s.reload)
	refresh.Importance = widget.LowImportance

	intro := wrapped("Shardlift live-migrates a MongoDB sharded cluster into another sharded cluster, keeps the destination in sync while your applications keep writing to the source, and walks you through the cutover. " +
		"No cluster at hand? Try the whole flow with sandbox clusters: two small local clusters with sample data and a live write load.")
	top := container.NewVBox(container.NewBorder(nil, nil, nil, refresh, heading("Migrations")), intro, s.banner)
	footer := container.NewVBox(widget.NewSeparator(), container.NewHBox(s.newMig, s.sandbox, layout.NewSpacer()))
	s.obj = container.NewBorder(top, footer, nil, nil, container.NewVScroll(container.NewVBox(s.loading, s.list)))
	return s
}

func (s *startScreen) step() step              { return stepStart }
func (s *startScreen) view() fyne.CanvasObject { return s.obj }

// reload reads the list off the event goroutine.
func (s *startScreen) reload() {
	s.loading.Show()
	s.a.background(func() func() {
		ms, err := s.a.b.Migrations(s.a.ctx)
		return func() {
			s.loading.Hide()
			if err != nil {
				s.banner.show(levelError, fmt.Sprintf("Cannot read the migrations recorded on this workstation: %v", err))
				return
			}
			s.show(ms)
		}
	})
}

func (s *startScreen) show(ms []MigrationInfo) {
	s.list.RemoveAll()
	if len(ms) == 0 {
		empty := wrapped("No migrations yet. Start a new one, or try the flow with sandbox clusters first.")
		empty.TextStyle.Italic = true
		s.list.Add(empty)
		return
	}
	for _, m := range ms {
		s.list.Add(s.row(m))
		s.list.Add(widget.NewSeparator())
	}
}

// row is one migration: name, state and numbers, and what can be done with it.
func (s *startScreen) row(m MigrationInfo) fyne.CanvasObject {
	name := widget.NewLabelWithStyle(m.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	name.Wrapping = fyne.TextWrapWord
	facts := []string{stateText(m.State)}
	if m.Shards > 0 {
		facts = append(facts, fmt.Sprintf("%d shard%s", m.Shards, plural(m.Shards)))
	}
	switch {
	case !m.LagKnown:
	case m.State == engine.Cancelled:
		facts = append(facts, "optime gap at cancel "+clockText(m.Lag))
	case running(m.State):
		facts = append(facts, "lag "+clockText(m.Lag))
	}
	if !m.Updated.IsZero() {
		facts = append(facts, "updated "+m.Updated.Local().Format("2006-01-02 15:04"))
	}
	info := tight(name, widget.NewLabel(strings.Join(facts, "  ·  ")))
	if m.Reason != "" {
		r := wrapped(m.Reason)
		r.Importance = widget.WarningImportance
		if m.State == engine.Failed {
			r.Importance = widget.DangerImportance
		}
		info.Add(r)
	}

	openText := "Open"
	if m.State == engine.Done || m.State == engine.Cancelled {
		openText = "Summary"
	} else if running(m.State) || m.State == engine.Failed {
		openText = "Resume"
	}
	open := widget.NewButton(openText, func() { s.open(m, nil) })
	buttons := container.NewHBox(open)
	if !running(m.State) {
		remove := widget.NewButtonWithIcon("Remove", theme.DeleteIcon(), func() { s.confirmRemove(m) })
		remove.Importance = widget.LowImportance
		buttons.Add(remove)
	}
	return container.NewBorder(nil, nil, nil, container.NewVBox(buttons), info)
}

// open attaches to a migration; when its passwords are not in the keyring it asks for
// them and tries again.
func (s *startScreen) open(m MigrationInfo, pw *Passwords) {
	s.banner.show(levelInfo, fmt.Sprintf("Opening %s…", m.Name))
	s.a.background(func() func() {
		mig, err := s.a.b.Open(s.a.ctx, m.ID, pw)
		var first engine.Snapshot
		if err == nil {
			first = mig.Snapshot()
		}
		return func() {
			if s.a.cur != screen(s) {
				return // the user went elsewhere meanwhile; the list opens it again
			}
			switch {
			case err == nil:
				s.banner.clear()
				s.a.attach(mig, first, "")
			case errors.Is(err, ErrPasswordsNeeded):
				s.banner.clear()
				s.askPasswords(m, err)
			default:
				s.banner.show(levelError, errorText(fmt.Sprintf("Cannot open %s", m.Name), err))
			}
		}
	})
}

// askPasswords asks for the passwords the keyring could not give: both clusters'
// users', and the client certificate keys' a PasswordsError names.
func (s *startScreen) askPasswords(m MigrationInfo, why error) {
	var d *dialog.CustomDialog
	src := newEscPasswordEntry(s.a.escape)
	dst := newEscPasswordEntry(s.a.escape)
	srcKey := newEscPasswordEntry(s.a.escape)
	dstKey := newEscPasswordEntry(s.a.escape)
	users, keys := true, map[Side]bool{}
	var perr *PasswordsError
	if errors.As(why, &perr) {
		users = perr.Users
		for _, k := range perr.Keys {
			keys[k] = true
		}
	}
	problem := wrapped("")
	problem.Importance = widget.DangerImportance
	problem.Hide()
	var resume *widget.Button
	submit := func() {
		resume.Disable()
		problem.Hide()
		pw := &Passwords{Source: src.Text, Destination: dst.Text, SourceKey: srcKey.Text, DestinationKey: dstKey.Text}
		s.a.background(func() func() {
			mig, err := s.a.b.Open(s.a.ctx, m.ID, pw)
			var first engine.Snapshot
			if err == nil {
				first = mig.Snapshot()
			}
			return func() {
				resume.Enable()
				if err != nil {
					problem.SetText(errorText("Not resumed", err))
					problem.Show()
					return
				}
				d.Hide()
				s.a.attach(mig, first, "")
			}
		})
	}
	form := container.New(layout.NewFormLayout())
	var first fyne.Focusable
	row := func(label string, e *escEntry) {
		e.OnSubmitted = func(string) { submit() }
		form.Add(widget.NewLabel(label))
		form.Add(e)
		if first == nil {
			first = e
		}
	}
	explain := wrapped("")
	if users {
		row("Source password", src)
		row("Destination password", dst)
		explain.SetText("Type the passwords of the source and destination users again. Leave a field empty when that cluster does not enforce authentication.")
	}
	if keys[Source] {
		row("Source key password", srcKey)
	}
	if keys[Destination] {
		row("Destination key password", dstKey)
	}
	if len(keys) > 0 {
		explain.SetText(strings.TrimSpace(explain.Text + " Type the password of each encrypted client certificate key named below."))
	}
	body := container.NewVBox(wrapped(fmt.Sprintf("%s: %v.", m.Name, why)), explain, form, problem)
	cancel := widget.NewButton("Cancel", func() { d.Hide() })
	resume = widget.NewButton("Resume", submit)
	resume.Importance = widget.HighImportance
	d = dialog.NewCustomWithoutButtons("Passwords needed", fixedWidth(dialogWidth, body), s.a.win)
	d.SetButtons([]fyne.CanvasObject{cancel, resume})
	s.a.showDialog(d)
	s.a.win.Canvas().Focus(first)
}

func (s *startScreen) confirmRemove(m MigrationInfo) {
	body := wrapped(fmt.Sprintf("Remove %s from this workstation? Its history, checkpoints and saved passwords are deleted. Nothing changes on the source or destination clusters.", m.Name))
	s.a.confirm("Remove migration?", body, "Keep", "Remove", widget.DangerImportance, func() {
		s.a.background(func() func() {
			err := s.a.b.Remove(s.a.ctx, m.ID)
			return func() {
				if err != nil {
					s.banner.show(levelError, errorText(fmt.Sprintf("%s was not removed", m.Name), err))
					return
				}
				s.banner.show(levelInfo, fmt.Sprintf("%s removed.", m.Name))
				s.reload()
			}
		})
	})
}

// startSandbox starts the sandbox clusters, fills the forms with them and goes to the
// Connections screen. The wait can be cancelled.
func (s *startScreen) startSandbox() {
	ctx, cancel := context.WithCancel(s.a.ctx)
	act := widget.NewActivity()
	act.Start()
	body := container.NewVBox(
		container.NewHBox(act, widget.NewLabel("Starting two local sharded clusters…")),
		wrapped("Shardlift seeds the source with sample data and starts a live write load, then fills in the connection forms. Nothing leaves this workstation."))
	d := dialog.NewCustomWithoutButtons("Sandbox clusters", fixedWidth(dialogWidth, body), s.a.win)
	d.SetButtons([]fyne.CanvasObject{widget.NewButton("Cancel", d.Hide)})
	d.SetOnClosed(cancel)
	s.a.showDialog(d)
	s.sandbox.Disable()
	s.a.background(func() func() {
		src, dst, err := s.a.b.StartSandbox(ctx)
		return func() {
			cancelled := ctx.Err() != nil
			act.Stop()
			d.Hide()
			s.sandbox.Enable()
			switch {
			case cancelled:
			case err != nil:
				s.banner.show(levelError, errorText("The sandbox clusters did not start", err))
			default:
				s.a.forms.reset()
				s.a.forms.src.fill(src)
				s.a.forms.dst.fill(dst)
				s.a.showConnect("The sandbox clusters are running on this workstation and the forms hold their connections. Press Validate.")
			}
		}
	})
}

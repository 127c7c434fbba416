package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/assets"
	"github.com/shardlift/shardlift/engine"
)

// step is one entry of the step list.
type step int

const (
	stepStart step = iota
	stepPrepare
	stepConnect
	stepSync
	stepReady
	stepCutover
	stepSummary
)

var stepTitles = map[step]string{
	stepPrepare: "Before you start",
	stepConnect: "Connections",
	stepSync:    "Sync",
	stepReady:   "Ready for cutover",
	stepCutover: "Cutover",
	stepSummary: "Done",
}

// sidebar is the step list on the left: where the user is in the wizard.
type sidebar struct {
	a       *App
	home    *widget.Button
	icons   map[step]*widget.Icon
	labels  map[step]*widget.Label
	export  *widget.Button
	openLog *widget.Button
	obj     fyne.CanvasObject
}

func newSidebar(a *App) *sidebar {
	s := &sidebar{a: a, icons: map[step]*widget.Icon{}, labels: map[step]*widget.Label{}}
	logo := canvas.NewImageFromResource(assets.Icon)
	logo.FillMode = canvas.ImageFillContain
	logo.SetMinSize(fyne.NewSize(36, 36))
	name := widget.NewLabelWithStyle("Shardlift", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	name.SizeName = theme.SizeNameSubHeadingText

	s.home = widget.NewButtonWithIcon("Migrations", theme.ListIcon(), a.showStart)
	s.home.Alignment = widget.ButtonAlignLeading

	steps := container.NewVBox()
	for st := stepPrepare; st <= stepSummary; st++ {
		icon := widget.NewIcon(nil)
		label := widget.NewLabel(fmt.Sprintf("%d  %s", st-stepPrepare+1, stepTitles[st]))
		s.icons[st], s.labels[st] = icon, label
		steps.Add(container.NewBorder(nil, nil, icon, nil, label))
	}

	s.export = widget.NewButtonWithIcon("Export diagnostics…", theme.DocumentSaveIcon(), func() {
		if at := a.att.Load(); at != nil {
			if lv, ok := a.cur.(live); ok {
				a.exportDiagnostics(at.id, lv.bannerArea())
			}
		}
	})
	s.export.Importance = widget.LowImportance
	s.export.Hide()
	s.openLog = widget.NewButtonWithIcon("Open log", theme.FileTextIcon(), func() {
		if at := a.att.Load(); at != nil {
			if lv, ok := a.cur.(live); ok {
				a.openLog(at.id, lv.bannerArea())
			}
		}
	})
	s.openLog.Importance = widget.LowImportance
	s.openLog.Hide()

	notifications := widget.NewButtonWithIcon("Notifications…", theme.SettingsIcon(), a.showNotificationSettings)
	notifications.Importance = widget.LowImportance

	top := container.NewVBox(container.NewHBox(logo, name), widget.NewSeparator(), s.home, widget.NewSeparator())
	list := container.NewBorder(top, container.NewVBox(s.openLog, s.export, notifications), nil, nil, container.NewVBox(steps, layout.NewSpacer()))
	s.obj = container.NewHBox(container.NewPadded(list), widget.NewSeparator())
	s.setStep(stepStart, "")
	return s
}

func (s *sidebar) view() fyne.CanvasObject { return s.obj }

// setStep marks cur as the current step; state names the last step once a migration
// ended ("Cancelled", "Expired").
func (s *sidebar) setStep(cur step, state engine.State) {
	if cur == stepStart {
		s.home.Importance = widget.HighImportance
	} else {
		s.home.Importance = widget.MediumImportance
	}
	s.home.Refresh()
	last := "Done"
	switch state {
	case engine.Cancelled:
		last = "Cancelled"
	case engine.Expired:
		last = "Expired"
	}
	for st := stepPrepare; st <= stepSummary; st++ {
		title := stepTitles[st]
		if st == stepSummary {
			title = last
		}
		l := s.labels[st]
		l.Text = fmt.Sprintf("%d  %s", st-stepPrepare+1, title)
		switch {
		case cur == stepStart || st > cur:
			s.icons[st].SetResource(nil)
			l.TextStyle.Bold = false
			l.Importance = widget.MediumImportance
		case st == cur:
			s.icons[st].SetResource(theme.NewPrimaryThemedResource(theme.NavigateNextIcon()))
			l.TextStyle.Bold = true
			l.Importance = widget.HighImportance
		default:
			s.icons[st].SetResource(theme.NewSuccessThemedResource(theme.ConfirmIcon()))
			l.TextStyle.Bold = false
			l.Importance = widget.MediumImportance
		}
		l.Refresh()
	}
	if s.a.att.Load() != nil {
		s.export.Show()
		s.openLog.Show()
	} else {
		s.export.Hide()
		s.openLog.Hide()
	}
}

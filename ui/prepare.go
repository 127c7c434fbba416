package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// prepareItem is one thing to have in place before migrating.
type prepareItem struct{ title, detail string }

// prepareItems is the walk-through of DESIGN section 1 and the Atlas page.
var prepareItems = []prepareItem{
	{"Network access",
		"This workstation can reach the source mongos, every config server and every shard member (host and port), and the destination mongos."},
	{"A migration user on the source",
		"A SCRAM user with readWriteAnyDatabase and clusterAdmin on the admin database, with the same name and password on every shard and on the config server replica set. It reads every database and the oplog, and stops the balancer."},
	{"A matching destination",
		"A sharded cluster with the same number of shards as the source, and the same major version and featureCompatibilityVersion (or, for a source on 4.4 or newer, a newer version: validation names anything that cannot cross). Its user needs readWriteAnyDatabase, dbAdminAnyDatabase and clusterAdmin on admin (on Atlas: Atlas admin). Anything on it will be wiped. Size it to keep up with the source's write load: it cannot be changed while the migration runs."},
	{"A stable source",
		"Config servers run as a replica set (CSRS). Shardlift stops the source balancer when the migration starts and puts it back as it was (on, if it was on) at the end, when you cancel, or when the cutover window closes. Until the cutover, do not remove members or change featureCompatibilityVersion."},
	{"A maintenance window for the cutover",
		"The cutover needs your applications stopped and every write to the source stopped until the destination catches up. Once in sync you have 72 hours, extendable, to start it."},
	{"Users and roles to re-create",
		"Shardlift does not migrate users or roles: at the end it lists the source's users and roles to re-create on the destination."},
}

// prepareScreen is step 1: what to prepare, each item ticked off by the user.
type prepareScreen struct {
	a      *App
	checks []*widget.Check
	ready  *widget.Button
	obj    fyne.CanvasObject
}

func newPrepareScreen(a *App) *prepareScreen {
	s := &prepareScreen{a: a}
	s.ready = widget.NewButtonWithIcon("I'm ready to migrate", theme.NavigateNextIcon(), func() { a.showConnect("") })
	s.ready.Importance = widget.HighImportance
	s.ready.IconPlacement = widget.ButtonIconTrailingText
	items := container.NewVBox()
	for _, it := range prepareItems {
		c := widget.NewCheck(it.title, func(bool) { s.update() })
		s.checks = append(s.checks, c)
		d := wrapped(it.detail)
		items.Add(tight(c, indent(d)))
	}
	staging := wrapped("Tip: rehearse first. Migrate into a staging cluster and cancel at the cutover step: the destination keeps the data migrated so far, for testing your applications with the destination's driver and version.")
	staging.TextStyle.Italic = true
	intro := wrapped("Prepare the following before you migrate, and tick each item off.")
	top := container.NewVBox(heading("Before you start"), intro)
	footer := container.NewVBox(widget.NewSeparator(), container.NewHBox(layout.NewSpacer(), s.ready))
	s.obj = container.NewBorder(top, footer, nil, nil, container.NewVScroll(container.NewVBox(items, widget.NewSeparator(), staging)))
	s.update()
	return s
}

func (s *prepareScreen) step() step              { return stepPrepare }
func (s *prepareScreen) view() fyne.CanvasObject { return s.obj }

// update enables I'm ready to migrate once every item is ticked.
func (s *prepareScreen) update() {
	for _, c := range s.checks {
		if !c.Checked {
			s.ready.Disable()
			return
		}
	}
	s.ready.Enable()
}

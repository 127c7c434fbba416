package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/internal/units"
)

// timerWarning is when the cutover countdown turns to the warning colour.
const timerWarning = 12 * time.Hour

// monitorScreen is steps 3 and 4: the sync's progress and, once every shard is in
// sync, the cutover timer and Start cutover above it.
type monitorScreen struct {
	a      *App
	at     *attachment
	banner *banner
	title  *widget.Label
	state  *widget.Label

	ready        *fyne.Container
	readyText    *widget.Label
	countdown    *widget.Label
	deadline     *widget.Label
	extend       *widget.Button
	startCutover *widget.Button
	behind       *widget.Label

	failed     *fyne.Container
	failedText *widget.Label
	retry      *widget.Button

	bar    *widget.ProgressBar
	counts *widget.Label
	rates  *widget.Label
	// verified is the continuous verification's progress (hidden before it runs).
	verified  *widget.Label
	remaining *widget.Label
	cancel    *widget.Button
	toggle    *widget.Button

	showShards bool
	shards     *shardTable
	lagChart   *lineChart
	rateChart  *lineChart
	chartAt    time.Time // the samples the charts draw; redrawn when a sample is added
	history    *historyPanel

	busy bool // an action runs: its buttons stay disabled
	// cutoverOK: the engine accepts Start cutover now (every shard in sync).
	cutoverOK bool
	obj       fyne.CanvasObject
}

func newMonitorScreen(a *App, at *attachment) *monitorScreen {
	s := &monitorScreen{a: a, at: at, banner: newBanner(), showShards: true}
	s.title = heading("")
	s.title.Wrapping = fyne.TextWrapWord
	s.state = widget.NewLabelWithStyle("", fyne.TextAlignTrailing, fyne.TextStyle{Bold: true})

	// Ready for cutover.
	s.readyText = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	s.readyText.Importance = widget.SuccessImportance
	s.countdown = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	s.countdown.SizeName = theme.SizeNameHeadingText
	s.deadline = widget.NewLabel("")
	s.extend = widget.NewButtonWithIcon("Extend time (+24 h)", theme.HistoryIcon(), s.extendTimer)
	s.extend.Importance = widget.LowImportance
	s.startCutover = widget.NewButtonWithIcon("Start cutover", theme.NavigateNextIcon(), s.doStartCutover)
	s.startCutover.Importance = widget.SuccessImportance // green, with the timer, as in Atlas
	s.behind = wrapped("")
	s.behind.Importance = widget.WarningImportance
	s.behind.Hide()
	timer := container.NewHBox(container.NewCenter(widget.NewLabel("Cut over within")), s.countdown, container.NewCenter(s.deadline))
	readyExplain := wrapped("When the cutover window closes, syncing stops: the destination keeps the data migrated so far and the source balancer is put back as it was. Plan the cutover in your maintenance window: Start cutover shows the steps, nothing is switched yet.")
	s.ready = container.NewVBox(s.readyText, timer,
		container.NewHBox(s.extend, layout.NewSpacer(), s.startCutover), s.behind, readyExplain, widget.NewSeparator())
	s.ready.Hide()

	// Failed.
	s.failedText = wrapped("")
	s.failedText.Importance = widget.DangerImportance
	s.retry = widget.NewButtonWithIcon("Retry", theme.ViewRefreshIcon(), s.doRetry)
	s.retry.Importance = widget.HighImportance
	s.failed = container.NewVBox(
		container.NewBorder(nil, nil, widget.NewIcon(theme.NewErrorThemedResource(theme.ErrorIcon())), container.NewVBox(s.retry), s.failedText),
		widget.NewSeparator())
	s.failed.Hide()

	// Overall progress.
	s.bar = widget.NewProgressBar()
	s.counts = widget.NewLabel("")
	s.rates = widget.NewLabel("")
	s.verified = widget.NewLabel("")
	s.verified.Wrapping = fyne.TextWrapWord // its line is wider than a 1024-pixel window
	s.verified.Hide()
	s.remaining = widget.NewLabelWithStyle("", fyne.TextAlignTrailing, fyne.TextStyle{Bold: true})
	s.cancel = widget.NewButtonWithIcon("Cancel migration", theme.CancelIcon(), s.confirmCancel)
	s.toggle = widget.NewButton("Hide progress per shard", s.toggleShards)
	s.toggle.Importance = widget.LowImportance
	overall := container.NewVBox(
		container.NewBorder(nil, nil, nil, s.remaining, s.counts),
		s.bar,
		container.NewBorder(nil, nil, nil, s.cancel, s.rates),
		s.verified,
	)

	s.shards = newShardTable(s.confirmRestart)
	s.lagChart = newLineChart("Lag per shard, last 10 min", func(v float64) string { return clockText(time.Duration(v * float64(time.Second))) })
	s.rateChart = newLineChart("Documents per second, last 10 min", func(v float64) string { return rateText(v) + "/s" })
	charts := container.NewGridWithColumns(2, s.lagChart, s.rateChart)
	s.history = newHistoryPanel()
	note := wrapped("Do not write to or change the destination while the migration runs; to scale it up, cancel, scale it and start a new migration. Until the cutover, avoid changing the source's configuration (removing members, changing featureCompatibilityVersion).")
	note.TextStyle.Italic = true

	top := container.NewVBox(container.NewBorder(nil, nil, nil, s.state, s.title), s.banner)
	body := container.NewVBox(s.ready, s.failed, overall,
		container.NewHBox(s.toggle), s.shards.view(), charts, s.history.view(), note)
	s.obj = container.NewBorder(top, nil, nil, nil, container.NewVScroll(container.NewPadded(body)))
	return s
}

func (s *monitorScreen) step() step {
	if readyForCutover(s.at.last) {
		return stepReady
	}
	return stepSync
}

// readyForCutover reports whether the migration is ready with every shard in sync:
// only then does a screen say "ready for cutover".
func readyForCutover(snap engine.Snapshot) bool {
	ok, _ := snap.CanStartCutover()
	return ok
}

func (s *monitorScreen) view() fyne.CanvasObject { return s.obj }
func (s *monitorScreen) bannerArea() *banner     { return s.banner }

func (s *monitorScreen) handles(st engine.State) bool {
	switch st {
	case engine.Draft, engine.Validated, engine.Starting, engine.Syncing, engine.Ready, engine.Failed:
		return true
	}
	return false
}

func (s *monitorScreen) show(snap engine.Snapshot, now time.Time) {
	s.title.SetText("Migrating " + snap.Name)
	var why string
	s.cutoverOK, why = snap.CanStartCutover()
	if snap.State == engine.Ready && !s.cutoverOK {
		s.state.SetText(stateText(engine.Syncing)) // the engine says so too once it looks
	} else {
		s.state.SetText(stateText(snap.State))
	}

	// Ready panel; its cutover window keeps running while a shard is out of sync again.
	if snap.State == engine.Ready || snap.State == engine.Syncing && !snap.TimerDeadline.IsZero() {
		s.ready.Show()
		if s.cutoverOK {
			s.readyText.Importance = widget.SuccessImportance
			s.readyText.SetText(fmt.Sprintf("All shards are in sync (lag %s). You can start the cutover.", lagText(snap.Overall.Lag, snap.Overall.LagKnown)))
		} else {
			s.readyText.Importance = widget.WarningImportance
			s.readyText.SetText("Not ready for cutover: a shard is not in sync. The cutover window keeps running.")
		}
		left := snap.TimerDeadline.Sub(now)
		s.countdown.SetText(countdownText(left))
		if left < timerWarning || !s.cutoverOK {
			s.countdown.Importance = widget.WarningImportance
		} else {
			s.countdown.Importance = widget.SuccessImportance
		}
		s.countdown.Refresh()
		s.deadline.SetText("(until " + snap.TimerDeadline.Local().Format("Mon 2 Jan 15:04") + ")")
		switch {
		case !s.cutoverOK:
			s.behind.SetText("Start cutover is disabled: " + why)
			s.behind.Show()
		case snap.Reason != "":
			s.behind.SetText(snap.Reason)
			s.behind.Show()
		default:
			s.behind.Hide()
		}
	} else {
		s.ready.Hide()
	}

	// Failed panel.
	if snap.State == engine.Failed {
		reason := snap.Reason
		if reason == "" {
			reason = "The migration stopped on an error: see the history below."
		}
		s.failedText.SetText(reason)
		s.failed.Show()
	} else {
		s.failed.Hide()
	}

	// Overall.
	o := snap.Overall
	s.bar.SetValue(o.Fraction())
	s.counts.SetText(ofTotal(units.Bytes(o.BytesCopied), units.Bytes(o.BytesTotal), o.TotalsEstimated) + "  ·  " +
		ofTotal(countText(o.DocsCopied), countText(o.DocsTotal), o.TotalsEstimated) + " documents")
	switch snap.State {
	case engine.Draft, engine.Validated, engine.Starting:
		if p := snap.Placement; p != nil && snap.State == engine.Starting {
			s.rates.SetText("Starting: preparing the destination: " + p.String() + "…")
		} else {
			s.rates.SetText("Starting: stopping the source and destination balancers, preparing the destination…")
		}
		s.remaining.SetText("")
	default:
		lag := "lag " + lagText(o.Lag, o.LagKnown)
		if !o.LagKnown {
			lag += " until every shard replays"
		}
		s.rates.SetText(fmt.Sprintf("%s docs/s copied  ·  %s oplog entries/s applied  ·  %s",
			rateText(o.CopyRate), rateText(o.ApplyRate), lag))
		s.remaining.SetText(overallRemaining(snap))
	}

	s.showContinuous(snap)

	// Shards: a failed shard always shows its row and its Restart.
	anyFailed := slices.ContainsFunc(snap.Shards, func(p engine.ShardProgress) bool { return p.Phase == engine.ShardFailed })
	s.shards.show(snap.Shards)
	if s.showShards || anyFailed {
		s.shards.view().Show()
		s.toggle.SetText("Hide progress per shard")
	} else {
		s.shards.view().Hide()
		s.toggle.SetText("View progress per shard")
	}
	if anyFailed {
		s.toggle.Hide()
	} else {
		s.toggle.Show()
	}

	if s.chartAt.IsZero() || !s.chartAt.Equal(s.at.samples.last) {
		s.chartAt = s.at.samples.last
		keys, labels := make([]string, 0, len(snap.Shards)), make([]string, 0, len(snap.Shards))
		for _, sh := range snap.Shards {
			keys, labels = append(keys, lagKey(sh.Name)), append(labels, sh.Name)
		}
		s.lagChart.set(s.at.samples, keys, labels, now)
		s.rateChart.set(s.at.samples, []string{rateCopied, rateApplied}, []string{"copied", "applied (oplog)"}, now)
	}
	s.history.show(snap.History)

	s.setBusy(s.busy)
}

// overallRemaining is the whole migration's estimate: copy plus catch-up.
func overallRemaining(snap engine.Snapshot) string {
	if readyForCutover(snap) {
		return "Every shard in sync"
	}
	return "Time remaining  " + remaining(snap.Overall, "")
}

const (
	rateCopied  = "rate:copied"
	rateApplied = "rate:applied"
)

func lagKey(shard string) string { return "lag:" + shard }

// chartValues are the values the charts keep from one snapshot.
func chartValues(s engine.Snapshot) map[string]float64 {
	v := map[string]float64{rateCopied: s.Overall.CopyRate, rateApplied: s.Overall.ApplyRate}
	for _, sh := range s.Shards {
		if sh.LagKnown {
			v[lagKey(sh.Name)] = sh.Lag.Seconds()
		}
	}
	return v
}

func (s *monitorScreen) toggleShards() {
	s.showShards = !s.showShards
	s.show(s.at.last, s.a.now())
}

func (s *monitorScreen) setBusy(b bool) {
	s.busy = b
	for _, w := range []fyne.Disableable{s.extend, s.startCutover, s.cancel, s.retry} {
		if b || w == s.startCutover && !s.cutoverOK {
			w.Disable()
		} else {
			w.Enable()
		}
	}
	s.shards.setBusy(b)
}

// act runs one migration action off the event goroutine, with its buttons disabled;
// its error goes to the banner, success to ok.
func (s *monitorScreen) act(doing string, call func(context.Context) error, ok func()) {
	s.setBusy(true)
	s.banner.show(levelInfo, doing)
	s.a.background(func() func() {
		err := call(s.a.ctx)
		return func() {
			s.setBusy(false)
			if err != nil {
				s.banner.show(levelError, err.Error())
				return
			}
			s.banner.clear()
			if ok != nil {
				ok()
			}
			s.a.refreshSoon()
		}
	})
}

func (s *monitorScreen) extendTimer() {
	s.act("Extending the cutover window…", s.at.m.ExtendTimer, func() {
		s.banner.show(levelInfo, "The cutover window was extended by 24 hours.")
	})
}

func (s *monitorScreen) doStartCutover() {
	s.act("Starting the cutover…", s.at.m.StartCutover, nil)
}

func (s *monitorScreen) doRetry() {
	s.act("Starting the migration again from its checkpoints…", s.at.m.Retry, nil)
}

func (s *monitorScreen) confirmCancel() {
	body := container.NewVBox(
		wrapped("Syncing stops now. The data copied so far stays on the destination. The source balancer is put back as it was before the migration, the destination balancer is started and the index options relaxed for the sync (unique, TTL) are restored."),
		wrapped("To migrate again later, start a new migration: it wipes the destination first."))
	s.a.confirm("Cancel the migration?", body, "Keep migrating", "Cancel migration", widget.DangerImportance, func() {
		s.act("Cancelling: stopping the sync, restoring the balancers and the relaxed index options…", s.at.m.Cancel, nil)
	})
}

func (s *monitorScreen) confirmRestart(shard string) {
	s.a.confirmRestart(shard, func() {
		s.act(fmt.Sprintf("Restarting shard %s…", shard), func(ctx context.Context) error { return s.at.m.RestartShard(ctx, shard) }, nil)
	})
}

// shardTable is the per-shard view: one row per shard. Its columns are as wide as
// their widest cell (shard names differ in length from cluster to cluster), the
// progress bar takes the rest.
type shardTable struct {
	onRestart func(string)
	rows      map[string]*shardRow
	names     []string
	cols      *columns
	head      []fyne.CanvasObject
	box       *fyne.Container
}

// The columns: shard, phase, progress (flexible), copied, rate, lag, time left.
const (
	colName     = 0
	colProgress = 2
	colCount    = 7
)

// shardNameMax bounds the shard column: a longer name wraps instead of squeezing the
// progress bar out of the window.
const shardNameMax = 220

func newShardTable(onRestart func(string)) *shardTable {
	return &shardTable{onRestart: onRestart, rows: map[string]*shardRow{}, box: container.NewVBox(),
		cols: &columns{widths: make([]float32, colCount), flex: colProgress}}
}

func (t *shardTable) view() fyne.CanvasObject { return t.box }

func (t *shardTable) show(shards []engine.ShardProgress) {
	names := make([]string, len(shards))
	for i, sh := range shards {
		names[i] = sh.Name
	}
	if !slices.Equal(names, t.names) {
		t.names = names
		t.rows = map[string]*shardRow{}
		t.box.RemoveAll()
		t.cols.widths = make([]float32, colCount)
		head := func(s string) fyne.CanvasObject {
			return widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		}
		t.head = []fyne.CanvasObject{head("Shard"), head("Phase"), head("Progress"), head("Copied"), head("Rate"), head("Lag"), head("Left")}
		t.box.Add(container.New(t.cols, t.head...))
		for _, n := range names {
			r := newShardRow(n, t.onRestart, t.cols)
			t.rows[n] = r
			t.box.Add(r.obj)
		}
	}
	for _, sh := range shards {
		t.rows[sh.Name].show(sh)
	}
	t.fit()
}

// fit widens each column to its widest cell. Widths only grow while the shards stay
// the same, so that the columns do not jump as the numbers change.
func (t *shardTable) fit() {
	grew := false
	widen := func(i int, w float32) {
		if i != colProgress && w > t.cols.widths[i] {
			t.cols.widths[i] = w
			grew = true
		}
	}
	for i, h := range t.head {
		widen(i, h.MinSize().Width)
	}
	for _, n := range t.names {
		r := t.rows[n]
		widen(colName, min(naturalWidth(r.name), shardNameMax))
		for i, c := range r.cells {
			if i != colName {
				widen(i, c.MinSize().Width)
			}
		}
	}
	if grew {
		t.box.Refresh()
	}
}

// naturalWidth is the width a label needs to show its text on one line.
func naturalWidth(l *widget.Label) float32 {
	w := float32(0)
	for _, line := range strings.Split(l.Text, "\n") {
		w = max(w, fyne.MeasureText(line, theme.TextSize(), l.TextStyle).Width)
	}
	return w + 2*theme.InnerPadding()
}

func (t *shardTable) setBusy(b bool) {
	for _, r := range t.rows {
		if b {
			r.restart.Disable()
		} else {
			r.restart.Enable()
		}
	}
}

type shardRow struct {
	name, phase, copied, rate, lag, left *widget.Label
	bar                                  *widget.ProgressBar
	cells                                []fyne.CanvasObject
	problem                              *fyne.Container
	errText, retrying                    *widget.Label
	ranges                               *widget.Label // the namespaces copied in _id ranges
	buffered                             *widget.Label // what the shard's oplog buffer holds
	restart                              *widget.Button
	obj                                  fyne.CanvasObject
}

func newShardRow(name string, onRestart func(string), cols *columns) *shardRow {
	r := &shardRow{
		name:   wrapped(name),
		phase:  widget.NewLabel(""),
		copied: widget.NewLabel(""),
		rate:   widget.NewLabel(""),
		lag:    widget.NewLabel(""),
		left:   widget.NewLabel(""),
		bar:    widget.NewProgressBar(),
	}
	r.name.Wrapping = fyne.TextWrapBreak
	r.errText = wrapped("")
	r.errText.Importance = widget.DangerImportance
	r.restart = widget.NewButtonWithIcon("Restart "+name, theme.ViewRefreshIcon(), func() { onRestart(name) })
	r.restart.Importance = widget.DangerImportance
	r.problem = container.NewBorder(nil, nil, widget.NewIcon(theme.NewErrorThemedResource(theme.ErrorIcon())), container.NewVBox(r.restart), r.errText)
	r.problem.Hide()
	r.retrying = wrapped("")
	r.retrying.Importance = widget.WarningImportance
	r.retrying.Hide()
	r.ranges = wrapped("")
	r.ranges.Hide()
	r.buffered = wrapped("")
	r.buffered.Hide()
	r.cells = []fyne.CanvasObject{r.name, r.phase, r.bar, r.copied, r.rate, r.lag, r.left}
	line := container.New(cols, r.cells...)
	r.obj = container.NewVBox(line, r.problem, r.retrying, r.ranges, r.buffered)
	return r
}
func (r *shardRow) show(p engine.ShardProgress) {
	r.phase.SetText(phaseText(p.Phase))
	r.bar.SetValue(p.Fraction())
	about := ""
	if p.TotalsEstimated {
		about = "~"
	}
	r.copied.SetText(fmt.Sprintf("%s / %s%s\n%s / %s%s docs",
		units.Bytes(p.BytesCopied), about, units.Bytes(p.BytesTotal), countText(p.DocsCopied), about, countText(p.DocsTotal)))
	switch p.Phase {
	case engine.Copying, engine.Pending, engine.Clearing, engine.BuildingIndexes:
		r.rate.SetText(rateText(p.CopyRate) + " docs/s\n" + units.Rate(p.CopyBytesRate))
	default:
		r.rate.SetText(rateText(p.ApplyRate) + " ops/s")
	}
	r.lag.SetText(lagText(p.Lag, p.LagKnown))
	r.left.SetText(remaining(p.Progress, p.Phase))
	if p.Phase == engine.ShardFailed {
		r.phase.Importance = widget.DangerImportance
		r.errText.SetText(p.Error)
		r.problem.Show()
	} else {
		r.phase.Importance = widget.MediumImportance
		r.problem.Hide()
	}
	r.phase.Refresh()
	switch {
	case p.Retrying != "":
		r.retrying.SetText(retryingText(p.Retrying))
		r.retrying.Show()
	case p.Phase == engine.Clearing:
		r.retrying.SetText(clearingText(p.Clearing))
		r.retrying.Show()
	case p.Waiting != "":
		r.retrying.SetText(capitalized(p.Waiting))
		r.retrying.Show()
	case p.Moved != "":
		r.retrying.SetText("Copying again: " + p.Moved + " during the migration")
		r.retrying.Show()
	default:
		r.retrying.Hide()
	}
	if text := p.RangesText(); text != "" {
		r.ranges.SetText("Copying in parallel _id ranges: " + text)
		r.ranges.Show()
	} else {
		r.ranges.Hide()
	}
	if text := p.Buffer.Held(); text != "" {
		r.buffered.SetText("Oplog " + text)
		r.buffered.Show()
	} else {
		r.buffered.Hide()
	}
}

// clearingText says what a shard in the clearing phase does, and where it is.
func clearingText(c engine.ClearProgress) string {
	text := "Clearing its data on the destination before copying again"
	if at := c.String(); at != "" {
		text += ": " + at
	}
	return text
}

// retryingText is the engine's retry note as a sentence: "Retrying: <cause>", once.
func retryingText(s string) string {
	if strings.HasPrefix(strings.ToLower(s), "retrying") {
		return capitalized(s)
	}
	return "Retrying: " + s
}

// capitalized is s with its first letter upper case.
func capitalized(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// historyPanel lists the lifecycle events, newest first.
type historyPanel struct {
	n    int // events shown; -1 before the first snapshot
	list *fyne.Container
	box  *fyne.Container
}

// historyShown bounds the events listed on screen; the diagnostics export has them all.
const historyShown = 100

func newHistoryPanel() *historyPanel {
	h := &historyPanel{n: -1, list: tight()}
	h.box = container.NewVBox(widget.NewLabelWithStyle("History", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), h.list)
	return h
}

func (h *historyPanel) view() fyne.CanvasObject { return h.box }

func (h *historyPanel) show(events []engine.Event) {
	if len(events) == h.n {
		return
	}
	h.n = len(events)
	h.list.RemoveAll()
	if len(events) == 0 {
		h.list.Add(widget.NewLabel("Nothing yet."))
		return
	}
	for i := len(events) - 1; i >= 0 && len(events)-i <= historyShown; i-- {
		h.list.Add(wrapped(eventText(events[i])))
	}
}

// eventText is one history line: when, who, and what happened in words, then the
// engine's reason ("10:02:11   shard rs0   copy done: … building indexes"). A step
// that changes no state (From == To) is told by its reason alone.
func eventText(e engine.Event) string {
	who := "migration"
	if e.Shard != "" {
		who = "shard " + e.Shard
	}
	what := e.Reason
	if e.From != e.To || e.Reason == "" {
		what = happened(e)
		// The engine's reason often starts by saying the same ("in sync: lag 0:01").
		head, _, _ := strings.Cut(what, ":")
		switch {
		case e.Reason == "":
		case strings.HasPrefix(strings.ToLower(e.Reason), strings.ToLower(head)):
			what = e.Reason
		default:
			what += ": " + e.Reason
		}
	}
	return fmt.Sprintf("%s   %s   %s", e.At.Local().Format("2006-01-02 15:04:05"), who, what)
}

// happened says what one transition of the migration or of a shard was.
func happened(e engine.Event) string {
	if e.Shard != "" {
		switch p := engine.Phase(e.To); p {
		case engine.Pending:
			if e.From != "" {
				return "restarted from the beginning"
			}
			return "waiting to copy"
		case engine.Copying:
			return "copy started"
		case engine.BuildingIndexes:
			return "copy done"
		case engine.CatchingUp:
			if engine.Phase(e.From) == engine.Synced {
				return "fell behind, catching up"
			}
			if engine.Phase(e.From) == engine.CatchingUp {
				return "catching up again"
			}
			return "catching up"
		case engine.Synced:
			return "in sync"
		case engine.ShardFailed:
			return "failed"
		default:
			return "now " + phaseText(p)
		}
	}
	switch st := engine.State(e.To); st {
	case engine.Draft:
		return "created"
	case engine.Validated:
		if engine.State(e.From) == engine.Validated {
			return "validated again"
		}
		return "validated"
	case engine.Starting:
		if engine.State(e.From) == engine.Failed {
			return "started again"
		}
		return "started"
	case engine.Syncing:
		return "syncing"
	case engine.Ready:
		return "ready for cutover"
	case engine.CuttingOver:
		return "cutover started"
	case engine.Finalizing:
		return "I'm done: finalizing the destination"
	case engine.Done:
		return "migration complete"
	case engine.Cancelled:
		return "cancelled"
	case engine.Expired:
		return "the cutover window expired"
	case engine.Failed:
		return "failed"
	default:
		return "now " + stateText(st)
	}
}

// showContinuous shows how far the continuous verification is while the
// migration syncs (what the finalize will not have to compare again), and, once it
// is ready, how far the unique indexes are made unique (what the finalize will not
// have to build).
func (s *monitorScreen) showContinuous(snap engine.Snapshot) {
	syncing := snap.State == engine.Syncing || snap.State == engine.Ready || snap.State == engine.CuttingOver
	var lines []string
	if c := snap.Continuous; c != nil && syncing {
		waiting := ""
		if c.WaitingForReplay {
			waiting = "  ·  waiting: the replay goes first"
		}
		lines = append(lines, fmt.Sprintf("Continuous verification: %s of %s ranges compared (%d of %d namespaces)%s  ·  %s documents rechecked since  ·  %d differing, pending recheck  ·  %d still differing",
			countText(int64(c.RangesCompared)), countText(int64(c.Ranges)), c.NamespacesCompared, c.Namespaces, waiting, countText(c.Rechecked), c.Pending, c.Persisting))
	}
	if snap.UniqueIndexes != "" && (snap.State == engine.Ready || snap.State == engine.CuttingOver) {
		lines = append(lines, "Unique indexes: "+snap.UniqueIndexes)
	}
	s.verified.SetText(strings.Join(lines, "\n"))
	s.verified.Hidden = len(lines) == 0
	s.verified.Refresh()
}

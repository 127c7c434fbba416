package ui

import (
	"image/color"
	"math"
	"sort"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// chartWindow is how far back the live charts look, and sampleEvery how often they
// keep a point: 120 points per line.
const (
	chartWindow = 10 * time.Minute
	sampleEvery = 5 * time.Second
)

type point struct {
	at time.Time
	v  float64
}

// samples keeps the recent values the charts draw, per line name. It lives with the
// attached migration, so leaving and reopening a screen keeps the curves.
type samples struct {
	last  time.Time
	lines map[string][]point
}

func newSamples() *samples { return &samples{lines: map[string][]point{}} }

// add records one value per line at now, at most once per sampleEvery, and forgets
// points older than the window. It reports whether it kept anything.
func (s *samples) add(now time.Time, values map[string]float64) bool {
	if !s.last.IsZero() && now.Sub(s.last) < sampleEvery {
		return false
	}
	s.last = now
	for name, v := range values {
		s.lines[name] = append(s.lines[name], point{now, v})
	}
	cut := now.Add(-chartWindow)
	for name, pts := range s.lines {
		i := sort.Search(len(pts), func(i int) bool { return !pts[i].at.Before(cut) })
		if i == len(pts) {
			delete(s.lines, name)
			continue
		}
		s.lines[name] = pts[i:]
	}
	return true
}

// lineChart is a small live line chart: a few named lines over the last chartWindow,
// the largest value written at the top left, the legend underneath.
type lineChart struct {
	widget.BaseWidget
	title  string
	format func(float64) string // how a y value reads ("0:07", "2.1 M/s")
	order  []string             // line keys, in legend and colour order
	labels []string             // the legend of each line
	lines  map[string][]point
	now    time.Time
}

func newLineChart(title string, format func(float64) string) *lineChart {
	c := &lineChart{title: title, format: format, lines: map[string][]point{}}
	c.ExtendBaseWidget(c)
	return c
}

// set replaces the chart's data with the lines of s named by keys, in that order,
// with labels as their legend.
func (c *lineChart) set(s *samples, keys, labels []string, now time.Time) {
	c.order = keys
	c.labels = labels
	c.now = now
	c.lines = map[string][]point{}
	for _, k := range keys {
		c.lines[k] = s.lines[k]
	}
	c.Refresh()
}

// chartColors tells shards apart; they read on the light and the dark theme alike.
var chartColors = []color.NRGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
	{0xd6, 0x27, 0x28, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
	{0xe3, 0x77, 0xc2, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
}

func (c *lineChart) CreateRenderer() fyne.WidgetRenderer {
	r := &chartRenderer{
		c:     c,
		bg:    canvas.NewRectangle(color.Transparent),
		title: canvas.NewText(c.title, color.Black),
		top:   canvas.NewText("", color.Black),
		empty: canvas.NewText("collecting data", color.Black),
	}
	r.title.TextStyle.Bold = true
	r.Refresh()
	return r
}

type chartRenderer struct {
	c      *lineChart
	bg     *canvas.Rectangle
	title  *canvas.Text
	top    *canvas.Text
	empty  *canvas.Text
	lines  []*canvas.Line
	legend []*canvas.Text
	swatch []*canvas.Rectangle
	objs   []fyne.CanvasObject
}

const (
	chartPlotHeight = 90
	chartMinWidth   = 220
)

func (r *chartRenderer) MinSize() fyne.Size {
	th := r.title.MinSize().Height
	return fyne.NewSize(chartMinWidth, th+chartPlotHeight+th+4*theme.Padding())
}

func (r *chartRenderer) Objects() []fyne.CanvasObject { return r.objs }

func (r *chartRenderer) Destroy() {}

func (r *chartRenderer) Refresh() {
	c := r.c
	fg := theme.Color(theme.ColorNameForeground)
	muted := theme.Color(theme.ColorNamePlaceHolder)
	r.bg.FillColor = theme.Color(theme.ColorNameInputBackground)
	r.bg.StrokeColor = theme.Color(theme.ColorNameSeparator)
	r.bg.StrokeWidth = 1
	r.bg.CornerRadius = theme.InputRadiusSize()
	r.title.Color = fg
	r.title.TextSize = theme.CaptionTextSize() + 1
	r.top.Color = muted
	r.top.TextSize = theme.CaptionTextSize()
	r.empty.Color = muted
	r.empty.TextSize = theme.CaptionTextSize()

	peak := 0.0
	longest := 0 // a line needs two points to be drawn
	for _, n := range c.order {
		for _, p := range c.lines[n] {
			peak = max(peak, p.v)
		}
		longest = max(longest, len(c.lines[n]))
	}
	r.top.Text = "max " + c.format(peak)
	r.empty.Hidden = longest > 1

	r.lines = r.lines[:0]
	r.legend = r.legend[:0]
	r.swatch = r.swatch[:0]
	for i, n := range c.order {
		col := chartColors[i%len(chartColors)]
		pts := c.lines[n]
		for j := 1; j < len(pts); j++ {
			l := canvas.NewLine(col)
			l.StrokeWidth = 1.5
			r.lines = append(r.lines, l)
		}
		t := canvas.NewText(c.labels[i], fg)
		t.TextSize = theme.CaptionTextSize()
		r.legend = append(r.legend, t)
		r.swatch = append(r.swatch, canvas.NewRectangle(col))
	}
	r.objs = []fyne.CanvasObject{r.bg, r.title, r.top, r.empty}
	for _, l := range r.lines {
		r.objs = append(r.objs, l)
	}
	for i, t := range r.legend {
		r.objs = append(r.objs, r.swatch[i], t)
	}
	r.Layout(c.Size())
	canvas.Refresh(c)
}

func (r *chartRenderer) Layout(size fyne.Size) {
	c := r.c
	pad := theme.Padding()
	th := r.title.MinSize().Height
	r.title.Move(fyne.NewPos(0, 0))
	tw := r.top.MinSize()
	// Keep clear of the right edge, where a scroll bar may be drawn.
	r.top.Move(fyne.NewPos(size.Width-tw.Width-2*pad, (th-tw.Height)/2))

	plot := fyne.NewPos(0, th+pad)
	plotSize := fyne.NewSize(size.Width, size.Height-2*th-2*pad)
	r.bg.Move(plot)
	r.bg.Resize(plotSize)
	em := r.empty.MinSize()
	r.empty.Move(fyne.NewPos(plot.X+(plotSize.Width-em.Width)/2, plot.Y+(plotSize.Height-em.Height)/2))

	peak := 0.0
	for _, n := range c.order {
		for _, p := range c.lines[n] {
			peak = max(peak, p.v)
		}
	}
	if peak <= 0 {
		peak = 1
	}
	inner := fyne.NewSize(plotSize.Width-2*pad, plotSize.Height-2*pad)
	start := c.now.Add(-chartWindow)
	xy := func(p point) fyne.Position {
		fx := float32(p.at.Sub(start)) / float32(chartWindow)
		fy := float32(p.v / peak)
		fx = float32(math.Min(math.Max(float64(fx), 0), 1))
		return fyne.NewPos(plot.X+pad+fx*inner.Width, plot.Y+pad+(1-fy)*inner.Height)
	}
	k := 0
	for _, n := range c.order {
		pts := c.lines[n]
		for j := 1; j < len(pts); j++ {
			l := r.lines[k]
			l.Position1 = xy(pts[j-1])
			l.Position2 = xy(pts[j])
			k++
		}
	}

	x := float32(0)
	y := plot.Y + plotSize.Height + pad
	for i, t := range r.legend {
		ts := t.MinSize()
		box := ts.Height / 2
		sw := r.swatch[i]
		sw.Resize(fyne.NewSize(box, box))
		sw.Move(fyne.NewPos(x, y+(ts.Height-box)/2))
		x += box + pad
		t.Move(fyne.NewPos(x, y))
		x += ts.Width + 3*pad
	}
}

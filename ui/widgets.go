package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// level is how serious a message is.
type level int

const (
	levelInfo level = iota
	levelWarning
	levelError
)

// banner shows one message where it happened, at the top of a screen: an error
// written for a DBA, a warning or a notice. It is hidden while empty and can be
// dismissed.
type banner struct {
	widget.BaseWidget
	level level
	text  *widget.Label
	icon  *widget.Icon
	bg    *canvas.Rectangle
	close *widget.Button
}

func newBanner() *banner {
	b := &banner{
		text: widget.NewLabel(""),
		icon: widget.NewIcon(nil),
		bg:   canvas.NewRectangle(color.Transparent),
	}
	b.text.Wrapping = fyne.TextWrapWord
	b.close = widget.NewButtonWithIcon("", theme.CancelIcon(), b.clear)
	b.close.Importance = widget.LowImportance
	b.ExtendBaseWidget(b)
	b.Hide()
	return b
}

func (b *banner) CreateRenderer() fyne.WidgetRenderer {
	body := container.NewBorder(nil, nil, container.NewCenter(b.icon), container.NewVBox(b.close), b.text)
	return widget.NewSimpleRenderer(container.NewStack(b.bg, container.NewPadded(body)))
}

func (b *banner) show(l level, text string) {
	b.level = l
	b.text.SetText(text)
	b.Show()
	b.Refresh()
}

func (b *banner) clear() {
	b.text.SetText("")
	b.Hide()
}

func (b *banner) Refresh() {
	var c fyne.ThemeColorName
	switch b.level {
	case levelError:
		c = theme.ColorNameError
		b.icon.SetResource(theme.NewErrorThemedResource(theme.ErrorIcon()))
	case levelWarning:
		c = theme.ColorNameWarning
		b.icon.SetResource(theme.NewWarningThemedResource(theme.WarningIcon()))
	default:
		c = theme.ColorNamePrimary
		b.icon.SetResource(theme.NewPrimaryThemedResource(theme.InfoIcon()))
	}
	r, g, bl, _ := theme.Color(c).RGBA()
	b.bg.FillColor = color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 0x30}
	b.bg.StrokeColor = theme.Color(c)
	b.bg.StrokeWidth = 1
	b.bg.CornerRadius = theme.InputRadiusSize()
	b.bg.Refresh()
	b.BaseWidget.Refresh()
}

// escEntry is an Entry that hands Escape to onEscape: Fyne gives keys to the focused
// widget first, so without it Escape would not close a dialog while typing in it.
type escEntry struct {
	widget.Entry
	onEscape func()
}

func newEscEntry(onEscape func()) *escEntry {
	e := &escEntry{onEscape: onEscape}
	e.ExtendBaseWidget(e)
	return e
}

func newEscPasswordEntry(onEscape func()) *escEntry {
	e := newEscEntry(onEscape)
	e.Password = true
	return e
}

func (e *escEntry) TypedKey(ev *fyne.KeyEvent) {
	if ev.Name == fyne.KeyEscape && e.onEscape != nil {
		e.onEscape()
		return
	}
	e.Entry.TypedKey(ev)
}

// AcceptsTab keeps Tab for focus traversal even in a multi-line entry, so that Tab
// runs through a form instead of typing a tab into the pasted certificate.
func (e *escEntry) AcceptsTab() bool { return false }

// uriEntry is an Entry that calls onEntered once text is pasted into it and when it
// loses the focus: the hosts field then hides a connection string's password.
type uriEntry struct {
	widget.Entry
	onEntered func()
}

func newURIEntry(onEntered func()) *uriEntry {
	e := &uriEntry{onEntered: onEntered}
	e.ExtendBaseWidget(e)
	return e
}

func (e *uriEntry) TypedShortcut(s fyne.Shortcut) {
	e.Entry.TypedShortcut(s)
	if _, ok := s.(*fyne.ShortcutPaste); ok {
		e.onEntered()
	}
}

func (e *uriEntry) FocusLost() {
	e.Entry.FocusLost()
	e.onEntered()
}

// escCheck is a Check that hands Escape to onEscape, like escEntry.
type escCheck struct {
	widget.Check
	onEscape func()
}

func newEscCheck(text string, changed func(bool), onEscape func()) *escCheck {
	c := &escCheck{onEscape: onEscape}
	c.Text = text
	c.OnChanged = changed
	c.ExtendBaseWidget(c)
	return c
}

func (c *escCheck) TypedKey(ev *fyne.KeyEvent) {
	if ev.Name == fyne.KeyEscape && c.onEscape != nil {
		c.onEscape()
		return
	}
	c.Check.TypedKey(ev)
}

// widthLayout gives its one object a fixed width and the height that object needs at
// that width, so that wrapped text in a dialog wraps there instead of one word a line.
type widthLayout struct{ width float32 }

func (l widthLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	o := objs[0]
	if o.Size().Width != l.width {
		o.Resize(fyne.NewSize(l.width, o.MinSize().Height))
	}
	return fyne.NewSize(l.width, o.MinSize().Height)
}

func (l widthLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	objs[0].Resize(size)
}

func fixedWidth(w float32, o fyne.CanvasObject) fyne.CanvasObject {
	return container.New(widthLayout{w}, o)
}

// columns lays a table row out: the widths of the fixed columns, and one flexible
// column that takes the rest. Every row of a table shares one columns, so that they
// line up; the table sets the widths.
type columns struct {
	widths []float32
	flex   int // the flexible column's index; its entry in widths is ignored
}

func (c *columns) width(i int, o fyne.CanvasObject) float32 {
	if i < len(c.widths) && i != c.flex {
		return c.widths[i]
	}
	return o.MinSize().Width
}

func (c *columns) MinSize(objs []fyne.CanvasObject) fyne.Size {
	var w, h float32
	for i, o := range objs {
		w += c.width(i, o)
		h = max(h, o.MinSize().Height)
	}
	return fyne.NewSize(w+theme.Padding()*float32(len(objs)-1), h)
}

func (c *columns) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	pad := theme.Padding()
	fixed := pad * float32(len(objs)-1)
	for i, o := range objs {
		if i != c.flex {
			fixed += c.width(i, o)
		}
	}
	x := float32(0)
	for i, o := range objs {
		w := c.width(i, o)
		if i == c.flex {
			w = max(size.Width-fixed, w)
		}
		// A wrapped text knows its height once it has its width.
		o.Resize(fyne.NewSize(w, o.MinSize().Height))
		h := o.MinSize().Height
		o.Resize(fyne.NewSize(w, h))
		o.Move(fyne.NewPos(x, (size.Height-h)/2))
		x += w + pad
	}
}

// heading is a screen title.
func heading(text string) *widget.Label {
	l := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.SizeName = theme.SizeNameSubHeadingText
	return l
}

// wrapped is a label whose text wraps at the width it is given.
func wrapped(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// statusIcon is the icon of a check's status.
func statusIcon(s Status) fyne.Resource {
	switch s {
	case Failed:
		return theme.NewErrorThemedResource(theme.CancelIcon())
	case Warning:
		return theme.NewWarningThemedResource(theme.WarningIcon())
	case NotRun:
		return theme.NewDisabledResource(theme.MediaSkipNextIcon())
	default:
		return theme.NewSuccessThemedResource(theme.ConfirmIcon())
	}
}

// indent shifts o right by the width of a check box, under the check's text.
func indent(o fyne.CanvasObject) fyne.CanvasObject {
	gap := canvas.NewRectangle(color.Transparent)
	gap.SetMinSize(fyne.NewSize(theme.IconInlineSize()+theme.InnerPadding(), 0))
	return container.NewBorder(nil, nil, gap, nil, o)
}

// tight stacks lines of text closer than a VBox does: one block, not paragraphs.
func tight(objs ...fyne.CanvasObject) *fyne.Container {
	return container.New(layout.NewCustomPaddedVBoxLayout(-theme.InnerPadding()), objs...)
}

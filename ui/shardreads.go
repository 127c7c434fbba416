package ui

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine/topology"
)

// shardReads is the Read each shard from table under the forms: one row per source
// shard (listShards, as the last validation found them, as the host map's rows),
// each with a mode chooser that reads the shard as the source form's Read shards
// from says unless another mode is chosen (the CLI's --shard-read-preference). A
// preference with tag sets given elsewhere (a resumed migration started from the
// CLI) is one more choice of its row, kept as it is.
type shardReads struct {
	a        *App
	onChange func()
	// m holds the rows' choices other than the default, by shard name.
	m map[string]string
	// shards are the last validation's source shards, in listShards order.
	shards  []string
	rows    *fyne.Container
	selects map[string]*widget.Select
	problem *widget.Label
	obj     *fyne.Container
}

// shardReadDefault is the choice that reads the shard as the rest.
const shardReadDefault = "as the cluster default"

func newShardReads(a *App, onChange func()) *shardReads {
	r := &shardReads{a: a, onChange: onChange, m: map[string]string{}, selects: map[string]*widget.Select{}}
	r.rows = container.New(layout.NewFormLayout())
	r.problem = wrapped("")
	r.problem.Importance = widget.DangerImportance
	r.problem.Hide()
	head := widget.NewLabelWithStyle("Read each shard from", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	r.obj = container.NewVBox(widget.NewSeparator(), head,
		wrapped("Each shard is read as the source's Read shards from says. Choose otherwise for a shard whose secondaries are in another region (primary), or whose primary carries a heavy production load (secondary). Validation checks the members chosen for each shard."),
		r.rows, r.problem)
	r.obj.Hide()
	return r
}

func (r *shardReads) view() fyne.CanvasObject { return r.obj }

// entries are the shards read otherwise, shard -> mode (or mode and tag sets); nil
// when none.
func (r *shardReads) entries() map[string]string {
	if len(r.m) == 0 {
		return nil
	}
	return maps.Clone(r.m)
}

// show takes the source's shards a validation found.
func (r *shardReads) show(hosts []ShardHost) {
	r.shards = nil
	for _, h := range hosts {
		if !slices.Contains(r.shards, h.Shard) {
			r.shards = append(r.shards, h.Shard)
		}
	}
	r.rebuild()
}

// add takes the choices given with a connection (a resumed migration's).
func (r *shardReads) add(m map[string]string) {
	maps.Copy(r.m, m)
	r.rebuild()
}

func (r *shardReads) clear() {
	r.m, r.shards = map[string]string{}, nil
	r.rebuild()
}

// setProblem shows what is wrong with the choices (Validate's FieldError).
func (r *shardReads) setProblem(text string) {
	r.problem.SetText(text)
	r.problem.Hidden = text == ""
	r.problem.Refresh()
}

// focus puts the keyboard focus on the first row.
func (r *shardReads) focus() {
	for _, name := range r.order() {
		r.a.win.Canvas().Focus(r.selects[name])
		return
	}
}

// order is the rows' shards: the validation's, then shards chosen for that it did
// not list.
func (r *shardReads) order() []string {
	names := slices.Clone(r.shards)
	for _, n := range slices.Sorted(maps.Keys(r.m)) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// rebuild lays the rows out again, keeping what was chosen.
func (r *shardReads) rebuild() {
	r.rows.RemoveAll()
	r.selects = map[string]*widget.Select{}
	for _, name := range r.order() {
		choices := append([]string{shardReadDefault}, topology.ReadPreferenceModes...)
		if chosen, ok := r.m[name]; ok && !slices.Contains(choices, chosen) {
			choices = append(choices, chosen)
		}
		sel := widget.NewSelect(choices, nil)
		if chosen, ok := r.m[name]; ok {
			sel.SetSelected(chosen)
		} else {
			sel.SetSelected(shardReadDefault)
		}
		sel.OnChanged = func(choice string) {
			if choice == shardReadDefault {
				delete(r.m, name)
			} else {
				r.m[name] = choice
			}
			r.setProblem("")
			r.onChange()
		}
		r.selects[name] = sel
		row := container.NewVBox(sel)
		if len(r.shards) > 0 && !slices.Contains(r.shards, name) {
			note := wrapped(fmt.Sprintf("The source has no shard %s (validation listed %s): choose %q to drop this row.", name, strings.Join(r.shards, ", "), shardReadDefault))
			note.Importance = widget.DangerImportance
			row.Add(note)
		}
		r.rows.Add(widget.NewLabelWithStyle("shard "+name, fyne.TextAlignTrailing, fyne.TextStyle{}))
		r.rows.Add(row)
	}
	r.obj.Hidden = len(r.selects) == 0
	r.obj.Refresh()
}

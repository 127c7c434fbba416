package ui

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"
)

// hostMap is the Shard addresses table under the forms: one row per source shard
// member as the cluster names it (listShards, as the last validation found them),
// and where this workstation reaches it. A row left empty dials the name as it is.
// Both connections carry the map (the CLI's --host-map); Validate checks it by
// connecting through it, and says per row what could not be resolved or reached.
type hostMap struct {
	a        *App
	onChange func()
	// m holds the rows' addresses as typed, by the name the cluster gives.
	m map[string]string
	// hosts are the last validation's shard members.
	hosts   []ShardHost
	rows    *fyne.Container
	fields  map[string]*widget.Entry
	problem *widget.Label
	obj     *fyne.Container
}

func newHostMap(a *App, onChange func()) *hostMap {
	h := &hostMap{a: a, onChange: onChange, m: map[string]string{}, fields: map[string]*widget.Entry{}}
	h.rows = container.New(layout.NewFormLayout())
	h.problem = wrapped("")
	h.problem.Importance = widget.DangerImportance
	h.problem.Hide()
	head := widget.NewLabelWithStyle("Shard addresses", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	h.obj = container.NewVBox(widget.NewSeparator(), head,
		wrapped("Shardlift reads each source shard directly, at the names the cluster gives its members. Where a name resolves only inside the cluster's network (private DNS, Kubernetes services, cloud private addresses), give the host:port this workstation reaches that member at: a VPN address, a tunnel, a load balancer's port. Leave a row empty to connect to the name as it is."),
		h.rows, h.problem)
	h.obj.Hide()
	return h
}

func (h *hostMap) view() fyne.CanvasObject { return h.obj }

// entries is the map the connections carry: the rows given an address; nil when none.
func (h *hostMap) entries() map[string]string {
	out := map[string]string{}
	for from, to := range h.m {
		if to = strings.TrimSpace(to); to != "" {
			out[from] = to
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ready reports whether every address given is a host:port.
func (h *hostMap) ready() bool {
	for _, to := range h.m {
		if to = strings.TrimSpace(to); to != "" && hostPortProblem(to) != "" {
			return false
		}
	}
	return true
}

// show takes the shard members a validation found.
func (h *hostMap) show(hosts []ShardHost) {
	h.hosts = hosts
	h.rebuild()
}

// add takes mappings given with a connection (the sandbox's, a resumed migration's).
func (h *hostMap) add(m map[string]string) {
	maps.Copy(h.m, m)
	h.rebuild()
}

func (h *hostMap) clear() {
	h.m, h.hosts = map[string]string{}, nil
	h.rebuild()
}

// setProblem shows what is wrong with the map as a whole (Validate's FieldError).
func (h *hostMap) setProblem(text string) {
	h.problem.SetText(text)
	if text == "" {
		h.problem.Hide()
	} else {
		h.problem.Show()
	}
}

// focus puts the keyboard focus on the first row.
func (h *hostMap) focus() {
	for _, r := range h.order() {
		h.a.win.Canvas().Focus(h.fields[r])
		return
	}
}

// order is the rows' names: the validation's members in listShards order, then
// mapped names it did not list.
func (h *hostMap) order() []string {
	var names []string
	seen := map[string]bool{}
	for _, sh := range h.hosts {
		if !seen[sh.Host] {
			seen[sh.Host] = true
			names = append(names, sh.Host)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(h.m)) {
		if !seen[n] {
			names = append(names, n)
		}
	}
	return names
}

// rebuild lays the rows out again, keeping what was typed.
func (h *hostMap) rebuild() {
	h.rows.RemoveAll()
	h.fields = map[string]*widget.Entry{}
	problems := map[string]string{}
	shards := map[string]string{}
	for _, sh := range h.hosts {
		problems[sh.Host], shards[sh.Host] = sh.Problem, sh.Shard
	}
	for _, name := range h.order() {
		e := widget.NewEntry()
		e.SetPlaceHolder("reachable-host:port, or empty")
		e.SetText(h.m[name])
		note := wrapped("")
		note.Hide()
		h.fields[name] = e
		showNote := func() {
			text, imp := hostRowNote(e.Text, problems[name])
			note.Importance = imp
			note.SetText(text)
			note.Hidden = text == ""
			note.Refresh()
		}
		showNote()
		e.OnChanged = func(text string) {
			h.m[name] = text
			problems[name] = "" // Validate checks the new address
			showNote()
			h.setProblem("")
			h.onChange()
		}
		label := name
		if s := shards[name]; s != "" {
			label = fmt.Sprintf("%s\n(shard %s)", name, s)
		}
		h.rows.Add(widget.NewLabelWithStyle(label, fyne.TextAlignTrailing, fyne.TextStyle{}))
		h.rows.Add(container.NewVBox(e, note))
	}
	if len(h.fields) == 0 {
		h.obj.Hide()
	} else {
		h.obj.Show()
	}
	h.rows.Refresh()
}

// hostRowNote is what a row says: a malformed address, else why the member could not
// be reached at the last validation and what to do.
func hostRowNote(addr, problem string) (string, widget.Importance) {
	if addr = strings.TrimSpace(addr); addr != "" {
		if p := hostPortProblem(addr); p != "" {
			return p, widget.DangerImportance
		}
	}
	if problem == "" {
		return "", widget.MediumImportance
	}
	if addr == "" {
		return problem + ". If this name resolves only inside the cluster's network, give the address this workstation reaches it at.", widget.DangerImportance
	}
	return problem + ". Check the address given for it.", widget.DangerImportance
}

// hostPortProblem says what is wrong with a host:port, or "" when it is one.
func hostPortProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not host:port (write the port too: 10.0.0.5:27018)", s)
	case host == "":
		return fmt.Sprintf("%q has no host name before the port", s)
	case strings.ContainsAny(host, " \t"):
		return fmt.Sprintf("%q contains a space", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("The port of %q must be a number from 1 to 65535", s)
	}
	return ""
}

package ui

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine/topology"
)

// maxCAFile bounds how much of a chosen CA file is read: a CA bundle is a few KB.
const maxCAFile = 1 << 20

// connectForms are the two connection forms and the last validation of what they
// held. They outlive the Connections screen, so that going back to Before you start
// and returning keeps what was typed.
type connectForms struct {
	a        *App
	src, dst *connForm
	// hosts is the host map both forms' connections carry (the CLI's --host-map).
	hosts *hostMap
	// reads are the source's shards read otherwise (the CLI's --shard-read-preference).
	reads *shardReads
	// gen counts edits; val is the last validation, of the forms as they were at valGen.
	gen, valGen int
	val         *Validation
	// changed and submit are the current Connections screen's hooks.
	changed, submit func()
}

func newConnectForms(a *App) *connectForms {
	f := &connectForms{a: a}
	f.hosts = newHostMap(a, f.edited)
	f.reads = newShardReads(a, f.edited)
	f.src = newConnForm(a, Source, f.hosts, f.edited, f.submitted)
	f.src.shardReads = f.reads
	f.dst = newConnForm(a, Destination, f.hosts, f.edited, f.submitted)
	return f
}

func (f *connectForms) edited() {
	f.gen++
	if f.changed != nil {
		f.changed()
	}
}

func (f *connectForms) submitted() {
	if f.submit != nil {
		f.submit()
	}
}

func (f *connectForms) side(s Side) *connForm {
	if s == Destination {
		return f.dst
	}
	return f.src
}

// ready reports whether both forms can be validated as they are.
func (f *connectForms) ready() bool { return f.src.ready() && f.dst.ready() && f.hosts.ready() }

// validated reports whether the last validation is of the forms as they are now.
func (f *connectForms) validated() bool { return f.val != nil && f.valGen == f.gen }

// takeURIPasswords hides the password of a connection string in either form.
func (f *connectForms) takeURIPasswords() {
	f.src.takeURIPassword()
	f.dst.takeURIPassword()
}

func (f *connectForms) reset() {
	f.src.fill(Connection{})
	f.dst.fill(Connection{})
	f.hosts.clear()
	f.reads.clear()
	f.val = nil
}

// connForm is one cluster's connection form.
type connForm struct {
	a    *App
	side Side

	hosts      *uriEntry
	user, pass *widget.Entry
	// uriPassword is the password taken out of a connection string entered in hosts,
	// which then shows **** in its place (see takeURIPassword).
	uriPassword string
	tls         *widget.Check
	// readPref is the source's read preference (nil on the destination's form).
	readPref *widget.Select
	pem      *escEntry
	caFile   string
	// reading is set while the CA file caFile is read, off the event goroutine;
	// readGen counts the reads, so that the result of one overtaken by another
	// choice (or Clear) is dropped.
	reading       bool
	readGen       int
	fileLabel     *widget.Label
	choose, clear *widget.Button
	notes         map[Field]*widget.Label
	pemState      pemCheck
	// filling is set while fill sets the fields, so that it counts as one edit.
	filling bool

	// The authentication fields (connauth.go); certFile is the chosen client
	// certificate. syncing is set while the URI and these fields update each other.
	mech                  *widget.Select
	props                 *widget.Entry
	keyPass               *widget.Entry
	certFile              string
	certLabel             *widget.Label
	certChoose, certClear *widget.Button
	syncing               bool
	// hostMap is the host map both forms share (hostmap.go).
	hostMap *hostMap
	// shardReads are the source's shards read otherwise (shardreads.go); nil on the
	// destination's form.
	shardReads *shardReads

	onChange, onSubmit func()
	obj                fyne.CanvasObject
}

func newConnForm(a *App, side Side, hm *hostMap, onChange, onSubmit func()) *connForm {
	f := &connForm{a: a, side: side, hostMap: hm, onChange: onChange, onSubmit: onSubmit, notes: map[Field]*widget.Label{}}
	f.hosts = newURIEntry(f.takeURIPassword)
	f.hosts.SetPlaceHolder("db1:27017,db2:27017 or mongodb://…")
	f.user = widget.NewEntry()
	f.user.SetPlaceHolder("empty without authentication")
	f.pass = widget.NewPasswordEntry()
	f.tls = widget.NewCheck("Use TLS", nil)
	f.pem = newEscEntry(nil)
	f.pem.MultiLine = true
	f.pem.Wrapping = fyne.TextWrapOff
	f.pem.SetMinRowsVisible(3)
	f.pem.SetPlaceHolder("Paste the CA certificate (PEM)\nor choose a file.\nLeave empty for a public CA.")
	// The file's name first, then its folder: a long path wraps instead of hiding
	// the name behind an ellipsis.
	f.fileLabel = widget.NewLabel("")
	f.fileLabel.Wrapping = fyne.TextWrapBreak
	f.fileLabel.Hide()
	f.choose = widget.NewButtonWithIcon("Choose file…", theme.FolderOpenIcon(), f.chooseFile)
	f.clear = widget.NewButtonWithIcon("Clear", theme.ContentClearIcon(), f.clearCA)
	f.clear.Importance = widget.LowImportance
	for _, fl := range []Field{FieldHosts, FieldUsername, FieldPassword, FieldTLS, FieldCA, FieldReadPreference} {
		n := wrapped("")
		n.Hide()
		f.notes[fl] = n
	}
	f.newAuthFields()

	f.hosts.OnChanged = func(string) { f.changedField(FieldHosts) }
	f.user.OnChanged = func(string) { f.changedField(FieldUsername) }
	f.pass.OnChanged = func(string) { f.changedField(FieldPassword) }
	f.tls.OnChanged = func(bool) { f.changedField(FieldTLS) }
	f.pem.OnChanged = func(string) { f.changedField(FieldCA) }
	for _, e := range []*widget.Entry{&f.hosts.Entry, f.user, f.pass, f.keyPass} {
		e.OnSubmitted = func(string) {
			f.takeURIPassword()
			f.onSubmit()
		}
	}

	title, what := "Source cluster", "Any mongos of the sharded cluster to migrate from."
	if side == Destination {
		title, what = "Destination cluster", "Any mongos of the sharded cluster to migrate into."
	}
	label := func(s string) fyne.CanvasObject {
		l := widget.NewLabelWithStyle(s, fyne.TextAlignTrailing, fyne.TextStyle{})
		return container.NewVBox(l)
	}
	ca := container.NewVBox(
		container.NewHBox(f.choose, f.clear),
		f.fileLabel, f.pem, f.notes[FieldCA])
	rows := []fyne.CanvasObject{
		label("Mongos hosts"), container.NewVBox(f.hosts, f.notes[FieldHosts]),
		label("Authentication"), container.NewVBox(f.mech, f.notes[FieldMechanism]),
		label("Username"), container.NewVBox(f.user, f.notes[FieldUsername]),
		label("Password"), container.NewVBox(f.pass, f.notes[FieldPassword]),
	}
	rows = append(rows, f.authRows(label)...)
	rows = append(rows,
		label("TLS"), container.NewVBox(f.tls, f.notes[FieldTLS]),
		label("CA certificate"), ca)
	form := container.New(layout.NewFormLayout(), rows...)
	if side == Source {
		f.readPref = widget.NewSelect(readPreferenceChoices(), func(string) { f.changedField(FieldReadPreference) })
		f.readPref.SetSelected(readPreferenceDefault)
		form.Add(label("Read shards from"))
		form.Add(container.NewVBox(f.readPref, wrapped(readPreferenceHelp), f.notes[FieldReadPreference]))
	}
	head := widget.NewLabelWithStyle(title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	f.obj = container.NewVBox(head, wrapped(what), form)
	f.refreshCA()
	f.refreshAuth()
	f.refreshCert()
	return f
}

func (f *connForm) view() fyne.CanvasObject { return f.obj }

// changedField re-checks a field after an edit and drops the backend's note on it.
func (f *connForm) changedField(fl Field) {
	switch fl {
	case FieldHosts:
		if !strings.Contains(f.hosts.Text, maskedUserInfo) {
			f.uriPassword = "" // the masked password was edited away
		}
		f.setNote(FieldHosts, levelError, hostsProblem(f.hosts.Text))
		f.authFromURI()
		f.refreshAuth()
	case FieldMechanism, FieldMechanismProperties, FieldClientCert:
		f.setNote(fl, levelError, "")
		f.authToURI(fl)
		f.refreshAuth()
		f.refreshCert()
	case FieldCA, FieldTLS:
		if fl == FieldCA && f.caFile == "" {
			f.pemState = checkPEM(f.pem.Text, f.a.now())
		}
		f.refreshCA()
	default:
		f.setNote(fl, levelError, "")
	}
	if !f.filling {
		f.onChange()
	}
}

// setNote shows text under a field, or hides the note when text is empty.
func (f *connForm) setNote(fl Field, l level, text string) {
	n := f.notes[fl]
	n.Importance = map[level]widget.Importance{
		levelInfo: widget.SuccessImportance, levelWarning: widget.WarningImportance, levelError: widget.DangerImportance,
	}[l]
	n.SetText(text)
	if text == "" {
		n.Hide()
	} else {
		n.Show()
	}
}

// refreshCA shows the CA widgets for the TLS toggle and what the CA field holds.
func (f *connForm) refreshCA() {
	// The chosen file, or the paste field: also with TLS off, so that a file cleared
	// meanwhile (a new migration after the sandbox's) is not shown.
	if f.caFile != "" {
		f.fileLabel.SetText(fileText(f.caFile))
		f.fileLabel.Show()
		f.pem.Hide()
	} else {
		f.fileLabel.Hide()
		f.pem.Show()
	}
	if !f.tls.Checked {
		f.choose.Disable()
		f.clear.Disable()
		f.pem.Disable()
		text := ""
		if f.caFile != "" || strings.TrimSpace(f.pem.Text) != "" {
			text = "TLS is off: the CA certificate is not used."
		}
		f.setNote(FieldCA, levelWarning, text)
		return
	}
	f.choose.Enable()
	f.pem.Enable()
	if f.caFile != "" || f.pem.Text != "" {
		f.clear.Enable()
	} else {
		f.clear.Disable()
	}
	switch p := f.pemState; {
	case f.reading:
		f.setNote(FieldCA, levelInfo, "Reading the CA file…")
	case p.Err != nil:
		f.setNote(FieldCA, levelError, p.Err.Error())
	case p.Warning != "":
		f.setNote(FieldCA, levelWarning, p.Summary+". "+p.Warning+".")
	case p.Summary != "":
		f.setNote(FieldCA, levelInfo, p.Summary+".")
	default:
		f.setNote(FieldCA, levelInfo, "")
	}
}

func (f *connForm) chooseFile() {
	d := dialog.NewFileOpen(f.chosen, f.a.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".pem", ".crt", ".cer", ".ca"}))
	d.Resize(fyne.NewSize(800, 560))
	f.a.showFileDialog(d)
}

// chosen takes what the file dialog returns: the file is read in the background.
func (f *connForm) chosen(r fyne.URIReadCloser, err error) {
	if err != nil {
		f.setNote(FieldCA, levelError, fmt.Sprintf("Cannot open the CA file: %v", err))
		return
	}
	if r == nil {
		return // the dialog was cancelled
	}
	f.readCAFile(localPath(r.URI()), func() ([]byte, error) {
		defer r.Close()
		return io.ReadAll(io.LimitReader(r, maxCAFile))
	})
}

// readCAFile reads a CA file off the event goroutine. Until the read is over the
// form is not ready, so that Validate cannot run without the certificate, and the
// field says it is being read.
func (f *connForm) readCAFile(path string, read func() ([]byte, error)) {
	f.readGen++
	gen := f.readGen
	f.caFile, f.reading, f.pemState = path, true, pemCheck{}
	f.filling = true
	f.pem.SetText("")
	f.filling = false
	f.refreshCA()
	f.onChange()
	f.a.background(func() func() {
		data, err := read()
		return func() {
			if gen != f.readGen {
				return // another file was chosen, or the field cleared, meanwhile
			}
			f.setCAFile(path, data, err)
		}
	})
}

// setCAFile takes a chosen CA file: its path goes to the backend, its content is
// checked here so that a wrong file is caught before Validate.
func (f *connForm) setCAFile(path string, data []byte, err error) {
	f.readGen++
	f.caFile, f.reading = path, false
	if err != nil {
		f.pemState = pemCheck{Err: fmt.Errorf("cannot read %s: %w", path, err)}
	} else {
		f.pemState = checkPEM(string(data), f.a.now())
		if f.pemState.Err == nil && f.pemState.Summary == "" {
			f.pemState.Err = fmt.Errorf("%s is empty: choose the CA certificate file", path)
		}
	}
	f.filling = true
	f.pem.SetText("")
	f.filling = false
	f.refreshCA()
	f.onChange()
}

func (f *connForm) clearCA() {
	f.readGen++
	f.caFile, f.reading = "", false
	f.pemState = pemCheck{}
	f.filling = true
	f.pem.SetText("")
	f.filling = false
	f.refreshCA()
	f.onChange()
}

// ready reports whether the form can be validated: hosts given and well formed, and
// no unusable CA certificate.
func (f *connForm) ready() bool {
	if strings.TrimSpace(f.hosts.Text) == "" || hostsProblem(f.hosts.Text) != "" {
		return false
	}
	if f.mechanism() == topology.MechanismX509 && f.certFile == "" {
		return false // the certificate is the user
	}
	return !f.tls.Checked || (!f.reading && f.pemState.Err == nil)
}

// maskedUserInfo is what the hosts field shows in place of a connection string's
// password, as topology.MaskURI writes it.
const maskedUserInfo = ":****@"

// takeURIPassword takes the password out of a connection string entered in the hosts
// field: the field shows **** instead, and the password goes to the backend (and the
// keyring) as the Password field's does. It runs once the string is entered: pasted,
// submitted, the field left, or Validate or Start pressed. The password is everything
// between the user's colon and the last @, decoded when it is percent-encoded, so no
// part of it stays on screen, whatever characters it holds.
func (f *connForm) takeURIPassword() {
	text := f.hosts.Text
	if !strings.Contains(text, "://") {
		return
	}
	masked := topology.MaskURI(text)
	if masked == text || strings.Contains(text, maskedUserInfo) && f.uriPassword != "" {
		return // no password, or already taken
	}
	scheme := strings.Index(text, "://") + 3
	userInfo := text[scheme : scheme+strings.LastIndex(text[scheme:], "@")]
	_, pw, _ := strings.Cut(userInfo, ":")
	if decoded, err := url.PathUnescape(pw); err == nil {
		pw = decoded
	}
	f.uriPassword = pw
	f.filling = true // the same connection, not an edit
	f.hosts.SetText(masked)
	f.filling = false
}

// connection is what the form holds, as the backend takes it. A password taken out
// of the connection string is sent as the password, unless the Password field has
// one, which wins as it does over a password written in a connection string.
func (f *connForm) connection() Connection {
	c := Connection{
		Hosts:    strings.TrimSpace(f.hosts.Text),
		Username: strings.TrimSpace(f.user.Text),
		Password: f.pass.Text,
		TLS:      f.tls.Checked,
	}
	if f.uriPassword != "" && strings.Contains(c.Hosts, maskedUserInfo) {
		c.Hosts = strings.Replace(c.Hosts, maskedUserInfo, "@", 1)
		if c.Password == "" {
			c.Password = f.uriPassword
		}
	}
	if f.readPref != nil && f.readPref.Selected != readPreferenceDefault {
		c.ReadPreference = f.readPref.Selected
	}
	if c.TLS {
		if f.caFile != "" {
			c.CAFile = f.caFile
		} else {
			c.CAPEM = strings.TrimSpace(f.pem.Text)
		}
	}
	c.AuthMechanism = f.mechanism()
	if !f.props.Disabled() {
		c.AuthMechanismProperties = strings.TrimSpace(f.props.Text)
	}
	c.CertificateKeyFile, c.CertificateKeyPassword = f.certFile, f.keyPass.Text
	if f.pass.Disabled() {
		c.Password = ""
	}
	c.HostMap = f.hostMap.entries()
	if f.shardReads != nil {
		c.ShardReadPreferences = f.shardReads.entries()
	}
	return c
}

// fill sets every field from c (the sandbox's connections, or empty for a new
// migration). A CA file is read again off the event goroutine.
func (f *connForm) fill(c Connection) {
	f.filling = true
	f.uriPassword = ""
	f.hosts.SetText(c.Hosts)
	f.user.SetText(c.Username)
	f.pass.SetText(c.Password)
	f.tls.SetChecked(c.TLS)
	if f.readPref != nil {
		sel := readPreferenceDefault
		if c.ReadPreference != "" {
			sel = c.ReadPreference
		}
		f.readPref.SetSelected(sel)
	}
	f.readGen++
	f.caFile, f.reading = "", false
	f.pemState = pemCheck{}
	f.pem.SetText(c.CAPEM)
	f.setMechanism(c.AuthMechanism)
	f.props.SetText(c.AuthMechanismProperties)
	f.certFile = c.CertificateKeyFile
	f.keyPass.SetText(c.CertificateKeyPassword)
	if len(c.HostMap) > 0 {
		f.hostMap.add(c.HostMap)
	}
	if f.shardReads != nil && len(c.ShardReadPreferences) > 0 {
		f.shardReads.add(c.ShardReadPreferences)
	}
	for fl := range f.notes {
		f.setNote(fl, levelError, "")
	}
	f.changedField(FieldHosts)
	f.changedField(FieldCA)
	f.refreshCert()
	f.takeURIPassword()
	f.filling = false
	f.onChange()
	if c.CAFile != "" {
		path := c.CAFile
		f.readCAFile(path, func() ([]byte, error) { return readFile(path) })
	}
}

// focus puts the keyboard focus on a field.
func (f *connForm) focus(fl Field) {
	var o fyne.Focusable
	switch fl {
	case FieldHosts:
		o = f.hosts
	case FieldUsername:
		o = f.user
	case FieldPassword:
		o = f.pass
	case FieldTLS:
		o = f.tls
	case FieldReadPreference:
		if f.readPref != nil {
			o = f.readPref
		}
	case FieldCA:
		o = f.pem
		if f.caFile != "" {
			o = f.choose
		}
	case FieldMechanism:
		o = f.mech
	case FieldMechanismProperties:
		o = f.props
	case FieldClientCert:
		o = f.certChoose
	case FieldKeyPassword:
		o = f.keyPass
	case FieldHostMap:
		f.hostMap.focus()
		return
	case FieldShardReadPreferences:
		if f.shardReads != nil {
			f.shardReads.focus()
		}
		return
	}
	f.a.win.Canvas().Focus(o)
}

// readPreferenceDefault is the choice that leaves the connection string's
// readPreference, else topology.DefaultReadPreference.
var readPreferenceDefault = "default (the connection string's, else " + topology.DefaultReadPreference + ")"

// readPreferenceHelp explains the choice under it.
const readPreferenceHelp = "Which members of each shard the copy and the oplog tail read. A secondary spares the " +
	"production primaries; every read is majority-committed, so any member gives the same data, only a member far " +
	"behind makes the sync slower (validation says how far behind each is)."

func readPreferenceChoices() []string {
	return append([]string{readPreferenceDefault}, topology.ReadPreferenceModes...)
}

// localPath is the file of a file dialog's URI as the system writes paths: Fyne's
// file URIs use forward slashes everywhere (C:/Users/dba/ca.pem on Windows), a
// Windows user reads and types C:\Users\dba\ca.pem.
func localPath(u fyne.URI) string { return filepath.FromSlash(u.Path()) }

// fileText names a chosen file: "File: ca.pem" and, on the next line, its folder.
func fileText(path string) string {
	dir, name := filepath.Split(path)
	if dir == "" {
		return "File: " + name
	}
	return "File: " + name + "\nin " + filepath.Clean(dir)
}

func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, maxCAFile))
}

// hostsProblem says what is wrong with a mongos host list, or "" when it looks right
// (or is empty). URIs are left to the driver.
func hostsProblem(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	for _, p := range []string{"mongodb://", "mongodb+srv://"} {
		if strings.HasPrefix(s, p) {
			if rest := strings.TrimPrefix(s, p); rest == "" || strings.HasPrefix(rest, "/") {
				return "The URI names no host: write mongodb://host:port"
			}
			return ""
		}
	}
	if strings.Contains(s, "://") {
		return "Only mongodb:// and mongodb+srv:// URIs are understood"
	}
	if strings.ContainsAny(s, "@/?") {
		return "This looks like part of a URI: start it with mongodb://, or list only host:port pairs"
	}
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return "An empty host between commas: remove the extra comma"
		case strings.ContainsAny(h, " \t"):
			return fmt.Sprintf("%q contains a space: separate hosts with commas", h)
		case !strings.Contains(h, ":"):
			continue // the default port, 27017
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			return fmt.Sprintf("%q is not host:port", h)
		}
		if host == "" {
			return fmt.Sprintf("%q has no host name before the port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("The port of %q must be a number from 1 to 65535", h)
		}
	}
	return ""
}

package ui

import (
	"fmt"
	"net/url"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine/topology"
)

// The authentication part of a connection form: the mechanism and its properties,
// the client certificate and its key's password. A connection string in the hosts
// field and these fields say the same: a URI's authMechanism,
// authMechanismProperties and tlsCertificateKeyFile fill them as it is entered, and
// changing them rewrites those options of the URI. A key password written in the
// URI (tlsCertificateKeyFilePassword) moves to the Key password field, which keeps
// it off the screen.

// mechanismLabels are what the mechanism list shows for each of
// topology.OfferedMechanisms.
var mechanismLabels = map[string]string{
	"":                            "Default (SCRAM)",
	topology.MechanismSCRAMSHA256: "SCRAM-SHA-256",
	topology.MechanismSCRAMSHA1:   "SCRAM-SHA-1",
	topology.MechanismX509:        "MONGODB-X509 (client certificate)",
	topology.MechanismPLAIN:       "PLAIN (LDAP, $external)",
	topology.MechanismAWS:         "MONGODB-AWS (IAM)",
	topology.MechanismGSSAPI:      "GSSAPI (Kerberos)",
}

// URI options the form's fields stand for.
const (
	optMechanism  = "authMechanism"
	optProperties = "authMechanismProperties"
	optCertFile   = "tlsCertificateKeyFile"
	optKeyPass    = "tlsCertificateKeyFilePassword"
)

func mechanismOfLabel(label string) string {
	for m, l := range mechanismLabels {
		if l == label {
			return m
		}
	}
	return ""
}

// newAuthFields adds the authentication widgets to the form.
func (f *connForm) newAuthFields() {
	var labels []string
	for _, m := range topology.OfferedMechanisms() {
		labels = append(labels, mechanismLabels[m])
	}
	f.mech = widget.NewSelect(labels, nil)
	f.mech.SetSelectedIndex(0)
	f.mech.OnChanged = func(string) { f.changedField(FieldMechanism) }
	f.props = widget.NewEntry()
	f.props.SetPlaceHolder("SERVICE_NAME:mongodb")
	f.props.OnChanged = func(string) { f.changedField(FieldMechanismProperties) }
	f.certLabel = widget.NewLabel("")
	f.certLabel.Wrapping = fyne.TextWrapBreak
	f.certLabel.Hide()
	f.certChoose = widget.NewButtonWithIcon("Choose file…", theme.FolderOpenIcon(), f.chooseCert)
	f.certClear = widget.NewButtonWithIcon("Clear", theme.ContentClearIcon(), func() { f.setCertFile("") })
	f.certClear.Importance = widget.LowImportance
	f.keyPass = widget.NewPasswordEntry()
	f.keyPass.SetPlaceHolder("only for an encrypted key")
	f.keyPass.OnChanged = func(string) { f.changedField(FieldKeyPassword) }
	for _, fl := range []Field{FieldMechanism, FieldMechanismProperties, FieldClientCert, FieldKeyPassword} {
		n := wrapped("")
		n.Hide()
		f.notes[fl] = n
	}
}

// mechanism is the chosen mechanism, as topology names it.
func (f *connForm) mechanism() string { return mechanismOfLabel(f.mech.Selected) }

func (f *connForm) setMechanism(m string) {
	label, ok := mechanismLabels[strings.ToUpper(m)]
	if !ok {
		label = mechanismLabels[""]
	}
	f.mech.SetSelected(label)
}

// refreshAuth shows what the mechanism needs: the user's database, the password
// only where it is used, the properties only where they mean something.
func (f *connForm) refreshAuth() {
	m := f.mechanism()
	switch m {
	case topology.MechanismX509:
		f.user.SetPlaceHolder("empty: the name comes from the certificate")
		f.pass.Disable()
	case topology.MechanismAWS:
		f.user.SetPlaceHolder("empty: the keys come from the environment")
		f.pass.Enable()
	default:
		f.user.SetPlaceHolder("empty without authentication")
		f.pass.Enable()
	}
	if m == topology.MechanismAWS || m == topology.MechanismGSSAPI {
		f.props.Enable()
	} else {
		f.props.Disable()
	}
	note := ""
	switch {
	case m == topology.MechanismX509 && f.certFile == "":
		f.setNote(FieldMechanism, levelWarning, "Choose the client certificate below: it is the user's identity.")
		return
	case m != "":
		note = fmt.Sprintf("The user is looked up on %s", topology.DefaultAuthSource(m, ""))
		if m != topology.MechanismX509 && m != topology.MechanismAWS && m != topology.MechanismGSSAPI {
			note += " unless the connection string says authSource="
		}
		note += "."
	}
	f.setNote(FieldMechanism, levelInfo, note)
}

// refreshCert shows the chosen client certificate file.
func (f *connForm) refreshCert() {
	if f.certFile == "" {
		f.certLabel.Hide()
		f.certClear.Disable()
	} else {
		f.certLabel.SetText(fileText(f.certFile))
		f.certLabel.Show()
		f.certClear.Enable()
	}
}

func (f *connForm) chooseCert() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			f.setNote(FieldClientCert, levelError, fmt.Sprintf("Cannot open the client certificate: %v", err))
			return
		}
		if r == nil {
			return // cancelled
		}
		r.Close() // the backend reads it, with the key's password
		f.setCertFile(localPath(r.URI()))
	}, f.a.win)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".pem", ".crt", ".key"}))
	d.Resize(fyne.NewSize(800, 560))
	f.a.showFileDialog(d)
}

// setCertFile takes a chosen client certificate (or "" to clear it); a client
// certificate turns TLS on, as in a connection string.
func (f *connForm) setCertFile(path string) {
	f.certFile = path
	if path != "" && !f.tls.Checked {
		f.tls.SetChecked(true)
	}
	f.changedField(FieldClientCert)
}

// authToURI writes a changed field into the connection string in the hosts field.
func (f *connForm) authToURI(fl Field) {
	text := f.hosts.Text
	if f.syncing || !strings.Contains(text, "://") {
		return
	}
	var key, value string
	switch fl {
	case FieldMechanism:
		key, value = optMechanism, f.mechanism()
	case FieldMechanismProperties:
		key, value = optProperties, strings.TrimSpace(f.props.Text)
	case FieldClientCert:
		key, value = optCertFile, f.certFile
	default:
		return
	}
	if updated := withURIOption(text, key, value); updated != text {
		f.syncing = true
		f.hosts.SetText(updated)
		f.syncing = false
	}
}

// authFromURI fills the fields from the connection string's options, and takes a
// key password out of it.
func (f *connForm) authFromURI() {
	text := f.hosts.Text
	if f.syncing || !strings.Contains(text, "://") {
		return
	}
	f.syncing = true
	defer func() { f.syncing = false }()
	if pw, ok := uriOption(text, optKeyPass); ok {
		f.keyPass.SetText(pw)
		text = withURIOption(text, optKeyPass, "")
		f.hosts.SetText(text)
	}
	if m, ok := uriOption(text, optMechanism); ok {
		f.setMechanism(m)
	}
	if p, ok := uriOption(text, optProperties); ok {
		f.props.SetText(p)
	}
	if c, ok := uriOption(text, optCertFile); ok && c != f.certFile {
		f.certFile = c
		f.refreshCert()
	}
}

// uriOption is the decoded value of a connection string's option (names are
// compared without case, as the driver does) and whether it is there.
func uriOption(uri, key string) (string, bool) {
	_, query, ok := strings.Cut(uri, "?")
	if !ok {
		return "", false
	}
	for _, pair := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if strings.EqualFold(k, key) {
			if d, err := url.QueryUnescape(v); err == nil {
				v = d
			}
			return v, true
		}
	}
	return "", false
}

// withURIOption sets a connection string's option to value, or removes it when value
// is empty; every other option stays as written.
func withURIOption(uri, key, value string) string {
	base, query, _ := strings.Cut(uri, "?")
	var pairs []string
	set := false
	for _, pair := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(pair, "=")
		switch {
		case pair == "":
			continue
		case strings.EqualFold(k, key):
			if value != "" && !set {
				pairs = append(pairs, key+"="+optionEscaper.Replace(value))
				set = true
			}
			continue
		}
		pairs = append(pairs, pair)
	}
	if value != "" && !set {
		pairs = append(pairs, key+"="+optionEscaper.Replace(value))
	}
	if len(pairs) == 0 {
		return base
	}
	if !strings.Contains(base[strings.Index(base, "://")+3:], "/") {
		base += "/" // mongodb://host/?options: the options follow the path
	}
	return base + "?" + strings.Join(pairs, "&")
}

// optionEscaper escapes what an option's value cannot hold as written, leaving paths
// and NAME:VALUE,NAME:VALUE readable.
var optionEscaper = strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", "?", "%3F", "=", "%3D")

// authRows are the form's rows for the authentication fields, after the password.
func (f *connForm) authRows(label func(string) fyne.CanvasObject) []fyne.CanvasObject {
	cert := container.NewVBox(container.NewHBox(f.certChoose, f.certClear), f.certLabel, f.notes[FieldClientCert])
	return []fyne.CanvasObject{
		label("Mechanism properties"), container.NewVBox(f.props, f.notes[FieldMechanismProperties]),
		label("Client certificate"), cert,
		label("Key password"), container.NewVBox(f.keyPass, f.notes[FieldKeyPassword]),
	}
}

package ui

import (
	"errors"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/shardlift/shardlift/engine/topology"
)

// A connection string's authentication options set the form's fields as it is
// entered, and the fields rewrite them: the two never say different things.
func TestMechanismFieldsAndTheConnectionStringStayInStep(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.showConnect("")
	f := h.a.forms.src
	if !f.props.Disabled() {
		t.Fatal("the mechanism properties are open to SCRAM, which has none")
	}
	f.hosts.SetText("mongodb://ldapuser@db1.example:27017/?authMechanism=PLAIN&appName=x")
	if f.mech.Selected != mechanismLabels[topology.MechanismPLAIN] {
		t.Fatalf("mechanism %q after a PLAIN connection string", f.mech.Selected)
	}
	h.mustShow("The user is looked up on $external")

	f.mech.SetSelected(mechanismLabels[topology.MechanismX509])
	if got := f.hosts.Text; !strings.Contains(got, "authMechanism=MONGODB-X509") || strings.Contains(got, "PLAIN") || !strings.Contains(got, "appName=x") {
		t.Fatalf("the connection string after choosing X.509: %s", got)
	}
	if !f.pass.Disabled() {
		t.Fatal("X.509 takes no password, the field stays open")
	}
	h.mustShow("Choose the client certificate below")
	if f.ready() {
		t.Fatal("an X.509 form without its certificate is ready to validate")
	}
	f.setCertFile("/home/dba/client.pem")
	if got := f.hosts.Text; !strings.Contains(got, "tlsCertificateKeyFile=/home/dba/client.pem") {
		t.Fatalf("the connection string after choosing the certificate: %s", got)
	}
	if !f.tls.Checked || !f.ready() {
		t.Fatalf("with the client certificate: TLS %v, ready %v", f.tls.Checked, f.ready())
	}
	h.mustShow("File: client.pem")

	f.mech.SetSelected(mechanismLabels[topology.MechanismAWS])
	if f.props.Disabled() {
		t.Fatal("MONGODB-AWS takes properties, the field stays closed")
	}
	test.Type(f.props, "AWS_ROLE:x")
	if got := f.hosts.Text; !strings.Contains(got, "authMechanismProperties=AWS_ROLE:x") {
		t.Fatalf("the connection string after typing the properties: %s", got)
	}
	c := f.connection()
	if c.AuthMechanism != topology.MechanismAWS || c.AuthMechanismProperties != "AWS_ROLE:x" || c.CertificateKeyFile != "/home/dba/client.pem" {
		t.Fatalf("the form's connection: %+v", c)
	}
}

// A key password written in the connection string leaves it for the Key password
// field, whose text the screen never shows; Validate gets it with the certificate.
func TestKeyPasswordLeavesTheConnectionStringForItsField(t *testing.T) {
	b := &fakeBackend{validation: Validation{Checks: []Check{{Status: Passed, Title: "ok"}}}}
	h := newHarness(t, b)
	fillForms(h)
	f := h.a.forms.dst
	f.hosts.SetText("mongodb://dest.example:27017/?authMechanism=MONGODB-X509&tlsCertificateKeyFile=%2Fetc%2Fssl%2Fme.pem&tlsCertificateKeyFilePassword=k3y%26s3cret")
	if strings.Contains(f.hosts.Text, "k3y") || strings.Contains(strings.ToLower(f.hosts.Text), "password") {
		t.Fatalf("the key password stays in the connection string: %s", f.hosts.Text)
	}
	if f.keyPass.Text != "k3y&s3cret" || f.certFile != "/etc/ssl/me.pem" {
		t.Fatalf("key password %q, certificate %q", f.keyPass.Text, f.certFile)
	}
	h.mustNotShow("k3y")
	h.tap("Validate")
	got := b.validated[0][1]
	if got.CertificateKeyPassword != "k3y&s3cret" || got.CertificateKeyFile != "/etc/ssl/me.pem" || got.AuthMechanism != topology.MechanismX509 || got.Password != "" {
		t.Fatalf("validated destination %+v", got)
	}
}

// A bad client certificate key password comes back under its field.
func TestKeyPasswordErrorPointsAtItsField(t *testing.T) {
	b := &fakeBackend{validateErr: &FieldError{Side: Source, Field: FieldKeyPassword,
		Err: errors.New("the password does not decrypt the private key")}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	note := h.a.forms.src.notes[FieldKeyPassword]
	if !note.Visible() || !strings.Contains(note.Text, "does not decrypt") {
		t.Fatalf("no note under the key password: %q", note.Text)
	}
	if h.a.win.Canvas().Focused() != h.a.forms.src.keyPass {
		t.Fatal("the key password field does not have the focus")
	}
}

// Resuming a migration whose client certificate key is encrypted, when the keyring
// lacks the key's password, asks for that password (and not the users' the keyring
// still gave) and resumes with it.
func TestResumeAsksForAClientKeyPasswordTheKeyringLacks(t *testing.T) {
	m := newFakeMigration(syncing())
	b := &fakeBackend{migrations: listed()[:1], needPw: true, wantPw: &Passwords{DestinationKey: "k3y"},
		needErr: &PasswordsError{Keys: []Side{Destination}, Err: errors.New("the private key is encrypted and no password was given")},
		open:    map[string]*fakeMigration{"m1": m}}
	h := newHarness(t, b)
	h.tap("Resume")
	h.mustShow("Passwords needed")
	h.mustShow("Destination key password")
	h.mustNotShow("Source password")
	var keys []*escEntry
	walk(h.roots()[0], true, func(o fyne.CanvasObject, vis bool) {
		if e, ok := o.(*escEntry); ok && vis && e.Password {
			keys = append(keys, e)
		}
	})
	if len(keys) != 1 {
		t.Fatalf("%d password fields, want the destination key's alone", len(keys))
	}
	test.Type(keys[0], "k3y")
	keys[0].TypedKey(enter)
	h.q.drain()
	if got := b.openCalls[len(b.openCalls)-1].pw; got == nil || *got != *b.wantPw {
		t.Fatalf("last Open got passwords %+v", got)
	}
	if _, ok := h.a.cur.(*monitorScreen); !ok {
		t.Fatalf("screen %T after resuming, want the progress screen", h.a.cur)
	}
}

package ui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

func TestReadyToMigrateNeedsEveryItemTicked(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.showPrepare()
	ready := h.button("I'm ready to migrate")
	for i, it := range prepareItems {
		if !ready.Disabled() {
			t.Fatalf("I'm ready to migrate enabled with %d of %d items ticked", i, len(prepareItems))
		}
		test.Tap(h.check(it.title))
	}
	if ready.Disabled() {
		t.Fatal("I'm ready to migrate disabled with every item ticked")
	}
	h.tap("I'm ready to migrate")
	if _, ok := h.a.cur.(*connectScreen); !ok {
		t.Fatalf("screen %T, want Connections", h.a.cur)
	}
}

func TestValidateNeedsBothClustersHosts(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.showConnect("")
	f := h.a.forms
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate enabled with empty forms")
	}
	h.mustShow("Fill in both clusters' mongos hosts")
	test.Type(f.src.hosts, "db1:27017")
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate enabled without the destination's hosts")
	}
	test.Type(f.dst.hosts, "mongodb+srv://dest.example.net/")
	if h.button("Validate").Disabled() {
		t.Fatal("Validate disabled with both hosts")
	}
	if !h.button("Start migration").Disabled() {
		t.Fatal("Start migration enabled before validating")
	}
	h.mustShow("Validate first")
}

func TestHostsAreCheckedAsTyped(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	fillForms(h)
	f := h.a.forms
	f.src.hosts.SetText("db1:27017,db2:99999")
	h.mustShow(`The port of "db2:99999" must be a number from 1 to 65535`)
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate enabled with a bad port")
	}
	f.src.hosts.SetText("db1:27017,db2:27018")
	h.mustNotShow("must be a number")
	if h.button("Validate").Disabled() {
		t.Fatal("Validate disabled after fixing the port")
	}
}

func TestInvalidPEMIsReportedAsItIsPasted(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	fillForms(h)
	f := h.a.forms
	if !f.src.pem.Disabled() {
		t.Fatal("the CA field is enabled with TLS off")
	}
	test.Tap(f.src.tls)
	test.Type(f.src.pem, "hello")
	h.mustShow("not a PEM certificate: paste the text from -----BEGIN CERTIFICATE-----")
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate enabled with an invalid CA certificate")
	}
	good := string(testCA(t, h.now.Add(-time.Hour), h.now.Add(365*24*time.Hour), true))
	f.src.pem.SetText(good)
	h.mustNotShow("not a PEM certificate")
	h.mustShow("1 certificate: Example Test CA, valid until 2027-11-20.")
	if h.button("Validate").Disabled() {
		t.Fatal("Validate disabled with a valid CA certificate")
	}
	if c := f.src.connection(); c.CAPEM != strings.TrimSpace(good) || c.CAFile != "" || !c.TLS {
		t.Fatalf("connection %+v does not carry the pasted CA", c)
	}
	// TLS off: the CA is not sent, and the form says so.
	test.Tap(f.src.tls)
	h.mustShow("TLS is off: the CA certificate is not used.")
	if c := f.src.connection(); c.CAPEM != "" || c.TLS {
		t.Fatalf("connection %+v sends a CA without TLS", c)
	}
}

func TestCAFileIsCheckedWhenChosen(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	fillForms(h)
	f := h.a.forms.dst
	test.Tap(f.tls)
	f.setCAFile("/home/dba/server.key", []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), nil)
	h.mustShow("this is a private key, not a certificate")
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate enabled with a key as the CA file")
	}
	f.setCAFile("/home/dba/gone.pem", nil, errors.New("permission denied"))
	h.mustShow("cannot read /home/dba/gone.pem: permission denied")
	f.setCAFile("/etc/ssl/ca.pem", testCA(t, h.now.Add(-time.Hour), h.now.Add(time.Hour), true), nil)
	h.mustShow("File: ca.pem\nin /etc/ssl")
	if c := f.connection(); c.CAFile != "/etc/ssl/ca.pem" || c.CAPEM != "" {
		t.Fatalf("connection %+v, want the CA file's path only", c)
	}
	test.Tap(f.clear)
	if c := f.connection(); c.CAFile != "" {
		t.Fatalf("Clear kept the CA file: %+v", c)
	}
}

func TestValidateWaitsUntilTheChosenCAFileIsRead(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	fillForms(h)
	f := h.a.forms.dst
	test.Tap(f.tls)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, testCA(t, h.now.Add(-time.Hour), h.now.Add(time.Hour), true), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := storage.Reader(storage.NewFileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	f.chosen(r, nil) // the read is queued, not done
	h.mustShow("Reading the CA file…")
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate is enabled before the chosen CA file was read")
	}
	f.pass.TypedKey(enter)
	h.mustShow("A CA file is still being read")
	h.q.drain()
	if len(h.b.validated) != 0 {
		t.Fatal("Enter validated before the CA file was read")
	}
	h.mustShow("1 certificate")
	if h.button("Validate").Disabled() {
		t.Fatalf("Validate stays disabled after a good CA file was read; visible: %s", h.textDump())
	}
	// In the system's own path form (Fyne's URIs have forward slashes on Windows too).
	if c := f.connection(); c.CAFile != path {
		t.Fatalf("connection %+v, want the CA file %s", c, path)
	}
	h.mustShow("File: ca.pem\nin " + filepath.Dir(path))
}

func TestUnreadableCAFileIsReportedAtTheField(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	fillForms(h)
	f := h.a.forms.src
	missing := filepath.Join(t.TempDir(), "gone.pem")
	f.fill(Connection{Hosts: "db1.example:27017", TLS: true, CAFile: missing})
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate is enabled while the CA file is read")
	}
	h.q.drain()
	h.mustShow("cannot read " + missing)
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate is enabled with an unreadable CA file")
	}
	if n := f.notes[FieldCA]; !n.Visible() || n.Importance != widget.DangerImportance {
		t.Fatalf("the CA field's note is %q (shown %v): want the error in red", n.Text, n.Visible())
	}
}

func TestAClearedCAFileIsNotBroughtBackByItsRead(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	fillForms(h)
	f := h.a.forms.dst
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, testCA(t, h.now.Add(-time.Hour), h.now.Add(time.Hour), true), 0o600); err != nil {
		t.Fatal(err)
	}
	f.fill(Connection{Hosts: "dest.example:27017", TLS: true, CAFile: path})
	test.Tap(f.clear)
	h.q.drain()
	if c := f.connection(); c.CAFile != "" {
		t.Fatalf("the read of a cleared CA file set it again: %+v", c)
	}
	if h.button("Validate").Disabled() {
		t.Fatal("Validate stays disabled after the CA file was cleared")
	}
}

func TestALongCAFilePathShowsTheFileName(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.win.Resize(fyne.NewSize(1024, 700))
	fillForms(h)
	f := h.a.forms.dst
	test.Tap(f.tls)
	f.setCAFile(longCAPath, testCA(t, h.now.Add(-time.Hour), h.now.Add(time.Hour), true), nil)
	h.settle()
	l := f.fileLabel
	if !strings.HasPrefix(l.Text, "File: prod-eu-internal-root-ca-bundle.pem\n") || !strings.Contains(l.Text, "2026-rotation") {
		t.Fatalf("the file label reads %q: want the file name first, then its folder", l.Text)
	}
	if l.Truncation != fyne.TextTruncateOff || l.Size().Width < l.MinSize().Width || l.Size().Height < l.MinSize().Height {
		t.Fatalf("the file label is cut: size %v, needs %v", l.Size(), l.MinSize())
	}
}

func TestEnterInTheFormValidates(t *testing.T) {
	b := &fakeBackend{validation: Validation{Checks: []Check{{Status: Passed, Title: "Source is a sharded cluster (3 shards)"}}}}
	h := newHarness(t, b)
	fillForms(h)
	h.a.forms.src.hosts.SetText("  db1.example:27017  ")
	h.a.forms.dst.pass.TypedKey(enter)
	h.q.drain()
	if len(b.validated) != 1 {
		t.Fatalf("Enter ran Validate %d times, want 1", len(b.validated))
	}
	want := [2]Connection{
		{Hosts: "db1.example:27017", Username: "migrator", Password: "secret"},
		{Hosts: "dest.example:27017", Username: "migrator", Password: "secret"},
	}
	if !reflect.DeepEqual(b.validated[0], want) {
		t.Fatalf("validated %+v, want %+v", b.validated[0], want)
	}
	h.mustShow("All 1 checks passed.")
	if h.button("Start migration").Disabled() {
		t.Fatal("Start migration disabled although every check passed")
	}
}

func TestValidateShowsProgressAndCanBeStopped(t *testing.T) {
	b := &fakeBackend{validation: sampleValidation()}
	h := newHarness(t, b)
	fillForms(h)
	test.Tap(h.button("Validate"))
	h.mustShow("Connecting to both clusters and running every check…")
	if !h.button("Validate").Disabled() || !h.button("Start migration").Disabled() {
		t.Fatal("Validate and Start migration must be disabled while validating")
	}
	h.tap("Stop")
	h.mustShow("Validation stopped.")
	h.mustNotShow("Source is a sharded cluster")
	if h.findButton("Stop") != nil {
		t.Fatal("Stop is still shown")
	}
}

func TestStartMigrationIsDisabledWhileACheckFailed(t *testing.T) {
	b := &fakeBackend{validation: sampleValidation()}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.mustShow("3 passed, 1 with a warning, 1 failed")
	h.mustShow("Fix: allow this workstation through the firewall of db7:27018")
	h.mustShow("If a check failed, check that:")
	h.mustShow("Fix the failed checks and validate again")
	if !h.button("Start migration").Disabled() {
		t.Fatal("Start migration enabled with a failed check")
	}
	// The firewall was opened: only the warning is left.
	v := sampleValidation()
	v.Checks = append(v.Checks[:2], v.Checks[3:]...)
	b.validation = v
	h.tap("Validate")
	h.mustShow("3 passed, 1 with a warning: read the warnings")
	h.mustNotShow("If a check failed")
	if h.button("Start migration").Disabled() {
		t.Fatal("Start migration disabled with warnings only")
	}
}

// Checks that could not run are counted as not run, as the command line counts them,
// and they block the start as failed ones do.
func TestChecksThatDidNotRunAreCountedAsNotRun(t *testing.T) {
	v := sampleValidation()
	v.Checks = append(v.Checks,
		Check{Status: NotRun, Title: "Oplog window", Detail: `not run because "Shard rs2 member db7:27018 is unreachable" failed`, Fix: "Fix it first."},
		Check{Status: NotRun, Title: "Users and roles", Detail: "not run", Fix: "Fix it first."})
	h := newHarness(t, &fakeBackend{validation: v})
	fillForms(h)
	h.tap("Validate")
	h.mustShow("3 passed, 1 with a warning, 1 failed, 2 not run: fix what failed, then validate again.")
	// Only the failed check failed.
	v.Checks = slices.DeleteFunc(v.Checks, func(c Check) bool { return c.Status == Failed })
	h.b.validation = v
	h.tap("Validate")
	h.mustShow("3 passed, 1 with a warning, 0 failed, 2 not run")
	if !h.button("Start migration").Disabled() {
		t.Fatal("Start migration enabled while checks did not run")
	}
}

func TestEditingAfterValidationRequiresValidatingAgain(t *testing.T) {
	h := newHarness(t, &fakeBackend{validation: Validation{Checks: []Check{{Status: Passed, Title: "ok"}}}})
	fillForms(h)
	h.tap("Validate")
	if h.button("Start migration").Disabled() {
		t.Fatal("Start migration disabled after a clean validation")
	}
	test.Type(h.a.forms.dst.user, "x")
	h.mustShow("The connection details changed: validate again.")
	if !h.button("Start migration").Disabled() {
		t.Fatal("Start migration enabled for details that were not validated")
	}
}

func TestValidationErrorPointsAtTheFieldToFix(t *testing.T) {
	b := &fakeBackend{validateErr: &FieldError{Side: Destination, Field: FieldPassword,
		Err: errors.New("authentication failed for user migrator on dest.example:27017: check the password")}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.mustShow("The checks could not run: check the destination password: authentication failed for user migrator")
	note := h.a.forms.dst.notes[FieldPassword]
	if !note.Visible() || !strings.Contains(note.Text, "check the password") {
		t.Fatalf("no note under the destination password: %q", note.Text)
	}
	if h.a.win.Canvas().Focused() != h.a.forms.dst.pass {
		t.Fatal("the destination password field does not have the focus")
	}
	test.Type(h.a.forms.dst.pass, "x")
	if note.Visible() {
		t.Fatal("the note stays after the password was edited")
	}
	h.mustNotShow("The checks could not run")
}

// The banner of an error about one field says the fix, stays while other fields are
// edited, and goes once that field is.
func TestAFieldErrorBannerShowsTheFixAndGoesWhenTheFieldIsFixed(t *testing.T) {
	b := &fakeBackend{validateErr: &FieldError{Side: Source, Field: FieldCA,
		Err: errors.New("read CA file /home/dba/ca.pem: the CA file cannot be read (no such file or directory)"),
		Fix: "Check the CA file's path and that this user may read it."}}
	h := newHarness(t, b)
	fillForms(h)
	test.Tap(h.a.forms.src.tls)
	h.a.forms.src.pem.SetText(string(testCA(t, h.now.Add(-time.Hour), h.now.Add(time.Hour), true)))
	h.tap("Validate")
	s := h.a.cur.(*connectScreen)
	if !s.banner.Visible() || !strings.Contains(s.banner.text.Text, "the CA file cannot be read") ||
		!strings.Contains(s.banner.text.Text, "Fix: Check the CA file's path") {
		t.Fatalf("banner %q (shown %v), want the error and its fix", s.banner.text.Text, s.banner.Visible())
	}
	test.Type(h.a.forms.dst.user, "x")
	if !s.banner.Visible() {
		t.Fatal("the banner went when another field was edited")
	}
	test.Tap(h.a.forms.src.clear)
	if s.banner.Visible() {
		t.Fatalf("the banner stays after its field was changed: %q", s.banner.text.Text)
	}

	// Enter with a form not ready: the banner goes once both forms are.
	h.a.forms.dst.hosts.SetText("")
	h.a.forms.dst.pass.TypedKey(enter)
	h.mustShow("Fill in the mongos hosts of both clusters")
	test.Type(h.a.forms.dst.hosts, "dest.example:27017")
	h.mustNotShow("Fill in the mongos hosts of both clusters")
}

func TestWipingTheDestinationNeedsExplicitConfirmation(t *testing.T) {
	m := newFakeMigration(syncing())
	b := &fakeBackend{startMig: m, validation: Validation{
		Checks:             []Check{{Status: Passed, Title: "ok"}},
		DestinationHasData: true, DestinationContents: "2 databases (shop, crm) with 1.2 M documents",
		WipeDatabases: []string{"crm", "legacy", "shop"},
	}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.tap("Start migration")
	h.mustShow("It holds 2 databases (shop, crm) with 1.2 M documents.")
	// Every database the wipe drops is named, including one without collections.
	h.mustShow("drops these databases")
	h.mustShow("• crm\n• legacy\n• shop")
	if !h.button("Wipe and start migration").Disabled() {
		t.Fatal("the wipe can be confirmed without ticking the box")
	}
	h.escape()
	if h.dialogs() != 0 || len(b.startCalls) != 0 {
		t.Fatalf("Escape: %d dialogs, %d starts", h.dialogs(), len(b.startCalls))
	}
	h.tap("Start migration")
	box := h.check("Wipe every database on dest.example:27017")
	test.Tap(box)
	if h.button("Wipe and start migration").Disabled() {
		t.Fatal("the wipe cannot be confirmed after ticking the box")
	}
	test.Tap(box)
	if !h.button("Wipe and start migration").Disabled() {
		t.Fatal("unticking the box leaves the wipe confirmable")
	}
	test.Tap(box)
	h.tap("Wipe and start migration")
	if len(b.startCalls) != 1 || !b.startCalls[0].wipe {
		t.Fatalf("start calls %+v, want one with the wipe confirmed", b.startCalls)
	}
	if _, ok := h.a.cur.(*monitorScreen); !ok {
		t.Fatalf("screen %T after starting, want the progress screen", h.a.cur)
	}
}

func TestEscapeInTheWipeDialogClosesItEvenWhenTheBoxHasTheFocus(t *testing.T) {
	b := &fakeBackend{validation: Validation{Checks: []Check{{Status: Passed, Title: "ok"}}, DestinationHasData: true}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.tap("Start migration")
	box := h.check("Wipe every database on dest.example:27017")
	var focus fyne.Focusable
	walk(h.roots()[0], true, func(o fyne.CanvasObject, _ bool) {
		if c, ok := o.(*escCheck); ok && &c.Check == box {
			focus = c
		}
	})
	h.a.win.Canvas().Focus(focus)
	h.escape()
	if h.dialogs() != 0 {
		t.Fatal("Escape with the focus on the check box left the dialog open")
	}
}

func TestStartWithAnEmptyDestinationDoesNotAsk(t *testing.T) {
	b := &fakeBackend{startMig: newFakeMigration(syncing()), validation: Validation{Checks: []Check{{Status: Passed, Title: "ok"}}}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.tap("Start migration")
	if len(b.startCalls) != 1 || b.startCalls[0].wipe {
		t.Fatalf("start calls %+v, want one without a wipe", b.startCalls)
	}
	h.mustShow("Migrating prod-eu:27017 -> atlas-eu:27017")
}

func TestKeyringUnavailableIsANoticeNotAFailure(t *testing.T) {
	b := &fakeBackend{
		startMig:   newFakeMigration(syncing()),
		startErr:   fmt.Errorf("%w: the system keyring is not available; Shardlift will ask for the passwords again when it resumes", ErrKeyringUnavailable),
		validation: Validation{Checks: []Check{{Status: Passed, Title: "ok"}}},
	}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.tap("Start migration")
	s, ok := h.a.cur.(*monitorScreen)
	if !ok {
		t.Fatalf("screen %T, want the progress screen: the migration runs", h.a.cur)
	}
	if s.banner.level != levelWarning || !strings.Contains(s.banner.text.Text, "Shardlift will ask for the passwords again when it resumes") {
		t.Fatalf("banner %d %q, want a warning with the keyring message", s.banner.level, s.banner.text.Text)
	}
	if h.dialogs() != 0 {
		t.Fatal("the keyring notice must not block: no dialog")
	}
}

func TestStartErrorIsShownOnTheConnectionsScreen(t *testing.T) {
	b := &fakeBackend{
		startErr:   errors.New("the source balancer could not be stopped: a chunk migration is running, retry in a minute"),
		validation: Validation{Checks: []Check{{Status: Passed, Title: "ok"}}},
	}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.tap("Start migration")
	h.mustShow("The migration did not start: the source balancer could not be stopped: a chunk migration is running, retry in a minute")
	if h.button("Start migration").Disabled() {
		t.Fatal("Start migration stays disabled after a failed start")
	}
}

// TestTabRunsThroughTheFormsInOrder: source fields, then destination fields, and a
// multi-line CA field does not swallow Tab.
func TestTabRunsThroughTheFormsInOrder(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.showConnect("")
	f := h.a.forms
	test.Tap(f.src.tls)
	c := h.a.win.Canvas()
	c.Focus(f.src.hosts)
	names := map[fyne.Focusable]string{
		f.src.hosts: "src hosts", f.src.mech: "src mechanism", f.src.user: "src user", f.src.pass: "src password",
		f.src.certChoose: "src cert", f.src.keyPass: "src key password", f.src.tls: "src TLS",
		f.src.choose: "src choose", f.src.pem: "src CA",
		f.dst.hosts: "dst hosts", f.dst.mech: "dst mechanism", f.dst.user: "dst user", f.dst.pass: "dst password",
	}
	var got []string
	for range 14 {
		if n, ok := names[c.Focused()]; ok {
			got = append(got, n)
		}
		test.FocusNext(c)
	}
	want := "src hosts,src mechanism,src user,src password,src cert,src key password,src TLS,src choose,src CA,dst hosts,dst mechanism,dst user,dst password"
	if strings.Join(got, ",") != want {
		t.Fatalf("Tab order %v, want %s", got, want)
	}
	if f.src.pem.AcceptsTab() {
		t.Fatal("the CA field takes Tab as text")
	}
}

// TestFailedCheckRendersIconFindingAndFix pins how one failed check is drawn: the
// error icon, the finding in bold, the evidence and the fix in the error colour.
func TestFailedCheckRendersIconFindingAndFix(t *testing.T) {
	test.NewTempApp(t)
	row := checkRow(sampleValidation().Checks[2])
	w := test.NewTempWindow(t, row)
	w.Resize(fyne.NewSize(640, 160))
	settle(w.Canvas())
	test.AssertRendersToMarkup(t, "check_failed.xml", w.Canvas())
}

// A connection string pasted with its password shows **** in its place from then on;
// the password goes to the backend as the Password field's would.
func TestAPastedConnectionStringsPasswordIsMasked(t *testing.T) {
	b := &fakeBackend{validation: Validation{Checks: []Check{{Status: Passed, Title: "ok"}}}}
	h := newHarness(t, b)
	fillForms(h)
	f := h.a.forms.src
	f.user.SetText("")
	f.pass.SetText("")
	f.hosts.SetText("")
	h.a.win.Canvas().Focus(f.hosts)
	clip := h.a.fa.Clipboard()
	clip.SetContent("mongodb://migrator:p%40ss%3Aw0rd-xyz@db1.example:27017/?authSource=admin")
	f.hosts.TypedShortcut(&fyne.ShortcutPaste{Clipboard: clip})
	if got := f.hosts.Text; got != "mongodb://migrator:****@db1.example:27017/?authSource=admin" {
		t.Fatalf("the field shows %q after the paste", got)
	}
	h.mustNotShow("w0rd-xyz")
	// Editing the host keeps the password.
	f.hosts.SetText(strings.Replace(f.hosts.Text, "db1.example", "db2.example", 1))
	h.tap("Validate")
	want := Connection{Hosts: "mongodb://migrator@db2.example:27017/?authSource=admin", Password: "p@ss:w0rd-xyz"}
	if got := b.validated[0][0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("validated %+v, want %+v", got, want)
	}

	// Typed (with an @ left in the password), then the field is left.
	f.hosts.SetText("")
	h.a.win.Canvas().Focus(f.hosts)
	test.Type(f.hosts, "mongodb://migrator:typed@secret@db3.example:27017/")
	h.a.win.Canvas().Focus(f.user)
	if got := f.hosts.Text; got != "mongodb://migrator:****@db3.example:27017/" {
		t.Fatalf("the field shows %q once left", got)
	}
	if c := f.connection(); c.Password != "typed@secret" || c.Hosts != "mongodb://migrator@db3.example:27017/" {
		t.Fatalf("connection %+v", c)
	}
	// The Password field wins, as it does over a connection string's password.
	test.Type(f.pass, "from-the-field")
	if c := f.connection(); c.Password != "from-the-field" {
		t.Fatalf("connection %+v, want the Password field's", c)
	}
	// Taking the password out of the string forgets it.
	f.pass.SetText("")
	f.hosts.SetText("mongodb://migrator@db3.example:27017/")
	if c := f.connection(); c.Password != "" {
		t.Fatalf("a password outlived its removal: %+v", c)
	}

	// Typed and Validate pressed at once.
	f.hosts.SetText("mongodb://migrator:typed-then-validate@db4.example:27017/")
	h.tap("Validate")
	h.mustNotShow("typed-then-validate")
	if got := b.validated[len(b.validated)-1][0]; got.Password != "typed-then-validate" || strings.Contains(got.Hosts, "typed-then") {
		t.Fatalf("validated %+v", got)
	}
}

// A destination held by another migration's marker offers to clear it, only once
// the DBA typed the destination's clusterId; the checks then run again.
func TestAMarkerIsClearedOnlyWithTheClusterIDTyped(t *testing.T) {
	hold := &Hold{ClusterID: "6b15c0ffee0000000000a816", MigrationID: "m20261201-0900-aaaa",
		Marker: "migration m20261201-0900-aaaa (from source cluster 65aa, started 2026-12-01 09:00 UTC on workstation dba-laptop)", Workstation: "dba-laptop"}
	b := &fakeBackend{validation: Validation{
		Checks: []Check{{Status: Failed, Title: "No other migration holds the destination", Fix: "Wait for that migration to end"}},
		HeldBy: hold,
	}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.tap("Clear the marker…")
	h.mustShow("started 2026-12-01 09:00 UTC on workstation dba-laptop")
	h.mustShow("its Shardlift no longer runs on dba-laptop")
	if !h.button("Clear the marker").Disabled() {
		t.Fatal("the marker can be cleared without typing the clusterId")
	}
	var entry *escEntry
	walk(h.roots()[0], true, func(o fyne.CanvasObject, vis bool) {
		if e, ok := o.(*escEntry); ok && vis && e.PlaceHolder == hold.ClusterID {
			entry = e
		}
	})
	if entry == nil {
		t.Fatal("no field for the clusterId in the dialog")
	}
	test.Type(entry, "6b15c0ffee0000000000a81")
	if !h.button("Clear the marker").Disabled() {
		t.Fatal("a clusterId typed short enables the clear")
	}
	test.Type(entry, "6")
	h.tap("Clear the marker")
	h.q.drain()
	if len(b.cleared) != 1 || b.cleared[0] != [2]string{hold.ClusterID, hold.MigrationID} {
		t.Fatalf("cleared %v, want the marker of %s on %s", b.cleared, hold.MigrationID, hold.ClusterID)
	}
	if len(b.validated) != 2 {
		t.Fatalf("%d validations, want the checks run again after the clear", len(b.validated))
	}
	h.mustNotShow("Clear the marker…")
}

// A clear that fails says why and clears nothing.
func TestAMarkerThatCouldNotBeClearedSaysWhy(t *testing.T) {
	hold := &Hold{ClusterID: "6b15", MigrationID: "m1", Marker: "migration m1", Workstation: "w"}
	b := &fakeBackend{clearErr: errors.New("the marker changed meanwhile, it now names migration m2"),
		validation: Validation{Checks: []Check{{Status: Failed, Title: "No other migration holds the destination"}}, HeldBy: hold}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	h.tap("Clear the marker…")
	var entry *escEntry
	walk(h.roots()[0], true, func(o fyne.CanvasObject, vis bool) {
		if e, ok := o.(*escEntry); ok && vis && e.PlaceHolder == hold.ClusterID {
			entry = e
		}
	})
	test.Type(entry, "6b15")
	h.tap("Clear the marker")
	h.q.drain()
	h.mustShow("The marker was not cleared")
	h.mustShow("it now names migration m2")
}

// The source's form has the read preference, explained; the destination's has none.
// The choice goes to Validate with the connection, the default as "" (the
// connection string's, else nearest), and fill shows a connection's again.
func TestSourceReadPreferenceIsChosenInTheSourceForm(t *testing.T) {
	b := &fakeBackend{validation: Validation{Checks: []Check{{Status: Passed, Title: "Source is a sharded cluster (3 shards)"}}}}
	h := newHarness(t, b)
	fillForms(h)
	f := h.a.forms
	if f.src.readPref == nil || f.dst.readPref != nil {
		t.Fatal("the read preference must be on the source's form only")
	}
	h.mustShow("Read shards from")
	h.mustShow("A secondary spares the production primaries")
	if f.src.connection().ReadPreference != "" {
		t.Fatalf("the default sends %q, want \"\"", f.src.connection().ReadPreference)
	}
	f.src.readPref.SetSelected("secondary")
	test.Tap(h.button("Validate"))
	h.q.drain()
	if len(b.validated) != 1 || b.validated[0][0].ReadPreference != "secondary" || b.validated[0][1].ReadPreference != "" {
		t.Fatalf("validated %+v; want the source read from secondaries", b.validated)
	}
	f.src.fill(Connection{Hosts: "db1:27017", ReadPreference: "nearest"})
	if f.src.readPref.Selected != "nearest" {
		t.Fatalf("fill selected %q", f.src.readPref.Selected)
	}
	f.src.fill(Connection{Hosts: "db1:27017"})
	if f.src.readPref.Selected != readPreferenceDefault {
		t.Fatalf("fill of a connection without one selected %q", f.src.readPref.Selected)
	}
}

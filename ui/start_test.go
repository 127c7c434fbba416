package ui

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/shardlift/shardlift/engine"
)

func listed() []MigrationInfo {
	return []MigrationInfo{
		{ID: "m1", Name: "prod-eu -> atlas-eu", State: engine.Syncing, Shards: 3, Lag: 2 * time.Second, LagKnown: true, Updated: t0},
		{ID: "m2", Name: "staging-test -> stage", State: engine.Cancelled, Shards: 2, Lag: 41 * time.Second, LagKnown: true, Updated: t0},
		{ID: "m3", Name: "crm-old -> crm-new", State: engine.Failed, Shards: 2, Updated: t0,
			Reason: "destination crm-new:27017 refused the connection: check that it is running"},
	}
}

func TestStartListsMigrationsWithWhatCanBeDoneToEach(t *testing.T) {
	h := newHarness(t, &fakeBackend{migrations: listed()})
	h.mustShow("prod-eu -> atlas-eu")
	h.mustShow("syncing  ·  3 shards  ·  lag 0:02")
	h.mustShow("cancelled  ·  2 shards  ·  optime gap at cancel 0:41")
	h.mustShow("refused the connection")
	var resume, summary, remove int
	for _, s := range h.buttons() {
		switch s {
		case "Resume":
			resume++
		case "Summary":
			summary++
		case "Remove":
			remove++
		}
	}
	// A running migration cannot be removed; the cancelled and the failed one can.
	if resume != 2 || summary != 1 || remove != 2 {
		t.Fatalf("Resume %d, Summary %d, Remove %d buttons; want 2, 1, 2", resume, summary, remove)
	}
	if h.button("New migration") == nil || h.button("Try with sandbox clusters") == nil {
		t.Fatal("New migration and Try with sandbox clusters must be on the start screen")
	}
}

func TestStartSaysWhyTheListCannotBeRead(t *testing.T) {
	h := newHarness(t, &fakeBackend{migrationsErr: errors.New("another Shardlift is using this state file: close it first")})
	h.mustShow("Cannot read the migrations recorded on this workstation: another Shardlift is using this state file: close it first")
}

func TestRemoveAsksFirst(t *testing.T) {
	b := &fakeBackend{migrations: listed()[1:2]}
	h := newHarness(t, b)
	h.tap("Remove")
	h.mustShow("Its history, checkpoints and saved passwords are deleted")
	h.tap("Keep")
	if len(b.removed) != 0 || h.dialogs() != 0 {
		t.Fatalf("Keep removed %v, dialogs %d", b.removed, h.dialogs())
	}
	h.tap("Remove")
	h.tap("Remove") // the dialog's button
	if !slices.Equal(b.removed, []string{"m2"}) {
		t.Fatalf("removed %v, want m2", b.removed)
	}
	h.mustShow("staging-test -> stage removed.")
	h.mustShow("No migrations yet")
}

func TestRemoveErrorIsShown(t *testing.T) {
	b := &fakeBackend{migrations: listed()[1:2], removeErr: errors.New("the state file is read-only: check its permissions")}
	h := newHarness(t, b)
	h.tap("Remove")
	h.tap("Remove")
	h.mustShow("staging-test -> stage was not removed: the state file is read-only: check its permissions")
}

func TestResumeAsksForPasswordsWhenTheKeyringCannotGiveThem(t *testing.T) {
	m := newFakeMigration(syncing())
	b := &fakeBackend{migrations: listed()[:1], needPw: true, wantPw: &Passwords{Source: "s3cret", Destination: "d3st"},
		open: map[string]*fakeMigration{"m1": m}}
	h := newHarness(t, b)
	h.tap("Resume")
	h.mustShow("Passwords needed")
	h.mustShow("the system keyring is not available")
	src, dst := passwordEntries(t, h)
	test.Type(src, "wrong")
	test.Type(dst, "d3st")
	h.tap("Resume")
	h.mustShow("Not resumed: check the source password: authentication failed")
	if h.dialogs() != 1 {
		t.Fatal("a wrong password must keep the dialog open")
	}
	src.SetText("s3cret")
	src.TypedKey(enter) // Enter submits
	h.q.drain()
	if h.dialogs() != 0 {
		t.Fatalf("the dialog stays open after the right passwords; visible: %q", h.texts())
	}
	if got := b.openCalls[len(b.openCalls)-1].pw; got == nil || *got != *b.wantPw {
		t.Fatalf("last Open got passwords %+v", got)
	}
	if _, ok := h.a.cur.(*monitorScreen); !ok {
		t.Fatalf("screen %T after resuming, want the progress screen", h.a.cur)
	}
}

func TestSummaryOpensAFinishedMigration(t *testing.T) {
	s := syncing()
	s.State = engine.Cancelled
	b := &fakeBackend{migrations: listed()[1:2], open: map[string]*fakeMigration{"m2": newFakeMigration(s)}}
	h := newHarness(t, b)
	h.tap("Summary")
	h.mustShow("Migration cancelled")
}

func TestOpenErrorIsShownOnTheList(t *testing.T) {
	b := &fakeBackend{migrations: listed()[:1], openErr: errors.New("the state file is damaged and cannot be read")}
	h := newHarness(t, b)
	h.tap("Resume")
	h.mustShow("Cannot open prod-eu -> atlas-eu: the state file is damaged and cannot be read")
}

func TestSandboxFillsTheFormsAndOpensConnections(t *testing.T) {
	b := &fakeBackend{
		sandboxSrc: Connection{Hosts: "127.0.0.1:40001", Username: "admin", Password: "sandbox"},
		sandboxDst: Connection{Hosts: "127.0.0.1:40101", Username: "admin", Password: "sandbox"},
	}
	h := newHarness(t, b)
	test.Tap(h.button("Try with sandbox clusters"))
	h.mustShow("Starting two local sharded clusters…")
	if !h.button("Try with sandbox clusters").Disabled() {
		t.Fatal("the sandbox button stays enabled while the sandbox starts")
	}
	h.q.drain()
	if _, ok := h.a.cur.(*connectScreen); !ok {
		t.Fatalf("screen %T, want Connections", h.a.cur)
	}
	if got := h.a.forms.src.connection(); !reflect.DeepEqual(got, b.sandboxSrc) {
		t.Fatalf("source form %+v, want %+v", got, b.sandboxSrc)
	}
	if got := h.a.forms.dst.connection(); !reflect.DeepEqual(got, b.sandboxDst) {
		t.Fatalf("destination form %+v, want %+v", got, b.sandboxDst)
	}
	h.mustShow("The sandbox clusters are running")
	if h.button("Validate").Disabled() {
		t.Fatal("Validate is disabled with the sandbox's connections")
	}
}

func TestSandboxStartCanBeCancelledWithEscape(t *testing.T) {
	b := &fakeBackend{sandboxSrc: Connection{Hosts: "127.0.0.1:40001"}, sandboxDst: Connection{Hosts: "127.0.0.1:40101"}}
	h := newHarness(t, b)
	test.Tap(h.button("Try with sandbox clusters"))
	h.escape()
	if h.dialogs() != 0 {
		t.Fatal("Escape left the sandbox dialog open")
	}
	h.q.drain()
	if _, ok := h.a.cur.(*startScreen); !ok {
		t.Fatalf("screen %T after cancelling, want the start screen", h.a.cur)
	}
}

func TestSandboxErrorIsShown(t *testing.T) {
	h := newHarness(t, &fakeBackend{sandboxErr: errors.New("port 40001 is in use: stop the other sandbox first")})
	h.tap("Try with sandbox clusters")
	h.mustShow("The sandbox clusters did not start: port 40001 is in use: stop the other sandbox first")
}

func TestNewMigrationStartsFromEmptyForms(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.forms.src.fill(Connection{Hosts: "old:27017"})
	h.tap("New migration")
	if _, ok := h.a.cur.(*prepareScreen); !ok {
		t.Fatalf("screen %T, want Before you start", h.a.cur)
	}
	if h.a.forms.src.hosts.Text != "" {
		t.Fatal("New migration kept the old forms")
	}
}

// The sandbox fills the forms with its CA files; a new migration afterwards starts
// from empty forms and shows none of them.
func TestANewMigrationDoesNotInheritTheSandboxCAFile(t *testing.T) {
	h0 := newHarness(t, &fakeBackend{})
	ca := filepath.Join(t.TempDir(), "sandbox-ca.pem")
	if err := os.WriteFile(ca, testCA(t, h0.now.Add(-time.Hour), h0.now.Add(time.Hour), true), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{
		sandboxSrc: Connection{Hosts: "127.0.0.1:40001", Username: "admin", Password: "sandbox", TLS: true, CAFile: ca},
		sandboxDst: Connection{Hosts: "127.0.0.1:40101", Username: "admin", Password: "sandbox", TLS: true, CAFile: ca},
	}
	h := newHarness(t, b)
	h.tap("Try with sandbox clusters")
	h.q.drain()
	h.mustShow("File: sandbox-ca.pem")
	h.tap("Migrations")
	h.tap("New migration")
	h.a.showConnect("")
	h.q.drain()
	h.mustNotShow("sandbox-ca.pem")
	for _, f := range []*connForm{h.a.forms.src, h.a.forms.dst} {
		if c := f.connection(); !reflect.DeepEqual(c, Connection{}) {
			t.Errorf("a new migration's form holds %+v", c)
		}
		test.Tap(f.tls)
		if c := f.connection(); c.CAFile != "" || c.CAPEM != "" {
			t.Errorf("with TLS on, the new form sends the CA %+v", c)
		}
	}
	h.mustNotShow("sandbox-ca.pem")
}

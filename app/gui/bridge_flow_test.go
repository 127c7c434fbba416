package gui

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"

	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/app/logfile"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// These tests run the real bridge, engine and store against the sandbox clusters.

// flowLimit only keeps a broken flow from hanging the test.
const flowLimit = 3 * time.Minute

// awaitSnapshot polls m until cond holds; a failed migration ends the wait.
func awaitSnapshot(t *testing.T, m ui.Migration, what string, cond func(engine.Snapshot) bool) engine.Snapshot {
	t.Helper()
	end := time.Now().Add(flowLimit)
	for {
		s := m.Snapshot()
		if cond(s) {
			return s
		}
		if s.State == engine.Failed || time.Now().After(end) {
			t.Fatalf("never %s: state %s, reason %q, shards %+v", what, s.State, s.Reason, s.Shards)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startCutover starts the cutover once every shard is in sync: under the sandbox's
// load a shard may fall behind, the migration is then syncing until it caught up.
func startCutover(t *testing.T, m ui.Migration) {
	t.Helper()
	var err error
	var ns *engine.NotSyncedError
	awaitSnapshot(t, m, "the cutover started", func(engine.Snapshot) bool {
		err = m.StartCutover(context.Background())
		return !errors.As(err, &ns)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNoSecretInStateFileLogsOrDiagnostics(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	ctx := context.Background()
	k := newMemKeyring()
	b := newTestBridge(t, k, "")
	src, dst, err := b.StartSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	password := src.Password
	if len(password) < 16 || src.Username == "" || !src.TLS || src.CAFile == "" || dst.CAFile == "" || dst.Password != password {
		t.Fatalf("the sandbox connections lack credentials or TLS: %+v", src)
	}
	// The destination is entered as a connection string carrying its password, and a
	// client certificate whose key has a password of its own (the sandbox does not
	// ask for it; the key is decrypted all the same).
	const keyPassword = "Cl1ent-K3y-Passw0rd&"
	certFile := writeEncryptedClientCert(t, keyPassword)
	keptURI := "mongodb://" + dst.Username + "@" + dst.Hosts + "/?authSource=admin&appName=secret-test&tlsCertificateKeyFile=" + url.QueryEscape(certFile)
	dst = ui.Connection{Hosts: strings.Replace(keptURI, "@", ":"+url.PathEscape(dst.Password)+"@", 1) + "&tlsCertificateKeyFilePassword=" + url.QueryEscape(keyPassword), CAFile: dst.CAFile}
	// The source's client certificate and its key password come from the form's
	// fields, with a host map (for a member the sandbox does not have).
	const srcKeyPassword = "Src-K3y-Passw0rd#"
	src.CertificateKeyFile, src.CertificateKeyPassword = writeEncryptedClientCert(t, srcKeyPassword), srcKeyPassword
	src.HostMap = map[string]string{"unused-member.cluster.internal:27018": "127.0.0.1:9"}

	v, err := b.Validate(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Checks {
		if c.Status == ui.Failed {
			t.Fatalf("check failed on the sandbox: %+v", c)
		}
	}
	mig, err := b.Start(ctx, src, dst, false)
	if err != nil {
		t.Fatal(err)
	}
	id := mig.Snapshot().ID
	if pw, err := k.Get(id, store.RoleSource); err != nil || pw != password {
		t.Errorf("the source password is not in the keyring: %q, %v", pw, err)
	}
	if pw, err := k.Get(id, store.RoleDestination); err != nil || pw != password {
		t.Errorf("the password of the destination's connection string is not in the keyring: %q, %v", pw, err)
	}
	if pw, err := k.Get(id, store.RoleDestinationKey); err != nil || pw != keyPassword {
		t.Errorf("the destination's client key password is not in the keyring: %q, %v", pw, err)
	}
	if pw, err := k.Get(id, store.RoleSourceKey); err != nil || pw != srcKeyPassword {
		t.Errorf("the source's client key password is not in the keyring: %q, %v", pw, err)
	}
	began := time.Now()
	awaitSnapshot(t, mig, "ready", func(s engine.Snapshot) bool { return s.State == engine.Ready })
	t.Logf("ready %v after the start", time.Since(began).Round(time.Millisecond))
	startCutover(t, mig)
	began = time.Now()
	awaitSnapshot(t, mig, "optime gap 0:00", func(s engine.Snapshot) bool { return s.OptimeGapKnown && s.OptimeGap == 0 })
	t.Logf("gap 0:00 %v after the cutover started (the sandbox load stopped with it)", time.Since(began).Round(time.Millisecond))
	if err := mig.Done(ctx, false); err != nil {
		t.Fatalf("I'm done: %v", err)
	}
	final := mig.Snapshot()
	if final.State != engine.Done || !final.Verification.OK() {
		t.Fatalf("after I'm done: state %s, verification %+v", final.State, final.Verification)
	}
	t.Logf("done: %d documents copied, %s", final.Overall.DocsCopied, final.Reason)

	var diag bytes.Buffer
	if err := b.ExportDiagnostics(ctx, id, &diag); err != nil {
		t.Fatal(err)
	}
	files := readZip(t, diag.Bytes())
	for _, name := range []string{"README.txt", "migration.json", "checkpoints.json", "snapshot.json", "log.txt", "migration.log", "version.json"} {
		if _, ok := files[name]; !ok {
			t.Errorf("the diagnostics lack %s", name)
		}
	}
	var rec diagnostics.Migration
	if err := json.Unmarshal(files["migration.json"], &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Source.Hosts[0] != src.Hosts || rec.Source.Username != src.Username || !rec.Source.TLS || rec.Source.CAFile != src.CAFile ||
		rec.Source.CertificateKeyFile != src.CertificateKeyFile || !reflect.DeepEqual(rec.Source.HostMap, src.HostMap) ||
		rec.State != string(engine.Done) || len(rec.History) == 0 {
		t.Errorf("migration.json does not hold the settings and history: %+v", rec)
	}
	var shards []diagnostics.Shard
	if err := json.Unmarshal(files["checkpoints.json"], &shards); err != nil || len(shards) != 2 {
		t.Errorf("checkpoints.json: %v, %d shards, want 2", err, len(shards))
	}
	if !strings.Contains(string(files["log.txt"]), "migration starting") {
		t.Errorf("log.txt lacks the app's log lines:\n%s", files["log.txt"])
	}

	logs := strings.Join(b.ring.Lines(), "\n") + b.stderr.String()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The migration's own log file, next to the state file.
	var logFile []byte
	for _, path := range logfile.Files(filepath.Join(diagnostics.LogDir(b.path), id+".log")) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		logFile = append(logFile, data...)
	}
	for _, want := range []string{"migration starting", "to=syncing", "to=done", "source balancer"} {
		if !bytes.Contains(logFile, []byte(want)) {
			t.Errorf("the migration's log file lacks %q:\n%s", want, logFile)
		}
	}
	stateFile, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(stateFile, []byte(keptURI)) {
		t.Errorf("the state file lacks the destination's connection string without its password, %s", keptURI)
	}
	forms := []string{password, url.QueryEscape(password), keyPassword, url.QueryEscape(keyPassword), keyPassword[:len(keyPassword)-1],
		srcKeyPassword, url.QueryEscape(srcKeyPassword)}
	for where, data := range map[string][]byte{"the state file": stateFile, "the logs": []byte(logs), "the migration's log file": logFile} {
		for _, f := range forms {
			if bytes.Contains(data, []byte(f)) {
				t.Errorf("%s holds the password", where)
			}
		}
	}
	if !bytes.Contains(files["migration.json"], []byte(jsonText(keptURI))) {
		t.Errorf("the diagnostics lack the destination's connection string without its password, %s", keptURI)
	}
	for name, data := range files {
		for _, f := range forms {
			if bytes.Contains(data, []byte(f)) {
				t.Errorf("diagnostics file %s holds the password", name)
			}
		}
	}
}

// jsonText is s as encoding/json writes it inside a string.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func readZip(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	z, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return out
}

// startBeforeClosing starts a migration in a first window's bridge (secrets in k) on
// sandbox clusters that belong to another bridge: the clusters outlive the first
// window, as real clusters do, while it hands its migration over or pauses it.
func startBeforeClosing(t *testing.T, k secretStore) (host, first *testBridge, mig ui.Migration) {
	t.Helper()
	ctx := context.Background()
	host = newTestBridge(t, newMemKeyring(), "")
	src, dst, err := host.StartSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first = newTestBridge(t, k, "")
	if mig, err = first.Start(ctx, src, dst, false); err != nil {
		t.Fatal(err)
	}
	return host, first, mig
}

// TestReopeningTakesOverAMigrationSyncingInTheBackground: the window's close
// button during a migration, answered Keep syncing in the background, leaves it
// syncing in this process; a new window takes it over, resumes it at once, and the
// resumed migration finishes with every range verified.
func TestReopeningTakesOverAMigrationSyncingInTheBackground(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	ctx := context.Background()
	k := newMemKeyring()
	host, first, mig := startBeforeClosing(t, k)
	id := mig.Snapshot().ID
	awaitSnapshot(t, mig, "syncing", func(s engine.Snapshot) bool { return s.State == engine.Syncing })
	// The window's close button asks; Keep syncing in the background hands the
	// migration to this process, which runs on headless (Run's keepSyncing).
	closeWindowAnswering(t, first, "Keep syncing in the background")
	if !mig.(*liveMigration).active() {
		t.Fatal("the migration stopped when the window closed")
	}
	var bgOut syncBuffer
	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		keepSyncing(bgCtx, first.bridge, first.path, &bgOut)
	}()

	// The new window finds the state file held and asks for it.
	var out syncBuffer
	var st *store.Store
	var handed []string
	var err error
	for end := time.Now().Add(flowLimit); ; {
		st, handed, err = openStateFile(ctx, first.path, &out)
		if !errors.Is(err, store.ErrLocked) || time.Now().After(end) {
			break // the background process may not listen yet on the first try
		}
	}
	if err != nil {
		t.Fatalf("take the state file over: %v (background: %s)", err, bgOut.String())
	}
	if len(handed) != 1 || handed[0] != id {
		t.Fatalf("the background process handed over %q, want [%s]", handed, id)
	}
	<-bgDone
	if !strings.Contains(bgOut.String(), "keeps syncing") && !strings.Contains(bgOut.String(), "syncing continues in the background") {
		t.Errorf("the background process did not say it kept syncing:\n%s", bgOut.String())
	}
	if mig.(*liveMigration).active() {
		t.Error("the background process still runs the migration after the handover")
	}
	second := newTestBridgeOn(t, k, st, first.path)
	list, err := second.Migrations(ctx)
	if err != nil || len(list) != 1 || (list[0].State != engine.Syncing && list[0].State != engine.Ready) {
		t.Fatalf("the new window's list: %+v, %v", list, err)
	}
	// As Run does: the new window resumes what it took over, without a click:
	// the user asked it to keep syncing.
	resumeHandedOver(ctx, second.bridge, handed)
	if l := second.live(id); l == nil || !l.active() {
		t.Fatal("the new window did not resume the migration it took over")
	}
	again, err := second.Open(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	awaitSnapshot(t, again, "ready after the resume", func(s engine.Snapshot) bool { return s.State == engine.Ready })
	// Finishing proves the resumed replay applied what the load wrote meanwhile:
	// I'm done verifies every range of source and destination.
	startCutover(t, again)
	host.stopSandboxLoad("the test's cutover")
	awaitSnapshot(t, again, "optime gap 0:00", func(s engine.Snapshot) bool { return s.OptimeGapKnown && s.OptimeGap == 0 })
	if err := again.Done(ctx, false); err != nil {
		t.Fatalf("I'm done after the resume: %v", err)
	}
	if s := again.Snapshot(); s.State != engine.Done || !s.Verification.OK() {
		t.Errorf("after the resume and I'm done: state %s, verification %+v", s.State, s.Verification)
	}
}

func TestASandboxMigrationStaysWithTheProcessThatRunsItsClusters(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	ctx := context.Background()
	b := newTestBridge(t, newMemKeyring(), "")
	src, dst, err := b.StartSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mig, err := b.Start(ctx, src, dst, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := mig.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	var bgOut syncBuffer
	bgCtx, stopBg := context.WithCancel(ctx)
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		keepSyncing(bgCtx, b.bridge, b.path, &bgOut)
	}()
	var out syncBuffer
	var refused *handoverRefused
	for end := time.Now().Add(flowLimit); ; {
		_, _, err = openStateFile(ctx, b.path, &out)
		if errors.As(err, &refused) || time.Now().After(end) {
			break // the background process may not listen yet on the first try
		}
	}
	if !errors.As(err, &refused) || !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "sandbox clusters") {
		t.Fatalf("a new window took a sandbox migration over: %v", err)
	}
	if !mig.(*liveMigration).active() {
		t.Error("the refused handover stopped the migration")
	}
	stopBg()
	<-bgDone
	if !strings.Contains(bgOut.String(), "pause at their checkpoints") {
		t.Errorf("a signal did not say the migrations pause:\n%s", bgOut.String())
	}
}

func TestGUIValidatesTheSandboxClusters(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	a := newSerialApp(t)
	b := newTestBridge(t, newMemKeyring(), "")
	u := ui.New(a, b)
	t.Cleanup(u.Window().Close)
	d := screenDriver{win: u.Window()}
	ctx := context.Background()
	if err := d.tap(ctx, "Try with sandbox clusters", flowLimit); err != nil {
		t.Fatal(err)
	}
	if err := d.awaitForms(ctx, flowLimit); err != nil {
		t.Fatal(err)
	}
	if err := d.tap(ctx, "Validate", flowLimit); err != nil {
		t.Fatal(err)
	}
	var summary string
	if err := await(ctx, flowLimit, "the validation's summary", func() bool {
		summary = d.validationSummary()
		return summary != ""
	}); err != nil {
		t.Fatalf("%v; the window shows:\n%s", err, strings.Join(d.texts(""), "\n"))
	}
	if strings.Contains(summary, "failed") {
		t.Fatalf("validation on the sandbox: %s", summary)
	}
	t.Logf("validation: %s", summary)
	warnsOfMoves := false
	for _, w := range d.texts("") {
		if strings.Contains(w, "Fix:") {
			t.Logf("  %s", w)
		}
		warnsOfMoves = warnsOfMoves || strings.Contains(w, "No chunk or collection moves during the migration")
	}
	if !warnsOfMoves {
		t.Error("the check list does not warn the DBA against moving chunks during the migration")
	}
	if _, enabled := d.button("Start migration"); !enabled {
		t.Error("Start migration is not enabled after a validation without failures")
	}
}

// TestClosingTheWindowToPauseThenReopeningResumes walks the close question of the
// real window over the real bridge: Pause and close stops the sync at its
// checkpoints, and a new process (a new bridge on the same state file) resumes it
// from the list, replaying from the checkpoint.
func TestClosingTheWindowToPauseThenReopeningResumes(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	ctx := context.Background()
	k := newMemKeyring()
	_, first, mig := startBeforeClosing(t, k)
	id := mig.Snapshot().ID
	awaitSnapshot(t, mig, "ready", func(s engine.Snapshot) bool { return s.State == engine.Ready })

	closeWindowAnswering(t, first, "Pause and close")
	if mig.(*liveMigration).active() {
		t.Fatal("the migration still syncs after Pause and close")
	}
	paused := mig.Snapshot()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := newTestBridge(t, k, first.path)
	u2 := ui.New(newSerialApp(t), second)
	t.Cleanup(func() { fyne.DoAndWait(u2.Window().Close) })
	d2 := screenDriver{win: u2.Window()}
	if err := d2.tap(ctx, "Resume", flowLimit); err != nil {
		t.Fatal(err)
	}
	if err := d2.waitFor(ctx, "Cut over within", flowLimit); err != nil {
		t.Fatal(err)
	}
	again, err := second.Open(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.(*liveMigration).active() {
		t.Fatal("reopening did not resume the migration")
	}
	resumed := func(s engine.Snapshot) bool {
		n := 0
		for _, e := range s.History[len(paused.History):] {
			if strings.HasPrefix(e.Reason, "resumed from the checkpoint") {
				n++
			}
		}
		return n == len(s.Shards) && s.State == engine.Ready
	}
	awaitSnapshot(t, again, "every shard resumed from its checkpoint and ready", resumed)
}

// closeWindowAnswering opens the window over b, resumes (attaches to) its one
// migration from the list, presses the window's close button and answers the
// question with the button labelled answer, then waits for the window to close.
func closeWindowAnswering(t *testing.T, b *testBridge, answer string) {
	t.Helper()
	ctx := context.Background()
	u := ui.New(newSerialApp(t), b)
	d := screenDriver{win: u.Window()}
	if err := d.tap(ctx, "Resume", flowLimit); err != nil {
		t.Fatal(err)
	}
	if err := d.waitFor(ctx, "Cancel migration", flowLimit); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	fyne.DoAndWait(func() {
		u.Window().SetOnClosed(func() { close(closed) })
		u.RequestClose()
	})
	if err := d.tap(ctx, answer, flowLimit); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(flowLimit):
		t.Fatalf("%s did not close the window", answer)
	}
}

package gui

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/app/logfile"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/store"
)

// Records naming a migration, through the logger (as the engine's carries it) or the
// call (as the app logs), land in that migration's file; others land in none. No
// secret reaches the file: neither a password the app saw nor one in a connection
// string it did not.
func TestMigrationLogsGetTheRecordsOfTheirMigrationWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	secrets := &secretSet{}
	secrets.add("seen-Passw0rd")
	logs := newMigrationLogs(dir, secrets)
	defer logs.Close()
	ring := newLogRing(100, secrets)
	log := newAppLogger(ring, &bytes.Buffer{}, secrets, logs)

	engineLog := log.With("migration", "m1")
	engineLog.Info("migration state", "from", "draft", "to", "validated")
	engineLog.WithGroup("shard").Info("phase", "name", "rs0", "to", "copying")
	log.Info("migration starting", "migration", "m2", "name", "mongodb://migrator:seen-Passw0rd@src:27017/ -> dst:27017")
	log.Info("validated", "source", "mongodb://u:other-S3cret@h:1/?tls=true&tlsCertificateKeyFilePassword=key-Passw0rd")
	log.Warn("the state file is not available")
	log.Debug("below info", "migration", "m1")

	read := func(id string) string {
		data, err := os.ReadFile(logs.Path(id))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	m1, m2 := read("m1"), read("m2")
	for _, want := range []string{"msg=\"migration state\" migration=m1 from=draft to=validated", "msg=phase migration=m1 shard.name=rs0"} {
		if !strings.Contains(m1, want) {
			t.Errorf("m1's log lacks %q:\n%s", want, m1)
		}
	}
	if strings.Count(m1, "\n") != 2 || !strings.Contains(m2, "migration starting") || strings.Count(m2, "\n") != 1 {
		t.Errorf("a record went to the wrong log, or to none:\nm1:\n%s\nm2:\n%s", m1, m2)
	}
	if p := logs.Path("../../etc/m1"); filepath.Dir(p) != dir {
		t.Errorf("an id with slashes names %s, outside the log folder", p)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 2 {
		t.Errorf("the log folder holds %v (%v), want m1's and m2's logs only", entries, err)
	}
	all := m1 + m2 + strings.Join(ring.lines(), "\n")
	for _, secret := range []string{"seen-Passw0rd", "other-S3cret", "key-Passw0rd"} {
		if strings.Contains(all, secret) {
			t.Errorf("the logs hold %s:\n%s", secret, all)
		}
	}
	if !strings.Contains(all, "mongodb://u@h:1/?tls=true") {
		t.Errorf("the connection string lost more than its secrets:\n%s", all)
	}
}

// Open log: the desktop's opener gets the file; when it fails, or when there is no
// file, the error says why and the path is still given.
func TestOpenLogHandsTheFileToTheDesktopOpener(t *testing.T) {
	b := newTestBridge(t, newMemKeyring(), "")
	b.log.Info("migration starting", "migration", "m1")
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	got := filepath.Join(t.TempDir(), "opened")
	writeOpener := func(script string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	writeOpener(`echo "$1" > ` + got + "\n")
	path, err := b.OpenLog(context.Background(), "m1")
	if err != nil || path != filepath.Join(logDir(b.path), "m1.log") {
		t.Fatalf("OpenLog = %q, %v", path, err)
	}
	if data, err := os.ReadFile(got); err != nil || strings.TrimSpace(string(data)) != path {
		t.Fatalf("the opener got %q (%v), want %s", data, err, path)
	}

	writeOpener("echo 'xdg-open: no method available for opening' >&2\nexit 3\n")
	if p, err := b.OpenLog(context.Background(), "m1"); p != path || err == nil || !strings.Contains(err.Error(), "no method available") {
		t.Fatalf("failing opener: %q, %v", p, err)
	}
	os.Remove(filepath.Join(bin, "xdg-open"))
	if p, err := b.OpenLog(context.Background(), "m1"); p != path || err == nil || !strings.Contains(err.Error(), "xdg-open") {
		t.Fatalf("no opener: %q, %v", p, err)
	}
	if p, err := b.OpenLog(context.Background(), "m2"); p == "" || err == nil || !strings.Contains(err.Error(), "no log file yet") {
		t.Fatalf("a migration without a log: %q, %v", p, err)
	}
}

// The diagnostics carry the migration's log, and removing the migration deletes it.
func TestDiagnosticsCarryTheMigrationLogAndRemoveDeletesIt(t *testing.T) {
	b := newTestBridge(t, newMemKeyring(), "")
	if err := b.st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Cancelled), Source: store.ConnSettings{Hosts: []string{"a:1"}}}); err != nil {
		t.Fatal(err)
	}
	b.log.Info("source balancer stopped", "migration", "m1")
	var zipped bytes.Buffer
	if err := b.ExportDiagnostics(context.Background(), "m1", &zipped); err != nil {
		t.Fatal(err)
	}
	z, err := zip.NewReader(bytes.NewReader(zipped.Bytes()), int64(zipped.Len()))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range z.File {
		if f.Name == "migration.log" {
			r, _ := f.Open()
			var data bytes.Buffer
			data.ReadFrom(r)
			found = strings.Contains(data.String(), "source balancer stopped")
		}
	}
	if !found {
		t.Fatal("the diagnostics lack migration.log with the migration's lines")
	}
	if err := b.Remove(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if files := logfile.Files(filepath.Join(logDir(b.path), "m1.log")); len(files) != 0 {
		t.Fatalf("Remove left the log files %v", files)
	}
	if _, err := b.OpenLog(context.Background(), "m1"); err == nil || !strings.Contains(err.Error(), "no log file yet") {
		t.Fatalf("OpenLog after Remove: %v", err)
	}
}

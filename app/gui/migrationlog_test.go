package gui

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/app/logfile"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/store"
)

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
	if err != nil || path != filepath.Join(diagnostics.LogDir(b.path), "m1.log") {
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
	if files := logfile.Files(filepath.Join(diagnostics.LogDir(b.path), "m1.log")); len(files) != 0 {
		t.Fatalf("Remove left the log files %v", files)
	}
	if _, err := b.OpenLog(context.Background(), "m1"); err == nil || !strings.Contains(err.Error(), "no log file yet") {
		t.Fatalf("OpenLog after Remove: %v", err)
	}
}

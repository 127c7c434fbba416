package diagnostics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shardlift/shardlift/app/logfile"
)

// Each migration's own log, which a DBA can read later and attach to a question:
//
//	slog record naming a migration (attribute "migration": the engine's logger
//	carries it, the app adds it) ─► migrationHandler ─► SecretSet.redact
//	    ─► <folder of the state file>/logs/<migration id>.log, rotated
//
// The folder is next to the state file: the app's data folder for the desktop app,
// the --state file's folder for `shardlift migrate`. Each file holds at most
// logFileBytes; logFilesKept older ones stay as .1, .2, ...

const (
	logFileBytes = 4 << 20
	logFilesKept = 3
)

// LogDir is the folder of the migration logs of the state file at statePath.
func LogDir(statePath string) string { return filepath.Join(filepath.Dir(statePath), "logs") }

// MigrationLogs are the log files of the migrations in one folder, opened as they
// are first written to.
type MigrationLogs struct {
	dir     string
	secrets *SecretSet
	mu      struct {
		sync.Mutex
		files  map[string]*logfile.File
		failed map[string]error // a log that cannot be opened is not tried again
		closed bool
	}
}

func NewMigrationLogs(dir string, secrets *SecretSet) *MigrationLogs {
	l := &MigrationLogs{dir: dir, secrets: secrets}
	l.mu.files, l.mu.failed = map[string]*logfile.File{}, map[string]error{}
	return l
}

// Path is the log file of migration id (the newest, when it has rotated). An id
// that is not a plain file name (none Shardlift makes) stays inside the folder.
func (l *MigrationLogs) Path(id string) string {
	return filepath.Join(l.dir, strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(id)+".log")
}

// handler is slog's text form of records, written to id's file with the secrets
// masked; the file is opened on first use.
func (l *MigrationLogs) handler(id string) (slog.Handler, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, fs.ErrClosed
	}
	if err := l.mu.failed[id]; err != nil {
		return nil, err
	}
	f := l.mu.files[id]
	if f == nil {
		var err error
		if f, err = logfile.Open(l.Path(id), logFileBytes, logFilesKept); err != nil {
			l.mu.failed[id] = err
			return nil, err
		}
		l.mu.files[id] = f
	}
	return slog.NewTextHandler(redactWriter{w: f, secrets: l.secrets}, &slog.HandlerOptions{Level: slog.LevelInfo}), nil
}

// Handler routes each record that names a migration to that migration's log.
func (l *MigrationLogs) Handler() slog.Handler { return migrationHandler{logs: l} }

// Remove closes and deletes the log of migration id.
func (l *MigrationLogs) Remove(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.mu.files[id]; f != nil {
		f.Close()
		delete(l.mu.files, id)
	}
	return logfile.Remove(l.Path(id))
}

// Close closes every log file; later records are dropped.
func (l *MigrationLogs) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.closed = true
	var errs []error
	for _, f := range l.mu.files {
		errs = append(errs, f.Close())
	}
	l.mu.files = nil
	return errors.Join(errs...)
}

// migrationKey is the attribute that names a migration in a log record.
const migrationKey = "migration"

// migrationHandler writes a record to the log of the migration it names, at the top
// level: given to the logger (With) or to the call. Records naming none are left
// to the other handlers.
type migrationHandler struct {
	logs *MigrationLogs
	id   string
	// ops are the logger's With and WithGroup calls, replayed on the file's handler.
	ops   []func(slog.Handler) slog.Handler
	group bool // a group is open: later attributes are not at the top level
}

func (h migrationHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h migrationHandler) Handle(ctx context.Context, r slog.Record) error {
	id := h.id
	if id == "" && !h.group {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == migrationKey {
				id = a.Value.String()
			}
			return id == ""
		})
	}
	if id == "" {
		return nil
	}
	out, err := h.logs.handler(id)
	if err != nil {
		return fmt.Errorf("the log of migration %s: %w", id, err)
	}
	for _, op := range h.ops {
		out = op(out)
	}
	return out.Handle(ctx, r)
}

func (h migrationHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := h
	out.ops = append(slices.Clip(h.ops), func(x slog.Handler) slog.Handler { return x.WithAttrs(attrs) })
	for _, a := range attrs {
		if a.Key == migrationKey && !h.group {
			out.id = a.Value.String()
		}
	}
	return out
}

func (h migrationHandler) WithGroup(name string) slog.Handler {
	out := h
	out.ops = append(slices.Clip(h.ops), func(x slog.Handler) slog.Handler { return x.WithGroup(name) })
	out.group = true
	return out
}

// Open opens the log file of migration id with the desktop's opener and returns its
// path. A nil l is an app that keeps no log files.
func (l *MigrationLogs) Open(ctx context.Context, id string) (string, error) {
	if l == nil {
		return "", errors.New("this Shardlift keeps no log files: it found no folder for its data")
	}
	path := l.Path(id)
	if _, err := os.Stat(path); err != nil {
		return path, fmt.Errorf("there is no log file yet (%w)", errors.Unwrap(err))
	}
	return path, openWithDesktop(ctx, path)
}

// openerWait is how long openWithDesktop waits for the opener's verdict.
const openerWait = 5 * time.Second

// openWithDesktop opens path with the desktop's opener (xdg-open on Linux) and returns
// its failure: xdg-open exits once it has handed the file to an application, with a
// non-zero status when it found none. An opener still running after openerWait runs
// the application itself, which counts as opened.
func openWithDesktop(ctx context.Context, path string) error {
	name, args := "xdg-open", []string{path}
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler", path}
	}
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...) // not ctx's: the viewer outlives this call
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTimer(openerWait)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			msg := strings.TrimSpace(stderr.String())
			if line, _, _ := strings.Cut(msg, "\n"); line != "" {
				return fmt.Errorf("%s: %v: %s", name, err, line)
			}
			return fmt.Errorf("%s: %v", name, err)
		}
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

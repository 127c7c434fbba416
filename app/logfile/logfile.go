// Package logfile is a log file of bounded size: once the file reaches its limit it
// is renamed NAME.1 (an older NAME.1 becomes NAME.2, and so on), a new NAME starts,
// and only the newest Keep old files stay. It knows nothing of what is written.
package logfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// File is one rotating log file. Writes are serialized; a write is never split
// across two files, so each line stays whole.
type File struct {
	path     string
	maxBytes int64
	keep     int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens path for appending, creating it (and its folder, readable by this user
// only) when absent. A file grows to maxBytes before it rotates; keep old files stay.
func Open(path string, maxBytes int64, keep int) (*File, error) {
	if maxBytes <= 0 || keep < 0 {
		return nil, fmt.Errorf("log file %s: size limit %d and %d old files", path, maxBytes, keep)
	}
	l := &File{path: path, maxBytes: maxBytes, keep: keep}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("create the log folder: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open the log file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open the log file: %w", err)
	}
	l.f, l.size = f, info.Size()
	return nil
}

// Write appends p, rotating first when p would take the file past its limit.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, fs.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotate shifts NAME.i to NAME.i+1 (dropping the oldest) and NAME to NAME.1, then
// starts a new NAME.
func (l *File) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("rotate the log file: %w", err)
	}
	l.f = nil
	if l.keep == 0 {
		if err := os.Remove(l.path); err != nil {
			return fmt.Errorf("rotate the log file: %w", err)
		}
	} else {
		if err := os.Remove(old(l.path, l.keep)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate the log file: %w", err)
		}
		for i := l.keep - 1; i >= 1; i-- {
			if err := os.Rename(old(l.path, i), old(l.path, i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rotate the log file: %w", err)
			}
		}
		if err := os.Rename(l.path, old(l.path, 1)); err != nil {
			return fmt.Errorf("rotate the log file: %w", err)
		}
	}
	return l.open()
}

// Close closes the file; later writes fail.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// old is the name of the i-th older file.
func old(path string, i int) string { return fmt.Sprintf("%s.%d", path, i) }

// Files lists the files of the log at path that exist, oldest first: the rotated
// ones, then path itself. It reads any number of old files, also more than a File
// keeps now.
func Files(path string) []string {
	var older []string
	for i := 1; ; i++ {
		if _, err := os.Stat(old(path, i)); err != nil {
			break
		}
		older = append(older, old(path, i))
	}
	var out []string
	for i := len(older) - 1; i >= 0; i-- {
		out = append(out, older[i])
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return out
}

// Remove deletes the log at path and its old files.
func Remove(path string) error {
	var errs []error
	for _, p := range Files(path) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotatesAtTheLimitAndKeepsTheNewestFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "m1.log")
	const limit, keep = 1000, 2
	l, err := Open(path, limit, keep)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 200 {
		line := fmt.Sprintf("line %03d %s\n", i, strings.Repeat("x", 20))
		lines = append(lines, line)
		if _, err := l.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files := Files(path)
	if want := []string{path + ".2", path + ".1", path}; strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", files, want)
	}
	var all string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > limit {
			t.Errorf("%s holds %d bytes, more than the limit %d", f, len(data), limit)
		}
		all += string(data)
	}
	// The newest lines, whole and in order, with nothing missing in between.
	if !strings.HasSuffix(strings.Join(lines, ""), all) || len(all) < 2*limit {
		t.Fatalf("the files hold %d bytes that are not the newest lines in order:\n%s", len(all), all)
	}
	if info, err := os.Stat(filepath.Dir(path)); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("the log folder: %v, %v; want it private", info.Mode(), err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the log file: %v, %v; want it private", info.Mode(), err)
	}
}

func TestReopeningAppendsAndRemoveDeletesEveryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m1.log")
	for _, text := range []string{"first run\n", "second run\n"} {
		l, err := Open(path, 15, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Write([]byte(text)); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	// The second run's line would pass the limit: the first moved to .1.
	for p, want := range map[string]string{path + ".1": "first run\n", path: "second run\n"} {
		if data, err := os.ReadFile(p); err != nil || string(data) != want {
			t.Errorf("%s: %q, %v; want %q", p, data, err, want)
		}
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if files := Files(path); len(files) != 0 {
		t.Fatalf("left %v", files)
	}
}

func TestAWriteAfterCloseFails(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "m1.log"), 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := l.Write([]byte("late\n")); err == nil {
		t.Fatal("a write after Close succeeded")
	}
}

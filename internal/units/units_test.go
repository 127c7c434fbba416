package units

import (
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/internal/repo"
)

func TestBytesAreBinary(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{-5, "0 B"},
		{0, "0 B"},
		{912, "912 B"},
		{1536, "1.5 KiB"},
		{27_262_976, "26 MiB"},
		{64 << 20, "64 MiB"},
		{2_254_857_830, "2.1 GiB"},
	} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestRatesAreBinaryPerSecond(t *testing.T) {
	for _, c := range []struct {
		r    float64
		want string
	}{
		{0, "0 B/s"},
		{-3, "0 B/s"},
		{math.NaN(), "0 B/s"},
		{math.Inf(1), "0 B/s"},
		{300_000, "293 KiB/s"},
		{14.5e6, "14 MiB/s"},
		{20 << 20, "20 MiB/s"},
	} {
		if got := Rate(c.r); got != c.want {
			t.Errorf("Rate(%v) = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestNeitherFunctionWritesSIUnits(t *testing.T) {
	for n := int64(1); n < 1<<50; n = n*7 + 3 {
		if s := Bytes(n) + " " + Rate(float64(n)); FindSI(s) != "" {
			t.Fatalf("%d: %q has an SI unit", n, s)
		}
	}
}

func TestFindSIFindsDecimalSizesOnly(t *testing.T) {
	for text, want := range map[string]string{
		"copied 16 MB of 6.7MB":       "16 MB",
		"at 300 kB/s":                 "300 kB",
		"2 GB left":                   "2 GB",
		"26 MiB of 60 MiB, 1.5 KiB":   "",
		"MongoDB's 16 MiB limit":      "",
		"a MB-sized word without one": "",
	} {
		if got := FindSI(text); got != want {
			t.Errorf("FindSI(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestNothingElseFormatsBytes reads Shardlift's own code: no other place writes a
// byte count with go-humanize, nor spells out a decimal size unit in a string (a
// line that parses another program's output says so: "// read, not written").
func TestNothingElseFormatsBytes(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	humanized := regexp.MustCompile(`humanize\.I?Bytes(N)?\(`)
	siLiteral := regexp.MustCompile(`"[^"]*\b(kB|KB|MB|GB|TB)\b[^"]*"`)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || rel == filepath.Join("internal", "units")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") || strings.HasSuffix(line, "// read, not written") {
				continue
			}
			if m := humanized.FindString(line); m != "" {
				t.Errorf("%s:%d: %s: write sizes with units.Bytes", rel, i+1, m)
			}
			if m := siLiteral.FindString(line); m != "" {
				t.Errorf("%s:%d: %s: an SI size unit; write sizes with units.Bytes and units.Rate", rel, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package units

import (
	"math"
	"testing"
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

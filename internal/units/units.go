// Package units writes sizes and transfer rates for people, in one unit system for
// every screen, command and message of Shardlift: binary units (B, KiB, MiB, GiB,
// TiB), the units MongoDB's own sizes are set in (oplog size, chunk size, the 16 MiB
// document limit). Nothing else in Shardlift formats a byte count.
package units

import (
	"math"
	"regexp"

	"github.com/dustin/go-humanize"
)

// Bytes is a byte count: "0 B", "912 B", "1.5 KiB", "26 MiB", "2.1 GiB". A negative
// count (a counter that went back) reads as 0 B.
func Bytes(n int64) string {
	return humanize.IBytes(uint64(max(n, 0)))
}

// Rate is a transfer rate in bytes per second: "293 KiB/s", "14 MiB/s". A rate that
// is not a finite positive number reads as 0 B/s.
func Rate(bytesPerSecond float64) string {
	if math.IsNaN(bytesPerSecond) || math.IsInf(bytesPerSecond, 0) || bytesPerSecond < 0 {
		bytesPerSecond = 0
	}
	if bytesPerSecond > math.MaxInt64 {
		bytesPerSecond = math.MaxInt64
	}
	return Bytes(int64(bytesPerSecond+0.5)) + "/s"
}

// si matches a decimal size unit after a number ("16 MB", "6.7MB", "300 kB/s").
var si = regexp.MustCompile(`\b\d+(\.\d+)?\s?(kB|KB|MB|GB|TB|PB)\b`)

// FindSI returns the first decimal size ("16 MB") in text people read, "" when there
// is none: the tests of every screen and command output look for one with it.
func FindSI(text string) string {
	return si.FindString(text)
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/shardlift/shardlift/internal/repo"
)

// decodeBenchmark is engine/oplog's benchmark of decode + filter + translate.
const (
	decodePackage   = "./engine/oplog"
	decodeBenchmark = "BenchmarkDecodeTranslate"
)

// benchResult is one line of `go test -bench` output: the metrics by unit
// ("ns/op", "B/op", "allocs/op", "entries/s", ...).
type benchResult struct {
	Name    string
	N       int64
	Metrics map[string]float64
}

// parseBenchLine reads a benchmark result line ("BenchmarkX-1  1000  12.5 ns/op ...");
// ok is false for any other line.
func parseBenchLine(line string) (benchResult, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return benchResult{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return benchResult{}, false
	}
	r := benchResult{Name: f[0], N: n, Metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return benchResult{}, false
		}
		r.Metrics[f[i+1]] = v
	}
	return r, true
}

// decodeRuns is how many times the decode benchmark runs; the fastest run is kept,
// the one least slowed down by other work on a shared machine.
const decodeRuns = 3

// runDecodeBenchmark runs engine/oplog's decode benchmark on one core (-cpu 1,
// GOMAXPROCS=1) with allocations decodeRuns times, and returns its fastest run; the
// go command's output goes to log.
func runDecodeBenchmark(ctx context.Context, benchtime string, log io.Writer) (benchResult, error) {
	root, err := repo.Root()
	if err != nil {
		return benchResult{}, err
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^"+decodeBenchmark+"$",
		"-benchmem", "-cpu", "1", "-benchtime", benchtime, "-count", strconv.Itoa(decodeRuns), decodePackage)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, log), log
	if err := cmd.Run(); err != nil {
		return benchResult{}, fmt.Errorf("go test -bench %s %s: %w", decodeBenchmark, decodePackage, err)
	}
	return fastest(&out)
}

// fastest is the decode benchmark's result with the most entries/s in out.
func fastest(out io.Reader) (benchResult, error) {
	var best benchResult
	found := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		r, ok := parseBenchLine(sc.Text())
		if !ok || !strings.HasPrefix(r.Name, decodeBenchmark) {
			continue
		}
		if !found || r.Metrics["entries/s"] > best.Metrics["entries/s"] {
			best, found = r, true
		}
	}
	if !found {
		return benchResult{}, fmt.Errorf("go test printed no %s result", decodeBenchmark)
	}
	return best, nil
}

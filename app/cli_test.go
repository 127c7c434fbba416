package app

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/internal/units"
)

// runCLI runs the command line in-process and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), streams{out: &out, err: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestHelpListsEveryCommandAndExitsZero(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"-h"}, {"help"}} {
		code, out, errOut := runCLI(t, args...)
		if code != exitOK {
			t.Errorf("shardlift %v: exit %d, want 0 (stderr %q)", args, code, errOut)
		}
		for _, c := range commands {
			if !strings.Contains(out, c.name) || !strings.Contains(out, c.summary) {
				t.Errorf("shardlift %v: help does not list %q with its summary:\n%s", args, c.name, out)
			}
		}
	}
}

func TestCommandHelpListsEveryFlag(t *testing.T) {
	want := []string{"--shards N", "--dest-shards N", "--docs N", "--load OPS_PER_SEC", "--txn-rate N", "--dir DIR", "--auth USER:PASS", "--tls", "--oplog-size BYTES", "--id-type TYPE",
		"--mongodb-version VERSION", "--dest-mongodb-version VERSION", "--config-shard", "--chunks N", "--command-latency SETTING", "3.6, 4.0, 4.2, 4.4, 5.0, 6.0, 7.0, 8.0"}
	for _, args := range [][]string{{"sandbox", "--help"}, {"sandbox", "-h"}, {"help", "sandbox"}} {
		code, out, errOut := runCLI(t, args...)
		if code != exitOK {
			t.Fatalf("shardlift %v: exit %d, want 0 (stderr %q)", args, code, errOut)
		}
		if !strings.HasPrefix(out, "Usage: shardlift sandbox") {
			t.Errorf("shardlift %v: help does not start with the usage line:\n%s", args, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("shardlift %v: help does not list %q:\n%s", args, w, out)
			}
		}
	}
}

func TestBadUsageExitsTwoNamingTheProblem(t *testing.T) {
	cases := []struct {
		args []string
		say  []string // what stderr must name
	}{
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "shardlift --help"}},
		{[]string{"help", "frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"--verbose"}, []string{"unknown flag --verbose", "shardlift --help"}},
		{[]string{"sandbox", "--bogus"}, []string{"-bogus", "shardlift sandbox --help"}},
		{[]string{"sandbox", "--shards"}, []string{"needs an argument", "-shards"}},
		{[]string{"sandbox", "--shards", "two"}, []string{`"two"`, "-shards"}},
		{[]string{"sandbox", "--shards", "0"}, []string{"--shards 0"}},
		{[]string{"sandbox", "--dest-shards", "-1"}, []string{"--dest-shards -1"}},
		{[]string{"sandbox", "--docs", "-5"}, []string{"--docs -5"}},
		{[]string{"sandbox", "--load", "-5"}, []string{"--load -5"}},
		{[]string{"sandbox", "--txn-rate", "-1"}, []string{"--txn-rate -1"}},
		{[]string{"sandbox", "--mongodb-version", "4.0", "--txn-rate", "2"}, []string{"--txn-rate", "4.2"}},
		{[]string{"sandbox", "--auth", "admin"}, []string{"--auth", "USER:PASS"}},
		{[]string{"sandbox", "--auth", ":secret"}, []string{"--auth", "USER:PASS"}},
		{[]string{"sandbox", "--oplog-size", "lots"}, []string{`"lots"`, "-oplog-size"}},
		{[]string{"sandbox", "--id-type", "uuid"}, []string{"--id-type", `"uuid"`, "objectid or number"}},
		{[]string{"sandbox", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"sandbox", "--members", "0"}, []string{"--members 0", "1 to 7"}},
		{[]string{"sandbox", "--chunks", "-1"}, []string{"--chunks -1"}},
		{[]string{"sandbox", "--collections", "-1"}, []string{"--collections -1"}},
		{[]string{"sandbox", "--latency", "-40ms"}, []string{"--latency -40ms"}},
		{[]string{"sandbox", "--latency", "40"}, []string{"-latency", `"40"`}},
		{[]string{"sandbox", "--command-latency", "slow"}, []string{"--command-latency", "realistic", "moveChunk=1s,split=50ms"}},
		{[]string{"sandbox", "--command-latency", "merge=1s"}, []string{"--command-latency", "split and moveChunk"}},
		{[]string{"sandbox", "--mongodb-version", "3.4"}, []string{"--mongodb-version 3.4", "3.6, 4.0, 4.2, 4.4, 5.0, 6.0, 7.0, 8.0"}},
		{[]string{"sandbox", "--dest-mongodb-version", "7"}, []string{"--dest-mongodb-version 7", "3.6, 4.0"}},
		{[]string{"sandbox", "--config-shard"}, []string{"--config-shard", "8.0"}},
		{[]string{"sandbox", "--mongodb-version", "6.0", "--config-shard"}, []string{"--config-shard", "--mongodb-version 8.0"}},
	}
	for _, c := range cases {
		code, out, errOut := runCLI(t, c.args...)
		if code != exitUsage {
			t.Errorf("shardlift %v: exit %d, want 2", c.args, code)
		}
		if out != "" {
			t.Errorf("shardlift %v: wrote %q to stdout on bad usage", c.args, out)
		}
		for _, s := range c.say {
			if !strings.Contains(errOut, s) {
				t.Errorf("shardlift %v: stderr %q does not say %q", c.args, errOut, s)
			}
		}
	}
}

func TestOplogSizeTakesBytesOrUnits(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "1MiB": 1 << 20, "64 MiB": 64 << 20, "2kB": 2000} {
		var b byteSize
		if err := b.Set(in); err != nil {
			t.Fatalf("--oplog-size %q: %v", in, err)
		}
		if int64(b) != want {
			t.Errorf("--oplog-size %q = %d bytes, want %d", in, b, want)
		}
	}
}

// shardlift --version and shardlift version print the app's version (the one the
// desktop app has, from FyneApp.toml), the Go version and the commit when known.
func TestVersionPrintsTheAppsVersionGoAndCommit(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errOut := runCLI(t, args...)
		want := fmt.Sprintf("Shardlift %s (build %d)\n%s %s/%s\n", diagnostics.AppVersion, diagnostics.AppBuild, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		if code != exitOK || !strings.HasPrefix(out, want) || errOut != "" {
			t.Errorf("shardlift %v: exit %d, stdout %q, stderr %q; want it to start with %q", args, code, out, errOut, want)
		}
	}
	v := diagnostics.VersionInfo()
	v.Revision, v.RevisionAt, v.Modified = "6842b6f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6", "2026-11-25T07:00:00Z", "true"
	if got := versionText(v); !strings.HasSuffix(got, "\ncommit 6842b6f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6 (2026-11-25T07:00:00Z, with uncommitted changes)\n") {
		t.Errorf("with a commit: %q", got)
	}
	if code, _, errOut := runCLI(t, "version", "extra"); code != exitUsage || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d, %q", code, errOut)
	}
}

// Sizes the commands write are binary (MiB), never SI (MB): the progress line (the
// GUI bridge's are tested in package gui).
func TestCommandOutputsWriteBinaryUnits(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for what, text := range map[string]string{
		"progress line": progressLine(engine.Snapshot{State: engine.Syncing, Overall: engine.Progress{
			DocsCopied: 1_400_000, DocsTotal: 2_000_000, BytesCopied: 412_000_000_000, BytesTotal: 640_000_000_000, TotalsEstimated: true}}, now),
	} {
		if si := units.FindSI(text); si != "" || !strings.Contains(text, "iB") {
			t.Errorf("%s %q: want binary units, found %q", what, text, si)
		}
	}
}

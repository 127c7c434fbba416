package app

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/wire"
)

func TestValidateBadUsageExitsTwo(t *testing.T) {
	t.Setenv(envSourcePassword, "")
	cases := []struct {
		args []string
		say  []string
	}{
		{[]string{"validate"}, []string{"--source is required"}},
		{[]string{"validate", "--source", "mongodb://a:1"}, []string{"--destination is required"}},
		{[]string{"validate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"validate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1", "--timeout", "0s"}, []string{"--timeout 0s"}},
		{[]string{"validate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1", "--timeout", "soon"}, []string{"-timeout"}},
		{[]string{"validate", "--source", "a:1,,b:2", "--destination", "mongodb://b:1"}, []string{"--source", "empty entry", "mongodb:// connection string"}},
		{[]string{"validate", "--source", "a:99999", "--destination", "mongodb://b:1"}, []string{"--source", "from 1 to 65535"}},
		{[]string{"validate", "--source", "migrator:Sup3rSecret@a:1", "--destination", "mongodb://b:1"}, []string{"names a user", "mongodb://USER@host:port/"}},
		{[]string{"validate", "--source", "mongodb://migrator@a:1", "--destination", "mongodb://b:1"}, []string{`user "migrator"`, envSourcePassword}},
		{[]string{"validate", "--source", "a:1", "--destination", "mongodb://b:1", "--source-read-preference", "fastest"},
			[]string{"--source-read-preference", `"fastest"`, "use one of primary, primaryPreferred, secondary, secondaryPreferred, nearest"}},
		{[]string{"migrate", "--source", "mongodb://a:1/?readPreference=secondary&maxStalenessSeconds=30", "--destination", "mongodb://b:1", "--state", "s.db"},
			[]string{"--source", "maxStalenessSeconds=30", "at least 90"}},
	}
	for _, c := range cases {
		code, out, errOut := runCLI(t, c.args...)
		if code != exitUsage || out != "" {
			t.Errorf("shardlift %v: exit %d stdout %q; want 2 and nothing on stdout", c.args, code, out)
		}
		if strings.Contains(errOut, "Sup3rSecret") {
			t.Errorf("shardlift %v: stderr shows the password: %q", c.args, errOut)
		}
		for _, s := range c.say {
			if !strings.Contains(errOut, s) {
				t.Errorf("shardlift %v: stderr %q does not say %q", c.args, errOut, s)
			}
		}
	}
}

func TestValidateHelpListsItsFlags(t *testing.T) {
	code, out, _ := runCLI(t, "validate", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"--source URI", "--destination URI", "--source-ca FILE", "--destination-ca FILE", "--json", "--timeout D", envSourcePassword, envDestinationPassword} {
		if !strings.Contains(out, w) {
			t.Errorf("help does not mention %q:\n%s", w, out)
		}
	}
}

// closedPort is an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestValidateFailureExitsOneAndNeverPrintsThePassword(t *testing.T) {
	// The source's client certificate key has a password (in the URI) too, and the
	// destination's comes from the environment: neither is printed either.
	src := "mongodb://migrator:Sup3rSecret!@" + closedPort(t) + "/?tls=true&tlsCertificateKeyFilePassword=K3y-S3cret%26x"
	dst := "mongodb://migrator:0ther-Secret@" + closedPort(t) + "/"
	t.Setenv("SHARDLIFT_DESTINATION_KEY_PASSWORD", "Env-K3y-S3cret")
	for _, extra := range [][]string{nil, {"--json"}} {
		args := append([]string{"validate", "--source", src, "--destination", dst, "--timeout", "2s"}, extra...)
		code, out, errOut := runCLI(t, args...)
		if code != exitFail {
			t.Errorf("shardlift %v: exit %d, want 1\n%s", extra, code, out)
		}
		if !strings.Contains(out, "refused") {
			t.Errorf("shardlift %v: output does not say the connection was refused:\n%s", extra, out)
		}
		for _, secret := range []string{"Sup3rSecret", "0ther-Secret", "K3y-S3cret", "Env-K3y"} {
			if strings.Contains(out+errOut, secret) {
				t.Errorf("shardlift %v printed a password:\n%s\n%s", extra, out, errOut)
			}
		}
	}
}

// startPair starts a sandbox source and destination requiring SCRAM and TLS.
func startPair(t *testing.T, creds *wire.Credentials) (src, dst *sandbox.Cluster) {
	t.Helper()
	for i, name := range []string{"source", "destination"} {
		c, err := sandbox.Start(context.Background(), name, sandbox.Options{Shards: 2, Dir: t.TempDir(), Auth: creds, TLS: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if i == 0 {
			src = c
		} else {
			dst = c
		}
	}
	return src, dst
}

// Mongos hosts given as host:port (as the app takes them) reach the cluster; one
// that requires a login, reached without a user, says so and what to enter.
func TestValidateTakesAHostListAndAsksForTheMissingLogin(t *testing.T) {
	src, dst := startPair(t, &wire.Credentials{User: "migrator", Password: "pa55-word"})
	code, out, errOut := runCLI(t, "validate", "--source", src.RouterAddr()+", "+closedPort(t), "--source-ca", src.CAFile(),
		"--destination", dst.RouterAddr(), "--destination-ca", dst.CAFile(), "--timeout", "5s")
	if code != exitFail {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, side := range []string{"Source reachable", "Destination reachable"} {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, side+":") {
				line = l
			}
		}
		if !strings.HasPrefix(line, "FAIL") || !strings.Contains(line, "the cluster requires authentication and no user was given") ||
			!strings.Contains(line, "Fix: Enter the user name and password") {
			t.Errorf("%s: %q, want the missing login and what to enter\n%s", side, line, out)
		}
	}
}

func TestValidateAgainstTheSandboxPrintsThePassingTable(t *testing.T) {
	creds := &wire.Credentials{User: "migrator", Password: "pa55-word"}
	src, dst := startPair(t, creds)
	// The destination's password comes from the environment instead of the URI.
	u, err := url.Parse(dst.URI())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(creds.User)
	t.Setenv(envDestinationPassword, creds.Password)

	code, out, errOut := runCLI(t, "validate", "--source", src.URI(), "--destination", u.String())
	if code != exitOK {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	checks := 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "PASS "), strings.HasPrefix(l, "WARN "):
			checks++
		case strings.HasPrefix(l, "FAIL"), strings.HasPrefix(l, "NOT RUN"):
			t.Errorf("a failing line on a good pair: %s", l)
		}
	}
	if checks != len(validate.Check(validate.Input{})) {
		t.Errorf("%d check lines, want one per check:\n%s", checks, out)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "0 failed") || !strings.Contains(last, "the migration can start") {
		t.Errorf("summary line %q", last)
	}
	if strings.Contains(out+errOut, creds.Password) {
		t.Errorf("the password was printed:\n%s\n%s", out, errOut)
	}

	code, out, _ = runCLI(t, "validate", "--source", src.URI(), "--destination", u.String(), "--json")
	var report struct {
		Passed   bool               `json:"passed"`
		Counts   map[string]int     `json:"counts"`
		Findings []validate.Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	if code != exitOK || !report.Passed || report.Counts["failed"] != 0 || len(report.Findings) != checks {
		t.Errorf("--json: exit %d, %+v", code, report)
	}
}

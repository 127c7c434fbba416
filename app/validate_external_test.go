package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// `shardlift validate` takes the sandbox's URIs as `shardlift sandbox --auth x509`
// and `--auth plain:USER:PASS` print them: everything a client needs is in them.
func TestValidateTakesTheURIsOfExternalUsersAsPrinted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandbox clusters")
	}
	for _, auth := range []string{"x509", "plain:ldap-dba:Ld@p-pw-123"} {
		var cfg sandboxConfig
		if err := cfg.setAuth(auth); err != nil {
			t.Fatal(err)
		}
		var uris []string
		for _, name := range []string{"source", "destination"} {
			c, err := sandbox.Start(context.Background(), name, sandbox.Options{Shards: 1, Dir: t.TempDir(), TLS: cfg.tls, X509: cfg.x509, Plain: cfg.plain})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			uris = append(uris, c.URI())
		}
		code, out, errOut := runCLI(t, "validate", "--source", uris[0], "--destination", uris[1])
		if code != exitOK {
			t.Fatalf("--auth %s: exit %d, want 0\n%s\n%s", auth, code, out, errOut)
		}
		if want := map[string]string{"x509": "as CN=migrator,OU=clients", "plain:ldap-dba:Ld@p-pw-123": "as ldap-dba@$external"}[auth]; !strings.Contains(out, want) {
			t.Errorf("--auth %s: the report does not say it connected %s:\n%s", auth, want, out)
		}
		if strings.Contains(out+errOut, "Ld@p-pw-123") {
			t.Errorf("the PLAIN password was printed:\n%s\n%s", out, errOut)
		}
	}
}

func TestSandboxAuthFlagTakesEveryMechanism(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  sandboxConfig
	}{
		{"x509", sandboxConfig{x509: true, tls: true}},
		{"X509", sandboxConfig{x509: true, tls: true}},
		{"plain:ldap:pw", sandboxConfig{plain: &wire.Credentials{User: "ldap", Password: "pw"}}},
		{"migrator:pw", sandboxConfig{auth: &wire.Credentials{User: "migrator", Password: "pw"}}},
	} {
		var got sandboxConfig
		if err := got.setAuth(tc.value); err != nil {
			t.Fatalf("--auth %s: %v", tc.value, err)
		}
		if got.x509 != tc.want.x509 || got.tls != tc.want.tls || (got.plain == nil) != (tc.want.plain == nil) || (got.auth == nil) != (tc.want.auth == nil) ||
			(got.plain != nil && *got.plain != *tc.want.plain) || (got.auth != nil && *got.auth != *tc.want.auth) {
			t.Errorf("--auth %s: %+v, want %+v", tc.value, got, tc.want)
		}
	}
	for _, bad := range []string{"plain:", "plain:u:", "x5O9", ":s3cret"} {
		var cfg sandboxConfig
		err := cfg.setAuth(bad)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("--auth %s: %v, want a usage error without the password", bad, err)
		}
	}
}

func TestHostMapFlagsTakeTheDocumentedFormat(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hosts.txt")
	if err := os.WriteFile(file, []byte("# tunnels\nrs0-a.internal:27018=127.0.0.1:37018\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFlags("validate", "", "")
	h := addHostMapFlags(f)
	if err := f.Parse([]string{"--host-map", file, "--map-host", "rs1-a.internal:27018=127.0.0.1:37019"}); err != nil {
		t.Fatal(err)
	}
	m, err := h.hostMap()
	if err != nil {
		t.Fatal(err)
	}
	if m.Reachable("rs0-a.internal:27018") != "127.0.0.1:37018" || m.Reachable("rs1-a.internal:27018") != "127.0.0.1:37019" {
		t.Errorf("host map %v lacks a mapping", m)
	}
	for _, args := range [][]string{
		{"--map-host", "rs0-a.internal=127.0.0.1:1"},
		{"--host-map", filepath.Join(t.TempDir(), "missing.txt")},
	} {
		code, _, errOut := runCLI(t, append([]string{"validate", "--source", "m:1", "--destination", "d:1"}, args...)...)
		if code != exitUsage || !strings.Contains(errOut, strings.TrimLeft(args[0], "-")) {
			t.Errorf("%v: exit %d, want %d naming %s:\n%s", args, code, exitUsage, args[0], errOut)
		}
	}
}

package app

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/api/apitest"
)

// The thin clients send the token of --api-token-file, and say what to do without it.
func TestClientsCarryTheTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api.token")
	token, created, err := api.LoadOrCreateToken(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	addr := apitest.ServeWithToken(t, apitest.NewControl(), token)
	if code, out, errOut := runCLI(t, "status", "--api", addr); code != exitFail || !strings.Contains(errOut, "requires its token") {
		t.Fatalf("status without the token: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "status", "--api", addr, "--api-token-file", path); code != exitOK || !strings.Contains(out, `"state": "cutting_over"`) {
		t.Fatalf("status with the token: %d %s %s", code, out, errOut)
	}
}

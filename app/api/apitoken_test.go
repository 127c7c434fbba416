package api_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/api/apitest"
)

// With a token, the API answers nothing (not the status, not the metrics, no
// action) to a request that does not carry it, and everything to one that does.
func TestAPIRefusesARequestWithoutItsToken(t *testing.T) {
	f := apitest.NewControl()
	const token = "0123abcd"
	srv := apitest.ServeWithToken(t, f, token)
	for _, c := range []struct{ method, path string }{{http.MethodGet, "/status"}, {http.MethodGet, "/metrics"}, {http.MethodPost, "/cancel"}} {
		for _, wrong := range []string{"", "0123abc", "0123abcd0"} {
			code, body, err := api.Call(context.Background(), srv, c.method, c.path, wrong)
			if err != nil || code != http.StatusUnauthorized || !strings.Contains(string(body), "--api-token-file") {
				t.Errorf("%s %s with token %q: %d %v %s, want 401 naming --api-token-file", c.method, c.path, wrong, code, err, body)
			}
		}
		if code, body, err := api.Call(context.Background(), srv, c.method, c.path, token); err != nil || code != http.StatusOK {
			t.Errorf("%s %s with the token: %d %v %s", c.method, c.path, code, err, body)
		}
	}
	if len(f.Calls) != 1 || f.Calls[0] != "cancel" {
		t.Fatalf("actions run: %v, want only the one with the token", f.Calls)
	}
}

// The token file is created owner-only with a new token, read back as it is on the
// next run, and refused when other users could read it.
func TestAPITokenFileIsCreatedOwnerOnlyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.token")
	first, created, err := api.LoadOrCreateToken(path)
	if err != nil || !created || len(first) != 2*api.TokenBytes {
		t.Fatalf("first: %q %v %v", first, created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", info.Mode().Perm(), err)
	}
	again, created, err := api.LoadOrCreateToken(path)
	if err != nil || created || again != first {
		t.Fatalf("again: %q %v %v, want the same token, not created", again, created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable token file: %v, want a refusal naming chmod 600", err)
	}
}

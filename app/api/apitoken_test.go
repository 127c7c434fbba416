package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With a token, the API answers nothing (not the status, not the metrics, no
// action) to a request that does not carry it, and everything to one that does.
func TestAPIRefusesARequestWithoutItsToken(t *testing.T) {
	f := newFakeControl()
	const token = "0123abcd"
	srv := serveWithToken(t, f, token)
	for _, c := range []struct{ method, path string }{{http.MethodGet, "/status"}, {http.MethodGet, "/metrics"}, {http.MethodPost, "/cancel"}} {
		for _, wrong := range []string{"", "0123abc", "0123abcd0"} {
			code, body, err := callAPI(context.Background(), srv, c.method, c.path, wrong)
			if err != nil || code != http.StatusUnauthorized || !strings.Contains(string(body), "--api-token-file") {
				t.Errorf("%s %s with token %q: %d %v %s, want 401 naming --api-token-file", c.method, c.path, wrong, code, err, body)
			}
		}
		if code, body, err := callAPI(context.Background(), srv, c.method, c.path, token); err != nil || code != http.StatusOK {
			t.Errorf("%s %s with the token: %d %v %s", c.method, c.path, code, err, body)
		}
	}
	if len(f.calls) != 1 || f.calls[0] != "cancel" {
		t.Fatalf("actions run: %v, want only the one with the token", f.calls)
	}
}

// The thin clients send the token of --api-token-file, and say what to do without it.
func TestClientsCarryTheTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api.token")
	token, created, err := loadOrCreateAPIToken(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	addr := serveWithToken(t, newFakeControl(), token)
	if code, out, errOut := runCLI(t, "status", "--api", addr); code != exitFail || !strings.Contains(errOut, "requires its token") {
		t.Fatalf("status without the token: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "status", "--api", addr, "--api-token-file", path); code != exitOK || !strings.Contains(out, `"state": "cutting_over"`) {
		t.Fatalf("status with the token: %d %s %s", code, out, errOut)
	}
}

// The token file is created owner-only with a new token, read back as it is on the
// next run, and refused when other users could read it.
func TestAPITokenFileIsCreatedOwnerOnlyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.token")
	first, created, err := loadOrCreateAPIToken(path)
	if err != nil || !created || len(first) != 2*apiTokenBytes {
		t.Fatalf("first: %q %v %v", first, created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", info.Mode().Perm(), err)
	}
	again, created, err := loadOrCreateAPIToken(path)
	if err != nil || created || again != first {
		t.Fatalf("again: %q %v %v, want the same token, not created", again, created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateAPIToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable token file: %v, want a refusal naming chmod 600", err)
	}
}

// A background Shardlift hands its migrations only to a request carrying the
// handover token of its state file (owner-only, as the API's).
func TestHandoverRequiresTheStateFilesToken(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.db")
	token, _, err := loadOrCreateAPIToken(handoverTokenPath(state))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", handoverPath(state))
	if err != nil {
		t.Fatal(err)
	}
	requests, stop := make(chan net.Conn), make(chan struct{})
	defer func() { close(stop); ln.Close() }()
	go acceptHandovers(ln, token, requests, stop)

	for _, line := range []string{"handover\n", "handover " + token[:10] + "\n"} {
		c, err := net.Dial("unix", handoverPath(state))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(line))
		// Refused: the connection is closed without an answer, never handed on.
		closed := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			closed <- err
		}()
		select {
		case r := <-requests:
			r.Close()
			t.Fatalf("%q was taken as a handover request", line)
		case err := <-closed:
			if err == nil {
				t.Errorf("%q got an answer", line)
			}
		}
		c.Close()
	}
	answered := make(chan []string, 1)
	go func() {
		ids, _ := requestHandover(context.Background(), state)
		answered <- ids
	}()
	c := <-requests
	c.Write([]byte("released m1\n"))
	c.Close()
	if ids := <-answered; len(ids) != 1 || ids[0] != "m1" {
		t.Fatalf("handed over %v, want [m1]", ids)
	}
}

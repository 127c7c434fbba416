package gui

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/shardlift/shardlift/app/api"
)

// A background Shardlift hands its migrations only to a request carrying the
// handover token of its state file (owner-only, as the API's).
func TestHandoverRequiresTheStateFilesToken(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.db")
	token, _, err := api.LoadOrCreateToken(handoverTokenPath(state))
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

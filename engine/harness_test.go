package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
)

// harness runs a Migration on fakes, with a clock that moves only by hand.
type harness struct {
	t   *testing.T
	clk *fakeClock
	cp  *memCheckpoints
	fc  *fakeClusters
	m   *Migration

	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, shards ...string) *harness {
	t.Helper()
	h := &harness{t: t, clk: newFakeClock(), cp: newMemCheckpoints("m1"), fc: newFakeClusters(shards...)}
	h.m = h.newMigration()
	t.Cleanup(func() {
		if h.cancel != nil {
			h.cancel()
			<-h.done
		}
	})
	return h
}

func (h *harness) newMigration() *Migration {
	h.t.Helper()
	m, err := New(Config{
		ID:          "m1",
		Source:      topology.Endpoint{URI: "mongodb://app:s3cret@src-mongos:27017/"},
		Destination: topology.Endpoint{URI: "mongodb://app:s3cret@dst-mongos:27017/?tls=true"},
		Clock:       h.clk,
	}, h.cp, WithConnector(h.fc.connector()))
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// start runs the migration in the background.
func (h *harness) start(opts StartOptions) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	m := h.m
	go func() { h.done <- m.Run(ctx, opts) }()
}

// wait returns Run's result once it returned by itself.
func (h *harness) wait() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.cancel()
		h.cancel = nil
		return err
	case <-time.After(20 * time.Second):
		h.t.Fatalf("Run did not return; state %s", h.m.State())
		return nil
	}
}

// crash ends Run as a killed process would: its context is cancelled, nothing
// more is saved.
func (h *harness) crash() {
	h.t.Helper()
	h.cancel()
	err := <-h.done
	h.cancel = nil
	if !errors.Is(err, context.Canceled) {
		h.t.Fatalf("Run after cancel: %v", err)
	}
}

// restart crashes the process and starts a new one on the same checkpoints.
func (h *harness) restart() {
	h.t.Helper()
	h.crash()
	h.m = h.newMigration()
	h.start(StartOptions{})
}

// eventually waits for cond, waking the lifecycle's monitor meanwhile (the fake
// clock does not move by itself). The limit only keeps a broken test from hanging.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	limit := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			s := h.m.Snapshot()
			h.t.Fatalf("never %s (state %s, reason %q, shards %+v)", what, s.State, s.Reason, s.Shards)
		}
		h.m.poke()
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) waitState(want State) {
	h.t.Helper()
	h.eventually("reached "+string(want), func() bool { return h.m.State() == want })
}

// replaying waits until every shard replays (starting the migration when it is
// not running), and returns their replays.
func (h *harness) replaying() map[string]*fakeReplayer {
	h.t.Helper()
	if h.cancel == nil {
		h.start(StartOptions{})
	}
	out := map[string]*fakeReplayer{}
	for name := range h.fc.shards {
		h.eventually("replaying shard "+name, func() bool {
			r := h.fc.replayer(name)
			return r != nil && h.phase(name) == CatchingUp
		})
		out[name] = h.fc.replayer(name)
	}
	return out
}

// ready brings a started migration to ready: every shard caught up.
func (h *harness) ready() map[string]*fakeReplayer {
	h.t.Helper()
	rs := h.replaying()
	for _, r := range rs {
		r.behind(0)
	}
	h.waitState(Ready)
	return rs
}

// cuttingOver brings a started migration to cutting over.
func (h *harness) cuttingOver() map[string]*fakeReplayer {
	h.t.Helper()
	rs := h.ready()
	if err := h.m.StartCutover(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	return rs
}

func (h *harness) phase(shard string) Phase {
	for _, s := range h.m.Snapshot().Shards {
		if s.Name == shard {
			return s.Phase
		}
	}
	return ""
}

// events lists the history as "from>to" (shard events prefixed "shard:").
func (h *harness) events() []string {
	var out []string
	for _, e := range h.m.Snapshot().History {
		s := e.From + ">" + e.To
		if e.Shard != "" {
			s = e.Shard + ":" + s
		}
		out = append(out, s)
	}
	return out
}

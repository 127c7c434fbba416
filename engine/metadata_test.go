package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/engine/topology"
)

// Sharding metadata Shardlift cannot use as it is (a shard's host string that does
// not parse, a chunk without a bound) stops the migration with the document named,
// before any shard copies or replays on a plan that would have to guess.
func TestMalformedShardingMetadataStopsTheSyncWithTheDocumentNamed(t *testing.T) {
	_, _, hostErr := topology.ParseHostString("rs1/h3")
	if !errors.Is(hostErr, topology.ErrMetadata) {
		t.Fatalf("ParseHostString of a host without a port: %v", hostErr)
	}
	badHost := fmt.Errorf("shard rs1: %w", hostErr) // as discovery reports it
	badChunk := &topology.MetadataError{Where: `config.chunks "c1" of shop.orders`, Reason: "the chunk has no max bound"}

	t.Run("at the start", func(t *testing.T) {
		h := newHarness(t, "s0", "s1")
		h.fc.discoverErr = badHost
		h.start(StartOptions{})
		if err := h.wait(); !errors.Is(err, topology.ErrMetadata) {
			t.Fatalf("Run: %v, want the metadata error", err)
		}
		s := h.m.Snapshot()
		if s.State != Failed || !strings.Contains(s.Reason, `"rs1/h3"`) || !strings.Contains(s.Reason, "shard rs1") {
			t.Fatalf("state %s reason %q: want failed, naming shard rs1 and its host string", s.State, s.Reason)
		}
		if h.fc.called("PrepareDestination") != 0 || len(h.fc.copiers("s0"))+len(h.fc.copiers("s1")) != 0 {
			t.Fatal("the destination was prepared or a shard copied on malformed metadata")
		}
	})
	t.Run("on resume", func(t *testing.T) {
		h := newHarness(t, "s0", "s1")
		h.ready()
		replays := h.fc.replayers("s0") + h.fc.replayers("s1")
		h.crash()
		h.fc.mu.Lock()
		h.fc.discoverErr = badChunk
		h.fc.mu.Unlock()
		h.m = h.newMigration()
		h.start(StartOptions{})
		err := h.wait()
		if !errors.Is(err, topology.ErrMetadata) || !strings.Contains(err.Error(), `config.chunks "c1" of shop.orders`) {
			t.Fatalf("Run: %v, want the chunk named", err)
		}
		if n := h.fc.replayers("s0") + h.fc.replayers("s1"); n != replays {
			t.Fatalf("%d replays started on malformed metadata", n-replays)
		}
	})
}

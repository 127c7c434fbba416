package router

import (
	"testing"
	"time"
)

func TestParseCommandLatency(t *testing.T) {
	for in, want := range map[string]CommandLatency{
		"":                          {},
		"off":                       {},
		"realistic":                 RealisticCommandLatency,
		"moveChunk=2s, split=100ms": {MoveChunk: 2 * time.Second, Split: 100 * time.Millisecond},
		"split=10ms":                {Split: 10 * time.Millisecond},
	} {
		got, err := ParseCommandLatency(in)
		if err != nil || got != want {
			t.Errorf("ParseCommandLatency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"fast", "moveChunk", "moveChunk=-1s", "merge=1s", "split=1"} {
		if _, err := ParseCommandLatency(bad); err == nil {
			t.Errorf("ParseCommandLatency(%q) accepted", bad)
		}
	}
}

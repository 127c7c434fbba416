package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// CommandLatency is what the sandbox router adds to its metadata commands so that
// their cost is that of a real cluster's: a real moveChunk copies the range, waits
// for the recipient's majority and a commit on the config server (about a second for
// an empty chunk), a split takes a config server transaction (tens of ms). The sandbox
// does both in memory; without the delay a placement of 100,000 chunks would measure
// nothing. The zero value adds nothing (tests).
type CommandLatency struct {
	Split     time.Duration
	MoveChunk time.Duration
}

// RealisticCommandLatency is CommandLatency's "realistic" setting.
var RealisticCommandLatency = CommandLatency{Split: 50 * time.Millisecond, MoveChunk: time.Second}

// ParseCommandLatency reads "realistic" or a list such as "moveChunk=1s,split=50ms"
// (commands not listed add nothing); "" and "off" add nothing.
func ParseCommandLatency(s string) (CommandLatency, error) {
	switch strings.TrimSpace(s) {
	case "", "off":
		return CommandLatency{}, nil
	case "realistic":
		return RealisticCommandLatency, nil
	}
	var l CommandLatency
	for _, part := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if !ok || err != nil || d < 0 {
			return CommandLatency{}, fmt.Errorf("command latency %q: give \"realistic\" or a list such as moveChunk=1s,split=50ms", part)
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "split":
			l.Split = d
		case "movechunk":
			l.MoveChunk = d
		default:
			return CommandLatency{}, fmt.Errorf("command latency %q: the commands with a latency are split and moveChunk", part)
		}
	}
	return l, nil
}

// String is the setting in ParseCommandLatency's form.
func (l CommandLatency) String() string {
	if l == (CommandLatency{}) {
		return "off"
	}
	return fmt.Sprintf("moveChunk=%v,split=%v", l.MoveChunk, l.Split)
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chunkHold holds the router's chunk commands while a test or a drill wants them
// held (HoldChunkCommands): nil channel, none held.
type chunkHold struct {
	mu   sync.Mutex
	held chan struct{} // closed on release
}

// HoldChunkCommands makes every split, moveChunk and moveRange wait, before it
// changes anything, until release is called: a test's barrier (a migration's
// Prepare stopped at a known point) or a drill's stalled chunk migration.
func (r *Router) HoldChunkCommands() (release func()) {
	r.hold.mu.Lock()
	defer r.hold.mu.Unlock()
	if r.hold.held == nil {
		r.hold.held = make(chan struct{})
	}
	ch := r.hold.held
	var once sync.Once
	return func() {
		once.Do(func() {
			r.hold.mu.Lock()
			defer r.hold.mu.Unlock()
			if r.hold.held == ch {
				r.hold.held = nil
			}
			close(ch)
		})
	}
}

// chunkPause is what a chunk command waits before it acts: a hold, then its latency.
func (r *Router) chunkPause(ctx context.Context, d time.Duration) error {
	r.hold.mu.Lock()
	held := r.hold.held
	r.hold.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return pause(ctx, d)
}

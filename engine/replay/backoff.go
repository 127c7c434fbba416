package replay

import (
	"context"
	"time"
)

// backoff spaces out retries: 100 ms, doubling up to 10 s.
type backoff struct {
	next time.Duration
}

const (
	backoffFirst = 100 * time.Millisecond
	backoffMax   = 10 * time.Second
)

func newBackoff() *backoff { return &backoff{next: backoffFirst} }

// wait sleeps for the next delay, or until ctx ends (its error) or stop is closed
// (nil; stop may be nil).
func (b *backoff) wait(ctx context.Context, stop <-chan struct{}) error {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, backoffMax)
	select {
	case <-t.C:
		return nil
	case <-stop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *backoff) reset() { b.next = backoffFirst }

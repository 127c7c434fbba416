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

// RetryTransient runs op until it succeeds, fails with an error that is not
// transient (a network failure, a server being elected or stepping down: see
// isTransient), or has failed for patience; it returns op's last error. The steps
// of a shard's sync outside its copy and replay (T0, the consistency point) use it
// to ride out a failover as those do.
func RetryTransient(ctx context.Context, patience time.Duration, op func(context.Context) error) error {
	b := newBackoff()
	deadline := time.Now().Add(patience)
	for {
		err := op(ctx)
		if err == nil || ctx.Err() != nil || !isTransient(err) || time.Now().After(deadline) {
			return err
		}
		if werr := b.wait(ctx, nil); werr != nil {
			return err
		}
	}
}

package initialsync

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	shtopology "github.com/shardlift/shardlift/engine/topology"
)

// retryPolicy is how often and how patiently a transient failure is retried: a
// replica set election takes about 10 to 30 seconds, which the default rides out.
type retryPolicy struct {
	attempts  int
	base, max time.Duration
}

var defaultRetry = retryPolicy{attempts: 10, base: 200 * time.Millisecond, max: 10 * time.Second}

// wait sleeps before retry number n (1-based), doubling from base up to max.
func (r retryPolicy) wait(ctx context.Context, n int) error {
	d := r.base
	for i := 1; i < n && d < r.max; i++ {
		d *= 2
	}
	t := time.NewTimer(min(d, r.max))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// transientCodes are server errors that go away by themselves: elections,
// shutdowns, routing tables being refreshed, lock and write conflicts, cursors
// lost when a primary steps down.
var transientCodes = map[int]bool{
	6:     true, // HostUnreachable
	7:     true, // HostNotFound
	24:    true, // LockTimeout
	43:    true, // CursorNotFound
	46:    true, // LockBusy
	63:    true, // StaleShardVersion
	64:    true, // WriteConcernFailed
	89:    true, // NetworkTimeout
	91:    true, // ShutdownInProgress
	112:   true, // WriteConflict
	133:   true, // FailedToSatisfyReadPreference
	150:   true, // StaleEpoch
	175:   true, // QueryPlanKilled
	189:   true, // PrimarySteppedDown
	202:   true, // NetworkInterfaceExceededTimeLimit
	237:   true, // CursorKilled
	262:   true, // ExceededTimeLimit
	276:   true, // IndexBuildAlreadyInProgress
	9001:  true, // SocketException
	10107: true, // NotWritablePrimary
	11600: true, // InterruptedAtShutdown
	11602: true, // InterruptedDueToReplStateChange
	13388: true, // StaleConfig
	13435: true, // NotPrimaryNoSecondaryOk
	13436: true, // NotPrimaryOrSecondary
}

func transientCode(code int) bool { return transientCodes[code] }

// transient reports whether retrying the operation may succeed: a network
// failure, a server that cannot be selected for now, or a server error of a
// transient kind. Context cancellation is never transient.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		if se.HasErrorLabel("RetryableWriteError") || se.HasErrorLabel("NetworkError") {
			return true
		}
		for code := range transientCodes {
			if se.HasErrorCode(code) {
				return true
			}
		}
	}
	var sel topology.ServerSelectionError
	var netErr net.Error
	return mongo.IsNetworkError(err) || errors.As(err, &sel) || errors.As(err, &netErr) || shtopology.IsRetryablePoolError(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

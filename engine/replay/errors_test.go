package replay

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/mongo"
)

// poolCleared is the driver's error for an operation waiting on a connection pool
// that another operation's network error cleared (driver.RetryablePoolError).
type poolCleared struct{}

func (poolCleared) Error() string {
	return "connection pool for 127.0.0.1:45161 was cleared because another operation failed with: connection(127.0.0.1:45161[-31]) socket was unexpectedly closed: EOF"
}
func (poolCleared) Retryable() bool { return true }

func TestErrorsAreClassifiedByCodeAndLabel(t *testing.T) {
	for _, c := range []struct {
		err       error
		transient bool
	}{
		{mongo.CommandError{Code: codeShutdownInProgress, Name: "ShutdownInProgress"}, true},
		{mongo.CommandError{Code: codeNotWritablePrimary, Name: "NotWritablePrimary"}, true},
		{mongo.CommandError{Code: codeInterruptedDueToReplStateChange}, true},
		{mongo.CommandError{Code: 1, Labels: []string{"NetworkError"}}, true},
		{fmt.Errorf("tail the oplog: %w", mongo.CommandError{Code: codePrimarySteppedDown}), true},
		{writeError(codeWriteConflict), true},
		{mongo.CommandError{Code: codeCappedPositionLost, Name: "CappedPositionLost"}, false},
		{writeError(codeDuplicateKey), false},
		{mongo.CommandError{Code: 13, Name: "Unauthorized"}, false},
		{context.Canceled, false},
		{fmt.Errorf("server selection: %w", context.DeadlineExceeded), true}, // a node down
		{errors.New("something else"), false},
		// The pool cleared under an operation by another one's network error: the
		// replay of a shard stopped for a moment failed for good on it (1 run in 24).
		{fmt.Errorf("tail the oplog: %w", poolCleared{}), true},
	} {
		if got := isTransient(c.err); got != c.transient {
			t.Errorf("isTransient(%v) = %v, want %v", c.err, got, c.transient)
		}
	}
	if !isCappedPositionLost(fmt.Errorf("getMore: %w", mongo.CommandError{Code: codeCappedPositionLost})) {
		t.Error("CappedPositionLost not recognized through wrapping")
	}
}

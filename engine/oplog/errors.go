package oplog

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Sentinel errors. Every error about oplog content wraps one of them, most
// inside an *EntryError that names the entry and the field; test with errors.Is.
var (
	// ErrMalformed: the entry is not an oplog entry as MongoDB writes it (a
	// required field is missing or has the wrong type, an unknown op or command,
	// an update diff that MongoDB's own applier would reject). Nothing was
	// applied for it; the shard's sync must stop there rather than skip it.
	ErrMalformed = errors.New("malformed oplog entry")

	// ErrUnsupported: a well-formed entry that Shardlift cannot reproduce on the
	// destination (for example a time-series collection created during the
	// migration, or importCollection). Validation reports these up front; one
	// showing up during sync means the source changed after validation.
	ErrUnsupported = errors.New("oplog entry not supported by Shardlift")

	// ErrTxnTooLarge: the transactions open on a shard hold more bytes than the
	// translator's buffer limit. Raise Config.TxnBufferBytes (memory permitting)
	// and restart the shard.
	ErrTxnTooLarge = errors.New("open transactions exceed the transaction buffer limit")

	// ErrTxnIncomplete: a transaction entry refers to earlier entries of the same
	// transaction that this translator never saw. It happens when the shard's
	// sync resumed after the transaction's first entry: restart the shard from
	// a point before the oldest transaction open at that time.
	ErrTxnIncomplete = errors.New("transaction started before the resume point")
)

// EntryError is an error about one oplog entry: its ts, the field at fault and
// what is wrong. Unwrap gives one of the sentinel errors above.
type EntryError struct {
	TS     primitive.Timestamp // zero when the entry has no readable ts
	Field  string              // the field at fault, dotted for nested fields ("o.diff.sa")
	Detail string
	Err    error
}

func (e *EntryError) Error() string {
	ts := "unknown ts"
	if e.TS != (primitive.Timestamp{}) {
		ts = fmt.Sprintf("ts Timestamp(%d, %d)", e.TS.T, e.TS.I)
	}
	if e.Field == "" {
		return fmt.Sprintf("oplog entry at %s: %s: %v", ts, e.Detail, e.Err)
	}
	return fmt.Sprintf("oplog entry at %s: field %q: %s: %v", ts, e.Field, e.Detail, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

func malformed(ts primitive.Timestamp, field, format string, args ...any) error {
	return &EntryError{TS: ts, Field: field, Detail: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func unsupported(ts primitive.Timestamp, field, format string, args ...any) error {
	return &EntryError{TS: ts, Field: field, Detail: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}

package shard

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// countingHandler counts the WithAttrs calls it gets and keeps the records it handles.
type countingHandler struct {
	withAttrs *int
	out       *bytes.Buffer
	inner     slog.Handler
}

func (c countingHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (c countingHandler) Handle(ctx context.Context, r slog.Record) error {
	return c.inner.Handle(ctx, r)
}
func (c countingHandler) WithAttrs(a []slog.Attr) slog.Handler {
	*c.withAttrs++
	return countingHandler{c.withAttrs, c.out, c.inner.WithAttrs(a)}
}
func (c countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{c.withAttrs, c.out, c.inner.WithGroup(name)}
}

// FerretDB adds each SQL statement's arguments to its logger for a debug record the
// sandbox drops: the handler sees them only with a record it writes, which has them.
func TestFerretDBsDroppedRecordsFormatNothing(t *testing.T) {
	var out bytes.Buffer
	calls := 0
	l := slog.New(minLevel{level: slog.LevelError, h: countingHandler{&calls, &out, slog.NewTextHandler(&out, nil)}})
	for range 100 {
		l.With("args", []any{strings.Repeat("x", 1000)}).Debug(">>> INSERT")
	}
	if calls != 0 {
		t.Fatalf("the handler formatted attributes %d times for records dropped", calls)
	}
	l.WithGroup("g").With("table", "t1").Error("failed", "err", "boom")
	if got := out.String(); !strings.Contains(got, "g.table=t1") || !strings.Contains(got, "g.err=boom") {
		t.Fatalf("the error record lost its attributes: %q", got)
	}
}

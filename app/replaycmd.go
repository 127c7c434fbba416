package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/engine/topology"
)

const replayDescription = `Applies a file of oplog entries to a destination through the same decoder, filters,
transaction buffer and appliers as a migration's replay: the file holds concatenated
raw BSON entries, as a dump of local.oplog.rs does (mongodump --db local --collection
oplog.rs). The destination may be a mongos or any MongoDB-compatible server.

Every write is idempotent and targeted by the full document key. The replay is
strict: a write the destination refuses stops it (exit status 1) with the entry's ts,
and nothing from that entry on is counted as applied. A file replayed onto data that
already holds part of its effects meets errors that its later entries repair (a
duplicate _id under another shard key, an update into a field whose type changed
since): --tolerate-idempotency-errors counts those instead of stopping, after checking
that each is one (a destination refusing a kind of update, or a duplicate on another
unique index, still stops the replay). Unique and TTL indexes the file creates are
built relaxed (not unique, no expiry), as during a sync; they are listed at the end
for you to restore.

It prints what it applied and what it skipped, by reason. A malformed entry stops the
replay with its ts (exit status 1); what came before it is applied.

The password comes from the URI or from SHARDLIFT_DESTINATION_PASSWORD; it is never
printed.`

func runReplay(ctx context.Context, s streams, args []string) int {
	f := newFlags("replay", "--oplog FILE.bson --destination URI [flags]", replayDescription)
	file := f.String("oplog", "", "the oplog entries, concatenated raw BSON, in `FILE.bson`")
	destination := f.String("destination", "", "the destination's connection string `URI` (a mongos or a server)")
	destinationCA := f.String("destination-ca", "", "PEM `FILE` of the CA that signed the destination's certificates (turns TLS on)")
	dryRun := f.Bool("dry-run", false, "decode, filter and translate every entry but write nothing (no --destination needed)")
	tolerate := f.Bool("tolerate-idempotency-errors", false, "count, instead of stopping at, the write errors of data already holding part of the file (see above)")
	timeout := f.Duration("timeout", topology.DefaultTimeout, "wait at most `D` to connect to the destination")
	if code, ok := f.parse(s, args); !ok {
		return code
	}
	switch {
	case f.NArg() > 0:
		return usageError(s, f.prog, "unexpected argument %q", f.Arg(0))
	case *file == "":
		return usageError(s, f.prog, "--oplog is required")
	case *destination == "" && !*dryRun:
		return usageError(s, f.prog, "--destination is required (or --dry-run)")
	case *timeout <= 0:
		return usageError(s, f.prog, "--timeout %v: the timeout must be positive", *timeout)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(s.err, "%s: %s\n", f.prog, fmt.Sprintf(format, a...))
		return exitFail
	}
	in, err := os.Open(*file)
	if err != nil {
		return fail("%v", err)
	}
	defer in.Close()

	var dest replay.Destination = replay.Discard()
	var exec replay.DDLExecutor = dryExec{}
	relaxed := &relaxedList{}
	if !*dryRun {
		ep, err := endpointFor("--destination", *destination, *destinationCA, envDestinationPassword, *timeout)
		if err != nil {
			return usageError(s, f.prog, "%v", err)
		}
		client, err := topology.Connect(ctx, ep)
		if err != nil {
			return fail("%v", err)
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *timeout)
			defer cancel()
			client.Disconnect(dctx)
		}()
		dest = replay.NewMongoDestination(client)
		exec = replay.NewMongoDDL(client, relaxed)
		fmt.Fprintf(s.err, "Replaying %s into %s...\n", *file, ep)
	} else {
		fmt.Fprintf(s.err, "Dry run of %s: nothing is written.\n", *file)
	}
	p, err := replayFile(ctx, in, filepath.Base(*file), dest, exec, *tolerate)
	printReplay(s.out, p, relaxed.list())
	if err != nil {
		if ctx.Err() != nil {
			return fail("interrupted; the counts above are what was applied")
		}
		return fail("%v", err)
	}
	return exitOK
}

// replayFile runs one shard pipeline over the entries of r and returns what it did.
// tolerate accepts the idempotency errors over the whole file, for a file replayed
// onto data holding some of its effects; otherwise every write error stops it.
func replayFile(ctx context.Context, r io.Reader, name string, dest replay.Destination, exec replay.DDLExecutor, tolerate bool) (replay.Progress, error) {
	ddl := replay.NewDDLOnce([]string{name}, exec, slog.New(slog.DiscardHandler))
	cfg := replay.Config{Shard: name, Source: replay.NewReaderSource(r), Destination: dest, DDL: ddl}
	if tolerate {
		cfg.ConsistencyPoint = primitive.Timestamp{T: math.MaxUint32, I: math.MaxUint32}
	}
	shard, err := replay.New(cfg)
	if err != nil {
		return replay.Progress{}, err
	}
	dctx, stopDDL := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ddl.Run(dctx) }()
	err = shard.Run(ctx)
	stopDDL()
	wg.Wait()
	return shard.Snapshot(), err
}

// printReplay writes the counts, one "name: value" line each.
func printReplay(w io.Writer, p replay.Progress, relaxed []string) {
	writes := p.Inserts + p.Updates + p.Deletes
	fmt.Fprintf(w, "entries read: %d\n", p.Entries)
	fmt.Fprintf(w, "writes applied: %d (inserts and replacements %d, updates %d, deletes %d)\n", writes, p.Inserts, p.Updates, p.Deletes)
	fmt.Fprintf(w, "DDL applied: %d\n", p.DDL)
	fmt.Fprintf(w, "transactions committed: %d\n", p.Transactions)
	var reasons []string
	for r, n := range p.Skipped {
		if n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s %d", replay.SkipReason(r), n))
		}
	}
	fmt.Fprintf(w, "entries skipped: %d", p.SkippedTotal())
	if len(reasons) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(reasons, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "idempotency errors tolerated: %d\n", p.Tolerated)
	if p.Applied != (primitive.Timestamp{}) {
		fmt.Fprintf(w, "last entry applied: Timestamp(%d, %d) %s\n", p.Applied.T, p.Applied.I,
			time.Unix(int64(p.Applied.T), 0).UTC().Format(time.RFC3339))
	}
	for _, r := range relaxed {
		fmt.Fprintf(w, "built relaxed, restore it: %s\n", r)
	}
}

// dryExec is the DDL executor of a dry run.
type dryExec struct{}

func (dryExec) Exec(context.Context, oplog.DDL) error { return nil }

// relaxedList collects what the replay built relaxed.
type relaxedList struct {
	mu    sync.Mutex
	items []string
}

func (l *relaxedList) IndexRelaxed(ns oplog.Namespace, original bson.Raw) error {
	return l.Add(fmt.Sprintf("index on %s %s", ns, original))
}

func (l *relaxedList) OptionsWithheld(ns oplog.Namespace, withheld bson.Raw) error {
	return l.Add(fmt.Sprintf("options of %s %s", ns, withheld))
}

func (l *relaxedList) Add(s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, s)
	return nil
}

func (l *relaxedList) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.items...)
}
